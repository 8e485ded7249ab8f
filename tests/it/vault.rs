//! The `vault` source and `VaultFetcher` against the in-process Vault API double
//! (`component_model::test_util::VaultDouble`), plus malformed answers from wiremock.

use component_model::secrecy::ExposeSecret;
use component_model::test_util::VaultDouble;
use component_model::{
    AsyncAssign, ComponentFetcher, EnvSource, ErrorKind, SecretString, Sources, VaultFetcher,
    VaultSource,
};
use component_model_tests::{CapturedLogs, capture};
use serde::Deserialize;
use serde_json::json;

const CANARY: &str = "canary-vault-91c2-DO-NOT-LEAK";

#[derive(Debug, Deserialize, PartialEq)]
struct Db {
    username: String,
    password: String,
}

#[derive(AsyncAssign, Debug)]
struct Secrets {
    #[component(fetch_from = "vault", secret = "app/db", field = "username")]
    user: String,
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "vault", secret = "app/db")]
    whole: Db,
    #[component(fetch_from = "vault", secret = "app/api-key")]
    api_key: SecretString,
    #[component(
        fetch_from = "vault",
        secret = "${SERVICE:-app}/legacy",
        mount = "kv",
        field = "port"
    )]
    legacy_port: u16,
}

fn vault_sources(vault: &VaultDouble) -> Sources {
    Sources::new().register("vault", VaultSource::new(vault.url()).with_token("root"))
}

async fn seeded() -> VaultDouble {
    let vault = VaultDouble::builder().kv_v1("kv").start().await;
    vault.put(
        "secret",
        "app/db",
        json!({"username": "app", "password": "pw-1"}),
    );
    vault.put("secret", "app/api-key", json!({"value": "key-123"}));
    vault.put("kv", "app/legacy", json!({"port": "5432"}));
    vault
}

#[tokio::test]
async fn kv_v2_and_v1_with_detection_once_per_mount_and_one_read_per_path() {
    let vault = seeded().await;
    let s = Secrets::fetch_all_components_with(&vault_sources(&vault))
        .await
        .unwrap();
    assert_eq!(s.user, "app");
    assert_eq!(s.password.expose_secret(), "pw-1");
    assert_eq!(
        s.whole,
        Db {
            username: "app".into(),
            password: "pw-1".into()
        }
    );
    assert_eq!(s.api_key.expose_secret(), "key-123"); // one key: no `field` needed
    assert_eq!(s.legacy_port, 5432);

    // three fields on secret/app/db: ONE read; each mount detected once
    assert_eq!(vault.requests_to("/v1/secret/data/app/db").len(), 1);
    assert_eq!(vault.requests_to("/v1/secret/data/app/api-key").len(), 1);
    assert_eq!(vault.requests_to("/v1/kv/app/legacy").len(), 1);
    let detections: Vec<String> = vault
        .requests_to("/v1/sys/internal/ui/mounts/")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(detections.len(), 2, "{detections:?}");
    for r in vault.requests() {
        assert_eq!(r.header("x-vault-token"), Some("root"));
    }

    // a second fetch on the same source does not detect again
    let sources = vault_sources(&vault);
    Secrets::fetch_all_components_with(&sources).await.unwrap();
    vault.clear_requests();
    Secrets::fetch_all_components_with(&sources).await.unwrap();
    assert!(vault.requests_to("/v1/sys/").is_empty());
    assert_eq!(vault.requests().len(), 3);
}

#[tokio::test]
async fn kv_version_attribute_skips_detection() {
    #[derive(AsyncAssign, Debug)]
    struct Pinned {
        #[component(
            fetch_from = "vault",
            secret = "app/legacy",
            mount = "kv",
            kv_version = 1,
            field = "port"
        )]
        port: u16,
        #[component(
            fetch_from = "vault",
            secret = "app/db",
            kv_version = "2",
            field = "username"
        )]
        user: String,
    }
    let vault = seeded().await;
    let p = Pinned::fetch_all_components_with(&vault_sources(&vault))
        .await
        .unwrap();
    assert_eq!((p.port, p.user.as_str()), (5432, "app"));
    assert!(vault.requests_to("/v1/sys/").is_empty());
    assert_eq!(vault.requests().len(), 2);
}

#[tokio::test]
async fn token_namespace_and_address_from_the_conventional_variables() {
    let vault = VaultDouble::builder()
        .namespace("team-a")
        .token("t-1")
        .start()
        .await;
    vault.put("secret", "svc", json!({"url": "postgres://db"}));
    let env = EnvSource::from_map([
        ("VAULT_ADDR", vault.url()),
        ("VAULT_TOKEN", "t-1".to_owned()),
        ("VAULT_NAMESPACE", "team-a".to_owned()),
    ]);
    let fetcher = VaultFetcher::with_source(VaultSource::from_env_source(&env), "svc").field("url");
    let url: String = fetcher.fetch_component().await.unwrap();
    assert_eq!(url, "postgres://db");
    for r in vault.requests() {
        assert_eq!(r.header("x-vault-namespace"), Some("team-a"));
        assert_eq!(r.header("x-vault-token"), Some("t-1"));
    }

    // A namespace that does not exist: `404 namespace not found` (as OpenBao answers), a
    // configuration error naming it.
    let wrong = VaultSource::new(vault.url())
        .with_token("t-1")
        .with_namespace("team-b");
    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(wrong, "svc").field("url"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains("namespace `team-b` does not exist"),
        "{e}"
    );
}

#[tokio::test]
async fn wrong_or_missing_token_missing_secret_missing_field_and_sealed() {
    let vault = seeded().await;

    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(VaultSource::new(vault.url()).with_token("wrong"), "app/db")
            .field("username"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        e.to_string().contains("HTTP 403 Forbidden from vault"),
        "{e}"
    );
    assert!(e.to_string().contains("permission denied"), "{e}");

    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(VaultSource::new(vault.url()), "app/db").kv_version(2),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("set VAULT_TOKEN"), "{e}");

    let source = VaultSource::new(vault.url()).with_token("root");
    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(source.clone(), "app/nothing"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string()
            .starts_with("vault secret `secret/app/nothing` at http://127.0.0.1:"),
        "{e}"
    );

    // a field the secret lacks: named, with the secret's key names (never values)
    vault.put("secret", "canary", json!({"token": CANARY, "user": "u"}));
    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(source.clone(), "canary").field("password"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string()
            .contains("no field `password` in the value (fields: `token`, `user`)"),
        "{e}"
    );
    assert!(!e.to_string().contains(CANARY));

    // a soft-deleted KV v2 version
    vault.put("secret", "gone", json!({"a": "b"}));
    reqwest::Client::new()
        .delete(format!("{}/v1/secret/data/gone", vault.url()))
        .header("X-Vault-Token", "root")
        .send()
        .await
        .unwrap();
    let e = <VaultFetcher as ComponentFetcher<serde_json::Value>>::fetch_component(
        &VaultFetcher::with_source(source.clone(), "gone"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    vault.seal();
    let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
        &VaultFetcher::with_source(source, "app/db").field("username"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .contains("HTTP 503 Service Unavailable from vault"),
        "{e}"
    );
    assert!(e.to_string().contains("Vault is sealed"), "{e}");
}

#[tokio::test]
async fn a_canary_secret_never_appears_in_errors_debug_or_logs() {
    #[derive(AsyncAssign, Debug)]
    struct Leaky {
        #[component(fetch_from = "vault", secret = "leak", field = "token")]
        as_number: u32,
        #[component(fetch_from = "vault", secret = "leak")]
        as_struct: Db,
        #[component(fetch_from = "vault", secret = "leak", field = "token")]
        fine: SecretString,
    }
    let vault = VaultDouble::start().await;
    vault.put("secret", "leak", json!({"token": CANARY, "other": CANARY}));
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let sources =
        Sources::new().register("vault", VaultSource::new(vault.url()).with_token("root"));
    let errors = Leaky::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    drop(_guard);
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Decode);
        assert!(!e.to_string().contains(CANARY), "{e}");
        assert!(!format!("{e:?}").contains(CANARY), "{e:?}");
    }
    assert!(
        errors[0].to_string().contains("found a secret value of"),
        "{}",
        errors[0]
    );
    let logged = logs.text();
    assert!(logged.contains("component_fetch"), "{logged}");
    assert!(!logged.contains(CANARY), "logs leak the canary:\n{logged}");
    let source = VaultSource::new(vault.url()).with_token(CANARY);
    assert!(!format!("{source:?}").contains(CANARY));
}

#[tokio::test]
async fn the_double_speaks_the_full_envelope_and_vaults_errors() {
    let vault = seeded().await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        http.get(format!("{}{path}", vault.url()))
            .header("X-Vault-Token", "root")
            .send()
    };
    let r = get("/v1/secret/data/app/db").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(body.get(key).is_some(), "{key} missing in {body}");
    }
    assert_eq!(body["data"]["data"]["username"], "app");
    assert_eq!(body["data"]["metadata"]["version"], 1);

    let r = get("/v1/kv/app/legacy").await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["data"]["port"], "5432");
    assert_eq!(body["lease_duration"], 2_764_800);

    let r = get("/v1/secret/app/db").await.unwrap(); // v2 mount read without data/
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("Invalid path for a versioned K/V")
    );

    let r = get("/v1/secret/data/none").await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), r#"{"errors":[]}"#);

    let r = get("/v1/sys/internal/ui/mounts/kv/app/legacy")
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        (
            body["data"]["path"].as_str(),
            body["data"]["options"]["version"].as_str()
        ),
        (Some("kv/"), Some("1"))
    );
    let r = get("/v1/sys/internal/ui/mounts/nomount/x").await.unwrap();
    assert_eq!(r.status(), 403);

    let r = http
        .get(format!("{}/v1/secret/data/app/db", vault.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"errors":["permission denied"]}"#
    );
}

#[tokio::test]
async fn a_malformed_vault_answer_is_a_decode_error() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/v1/secret/data/broken"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string("{\"request_id\": \"x\", \"data\": {"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/v1/secret/data/not-envelope"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"hello": CANARY})))
        .mount(&server)
        .await;
    let source = VaultSource::new(server.uri())
        .with_token("root")
        .with_kv_version("secret", 2);
    for p in ["broken", "not-envelope"] {
        let e = <VaultFetcher as ComponentFetcher<String>>::fetch_component(
            &VaultFetcher::with_source(source.clone(), p),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert!(e.to_string().contains("is not a response envelope"), "{e}");
        assert!(!e.to_string().contains(CANARY), "{e}");
    }
}

#[tokio::test]
async fn a_missing_placeholder_variable_is_a_config_error_naming_field_and_variable() {
    #[derive(AsyncAssign, Debug)]
    struct Placed {
        #[component(fetch_from = "vault", secret = "${TEAM}/db", field = "password")]
        password: SecretString,
    }
    let vault = VaultDouble::start().await;
    let sources = vault_sources(&vault).with_env(EnvSource::from_map([("OTHER", "x")]));
    let errors = Placed::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config);
    let shown = errors[0].to_string();
    assert!(shown.starts_with("Placed.password: vault"), "{shown}");
    assert!(shown.contains("TEAM"), "{shown}");
    assert!(
        vault.requests().is_empty(),
        "nothing is sent with an unresolved path"
    );
}

#[test]
fn from_env_registers_the_remote_backends() {
    let sources = Sources::from_env();
    for name in ["env", "api", "http", "consul", "vault"] {
        assert!(sources.contains(name), "{name} in {sources:?}");
    }
}

#[tokio::test]
async fn a_vault_source_under_another_name_keeps_its_secrecy_and_single_key_reads() {
    let vault = seeded().await;
    vault.put("secret", "app/pin", json!({"pin": CANARY}));
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Renamed {
        // A one-key secret into a scalar, without `field`.
        #[component(fetch_from = "secrets", secret = "app/api-key")]
        api_key: String,
        // A decode failure of a value that is secret because of its source.
        #[component(fetch_from = "secrets", secret = "app/pin")]
        pin: u32,
    }
    let sources =
        Sources::new().register("secrets", VaultSource::new(vault.url()).with_token("root"));
    let errors = Renamed::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let shown = format!("{} {:?}", errors[0], errors[0]);
    assert_eq!(errors[0].kind(), ErrorKind::Decode);
    assert!(shown.contains("secrets secret `secret/app/pin`"), "{shown}");
    assert!(shown.contains("(not shown)"), "{shown}");
    assert!(!shown.contains(CANARY), "{shown}");

    #[derive(AsyncAssign, Debug)]
    struct Ok {
        #[component(fetch_from = "secrets", secret = "app/api-key")]
        api_key: String,
    }
    let ok = Ok::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(ok.api_key, "key-123");
}

#[tokio::test]
async fn a_mistyped_mount_is_a_configuration_error_that_no_fallback_hides() {
    let vault = seeded().await;
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(
            fetch_from = "vault",
            secret = "app/db",
            mount = "secrte",
            kv_version = 2,
            field = "username",
            fallback = "nobody"
        )]
        user: String,
    }
    let errors = C::fetch_all_components_with(&vault_sources(&vault))
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{}", errors[0]);
    let shown = errors[0].to_string();
    assert!(shown.contains("vault secret `secrte/app/db`"), "{shown}");
    assert!(shown.contains("no handler for route"), "{shown}");
    assert!(shown.contains("check the field's `mount`"), "{shown}");
}

#[tokio::test]
async fn kv_version_1_on_a_v2_mount_is_a_configuration_error() {
    let vault = seeded().await;
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(
            fetch_from = "vault",
            secret = "app/db",
            kv_version = 1,
            field = "username",
            fallback = "x"
        )]
        user: String,
    }
    let errors = C::fetch_all_components_with(&vault_sources(&vault))
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{}", errors[0]);
    assert!(
        errors[0].to_string().contains("check `kv_version`"),
        "{}",
        errors[0]
    );
}
