//! The websocket opening handshake (RFC 6455 §4.1), written here rather than left to
//! tungstenite: tungstenite logs the whole request at TRACE — the query string and every
//! header — so a token in the URL (`?token=…`) or an `Authorization` header would reach
//! the application's logs. Here the request is written and the answer read without a log
//! line; the URL's `user:password@` is sent as `Authorization: Basic` (tungstenite drops
//! it); the answer's head is bounded at [`MAX_HEAD`] bytes before it is buffered.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::error::{ErrorKind, SourceError};

/// The largest response head (status line and headers) read, in bytes.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// The request line and headers for `uri`, and the key the answer must prove it read.
fn request(uri: &Uri) -> Result<(Vec<u8>, String), SourceError> {
    let host = uri.host().ok_or_else(|| config("the URL has no host"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let path = if path.is_empty() { "/" } else { path };
    let key = generate_key();
    // An IPv6 host keeps its brackets in `Host`.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let host = match uri.port_u16() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    let mut out = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(userinfo) = uri
        .authority()
        .and_then(|a| a.as_str().rsplit_once('@'))
        .map(|(u, _)| u)
    {
        let decoded = percent_encoding::percent_decode_str(userinfo).decode_utf8_lossy();
        let basic = base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes());
        out.push_str("Authorization: Basic ");
        out.push_str(&basic);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok((out.into_bytes(), key))
}

fn config(what: &str) -> SourceError {
    SourceError::new(ErrorKind::Config).with_message(what.to_owned())
}

fn unavailable(what: impl std::fmt::Display) -> SourceError {
    SourceError::new(ErrorKind::Unavailable).with_message(format!("handshake failed: {what}"))
}

/// Sends the upgrade request for `uri` on `stream` and reads the server's answer: the
/// bytes the server sent after its head (the start of the first frames), once it agreed.
pub(crate) async fn open<S>(stream: &mut S, uri: &Uri) -> Result<Vec<u8>, SourceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (request, key) = request(uri)?;
    stream.write_all(&request).await.map_err(unavailable)?;
    stream.flush().await.map_err(unavailable)?;
    let mut buffer = Vec::with_capacity(1024);
    let end = loop {
        let before = buffer.len();
        buffer.resize(before + 1024, 0);
        let n = stream
            .read(&mut buffer[before..])
            .await
            .map_err(unavailable)?;
        buffer.truncate(before + n);
        if n == 0 {
            return Err(unavailable(
                "the server closed the connection before answering",
            ));
        }
        // Search from a little before what was just read: the end may straddle reads.
        let from = before.saturating_sub(3);
        if let Some(at) = buffer[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            break from + at + 4;
        }
        if buffer.len() > MAX_HEAD {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "the server's answer to the upgrade has a head over {} KiB",
                MAX_HEAD / 1024
            )));
        }
    };
    if end > MAX_HEAD {
        return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
            "the server's answer to the upgrade has a head over {} KiB",
            MAX_HEAD / 1024
        )));
    }
    check(&buffer[..end], &key)?;
    Ok(buffer.split_off(end))
}

/// Whether `head` accepts the upgrade asked with `key`.
fn check(head: &[u8], key: &str) -> Result<(), SourceError> {
    // As many as tungstenite accepts: proxies add headers to a 101 answer.
    let mut headers = [httparse::EMPTY_HEADER; 124];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(unavailable("an incomplete HTTP answer")),
        Err(e) => return Err(unavailable(format_args!("not an HTTP answer: {e}"))),
    }
    let status = response.code.unwrap_or(0);
    if status != 101 {
        let kind = match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::Unavailable,
        };
        let reason = response.reason.unwrap_or("");
        return Err(SourceError::new(kind).with_message(format!(
            "the server refused the upgrade with HTTP {status} {reason}"
        )));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let says = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !says("upgrade", "websocket") || !says("connection", "upgrade") {
        return Err(unavailable("the answer does not upgrade to a websocket"));
    }
    if header("sec-websocket-accept").as_deref() != Some(derive_accept_key(key.as_bytes()).as_str())
    {
        return Err(unavailable(
            "the answer's Sec-WebSocket-Accept does not match the key sent",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(key: &str, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n{extra}",
            derive_accept_key(key.as_bytes())
        )
    }

    /// The request the client wrote, and its key.
    async fn served(
        uri: &str,
        reply: impl FnOnce(&str) -> String + Send + 'static,
    ) -> (Result<Vec<u8>, SourceError>, String) {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let uri: Uri = uri.parse().unwrap();
        let serve = tokio::spawn(async move {
            let mut got = vec![0; 4096];
            let n = server.read(&mut got).await.unwrap();
            let text = String::from_utf8(got[..n].to_vec()).unwrap();
            let key = text
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap()
                .to_owned();
            server.write_all(reply(&key).as_bytes()).await.unwrap();
            text
        });
        let out = open(&mut client, &uri).await;
        (out, serve.await.unwrap())
    }

    #[tokio::test]
    async fn the_request_carries_path_query_host_and_basic_credentials() {
        let (out, request) = served("ws://app:p%40ss@example.test:8080/flags?token=t", |k| {
            answer(k, "\u{81}\u{2}12")
        })
        .await;
        assert_eq!(out.unwrap(), "\u{81}\u{2}12".as_bytes());
        assert!(
            request.starts_with("GET /flags?token=t HTTP/1.1\r\nHost: example.test:8080\r\n"),
            "{request}"
        );
        // base64("app:p@ss")
        assert!(
            request.contains("Authorization: Basic YXBwOnBAc3M=\r\n"),
            "{request}"
        );
    }

    #[tokio::test]
    async fn an_ipv6_host_keeps_its_brackets_in_the_host_header() {
        let (out, request) = served("ws://[::1]:8080/x", |k| answer(k, "")).await;
        assert!(out.unwrap().is_empty());
        assert!(request.contains("\r\nHost: [::1]:8080\r\n"), "{request}");
    }

    #[tokio::test]
    async fn a_refusal_a_wrong_accept_key_and_an_endless_head_are_errors() {
        let (out, _) = served("ws://h/x", |_| "HTTP/1.1 403 Forbidden\r\n\r\n".into()).await;
        let e = out.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        let (out, _) = served("ws://h/x", |_| answer("another key", "")).await;
        assert!(
            out.unwrap_err()
                .to_string()
                .contains("Sec-WebSocket-Accept")
        );
        let (out, _) = served("ws://h/x", |_| {
            format!("HTTP/1.1 101 OK\r\n{}", "X-Flood: y\r\n".repeat(4000))
        })
        .await;
        assert_eq!(out.unwrap_err().kind(), ErrorKind::TooLarge);
    }
}
