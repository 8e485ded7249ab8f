//! Issue 36: `azure_keyvault` against the Key Vault API double (test_util), behind a TLS
//! front with a CA of the test's own (the source sends bearer tokens over HTTPS only; the
//! double is checked by azure-keyvault-secrets in `tests/clients/azure_checks.py`).
//!
//! The double runs in the test's process: nothing to be unreachable, nothing skipped.

use std::time::Duration;

use component_model::test_util::AzureKeyVaultDouble;
use component_model::{
    Access, AsyncAssign, AzureKeyVaultSource, Change, EnvSource, ErrorKind, FetchRequest, RawValue,
    Revision, Source, Sources, TlsConfig,
};
use component_model_tests::tls::{Pki, tls_front};
use component_model_tests::{CapturedLogs, capture, unique};
use futures::StreamExt;

/// The double behind HTTPS.
struct Kv {
    double: AzureKeyVaultDouble,
    pki: Pki,
    url: String,
}

impl Kv {
    async fn start() -> Kv {
        Self::with(AzureKeyVaultDouble::start().await).await
    }

    /// `double` behind a TLS front of its own CA.
    async fn with(double: AzureKeyVaultDouble) -> Kv {
        let pki = Pki::new("azure_kv");
        let cert = pki.server("kv", &["127.0.0.1"], false);
        let front = tls_front(double.address(), &cert, None).await;
        Kv {
            double,
            pki,
            url: format!("https://127.0.0.1:{}", front.port()),
        }
    }

    fn tls(&self) -> TlsConfig {
        TlsConfig::new().with_ca_cert(&self.pki.ca_file)
    }

    /// A source with the double's client secret, its token endpoint over HTTPS.
    fn source(&self) -> AzureKeyVaultSource {
        AzureKeyVaultSource::new(&self.url)
            .with_client_secret(
                self.double.tenant(),
                self.double.client_id(),
                self.double.client_secret(),
            )
            .with_authority_host(&self.url)
            .with_tls(self.tls())
    }

    /// A double accepting the federated token `accepted`, and a source with workload
    /// identity whose token file (in a directory of its own, `dir`) holds `text`:
    /// `(kv, source, dir, file)`.
    async fn workload(
        accepted: &str,
        text: &str,
    ) -> (
        Kv,
        AzureKeyVaultSource,
        std::path::PathBuf,
        std::path::PathBuf,
    ) {
        let kv = Kv::with(
            AzureKeyVaultDouble::builder()
                .federated_token(accepted)
                .start()
                .await,
        )
        .await;
        let dir = std::env::temp_dir().join(unique("cm_azure_wi"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, text).unwrap();
        let source = AzureKeyVaultSource::new(&kv.url)
            .with_workload_identity(kv.double.tenant(), kv.double.client_id(), &file)
            .with_authority_host(&kv.url)
            .with_tls(kv.tls());
        (kv, source, dir, file)
    }

    fn secret_gets(&self) -> usize {
        self.double
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/secrets/"))
            .count()
    }
}

fn req(name: &str) -> FetchRequest {
    FetchRequest::for_key("azure_keyvault", name.to_owned())
}

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(fetch_from = "azure_keyvault", key = "db-password")]
    password: String,
    #[component(fetch_from = "azure_keyvault", key = "port")]
    port: u16,
    #[component(fetch_from = "azure_keyvault", key = "absent")]
    absent: Option<String>,
    #[component(fetch_from = "azure_keyvault", key = "absent-too", fallback = "7")]
    with_fallback: u32,
}

#[tokio::test]
async fn azure_keyvault_reads_values_through_the_challenge_and_counts_round_trips() {
    let kv = Kv::start().await;
    kv.double.set_secret("db-password", "pw-1");
    kv.double.set_secret("port", "8443");
    let sources = Sources::new().register("azure_keyvault", kv.source());
    let app = App::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(app.password, "pw-1");
    assert_eq!(app.port, 8443);
    assert_eq!(app.absent, None);
    assert_eq!(app.with_fallback, 7);
    // One challenge (the first GET, without a token), one token, one GET per field.
    assert_eq!(kv.double.challenges(), 1);
    assert_eq!(kv.double.token_requests(), 1);
    assert_eq!(kv.secret_gets(), 4 + 1);
    let token = &kv.double.requests_to("/72f988bf")[0];
    let form = String::from_utf8_lossy(&token.body).into_owned();
    let host_port = kv.url.trim_start_matches("https://127.");
    assert!(
        form.contains(&format!(
            "scope=https%3A%2F%2F{}%2F.default",
            host_port.replace(':', "%3A")
        )),
        "the token is asked for the challenge's scope: {form}"
    );
    assert!(form.contains("grant_type=client_credentials"), "{form}");
}

/// Two members of one JSON secret.
#[derive(AsyncAssign, Debug)]
struct Db {
    #[component(fetch_from = "azure_keyvault", key = "db", field = "user")]
    user: String,
    #[component(fetch_from = "azure_keyvault", key = "db", field = "password")]
    password: String,
}

#[tokio::test]
async fn azure_keyvault_field_takes_members_of_a_json_secret_from_one_read() {
    let kv = Kv::start().await;
    kv.double.set_secret(
        "db",
        r#"{"user":"app","password":"Canary-Json-Member-4be"}"#,
    );
    let sources = Sources::new().register("azure_keyvault", kv.source());
    let db = Db::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        (db.user.as_str(), db.password.as_str()),
        ("app", "Canary-Json-Member-4be")
    );
    // The challenge's GET, then one read for both members.
    assert_eq!(kv.secret_gets(), 1 + 1);
    kv.double.set_secret("db", r#"{"user":"app"}"#);
    let errors = Db::fetch_all_components_with(&sources).await.unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{text}");
    assert!(
        text.contains("Db.password") && text.contains("db"),
        "{text}"
    );
}

#[tokio::test]
async fn azure_keyvault_25_secrets_cost_one_challenge_one_token_and_25_gets() {
    let kv = Kv::start().await;
    let names: Vec<String> = (0..25).map(|i| format!("s-{i}")).collect();
    for (i, n) in names.iter().enumerate() {
        kv.double.set_secret(n, &format!("value-{i}"));
    }
    let source = kv.source().with_concurrency(8);
    let requests: Vec<FetchRequest> = names.iter().map(|n| req(n)).collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.as_ref().unwrap(), &RawValue::from(format!("value-{i}")));
    }
    let total = kv.double.requests().len();
    eprintln!(
        "azure_keyvault, 25 secrets: {total} round trips ({} challenge, {} token, {} GETs)",
        kv.double.challenges(),
        kv.double.token_requests(),
        kv.secret_gets()
    );
    assert_eq!(kv.double.challenges(), 1);
    assert_eq!(kv.double.token_requests(), 1);
    // The challenge is the unauthenticated GET of the first secret.
    assert_eq!(kv.secret_gets(), 26);
    assert_eq!(total, 27);
    // Again: the token is cached, 25 GETs.
    kv.double.clear_requests();
    let again = source.fetch_many(&refs).await;
    assert!(again.iter().all(Result::is_ok));
    assert_eq!(kv.double.requests().len(), 25);
}

#[tokio::test]
async fn azure_keyvault_reads_a_version_and_says_what_is_missing() {
    let kv = Kv::start().await;
    let v1 = kv.double.set_secret("api-key", "one");
    let v2 = kv.double.set_secret("api-key", "two");
    let source = kv.source();
    assert_eq!(
        source.fetch(&req("api-key")).await.unwrap(),
        RawValue::from("two")
    );
    let pinned = req("api-key").with_param("version", v1.clone());
    assert_eq!(source.fetch(&pinned).await.unwrap(), RawValue::from("one"));
    assert_eq!(
        source.native_key(&pinned),
        Some(("secret", format!("api-key/{v1}")))
    );
    let gets: Vec<String> = kv
        .double
        .requests_to("/secrets/api-key/")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(gets.contains(&format!("/secrets/api-key/{v1}")), "{gets:?}");
    assert!(
        kv.double.requests().iter().all(
            |r| r.path.contains("oauth2") || r.query_param("api-version") == Some("2026-04-01")
        ),
        "every vault request names the api-version"
    );
    let _ = v2;
    // A missing version, a missing secret: not found, with Key Vault's code and message.
    let e = source
        .fetch(&req("api-key").with_param("version", "0".repeat(32)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = source.fetch(&req("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let text = e.to_string();
    assert!(text.contains("secret `nope`"), "{text}");
    assert!(
        text.contains("SecretNotFound: A secret with (name/id) nope was not found"),
        "{text}"
    );
    // A name Key Vault cannot have: a configuration error, no round trip.
    let before = kv.double.requests().len();
    let e = source.fetch(&req("db/password")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(kv.double.requests().len(), before);
}

#[derive(AsyncAssign, Debug)]
struct Pinned {
    #[component(
        fetch_from = "azure_keyvault",
        key = "api-key",
        version = "0123456789abcdef0123456789abcdef"
    )]
    key: Option<String>,
}

#[tokio::test]
async fn azure_keyvault_the_version_attribute_reaches_the_vault() {
    let kv = Kv::start().await;
    kv.double.set_secret("api-key", "current");
    let sources = Sources::new().register("azure_keyvault", kv.source());
    let pinned = Pinned::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(pinned.key, None, "no such version: not found, so None");
    assert_eq!(
        kv.double
            .requests_to("/secrets/api-key/0123456789abcdef0123456789abcdef")
            .len(),
        2,
        "the challenge and the read, both of the pinned version"
    );
}

#[tokio::test]
async fn azure_keyvault_a_disabled_secret_is_denied_with_the_stores_words() {
    let kv = Kv::start().await;
    kv.double.set_secret("old-key", "x");
    kv.double.disable("old-key");
    let e = kv.source().fetch(&req("old-key")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(
        text.contains(
            "Forbidden/SecretDisabled: Operation get is not allowed on a disabled secret."
        ),
        "{text}"
    );
    assert!(text.contains("secret `old-key`"), "{text}");
}

#[tokio::test]
async fn azure_keyvault_a_challenge_for_another_resource_is_refused_before_any_token() {
    let kv = Kv::with(
        AzureKeyVaultDouble::builder()
            .challenge_resource("https://vault.azure.net")
            .start()
            .await,
    )
    .await;
    kv.double.set_secret("k", "v");
    let e = kv.source().fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string().contains("https://vault.azure.net/.default"),
        "{e}"
    );
    assert!(e.to_string().contains("refused"), "{e}");
    assert_eq!(kv.double.token_requests(), 0, "no token was asked");
    assert!(
        kv.double
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "no token was sent"
    );
}

#[tokio::test]
async fn azure_keyvault_plain_http_off_this_machine_is_refused() {
    let e = AzureKeyVaultSource::new("http://myvault.vault.azure.net")
        .fetch(&req("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("not HTTPS"), "{e}");
    // A plain HTTP authority elsewhere: the client secret is not sent.
    let kv = Kv::start().await;
    kv.double.set_secret("k", "v");
    let e = kv
        .source()
        .with_authority_host("http://login.example.invalid")
        .fetch(&req("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("never sent over plain HTTP"), "{e}");
}

#[tokio::test]
async fn azure_keyvault_workload_identity_reads_the_token_file_for_each_token() {
    let (kv, source, dir, file) = Kv::workload("fed-token-1", "fed-token-1\n").await;
    kv.double.set_secret("k", "v");
    assert_eq!(source.fetch(&req("k")).await.unwrap(), RawValue::from("v"));
    let token = kv.double.requests_to("/72f988bf").pop().unwrap();
    let form = String::from_utf8_lossy(&token.body).into_owned();
    assert!(form.contains("client_assertion=fed-token-1"), "{form}");
    assert!(
        form.contains(
            "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
        ),
        "{form}"
    );
    // The file rotated to a token Entra ID does not know: the next token request reads it.
    std::fs::write(&file, "fed-token-stale").unwrap();
    kv.double.revoke_tokens();
    let e = source.fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("AADSTS700211"), "{e}");
    assert!(e.to_string().contains("workload identity"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn azure_keyvault_managed_identity_app_service_and_imds() {
    let kv = Kv::start().await;
    kv.double.set_secret("k", "v");
    let app_service = AzureKeyVaultSource::new(&kv.url)
        .with_identity_endpoint(
            kv.double.identity_endpoint(),
            kv.double.identity_header(),
            None,
        )
        .with_tls(kv.tls());
    assert_eq!(
        app_service.fetch(&req("k")).await.unwrap(),
        RawValue::from("v")
    );
    let asked = kv.double.requests_to("/msi/token").pop().unwrap();
    assert_eq!(asked.query_param("api-version"), Some("2019-08-01"));
    let resource = format!("https://0.0.1:{}", kv.url.rsplit(':').next().unwrap());
    assert_eq!(asked.query_param("resource"), Some(resource.as_str()));
    assert_eq!(asked.header("x-identity-header"), Some("identity-header"));

    let imds = AzureKeyVaultSource::new(&kv.url)
        .with_managed_identity(Some("user-assigned-id"), Some(&kv.double.url()))
        .with_tls(kv.tls());
    assert_eq!(imds.fetch(&req("k")).await.unwrap(), RawValue::from("v"));
    let asked = kv.double.requests_to("/metadata/identity").pop().unwrap();
    assert_eq!(asked.query_param("api-version"), Some("2018-02-01"));
    assert_eq!(asked.query_param("resource"), Some(resource.as_str()));
    assert_eq!(asked.query_param("client_id"), Some("user-assigned-id"));
    assert_eq!(asked.header("metadata"), Some("true"));

    // A wrong header: the endpoint's refusal, naming the credential.
    let wrong = AzureKeyVaultSource::new(&kv.url)
        .with_identity_endpoint(kv.double.identity_endpoint(), "Canary-Header-3c9", None)
        .with_tls(kv.tls());
    let e = wrong.fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(
        e.to_string().contains("managed identity (App Service)"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("Canary-Header"),
        "the header is never shown: {e}"
    );

    // Off Azure, IMDS does not answer: unreachable within the identity timeout.
    let nowhere = AzureKeyVaultSource::new(&kv.url)
        .with_managed_identity(None, Some("http://127.0.0.1:1"))
        .with_tls(kv.tls());
    let e = nowhere.fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("managed identity (IMDS)"), "{e}");
}

#[tokio::test]
async fn azure_keyvault_tokens_are_refreshed_before_expiry_and_once_after_a_401() {
    let kv = Kv::with(
        AzureKeyVaultDouble::builder()
            .token_ttl(Duration::from_secs(2))
            .start()
            .await,
    )
    .await;
    kv.double.set_secret("k", "v");
    let source = kv.source();
    assert!(source.fetch(&req("k")).await.is_ok());
    assert!(source.fetch(&req("k")).await.is_ok());
    assert_eq!(kv.double.token_requests(), 1, "cached");
    // Past half its 2 s lifetime: asked again before the vault would refuse it.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(source.fetch(&req("k")).await.is_ok());
    assert_eq!(kv.double.token_requests(), 2);
    let refused_before = kv.double.challenges();
    // The vault forgets the token: one 401, one new token, the read goes through.
    kv.double.revoke_tokens();
    assert!(source.fetch(&req("k")).await.is_ok());
    assert_eq!(kv.double.token_requests(), 3);
    assert_eq!(kv.double.challenges(), refused_before + 1);
    // Concurrent reads after a revocation share one new token (single flight).
    kv.double.revoke_tokens();
    let rs: Vec<FetchRequest> = (0..10).map(|_| req("k")).collect();
    let refs: Vec<&FetchRequest> = rs.iter().collect();
    assert!(source.fetch_many(&refs).await.iter().all(Result::is_ok));
    assert_eq!(kv.double.token_requests(), 4);
}

#[tokio::test]
async fn azure_keyvault_watch_sees_a_new_version_with_its_revision() {
    let kv = Kv::start().await;
    kv.double.set_secret("rotating", "one");
    kv.double.set_secret("other", "x");
    let v = kv.double.versions("other")[0].clone();
    let source = kv.source().with_watch_interval(Duration::from_millis(200));
    let requests = vec![
        req("rotating"),
        req("other").with_param("version", v.clone()),
        req("rotating"),
    ];
    // The fetch reads the first version; one set before the watch polls is a change too.
    assert_eq!(
        source.fetch(&req("rotating")).await.unwrap(),
        RawValue::from("one")
    );
    let mut changes = source.watch(requests).unwrap();
    let v2 = kv.double.set_secret("rotating", "two");
    let mut got = Vec::new();
    for _ in 0..2 {
        let c = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the watch goes on")
            .expect("no watch error");
        got.push(c);
    }
    got.sort_by_key(|c| c.indices().map(|i| i[0]));
    for (c, index) in got.iter().zip([0, 2]) {
        match c {
            Change::Value {
                index: i,
                value,
                revision,
            } => {
                assert_eq!(*i, index);
                assert_eq!(value, &RawValue::from("two"));
                assert_eq!(revision.as_ref().map(Revision::to_string), Some(v2.clone()));
            }
            other => panic!("{other:?}"),
        }
    }
    // A third version while the watch waits between polls: one change per field.
    let v3 = kv.double.set_secret("rotating", "three");
    for index in [0, 2] {
        let c = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the watch goes on")
            .expect("no watch error");
        assert!(
            matches!(&c, Change::Value { index: i, value, revision: Some(r) } if *i == index && value == &RawValue::from("three") && r.to_string() == v3),
            "{c:?}"
        );
    }
    // Disabled since: read again (and refused).
    kv.double.disable("rotating");
    let c = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the watch goes on")
        .expect("no watch error");
    assert_eq!(c, Change::Changed(vec![0, 2]));
    // Pinned versions alone: nothing to watch.
    let e = source
        .watch(vec![req("other").with_param("version", v.clone())])
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn azure_keyvault_preflight_rows_read_no_value() {
    let kv = Kv::start().await;
    let canary = "CANARY-kv-preflight-91c2";
    kv.double.set_secret("present", canary);
    kv.double.set_secret("off", canary);
    kv.double.disable("off");
    let v1 = kv.double.set_secret("versioned", canary);
    kv.double.set_secret("versioned", canary);
    kv.double.set_enabled("versioned", &v1, false);
    let source = kv.source();
    let requests = vec![
        req("present"),
        req("off"),
        req("absent"),
        req("bad/name"),
        req("versioned"),
        req("versioned").with_param("version", v1.clone()),
    ];
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        source.preflight(requests).await
    };
    let access: Vec<Access> = probes.iter().map(|p| p.access).collect();
    assert_eq!(
        access,
        vec![
            Access::Readable,
            Access::Denied,
            Access::Missing,
            Access::Invalid,
            Access::Readable,
            Access::Denied,
        ],
        "{probes:?}"
    );
    // Only the versions lists were read (no GET of a secret's value).
    assert!(
        kv.double
            .requests()
            .iter()
            .filter(|r| r.header("authorization").is_some())
            .all(|r| r.path.ends_with("/versions") || r.path.contains("oauth2")),
        "{:?}",
        kv.double.requests()
    );
    assert!(!format!("{probes:?}").contains(canary));
    assert!(!logs.text().contains(canary));

    // Refused credentials: unauthenticated; no vault: unreachable.
    let bad = kv
        .source()
        .with_client_secret(kv.double.tenant(), kv.double.client_id(), "wrong");
    let p = bad.preflight(vec![req("present")]).await;
    assert_eq!(p[0].access, Access::Unauthenticated, "{p:?}");
    let gone = AzureKeyVaultSource::new("https://127.0.0.1:1").with_timeout(Duration::from_secs(2));
    let p = gone.preflight(vec![req("present")]).await;
    assert_eq!(p[0].access, Access::Unreachable, "{p:?}");
}

/// Review finding 3: a caller granted `secrets/get` but not `secrets/list` (an access
/// policy) reads the secret; its preflight row cannot say more than unchecked (was:
/// denied).
#[tokio::test]
async fn azure_keyvault_preflight_without_list_permission_is_unchecked_not_denied() {
    let kv = Kv::start().await;
    kv.double.set_secret("readable", "v");
    kv.double.deny_list(true);
    let source = kv.source();
    assert_eq!(
        source.fetch(&req("readable")).await.unwrap(),
        RawValue::from("v")
    );
    let p = source.preflight(vec![req("readable")]).await;
    assert_eq!(p[0].access, Access::Unchecked, "{p:?}");
    let detail = format!("{p:?}");
    assert!(detail.contains("secrets/list"), "{detail}");
    assert!(detail.contains("AccessDenied"), "{detail}");
}

/// Review finding 5: after a refusal, the vault's new challenge replaces the known one
/// (checked like the first): one naming another resource is refused, no token is asked
/// for the old scope.
#[tokio::test]
async fn azure_keyvault_the_challenge_of_a_refusal_is_checked_again() {
    let kv = Kv::start().await;
    kv.double.set_secret("k", "v");
    let source = kv.source();
    assert!(source.fetch(&req("k")).await.is_ok());
    assert_eq!(kv.double.token_requests(), 1);
    kv.double.revoke_tokens();
    kv.double.set_challenge_resource("https://evil.example");
    let e = source.fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("evil.example"), "{e}");
    assert_eq!(
        kv.double.token_requests(),
        1,
        "no token asked after the new challenge"
    );
}

#[derive(AsyncAssign, Debug)]
struct FromEnv {
    #[component(fetch_from = "azure_keyvault", key = "from-env")]
    value: String,
}

#[tokio::test]
async fn azure_keyvault_from_env_registers_with_the_azure_variables() {
    // Plain HTTP to 127.0.0.1 is allowed: the double without its TLS front.
    let double = AzureKeyVaultDouble::start().await;
    double.set_secret("from-env", "yes");
    let url = double.url();
    let (tenant, client, secret) = (double.tenant(), double.client_id(), double.client_secret());
    let sources = Sources::from_env_source(EnvSource::from_map([
        ("AZURE_KEYVAULT_URL", url.as_str()),
        ("AZURE_TENANT_ID", tenant.as_str()),
        ("AZURE_CLIENT_ID", client.as_str()),
        ("AZURE_CLIENT_SECRET", secret.as_str()),
        ("AZURE_AUTHORITY_HOST", url.as_str()),
    ]));
    let v = FromEnv::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(v.value, "yes");
    assert_eq!(
        sources.source("azure_keyvault").unwrap().location(),
        Some(url.clone())
    );
    // The SDK samples' spelling too; none without a vault URL.
    let other =
        Sources::from_env_source(EnvSource::from_map([("AZURE_KEY_VAULT_URL", url.as_str())]));
    assert!(other.source("azure_keyvault").is_some());
    let none = Sources::from_env_source(EnvSource::from_map([("AZURE_CLIENT_ID", "x")]));
    assert!(none.source("azure_keyvault").is_none());
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Canary {
    #[component(fetch_from = "azure_keyvault", key = "canary-value")]
    value: String,
    #[component(fetch_from = "azure_keyvault", key = "canary-port")]
    port: u16,
}

#[tokio::test]
async fn azure_keyvault_canaries_never_appear_at_trace() {
    let secret = "Canary-Client-Secret-6d1f";
    let value = "Canary-Value-0b7e";
    let kv = Kv::with(
        AzureKeyVaultDouble::builder()
            .client("kv-app", secret)
            .start()
            .await,
    )
    .await;
    kv.double.set_secret("canary-value", value);
    // A value that does not convert: the error must not show it.
    kv.double.set_secret("canary-port", value);
    let logs = CapturedLogs::default();
    let (err, bad) = {
        let _guard = capture(&logs);
        let source = kv.source();
        assert!(!format!("{source:?}").contains(secret));
        let sources = Sources::new().register("azure_keyvault", source);
        let err = Canary::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        let wrong =
            kv.source()
                .with_client_secret(kv.double.tenant(), "kv-app", format!("{secret}-wrong"));
        let bad = wrong.fetch(&req("canary-value")).await.unwrap_err();
        (err, bad)
    };
    assert_eq!(bad.kind(), ErrorKind::Unauthorized, "{bad}");
    assert!(bad.to_string().contains("AADSTS7000215"), "{bad}");
    let each: Vec<String> = err.iter().map(ToString::to_string).collect();
    let shown = format!("{each:?} {err:?} {bad} {bad:?}");
    assert!(shown.contains("canary-port"), "{shown}");
    let text = logs.text();
    assert!(!text.is_empty(), "TRACE logs were captured");
    for canary in [secret, value] {
        assert!(!shown.contains(canary), "{canary} in an error: {shown}");
        assert!(!text.contains(canary), "{canary} in the TRACE logs");
    }
    // The bearer tokens the double issued are not in the logs either.
    assert!(
        !text.contains("kv-token-"),
        "a bearer token in the TRACE logs"
    );
}

/// Review finding 4: a failed authentication (here the federated token rotated to one
/// Entra ID refuses) is no change of the watched secret (was: `Changed`, then the same
/// version again as a new `Value`); a new version after authentication recovers is one.
#[tokio::test]
async fn azure_keyvault_watch_ignores_failed_authentication() {
    let (kv, source, dir, file) = Kv::workload("fed-token-w", "fed-token-w").await;
    let source = source.with_watch_interval(Duration::from_millis(100));
    kv.double.set_secret("watched", "one");
    assert_eq!(
        source.fetch(&req("watched")).await.unwrap(),
        RawValue::from("one")
    );
    let mut changes = source.watch(vec![req("watched")]).unwrap();
    std::fs::write(&file, "fed-token-refused").unwrap();
    kv.double.revoke_tokens();
    // Several polls fail to authenticate: nothing to report.
    let quiet = tokio::time::timeout(Duration::from_millis(800), changes.next()).await;
    assert!(
        quiet.is_err(),
        "no change while authentication fails: {quiet:?}"
    );
    assert!(kv.double.token_requests() >= 2);
    // Authentication recovers, the version is the same: still nothing; a new one: a change.
    std::fs::write(&file, "fed-token-w").unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(500), changes.next()).await;
    assert!(quiet.is_err(), "the same version is no change: {quiet:?}");
    kv.double.set_secret("watched", "two");
    let c = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the watch goes on")
        .expect("no watch error");
    assert!(
        matches!(&c, Change::Value { index: 0, value, .. } if value == &RawValue::from("two")),
        "{c:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Review finding 8: the federated token file is read up to 64 KiB (was: whole, whatever
/// its size, and sent).
#[tokio::test]
async fn azure_keyvault_a_huge_federated_token_file_is_refused() {
    let kv = Kv::start().await;
    kv.double.set_secret("k", "v");
    let dir = std::env::temp_dir().join(unique("cm_azure_wi_big"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token");
    std::fs::write(&file, "x".repeat(1024 * 1024)).unwrap();
    let source = AzureKeyVaultSource::new(&kv.url)
        .with_workload_identity(kv.double.tenant(), kv.double.client_id(), &file)
        .with_authority_host(&kv.url)
        .with_tls(kv.tls());
    let e = source.fetch(&req("k")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("larger than 65536 bytes"), "{e}");
    assert_eq!(kv.double.token_requests(), 0, "nothing sent");
    std::fs::remove_dir_all(&dir).unwrap();
}
