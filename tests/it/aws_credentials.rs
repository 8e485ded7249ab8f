//! Issue 36: the AWS credential chain, end to end through `AwsSsmSource` (the chain is
//! internal): moto's STS and SSM (the shared moto of `scripts/services.sh`,
//! 127.0.0.1:5000), profile files in temporary directories, and tiny HTTP doubles on
//! threads of their own for what moto does not serve (the ECS container endpoint, EC2's
//! instance metadata, STS refusing a token). Each provider in the chain's order, its
//! precedence, the cache and its refresh ahead of `Expiration`, one refresh for many
//! callers, STS's own error text, hostile credential endpoints, and canary secrets absent
//! from errors, `Debug` and TRACE logs. An unreachable moto skips a test (fails under
//! `CM_REQUIRE_SERVICES=1`); the doubles always run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use component_model::{AwsSsmSource, EnvSource, ErrorKind, FetchRequest, RawValue, Source};
use component_model_tests::{CapturedLogs, capture, skip, unique};

pub(crate) const MOTO: &str = "127.0.0.1:5000";

// ---------------------------------------------------------------------------------------
// Helpers: moto's SSM written with plain HTTP, HTTP doubles, temporary profile files.

/// `PutParameter` on moto (plain HTTP, no library code); `Err` when moto is unreachable.
pub(crate) fn put_param(name: &str, value: &str) -> Result<(), String> {
    let body = serde_json::json!({"Name": name, "Value": value, "Type": "SecureString", "Overwrite": true}).to_string();
    ssm_call("AmazonSSM.PutParameter", &body).map(|_| ())
}

pub(crate) fn delete_param(name: &str) {
    let _ = ssm_call(
        "AmazonSSM.DeleteParameter",
        &serde_json::json!({ "Name": name }).to_string(),
    );
}

fn ssm_call(target: &str, body: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(MOTO).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {MOTO}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    if !out.starts_with("HTTP/1.1 200") {
        return Err(format!("{target}: {out:.300}"));
    }
    Ok(out)
}

/// A parameter on moto deleted when dropped; `None` (skipped) when moto is unreachable.
struct Param(String);

impl Param {
    fn new(value: &str) -> Option<Param> {
        let name = format!("/cm-creds/{}", unique("p"));
        match put_param(&name, value) {
            Ok(()) => Some(Param(name)),
            Err(e) => {
                skip("moto", e);
                None
            }
        }
    }

    fn request(&self) -> FetchRequest {
        FetchRequest::for_key("aws_ssm", self.0.clone())
    }
}

impl Drop for Param {
    fn drop(&mut self) {
        delete_param(&self.0);
    }
}

/// One request as a double saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An HTTP server on threads of its own: each request answered with the bytes `handler`
/// makes of it (and its 0-based number), the connection then closed.
fn double(handler: impl Fn(&Seen, usize) -> Vec<u8> + Send + Sync + 'static) -> (String, Log) {
    let handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log: Log = Arc::default();
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
                let len = headers
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
                let _ = reader.into_inner().write_all(&answer);
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

fn count(log: &Log, path_end: &str) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|s| s.path.ends_with(path_end))
        .count()
}

/// The credentials document of the ECS endpoint and IMDS, expiring `expires_in` from now.
pub(crate) fn creds_json(id: &str, secret: &str, expires_in: Duration) -> String {
    let expires = rfc3339(SystemTime::now() + expires_in);
    format!(
        r#"{{"Code":"Success","AccessKeyId":"{id}","SecretAccessKey":"{secret}","Token":"{secret}-session","Expiration":"{expires}"}}"#
    )
}

/// `t` as `2026-12-07T08:00:00Z` (civil-from-days, H. Hinnant's algorithm).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// An IMDSv2 double for a role `app`, its credentials expiring `expires_in` from each
/// answer (`ASIAIMDS<n>`, the secret `secret`).
fn imds(secret: &'static str, expires_in: Duration) -> (String, Log) {
    double(
        move |seen, n| match (seen.method.as_str(), seen.path.as_str()) {
            ("PUT", "/latest/api/token") => respond(200, "imds-session"),
            ("GET", "/latest/meta-data/iam/security-credentials/") => respond(200, "app\n"),
            ("GET", "/latest/meta-data/iam/security-credentials/app") => respond(
                200,
                &creds_json(&format!("ASIAIMDS{n}"), secret, expires_in),
            ),
            _ => respond(404, ""),
        },
    )
}

/// A temporary directory removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let d = std::env::temp_dir().join(unique("cm-aws-credentials"));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The SSM source of `vars` (plus moto's endpoint and a region, and a `HOME` without
/// `~/.aws`, unless `vars` sets them).
pub(crate) fn ssm(vars: &[(&str, &str)]) -> AwsSsmSource {
    let mut map: HashMap<String, String> = [
        ("AWS_ENDPOINT_URL", format!("http://{MOTO}")),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("HOME", "/nonexistent-home-of-cm-tests".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in vars {
        if v.is_empty() {
            map.remove(*k);
        } else {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    AwsSsmSource::from_env_source(&EnvSource::from_map(map)).expect("a region is set")
}

fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

// ---------------------------------------------------------------------------------------
// Each provider, in the chain's order.

#[tokio::test]
async fn environment_keys_sign_the_requests() {
    let Some(p) = Param::new("from-env-keys") else {
        return;
    };
    let source = ssm(&[
        ("AWS_ACCESS_KEY_ID", "AKIAENVKEYS"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
    ]);
    assert_eq!(
        source.fetch(&p.request()).await.unwrap(),
        RawValue::from("from-env-keys")
    );
}

#[tokio::test]
async fn web_identity_is_exchanged_at_moto_sts() {
    let Some(p) = Param::new("from-web-identity") else {
        return;
    };
    let dir = Dir::new();
    let canary = "eyJhbGciOiJSUzI1NiJ9.Canary-Jwt-6d2a.sig";
    let token = dir.file("token", canary);
    let logs = CapturedLogs::default();
    let (value, debug) = {
        let _guard = capture(&logs);
        let source = ssm(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/cm-irsa"),
            ("AWS_ROLE_SESSION_NAME", "cm-test"),
        ]);
        (source.fetch(&p.request()).await, format!("{source:?}"))
    };
    assert_eq!(value.unwrap(), RawValue::from("from-web-identity"));
    assert!(!debug.contains(canary));
    let text = logs.text();
    assert!(!text.is_empty(), "TRACE logs were captured");
    assert!(
        !text.contains("Canary-Jwt"),
        "the web identity token is in the logs"
    );
}

#[tokio::test]
async fn profile_keys_and_a_role_assumed_from_a_source_profile() {
    let Some(p) = Param::new("from-profile") else {
        return;
    };
    let dir = Dir::new();
    let credentials = dir.file(
        "credentials",
        "[base]\naws_access_key_id = AKIAPROFILEBASE\naws_secret_access_key = Canary-Profile-Secret-91c\n",
    );
    let config = dir.file(
        "config",
        "[profile base]\nregion = us-east-1\n[profile app]\nrole_arn = arn:aws:iam::123456789012:role/cm-app\nsource_profile = base\nregion = us-east-1\n",
    );
    // Static keys of a profile; the region from the config file (no AWS_REGION).
    let base = ssm(&[
        ("AWS_REGION", ""),
        ("AWS_PROFILE", "base"),
        ("AWS_CONFIG_FILE", &config),
        ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
    ]);
    assert_eq!(base.region(), "us-east-1");
    assert_eq!(
        base.fetch(&p.request()).await.unwrap(),
        RawValue::from("from-profile")
    );

    // A role assumed at moto's STS, signed with the base profile's keys.
    let logs = CapturedLogs::default();
    let value = {
        let _guard = capture(&logs);
        let app = ssm(&[
            ("AWS_PROFILE", "app"),
            ("AWS_CONFIG_FILE", &config),
            ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
        ]);
        app.fetch(&p.request()).await
    };
    assert_eq!(value.unwrap(), RawValue::from("from-profile"));
    assert!(!logs.text().contains("Canary-Profile-Secret"));
}

#[tokio::test]
async fn credential_process_and_sso_profiles_are_refused_by_name() {
    let dir = Dir::new();
    let config = dir.file(
        "config",
        "[profile proc]\ncredential_process = /usr/local/bin/creds\n[profile sso]\nsso_session = corp\nsso_account_id = 1\n",
    );
    for (profile, said) in [
        ("proc", "credential_process is not supported"),
        ("sso", "(SSO) profiles are not supported"),
    ] {
        let source = ssm(&[("AWS_PROFILE", profile), ("AWS_CONFIG_FILE", &config)]);
        let e = source
            .fetch(&FetchRequest::for_key("aws_ssm", "/x"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains(said), "{e}");
        assert!(
            e.to_string().contains(&format!("profile `{profile}`")),
            "{e}"
        );
    }
}

#[tokio::test]
async fn container_endpoint_with_its_authorization_token() {
    let Some(p) = Param::new("from-ecs") else {
        return;
    };
    let (base, log) = double(|_, _| {
        respond(
            200,
            &creds_json(
                "ASIAECS",
                "Canary-Ecs-Secret-7b1",
                Duration::from_secs(3600),
            ),
        )
    });
    let dir = Dir::new();
    let token = dir.file("pod-token", "Canary-Pod-Token-33e\n");
    let logs = CapturedLogs::default();
    let value = {
        let _guard = capture(&logs);
        let source = ssm(&[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{base}/v1/credentials"),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token),
        ]);
        let first = source.fetch(&p.request()).await;
        let second = source.fetch(&p.request()).await;
        assert_eq!(first.as_ref().ok(), second.as_ref().ok());
        first
    };
    assert_eq!(value.unwrap(), RawValue::from("from-ecs"));
    assert_eq!(
        count(&log, "/v1/credentials"),
        1,
        "cached for the second fetch"
    );
    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.headers["authorization"], "Canary-Pod-Token-33e");
    let text = logs.text();
    assert!(!text.contains("Canary-Pod-Token") && !text.contains("Canary-Ecs-Secret"));
}

#[tokio::test]
async fn instance_metadata_is_the_last_resort() {
    let Some(p) = Param::new("from-imds") else {
        return;
    };
    let (endpoint, log) = imds("Canary-Imds-Secret-4f0", Duration::from_secs(3600));
    let logs = CapturedLogs::default();
    let value = {
        let _guard = capture(&logs);
        let source = ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]);
        source.fetch(&p.request()).await
    };
    assert_eq!(value.unwrap(), RawValue::from("from-imds"));
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0].method, "PUT", "IMDSv2: a session token first");
    assert_eq!(
        seen[0].headers["x-aws-ec2-metadata-token-ttl-seconds"],
        "21600"
    );
    assert_eq!(seen[1].headers["x-aws-ec2-metadata-token"], "imds-session");
    assert!(!logs.text().contains("Canary-Imds-Secret"));
}

#[tokio::test]
async fn nothing_found_names_every_place_looked_at() {
    let source = ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &closed_port())]);
    let started = Instant::now();
    let e = source
        .fetch(&FetchRequest::for_key("aws_ssm", "/x"))
        .await
        .unwrap_err();
    eprintln!("no credentials anywhere: {:?}: {e}", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    for place in [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "profile `default`",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "EC2 instance metadata",
    ] {
        assert!(text.contains(place), "{place} not named: {text}");
    }
}

// ---------------------------------------------------------------------------------------
// Precedence.

#[tokio::test]
async fn environment_keys_win_over_a_profile_and_the_profile_over_the_container() {
    let Some(p) = Param::new("precedence") else {
        return;
    };
    // A profile whose role would be assumed at an STS double that counts.
    let (sts, sts_log) = double(|_, _| respond(500, ""));
    let (ecs, ecs_log) = double(|_, _| respond(500, ""));
    let dir = Dir::new();
    let config = dir.file(
        "config",
        "[default]\nrole_arn = arn:aws:iam::123456789012:role/never\ncredential_source = Environment\n",
    );
    let source = ssm(&[
        ("AWS_ACCESS_KEY_ID", "AKIAENVWINS"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_CONFIG_FILE", &config),
        ("AWS_ENDPOINT_URL_STS", &sts),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &ecs),
    ]);
    assert_eq!(
        source.fetch(&p.request()).await.unwrap(),
        RawValue::from("precedence")
    );
    assert_eq!((count(&sts_log, "/"), count(&ecs_log, "")), (0, 0));

    // Without the keys, the profile answers (its STS refuses) before the container.
    let credentials = dir.file(
        "credentials",
        "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = s\n",
    );
    let config = dir.file(
        "config2",
        "[default]\nrole_arn = arn:aws:iam::123456789012:role/r\nsource_profile = default\n",
    );
    let source = ssm(&[
        ("AWS_CONFIG_FILE", &config),
        ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
        ("AWS_ENDPOINT_URL_STS", &sts),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &ecs),
    ]);
    let e = source.fetch(&p.request()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("role arn:aws:iam::123456789012:role/r assumed with profile `default`"),
        "{e}"
    );
    assert_eq!((count(&sts_log, "/"), count(&ecs_log, "")), (1, 0));
    let sent = sts_log.lock().unwrap()[0].clone();
    assert!(sent.body.contains("Action=AssumeRole&"), "{}", sent.body);
    assert!(sent.headers["authorization"].contains("Credential=AKIAPROFILE/"));
}

// ---------------------------------------------------------------------------------------
// The cache: refreshed ahead of expiry, once for many callers, a failure not kept.

#[tokio::test]
async fn temporary_credentials_are_refreshed_after_the_window_opens() {
    let Some(p) = Param::new("refresh") else {
        return;
    };
    // Six minutes ahead: five of them are the refresh window, the cache holds for one.
    let (endpoint, log) = imds("s", Duration::from_secs(6 * 60));
    let source = ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]);
    for _ in 0..3 {
        source.fetch(&p.request()).await.unwrap();
    }
    assert_eq!(count(&log, "/app"), 1, "cached while outside the window");

    // Five minutes and two seconds ahead: the window opens two seconds later.
    let (endpoint, log) = imds("s", Duration::from_secs(5 * 60 + 2));
    let source = ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]);
    source.fetch(&p.request()).await.unwrap();
    source.fetch(&p.request()).await.unwrap();
    assert_eq!(count(&log, "/app"), 1);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    source.fetch(&p.request()).await.unwrap();
    assert_eq!(
        count(&log, "/app"),
        2,
        "refreshed on the first call inside the window"
    );
    source.fetch(&p.request()).await.unwrap();
    assert_eq!(count(&log, "/app"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_share_one_refresh() {
    let Some(p) = Param::new("concurrent") else {
        return;
    };
    let (endpoint, log) = imds("s", Duration::from_secs(3600));
    let source = Arc::new(ssm(&[("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)]));
    let fetches: Vec<_> = (0..12)
        .map(|_| {
            let (source, request) = (source.clone(), p.request());
            tokio::spawn(async move { source.fetch(&request).await })
        })
        .collect();
    for f in fetches {
        assert_eq!(f.await.unwrap().unwrap(), RawValue::from("concurrent"));
    }
    assert_eq!(count(&log, "/api/token"), 1, "one refresh for 12 callers");
    assert_eq!(count(&log, "/app"), 1);
}

#[tokio::test]
async fn a_failed_refresh_is_tried_again_by_the_next_fetch() {
    let Some(p) = Param::new("retry") else { return };
    let (ecs, log) = double(|_, n| {
        if n == 0 {
            respond(
                503,
                r#"{"code":"ServiceUnavailable","message":"agent starting"}"#,
            )
        } else {
            respond(200, &creds_json("ASIAECS", "s", Duration::from_secs(3600)))
        }
    });
    let source = ssm(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &ecs)]);
    let e = source.fetch(&p.request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.to_string().contains("ServiceUnavailable: agent starting"),
        "{e}"
    );
    assert_eq!(
        source.fetch(&p.request()).await.unwrap(),
        RawValue::from("retry")
    );
    assert_eq!(count(&log, ""), 2);
}

// ---------------------------------------------------------------------------------------
// STS's own errors; hostile credential endpoints.

#[tokio::test]
async fn sts_refusals_carry_its_code_and_message_not_the_token() {
    let (sts, _log) = double(|_, _| {
        respond(
            400,
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>No OpenIDConnect provider found in your account for https://oidc.example</Message></Error><RequestId>r-1</RequestId></ErrorResponse>",
        )
    });
    let dir = Dir::new();
    let canary = "Canary-Jwt-Refused-0e4";
    let token = dir.file("token", canary);
    let logs = CapturedLogs::default();
    let e = {
        let _guard = capture(&logs);
        let source = ssm(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", &token),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/cm-irsa"),
            ("AWS_ENDPOINT_URL_STS", &sts),
        ]);
        source
            .fetch(&FetchRequest::for_key("aws_ssm", "/x"))
            .await
            .unwrap_err()
    };
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    assert!(text.contains("AssumeRoleWithWebIdentity"), "{text}");
    assert!(
        text.contains("InvalidIdentityToken: No OpenIDConnect provider found"),
        "{text}"
    );
    assert!(
        text.contains("arn:aws:iam::123456789012:role/cm-irsa"),
        "{text}"
    );
    assert!(!format!("{e:?}").contains(canary));
    assert!(!logs.text().contains(canary));
}

#[tokio::test]
async fn hostile_credential_endpoints_are_bounded_in_time_and_memory() {
    // Announces 10 GiB: refused from the header.
    let (huge, _) = double(|_, _| {
        b"HTTP/1.1 200 OK\r\ncontent-length: 10737418240\r\n\r\n{\"AccessKeyId\":".to_vec()
    });
    let started = Instant::now();
    let e = ssm(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &huge)])
        .fetch(&FetchRequest::for_key("aws_ssm", "/x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    eprintln!(
        "ECS endpoint announcing 10 GiB: {e} after {:?}",
        started.elapsed()
    );

    // A byte a second: ends at the source's timeout.
    let trickle = TcpListener::bind("127.0.0.1:0").unwrap();
    let trickle_url = format!("http://{}", trickle.local_addr().unwrap());
    std::thread::spawn(move || {
        while let Ok((mut s, _)) = trickle.accept() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n");
                while s.write_all(b"{").is_ok() {
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    // Never answers (accepted by the kernel, never read).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let dir = Dir::new();
    let token = dir.file("token", "jwt");
    for (what, vars) in [
        (
            "ECS endpoint, a byte a second",
            vec![("AWS_CONTAINER_CREDENTIALS_FULL_URI", trickle_url.as_str())],
        ),
        (
            "ECS endpoint, silent",
            vec![("AWS_CONTAINER_CREDENTIALS_FULL_URI", silent_url.as_str())],
        ),
        (
            "STS, silent",
            vec![
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
                ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
                ("AWS_ENDPOINT_URL_STS", silent_url.as_str()),
            ],
        ),
        (
            "IMDS, silent",
            vec![("AWS_EC2_METADATA_SERVICE_ENDPOINT", silent_url.as_str())],
        ),
    ] {
        let source = ssm(&vars).with_timeout(Duration::from_secs(2));
        let started = Instant::now();
        let e = source
            .fetch(&FetchRequest::for_key("aws_ssm", "/x"))
            .await
            .unwrap_err();
        let took = started.elapsed();
        eprintln!("{what}: {} after {took:?}: {e}", e.kind());
        assert!(
            matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unauthorized),
            "{what}: {e}"
        );
        assert!(took < Duration::from_secs(6), "{what}: {took:?}");
    }
    drop(silent);
}

// ---------------------------------------------------------------------------------------
// Signatures checked: a private moto with IAM enforced.

/// A `moto_server` child on a free port with IAM enforced after `free` unauthenticated
/// requests (the set-up's), killed when dropped; `None` (skipped) when it cannot start.
struct EnforcingMoto {
    child: std::process::Child,
    addr: String,
}

impl Drop for EnforcingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl EnforcingMoto {
    fn start(free: usize) -> Option<EnforcingMoto> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(
            std::env::var("CM_MOTO_BIN").unwrap_or_else(|_| "moto_server".into()),
        )
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())
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
        let moto = EnforcingMoto {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&moto.addr).is_err() {
            if Instant::now() > deadline {
                skip("moto_server (private)", "did not listen within 30 s");
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// An unauthenticated set-up request (one of the free ones): `service`'s query
    /// action, or a JSON `target`; the answer's body.
    fn setup(&self, service: &str, target: &str, body: &str) -> String {
        let mut s = std::net::TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).ok();
        let (ctype, target) = if target.is_empty() {
            ("application/x-www-form-urlencoded", String::new())
        } else {
            (
                "application/x-amz-json-1.1",
                format!("X-Amz-Target: {target}\r\n"),
            )
        };
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: {ctype}\r\n{target}Authorization: AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out:.400}");
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }

    fn iam(&self, pairs: &[(&str, &str)]) -> String {
        let encode = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let body = pairs
            .iter()
            .chain(&[("Version", "2010-05-08")])
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.setup("iam", "", &body)
    }
}

fn xml_text(xml: &str, tag: &str) -> String {
    let start = xml
        .find(&format!("<{tag}>"))
        .unwrap_or_else(|| panic!("no {tag}: {xml}"))
        + tag.len()
        + 2;
    let end = start + xml[start..].find(&format!("</{tag}>")).unwrap();
    xml[start..end].to_owned()
}

/// A role assumed from a profile's keys at an STS that checks the signature (moto with
/// IAM enforced), then used to read a parameter; a wrong secret key gets STS's own
/// `SignatureDoesNotMatch` (or moto's `InvalidClientTokenId`), naming the role.
#[tokio::test]
async fn assume_role_signature_is_checked_by_an_enforcing_sts() {
    let Some(moto) = EnforcingMoto::start(6) else {
        return;
    };
    moto.setup(
        "ssm",
        "AmazonSSM.PutParameter",
        r#"{"Name":"/cm/enforced","Value":"signed-right","Type":"SecureString"}"#,
    );
    moto.iam(&[("Action", "CreateUser"), ("UserName", "deployer")]);
    let key = moto.iam(&[("Action", "CreateAccessKey"), ("UserName", "deployer")]);
    let (id, secret) = (
        xml_text(&key, "AccessKeyId"),
        xml_text(&key, "SecretAccessKey"),
    );
    let allow = |action: &str| {
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [action], "Resource": "*"}]}).to_string()
    };
    moto.iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "deployer"),
        ("PolicyName", "assume"),
        ("PolicyDocument", &allow("sts:AssumeRole")),
    ]);
    let trust = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}).to_string();
    let role = moto.iam(&[
        ("Action", "CreateRole"),
        ("RoleName", "cm-reader"),
        ("AssumeRolePolicyDocument", &trust),
    ]);
    let role_arn = xml_text(&role, "Arn");
    moto.iam(&[
        ("Action", "PutRolePolicy"),
        ("RoleName", "cm-reader"),
        ("PolicyName", "read"),
        ("PolicyDocument", &allow("ssm:GetParameters")),
    ]);

    let dir = Dir::new();
    let endpoint = format!("http://{}", moto.addr);
    let profile = |secret: &str| {
        dir.file(
            &unique("config"),
            &format!(
                "[profile app]\nrole_arn = {role_arn}\nsource_profile = base\n[profile base]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
            ),
        )
    };
    let request = FetchRequest::for_key("aws_ssm", "/cm/enforced");
    let good = profile(&secret);
    let source = ssm(&[
        ("AWS_PROFILE", "app"),
        ("AWS_CONFIG_FILE", &good),
        ("AWS_ENDPOINT_URL", &endpoint),
    ]);
    assert_eq!(
        source.fetch(&request).await.unwrap(),
        RawValue::from("signed-right")
    );

    let bad = profile("Canary-Wrong-Secret-aa1");
    let source = ssm(&[
        ("AWS_PROFILE", "app"),
        ("AWS_CONFIG_FILE", &bad),
        ("AWS_ENDPOINT_URL", &endpoint),
    ]);
    let e = source.fetch(&request).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let text = e.to_string();
    assert!(text.contains("STS AssumeRole"), "{text}");
    assert!(text.contains(&role_arn), "{text}");
    assert!(
        text.contains("SignatureDoesNotMatch") || text.contains("InvalidClientTokenId"),
        "{text}"
    );
    assert!(!text.contains("Canary-Wrong-Secret"), "{text}");
    eprintln!("wrong source secret: {text}");
}
