//! One lazily opened async-nats client behind the bounded [relay](super::relay), shared
//! by the `nats` push source and the `nats_kv` source: the URL's servers, its
//! credentials (handed to async-nats as connect options, never inside a URL it may
//! log), the message bound, the timeout and the TLS settings.

use std::sync::Arc;
use std::time::Duration;

use super::relay::{Refused, Relay, Shared};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::tls::TlsConfig;
use crate::source::redact_url;

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
}

/// A client and the relays it reaches the servers through (they end when dropped).
struct Connected {
    client: async_nats::Client,
    _relays: Vec<Relay>,
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
            if credentials.is_none() {
                credentials = Credentials::of(&addr);
            }
            upstreams.push(super::relay::Upstream {
                host: addr.host().to_owned(),
                port: addr.port(),
                tls: addr.tls_required(),
            });
        }
        Ok((upstreams, credentials))
    }

    /// The client, connected on first use within the timeout.
    pub(crate) async fn client(&self) -> Result<async_nats::Client, SourceError> {
        let mut held = self.client.lock().await;
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
        let mut options = async_nats::ConnectOptions::new()
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            // Servers the cluster announces would bypass the relay.
            .ignore_discovered_servers()
            // The relay admits only a client of this name (no other local process).
            .name(shared.client_name());
        options = match credentials {
            Some(Credentials::UserPassword(user, password)) => {
                options.user_and_password(user, password)
            }
            Some(Credentials::Token(token)) => options.token(token),
            None => options,
        };
        let addrs: Vec<async_nats::ServerAddr> = relays
            .iter()
            .map(|r| r.url().parse())
            .collect::<Result<_, _>>()
            .map_err(|e| self.unavailable(&e))?;
        let connected = tokio::time::timeout(self.timeout, options.connect(addrs)).await;
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

/// `url` (comma-separated servers) with every password masked.
pub(crate) fn redact_all(url: &str) -> String {
    url.split(',')
        .map(|u| redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Credentials a URL carried, percent-decoded.
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
