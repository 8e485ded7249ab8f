//! Issue 36: `gcp_secrets` — Google Secret Manager, against the in-process API double
//! (`GcpSecretsDouble`, checked by the official Python client in `tests/clients/gcp_checks.py`).

use std::time::Duration;

use component_model::Revision;
use component_model::test_util::GcpSecretsDouble;
use component_model::{
    Access, AsyncAssign, Change, EnvSource, ErrorKind, FetchRequest, GcpSecretsSource, RawValue,
    SecretString, Source, Sources,
};
use component_model_tests::{CapturedLogs, capture, unique};
use futures::StreamExt;
use secrecy::ExposeSecret;

/// A THROWAWAY RSA key generated for these tests only (`openssl genpkey -algorithm RSA`):
/// it signs the service-account JWTs the double checks. It guards nothing.
const TEST_PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsiuSHpYjiPKX5\n\
uckSFdlAjMl/VCoYW5WQiuKxb7lJu9RR63w4fAXzJP6usNfmfCQZe2Lyqgv0zvRA\n\
cWIKD6SJKYavrJLiL38Q2rwxx6Yoc0Hl++Vh0XD+ETFBRQs1ctWb1BDsxtTdnYz6\n\
Oi46dMawrq7GRjnEZ3HNMMlPWLEPeYWcC/qaTfRQUGXPn9zif+BB03sQoeVerB3E\n\
GGmGjRB6po4UAscod5bgEDEYuj5FsNepc9r0vl1GLCWAM0vnxX9kIgQtv5KkvGPt\n\
AGHd5GERAF4HKle31u6PZ3RU1nm7AwD49v66xnlP2efmRVeMhWgB3neFW8BVIzud\n\
ZzzneMqPAgMBAAECggEAIvIglg6jWjrxXNJRlJ2jOk0pdGX9/p/x+2v9vPVFYFcw\n\
CgV5S9FmvRe1k3kSyUZEY3rXkBF7yXHvC2xLcIE5kGQ+OK9psnDvOeErc6Odlhy9\n\
8JAjpbuvOG4P/Um4GvOuqth5MxOUQmxqBLYq7cEACwHeOR85DPvskyP56d2rQthD\n\
YA0X/Z3Z9h9Vsu/OtPQnQ/9awCMLZXCJoN2htLTZCG38ve9jmYcPSYOAUr77K7w5\n\
suc6wfKOdWN9gm6CQj7OfBuK9oNBmGLJiiVg/d4/Zl3kYx7AF/+mfFGGqq+DMsRd\n\
Wdxz9rLh3tu9bcZEl6hm7TT4G47klousIjmLGmeaNQKBgQDVWRiKw/LeGV0iL3yt\n\
1cnRoLEdIrvZlez7n+Owrcy158K7ZdQSlM8qPFEVXsf9CujSxWVeKhyzPhMlya5D\n\
lPlEVhxXv4aqO77cF10lUWUmDZxG27X/TIRTZBZZDfJzv+SgYCfsiKOM5mm+Deou\n\
UQAv3P1D6K3w5J6Gc4vhqNRATQKBgQDPCWt0zK/IOuEFxLHpPyD/MAkdtItcK7n5\n\
EB0ucxTQi1RHjvICi1Uq/J99vF7b5Ner4YWULE1a15VU4kVVw39Zna/nqJHMJw/C\n\
AQiw1RFSKh9UPYhwFrK/9/JmdiExYUJOTxSGey1z3cXAajniezHtwPVF2NB8FZFR\n\
TzOsP8vESwKBgHXVyNVT1r9O2P65pa5Jpzdt/oTuGzzZLtPngpWh2LAbupVQb6p3\n\
oFheihY4jFK5hNBtEEjLD6D8Rw0W8HYJQQe6W9snQJSjfQ4IpXyoESrMV6VXUpUY\n\
SPnaDPHQ3zmJIhhmI4bkDRkUZhD/lHlSab0F3Kh2SiQD0X7HMNpJKjn9AoGAHDBB\n\
JC72RAHYP2vPeV1yBaypoRTC4LLHaGTMRFXA4MAHopKQ2s3Ts72fjYQHOlNHFgzn\n\
ngwGIDc4Cs2f+RRcE3yHxbfK2gv7dkOjxkfMSu6XQ2X5XKGKht6gb1joHgwK9hSI\n\
S+MbhioM0azk4rQ5URCzlGX3xN0+4t4wv+QTv08CgYEAhUn4X6TbrIz5bHjP88pO\n\
CYQbUyJoLbrLwlYP45aiVcMQl+g0wYr0bgYfBU4N41xehPa0bNAarwm0t/DUgzmZ\n\
KHLq0rp+38dC/SCb5fwTLpriESUXsBDcdkEbhb/ZZ5+ancNAn8e9ze99xr57LEDU\n\
+dkMf9ClUfcm5c8NeX8oTQw=\n\
-----END PRIVATE KEY-----";
/// Its public key (PKCS#1), which the double verifies the JWT signature with.
const TEST_PUBLIC_KEY: &str = "-----BEGIN RSA PUBLIC KEY-----\n\
MIIBCgKCAQEArIrkh6WI4jyl+bnJEhXZQIzJf1QqGFuVkIrisW+5SbvUUet8OHwF\n\
8yT+rrDX5nwkGXti8qoL9M70QHFiCg+kiSmGr6yS4i9/ENq8McemKHNB5fvlYdFw\n\
/hExQUULNXLVm9QQ7MbU3Z2M+jouOnTGsK6uxkY5xGdxzTDJT1ixD3mFnAv6mk30\n\
UFBlz5/c4n/gQdN7EKHlXqwdxBhpho0QeqaOFALHKHeW4BAxGLo+RbDXqXPa9L5d\n\
RiwlgDNL58V/ZCIELb+SpLxj7QBh3eRhEQBeBypXt9buj2d0VNZ5uwMA+Pb+usZ5\n\
T9nn5kVXjIVoAd53hVvAVSM7nWc853jKjwIDAQAB\n\
-----END RSA PUBLIC KEY-----";

const EMAIL: &str = "reader@cm-test.iam.gserviceaccount.com";

fn req(key: &str) -> FetchRequest {
    FetchRequest::for_key("gcp_secrets", key.to_owned())
}

/// A source on the double, no authentication, project `project`.
fn open(gcp: &GcpSecretsDouble, project: &str) -> GcpSecretsSource {
    GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_project(project)
        .without_auth()
}

fn service_account_json(gcp: &GcpSecretsDouble, project: &str) -> String {
    serde_json::json!({
        "type": "service_account",
        "project_id": project,
        "private_key_id": "test-key-1",
        "private_key": TEST_PRIVATE_KEY,
        "client_email": EMAIL,
        "client_id": "1234567890",
        "token_uri": gcp.token_uri(),
    })
    .to_string()
}

fn authorized_user_json(gcp: &GcpSecretsDouble, secret: &str, refresh: &str) -> String {
    serde_json::json!({
        "type": "authorized_user",
        "client_id": "cm-client.apps.googleusercontent.com",
        "client_secret": secret,
        "refresh_token": refresh,
        "quota_project_id": "quota-proj",
        "token_uri": gcp.token_uri(),
    })
    .to_string()
}

#[tokio::test]
async fn gcp_values_text_and_bytes_full_and_short_names_versions() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("proj").replace('_', "-");
    let s = unique("db");
    gcp.add_version(&p, &s, b"first");
    gcp.add_version(&p, &s, b"second");
    gcp.add_version(&p, "bin", &[0xff, 0x00, 0xfe]);
    let source = open(&gcp, &p);
    let full = |v: &str| req(&format!("projects/{p}/secrets/{s}/versions/{v}"));
    assert_eq!(
        source.fetch(&full("latest")).await.unwrap(),
        RawValue::from("second")
    );
    assert_eq!(
        source.fetch(&full("1")).await.unwrap(),
        RawValue::from("first")
    );
    assert_eq!(
        source
            .fetch(&req(&format!("projects/{p}/secrets/{s}")))
            .await
            .unwrap(),
        RawValue::from("second")
    );
    assert_eq!(
        source.fetch(&req(&s)).await.unwrap(),
        RawValue::from("second")
    );
    assert_eq!(
        source
            .fetch(&req(&s).with_param("version", "1"))
            .await
            .unwrap(),
        RawValue::from("first")
    );
    assert_eq!(
        source.fetch(&req("bin")).await.unwrap(),
        RawValue::Bytes(vec![0xff, 0x00, 0xfe])
    );
    // The field's `project` wins over the source's.
    gcp.add_version("other-proj", &s, b"elsewhere");
    assert_eq!(
        source
            .fetch(&req(&s).with_param("project", "other-proj"))
            .await
            .unwrap(),
        RawValue::from("elsewhere")
    );
    // Without a project: a configuration error naming the secret.
    let e = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .without_auth()
        .fetch(&req(&s))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(
        e.to_string().contains(&s) && e.to_string().contains("GOOGLE_CLOUD_PROJECT"),
        "{e}"
    );
}

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(fetch_from = "gcp_secrets", key = "gcp-db-password")]
    password: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "gcp-port", version = "1")]
    port: u16,
    #[component(fetch_from = "gcp_secrets", key = "gcp-missing", fallback = "fb")]
    missing: String,
    #[component(fetch_from = "gcp_secrets", key = "gcp-absent")]
    absent: Option<String>,
}

#[tokio::test]
async fn gcp_a_struct_missing_secrets_fall_back_and_versions_are_noted() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("app").replace('_', "-");
    gcp.add_version(&p, "gcp-db-password", b"pw-1");
    gcp.add_version(&p, "gcp-port", b"8080");
    gcp.add_version(&p, "gcp-port", b"9090");
    let sources = Sources::new().register("gcp_secrets", open(&gcp, &p));
    let report = App::fetch_report_with(&sources).await;
    let app = report.result.as_ref().unwrap();
    assert_eq!(app.password.expose_secret(), "pw-1");
    assert_eq!(app.port, 8080, "version 1, not the latest");
    assert_eq!(app.missing, "fb");
    assert_eq!(app.absent, None);
    assert_eq!(gcp.access_requests(), 4, "one GET per secret");
    // The report notes the version each value was read at.
    let revision = |field: &str| {
        report
            .fields
            .iter()
            .find(|f| f.path.ends_with(field))
            .and_then(|f| f.revision.clone())
    };
    assert_eq!(revision("port"), Some(Revision::Index(1)));
    assert_eq!(revision("password"), Some(Revision::Index(1)));
    gcp.add_version(&p, "gcp-db-password", b"pw-2");
    let report = App::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().unwrap().password.expose_secret(),
        "pw-2"
    );
    assert_eq!(
        report
            .fields
            .iter()
            .find(|f| f.path.ends_with("password"))
            .and_then(|f| f.revision.clone()),
        Some(Revision::Index(2))
    );
}

/// Two members of one JSON secret, and a member it lacks.
#[derive(AsyncAssign, Debug)]
struct Db {
    #[component(fetch_from = "gcp_secrets", key = "gcp-db", field = "user")]
    user: String,
    #[component(fetch_from = "gcp_secrets", key = "gcp-db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "gcp-db", field = "port")]
    port: u16,
}

#[tokio::test]
async fn gcp_field_takes_members_of_a_json_secret_from_one_read() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("db").replace('_', "-");
    gcp.add_version(
        &p,
        "gcp-db",
        br#"{"user":"app","password":"Canary-Json-Member-9d1","port":5432}"#,
    );
    let sources = Sources::new().register("gcp_secrets", open(&gcp, &p));
    let db = Db::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(db.user, "app");
    assert_eq!(db.password.expose_secret(), "Canary-Json-Member-9d1");
    assert_eq!(db.port, 5432);
    assert_eq!(gcp.access_requests(), 1, "one read for the three members");
    // A member the secret lacks: not found, naming the field, the source and the key,
    // never the secret's text.
    gcp.add_version(
        &p,
        "gcp-db",
        br#"{"user":"app","password":"Canary-Json-Member-9d1"}"#,
    );
    let errors = Db::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{text}");
    assert!(
        text.contains("Db.port") && text.contains("gcp-db"),
        "{text}"
    );
    assert!(
        !format!("{text} {errors:?}").contains("Canary-Json"),
        "{text}"
    );
}

#[tokio::test]
async fn gcp_a_disabled_version_is_a_clear_error_not_a_fallback() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("dis").replace('_', "-");
    gcp.add_version(&p, "s", b"one");
    gcp.add_version(&p, "s", b"two-canary-value");
    gcp.disable(&p, "s", 2);
    let source = open(&gcp, &p);
    // `latest` is the newest version, disabled: Secret Manager refuses it.
    let e = source.fetch(&req("s")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("FAILED_PRECONDITION") && text.contains("DISABLED"),
        "{text}"
    );
    assert!(
        text.contains(&format!("projects/{p}/secrets/s/versions/latest")),
        "{text}"
    );
    assert!(!text.contains("canary"), "{text}");
    assert_eq!(
        source
            .fetch(&req("s").with_param("version", "1"))
            .await
            .unwrap(),
        RawValue::from("one")
    );
    gcp.enable(&p, "s", 2);
    assert_eq!(
        source.fetch(&req("s")).await.unwrap(),
        RawValue::from("two-canary-value")
    );
}

#[tokio::test]
async fn gcp_a_crc32c_mismatch_is_an_error_naming_the_secret_never_the_data() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("crc").replace('_', "-");
    gcp.add_version(&p, "s", b"CANARY-crc-payload");
    let source = open(&gcp, &p);
    assert_eq!(
        source.fetch(&req("s")).await.unwrap(),
        RawValue::from("CANARY-crc-payload")
    );
    gcp.set_corrupt_crc(&p, "s");
    let e = source.fetch(&req("s")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("CRC32C") && text.contains(&format!("projects/{p}/secrets/s")),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");
}

#[tokio::test]
async fn gcp_errors_name_the_secret_with_googles_status_and_message() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("err").replace('_', "-");
    gcp.add_version(&p, "denied", b"x");
    gcp.deny(&p, "denied");
    let source = open(&gcp, &p);
    let e = source.fetch(&req("nope")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.message().unwrap(),
        format!(
            "Secret Manager answered HTTP 404 NOT_FOUND for secret `projects/{p}/secrets/nope/versions/latest`: Secret [projects/{p}/secrets/nope] not found or has no versions."
        )
    );
    let e = source.fetch(&req("denied")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(
        e.to_string().contains("PERMISSION_DENIED")
            && e.to_string().contains("secretmanager.versions.access"),
        "{e}"
    );
    // A bad key: configuration, before any request.
    let e = source.fetch(&req("a/b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    // Unauthenticated: a token the double does not know, never shown.
    let locked = GcpSecretsDouble::start_authenticated().await;
    let e = GcpSecretsSource::new()
        .with_endpoint(locked.url())
        .with_project("p")
        .with_token("ya29.CANARY-static-token")
        .fetch(&req("s"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("UNAUTHENTICATED"), "{e}");
    assert!(!format!("{e} {e:?}").contains("CANARY"), "{e:?}");
}

/// 25 secrets with a service account key: ONE token request (the JWT's RS256 signature
/// checked by the double), then 25 `:access` GETs, concurrently.
#[tokio::test]
async fn gcp_service_account_25_secrets_one_token_request_and_25_gets() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.service_account(EMAIL, TEST_PUBLIC_KEY);
    let p = unique("sa").replace('_', "-");
    for i in 0..25 {
        gcp.add_version(&p, &format!("s{i}"), format!("value-{i}").as_bytes());
    }
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_credentials_json(service_account_json(&gcp, &p));
    let requests: Vec<FetchRequest> = (0..25).map(|i| req(&format!("s{i}"))).collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let started = std::time::Instant::now();
    let answers = source.fetch_many(&refs).await;
    let elapsed = started.elapsed();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.as_ref().unwrap(), &RawValue::from(format!("value-{i}")));
    }
    assert_eq!(gcp.token_requests(), 1, "one token for every secret");
    assert_eq!(
        gcp.access_requests(),
        25,
        "one GET per secret (no batch API)"
    );
    eprintln!(
        "gcp_secrets: 25 secrets = {} token request + {} GETs in {elapsed:?}",
        gcp.token_requests(),
        gcp.access_requests()
    );
    // The token is kept: a second fetch asks for none.
    source.fetch(&requests[0]).await.unwrap();
    assert_eq!(gcp.token_requests(), 1);
    // The request carried the JWT grant.
    let token_request = gcp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    let body = String::from_utf8_lossy(&token_request.body).into_owned();
    assert!(
        body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{body}"
    );
    // The double checks the signature: the same assertion with other claims is refused,
    // the original accepted.
    let assertion = body.split("assertion=").nth(1).unwrap().to_owned();
    let parts: Vec<&str> = assertion.split('.').collect();
    let post = |jwt: String| {
        let uri = gcp.token_uri();
        async move {
            let form = format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={jwt}"
            );
            let r = reqwest::Client::new()
                .post(uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, _) = post(assertion.clone()).await;
    assert_eq!(status, 200, "the source's own assertion");
    // base64url of claims naming another audience and times, under the same signature.
    let other_claims = "eyJpc3MiOiJyZWFkZXJAY20tdGVzdC5pYW0uZ3NlcnZpY2VhY2NvdW50LmNvbSIsInNjb3BlIjoiaHR0cHM6Ly93d3cuZ29vZ2xlYXBpcy5jb20vYXV0aC9jbG91ZC1wbGF0Zm9ybSIsImF1ZCI6IngiLCJpYXQiOjEsImV4cCI6Mn0";
    let (status, text) = post(format!("{}.{other_claims}.{}", parts[0], parts[2])).await;
    assert_eq!(status, 400);
    assert!(text.contains("Invalid JWT Signature"), "{text}");
}

#[tokio::test]
async fn gcp_a_service_account_the_token_endpoint_refuses_is_unauthorized_naming_it() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    // No account registered: the double refuses the assertion (as Google does an unknown one).
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_credentials_json(service_account_json(&gcp, "p"));
    let e = source.fetch(&req("s")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    assert!(
        text.contains(EMAIL) && text.contains("invalid_grant"),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    // A key that is no key: a configuration error, no request.
    let bad = serde_json::json!({"type": "service_account", "client_email": EMAIL, "private_key": "not a key"});
    let e = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_project("p")
        .with_credentials_json(bad.to_string())
        .fetch(&req("s"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("private_key"), "{e}");
    // Workload identity federation: not supported, said clearly.
    let e = GcpSecretsSource::new()
        .with_project("p")
        .with_credentials_json(r#"{"type": "external_account", "audience": "x"}"#)
        .fetch(&req("s"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
}

#[tokio::test]
async fn gcp_authorized_user_refresh_token_and_its_quota_project() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.authorized_user(
        "cm-client.apps.googleusercontent.com",
        "cs-1",
        "1//refresh/tok+en",
    );
    let p = unique("user").replace('_', "-");
    gcp.add_version(&p, "s", b"from-user");
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_credentials_json(authorized_user_json(&gcp, "cs-1", "1//refresh/tok+en"));
    // `quota_project_id` is the project billed (x-goog-user-project, as google-auth
    // sends it), not the secrets' project.
    let e = source.fetch(&req("s")).await.unwrap_err();
    assert!(e.to_string().contains("names no project"), "{e}");
    assert_eq!(
        source
            .fetch(&req(&format!("projects/{p}/secrets/s")))
            .await
            .unwrap(),
        RawValue::from("from-user")
    );
    assert_eq!(gcp.token_requests(), 1);
    let quota: Vec<_> = gcp
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(":access"))
        .map(|r| r.header("x-goog-user-project").map(str::to_owned))
        .collect();
    assert_eq!(quota, [Some("quota-proj".to_owned())]);
    // GOOGLE_CLOUD_QUOTA_PROJECT (or with_quota_project) wins over the file's.
    gcp.clear_requests();
    let dir = std::env::temp_dir().join(unique("cm_gcp_quota"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("adc.json");
    std::fs::write(
        &file,
        authorized_user_json(&gcp, "cs-1", "1//refresh/tok+en"),
    )
    .unwrap();
    let env = GcpSecretsSource::from_env_source(&EnvSource::from_map([
        ("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap()),
        ("GOOGLE_CLOUD_PROJECT", p.as_str()),
        ("GOOGLE_CLOUD_QUOTA_PROJECT", "billed"),
        ("GCP_SECRETS_ENDPOINT", gcp.url().as_str()),
    ]))
    .unwrap();
    assert_eq!(
        env.fetch(&req("s")).await.unwrap(),
        RawValue::from("from-user")
    );
    let r = gcp.requests();
    let access = r.iter().find(|r| r.path.ends_with(":access")).unwrap();
    assert_eq!(access.header("x-goog-user-project"), Some("billed"));
    let _ = std::fs::remove_dir_all(&dir);
    // A second credentials file replaces the first one's project (it kept it).
    let replaced = GcpSecretsSource::new()
        .with_credentials_json(service_account_json(&gcp, "sa-project"))
        .with_credentials_json(authorized_user_json(&gcp, "cs-1", "x"));
    assert!(
        !replaced.location().unwrap().contains("sa-project"),
        "{replaced:?}"
    );
    let wrong = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_credentials_json(authorized_user_json(&gcp, "cs-1", "CANARY-refresh"));
    let e = wrong
        .fetch(&req(&format!("projects/{p}/secrets/s")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    assert!(!format!("{e} {e:?} {wrong:?}").contains("CANARY"), "{e:?}");
}

#[tokio::test]
async fn gcp_metadata_server_gives_the_token_and_the_project() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.set_metadata_project("meta-proj");
    gcp.add_version("meta-proj", "s", b"from-metadata");
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_metadata_host(gcp.address());
    assert_eq!(
        source.fetch(&req("s")).await.unwrap(),
        RawValue::from("from-metadata")
    );
    assert_eq!(gcp.token_requests(), 1);
    let token_request = gcp
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/service-accounts/default/token"))
        .unwrap();
    assert_eq!(token_request.header("metadata-flavor"), Some("Google"));
    // No metadata server (nothing listens): unreachable, quickly, saying what to set.
    let started = std::time::Instant::now();
    let e = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_project("p")
        .with_metadata_host("127.0.0.1:1")
        .fetch(&req("s"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn gcp_a_token_is_renewed_before_it_expires_and_once_on_a_401() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.service_account(EMAIL, TEST_PUBLIC_KEY);
    let p = unique("ttl").replace('_', "-");
    gcp.add_version(&p, "s", b"v");
    let source = GcpSecretsSource::new()
        .with_endpoint(gcp.url())
        .with_credentials_json(service_account_json(&gcp, &p));
    source.fetch(&req("s")).await.unwrap();
    assert_eq!(gcp.token_requests(), 1);
    // Revoked: the API answers 401, the source asks for a new token once and reads.
    gcp.revoke_issued_tokens();
    source.fetch(&req("s")).await.unwrap();
    assert_eq!(gcp.token_requests(), 2, "one new token after the 401");
    assert_eq!(gcp.access_requests(), 3, "the refused GET and its retry");
    // Short-lived tokens are renewed before they expire (no 401 needed).
    gcp.set_token_ttl(Duration::from_secs(1));
    gcp.revoke_issued_tokens();
    source.fetch(&req("s")).await.unwrap(); // 401, new 1 s token
    assert_eq!(gcp.token_requests(), 3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before = gcp.access_requests();
    source.fetch(&req("s")).await.unwrap();
    assert_eq!(gcp.token_requests(), 4, "renewed past half its life");
    assert_eq!(gcp.access_requests(), before + 1, "no 401 on the way");
    // Concurrent fetches share one renewal (single flight).
    gcp.revoke_issued_tokens();
    gcp.set_token_ttl(Duration::from_secs(3600));
    let rs: Vec<FetchRequest> = (0..8).map(|_| req("s")).collect();
    let many = futures::future::join_all(rs.iter().map(|r| source.fetch(r))).await;
    assert!(many.iter().all(Result::is_ok));
    assert_eq!(
        gcp.token_requests(),
        5,
        "one renewal for eight refused requests"
    );
}

#[tokio::test]
async fn gcp_watch_sees_a_new_version() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("watch").replace('_', "-");
    gcp.add_version(&p, "a", b"1");
    gcp.add_version(&p, "b", b"1");
    let source = open(&gcp, &p).with_watch_interval(Duration::from_millis(100));
    let mut changes = source.watch(vec![req("a"), req("b")]).unwrap();
    let next = tokio::spawn(async move {
        let c = changes.next().await;
        (c, changes)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gcp.add_version(&p, "b", b"2");
    let (c, _changes) = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("a change within 5 s")
        .unwrap();
    assert_eq!(c.unwrap().unwrap(), Change::Changed(vec![1]));
    // Polling reads metadata, never a payload.
    assert_eq!(gcp.access_requests(), 0);
    assert!(
        gcp.requests()
            .iter()
            .all(|r| r.path.ends_with("/versions/latest"))
    );
}

#[tokio::test]
async fn gcp_preflight_rows() {
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("pre").replace('_', "-");
    gcp.add_version(&p, "ok", b"CANARY-preflight");
    gcp.add_version(&p, "off", b"x");
    gcp.disable(&p, "off", 1);
    gcp.add_version(&p, "gone", b"x");
    gcp.add_version(&p, "denied", b"x");
    gcp.deny(&p, "denied");
    let source = open(&gcp, &p);
    let logs = CapturedLogs::default();
    let probes = {
        let _g = capture(&logs);
        source
            .preflight(vec![
                req("ok"),
                req("off"),
                req("missing"),
                req("denied"),
                req("a/b"),
            ])
            .await
    };
    let access: Vec<Access> = probes.iter().map(|p| p.access).collect();
    assert_eq!(
        access,
        [
            Access::Readable,
            Access::Invalid,
            Access::Missing,
            Access::Denied,
            Access::Invalid
        ],
        "{probes:?}"
    );
    assert_eq!(probes[0].detail.as_deref(), Some("version 1 enabled"));
    assert!(
        probes[1].detail.as_deref().unwrap().contains("DISABLED"),
        "{probes:?}"
    );
    // No payload read: `:access` is tried only where the metadata was refused (and
    // is refused too).
    assert!(
        gcp.requests()
            .iter()
            .filter(|r| r.path.ends_with(":access"))
            .all(|r| r.path.contains("/secrets/denied/")),
        "no payload read"
    );
    assert!(!format!("{probes:?}").contains("CANARY") && !logs.text().contains("CANARY"));
    // Credentials refused: unauthenticated; nothing listening: unreachable.
    let locked = GcpSecretsDouble::start_authenticated().await;
    let probes = GcpSecretsSource::new()
        .with_endpoint(locked.url())
        .with_project("p")
        .with_token("wrong")
        .preflight(vec![req("s")])
        .await;
    assert_eq!(probes[0].access, Access::Unauthenticated, "{probes:?}");
    let probes = GcpSecretsSource::new()
        .with_endpoint("http://127.0.0.1:1")
        .with_project("p")
        .without_auth()
        .preflight(vec![req("s")])
        .await;
    assert_eq!(probes[0].access, Access::Unreachable, "{probes:?}");
}

#[tokio::test]
async fn gcp_accessor_only_preflight_is_readable_and_the_watch_polls_with_access() {
    // roles/secretmanager.secretAccessor: `versions.access` only, no `versions.get`.
    let gcp = GcpSecretsDouble::start().await;
    let p = unique("acc").replace('_', "-");
    gcp.add_version(&p, "a", b"CANARY-acc-1");
    gcp.add_version(&p, "b", b"b1");
    for s in ["a", "b"] {
        gcp.deny_permission(&p, s, "secretmanager.versions.get");
    }
    gcp.add_version(&p, "none", b"x");
    gcp.deny(&p, "none");
    let source = open(&gcp, &p).with_watch_interval(Duration::from_millis(100));
    let logs = CapturedLogs::default();
    let probes = {
        let _g = capture(&logs);
        source.preflight(vec![req("a"), req("none")]).await
    };
    assert_eq!(probes[0].access, Access::Readable, "{probes:?}");
    assert!(
        probes[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("roles/secretmanager.viewer"),
        "{probes:?}"
    );
    assert_eq!(probes[1].access, Access::Denied, "{probes:?}");
    // The watch falls back to `:access` and sees a new version.
    let mut changes = source.watch(vec![req("a"), req("b")]).unwrap();
    let next = tokio::spawn(async move {
        let c = changes.next().await;
        (c, changes)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gcp.add_version(&p, "a", b"CANARY-acc-2");
    let (c, _changes) = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("a change within 5 s")
        .unwrap();
    assert_eq!(c.unwrap().unwrap(), Change::Changed(vec![0]));
    assert!(!format!("{probes:?}").contains("CANARY") && !logs.text().contains("CANARY"));
    // Neither may be read: the watch says so (once) rather than polling in silence.
    let mut changes = source.watch(vec![req("none")]).unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .expect("an answer within 5 s")
        .unwrap();
    let e = first.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("PERMISSION_DENIED"), "{e}");
}

#[derive(AsyncAssign, Debug)]
struct FromEnv {
    #[component(fetch_from = "gcp_secrets", key = "env-secret")]
    value: String,
}

#[tokio::test]
async fn gcp_from_env_registers_with_a_credentials_file_and_the_project() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.authorized_user("cm-client.apps.googleusercontent.com", "cs-2", "rt-2");
    let p = unique("env").replace('_', "-");
    gcp.add_version(&p, "env-secret", b"from-env");
    let dir = std::env::temp_dir().join(unique("cm_gcp_env"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("adc.json");
    std::fs::write(&file, authorized_user_json(&gcp, "cs-2", "rt-2")).unwrap();
    let env = EnvSource::from_map([
        ("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap()),
        ("GOOGLE_CLOUD_PROJECT", p.as_str()),
        ("GCP_SECRETS_ENDPOINT", gcp.url().as_str()),
    ]);
    let sources = Sources::from_env_source(env);
    assert!(sources.contains("gcp_secrets"));
    let got = FromEnv::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        got.value, "from-env",
        "GOOGLE_CLOUD_PROJECT wins over quota_project_id"
    );
    // Neither variable: not registered.
    assert!(!Sources::from_env_source(EnvSource::from_map([("X", "1")])).contains("gcp_secrets"));
    // GCLOUD_PROJECT alone registers it.
    let s =
        GcpSecretsSource::from_env_source(&EnvSource::from_map([("GCLOUD_PROJECT", "g")])).unwrap();
    assert!(s.location().unwrap().contains("project g"));
    // A credentials file that does not exist: every fetch says so.
    let s = GcpSecretsSource::from_env_source(&EnvSource::from_map([(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "/nonexistent/cm-adc.json",
    )]))
    .unwrap();
    let e = s.fetch(&req("projects/p/secrets/s")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("/nonexistent/cm-adc.json"), "{e}");
    // ... before looking for a project (it said "names no project").
    let e = s.fetch(&req("s")).await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cm-adc.json"), "{e}");
    // Other credentials replace the broken file.
    let plain = GcpSecretsDouble::start().await;
    plain.add_version("p", "s", b"anon");
    let s = s.with_endpoint(plain.url()).without_auth();
    assert_eq!(
        s.fetch(&req("projects/p/secrets/s")).await.unwrap(),
        RawValue::from("anon")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn gcp_from_env_reads_gclouds_application_default_credentials() {
    // `gcloud auth application-default login` writes
    // `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
    // `~/.config/gcloud/...`: read when no GOOGLE_APPLICATION_CREDENTIALS, and a reason
    // to register.
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.authorized_user("cm-client.apps.googleusercontent.com", "cs-3", "rt-3");
    let p = unique("adc").replace('_', "-");
    gcp.add_version(&p, "env-secret", b"from-gcloud");
    let home = std::env::temp_dir().join(unique("cm_gcp_home"));
    let gcloud = home.join(".config").join("gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        authorized_user_json(&gcp, "cs-3", "rt-3"),
    )
    .unwrap();
    let url = gcp.url();
    for env in [
        vec![("HOME", home.to_str().unwrap())],
        vec![
            ("HOME", "/nonexistent/cm-home"),
            ("CLOUDSDK_CONFIG", gcloud.to_str().unwrap()),
        ],
    ] {
        let mut env = env;
        env.push(("GCP_SECRETS_ENDPOINT", url.as_str()));
        let sources = Sources::from_env_source(EnvSource::from_map(env.clone()));
        assert!(sources.contains("gcp_secrets"), "{env:?}");
        let with_project = Sources::new().register(
            "gcp_secrets",
            GcpSecretsSource::from_env_source(&EnvSource::from_map(env.clone()))
                .unwrap()
                .with_project(&p),
        );
        let got = FromEnv::fetch_all_components_with(&with_project)
            .await
            .unwrap();
        assert_eq!(got.value, "from-gcloud", "{env:?}");
    }
    assert!(gcp.token_requests() >= 1);
    // No file there: not registered.
    assert!(
        !Sources::from_env_source(EnvSource::from_map([("HOME", "/nonexistent/cm-home")]))
            .contains("gcp_secrets")
    );
    let _ = std::fs::remove_dir_all(&home);
}

/// The private key, the access token and the value never appear in errors, Debug or the
/// TRACE logs of every crate (reqwest, hyper, rustls).
#[tokio::test]
async fn gcp_canaries_private_key_token_and_value_are_absent_at_trace() {
    let gcp = GcpSecretsDouble::start_authenticated().await;
    gcp.service_account(EMAIL, TEST_PUBLIC_KEY);
    let p = unique("canary").replace('_', "-");
    let value = "CANARY-gcp-value-8d2c";
    gcp.add_version(&p, "s", value.as_bytes());
    gcp.set_corrupt_crc(&p, "bad");
    gcp.add_version(&p, "bad", value.as_bytes());
    let logs = CapturedLogs::default();
    let (debug, errors) = {
        let _g = capture(&logs);
        let source = GcpSecretsSource::new()
            .with_endpoint(gcp.url())
            .with_credentials_json(service_account_json(&gcp, &p));
        let v = source.fetch(&req("s")).await.unwrap();
        assert_eq!(v, RawValue::from(value));
        let e1 = source.fetch(&req("bad")).await.unwrap_err();
        gcp.revoke_issued_tokens();
        source.fetch(&req("s")).await.unwrap();
        let e2 = source.fetch(&req("missing")).await.unwrap_err();
        (
            format!("{source:?} {v:?}"),
            format!("{e1} {e1:?} {e2} {e2:?}"),
        )
    };
    let text = logs.text();
    assert!(!text.is_empty(), "TRACE logs were captured");
    // Every issued token ("ya29.double-token-N-...").
    let tokens: Vec<String> = gcp
        .requests()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|h| h.trim_start_matches("Bearer ").to_owned())
        })
        .collect();
    assert!(!tokens.is_empty());
    // A line of the private key's base64 body (any of them would do).
    let key_line = TEST_PRIVATE_KEY.lines().nth(5).unwrap();
    let assertion = gcp
        .requests()
        .iter()
        .find(|r| r.path == "/token")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap();
    let jwt_signature = assertion.rsplit('.').next().unwrap().to_owned();
    for (what, canary) in [
        ("value", value),
        ("private key", key_line),
        ("JWT signature", &jwt_signature),
    ]
    .into_iter()
    .chain(tokens.iter().map(|t| ("token", t.as_str())))
    {
        assert!(!text.contains(canary), "the {what} is in the TRACE logs");
        assert!(!debug.contains(canary), "the {what} is in Debug: {debug}");
        assert!(
            !errors.contains(canary),
            "the {what} is in an error: {errors}"
        );
    }
}
