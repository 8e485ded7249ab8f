//! The `aws_secrets` and `aws_ssm` backends (issue 36) against moto in server mode: the
//! shared one of `scripts/services.sh` (127.0.0.1:5000), and private `moto_server`
//! processes this file starts on free ports with IAM enforced
//! (`INITIAL_NO_AUTH_ACTION_COUNT`), where signatures are checked and policies apply.
//!
//! Requests are counted by a TCP proxy in front of moto that counts the `x-amz-target`
//! headers it forwards. Test data is written with plain HTTP calls (no library code);
//! every test uses names of its own and deletes them, also when it panics (a [`Cleanup`]
//! guard). An unreachable moto skips the test (fails under `CM_REQUIRE_SERVICES=1`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use component_model::{
    Access, AsyncAssign, AwsSecretsSource, AwsSsmSource, Change, EnvSource, ErrorKind,
    FetchRequest, RawValue, Source, Sources,
};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use futures::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SHARED: &str = "127.0.0.1:5000";
const REGION: &str = "us-east-1";

// ---------------------------------------------------------------------------------------
// Helpers: a plain moto client (std TCP, no library code), a counting proxy, cleanup.

/// One request to moto at `addr`: `X-Amz-Target` JSON, or an IAM/STS query (`target`
/// empty, `body` form-encoded). moto reads the region and the service from the
/// `Authorization` header's credential scope; it checks nothing else unless IAM is on.
fn moto_raw(addr: &str, service: &str, target: &str, body: &str) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDTESTSETUP/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"
    );
    let (ctype, target_line) = if target.is_empty() {
        ("application/x-www-form-urlencoded", String::new())
    } else {
        (
            "application/x-amz-json-1.1",
            format!("X-Amz-Target: {target}\r\n"),
        )
    };
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\n{target_line}Authorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:.200}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // moto answers with Content-Length (no chunking) and closes.
    Ok((status, body))
}

fn sm(addr: &str, op: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, text) = moto_raw(
        addr,
        "secretsmanager",
        &format!("secretsmanager.{op}"),
        &body.to_string(),
    )
    .unwrap();
    assert!(status < 300, "{op}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_default()
}

fn ssm(addr: &str, op: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, text) =
        moto_raw(addr, "ssm", &format!("AmazonSSM.{op}"), &body.to_string()).unwrap();
    assert!(status < 300, "{op}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_default()
}

fn create_secret(addr: &str, name: &str, value: &str) -> String {
    let v = sm(
        addr,
        "CreateSecret",
        serde_json::json!({"Name": name, "SecretString": value}),
    );
    v["VersionId"].as_str().unwrap().to_owned()
}

fn put_param(addr: &str, name: &str, value: &str, kind: &str) -> u64 {
    let v = ssm(
        addr,
        "PutParameter",
        serde_json::json!({"Name": name, "Value": value, "Type": kind, "Overwrite": true}),
    );
    v["Version"].as_u64().unwrap()
}

/// The shared moto, or `None` (skipped) when it is not reachable.
fn shared() -> Option<&'static str> {
    match moto_raw(SHARED, "secretsmanager", "secretsmanager.ListSecrets", "{}") {
        Ok((200, _)) => Some(SHARED),
        Ok((status, body)) => {
            skip("moto", format!("HTTP {status}: {body:.200}"));
            None
        }
        Err(e) => {
            skip("moto", e);
            None
        }
    }
}

/// Deletes the secrets and parameters it names when dropped (a panicking test too).
struct Cleanup {
    addr: String,
    secrets: Vec<String>,
    params: Vec<String>,
}

impl Cleanup {
    fn new(addr: &str) -> Cleanup {
        Cleanup {
            addr: addr.to_owned(),
            secrets: Vec::new(),
            params: Vec::new(),
        }
    }
    fn secret(&mut self, addr_name: &str) {
        self.secrets.push(addr_name.to_owned());
    }
    fn param(&mut self, name: &str) {
        self.params.push(name.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for s in &self.secrets {
            let body = serde_json::json!({"SecretId": s, "ForceDeleteWithoutRecovery": true});
            let _ = moto_raw(
                &self.addr,
                "secretsmanager",
                "secretsmanager.DeleteSecret",
                &body.to_string(),
            );
        }
        for chunk in self.params.chunks(10) {
            let body = serde_json::json!({ "Names": chunk });
            let _ = moto_raw(
                &self.addr,
                "ssm",
                "AmazonSSM.DeleteParameters",
                &body.to_string(),
            );
        }
    }
}

/// A TCP proxy in front of moto that keeps what clients sent, to count requests by their
/// `x-amz-target`.
struct Proxy {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut dr, mut dw) = down.split();
                    let (mut ur, mut uw) = up.split();
                    let to_up = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match dr.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            log.lock().unwrap().extend_from_slice(&buf[..n]);
                            if uw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = uw.shutdown().await;
                    };
                    let to_down = async {
                        let _ = tokio::io::copy(&mut ur, &mut dw).await;
                        let _ = dw.shutdown().await;
                    };
                    tokio::join!(to_up, to_down);
                });
            }
        });
        Proxy { url, seen }
    }

    /// How many requests of `target` (`secretsmanager.BatchGetSecretValue`) went through.
    fn count(&self, target: &str) -> usize {
        let needle = format!("x-amz-target: {target}\r\n").to_ascii_lowercase();
        let seen = self.seen.lock().unwrap().to_ascii_lowercase();
        seen.windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    }

    fn clear(&self) {
        self.seen.lock().unwrap().clear();
    }
}

fn secrets_at(url: &str) -> AwsSecretsSource {
    AwsSecretsSource::new(REGION)
        .with_endpoint(url)
        .with_credentials("AKIDTESTREADER", "test-secret-key", None)
}

fn ssm_at(url: &str) -> AwsSsmSource {
    AwsSsmSource::new(REGION)
        .with_endpoint(url)
        .with_credentials("AKIDTESTREADER", "test-secret-key", None)
}

fn text(v: &RawValue) -> &str {
    match v {
        RawValue::Text(t) => t,
        other => panic!("not text: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Secrets Manager

#[derive(Deserialize, Debug, PartialEq)]
struct Db {
    user: String,
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct App {
    #[component(fetch_from = "aws_secrets", key = "${P}/token")]
    token: String,
    #[component(fetch_from = "aws_secrets", key = "${P}/db", field = "password")]
    password: String,
    #[component(fetch_from = "aws_secrets", key = "${P}/db", field = "user")]
    user: String,
    #[component(fetch_from = "aws_secrets", key = "${P}/db")]
    db: Db,
    #[component(fetch_from = "aws_secrets", key = "${P}/absent")]
    absent: Option<String>,
    #[component(fetch_from = "aws_secrets", key = "${P}/absent_too", fallback = "7")]
    with_fallback: u32,
}

#[tokio::test]
async fn aws_secrets_values_json_members_and_missing_names_in_one_batch() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let token_version = create_secret(moto, &format!("{p}/token"), "tok-123");
    create_secret(
        moto,
        &format!("{p}/db"),
        r#"{"user": "app", "password": "pa55", "port": 5432}"#,
    );
    clean.secret(&format!("{p}/token"));
    clean.secret(&format!("{p}/db"));
    let proxy = Proxy::start(moto).await;
    let sources = Sources::new()
        .register("aws_secrets", secrets_at(&proxy.url))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let report = App::fetch_report_with(&sources).await;
    let app = report.result.as_ref().unwrap();
    assert_eq!(app.token, "tok-123");
    assert_eq!((app.user.as_str(), app.password.as_str()), ("app", "pa55"));
    assert_eq!(
        app.db,
        Db {
            user: "app".into(),
            port: 5432
        }
    );
    assert_eq!(app.absent, None);
    assert_eq!(app.with_fallback, 7);
    assert_eq!(
        (
            proxy.count("secretsmanager.BatchGetSecretValue"),
            proxy.count("secretsmanager.GetSecretValue")
        ),
        (1, 0),
        "four secrets, one batch"
    );
    // The report carries the VersionId read.
    let token = report
        .fields
        .iter()
        .find(|f| f.path.ends_with("token"))
        .expect("token in the report");
    let hex: String = token_version.chars().filter(|c| *c != '-').collect();
    assert_eq!(token.revision.as_ref().map(|r| r.to_string()), Some(hex));
}

#[tokio::test]
async fn aws_secrets_binary_stages_arns_and_errors_naming_the_key() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let bin = format!("{p}/bin");
    let created = sm(
        moto,
        "CreateSecret",
        serde_json::json!({"Name": bin, "SecretBinary": "AAEC/w=="}),
    );
    clean.secret(&bin);
    let arn = created["ARN"].as_str().unwrap().to_owned();
    let rotated = format!("{p}/rotated");
    create_secret(moto, &rotated, "old");
    clean.secret(&rotated);
    sm(
        moto,
        "PutSecretValue",
        serde_json::json!({"SecretId": rotated, "SecretString": "new"}),
    );
    let source = secrets_at(&format!("http://{moto}"));
    let by_arn = FetchRequest::for_key("aws_secrets", arn.clone());
    let binary = FetchRequest::for_key("aws_secrets", bin.clone());
    let current = FetchRequest::for_key("aws_secrets", rotated.clone());
    let previous = FetchRequest::for_key("aws_secrets", rotated.clone())
        .with_param("version_stage", "AWSPREVIOUS");
    let missing = FetchRequest::for_key("aws_secrets", format!("{p}/nope"));
    let answers = source
        .fetch_many(&[&by_arn, &binary, &current, &previous, &missing])
        .await;
    assert_eq!(
        answers[0].as_ref().unwrap(),
        &RawValue::Bytes(vec![0, 1, 2, 255])
    );
    assert_eq!(
        answers[1].as_ref().unwrap(),
        &RawValue::Bytes(vec![0, 1, 2, 255])
    );
    assert_eq!(text(answers[2].as_ref().unwrap()), "new");
    assert_eq!(text(answers[3].as_ref().unwrap()), "old");
    let e = answers[4].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{p}/nope")) && msg.contains("ResourceNotFoundException"),
        "{msg}"
    );
    // A pinned stage that does not exist: the service's own error, naming the key.
    let bad_stage = FetchRequest::for_key("aws_secrets", rotated.clone())
        .with_param("version_stage", "NOSUCHSTAGE");
    let e = source.fetch(&bad_stage).await.unwrap_err();
    assert!(e.to_string().contains(&rotated), "{e}");
}

#[tokio::test]
async fn aws_secrets_25_secrets_are_two_batches() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let names: Vec<String> = (0..25).map(|i| format!("{p}/s{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        create_secret(moto, n, &format!("value-{i}"));
        clean.secret(n);
    }
    let proxy = Proxy::start(moto).await;
    let source = secrets_at(&proxy.url);
    let requests: Vec<FetchRequest> = names
        .iter()
        .map(|n| FetchRequest::for_key("aws_secrets", n.clone()))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(text(a.as_ref().unwrap()), format!("value-{i}"));
    }
    let batches = proxy.count("secretsmanager.BatchGetSecretValue");
    eprintln!("aws_secrets: 25 secrets, {batches} round trips");
    assert_eq!(batches, 2, "25 secrets: 20 + 5");
    assert_eq!(proxy.count("secretsmanager.GetSecretValue"), 0);
}

#[tokio::test]
async fn aws_secrets_watch_sees_a_new_version() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let name = format!("{p}/watched");
    let other = format!("{p}/still");
    create_secret(moto, &name, "v1");
    create_secret(moto, &other, "same");
    clean.secret(&name);
    clean.secret(&other);
    let proxy = Proxy::start(moto).await;
    let source = secrets_at(&proxy.url).with_watch_interval(Duration::from_millis(200));
    let mut changes = source
        .watch(vec![
            FetchRequest::for_key("aws_secrets", other.clone()),
            FetchRequest::for_key("aws_secrets", name.clone()),
        ])
        .unwrap();
    // Let the first poll see the current versions.
    let quiet = tokio::time::timeout(Duration::from_millis(700), changes.next()).await;
    assert!(quiet.is_err(), "nothing changed yet: {quiet:?}");
    sm(
        moto,
        "PutSecretValue",
        serde_json::json!({"SecretId": name, "SecretString": "v2"}),
    );
    let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(change, Change::Changed(vec![1]));
    // Watching reads no value: DescribeSecret only.
    assert!(proxy.count("secretsmanager.DescribeSecret") >= 4);
    assert_eq!(proxy.count("secretsmanager.BatchGetSecretValue"), 0);
    assert_eq!(proxy.count("secretsmanager.GetSecretValue"), 0);
    assert_eq!(
        text(
            &source
                .fetch(&FetchRequest::for_key("aws_secrets", name.clone()))
                .await
                .unwrap()
        ),
        "v2"
    );
    // The other secret deleted: a change too (its field then falls back).
    sm(
        moto,
        "DeleteSecret",
        serde_json::json!({"SecretId": other, "ForceDeleteWithoutRecovery": true}),
    );
    let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(change, Change::Changed(vec![0]));
}

#[tokio::test]
async fn aws_secrets_preflight_rows_read_no_value() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let name = format!("{p}/here");
    let version = create_secret(moto, &name, "v");
    clean.secret(&name);
    let proxy = Proxy::start(moto).await;
    let source = secrets_at(&proxy.url);
    let probes = source
        .preflight(vec![
            FetchRequest::for_key("aws_secrets", name.clone()),
            FetchRequest::for_key("aws_secrets", format!("{p}/gone")),
            FetchRequest::for_key("aws_secrets", name.clone())
                .with_param("version_stage", "AWSPENDING"),
            // Not among the staged versions DescribeSecret lists: it may exist unstaged.
            FetchRequest::for_key("aws_secrets", name.clone())
                .with_param("version_id", "00000000-0000-0000-0000-000000000000"),
        ])
        .await;
    assert_eq!(probes[0].access, Access::Readable, "{probes:?}");
    assert_eq!(
        probes[0].detail.as_deref(),
        Some(format!("AWSCURRENT is version {version} (GetSecretValue not checked)").as_str())
    );
    assert_eq!(probes[1].access, Access::Missing, "{probes:?}");
    assert_eq!(probes[2].access, Access::Missing, "{probes:?}");
    assert_eq!(probes[3].access, Access::Unchecked, "{probes:?}");
    assert_eq!(proxy.count("secretsmanager.DescribeSecret"), 4);
    assert_eq!(proxy.count("secretsmanager.BatchGetSecretValue"), 0);
    // Nothing listens: unreachable.
    let closed = secrets_at(&format!("http://127.0.0.1:{}", free_port()))
        .with_timeout(Duration::from_secs(2));
    let probes = closed
        .preflight(vec![FetchRequest::for_key("aws_secrets", name.clone())])
        .await;
    assert_eq!(probes[0].access, Access::Unreachable, "{probes:?}");
}

// ---------------------------------------------------------------------------------------
// SSM Parameter Store

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Params {
    #[component(fetch_from = "aws_ssm", key = "${P}/port")]
    port: u16,
    #[component(fetch_from = "aws_ssm", key = "${P}/password")]
    password: String,
    #[component(fetch_from = "aws_ssm", key = "${P}/hosts")]
    hosts: String,
    #[component(fetch_from = "aws_ssm", key = "${P}/hosts")]
    host_list: Vec<String>,
    #[component(fetch_from = "aws_ssm", key = "${P}/absent")]
    absent: Option<String>,
    #[component(fetch_from = "aws_ssm", prefix = "${P}/features/")]
    features: HashMap<String, bool>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct TooBig {
    #[component(fetch_from = "aws_ssm", prefix = "${P}/features/", max_size = 30)]
    features: HashMap<String, bool>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct TooMany {
    #[component(fetch_from = "aws_ssm", prefix = "${P}/features/", max_keys = 2)]
    features: HashMap<String, bool>,
}

#[tokio::test]
async fn aws_ssm_string_securestring_stringlist_prefix_and_missing() {
    let Some(moto) = shared() else { return };
    let p = format!("/{}", unique("cm_aws"));
    let mut clean = Cleanup::new(moto);
    for (name, value, kind) in [
        ("port", "8080", "String"),
        ("password", "s3cure", "SecureString"),
        ("hosts", "a,b,c", "StringList"),
        ("features/beta", "true", "String"),
        ("features/dark", "false", "String"),
        ("features/deep/x", "true", "SecureString"),
    ] {
        put_param(moto, &format!("{p}/{name}"), value, kind);
        clean.param(&format!("{p}/{name}"));
    }
    let proxy = Proxy::start(moto).await;
    let sources = Sources::new()
        .register("aws_ssm", ssm_at(&proxy.url))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let v = Params::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(v.port, 8080);
    assert_eq!(v.password, "s3cure", "SecureString decrypted");
    assert_eq!(v.hosts, "a,b,c");
    assert_eq!(
        v.host_list,
        ["a", "b", "c"],
        "a StringList into a Vec<String>"
    );
    assert_eq!(v.absent, None);
    assert_eq!(
        v.features,
        HashMap::from([
            ("beta".to_owned(), true),
            ("dark".to_owned(), false),
            ("deep/x".to_owned(), true)
        ])
    );
    assert_eq!(proxy.count("AmazonSSM.GetParameters"), 1);
    assert_eq!(proxy.count("AmazonSSM.GetParametersByPath"), 1);
    // Over max_keys: too large, never a truncated map.
    let e = TooMany::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text: String = e.iter().map(|e| format!("{e} {e:?}")).collect();
    assert!(text.contains("more than 2 keys"), "{text}");
    assert!(text.contains("TooLarge"), "{text}");
    // Over max_size (three members of ~15 bytes): too large as well.
    let e = TooBig::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text: String = e.iter().map(|e| format!("{e} {e:?}")).collect();
    assert!(
        text.contains("max_size") && text.contains("TooLarge"),
        "{text}"
    );
    // A prefix without its leading '/' would answer an empty map: refused, naming it.
    let e = ssm_at(&proxy.url)
        .fetch(
            &FetchRequest::for_key("aws_ssm", "")
                .with_param("prefix", format!("{}/features/", &p[1..])),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("does not start with `/`"), "{e}");
    // A missing parameter, asked alone: not found, naming it.
    let e = ssm_at(&proxy.url)
        .fetch(&FetchRequest::for_key("aws_ssm", format!("{p}/nope")))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains(&format!("{p}/nope")), "{e}");
}

#[tokio::test]
async fn aws_ssm_25_parameters_are_three_calls_and_versions_are_revisions() {
    let Some(moto) = shared() else { return };
    let p = format!("/{}", unique("cm_aws"));
    let mut clean = Cleanup::new(moto);
    let names: Vec<String> = (0..25).map(|i| format!("{p}/n{i:02}")).collect();
    for (i, n) in names.iter().enumerate() {
        put_param(
            moto,
            n,
            &format!("{i}"),
            if i % 2 == 0 { "String" } else { "SecureString" },
        );
        clean.param(n);
    }
    let proxy = Proxy::start(moto).await;
    let source = ssm_at(&proxy.url);
    let requests: Vec<FetchRequest> = names
        .iter()
        .map(|n| FetchRequest::for_key("aws_ssm", n.clone()))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(text(a.as_ref().unwrap()), i.to_string());
    }
    let calls = proxy.count("AmazonSSM.GetParameters");
    eprintln!("aws_ssm: 25 parameters, {calls} round trips");
    assert_eq!(calls, 3, "25 parameters: 10 + 10 + 5");

    // Watch: a new Version is a change; no decryption asked.
    proxy.clear();
    let watched = ssm_at(&proxy.url).with_watch_interval(Duration::from_millis(200));
    let mut changes = watched
        .watch(vec![
            FetchRequest::for_key("aws_ssm", names[0].clone()),
            FetchRequest::for_key("aws_ssm", names[1].clone()),
            FetchRequest::for_key("aws_ssm", "").with_param("prefix", format!("{p}/")),
        ])
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(700), changes.next()).await;
    assert!(quiet.is_err(), "nothing changed yet: {quiet:?}");
    let v2 = put_param(moto, &names[1], "changed", "SecureString");
    assert_eq!(v2, 2);
    let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(change, Change::Changed(vec![1, 2]));
    let seen = String::from_utf8_lossy(&proxy.seen.lock().unwrap()).into_owned();
    assert!(
        !seen.contains("\"WithDecryption\":true"),
        "a watch decrypts nothing"
    );
}

#[tokio::test]
async fn aws_ssm_preflight_rows() {
    let Some(moto) = shared() else { return };
    let p = format!("/{}", unique("cm_aws"));
    let mut clean = Cleanup::new(moto);
    put_param(moto, &format!("{p}/a"), "1", "SecureString");
    put_param(moto, &format!("{p}/t/x"), "1", "String");
    put_param(moto, &format!("{p}/t/y"), "1", "String");
    for n in ["a", "t/x", "t/y"] {
        clean.param(&format!("{p}/{n}"));
    }
    let source = ssm_at(&format!("http://{moto}"));
    let probes = source
        .preflight(vec![
            FetchRequest::for_key("aws_ssm", format!("{p}/a")),
            FetchRequest::for_key("aws_ssm", format!("{p}/b")),
            FetchRequest::for_key("aws_ssm", "").with_param("prefix", format!("{p}/t/")),
            FetchRequest::for_key("aws_ssm", "")
                .with_param("prefix", format!("{p}/t/"))
                .with_param("max_keys", "1"),
        ])
        .await;
    assert_eq!(probes[0].access, Access::Readable, "{probes:?}");
    assert!(
        probes[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("SecureString, version 1"),
        "{probes:?}"
    );
    assert_eq!(probes[1].access, Access::Missing, "{probes:?}");
    assert_eq!(probes[2].access, Access::Readable, "{probes:?}");
    assert_eq!(
        probes[2].detail.as_deref(),
        Some("2 parameters under the prefix")
    );
    assert_eq!(probes[3].access, Access::Invalid, "{probes:?}");
}

// ---------------------------------------------------------------------------------------
// Registration from the environment

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct FromEnv {
    #[component(fetch_from = "aws_secrets", key = "${P}/s")]
    secret: String,
    #[component(fetch_from = "aws_ssm", key = "/${P}/port")]
    port: u16,
}

#[tokio::test]
async fn aws_sources_from_env_register_with_a_region() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    create_secret(moto, &format!("{p}/s"), "from-env");
    clean.secret(&format!("{p}/s"));
    put_param(moto, &format!("/{p}/port"), "9000", "String");
    clean.param(&format!("/{p}/port"));
    let endpoint = format!("http://{moto}");
    let sources = Sources::from_env_source(EnvSource::from_map([
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENV"),
        ("AWS_SECRET_ACCESS_KEY", "from-env-secret"),
        ("P", p.as_str()),
    ]));
    let v = FromEnv::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((v.secret.as_str(), v.port), ("from-env", 9000));
    // The location says where credentials come from, never a key.
    let location = sources.source("aws_ssm").unwrap().location().unwrap();
    assert!(
        location.starts_with(&format!(
            "AWS SSM Parameter Store {REGION} at {endpoint} (credentials: "
        )),
        "{location}"
    );
    assert!(
        location.contains("AWS_ACCESS_KEY_ID") && !location.contains("from-env-secret"),
        "{location}"
    );
    // The service's own variable wins over AWS_ENDPOINT_URL.
    let own = Sources::from_env_source(EnvSource::from_map([
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.as_str()),
    ]));
    let location = own.source("aws_secrets").unwrap().location().unwrap();
    assert!(
        location.starts_with(&format!(
            "AWS Secrets Manager eu-west-1 at {endpoint} (credentials: "
        )),
        "{location}"
    );
    // Without a region neither is registered.
    let none = Sources::from_env_source(EnvSource::from_map([
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
    ]));
    assert!(none.source("aws_secrets").is_none() && none.source("aws_ssm").is_none());
}

// ---------------------------------------------------------------------------------------
// Secrets never shown (TRACE of every target)

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Canary {
    #[component(fetch_from = "aws_secrets", key = "${P}/canary")]
    port: u16,
    #[component(fetch_from = "aws_ssm", key = "/${P}/canary")]
    number: u32,
}

#[tokio::test]
async fn aws_no_secret_key_session_token_signature_or_value_in_errors_debug_or_trace_logs() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let value = "Canary-Value-8d1f2";
    let secret_key = "Canary-SecretKey-77ab0";
    let session = "Canary-SessionToken-c03e9";
    create_secret(moto, &format!("{p}/canary"), value);
    clean.secret(&format!("{p}/canary"));
    put_param(moto, &format!("/{p}/canary"), value, "SecureString");
    clean.param(&format!("/{p}/canary"));
    let proxy = Proxy::start(moto).await;
    let logs = CapturedLogs::default();
    let (result, debug) = {
        let _guard = capture(&logs);
        let sm = AwsSecretsSource::new(REGION)
            .with_endpoint(&proxy.url)
            .with_credentials("AKIDCANARY", secret_key, Some(session.to_owned()));
        let ssm = AwsSsmSource::new(REGION)
            .with_endpoint(&proxy.url)
            .with_credentials("AKIDCANARY", secret_key, Some(session.to_owned()));
        let debug = format!("{sm:?} {ssm:?}");
        let sources = Sources::new()
            .register("aws_secrets", sm.clone())
            .register("aws_ssm", ssm.clone())
            .with_env(EnvSource::from_map([("P", p.as_str())]));
        let result = Canary::fetch_all_components_with(&sources).await;
        // Preflight signs requests too (DescribeSecret, GetParameters).
        let _ = sm
            .preflight(vec![FetchRequest::for_key(
                "aws_secrets",
                format!("{p}/canary"),
            )])
            .await;
        let _ = ssm
            .preflight(vec![FetchRequest::for_key(
                "aws_ssm",
                format!("/{p}/canary"),
            )])
            .await;
        (result, debug)
    };
    // The value does not convert: both fields fail, without showing it.
    let e = result.unwrap_err();
    assert_eq!(e.len(), 2, "{e:?}");
    let shown: String = e.iter().map(|e| format!("{e} {e:?} ")).collect::<String>() + &debug;
    let logged = logs.text();
    // TRACE reached the crates that sign and send (not a silent subscriber).
    assert!(
        logged.contains("canonical_request"),
        "aws-sigv4 TRACE not captured"
    );
    // aws-sigv4 logs the canonical request with the token header in it, its value redacted.
    assert!(
        logged.contains("x-amz-security-token:** redacted"),
        "the session token is not in the canonical request: {logged:.3000}"
    );
    // The session token was sent (moto saw it): signed in, kept out of logs.
    let sent = String::from_utf8_lossy(&proxy.seen.lock().unwrap()).into_owned();
    assert!(sent.contains(session), "the session token is sent");
    let signature = sent
        .split("Signature=")
        .nth(1)
        .map(|s| {
            s.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .expect("a signature was sent");
    assert_eq!(signature.len(), 64);
    for canary in [value, secret_key, session, signature.as_str()] {
        assert!(!shown.contains(canary), "`{canary}` shown: {shown}");
        assert!(!logged.contains(canary), "`{canary}` in the TRACE logs");
    }
}

// ---------------------------------------------------------------------------------------
// IAM enforced: a private moto checks signatures and policies.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `moto_server` child process on a free port, killed when dropped.
struct PrivateMoto {
    child: std::process::Child,
    addr: String,
}

impl Drop for PrivateMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateMoto {
    /// Started with IAM enforced after `free_actions` unauthenticated requests (the
    /// set-up's); `None` (skipped) when moto_server cannot be started.
    fn start(free_actions: usize) -> Option<PrivateMoto> {
        let port = free_port();
        let child = std::process::Command::new(
            std::env::var("CM_MOTO_BIN").unwrap_or_else(|_| "moto_server".into()),
        )
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", free_actions.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                skip("moto_server (binary)", e);
                return None;
            }
        };
        let moto = PrivateMoto {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&moto.addr).is_err() {
            if std::time::Instant::now() > deadline {
                skip("moto_server (private)", "did not listen within 30 s");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// An IAM/STS query action; the XML answer.
    fn query(&self, service: &str, form: &[(&str, &str)]) -> String {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, text) = moto_raw(&self.addr, service, "", &body).unwrap();
        assert!(status < 300, "{form:?}: {status} {text}");
        text
    }

    /// An IAM user allowed `actions` (on every resource: moto evaluates actions, not
    /// resources) by the inline policy `policy`; its access key id and secret key.
    fn user(&self, name: &str, policy: &str, actions: &[&str]) -> (String, String) {
        const V: (&str, &str) = ("Version", "2010-05-08");
        self.query("iam", &[("Action", "CreateUser"), ("UserName", name), V]);
        let key = self.query(
            "iam",
            &[("Action", "CreateAccessKey"), ("UserName", name), V],
        );
        let document = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Resource": "*", "Action": actions}]
        })
        .to_string();
        self.query(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", name),
                ("PolicyName", policy),
                ("PolicyDocument", &document),
                V,
            ],
        );
        (
            xml_value(&key, "AccessKeyId"),
            xml_value(&key, "SecretAccessKey"),
        )
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn xml_value(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
        + open.len();
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    xml[start..end].to_owned()
}

#[tokio::test]
async fn aws_iam_enforced_signatures_checked_denied_actions_and_a_wrong_key() {
    // The six set-up requests go unauthenticated; moto checks every one after: the
    // signature (computed from the user's secret key) and the user's policy.
    let Some(moto) = PrivateMoto::start(6) else {
        return;
    };
    let addr = moto.addr.clone();
    sm(
        &addr,
        "CreateSecret",
        serde_json::json!({"Name": "app/db", "SecretString": "ok"}),
    );
    sm(
        &addr,
        "CreateSecret",
        serde_json::json!({"Name": "app/api", "SecretString": "ok2"}),
    );
    ssm(
        &addr,
        "PutParameter",
        serde_json::json!({"Name": "/app/port", "Value": "80", "Type": "String"}),
    );
    // moto evaluates actions, not resources: a policy can deny an action only. The
    // batch action needs GetSecretValue too on AWS (per secret): both allowed;
    // DescribeSecret (preflight, watch) is not.
    let (id, secret) = moto.user(
        "reader",
        "read",
        &[
            "secretsmanager:BatchGetSecretValue",
            "secretsmanager:GetSecretValue",
            "ssm:GetParameters",
        ],
    );
    let endpoint = format!("http://{addr}");
    let reader = AwsSecretsSource::new(REGION)
        .with_endpoint(&endpoint)
        .with_credentials(id.clone(), secret.clone(), None);
    // Signed right: moto computed the same signature.
    let db = FetchRequest::for_key("aws_secrets", "app/db");
    let api = FetchRequest::for_key("aws_secrets", "app/api");
    let answers = reader.fetch_many(&[&db, &api]).await;
    assert_eq!(text(answers[0].as_ref().unwrap()), "ok");
    assert_eq!(text(answers[1].as_ref().unwrap()), "ok2");
    // DescribeSecret is not allowed: the preflight row is denied, naming the key...
    let probes = reader.preflight(vec![db.clone()]).await;
    assert_eq!(probes[0].access, Access::Denied, "{probes:?}");
    // ... and a watch says so at once (Config: the engine polls instead) rather than
    // polling a denial forever without a word.
    let mut changes = reader
        .clone()
        .with_watch_interval(Duration::from_millis(100))
        .watch(vec![db.clone(), api.clone()])
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("the watch says it cannot watch")
        .expect("an item")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("secretsmanager:DescribeSecret") && msg.contains("AccessDenied"),
        "{msg}"
    );
    // SSM: GetParameters allowed, GetParametersByPath not.
    let ssm_reader = AwsSsmSource::new(REGION)
        .with_endpoint(&endpoint)
        .with_credentials(id.clone(), secret.clone(), None);
    let port = FetchRequest::for_key("aws_ssm", "/app/port");
    assert_eq!(text(&ssm_reader.fetch(&port).await.unwrap()), "80");
    let tree = FetchRequest::for_key("aws_ssm", "").with_param("prefix", "/app/");
    let probes = ssm_reader.preflight(vec![port.clone(), tree.clone()]).await;
    assert_eq!(probes[0].access, Access::Readable, "{probes:?}");
    assert_eq!(probes[1].access, Access::Denied, "{probes:?}");
    // Watching the prefix is refused at every poll: said at once (Config).
    let mut changes = ssm_reader
        .clone()
        .with_watch_interval(Duration::from_millis(100))
        .watch(vec![tree.clone()])
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("the watch says it cannot watch")
        .expect("an item")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains("ssm:GetParametersByPath"), "{e}");
    // A wrong secret key: the signature does not match; unauthenticated, not denied.
    let wrong = AwsSecretsSource::new(REGION)
        .with_endpoint(&endpoint)
        .with_credentials(id.clone(), "not-the-key", None);
    let e = wrong.fetch(&db).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    assert!(!e.to_string().contains(&secret));
    let probes = wrong.preflight(vec![db.clone()]).await;
    assert_eq!(probes[0].access, Access::Unauthenticated, "{probes:?}");
}

#[tokio::test]
async fn aws_iam_a_role_allowed_get_secret_value_only_reads_every_secret() {
    // The usual least-privilege policy (ECS task roles, Lambda, EKS): GetSecretValue on
    // the secrets, no BatchGetSecretValue. Six set-up requests go unauthenticated.
    let Some(moto) = PrivateMoto::start(6) else {
        return;
    };
    let addr = moto.addr.clone();
    for (name, value) in [("app/db", "ok"), ("app/api", "ok2"), ("app/mq", "ok3")] {
        sm(
            &addr,
            "CreateSecret",
            serde_json::json!({"Name": name, "SecretString": value}),
        );
    }
    let (id, secret) = moto.user("task", "get-only", &["secretsmanager:GetSecretValue"]);
    let proxy = Proxy::start(&addr).await;
    let reader = AwsSecretsSource::new(REGION)
        .with_endpoint(&proxy.url)
        .with_credentials(id.clone(), secret.clone(), None);
    let names = ["app/db", "app/api", "app/mq", "app/missing"];
    let requests: Vec<FetchRequest> = names
        .iter()
        .map(|n| FetchRequest::for_key("aws_secrets", *n))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    // The batch is denied as a whole: each secret is asked alone, and each error lands
    // on its own key.
    let answers = reader.fetch_many(&refs).await;
    assert_eq!(text(answers[0].as_ref().unwrap()), "ok");
    assert_eq!(text(answers[1].as_ref().unwrap()), "ok2");
    assert_eq!(text(answers[2].as_ref().unwrap()), "ok3");
    let e = answers[3].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("app/missing"), "{e}");
    assert!(!e.to_string().contains("app/db"), "{e}");
    assert_eq!(
        (
            proxy.count("secretsmanager.BatchGetSecretValue"),
            proxy.count("secretsmanager.GetSecretValue")
        ),
        (1, 4)
    );
    // Remembered: the next fetch does not try the batch again.
    proxy.clear();
    let answers = reader.fetch_many(&refs[..3]).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(
        (
            proxy.count("secretsmanager.BatchGetSecretValue"),
            proxy.count("secretsmanager.GetSecretValue")
        ),
        (0, 3)
    );
    // A lone secret is one GetSecretValue from the start (a fresh source).
    let fresh = AwsSecretsSource::new(REGION)
        .with_endpoint(&proxy.url)
        .with_credentials(id, secret, None);
    proxy.clear();
    assert_eq!(text(&fresh.fetch(&requests[0]).await.unwrap()), "ok");
    assert_eq!(proxy.count("secretsmanager.BatchGetSecretValue"), 0);
}

#[tokio::test]
async fn aws_secrets_a_partial_arn_and_a_name_of_the_same_secret_are_not_batched_together() {
    let Some(moto) = shared() else { return };
    let p = unique("cm_aws");
    let mut clean = Cleanup::new(moto);
    let a = format!("{p}/a");
    let b = format!("{p}/b");
    create_secret(moto, &a, "value-a");
    create_secret(moto, &b, "value-b");
    clean.secret(&a);
    clean.secret(&b);
    let full = sm(moto, "DescribeSecret", serde_json::json!({"SecretId": a}))["ARN"]
        .as_str()
        .unwrap()
        .to_owned();
    // The partial ARN: without the six random characters (and their dash).
    let partial = full[..full.len() - 7].to_owned();
    assert!(partial.ends_with(&a), "{partial}");
    let proxy = Proxy::start(moto).await;
    let source = secrets_at(&proxy.url);
    let by_name = FetchRequest::for_key("aws_secrets", a.clone());
    let by_partial = FetchRequest::for_key("aws_secrets", partial.clone());
    let other = FetchRequest::for_key("aws_secrets", b.clone());
    let answers = source.fetch_many(&[&by_name, &by_partial, &other]).await;
    assert_eq!(text(answers[0].as_ref().unwrap()), "value-a");
    assert_eq!(text(answers[1].as_ref().unwrap()), "value-a");
    assert_eq!(text(answers[2].as_ref().unwrap()), "value-b");
    // The ARN goes alone (a batch answer's Name could be another account's secret of
    // the same name); the two names share a batch.
    assert_eq!(
        (
            proxy.count("secretsmanager.BatchGetSecretValue"),
            proxy.count("secretsmanager.GetSecretValue")
        ),
        (1, 1)
    );
    // Fields pinned by version_id only: nothing to watch, and no polling instead either
    // (a pending stream, not a Config error that makes the engine re-read every value).
    let pinned = FetchRequest::for_key("aws_secrets", a.clone()).with_param("version_id", "v1");
    let mut changes = source.watch(vec![pinned]).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(300), changes.next()).await;
    assert!(quiet.is_err(), "{quiet:?}");
}

#[tokio::test]
async fn aws_ssm_a_name_and_its_pinned_versions_in_one_fetch_each_get_their_own() {
    let Some(moto) = shared() else { return };
    let p = format!("/{}", unique("cm_aws"));
    let mut clean = Cleanup::new(moto);
    let name = format!("{p}/sel");
    put_param(moto, &name, "v1", "String");
    put_param(moto, &name, "v2", "String");
    clean.param(&name);
    ssm(
        moto,
        "LabelParameterVersion",
        serde_json::json!({"Name": name, "ParameterVersion": 1, "Labels": ["old"]}),
    );
    let proxy = Proxy::start(moto).await;
    let source = ssm_at(&proxy.url);
    let keys = [
        name.clone(),
        format!("{name}:1"),
        format!("{name}:old"),
        format!("{name}:2"),
    ];
    let requests: Vec<FetchRequest> = keys
        .iter()
        .map(|k| FetchRequest::for_key("aws_ssm", k.clone()))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    let got: Vec<&str> = answers
        .iter()
        .map(|a| text(a.as_ref().unwrap_or_else(|e| panic!("{e}"))))
        .collect();
    assert_eq!(got, ["v2", "v1", "v1", "v2"]);
    // One key of the parameter per call: four calls.
    assert_eq!(proxy.count("AmazonSSM.GetParameters"), 4);
}

#[tokio::test]
async fn aws_ssm_a_prefix_watch_sees_an_update_that_keeps_the_newest_version_and_the_count() {
    let Some(moto) = shared() else { return };
    let p = format!("/{}", unique("cm_aws"));
    let mut clean = Cleanup::new(moto);
    let (a, b) = (format!("{p}/t/a"), format!("{p}/t/b"));
    for v in ["1", "2", "3"] {
        put_param(moto, &a, v, "String");
    }
    put_param(moto, &b, "1", "String");
    clean.param(&a);
    clean.param(&b);
    let source = ssm_at(&format!("http://{moto}")).with_watch_interval(Duration::from_millis(200));
    let tree = FetchRequest::for_key("aws_ssm", "").with_param("prefix", format!("{p}/t/"));
    let mut changes = source.watch(vec![tree]).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(700), changes.next()).await;
    assert!(quiet.is_err(), "nothing changed yet: {quiet:?}");
    // b goes to version 2: the newest is still a's 3, the count still 2.
    assert_eq!(put_param(moto, &b, "2", "String"), 2);
    let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
        .await
        .expect("a change within 10 s")
        .expect("the stream goes on")
        .unwrap();
    assert_eq!(change, Change::Changed(vec![0]));
}
