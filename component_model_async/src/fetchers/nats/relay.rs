//! A bounded relay between async-nats and the NATS server(s): what the server says is read
//! here first, so no message over the source's limit is ever buffered.
//!
//! async-nats reads a `MSG`/`HMSG` by the size the server announces and buffers it whole
//! (it has no receive limit, and no hook to wrap its socket). So the client connects to a
//! listener of ours on 127.0.0.1, and one task per connection reads the server's side of
//! the protocol (control lines bounded at [`MAX_CONTROL_LINE`]), streams each message of
//! at most the limit through unchanged, and answers a larger one with an empty `HMSG` that
//! carries the announced size in the [`TOO_LARGE`] header — before reading any of its
//! payload — then reads past that payload a buffer at a time when it is at most four
//! times the limit, or else closes the server connection (async-nats reconnects through
//! the relay with its own backoff). Only the source's own client is admitted: its
//! `CONNECT` names a pass no other process can know. Reading a message costs at most one limit of memory, whatever
//! the server announces.
//!
//! TLS to the server (a `tls://` URL, or an `INFO` that requires it) is done here too, with
//! the source's [`TlsConfig`], so the relay can read the protocol; async-nats speaks plain
//! NATS to the loopback listener, and the `INFO` it sees no longer asks for TLS. Credentials
//! never pass through a URL: the source hands them to async-nats's connect options (its
//! `CONNECT` log line masks them), and the client only knows the listener's address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::fetchers::tls::TlsConfig;

/// The longest control line (`INFO`, `MSG`, `-ERR`, …) read from a server, in bytes.
pub(crate) const MAX_CONTROL_LINE: usize = 64 * 1024;

/// The header of the empty message that stands for one over the limit: its value is the
/// size the server announced.
pub(crate) const TOO_LARGE: &str = "Component-Model-Too-Large";

/// The name the server sees for the source's connections.
pub(crate) const CLIENT_NAME: &str = "component_model";

/// 128 bits no other process can guess: SipHash keyed from the operating system's
/// randomness (std's `RandomState`), twice.
fn unguessable() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", word(), word())
}

/// A message the relay refused: what the server announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The subject it was sent on.
    pub(crate) subject: String,
    /// Its announced size, headers included.
    pub(crate) bytes: u64,
}

/// One server of the source's URL, as the relay reaches it.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// Host name or address.
    pub(crate) host: String,
    /// Port.
    pub(crate) port: u16,
    /// Whether the URL asks for TLS (`tls://`).
    pub(crate) tls: bool,
}

/// What the relay's connections share with the source.
pub(crate) struct Shared {
    /// The largest message (headers and payload) let through, in bytes.
    pub(crate) limit: u64,
    /// How long connecting to a server (TCP, `INFO`, TLS) may take.
    pub(crate) connect_timeout: Duration,
    /// TLS settings, used when a server requires TLS.
    pub(crate) tls: TlsConfig,
    /// The last message refused, for the error of a request whose answer it was.
    refused: Mutex<Option<Refused>>,
    /// Why the last connection to a server failed, for the client's connect error.
    failed: Mutex<Option<String>>,
    /// What our client's `CONNECT` carries as its name: the listener is on 127.0.0.1, and
    /// anything else that connects to it (another local user) is closed before a byte
    /// of it reaches the server.
    pass: String,
}

impl Shared {
    /// Settings for a relay letting through messages of at most `limit` bytes.
    pub(crate) fn new(limit: u64, connect_timeout: Duration, tls: TlsConfig) -> Self {
        Shared {
            limit,
            connect_timeout,
            tls,
            refused: Mutex::new(None),
            failed: Mutex::new(None),
            pass: format!("{CLIENT_NAME} {}", unguessable()),
        }
    }

    /// The connection name our client must give (see [`Shared::pass`]).
    pub(crate) fn client_name(&self) -> &str {
        &self.pass
    }

    /// The last message refused since the last call.
    pub(crate) fn take_refused(&self) -> Option<Refused> {
        self.refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Why the last connection to a server failed, since the last call.
    pub(crate) fn take_failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn fail(&self, why: String) {
        tracing::debug!(error = %why, "nats relay: cannot reach the server");
        *self.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    fn refuse(&self, refused: Refused) {
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(refused);
    }
}

/// A listener on 127.0.0.1 relaying each connection to `upstream`; ends (with every
/// connection it relays) when dropped.
pub(crate) struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Starts relaying to `upstream`.
    pub(crate) async fn start(upstream: Upstream, shared: Arc<Shared>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Aborting this task drops the set, which aborts every connection's task.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => {
                            // Without it, Nagle's algorithm and the client's delayed ACK
                            // hold a small answer written in two parts for 40 ms.
                            let _ = client.set_nodelay(true);
                            connections.spawn(relay(client, upstream.clone(), shared.clone()));
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "nats relay: accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Relay { addr, task })
    }

    /// The URL async-nats connects to.
    pub(crate) fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

/// Either side's byte stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Relays one client connection until either side closes or the server breaks a rule.
async fn relay(mut client: TcpStream, upstream: Upstream, shared: Arc<Shared>) {
    let server = match tokio::time::timeout(shared.connect_timeout, open(&upstream, &shared)).await
    {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            let why = crate::fetchers::tls::explain(&e).unwrap_or_else(|| e.to_string());
            shared.fail(format!("{}:{}: {why}", upstream.host, upstream.port));
            return;
        }
        Err(_) => {
            shared.fail(format!(
                "{}:{}: no INFO within {:?}",
                upstream.host, upstream.port, shared.connect_timeout
            ));
            return;
        }
    };
    let (info, server) = server;
    if client.write_all(&info).await.is_err() {
        return;
    }
    let (server_read, mut server_write) = tokio::io::split(server);
    let (client_read, mut client_write) = client.split();
    let mut client_read = tokio::io::BufReader::with_capacity(16 * 1024, client_read);
    // Our client's first line is its CONNECT, named with the pass; anything else is not
    // our client.
    let mut line = Vec::new();
    let first = tokio::time::timeout(
        shared.connect_timeout,
        read_line(&mut client_read, &mut line),
    )
    .await;
    let connect = match first {
        Ok(Ok(())) => admitted(&line, &shared.pass),
        _ => None,
    };
    let Some(connect) = connect else {
        tracing::warn!(
            host = %upstream.host,
            port = upstream.port,
            "nats relay: a local connection that is not this source's client was closed"
        );
        return;
    };
    if server_write.write_all(&connect).await.is_err() {
        return;
    }
    let upward = tokio::io::copy_buf(&mut client_read, &mut server_write);
    let downward = pump(
        tokio::io::BufReader::with_capacity(64 * 1024, server_read),
        &mut client_write,
        &shared,
    );
    tokio::select! {
        _ = upward => {}
        outcome = downward => {
            if let Err(e) = outcome {
                tracing::debug!(host = %upstream.host, port = upstream.port, error = %e, "nats relay: connection closed");
            }
        }
    }
}

/// Connects to the server, reads its `INFO` and upgrades to TLS where asked: the
/// server's stream and the `INFO` line to hand the client.
async fn open(upstream: &Upstream, shared: &Shared) -> std::io::Result<(Vec<u8>, Box<dyn Stream>)> {
    let tcp = TcpStream::connect((upstream.host.as_str(), upstream.port)).await?;
    let _ = tcp.set_nodelay(true);
    let mut reader = tokio::io::BufReader::with_capacity(4096, tcp);
    let mut line = Vec::new();
    read_line(&mut reader, &mut line).await?;
    let (info, tls_required) = client_info(&line)?;
    if !(tls_required || upstream.tls) {
        return Ok((info, Box::new(reader)));
    }
    if !reader.buffer().is_empty() {
        return Err(invalid("the server sent data before the TLS handshake"));
    }
    let mut config = shared.tls.client_config().map_err(std::io::Error::other)?;
    // NATS is no HTTP: offer no application protocol.
    config.alpn_protocols.clear();
    let name = shared
        .tls
        .server_name()
        .unwrap_or(upstream.host.as_str())
        .to_owned();
    let name = rustls::pki_types::ServerName::try_from(name)
        .map_err(|_| invalid("the server's host is not a valid TLS name"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, reader.into_inner())
        .await?;
    Ok((info, Box::new(tls)))
}

/// Our client's `CONNECT` line as the server should see it (the pass taken out of its
/// name), or `None` when `line` is not a `CONNECT` naming `pass`.
fn admitted(line: &[u8], pass: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let (op, rest) = text.split_once([' ', '\t'])?;
    if !op.eq_ignore_ascii_case("CONNECT") {
        return None;
    }
    let mut connect: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(rest.trim()).ok()?;
    if connect.get("name").and_then(serde_json::Value::as_str) != Some(pass) {
        return None;
    }
    connect.insert("name".into(), CLIENT_NAME.into());
    let mut out = b"CONNECT ".to_vec();
    serde_json::to_writer(&mut out, &connect).ok()?;
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// The `INFO` line as the client should see it (no TLS asked of it: the relay does TLS;
/// no other servers to try: they would bypass the relay), and whether the server
/// requires TLS.
fn client_info(line: &[u8]) -> std::io::Result<(Vec<u8>, bool)> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("INFO is not UTF-8"))?;
    let (op, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    if !op.eq_ignore_ascii_case("INFO") {
        return Err(invalid("the server did not start with INFO"));
    }
    let mut info: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(rest.trim()).map_err(|_| invalid("INFO is not a JSON object"))?;
    let tls_required = info
        .get("tls_required")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    for key in [
        "tls_required",
        "tls_verify",
        "tls_available",
        "connect_urls",
        "ws_connect_urls",
    ] {
        info.remove(key);
    }
    let mut out = b"INFO ".to_vec();
    serde_json::to_writer(&mut out, &info).map_err(std::io::Error::other)?;
    out.extend_from_slice(b"\r\n");
    Ok((out, tls_required))
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads one line ending in `\n` into `line` (without `\r\n`), refusing one longer than
/// [`MAX_CONTROL_LINE`] before buffering more.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<()> {
    line.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > MAX_CONTROL_LINE {
            return Err(invalid("a control line longer than 64 KiB"));
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if done {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(());
        }
    }
}

/// A message's control line, read.
struct Header<'a> {
    subject: &'a str,
    sid: &'a str,
    reply: Option<&'a str>,
    /// Headers and payload, in bytes.
    total: u64,
}

/// `MSG subject sid [reply] size` or `HMSG subject sid [reply] header-size total-size`.
fn message_header(line: &str) -> std::io::Result<Option<Header<'_>>> {
    let mut words = line.split_ascii_whitespace();
    let op = words.next().unwrap_or("");
    let headers = if op.eq_ignore_ascii_case("MSG") {
        false
    } else if op.eq_ignore_ascii_case("HMSG") {
        true
    } else {
        return Ok(None);
    };
    let words: Vec<&str> = words.collect();
    let sizes = if headers { 2 } else { 1 };
    if words.len() < 2 + sizes || words.len() > 3 + sizes {
        return Err(invalid("a malformed MSG/HMSG line"));
    }
    let number = |w: &str| {
        w.parse::<u64>()
            .map_err(|_| invalid("a malformed message size"))
    };
    let total = number(words[words.len() - 1])?;
    if headers && number(words[words.len() - 2])? > total {
        return Err(invalid("a header size over the message size"));
    }
    Ok(Some(Header {
        subject: words[0],
        sid: words[1],
        reply: (words.len() == 3 + sizes).then(|| words[2]),
        total,
    }))
}

/// Reads the server's side and hands the client what it may hold.
async fn pump<R, W>(mut server: R, client: &mut W, shared: &Shared) -> std::io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut line = Vec::new();
    loop {
        read_line(&mut server, &mut line).await?;
        let text =
            std::str::from_utf8(&line).map_err(|_| invalid("a control line that is not UTF-8"))?;
        if let Some(header) = message_header(text)? {
            if header.total > shared.limit {
                shared.refuse(Refused {
                    subject: header.subject.to_owned(),
                    bytes: header.total,
                });
                let marker = format!("NATS/1.0\r\n{TOO_LARGE}: {}\r\n\r\n", header.total);
                let reply = header.reply.map(|r| format!(" {r}")).unwrap_or_default();
                let stand_in = format!(
                    "HMSG {} {}{reply} {len} {len}\r\n{marker}\r\n",
                    header.subject,
                    header.sid,
                    len = marker.len()
                );
                client.write_all(stand_in.as_bytes()).await?;
                client.flush().await?;
                // A message a few times the limit is read past (a buffer at a time), so
                // the connection and the other subjects on it go on; a larger one is a
                // server to stop reading.
                if header.total > shared.limit.saturating_mul(4) {
                    return Err(invalid(
                        "a message over four times the limit (stood in for; connection closed)",
                    ));
                }
                let body = header.total.saturating_add(2);
                let skipped =
                    tokio::io::copy(&mut (&mut server).take(body), &mut tokio::io::sink()).await?;
                if skipped < body {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                continue;
            }
            client.write_all(&line).await?;
            client.write_all(b"\r\n").await?;
            // The payload and its CRLF, streamed: at most the buffer is held.
            let body = header.total.saturating_add(2);
            let copied = tokio::io::copy(&mut (&mut server).take(body), client).await?;
            if copied < body {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        } else if text
            .split_ascii_whitespace()
            .next()
            .is_some_and(|op| op.eq_ignore_ascii_case("INFO"))
        {
            let (info, _) = client_info(&line)?;
            client.write_all(&info).await?;
        } else {
            client.write_all(&line).await?;
            client.write_all(b"\r\n").await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lines_are_read_with_and_without_reply_and_headers() {
        let h = message_header("MSG a.b 7 12").unwrap().unwrap();
        assert_eq!((h.subject, h.sid, h.reply, h.total), ("a.b", "7", None, 12));
        let h = message_header("hmsg a 1 _INBOX.x 10 2147483648")
            .unwrap()
            .unwrap();
        assert_eq!((h.reply, h.total), (Some("_INBOX.x"), 2_147_483_648));
        assert!(message_header("PING").unwrap().is_none());
        assert!(message_header("MSG a 1 x y z 12").is_err());
        assert!(message_header("HMSG a 1 20 10").is_err());
        assert!(message_header("MSG a 1 -1").is_err());
    }

    #[test]
    fn the_client_sees_no_tls_and_no_other_servers() {
        let (info, tls) = client_info(
            br#"INFO {"max_payload":1048576,"tls_required":true,"connect_urls":["10.0.0.1:4222"],"headers":true}"#,
        )
        .unwrap();
        assert!(tls);
        let text = String::from_utf8(info).unwrap();
        assert!(
            text.starts_with("INFO {") && text.ends_with("}\r\n"),
            "{text}"
        );
        assert!(
            !text.contains("tls_required") && !text.contains("connect_urls"),
            "{text}"
        );
        assert!(text.contains("\"max_payload\":1048576"), "{text}");
        assert!(client_info(b"PING").is_err());
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_stood_in_for_before_its_payload_is_read() {
        let shared = Shared::new(16, Duration::from_secs(1), TlsConfig::new());
        // Announces 2 GiB but sends only a few bytes: nothing of it may be awaited.
        let server: &[u8] = b"PING\r\nMSG s 1 5\r\nhello\r\nHMSG big 2 _INBOX.r 4 2147483648\r\nxx";
        let mut client = Vec::new();
        let e = pump(tokio::io::BufReader::new(server), &mut client, &shared)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("over four times the limit"), "{e}");
        let text = String::from_utf8(client).unwrap();
        let marker = format!("NATS/1.0\r\n{TOO_LARGE}: 2147483648\r\n\r\n");
        assert_eq!(
            text,
            format!(
                "PING\r\nMSG s 1 5\r\nhello\r\nHMSG big 2 _INBOX.r {len} {len}\r\n{marker}\r\n",
                len = marker.len()
            )
        );
        assert_eq!(
            shared.take_refused(),
            Some(Refused {
                subject: "big".into(),
                bytes: 2_147_483_648
            })
        );
    }

    #[test]
    fn only_a_connect_naming_the_pass_is_admitted_and_the_pass_never_reaches_the_server() {
        let pass = "component_model 0123abcd";
        let ours = format!(r#"CONNECT {{"verbose":false,"name":"{pass}","pass":"p"}}"#);
        let forwarded = String::from_utf8(admitted(ours.as_bytes(), pass).unwrap()).unwrap();
        assert!(forwarded.starts_with("CONNECT {") && forwarded.ends_with("}\r\n"));
        assert!(
            forwarded.contains(r#""name":"component_model""#),
            "{forwarded}"
        );
        assert!(!forwarded.contains("0123abcd") && forwarded.contains(r#""pass":"p""#));
        for other in [
            r#"CONNECT {"verbose":false,"name":"component_model"}"#.to_owned(),
            r#"CONNECT {"verbose":false}"#.to_owned(),
            "PING".to_owned(),
            format!("PUB x 1 {pass}"),
        ] {
            assert!(admitted(other.as_bytes(), pass).is_none(), "{other}");
        }
        assert_ne!(unguessable(), unguessable());
    }

    #[tokio::test]
    async fn a_message_a_few_times_the_limit_is_read_past_and_the_connection_goes_on() {
        let shared = Shared::new(16, Duration::from_secs(1), TlsConfig::new());
        let server: &[u8] =
            b"MSG big 1 40\r\n0123456789012345678901234567890123456789\r\nMSG s 2 2\r\nok\r\n";
        let mut client = Vec::new();
        let e = pump(tokio::io::BufReader::new(server), &mut client, &shared)
            .await
            .unwrap_err();
        // The stream ended after the second message: nothing but EOF stopped it.
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
        let text = String::from_utf8(client).unwrap();
        assert!(text.starts_with("HMSG big 1 "), "{text}");
        assert!(
            text.ends_with("MSG s 2 2\r\nok\r\n") && !text.contains("0123"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_endless_control_line_is_refused_at_the_bound() {
        let shared = Shared::new(16, Duration::from_secs(1), TlsConfig::new());
        let server = tokio::io::repeat(b'x');
        let mut client = Vec::new();
        let e = pump(tokio::io::BufReader::new(server), &mut client, &shared)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("longer than 64 KiB"), "{e}");
        assert!(client.is_empty());
    }
}
