//! Hostile servers for the `azure_keyvault` source: a raw TCP server on 127.0.0.1 playing
//! Key Vault (its 401 challenge for a request without a token) and Entra ID's token
//! endpoint (`POST /{tenant}/oauth2/v2.0/token`) as they would answer, except for one
//! target — the secret's GET, or the token request — which announces a huge
//! `Content-Length`, sends its answer one byte a second, or never answers. Each case
//! asserts a typed error within the field's 2 s, a bound on resident-memory growth, and
//! the client secret (the canary) in no error, `Debug` or TRACE log line.

use std::time::Duration;

use component_model::{AsyncAssign, AzureKeyVaultSource, ErrorKind, Sources};
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
    #[component(fetch_from = "azure_keyvault", key = "db-password", timeout = "2s")]
    password: String,
}

#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A head announcing a body of 1 GiB, then a few bytes, then nothing.
    HugeLength,
    /// A whole (valid) answer, one byte a second.
    Trickle,
    /// Reads the request and never answers nor closes.
    Silent,
    /// Not hostile in time or size: the token answer says it lives 2^64-1 seconds
    /// (`expires_in`) and until the year 10^12 (`expires_on`).
    HugeExpiry,
    /// The token endpoint refuses, its `error_description` the request's body (the
    /// client secret in it, form-encoded).
    Echo,
}

/// Which exchange is hostile.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// The GET of the secret (with the token).
    Vault,
    /// The token request.
    Token,
}

/// Reads one request (head and body); its head, `None` when the client went away.
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
    // The head, then the body (an echoing endpoint answers it back).
    let _ = head;
    Some(String::from_utf8_lossy(&data).to_string())
}

fn response(status: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json; charset=utf-8\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn serve(mut socket: TcpStream, port: u16, target: Target, hostile: Hostile) {
    let _ = tokio::time::timeout(SERVER_FOR, async {
        loop {
            let Some(head) = read_request(&mut socket).await else {
                return;
            };
            let is_token = head.starts_with("POST ") && head.contains("/oauth2/v2.0/token");
            let has_token = head.lines().any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
            let (ok, hostile_here) = if is_token {
                if matches!(hostile, Hostile::Echo) {
                    let body = head.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                    let answer = serde_json::json!({"error": "invalid_client", "error_description": format!("AADSTS7000215: Invalid client secret provided: {body}")}).to_string();
                    let _ = socket.write_all(&response("401 Unauthorized", "", &answer)).await;
                    continue;
                }
                let answer = match hostile {
                    Hostile::HugeExpiry => r#"{"token_type":"Bearer","expires_in":18446744073709551615,"expires_on":"99999999999999999999","access_token":"hostile-token"}"#,
                    _ => r#"{"token_type":"Bearer","expires_in":3599,"access_token":"hostile-token"}"#,
                };
                (
                    response("200 OK", "", answer),
                    target == Target::Token && !matches!(hostile, Hostile::HugeExpiry),
                )
            } else if !has_token {
                let challenge = format!(
                    "www-authenticate: Bearer authorization=\"https://login.microsoftonline.com/t1\", resource=\"https://0.0.1:{port}\"\r\n"
                );
                (
                    response("401 Unauthorized", &challenge, r#"{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}"#),
                    false,
                )
            } else {
                (
                    response("200 OK", "", r#"{"value":"v","id":"https://x/secrets/db-password/0a1b","attributes":{"enabled":true}}"#),
                    target == Target::Vault,
                )
            };
            if !hostile_here {
                if socket.write_all(&ok).await.is_err() {
                    return;
                }
                continue;
            }
            match hostile {
                Hostile::HugeLength => {
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n{\"value\":")
                        .await;
                    tokio::time::sleep(SERVER_FOR).await;
                }
                Hostile::Trickle => {
                    for b in ok {
                        if socket.write_all(&[b]).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                Hostile::Silent | Hostile::HugeExpiry | Hostile::Echo => {
                    tokio::time::sleep(SERVER_FOR).await
                }
            }
            return;
        }
    })
    .await;
}

/// A hostile server's URL (the port is known once bound: the challenge names it).
async fn hostile_server(target: Target, hostile: Hostile) -> String {
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let cell = port_cell.clone();
    let port = tcp_server(move |s| {
        let port = cell.get().copied().unwrap_or(0);
        serve(s, port, target, hostile)
    })
    .await;
    let _ = port_cell.set(port);
    format!("http://127.0.0.1:{port}")
}

/// A client-secret source of the hostile server at `url`, the canary its secret.
fn hostile_source(url: &str) -> AzureKeyVaultSource {
    AzureKeyVaultSource::new(url)
        .with_client_secret("t1", "app", CANARY)
        .with_authority_host(url)
        .with_max_body(MIB)
}

async fn case(what: &str, target: Target, hostile: Hostile, kind: ErrorKind) {
    let _serial = serial().await;
    let url = hostile_server(target, hostile).await;
    let kv = hostile_source(&url);
    assert_no_canary("the source's Debug", &format!("{kv:?}"));
    let sources = Sources::new().register("azure_keyvault", kv);
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Secret::fetch_all_components_with(&sources)).await
    };
    eprintln!(
        "azure_keyvault {what}: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(
        m.output,
        kind,
        "Secret.password",
        "azure_keyvault",
        &logs.text(),
    );
    assert_eq!(e.key(), Some("db-password"));
}

#[tokio::test]
async fn azure_keyvault_a_huge_content_length_is_refused_before_reading() {
    case(
        "vault huge content-length",
        Target::Vault,
        Hostile::HugeLength,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_body_one_byte_a_second_times_out() {
    case(
        "vault one byte a second",
        Target::Vault,
        Hostile::Trickle,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_silent_vault_times_out() {
    case(
        "vault silent",
        Target::Vault,
        Hostile::Silent,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_token_endpoint_announcing_a_huge_body_is_refused() {
    case(
        "token huge content-length",
        Target::Token,
        Hostile::HugeLength,
        ErrorKind::TooLarge,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_token_endpoint_one_byte_a_second_times_out() {
    case(
        "token one byte a second",
        Target::Token,
        Hostile::Trickle,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_silent_token_endpoint_times_out() {
    case(
        "token silent",
        Target::Token,
        Hostile::Silent,
        ErrorKind::Timeout,
    )
    .await;
}

/// Review finding 1: `expires_in` = 2^64-1 overflowed `Instant + Duration` ("overflow
/// when adding duration to instant"): a panic in the caller. The lifetime is capped.
#[tokio::test]
async fn azure_keyvault_a_token_living_2_pow_64_seconds_does_not_panic() {
    let _serial = serial().await;
    let url = hostile_server(Target::Token, Hostile::HugeExpiry).await;
    let sources = Sources::new().register("azure_keyvault", hostile_source(&url));
    let m = measure(Secret::fetch_all_components_with(&sources)).await;
    eprintln!("azure_keyvault token expires_in 2^64-1: {:?}", m.elapsed);
    assert_bounded(&m, LIMIT, 32);
    assert_eq!(m.output.expect("read with the capped token").password, "v");
}

/// 25 secrets, no field timeout: only the source's own bounds them.
#[allow(dead_code)] // the fetch's outcome is what counts, not the values
#[derive(AsyncAssign, Debug)]
struct Many {
    #[component(fetch_from = "azure_keyvault", key = "s01")]
    s01: String,
    #[component(fetch_from = "azure_keyvault", key = "s02")]
    s02: String,
    #[component(fetch_from = "azure_keyvault", key = "s03")]
    s03: String,
    #[component(fetch_from = "azure_keyvault", key = "s04")]
    s04: String,
    #[component(fetch_from = "azure_keyvault", key = "s05")]
    s05: String,
    #[component(fetch_from = "azure_keyvault", key = "s06")]
    s06: String,
    #[component(fetch_from = "azure_keyvault", key = "s07")]
    s07: String,
    #[component(fetch_from = "azure_keyvault", key = "s08")]
    s08: String,
    #[component(fetch_from = "azure_keyvault", key = "s09")]
    s09: String,
    #[component(fetch_from = "azure_keyvault", key = "s10")]
    s10: String,
    #[component(fetch_from = "azure_keyvault", key = "s11")]
    s11: String,
    #[component(fetch_from = "azure_keyvault", key = "s12")]
    s12: String,
    #[component(fetch_from = "azure_keyvault", key = "s13")]
    s13: String,
    #[component(fetch_from = "azure_keyvault", key = "s14")]
    s14: String,
    #[component(fetch_from = "azure_keyvault", key = "s15")]
    s15: String,
    #[component(fetch_from = "azure_keyvault", key = "s16")]
    s16: String,
    #[component(fetch_from = "azure_keyvault", key = "s17")]
    s17: String,
    #[component(fetch_from = "azure_keyvault", key = "s18")]
    s18: String,
    #[component(fetch_from = "azure_keyvault", key = "s19")]
    s19: String,
    #[component(fetch_from = "azure_keyvault", key = "s20")]
    s20: String,
    #[component(fetch_from = "azure_keyvault", key = "s21")]
    s21: String,
    #[component(fetch_from = "azure_keyvault", key = "s22")]
    s22: String,
    #[component(fetch_from = "azure_keyvault", key = "s23")]
    s23: String,
    #[component(fetch_from = "azure_keyvault", key = "s24")]
    s24: String,
    #[component(fetch_from = "azure_keyvault", key = "s25")]
    s25: String,
}

/// No field timeout: the source's own (1 s) bounds the case.
#[derive(AsyncAssign, Debug)]
struct Untimed {
    #[component(fetch_from = "azure_keyvault", key = "db-password")]
    password: String,
}

/// The source's timeout, no field's.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(1);

/// Review finding 2: every one of 25 fields waited for the token lock, then asked again
/// the silent endpoint itself: 25 × the source's timeout. Now the first attempt's error
/// is every field's.
#[tokio::test]
async fn azure_keyvault_25_fields_against_a_silent_token_endpoint_wait_one_timeout() {
    let _serial = serial().await;
    let url = hostile_server(Target::Token, Hostile::Silent).await;
    let kv = hostile_source(&url).with_timeout(SOURCE_TIMEOUT);
    let sources = Sources::new().register("azure_keyvault", kv);
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Many::fetch_all_components_with(&sources)).await
    };
    eprintln!(
        "azure_keyvault 25 fields, token silent: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, SOURCE_TIMEOUT * 2, 32);
    let errors = m.output.expect_err("the token never comes");
    assert_eq!(errors.len(), 25, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert_no_canary("an error", &e.to_string());
    }
    assert_no_canary("the TRACE log", &logs.text());
}

/// Review finding 11: a case bounded by the source's timeout, not a field's.
async fn untimed_case(what: &str, target: Target, hostile: Hostile, kind: ErrorKind) {
    let _serial = serial().await;
    let url = hostile_server(target, hostile).await;
    let kv = hostile_source(&url).with_timeout(SOURCE_TIMEOUT);
    let sources = Sources::new().register("azure_keyvault", kv);
    let logs = CapturedLogs::default();
    let m = {
        let _g = capture(&logs);
        measure(Untimed::fetch_all_components_with(&sources)).await
    };
    eprintln!(
        "azure_keyvault {what}, no field timeout: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, SOURCE_TIMEOUT * 2, 32);
    let e = assert_failed(
        m.output,
        kind,
        "Untimed.password",
        "azure_keyvault",
        &logs.text(),
    );
    assert_eq!(e.key(), Some("db-password"));
}

#[tokio::test]
async fn azure_keyvault_a_silent_vault_times_out_on_the_sources_timeout() {
    untimed_case(
        "vault silent",
        Target::Vault,
        Hostile::Silent,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_vault_one_byte_a_second_times_out_on_the_sources_timeout() {
    untimed_case(
        "vault one byte a second",
        Target::Vault,
        Hostile::Trickle,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_silent_token_endpoint_times_out_on_the_sources_timeout() {
    untimed_case(
        "token silent",
        Target::Token,
        Hostile::Silent,
        ErrorKind::Timeout,
    )
    .await;
}

#[tokio::test]
async fn azure_keyvault_a_token_endpoint_one_byte_a_second_times_out_on_the_sources_timeout() {
    untimed_case(
        "token one byte a second",
        Target::Token,
        Hostile::Trickle,
        ErrorKind::Timeout,
    )
    .await;
}

/// Review finding 9: a token endpoint echoing the request in its `error_description`
/// (the client secret in it) — the store's words reach the error without the secret.
#[tokio::test]
async fn azure_keyvault_a_token_endpoint_echoing_the_secret_leaks_nothing() {
    case(
        "token echoes the request",
        Target::Token,
        Hostile::Echo,
        ErrorKind::Unauthorized,
    )
    .await;
}
