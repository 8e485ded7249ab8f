//! Errors and secrets: a canary secret never shows in errors, Debug or logs.

use component_model::{
    AsyncAssign, ComponentError, EnvSource, ErrorKind, FetchRequest, RawValue, Source, SourceError,
    Sources, async_trait,
};
use component_model_tests::{CapturedLogs, capture};

const CANARY: &str = "canary-7f3a9c-DO-NOT-LEAK";

struct VaultLike;

#[async_trait]
impl Source for VaultLike {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        match request.secret_path() {
            Some("app/db") => Ok(RawValue::Json(
                serde_json::json!({ "password": CANARY, "port": CANARY }),
            )),
            _ => Err(SourceError::not_found()),
        }
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Secrets {
    #[component(fetch_from = "env", secret)]
    api_key: u64,
    #[component(fetch_from = "vaultish", secret = "app/db", field = "port")]
    db_port: u16,
    #[component(fetch_from = "vaultish", secret = "app/db", field = "user")]
    db_user: String,
    #[component(fetch_from = "env")]
    token: component_model::SecretString,
    #[component(fetch_from = "env")]
    plain: u16,
}

#[tokio::test]
async fn three_failing_fields_give_three_errors_and_none_contains_the_canary() {
    let logs = CapturedLogs::default();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([
            ("API_KEY", CANARY),
            ("TOKEN", CANARY),
            ("PLAIN", "not-a-port"),
        ]))
        .register("vaultish", VaultLike);
    let _guard = capture(&logs);
    let errors = Secrets::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    drop(_guard);

    let fields: Vec<_> = errors.iter().map(|e| e.field_name().unwrap()).collect();
    assert_eq!(fields, ["api_key", "db_port", "db_user", "plain"]);
    assert_eq!(errors[2].kind(), ErrorKind::NotFound);
    for e in &errors {
        assert!(!e.to_string().contains(CANARY), "Display leaks: {e}");
        assert!(!format!("{e:?}").contains(CANARY), "Debug leaks: {e:?}");
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            assert!(!c.to_string().contains(CANARY), "cause leaks: {c}");
            cause = c.source();
        }
    }
    assert!(
        errors[0]
            .to_string()
            .contains("found a secret value of 25 bytes (not shown)"),
        "{}",
        errors[0]
    );
    // a non-secret value is shown, to help fix it
    assert!(
        errors[3].to_string().contains("\"not-a-port\""),
        "{}",
        errors[3]
    );
    let multiple = ComponentError::from(errors);
    assert!(!multiple.to_string().contains(CANARY));
    assert!(!format!("{multiple:?}").contains(CANARY));

    let logged = logs.text();
    assert!(
        logged.contains("component_fetch"),
        "one span per field is logged: {logged}"
    );
    assert!(logged.contains("field=\"db_port\""), "{logged}");
    assert!(!logged.contains(CANARY), "logs leak the canary:\n{logged}");
}

#[tokio::test]
async fn spans_record_field_source_key_outcome_and_elapsed() {
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "env")]
        port: u16,
    }
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    C::fetch_all_components_with(&Sources::new().with_env(EnvSource::from_map([("PORT", "1")])))
        .await
        .unwrap();
    let text = logs.text();
    for needle in [
        "component_fetch",
        "owner=\"C\"",
        "field=\"port\"",
        "source=\"env\"",
        "key=PORT",
        "outcome=\"ok\"",
        "elapsed_ms=",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
}

#[test]
fn raw_values_and_requests_never_print_values() {
    let raw = RawValue::from(CANARY);
    assert_eq!(format!("{raw:?}"), "Text(<25 bytes>)");
    let json = RawValue::Json(serde_json::json!({ "k": CANARY }));
    assert_eq!(format!("{json:?}"), "Json(<object>)");
}

#[test]
fn error_kinds_display_as_actionable_phrases() {
    let e = ComponentError::field(ErrorKind::Unauthorized)
        .in_field("AppConfig", "api_key")
        .from_source("vault", "secret", "app/api-key")
        .detail("permission denied")
        .build();
    assert_eq!(
        e.to_string(),
        "AppConfig.api_key: vault secret `app/api-key`: unauthorized: permission denied"
    );
    assert_eq!(e.key(), Some("app/api-key"));
}

#[tokio::test]
async fn passwords_in_urls_never_appear_in_errors_or_debug() {
    struct Down;
    #[async_trait]
    impl Source for Down {
        async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
            assert!(
                !format!("{request:?}").contains(CANARY),
                "request Debug leaks"
            );
            Err(SourceError::new(ErrorKind::Unavailable).with_message("connection refused"))
        }
    }
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(
            fetch_from = "remote",
            url = "https://svc:canary-7f3a9c-DO-NOT-LEAK@config.internal/settings"
        )]
        settings: String,
    }
    let errors = C::fetch_all_components_with(&Sources::new().register("remote", Down))
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert!(!text.contains(CANARY), "{text}");
    assert!(
        text.contains("url `https://svc:***@config.internal/settings`"),
        "{text}"
    );
}

#[tokio::test]
async fn a_type_marked_secret_value_is_never_shown() {
    #[derive(serde::Deserialize, Debug, Default)]
    struct Pin(#[allow(dead_code)] u32);
    impl component_model::SecretValue for Pin {}

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "env", key = "PIN")]
        pin: Pin,
        #[component(fetch_from = "env", key = "PINS")]
        pins: Option<Vec<Pin>>,
    }
    let canary = "canary-pin-never-shown";
    let sources = Sources::new().with_env(EnvSource::from_map([("PIN", canary), ("PINS", canary)]));
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 2);
    for e in &errors {
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("a secret value of 22 bytes (not shown)"),
            "{shown}"
        );
        assert!(!shown.contains(canary), "{shown}");
    }
}

#[tokio::test]
async fn an_empty_env_value_of_a_secret_field_counts_as_absent() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "env", key = "TOKEN", secret)]
        token: String,
        #[component(fetch_from = "env", key = "TOKEN", secret, fallback = "dev-token")]
        with_fallback: String,
        #[component(fetch_from = "env", key = "TOKEN")]
        not_secret: String,
    }
    let sources = Sources::new().with_env(EnvSource::from_map([("TOKEN", "")]));
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    assert_eq!(
        errors[0].to_string(),
        "C.token: env variable `TOKEN`: not found: the variable is set but empty, and the field is secret"
    );
    let ok = C::fetch_available_components_with(&sources).await.unwrap();
    assert_eq!(ok.value.with_fallback, "dev-token");
    assert_eq!(ok.value.not_secret, "");
}

#[tokio::test]
async fn a_source_wide_failure_is_displayed_once_with_the_fields_it_hit() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct A {
        #[component(fetch_from = "database", query = "SELECT 1")]
        x: u8,
        #[component(fetch_from = "database", query = "SELECT 2")]
        y: u8,
        #[component(fetch_from = "database", query = "SELECT 3")]
        z: u8,
        #[component(fetch_from = "env", key = "W")]
        w: u8,
    }
    let sources = Sources::new().with_env(EnvSource::from_map([("Q", "1")]));
    let errors = A::fetch_all_components_with(&sources).await.unwrap_err();
    // One error per field, as the API promises ...
    assert_eq!(errors.len(), 4);
    // ... displayed as one line for the shared cause, with the fields it hit.
    let shown = component_model::ErrorsExt::display(&errors[..]).to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert_eq!(lines[0], "4 components failed:");
    assert!(
        lines[1]
            .starts_with("  - database: misconfigured: no source named `database` is registered")
            && lines[1].ends_with(" — fields: A.x, A.y, A.z"),
        "{shown}"
    );
    assert_eq!(lines[2], "  - A.w: env variable `W`: not found");
    assert_eq!(ComponentError::from(errors).to_string(), shown);
}
