use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push::OrderedConfig};
use futures::StreamExt;

use super::relay::{Refused, Relay, Shared, TOO_LARGE, Upstream};
use crate::EnvSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, DEFAULT_FIRST_MESSAGE, Feed, Latest, Message};
use crate::fetchers::tls::TlsConfig;
use crate::source::{Changes, FetchRequest, RawValue, Revision, Source, redact_url};

/// The largest message a [`NatsSource`] accepts, by default (1 MiB, NATS's own default
/// `max_payload`).
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// The `nats` push source (see the [module](crate::fetchers::nats)).
///
/// ```
/// use component_model_async::{NatsSource, Sources};
///
/// let nats = NatsSource::new("nats://127.0.0.1:4222");
/// let sources = Sources::new().register("nats", nats);
/// ```
#[derive(Clone)]
pub struct NatsSource {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    first_message: Duration,
    max_message: usize,
    timeout: Duration,
    tls: TlsConfig,
    client: tokio::sync::Mutex<Option<Connected>>,
    /// What the relays of the current client share (the last message they refused).
    relayed: std::sync::Mutex<Option<Arc<Shared>>>,
    latest: Arc<Latest>,
}

/// A client and the relays it reaches the servers through (they end when dropped).
struct Connected {
    client: async_nats::Client,
    _relays: Vec<Relay>,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("url", &redact_all(&self.inner.url))
            .finish_non_exhaustive()
    }
}

/// Where a subject's messages are kept, if anywhere.
enum Kept {
    /// In this JetStream stream.
    Stream(Box<jetstream::stream::Stream>),
    /// Nowhere: a core subject.
    Core,
}

impl NatsSource {
    /// A source for the server(s) at `url` (`nats://host:4222`, comma-separated for a
    /// cluster).
    pub fn new(url: impl Into<String>) -> Self {
        NatsSource {
            inner: Arc::new(Inner {
                url: url.into(),
                first_message: DEFAULT_FIRST_MESSAGE,
                max_message: DEFAULT_MAX_MESSAGE,
                timeout: Duration::from_secs(10),
                tls: TlsConfig::new(),
                client: tokio::sync::Mutex::new(None),
                relayed: std::sync::Mutex::new(None),
                latest: Arc::default(),
            }),
        }
    }

    /// The source `NATS_URL` names, if it is set.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        env.get("NATS_URL")
            .filter(|u| !u.trim().is_empty())
            .map(Self::new)
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let i = &self.inner;
        let mut inner = Inner {
            url: i.url.clone(),
            first_message: i.first_message,
            max_message: i.max_message,
            timeout: i.timeout,
            tls: i.tls.clone(),
            client: tokio::sync::Mutex::new(None),
            relayed: std::sync::Mutex::new(None),
            latest: Arc::default(),
        };
        f(&mut inner);
        NatsSource {
            inner: Arc::new(inner),
        }
    }

    /// How long the start-up read of a core subject waits for a first message.
    #[must_use]
    pub fn with_first_message_timeout(self, limit: Duration) -> Self {
        self.with(|i| i.first_message = limit)
    }

    /// The largest message accepted.
    #[must_use]
    pub fn with_max_message(self, bytes: usize) -> Self {
        self.with(|i| i.max_message = bytes.max(1))
    }

    /// TLS settings for servers that require TLS (or `tls://` URLs): the CA to trust,
    /// a client certificate, the expected name. The system's roots by default.
    #[must_use]
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        self.with(|i| i.tls = tls)
    }

    /// Limits connecting and each JetStream request, 10 s by default.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.timeout = timeout)
    }

    /// The server's URL, credentials masked.
    pub fn address(&self) -> String {
        redact_all(&self.inner.url)
    }
}

/// `url` (comma-separated servers) with every password masked.
fn redact_all(url: &str) -> String {
    url.split(',')
        .map(|u| redact_url(u.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

impl Inner {
    fn shown(&self) -> String {
        redact_all(&self.url)
    }

    fn unavailable(&self, e: &dyn std::fmt::Display) -> SourceError {
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
    fn servers(&self) -> Result<(Vec<Upstream>, Option<Credentials>), SourceError> {
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
            upstreams.push(Upstream {
                host: addr.host().to_owned(),
                port: addr.port(),
                tls: addr.tls_required(),
            });
        }
        Ok((upstreams, credentials))
    }

    async fn client(&self) -> Result<async_nats::Client, SourceError> {
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
    fn refused(&self) -> Option<Refused> {
        self.relayed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()?
            .take_refused()
    }

    /// `error`, unless it came of a message the relay refused: then that.
    fn or_refused(&self, error: SourceError) -> SourceError {
        match self.refused() {
            Some(r) => too_large(&r),
            None => error,
        }
    }

    /// The JetStream stream that keeps `subject`, if one does.
    async fn kept(&self, client: &async_nats::Client, subject: &str) -> Result<Kept, SourceError> {
        let js = jetstream::new(client.clone());
        let found = tokio::time::timeout(self.timeout, js.stream_by_subject(subject)).await;
        use jetstream::context::GetStreamByNameErrorKind as Kind;
        let name = match found {
            Ok(Ok(name)) => name,
            // No stream keeps it, or the server has no JetStream: a core subject.
            Ok(Err(e))
                if matches!(e.kind(), Kind::NotFound)
                    || (matches!(e.kind(), Kind::Request)
                        && e.to_string().to_ascii_lowercase().contains("no responders")) =>
            {
                tracing::debug!(subject, error = %e, "nats: no JetStream stream keeps the subject");
                return Ok(Kept::Core);
            }
            Ok(Err(e)) if matches!(e.kind(), Kind::InvalidSubject) => {
                return Err(SourceError::new(ErrorKind::Config)
                    .with_message(format!("`{subject}` is not a valid NATS subject")));
            }
            // Anything else (a timeout, a permission error) is not "no stream": a watch
            // must not settle for a core subscription because JetStream was slow once.
            Ok(Err(e)) => {
                return Err(self.unavailable(&format_args!(
                    "asking JetStream which stream keeps the subject: {e}"
                )));
            }
            Err(_) => return Err(self.unavailable(&"JetStream did not answer in time")),
        };
        let stream = tokio::time::timeout(self.timeout, js.get_stream(&name))
            .await
            .map_err(|_| self.unavailable(&"JetStream did not answer in time"))?
            .map_err(|e| self.unavailable(&format_args!("stream `{name}`: {e}")))?;
        Ok(Kept::Stream(Box::new(stream)))
    }

    fn value(&self, payload: &[u8]) -> Message {
        if payload.len() > self.max_message {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "a message of {} bytes, over the limit of {} bytes",
                payload.len(),
                self.max_message
            )));
        }
        Ok(stream::body(payload.to_vec()))
    }

    /// A delivered message's value: the relay's stand-in for one it refused says so.
    fn message(
        &self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: &[u8],
    ) -> Message {
        let announced = headers
            .and_then(|h| h.get(TOO_LARGE))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        match announced {
            Some(bytes) => {
                let _ = self.refused();
                Err(too_large(&Refused {
                    subject: subject.to_owned(),
                    bytes,
                }))
            }
            None => self.value(payload),
        }
    }

    /// The start-up read.
    async fn newest(&self, subject: &str) -> Result<RawValue, SourceError> {
        let client = self.client().await?;
        match self.kept(&client, subject).await? {
            Kept::Stream(stream) => {
                let got = tokio::time::timeout(
                    self.timeout,
                    stream.get_last_raw_message_by_subject(subject),
                )
                .await
                .map_err(|_| {
                    self.or_refused(self.unavailable(&"JetStream did not answer in time"))
                })?;
                match got {
                    Ok(m) => self.value(&m.payload),
                    Err(e)
                        if e.kind()
                            == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                    {
                        Err(SourceError::not_found().with_message(format!(
                            "JetStream stream `{}` has no message on subject `{subject}`",
                            stream.cached_info().config.name
                        )))
                    }
                    Err(e) => Err(self.or_refused(self.unavailable(&e))),
                }
            }
            Kept::Core => {
                let mut sub = client
                    .subscribe(subject.to_owned())
                    .await
                    .map_err(|e| self.unavailable(&e))?;
                let first = tokio::time::timeout(self.first_message, sub.next()).await;
                let _ = sub.unsubscribe().await;
                match first {
                    Ok(Some(m)) => self.message(subject, m.headers.as_ref(), &m.payload),
                    _ => Err(SourceError::not_found().with_message(format!(
                        "no JetStream stream keeps subject `{subject}`, and no message was published on it within {:?}",
                        self.first_message
                    ))),
                }
            }
        }
    }

    /// Follows `feed`'s subject until nobody watches.
    async fn subscribe(self: Arc<Self>, feed: Feed) {
        let Some(subject) = feed.request().topic().map(str::to_owned) else {
            feed.push(Err(no_topic()));
            return;
        };
        let what = format!("nats subject {subject}");
        stream::reconnecting(&feed, &what, || self.follow(&feed, &subject)).await;
    }

    /// One subscription; `Ok(true)` when nobody watches any more. A JetStream message
    /// carries its stream sequence as the revision; a core NATS message has none.
    async fn follow(&self, feed: &Feed, subject: &str) -> Result<bool, SourceError> {
        let client = self.client().await?;
        type Revised = (Message, Option<Revision>);
        let mut messages: futures::stream::BoxStream<'_, Result<Revised, String>> =
            match self.kept(&client, subject).await? {
                Kept::Stream(stream) => {
                    let consumer = stream
                        .create_consumer(OrderedConfig {
                            deliver_subject: client.new_inbox(),
                            filter_subject: subject.to_owned(),
                            deliver_policy: DeliverPolicy::LastPerSubject,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| self.unavailable(&e))?;
                    consumer
                        .messages()
                        .await
                        .map_err(|e| self.unavailable(&e))?
                        .map(|m| {
                            m.map(|m| {
                                let at = m.info().ok().map(|i| Revision::Index(i.stream_sequence));
                                (self.message(subject, m.headers.as_ref(), &m.payload), at)
                            })
                            .map_err(|e| e.to_string())
                        })
                        .boxed()
                }
                Kept::Core => client
                    .subscribe(subject.to_owned())
                    .await
                    .map_err(|e| self.unavailable(&e))?
                    .map(|m| Ok((self.message(subject, m.headers.as_ref(), &m.payload), None)))
                    .boxed(),
            };
        // No message within the deadline: fetches say so instead of waiting again.
        let first_due = tokio::time::sleep(self.first_message);
        tokio::pin!(first_due);
        let mut heard = false;
        loop {
            tokio::select! {
                _ = feed.closed() => return Ok(true),
                _ = &mut first_due, if !heard => {
                    heard = true;
                    feed.none_yet(SourceError::not_found().with_message(format!(
                        "no message on subject `{subject}` yet"
                    )));
                }
                next = messages.next() => match next {
                    Some(Ok((message, at))) => {
                        heard = true;
                        if !feed.push_at(message, at) {
                            return Ok(true);
                        }
                    }
                    Some(Err(e)) => return Err(self.unavailable(&e)),
                    None => return Ok(false),
                },
            }
        }
    }
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

fn too_large(refused: &Refused) -> SourceError {
    SourceError::new(ErrorKind::TooLarge).with_message(format!(
        "the server announced a message of {} bytes on subject `{}`, over the limit; refused before reading it",
        refused.bytes, refused.subject
    ))
}

fn no_topic() -> SourceError {
    SourceError::new(ErrorKind::Config)
        .with_message("the `nats` source needs `topic = \"...\"` (the subject)")
}

#[async_trait::async_trait]
impl Source for NatsSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if let Some(message) = self.inner.latest.get(request) {
            return message;
        }
        let subject = request.topic().ok_or_else(no_topic)?;
        self.inner.newest(subject).await
    }

    fn location(&self) -> Option<String> {
        Some(self.inner.shown())
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let inner = self.inner.clone();
        Ok(stream::watch_pushed(
            &self.inner.latest,
            requests,
            move |feed| inner.clone().subscribe(feed),
        ))
    }
}
