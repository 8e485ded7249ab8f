//! Hostile servers for the `aws_secrets` and `aws_ssm` sources: a raw TCP server on
//! 127.0.0.1 in place of the AWS endpoint that, for every signed request, announces a huge
//! `Content-Length`, sends its answer one byte a second, never answers, or (SSM's
//! `GetParametersByPath`) hands out `NextToken`s without end. Each case asserts a typed
//! error within its bound, a bound on resident-memory growth, and the secret access key
//! and session token (the canary) in no error, `Debug` or TRACE log line.

use std::time::Duration;

use component_model::{
    AsyncAssign, AwsSecretsSource, AwsSsmSource, ErrorKind, FetchRequest, Source, Sources,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CapturedLogs, MIB, SERVER_FOR, assert_bounded, assert_failed, assert_no_canary,
    capture, measure, serial, tcp_server,
};

/// The field's `timeout` in every case.
const LIMIT: Duration = Duration::from_secs(2);

#[derive(AsyncAssign, Debug)]
struct Secret {
    #[component(fetch_from = "aws_secrets", key = "app/db", timeout = "2s")]
    db: String,
}

#[derive(AsyncAssign, Debug)]
struct Param {
    #[component(fetch_from = "aws_ssm", key = "/app/port", timeout = "2s")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Tree {
    #[component(
        fetch_from = "aws_ssm",
        prefix = "/app/",
        max_keys = 10,
        timeout = "2s"
    )]
    all: std::collections::HashMap<String, String>,
}

#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A head announcing a body of 1 GiB, then a few bytes, then nothing.
    HugeLength,
    /// A whole (valid) answer, one byte a second.
    Trickle,
    /// Reads the request and never answers nor closes.
    Silent,
    /// Empty pages, each with a `NextToken`, without end.
    EndlessPages,
    /// Empty pages with a `NextToken`, each after 300 ms: every request well within its
    /// timeout, the walk without end.
    SlowPages,
    /// `BatchGetSecretValue` pages of 200 KiB of values each, with a `NextToken`.
    FullPages,
}

/// Reads one request (head and body); `None` when the client went away.
async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if data.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while data.len() < head_end + length.min(64 * 1024) {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&data).to_string())
}

fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(mut socket: TcpStream, hostile: Hostile) {
    let _ = tokio::time::timeout(SERVER_FOR, async {
        loop {
            let Some(_head) = read_request(&mut socket).await else {
                return;
            };
            match hostile {
                Hostile::HugeLength => {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 1073741824\r\n\r\n{\"SecretValues\":")
                        .await;
                    tokio::time::sleep(SERVER_FOR).await;
                }
                Hostile::Trickle => {
                    let r = json_response(r#"{"SecretValues":[],"Errors":[],"Parameters":[]}"#);
                    for b in r {
                        if socket.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                Hostile::Silent => tokio::time::sleep(SERVER_FOR).await,
                Hostile::SlowPages => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let r = json_response(r#"{"Parameters":[],"NextToken":"more"}"#);
                    if socket.write_all(&r).await.is_err() {
                        return;
                    }
                    continue;
                }
                Hostile::FullPages => {
                    let filler = "x".repeat(200 * 1024);
                    let body = format!(
                        r#"{{"SecretValues":[{{"Name":"other","SecretString":"{filler}"}}],"NextToken":"more"}}"#
                    );
                    if socket.write_all(&json_response(&body)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Hostile::EndlessPages => {
                    let r = json_response(r#"{"Parameters":[],"NextToken":"more"}"#);
                    if socket.write_all(&r).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            return;
        }
    })
    .await;
}

fn secrets(port: u16) -> AwsSecretsSource {
    AwsSecretsSource::new("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_credentials("AKIDHOSTILE", CANARY, Some(CANARY.to_owned()))
        .with_max_body(MIB)
}

fn ssm(port: u16) -> AwsSsmSource {
    AwsSsmSource::new("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_credentials("AKIDHOSTILE", CANARY, Some(CANARY.to_owned()))
        .with_max_body(MIB)
}

async fn secret_case(what: &str, hostile: Hostile, kind: ErrorKind) {
    let _serial = serial().await;
    let port = tcp_server(move |s| serve(s, hostile)).await;
    let sm = secrets(port);
    assert_no_canary("the source's Debug", &format!("{sm:?}"));
    let sources = Sources::new().register("aws_secrets", sm);
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Secret::fetch_all_components_with(&sources)).await
    };
    eprintln!("aws_secrets {what}: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(m.output, kind, "Secret.db", "aws_secrets", &logs.text());
    assert_eq!(e.key(), Some("app/db"));
}

async fn param_case(what: &str, hostile: Hostile, kind: ErrorKind) {
    let _serial = serial().await;
    let port = tcp_server(move |s| serve(s, hostile)).await;
    let sources = Sources::new().register("aws_ssm", ssm(port));
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Param::fetch_all_components_with(&sources)).await
    };
    eprintln!("aws_ssm {what}: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(m.output, kind, "Param.port", "aws_ssm", &logs.text());
    assert_eq!(e.key(), Some("/app/port"));
}

#[tokio::test]
async fn aws_secrets_a_huge_content_length_is_refused_before_reading() {
    secret_case(
        "huge content-length",
        Hostile::HugeLength,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn aws_secrets_a_body_one_byte_a_second_times_out() {
    secret_case("one byte a second", Hostile::Trickle, ErrorKind::Timeout).await;
}

#[tokio::test]
async fn aws_secrets_a_silent_server_times_out() {
    secret_case("silent", Hostile::Silent, ErrorKind::Timeout).await;
}

#[tokio::test]
async fn aws_ssm_a_huge_content_length_is_refused_before_reading() {
    param_case(
        "huge content-length",
        Hostile::HugeLength,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn aws_ssm_a_body_one_byte_a_second_times_out() {
    param_case("one byte a second", Hostile::Trickle, ErrorKind::Timeout).await;
}

#[tokio::test]
async fn aws_ssm_a_silent_server_times_out() {
    param_case("silent", Hostile::Silent, ErrorKind::Timeout).await;
}

#[tokio::test]
async fn aws_ssm_pages_without_end_stop_at_a_bound() {
    let _serial = serial().await;
    let port = tcp_server(move |s| serve(s, Hostile::EndlessPages)).await;
    let sources = Sources::new().register("aws_ssm", ssm(port));
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Tree::fetch_all_components_with(&sources)).await
    };
    eprintln!(
        "aws_ssm endless pages: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(
        m.output,
        ErrorKind::Unavailable,
        "Tree.all",
        "aws_ssm",
        &logs.text(),
    );
    assert!(e.to_string().contains("pages"), "{e}");
}

#[tokio::test]
async fn aws_ssm_a_walk_of_slow_pages_stops_at_its_deadline() {
    let _serial = serial().await;
    let port = tcp_server(move |s| serve(s, Hostile::SlowPages)).await;
    // Each page answers in 300 ms, well within the 2 s request timeout; max_keys 10,000
    // allowed 1,050 pages (5 min): the walk as a whole stops at 1 s.
    let source = ssm(port)
        .with_timeout(LIMIT)
        .with_walk_timeout(Duration::from_secs(1));
    let tree = FetchRequest::for_key("aws_ssm", "").with_param("prefix", "/app/");
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(async {
            tokio::time::timeout(Duration::from_secs(30), source.fetch(&tree))
                .await
                .expect("the walk ends within 30 s")
        })
        .await
    };
    eprintln!("aws_ssm slow pages: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 32);
    let e = m.output.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("/app/"), "{e}");
    assert_no_canary("the error", &e.to_string());
    assert_no_canary("the TRACE logs", &logs.text());
}

#[tokio::test]
async fn aws_secrets_batch_pages_full_of_values_are_bounded_in_total() {
    let _serial = serial().await;
    let port = tcp_server(move |s| serve(s, Hostile::FullPages)).await;
    // Each page (200 KiB) is under the 1 MiB max_body; 20 of them would pile up 4 MiB.
    let source = secrets(port);
    let db = FetchRequest::for_key("aws_secrets", "app/db");
    let api = FetchRequest::for_key("aws_secrets", "app/api");
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(source.fetch_many(&[&db, &api])).await
    };
    eprintln!(
        "aws_secrets full pages: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, LIMIT, 32);
    for answer in &m.output {
        let e = answer.as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
        assert_no_canary("the error", &e.to_string());
    }
    assert_no_canary("the TRACE logs", &logs.text());
}

/// A Parameter Store that denies `/app/denied` (as an IAM policy on its ARN would): a
/// `GetParameters` naming it is refused as a whole, as AWS does. moto checks actions only,
/// never resources, so this case needs a server of its own.
async fn resource_policy_ssm(mut socket: TcpStream) {
    while let Some(request) = read_request(&mut socket).await {
        let body = request.split("\r\n\r\n").nth(1).unwrap_or("");
        let names: Vec<String> = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| serde_json::from_value(v["Names"].clone()).ok())
            .unwrap_or_default();
        let answer = if names.iter().any(|n| n == "/app/denied") {
            let body = r#"{"__type":"AccessDeniedException","message":"User: arn:aws:iam::1:user/u is not authorized to perform: ssm:GetParameters on resource: arn:aws:ssm:us-east-1:1:parameter/app/denied"}"#;
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        } else {
            let found: Vec<serde_json::Value> = names
                .iter()
                .map(|n| serde_json::json!({"Name": n, "Type": "String", "Value": "ok", "Version": 1}))
                .collect();
            json_response(
                &serde_json::json!({"Parameters": found, "InvalidParameters": []}).to_string(),
            )
        };
        if socket.write_all(&answer).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn aws_ssm_one_denied_name_fails_only_its_own_field() {
    let _serial = serial().await;
    let port = tcp_server(resource_policy_ssm).await;
    let source = ssm(port);
    let keys = ["/app/a", "/app/denied", "/app/b"];
    let requests: Vec<FetchRequest> = keys
        .iter()
        .map(|k| FetchRequest::for_key("aws_ssm", *k))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    assert!(answers[0].is_ok(), "{:?}", answers[0]);
    assert!(answers[2].is_ok(), "{:?}", answers[2]);
    let e = answers[1].as_ref().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("parameter `/app/denied`") && msg.contains("AccessDeniedException"),
        "{msg}"
    );
}

#[tokio::test]
async fn aws_secrets_pinned_reads_are_at_most_16_at_once() {
    let _serial = serial().await;
    // A server that never answers, counting the connections it accepted.
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    let port = tcp_server(move |mut socket| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let mut buf = [0u8; 4096];
            let _ = tokio::time::timeout(SERVER_FOR, async {
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    })
    .await;
    let source = secrets(port).with_timeout(Duration::from_secs(1));
    let requests: Vec<FetchRequest> = (0..40)
        .map(|i| {
            FetchRequest::for_key("aws_secrets", format!("app/s{i}"))
                .with_param("version_id", format!("v{i}"))
        })
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let first_wave = accepted.clone();
    // Half-way through the first requests' timeout, none has given up yet: what was
    // accepted by then is what was sent at once.
    let snapshot = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        first_wave.load(std::sync::atomic::Ordering::SeqCst)
    });
    let m = measure(source.fetch_many(&refs)).await;
    let at_once = snapshot.await.unwrap();
    eprintln!(
        "aws_secrets 40 pinned reads, silent server: {:?}, {at_once} requests at once",
        m.elapsed
    );
    assert!(
        m.output
            .iter()
            .all(|a| a.as_ref().unwrap_err().kind() == ErrorKind::Timeout)
    );
    assert!(at_once <= 16, "{at_once} requests at once");
    assert!(at_once >= 2, "concurrent still: {at_once}");
}
