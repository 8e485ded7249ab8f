//! One lazily opened async-nats client behind the bounded [relay](super::relay), shared
//! by the `nats` push source and the `nats_kv` source: the URL's servers, its
//! credentials (handed to async-nats as connect options, never inside a URL it may
//! log), the message bound, the timeout and the TLS settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::relay::{Refused, Relay, Shared};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::tls::TlsConfig;
use crate::source::redact_url;

/// Messages async-nats queues per subscription before it drops new ones (its default,
/// 65 536, lets a server flooding a subscription queue that many messages of up to the
/// relay's limit each). An ordered consumer that misses one makes itself again from the
/// last sequence it delivered, so nothing is lost; a core subscription loses what was
/// dropped.
pub(crate) const SUBSCRIPTION_CAPACITY: usize = 128;

/// How long async-nats waits before connecting again once the relay it reached the
/// servers through is gone (the source was dropped): in effect never.
const DORMANT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The client of one source: opened on first use, then reused (async-nats reconnects it
/// through the relay on its own).
pub(crate) struct Connection {
    /// The URL as given (comma-separated servers; may carry credentials: never shown).
    url: String,
    /// The largest message (a value) accepted, in bytes.
    pub(crate) max_message: usize,
    /// Limits connecting and each request.
    pub(crate) timeout: Duration,
    /// TLS settings for servers that require it.
    pub(crate) tls: TlsConfig,
    client: tokio::sync::Mutex<Option<Connected>>,
    /// What the relays of the current client share (the last message they refused).
    relayed: std::sync::Mutex<Option<Arc<Shared>>>,
    /// The permissions violations the server reported to this source's client.
    pub(crate) violations: Arc<Violations>,
}

/// The permissions violations a server reported (`-ERR 'Permissions Violation for
/// Publish to "<subject>"'`): the server drops a request it refuses so and answers
/// nothing, so a request waits for one naming its subject as well as for its answer.
#[derive(Default)]
pub(crate) struct Violations {
    /// The latest ones, when they were reported.
    seen: std::sync::Mutex<std::collections::VecDeque<(Instant, String)>>,
    notify: tokio::sync::Notify,
}

/// How many violations are kept.
const VIOLATIONS_KEPT: usize = 32;

impl Violations {
    fn record(&self, text: String) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() == VIOLATIONS_KEPT {
            seen.pop_front();
        }
        seen.push_back((Instant::now(), text));
        drop(seen);
        self.notify.notify_waiters();
    }

    /// The latest violation reported at or after `at` whose text holds `needle`.
    fn since(&self, at: Instant, needle: &str) -> Option<String> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .rev()
            .find(|(when, text)| *when >= at && text.contains(needle))
            .map(|(_, text)| text.clone())
    }

    /// Waits for a violation naming `subject` reported at or after `at`: its text (the
    /// server's, naming the subject; never a payload).
    pub(crate) async fn of(&self, at: Instant, subject: &str) -> String {
        self.holding(at, &format!("\"{subject}\"")).await
    }

    async fn holding(&self, at: Instant, needle: &str) -> String {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(text) = self.since(at, needle) {
                return text;
            }
            notified.await;
        }
    }
}

/// Whether a server error reports a permissions violation.
fn is_violation(text: &str) -> bool {
    text.to_ascii_lowercase().contains("permissions violation")
}

/// A client and the relays it reaches the servers through (they end when dropped).
struct Connected {
    /// Cleared first when dropped: async-nats' connection task (which may outlive the
    /// source while it reconnects) then sends no credentials and stops connecting to
    /// the relays' ports, which another local process could bind next.
    _alive: Alive,
    client: async_nats::Client,
    _relays: Vec<Relay>,
}

/// Whether the relays of a client still run.
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Connection {
    /// Settings for the server(s) at `url`; nothing is opened yet.
    pub(crate) fn new(url: String, max_message: usize, timeout: Duration) -> Self {
        Connection {
            url,
            max_message,
            timeout,
            tls: TlsConfig::new(),
            client: tokio::sync::Mutex::new(None),
            relayed: std::sync::Mutex::new(None),
            violations: Arc::default(),
        }
    }

    /// The same settings, with no client (a builder method's copy).
    pub(crate) fn settings(&self) -> Self {
        let mut c = Connection::new(self.url.clone(), self.max_message, self.timeout);
        c.tls = self.tls.clone();
        c
    }

    /// The URL, credentials masked.
    pub(crate) fn shown(&self) -> String {
        redact_all(&self.url)
    }

    pub(crate) fn unavailable(&self, e: &dyn std::fmt::Display) -> SourceError {
        SourceError::new(ErrorKind::Unavailable).with_message(format!("{e}"))
    }

    /// The largest message the relay lets through: a JetStream answer carries a
    /// message in base64 inside JSON, so a third more and room for the envelope.
    fn relay_limit(&self) -> u64 {
        let max = self.max_message as u64;
        max.saturating_add(max / 3).saturating_add(64 * 1024)
    }

    /// The servers of the URL and the credentials it carries (given to async-nats as
    /// options, never inside a URL it may log).
    fn servers(&self) -> Result<(Vec<super::relay::Upstream>, Option<Credentials>), SourceError> {
        let mut upstreams = Vec::new();
        let mut credentials = None;
        for url in self.url.split(',').map(str::trim) {
            let addr: async_nats::ServerAddr = url.parse().map_err(|e: std::io::Error| {
                SourceError::new(ErrorKind::Config)
                    .with_message(format!("`{}` is not a NATS URL: {e}", self.shown()))
            })?;
            if addr.is_websocket() {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "`{}`: NATS over websockets is not supported; use nats:// or tls://",
                    self.shown()
                )));
            }
            // async-nats has one set of credentials per client: the servers of one
            // URL share them (a server without any gets the others').
            match (Credentials::of(&addr), &credentials) {
                (Some(own), Some(first)) if own != *first => {
                    return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                        "`{}`: the servers carry different credentials; one client uses one set for every server",
                        self.shown()
                    )));
                }
                (Some(own), None) => credentials = Some(own),
                _ => {}
            }
            upstreams.push(super::relay::Upstream {
                host: addr.host().to_owned(),
                port: addr.port(),
                tls: addr.tls_required(),
            });
        }
        Ok((upstreams, credentials))
    }

    /// The client, connected on first use by `deadline` (waiting for another caller
    /// connecting counts too).
    pub(crate) async fn client(
        &self,
        deadline: Instant,
    ) -> Result<async_nats::Client, SourceError> {
        let late = || self.unavailable(&"cannot connect: no connection within the timeout");
        let mut held = tokio::time::timeout_at(deadline, self.client.lock())
            .await
            .map_err(|_| late())?;
        if let Some(c) = held.as_ref() {
            return Ok(c.client.clone());
        }
        let (upstreams, credentials) = self.servers()?;
        let shared = Arc::new(Shared::new(
            self.relay_limit(),
            self.timeout,
            self.tls.clone(),
        ));
        let mut relays = Vec::with_capacity(upstreams.len());
        for upstream in upstreams {
            relays.push(
                Relay::start(upstream, shared.clone())
                    .await
                    .map_err(|e| self.unavailable(&format_args!("cannot start the relay: {e}")))?,
            );
        }
        let alive = Alive(Arc::new(AtomicBool::new(true)));
        // Credentials are handed over only while the relays run (see `Connected`).
        let credentials = Arc::new(credentials);
        let (flag, given) = (alive.0.clone(), credentials.clone());
        let options = async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
            let (flag, given) = (flag.clone(), given.clone());
            async move {
                if !flag.load(Ordering::SeqCst) {
                    return Err(async_nats::AuthError::new("the source was dropped"));
                }
                let mut auth = async_nats::Auth::new();
                match given.as_ref() {
                    Some(Credentials::UserPassword(user, password)) => {
                        auth.username = Some(user.clone());
                        auth.password = Some(password.clone());
                    }
                    Some(Credentials::Token(token)) => auth.token = Some(token.clone()),
                    None => {}
                }
                Ok(auth)
            }
        });
        let flag = alive.0.clone();
        let violations = self.violations.clone();
        let options = options
            .event_callback(move |event| {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(text)) = &event
                    && is_violation(text)
                {
                    violations.record(text.clone());
                }
                std::future::ready(())
            })
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .reconnect_delay_callback(move |attempts| {
                if flag.load(Ordering::SeqCst) {
                    // async-nats' own backoff.
                    match attempts {
                        0 | 1 => Duration::ZERO,
                        n => {
                            Duration::from_millis(1 << (n - 1).min(12)).min(Duration::from_secs(4))
                        }
                    }
                } else {
                    DORMANT
                }
            })
            // Servers the cluster announces would bypass the relay.
            .ignore_discovered_servers()
            // The relay admits only a client of this name (no other local process).
            .name(shared.client_name());
        let addrs: Vec<async_nats::ServerAddr> = relays
            .iter()
            .map(|r| r.url().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| self.unavailable(&e))?;
        let connected = tokio::time::timeout_at(deadline, options.connect(addrs)).await;
        // Why the relay could not reach a server says more than the client's error.
        let why = |e: &dyn std::fmt::Display| match shared.take_failure() {
            Some(failure) => format!("cannot connect: {failure}"),
            None => format!("cannot connect: {e}"),
        };
        let client = connected
            .map_err(|_| self.unavailable(&why(&"no connection within the timeout")))?
            .map_err(|e| {
                let kind = if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation {
                    ErrorKind::Unauthorized
                } else {
                    ErrorKind::Unavailable
                };
                SourceError::new(kind).with_message(why(&e))
            })?;
        *self
            .relayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shared);
        *held = Some(Connected {
            _alive: alive,
            client: client.clone(),
            _relays: relays,
        });
        Ok(client)
    }

    /// The message the relay refused since the last call, if it did.
    pub(crate) fn refused(&self) -> Option<Refused> {
        self.relayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()?
            .take_refused()
    }
}

/// `url` (comma-separated servers) with every server's credentials masked: all of a
/// server up to its last `@` (scheme or not — async-nats takes `user:pass@host` too — and
/// whatever `/`, `?` or `#` the password holds), then its query's secrets.
pub(crate) fn redact_all(url: &str) -> String {
    url.split(',')
        .map(|u| redact_server(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

fn redact_server(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return redact_url(url);
    };
    let (before, host) = (&url[..at], &url[at + 1..]);
    // A scheme only when what precedes `://` is one (a password may hold `://`).
    let (scheme, userinfo) = match before.find("://") {
        Some(i)
            if i > 0
                && before[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) =>
        {
            before.split_at(i + 3)
        }
        _ => ("", before),
    };
    let shown = match userinfo.split_once(':') {
        Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***"),
        _ => "***".to_owned(),
    };
    format!("{scheme}{shown}@{}", redact_url(host))
}

/// Credentials a URL carried, percent-decoded.
#[derive(PartialEq, Eq)]
enum Credentials {
    UserPassword(String, String),
    Token(String),
}

impl Credentials {
    fn of(addr: &async_nats::ServerAddr) -> Option<Self> {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let user = decode(addr.username()?);
        Some(match addr.password() {
            Some(password) => Credentials::UserPassword(user, decode(password)),
            None => Credentials::Token(user),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_servers_credentials_are_masked_scheme_or_not() {
        for (url, shown) in [
            ("app:CANARY@h:4222", "app:***@h:4222"),
            ("nats://u:pa/ss@h", "nats://u:***@h"),
            ("nats://u:pa?ss@h:4222", "nats://u:***@h:4222"),
            ("nats://u:pa#ss@h", "nats://u:***@h"),
            ("nats://u:p@ss@h", "nats://u:***@h"),
            ("tok3n@h", "***@h"),
            ("nats://tok3n@h", "nats://***@h"),
            ("u:p://CANARY@h", "u:***@h"),
            ("nats://h:4222", "nats://h:4222"),
            (
                "nats://a:CANARY@h1, b:CANARY@h2",
                "nats://a:***@h1,b:***@h2",
            ),
        ] {
            assert_eq!(redact_all(url), shown, "{url}");
        }
    }

    #[test]
    fn servers_with_different_credentials_are_a_config_error_naming_no_password() {
        let c = Connection::new(
            "nats://a:CANARY@h1,nats://b:OTHER@h2".into(),
            1,
            Duration::from_secs(1),
        );
        let e = c.servers().err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Config);
        let m = e.to_string();
        assert!(!m.contains("CANARY") && !m.contains("OTHER"), "{m}");
        let same = Connection::new(
            "nats://a:CANARY@h1,nats://h2,a:CANARY@h3".into(),
            1,
            Duration::from_secs(1),
        );
        assert!(same.servers().is_ok());
    }

    #[test]
    fn a_url_async_nats_refuses_is_a_config_error_without_its_password() {
        let c = Connection::new("app:CANARY@h:notaport".into(), 1, Duration::from_secs(1));
        let e = c.servers().err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(!e.to_string().contains("CANARY"), "{e}");
    }

    /// A server that says hello, answers PINGs and can be shut (its connections too).
    async fn server(
        listener: tokio::net::TcpListener,
        seen: Arc<std::sync::Mutex<String>>,
        mut shut: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        loop {
            let socket = tokio::select! {
                s = listener.accept() => match s { Ok((s, _)) => s, Err(_) => return },
                _ = shut.changed() => return,
            };
            let (read, mut write) = socket.into_split();
            let seen = seen.clone();
            let mut shut = shut.clone();
            tokio::spawn(async move {
                let info = "INFO {\"server_id\":\"t\",\"version\":\"2.9.10\",\"proto\":1,\"headers\":true,\"max_payload\":1048576}\r\n";
                if write.write_all(info.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = tokio::io::BufReader::new(read).lines();
                loop {
                    let line = tokio::select! {
                        l = lines.next_line() => match l { Ok(Some(l)) => l, _ => return },
                        _ = shut.changed() => return,
                    };
                    seen.lock().unwrap().push_str(&line);
                    if line.starts_with("PING") && write.write_all(b"PONG\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    /// A source dropped while async-nats reconnects: another process that binds the
    /// relay's former port is sent no credentials (async-nats' task may outlive the
    /// source; it is sent none once the relay is gone, and stops connecting).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_source_sends_no_credentials_to_whoever_takes_the_relays_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(std::sync::Mutex::new(String::new()));
        let (shut, shut_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(server(listener, seen.clone(), shut_rx));
        let conn = Connection::new(
            format!("nats://app:CANARY@127.0.0.1:{port}"),
            1024,
            Duration::from_secs(2),
        );
        let client = conn
            .client(Instant::now() + Duration::from_secs(2))
            .await
            .unwrap();
        assert!(
            seen.lock().unwrap().contains("CANARY"),
            "the server got them"
        );
        let relay = conn.client.lock().await.as_ref().unwrap()._relays[0].url();
        let relay_port: u16 = relay.rsplit(':').next().unwrap().parse().unwrap();
        // The server goes away: async-nats reconnects (through the relay, which cannot
        // reach it) again and again.
        shut.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        drop(client);
        drop(conn);
        // Another local process takes the port.
        // (The relay's aborted task lets its listener go on the runtime, soon after.)
        let mut tries = 0;
        let taken = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", relay_port)).await {
                Ok(l) => break l,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 200, "the relay's port stays taken: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        let got = Arc::new(std::sync::Mutex::new(String::new()));
        let (_keep, keep_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(server(taken, got.clone(), keep_rx));
        tokio::time::sleep(Duration::from_secs(6)).await;
        let got = got.lock().unwrap().clone();
        assert!(!got.contains("CANARY"), "{got}");
    }
}
