//! Precedence cases a review found wrong, each pinned (issue 31): what a failing source
//! above a value may not do, what a field's own settings wrap, what a last-known-good
//! store may keep, names and profiles of nested fields, `fetch_<field>`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use component_model::{
    AsyncAssign, EnvSource, ErrorKind, FetchRequest, RawValue, Remembering, SecretString, Source,
    SourceError, Sources, async_trait,
};

/// A key/value source answering from a map; it can fail every request, be secret, keep
/// answers (a last-known-good store); it records the keys asked, with their secrecy.
#[derive(Clone, Default)]
struct Kv {
    map: Arc<Mutex<Vec<(String, String)>>>,
    fail_all: bool,
    keeps: bool,
    seen: Arc<Mutex<Vec<(String, bool)>>>,
    calls: Arc<AtomicUsize>,
    remembered: Arc<Mutex<Vec<(String, String)>>>,
}

fn kv(pairs: &[(&str, &str)]) -> Kv {
    Kv {
        map: Arc::new(Mutex::new(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )),
        ..Default::default()
    }
}

fn failing() -> Kv {
    Kv {
        fail_all: true,
        ..Default::default()
    }
}

#[async_trait]
impl Source for Kv {
    async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let key = r.key().unwrap_or("<none>").to_owned();
        self.seen
            .lock()
            .unwrap()
            .push((key.clone(), r.is_sensitive()));
        if self.fail_all {
            return Err(SourceError::new(ErrorKind::Unavailable).with_message("down"));
        }
        self.map
            .lock()
            .unwrap()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| RawValue::Text(v.clone()))
            .ok_or_else(SourceError::not_found)
    }
    fn keeps_answers(&self) -> bool {
        self.keeps
    }
    fn remember(&self, answers: Vec<(FetchRequest, RawValue)>) -> Option<Remembering> {
        let mut m = self.remembered.lock().unwrap();
        for (r, v) in answers {
            m.push((r.key().unwrap_or("-").to_owned(), format!("{v:?}")));
        }
        None
    }
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["ovr"])]
struct FailingOverride {
    #[component(fetch_from = "kv", key = "port", fallback = "1")]
    port: u16,
}

#[tokio::test]
async fn a_failing_override_above_a_value_fails_the_field_and_the_fallback_literal_does_not_stand_in()
 {
    let s = Sources::new()
        .register("ovr", failing())
        .register("kv", kv(&[("port", "5432")]));
    let errors = FailingOverride::fetch_all_components_with(&s)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{errors:?}");
    assert!(errors[0].to_string().contains("ovr"), "{}", errors[0]);
    // With nothing below it, the literal stands in for the failed source, as always.
    let s = Sources::new()
        .register("ovr", failing())
        .register("kv", kv(&[]));
    let ok = FailingOverride::fetch_all_components_with(&s)
        .await
        .unwrap();
    assert_eq!(ok.port, 1);
}

#[derive(AsyncAssign, Debug)]
#[component(defaults = ["dflt"])]
struct OwnAbsentFallbackFailing {
    #[component(fetch_from = "kv", key = "port", fallback_to = "fb")]
    port: Option<u16>,
    #[component(fetch_from = "kv", key = "host", fallback_to = "fb", fallback = "lit")]
    host: String,
}

#[tokio::test]
async fn the_own_source_absent_and_its_fallback_to_failing_is_a_failure_not_an_absence() {
    let s = Sources::new()
        .register("kv", kv(&[]))
        .register("fb", failing())
        .register("dflt", kv(&[("port", "7"), ("host", "dflt-host")]));
    let errors = OwnAbsentFallbackFailing::fetch_all_components_with(&s)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["ovr"])]
struct Remembered {
    #[component(fetch_from = "kv", key = "port", fallback_to = "lkg")]
    port: u16,
}

#[tokio::test]
async fn a_last_known_good_store_keeps_only_the_own_sources_value() {
    let lkg = Kv {
        keeps: true,
        ..Default::default()
    };
    let remembered = lkg.remembered.clone();
    let s = Sources::new()
        .register("ovr", kv(&[("port", "1111")]))
        .register("kv", kv(&[("port", "5432")]))
        .register("lkg", lkg.clone());
    let r = Remembered::fetch_all_components_with(&s).await.unwrap();
    assert_eq!(r.port, 1111);
    assert!(
        remembered.lock().unwrap().is_empty(),
        "an override's value kept as the own key's: {:?}",
        remembered.lock().unwrap()
    );
    let s = Sources::new()
        .register("ovr", kv(&[]))
        .register("kv", kv(&[("port", "5432")]))
        .register("lkg", lkg);
    Remembered::fetch_all_components_with(&s).await.unwrap();
    assert_eq!(remembered.lock().unwrap().len(), 1);
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["ovr"])]
struct SecretTyped {
    #[component(fetch_from = "kv", key = "pw")]
    pw: SecretString,
}

#[tokio::test]
async fn every_request_of_a_secret_typed_field_is_marked_secret() {
    let own = kv(&[("pw", "s3cret")]);
    let seen = own.seen.clone();
    let over = kv(&[]);
    let over_seen = over.seen.clone();
    let s = Sources::new().register("ovr", over).register("kv", own);
    SecretTyped::fetch_all_components_with(&s).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), [("pw".to_owned(), true)]);
    assert_eq!(*over_seen.lock().unwrap(), [("pw".to_owned(), true)]);
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["ovr"])]
struct Cached {
    #[component(fetch_from = "kv", key = "port", cache_for = "60s")]
    port: u16,
}

#[tokio::test]
async fn a_fields_cache_wraps_its_own_source_not_its_overrides() {
    let over = kv(&[("port", "1")]);
    let (calls, map) = (over.calls.clone(), over.map.clone());
    let s = Sources::new()
        .register("ovr", over)
        .register("kv", kv(&[("port", "5432")]));
    assert_eq!(Cached::fetch_all_components_with(&s).await.unwrap().port, 1);
    map.lock().unwrap().clear(); // the override removed
    assert_eq!(
        Cached::fetch_all_components_with(&s).await.unwrap().port,
        5432
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the override asked each time"
    );
}

#[derive(AsyncAssign, Debug, Default)]
#[component(overrides = ["env"])]
struct Db {
    #[component(fetch_from = "env", env = "PORT")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_", profile_env = "APP_PROFILE")]
struct Root {
    #[component(nested)]
    db: Db,
    #[component(nested)]
    zone: Zone,
}

#[derive(AsyncAssign, Debug, Default)]
struct Zone {
    #[component(fetch_from = "kv", key = "{@profile}/url")]
    url: String,
}

#[tokio::test]
async fn a_nested_fields_env_name_and_the_roots_profile_hold_for_every_fetch_path() {
    let s = Sources::new()
        .with_env(EnvSource::from_map([
            ("PORT", "1"),
            ("APP_DB_PORT", "2"),
            ("APP_PROFILE", "prod"),
        ]))
        .register("kv", kv(&[("prod/url", "P"), ("default/url", "D")]));
    let all = Root::fetch_all_components_with(&s).await.unwrap();
    assert_eq!(
        all.db.port, 1,
        "`env = \"PORT\"` for its own env source too"
    );
    assert_eq!(all.zone.url, "P");
    assert_eq!(Root::fetch_zone_with(&s).await.unwrap().url, "P");
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"])]
struct WithFetcher {
    #[component(fetcher = || async { Ok::<u16, std::io::Error>(5) })]
    port: u16,
    #[component(fetcher = || async { Ok::<u16, std::io::Error>(5) }, overrides = ["env"])]
    listed: u16,
}

#[tokio::test]
async fn a_fetcher_field_takes_only_its_own_lists() {
    let s = Sources::new().with_env(EnvSource::from_map([("PORT", "9"), ("LISTED", "8")]));
    let v = WithFetcher::fetch_all_components_with(&s).await.unwrap();
    assert_eq!((v.port, v.listed), (5, 8));
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"])]
struct UnsetOwnKey {
    #[component(fetch_from = "kv", key = "${NS}/port")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[component(key_prefix = "${NS}/", defaults = ["kv"])]
struct UnsetPrefix {
    port: u16,
}

#[tokio::test]
async fn an_unset_variable_fails_its_source_in_its_place() {
    let s = Sources::new()
        .with_env(EnvSource::from_map([("PORT", "9")]))
        .register("kv", kv(&[("/port", "1")]));
    // The override answers above the own source that could not be planned.
    assert_eq!(
        UnsetOwnKey::fetch_all_components_with(&s)
            .await
            .unwrap()
            .port,
        9
    );
    // A key prefix that cannot be made is an error, not an unprefixed key.
    let errors = UnsetPrefix::fetch_all_components_with(&s)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{errors:?}");
    assert!(errors[0].to_string().contains("NS"), "{}", errors[0]);
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"])]
struct Absent {
    port: u16,
}

#[tokio::test]
async fn fetch_field_takes_default_like_fetch_all() {
    let s = Sources::new().with_env(EnvSource::from_map([("X", "9")]));
    assert_eq!(Absent::fetch_all_components_with(&s).await.unwrap().port, 0);
    assert_eq!(Absent::fetch_port_with(&s).await.unwrap(), 0);
}

#[derive(AsyncAssign, Debug)]
struct IssueExample {
    #[component(fetch_from = "kv", key = "app/port", fallback_to = "env")]
    port: u16,
}

#[tokio::test]
async fn fallback_to_env_reads_the_fields_variable_not_the_other_sources_key() {
    let s = Sources::new()
        .with_env(EnvSource::from_map([("PORT", "9"), ("app/port", "7")]))
        .register("kv", failing());
    assert_eq!(
        IssueExample::fetch_all_components_with(&s)
            .await
            .unwrap()
            .port,
        9
    );
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["evn"])]
struct Misspelt {
    port: u16,
}

#[tokio::test]
async fn a_precedence_source_no_sources_register_is_a_config_error_with_a_suggestion() {
    let s = Sources::new().with_env(EnvSource::from_map([("PORT", "9")]));
    let errors = Misspelt::fetch_all_components_with(&s).await.unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{errors:?}");
    let text = errors[0].to_string();
    assert!(
        text.contains("evn") && text.contains("did you mean `env`?"),
        "{text}"
    );
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"], defaults = ["dflt"])]
#[allow(dead_code)] // the values are only checked for in logs, errors and reports
struct Canaries {
    #[component(secret)]
    password: String,
    #[component(secret)]
    port: u16,
}

#[tokio::test]
async fn no_secret_of_a_precedence_field_in_logs_at_trace_errors_or_the_report() {
    let logs = component_model_tests::CapturedLogs::default();
    let _guard = component_model_tests::capture(&logs);
    let s = Sources::new()
        .with_env(EnvSource::from_map([
            ("PASSWORD", "CANARY-env-pw"),
            ("PORT", "CANARY-not-a-port"),
        ]))
        .register(
            "dflt",
            kv(&[("password", "CANARY-dflt-pw"), ("port", "CANARY-dflt-port")]),
        );
    let report = Canaries::fetch_report_with(&s).await;
    let shown = format!("{report}\n{report:?}");
    let errors = match &report.result {
        Ok(_) => String::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{e} {e:?}"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    assert!(!errors.is_empty(), "the port does not convert: an error");
    for text in [shown, errors, logs.text()] {
        assert!(!text.contains("CANARY"), "a secret shown:\n{text}");
    }
}
