//! Hostile servers for the `gcp_secrets` source (issue 36): a raw TCP server on 127.0.0.1
//! playing Google's OAuth token endpoint (`POST /token`, for an `authorized_user`
//! whose client secret is the canary), the metadata server (`/computeMetadata/v1/...`)
//! and Secret Manager (`GET /v1/...:access`); one of the three announces a huge `Content-Length`, sends its answer one byte a second, or never
//! answers, while the other answers as Google does. Each case asserts a typed error within
//! its bound (the field's `timeout`, or the source's own `with_timeout` for the token
//! endpoint cases, which name no field timeout), a bound on resident-memory growth, and the
//! canary in no error, `Debug` or TRACE log line.

use std::time::Duration;

use component_model::{AsyncAssign, ErrorKind, GcpSecretsSource, SecretString, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CapturedLogs, MIB, assert_bounded, assert_failed, assert_no_canary, capture, measure,
    serial,
};

/// The bound of every case: the field's `timeout`, or the source's.
const LIMIT: Duration = Duration::from_secs(2);

/// How long a hostile server goes on at most.
const SERVER_FOR: Duration = Duration::from_secs(20);

#[derive(AsyncAssign, Debug)]
struct Gcp {
    #[component(fetch_from = "gcp_secrets", key = "db", timeout = "2s")]
    password: SecretString,
}

/// No field timeout: the source's own (`with_timeout(2 s)`) bounds the token request.
#[derive(AsyncAssign, Debug)]
struct GcpNoTimeout {
    #[component(fetch_from = "gcp_secrets", key = "db")]
    password: SecretString,
}

#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A head announcing a body of 1 GiB, then a few bytes, then nothing.
    HugeLength,
    /// A whole response, one byte a second.
    Trickle,
    /// Reads the request and never answers nor closes.
    Silent,
}

/// Which of the two endpoints is hostile.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Where {
    Token,
    Api,
    /// The metadata server's token (no credentials file).
    Metadata,
}

/// Reads one request (head and its `Content-Length` body); its path without the query.
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
    let target = head.split_whitespace().nth(1)?;
    Some(target.split('?').next().unwrap_or(target).to_owned())
}

fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

const TOKEN: &str = r#"{"access_token":"ya29.hostile","expires_in":3600,"token_type":"Bearer"}"#;
/// `hunter2` and its CRC32C.
const ACCESS: &str = r#"{"name":"projects/p/secrets/db/versions/1","payload":{"data":"aHVudGVyMg==","dataCrc32c":"1736498283"}}"#;

async fn server(hostile: Hostile, at: Where) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(SERVER_FOR, serve(&mut socket, hostile, at)).await;
            });
        }
    });
    port
}

async fn serve(socket: &mut TcpStream, hostile: Hostile, at: Where) {
    loop {
        let Some(path) = read_request(socket).await else {
            return;
        };
        let here = if path == "/token" {
            Where::Token
        } else if path.starts_with("/computeMetadata/") {
            Where::Metadata
        } else {
            Where::Api
        };
        if here == at {
            return behave(socket, hostile).await;
        }
        let body = if here == Where::Api { ACCESS } else { TOKEN };
        if socket.write_all(&json_response(body)).await.is_err() {
            return;
        }
    }
}

async fn behave(socket: &mut TcpStream, hostile: Hostile) {
    let (mut reading, mut writing) = socket.split();
    let closed = async move {
        let mut buf = [0u8; 1024];
        while matches!(reading.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let act = async move {
        match hostile {
            Hostile::HugeLength => {
                let _ = writing
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{\"payload\":")
                    .await;
                tokio::time::sleep(SERVER_FOR).await;
            }
            Hostile::Trickle => {
                for b in json_response(ACCESS) {
                    if writing.write_all(&[b]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Hostile::Silent => tokio::time::sleep(SERVER_FOR).await,
        }
    };
    tokio::select! {
        () = closed => {}
        () = act => {}
    }
}

fn source_for(port: u16, at: Where) -> GcpSecretsSource {
    if at == Where::Metadata {
        return GcpSecretsSource::new()
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_project("p")
            .with_metadata_host(format!("127.0.0.1:{port}"))
            .with_max_body(MIB)
            .with_timeout(LIMIT);
    }
    source(port)
}

fn source(port: u16) -> GcpSecretsSource {
    let credentials = serde_json::json!({
        "type": "authorized_user",
        "client_id": "hostile.apps.googleusercontent.com",
        "client_secret": CANARY,
        "refresh_token": format!("1//{CANARY}"),
        "token_uri": format!("http://127.0.0.1:{port}/token"),
    });
    GcpSecretsSource::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_project("p")
        .with_credentials_json(credentials.to_string())
        .with_max_body(MIB)
        .with_timeout(LIMIT)
}

async fn case(what: &str, hostile: Hostile, at: Where, kind: ErrorKind) {
    let _serial = serial().await;
    let port = server(hostile, at).await;
    let gcp = source_for(port, at);
    assert_no_canary("the source's Debug", &format!("{gcp:?}"));
    let sources = Sources::new().register("gcp_secrets", gcp);
    let logs = CapturedLogs::default();
    let (m, path) = {
        let _g = capture(&logs);
        match at {
            Where::Api => (
                measure(async { Gcp::fetch_all_components_with(&sources).await.map(|_| ()) }).await,
                "Gcp.password",
            ),
            Where::Token | Where::Metadata => (
                measure(async {
                    GcpNoTimeout::fetch_all_components_with(&sources)
                        .await
                        .map(|_| ())
                })
                .await,
                "GcpNoTimeout.password",
            ),
        }
    };
    eprintln!("gcp {what}: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(m.output, kind, path, "gcp_secrets", &logs.text());
    let text = e.to_string();
    if at != Where::Api {
        assert!(
            text.contains("access token"),
            "says it was the token: {text}"
        );
    }
}

#[tokio::test]
async fn gcp_a_sane_server_answers() {
    // The servers' normal answers are right: the cases fail for their hostility only.
    let _serial = serial().await;
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    while let Some(path) = read_request(&mut socket).await {
                        let body = if path == "/token" { TOKEN } else { ACCESS };
                        if socket.write_all(&json_response(body)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    };
    let sources = Sources::new().register("gcp_secrets", source(port));
    let got = Gcp::fetch_all_components_with(&sources).await.unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(got.password.expose_secret(), "hunter2");
}

#[tokio::test]
async fn gcp_api_a_huge_content_length_is_refused_before_reading() {
    case(
        "api huge content-length",
        Hostile::HugeLength,
        Where::Api,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn gcp_api_a_trickling_answer_times_out() {
    case(
        "api trickle",
        Hostile::Trickle,
        Where::Api,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn gcp_api_a_silent_server_times_out() {
    case(
        "api silent",
        Hostile::Silent,
        Where::Api,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn gcp_token_endpoint_a_huge_content_length_is_refused_before_reading() {
    case(
        "token huge content-length",
        Hostile::HugeLength,
        Where::Token,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn gcp_token_endpoint_trickling_times_out_by_the_sources_timeout() {
    case(
        "token trickle",
        Hostile::Trickle,
        Where::Token,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn gcp_token_endpoint_silent_times_out_by_the_sources_timeout() {
    case(
        "token silent",
        Hostile::Silent,
        Where::Token,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn gcp_metadata_server_a_huge_content_length_is_refused_before_reading() {
    case(
        "metadata huge content-length",
        Hostile::HugeLength,
        Where::Metadata,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn gcp_metadata_server_silent_times_out_by_the_sources_timeout() {
    case(
        "metadata silent",
        Hostile::Silent,
        Where::Metadata,
        ErrorKind::Timeout,
    )
    .await;
}

/// A server answering as Google does, its token answer being `token`; counts the token
/// requests.
async fn answering(token: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens = std::sync::Arc::new(AtomicUsize::new(0));
    let count = tokens.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                while let Some(path) = read_request(&mut socket).await {
                    let body = if path == "/token" {
                        count.fetch_add(1, Ordering::SeqCst);
                        token
                    } else {
                        ACCESS
                    };
                    if socket.write_all(&json_response(body)).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, tokens)
}

#[tokio::test]
async fn gcp_token_endpoint_absurd_expires_in_neither_panics_nor_refetches_forever() {
    // `expires_in` = u64::MAX overflowed `Instant + Duration` (a panic); 0 is a token
    // good for this request only.
    use secrecy::ExposeSecret;
    use std::sync::atomic::Ordering;
    let _serial = serial().await;
    for (token, most) in [
        (
            r#"{"access_token":"ya29.h","expires_in":18446744073709551615}"#,
            1,
        ),
        (r#"{"access_token":"ya29.h","expires_in":0}"#, 3),
        // As a string (an int64 in JSON): was refused as "not a token".
        (r#"{"access_token":"ya29.h","expires_in":"3600"}"#, 1),
    ] {
        let (port, tokens) = answering(token).await;
        let sources = Sources::new().register("gcp_secrets", source(port));
        for _ in 0..3 {
            let got = Gcp::fetch_all_components_with(&sources).await.unwrap();
            assert_eq!(got.password.expose_secret(), "hunter2", "{token}");
        }
        let n = tokens.load(Ordering::SeqCst);
        assert!((1..=most).contains(&n), "{token}: {n} token requests");
    }
}

/// Five fields, no field timeout: the source's own bounds each token request.
#[allow(dead_code)] // the fetch's outcome is what counts, not the values
#[derive(AsyncAssign, Debug)]
struct GcpFive {
    #[component(fetch_from = "gcp_secrets", key = "s1")]
    a: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "s2")]
    b: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "s3")]
    c: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "s4")]
    d: SecretString,
    #[component(fetch_from = "gcp_secrets", key = "s5")]
    e: SecretString,
}

#[tokio::test]
async fn gcp_a_silent_token_endpoint_costs_one_timeout_for_five_fields() {
    // The fields waiting while the token request timed out get its error: they used to
    // send one request each, one after the other (5 x the timeout).
    for at in [Where::Token, Where::Metadata] {
        let _serial = serial().await;
        let port = server(Hostile::Silent, at).await;
        let sources = Sources::new().register("gcp_secrets", source_for(port, at));
        let logs = CapturedLogs::default();
        let m = {
            let _g = capture(&logs);
            measure(async {
                GcpFive::fetch_all_components_with(&sources)
                    .await
                    .map(|_| ())
            })
            .await
        };
        eprintln!("gcp 5 fields, silent {at:?}: {:?}", m.elapsed);
        assert_bounded(&m, LIMIT, 32);
        let errors = m.output.expect_err("the fetch must fail");
        assert_eq!(errors.len(), 5, "{errors:#?}");
        for e in &errors {
            assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
            assert!(e.to_string().contains("access token"), "{e}");
            assert_no_canary("an error", &format!("{e} {e:?}"));
        }
        assert_no_canary("the TRACE logs", &logs.text());
    }
}

#[tokio::test]
async fn gcp_a_silent_metadata_server_costs_one_timeout_for_the_project() {
    // No project named: the metadata server's project is asked once for all fields.
    let _serial = serial().await;
    let port = server(Hostile::Silent, Where::Metadata).await;
    let gcp = GcpSecretsSource::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_metadata_host(format!("127.0.0.1:{port}"))
        .with_timeout(LIMIT);
    let sources = Sources::new().register("gcp_secrets", gcp);
    let m = measure(async {
        GcpFive::fetch_all_components_with(&sources)
            .await
            .map(|_| ())
    })
    .await;
    eprintln!("gcp 5 fields, silent metadata project: {:?}", m.elapsed);
    assert_bounded(&m, LIMIT, 32);
    let errors = m.output.expect_err("the fetch must fail");
    assert_eq!(errors.len(), 5, "{errors:#?}");
}
