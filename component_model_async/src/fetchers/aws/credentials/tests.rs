//! The chain against local doubles of STS, the container endpoint and IMDS (threads with
//! a socket each), and moto's STS when it runs (127.0.0.1:5000).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use secrecy::ExposeSecret;

use super::*;

/// One request as the double saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

type Handler = dyn Fn(&Seen, usize) -> Vec<u8> + Send + Sync;

/// An HTTP server on a thread: each request answered by `handler` (given the request and
/// its 0-based number), the connection then closed. Returns its base URL and the log.
fn double(handler: Arc<Handler>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = log.clone();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (handler, log, count) = (handler.clone(), seen_log.clone(), count.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_owned();
                let path = parts.next().unwrap_or_default().to_owned();
                let mut headers = HashMap::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                    }
                }
                let len: usize = headers
                    .get("content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let seen = Seen {
                    method,
                    path,
                    headers,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                log.lock().unwrap().push(seen.clone());
                let answer = handler(&seen, n);
                let mut stream = reader.into_inner();
                let _ = stream.write_all(&answer);
            });
        }
    });
    (base, log)
}

fn respond(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn creds_json(id: &str, expires_in: Duration) -> String {
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{id}","SecretAccessKey":"CANARY-SECRET-{id}","Token":"CANARY-TOKEN-{id}","Expiration":"{}"}}"#,
        rfc3339(SystemTime::now() + expires_in)
    )
}

/// An IMDS double whose role credentials expire `expires_in` from each answer; the
/// count of credential documents served.
fn imds(expires_in: Duration) -> (String, Arc<Mutex<Vec<Seen>>>) {
    double(Arc::new(move |seen: &Seen, n| {
        match (seen.method.as_str(), seen.path.as_str()) {
            ("PUT", "/latest/api/token") => respond(200, "IMDS-SESSION-TOKEN"),
            ("GET", "/latest/meta-data/iam/security-credentials/") => {
                assert_eq!(
                    seen.headers["x-aws-ec2-metadata-token"],
                    "IMDS-SESSION-TOKEN"
                );
                respond(200, "app-role\n")
            }
            ("GET", "/latest/meta-data/iam/security-credentials/app-role") => {
                respond(200, &creds_json(&format!("ASIAIMDS{n}"), expires_in))
            }
            _ => respond(404, ""),
        }
    }))
}

fn served(log: &Mutex<Vec<Seen>>, path_end: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with(path_end))
        .count()
}

fn env(pairs: &[(&str, &str)]) -> EnvSource {
    EnvSource::from_map(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            // No ~/.aws of the machine running the tests.
            .chain([("HOME".to_owned(), "/nonexistent-home-for-tests".to_owned())]),
    )
}

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "cm-aws-creds-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn environment_keys_win_over_every_other_provider() {
    let dir = TempDir::new();
    let token = dir.file("token", "jwt");
    let creds = dir.file(
        "credentials",
        "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n",
    );
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_ACCESS_KEY_ID", "AKIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "CANARY-ENV"),
        ("AWS_SESSION_TOKEN", "tok"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ("AWS_SHARED_CREDENTIALS_FILE", &creds),
    ]));
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "AKIAENV");
    assert_eq!(c.session_token.unwrap().expose_secret(), "tok");
    assert_eq!(chain.describe(), "the environment (AWS_ACCESS_KEY_ID)");
    assert!(!format!("{chain:?}").contains("CANARY"));

    // Without the keys, the web identity comes before the profile.
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
        ("AWS_SHARED_CREDENTIALS_FILE", &creds),
    ]));
    assert!(
        chain.describe().starts_with("web identity"),
        "{}",
        chain.describe()
    );

    // Then the profile.
    let chain = CredentialChain::from_env(&env(&[("AWS_SHARED_CREDENTIALS_FILE", &creds)]));
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "AKIAPROFILE");
    assert_eq!(chain.describe(), "profile `default`");
}

#[tokio::test]
async fn half_configured_providers_say_what_is_missing() {
    let e = CredentialChain::from_env(&env(&[("AWS_ACCESS_KEY_ID", "AKIA")]))
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("without AWS_SECRET_ACCESS_KEY"),
        "{e}"
    );
    let e = CredentialChain::from_env(&env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/x")]))
        .credentials()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("without AWS_ROLE_ARN"), "{e}");
    let e = CredentialChain::from_env(&env(&[("AWS_PROFILE", "nope")]))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("profile `nope` (AWS_PROFILE) not found"),
        "{e}"
    );
    let dir = TempDir::new();
    let config = dir.file(
        "config",
        "[profile p]\ncredential_process = /usr/bin/true\n",
    );
    let e = CredentialChain::from_env(&env(&[("AWS_PROFILE", "p"), ("AWS_CONFIG_FILE", &config)]))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("credential_process is not supported"),
        "{e}"
    );
}

#[tokio::test]
async fn nothing_found_lists_what_was_looked_for() {
    // A port nothing listens on stands in for a machine without IMDS.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    let e = chain.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let text = e.to_string();
    for looked in [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "profile `default`",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "EC2 instance metadata",
    ] {
        assert!(text.contains(looked), "{looked} missing from: {text}");
    }
    let e = CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_DISABLED", "true")]))
        .credentials()
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("disabled by AWS_EC2_METADATA_DISABLED"),
        "{e}"
    );
}

#[tokio::test]
async fn imds_credentials_are_cached_until_the_refresh_window() {
    let (endpoint, log) = imds(Duration::from_secs(6 * 60));
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    let first = chain.credentials().await.unwrap();
    assert_eq!(first.access_key_id, "ASIAIMDS2");
    assert_eq!(
        first.session_token.unwrap().expose_secret(),
        "CANARY-TOKEN-ASIAIMDS2"
    );
    let again = chain.credentials().await.unwrap();
    assert_eq!(again.access_key_id, "ASIAIMDS2");
    assert_eq!(served(&log, "/app-role"), 1);
    assert_eq!(served(&log, "/api/token"), 1);

    // Expiring 5 min 2 s ahead: the window opens in 2 s; the next call then refreshes.
    let (endpoint, log) = imds(REFRESH_AHEAD + Duration::from_secs(2));
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    chain.credentials().await.unwrap();
    chain.credentials().await.unwrap();
    assert_eq!(served(&log, "/app-role"), 1);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let refreshed = chain.credentials().await.unwrap();
    assert_eq!(served(&log, "/app-role"), 2);
    assert_eq!(refreshed.access_key_id, "ASIAIMDS5");

    // Arriving already inside the window (4 min): not refreshed at every call.
    let (endpoint, log) = imds(Duration::from_secs(4 * 60));
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    for _ in 0..3 {
        chain.credentials().await.unwrap();
    }
    assert_eq!(served(&log, "/app-role"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_refresh() {
    let (endpoint, log) = imds(Duration::from_secs(3600));
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let chain = chain.clone();
            tokio::spawn(async move { chain.credentials().await.map(|c| c.access_key_id) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "ASIAIMDS2");
    }
    assert_eq!(served(&log, "/app-role"), 1, "one refresh for 16 callers");
    assert_eq!(served(&log, "/api/token"), 1);
}

#[tokio::test]
async fn a_failed_refresh_is_not_kept() {
    let (endpoint, log) = double(Arc::new(|seen: &Seen, n| match seen.path.as_str() {
        "/latest/api/token" if n == 0 => respond(503, ""),
        "/latest/api/token" => respond(200, "t"),
        "/latest/meta-data/iam/security-credentials/" => respond(200, "r"),
        _ => respond(200, &creds_json("ASIAOK", Duration::from_secs(3600))),
    }));
    let chain =
        CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    let e = chain.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string()
            .contains("AWS credentials from EC2 instance metadata"),
        "{e}"
    );
    assert!(e.to_string().contains("503"), "{e}");
    assert_eq!(chain.credentials().await.unwrap().access_key_id, "ASIAOK");
    assert_eq!(served(&log, "/api/token"), 2);
}

#[tokio::test]
async fn imds_without_a_role_says_so() {
    let (endpoint, _log) = double(Arc::new(|seen: &Seen, _| match seen.path.as_str() {
        "/latest/api/token" => respond(200, "t"),
        _ => respond(404, ""),
    }));
    let e = CredentialChain::from_env(&env(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]))
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("no IAM role"), "{e}");
}

#[tokio::test]
async fn container_endpoint_with_a_token_file() {
    let (base, log) = double(Arc::new(|_: &Seen, _| {
        respond(200, &creds_json("ASIAECS", Duration::from_secs(3600)))
    }));
    let dir = TempDir::new();
    let token = dir.file("token", "CANARY-POD-TOKEN\n");
    let chain = CredentialChain::from_env(&env(&[
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &format!("{base}/v1/credentials"),
        ),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "ignored-when-a-file-is-given",
        ),
    ]));
    assert_eq!(chain.credentials().await.unwrap().access_key_id, "ASIAECS");
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("GET", "/v1/credentials")
    );
    assert_eq!(seen.headers["authorization"], "CANARY-POD-TOKEN");

    // A refusal carries the endpoint's message, not the token it echoes.
    let (base, _log) = double(Arc::new(|_: &Seen, _| {
        respond(
            401,
            r#"{"code":"AccessDenied","message":"token CANARY-POD-TOKEN expired"}"#,
        )
    }));
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &base),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token),
    ]));
    let e = chain.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let text = e.to_string();
    assert!(
        text.contains("AccessDenied: token [REDACTED] expired"),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");

    let e = CredentialChain::from_env(&env(&[(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "http://203.0.113.9/creds",
    )]))
    .credentials()
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

const STS_OK: &str = "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIASTS</AccessKeyId><SecretAccessKey>CANARY-STS-SECRET</SecretAccessKey><SessionToken>CANARY-STS-TOKEN</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>";

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn web_identity_posts_the_token_and_reads_sts_errors() {
    let (sts, log) = double(Arc::new(|seen: &Seen, n| {
        if n == 0 {
            respond(200, STS_OK)
        } else {
            let _ = seen;
            respond(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            )
        }
    }));
    let dir = TempDir::new();
    let token = dir.file("token", "CANARY-JWT\n");
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/app"),
        ("AWS_ROLE_SESSION_NAME", "sess"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]));
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "ASIASTS");
    assert_eq!(c.secret_access_key.expose_secret(), "CANARY-STS-SECRET");
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!((seen.method.as_str(), seen.path.as_str()), ("POST", "/"));
    assert!(!seen.headers.contains_key("authorization"), "unsigned");
    let f = form(&seen.body);
    assert_eq!(f["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(f["Version"], "2011-06-15");
    assert_eq!(f["RoleArn"], "arn:aws:iam::123456789012:role/app");
    assert_eq!(f["RoleSessionName"], "sess");
    assert_eq!(f["WebIdentityToken"], "CANARY-JWT");

    // A fresh chain whose STS refuses the token.
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
        ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/app"),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]));
    let e = chain.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let text = e.to_string();
    assert!(
        text.contains("web identity (role arn:aws:iam::123456789012:role/app"),
        "{text}"
    );
    assert!(
        text.contains("InvalidIdentityToken: Couldn't retrieve verification key"),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");

    // A missing token file names the file, not a content.
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token"),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/a"),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]));
    let e = chain.credentials().await.unwrap_err();
    assert!(
        e.to_string()
            .contains("cannot read the web identity token file /nonexistent/token"),
        "{e}"
    );
}

#[tokio::test]
async fn profile_role_is_assumed_with_the_source_profile_signing() {
    let (sts, log) = double(Arc::new(|_: &Seen, _| respond(200, STS_OK)));
    let dir = TempDir::new();
    let config = dir.file(
        "config",
        "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/app\nsource_profile = base\nexternal_id = ext-1\nregion = eu-central-1\n",
    );
    let creds = dir.file(
        "credentials",
        "[base]\naws_access_key_id = AKIASOURCE\naws_secret_access_key = CANARY-SOURCE-SECRET\n",
    );
    let e = env(&[
        ("AWS_PROFILE", "app"),
        ("AWS_CONFIG_FILE", &config),
        ("AWS_SHARED_CREDENTIALS_FILE", &creds),
        ("AWS_ENDPOINT_URL_STS", &sts),
    ]);
    assert_eq!(region_from_env(&e).as_deref(), Some("eu-central-1"));
    let chain = CredentialChain::from_env(&e);
    assert_eq!(
        chain.describe(),
        "role arn:aws:iam::123456789012:role/app assumed with profile `base`"
    );
    let c = chain.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "ASIASTS");
    let seen = log.lock().unwrap()[0].clone();
    let auth = &seen.headers["authorization"];
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIASOURCE/")
            && auth.contains("/eu-central-1/sts/aws4_request"),
        "{auth}"
    );
    assert!(seen.headers.contains_key("x-amz-date"));
    let f = form(&seen.body);
    assert_eq!(f["Action"], "AssumeRole");
    assert_eq!(f["ExternalId"], "ext-1");
    assert!(f["RoleSessionName"].starts_with("component-model-"));
}

/// moto's STS (scripts/services.sh): the real protocol end to end, when it runs.
#[tokio::test]
async fn web_identity_and_assume_role_against_moto() {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5000".parse().unwrap(),
        Duration::from_millis(300),
    )
    .is_err()
    {
        eprintln!("skipped: moto is not running on 127.0.0.1:5000 (scripts/services.sh)");
        return;
    }
    let dir = TempDir::new();
    let token = dir.file("token", "eyJhbGciOiJSUzI1NiJ9.e30.sig");
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/cm-web-identity",
        ),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_REGION", "us-east-1"),
    ]));
    let c = chain.credentials().await.unwrap();
    assert!(c.access_key_id.starts_with("ASIA"), "{c:?}");
    assert!(c.session_token.is_some());
    assert!(c.expires_at.is_some_and(|e| e > SystemTime::now()));

    let config = dir.file(
        "config",
        "[profile app]\nrole_arn = arn:aws:iam::123456789012:role/cm-assumed\nsource_profile = base\n[profile base]\naws_access_key_id = AKIAMOTOSOURCE\naws_secret_access_key = s\n",
    );
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_PROFILE", "app"),
        ("AWS_CONFIG_FILE", &config),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ("AWS_REGION", "us-east-1"),
    ]));
    let c = chain.credentials().await.unwrap();
    assert!(c.access_key_id.starts_with("ASIA"), "{c:?}");
}

#[tokio::test]
async fn hostile_credential_endpoints_are_bounded() {
    // Announces 10 GiB.
    let (base, _log) = double(Arc::new(|_: &Seen, _| {
        b"HTTP/1.1 200 OK\r\ncontent-length: 10737418240\r\n\r\n{".to_vec()
    }));
    let started = Instant::now();
    let e = CredentialChain::from_env(&env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &base)]))
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    assert!(!e.to_string().contains("with_max_body"), "{e}");
    eprintln!("10 GiB announced: refused in {:?}", started.elapsed());

    // Streams without end.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endless = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
            let chunk = format!("10000\r\n{}\r\n", "a".repeat(0x10000));
            while s.write_all(chunk.as_bytes()).is_ok() {}
        }
    });
    let e = CredentialChain::from_env(&env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endless)]))
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");

    // Never answers: ends at the chain's timeout.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = TempDir::new();
    let token = dir.file("t", "x");
    let url = format!("http://{}", silent.local_addr().unwrap());
    let chain = CredentialChain::from_env(&env(&[
        ("AWS_ENDPOINT_URL_STS", &url),
        ("AWS_ROLE_ARN", "arn:aws:iam::1:role/a"),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
    ]))
    .with_timeout(Duration::from_millis(800));
    let started = Instant::now();
    let e = chain.credentials().await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    eprintln!("silent STS: {e} after {took:?}");
    drop(silent);
}

#[test]
fn refresh_times() {
    let now = SystemTime::now();
    let hour = now + Duration::from_secs(3600);
    assert_eq!(refresh_at(hour, now), hour - REFRESH_AHEAD);
    let soon = now + Duration::from_secs(120);
    assert_eq!(refresh_at(soon, now), now + Duration::from_secs(60));
    assert_eq!(refresh_at(now - Duration::from_secs(1), now), now);
}

#[test]
fn debug_and_scrub_hide_secrets() {
    let c = AwsCredentials {
        access_key_id: "AKIA".into(),
        secret_access_key: SecretString::from("CANARY-S".to_owned()),
        session_token: Some(SecretString::from("CANARY-T".to_owned())),
        expires_at: None,
    };
    assert!(!format!("{c:?}").contains("CANARY"));
    let chain = CredentialChain::fixed(c);
    assert!(!format!("{chain:?}").contains("CANARY"));
    assert_eq!(scrub("a SECRET b\n", &["SECRET"]), "a [REDACTED] b");
    assert_eq!(scrub(&"x".repeat(400), &[]).chars().count(), 301);
}
