use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::push::OrderedConfig};
use futures::StreamExt;

use super::connection::Connection;
use super::relay::{Refused, TOO_LARGE};
use crate::EnvSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::stream::{self, DEFAULT_FIRST_MESSAGE, Feed, Latest, Message};
use crate::fetchers::tls::TlsConfig;
use crate::source::{
    Access, Changes, FetchRequest, Preflighting, Probe, RawValue, Revision, Source,
};

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
    /// The client (opened on first use) and its settings.
    conn: Connection,
    first_message: Duration,
    latest: Arc<Latest>,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource")
            .field("url", &self.inner.shown())
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
                conn: Connection::new(url.into(), DEFAULT_MAX_MESSAGE, Duration::from_secs(10)),
                first_message: DEFAULT_FIRST_MESSAGE,
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
            conn: i.conn.settings(),
            first_message: i.first_message,
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
        self.with(|i| i.conn.max_message = bytes.max(1))
    }

    /// TLS settings for servers that require TLS (or `tls://` URLs): the CA to trust,
    /// a client certificate, the expected name. The system's roots by default.
    #[must_use]
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        self.with(|i| i.conn.tls = tls)
    }

    /// Limits connecting and each JetStream request, 10 s by default.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|i| i.conn.timeout = timeout)
    }

    /// The server's URL, credentials masked.
    pub fn address(&self) -> String {
        self.inner.shown()
    }
}

impl Inner {
    fn shown(&self) -> String {
        self.conn.shown()
    }

    fn unavailable(&self, e: &dyn std::fmt::Display) -> SourceError {
        self.conn.unavailable(e)
    }

    async fn client(&self) -> Result<async_nats::Client, SourceError> {
        self.conn
            .client(tokio::time::Instant::now() + self.conn.timeout)
            .await
    }

    /// The message the relay refused since the last call, if it did.
    fn refused(&self) -> Option<Refused> {
        self.conn.refused()
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
        let Some(name) = self.stream_name(client, subject).await? else {
            return Ok(Kept::Core);
        };
        let stream = tokio::time::timeout(self.conn.timeout, js.get_stream(&name))
            .await
            .map_err(|_| self.unavailable(&"JetStream did not answer in time"))?
            .map_err(|e| self.unavailable(&format_args!("stream `{name}`: {e}")))?;
        Ok(Kept::Stream(Box::new(stream)))
    }

    /// The JetStream stream that keeps `subject` (`$JS.API.STREAM.NAMES`), `None` for a
    /// core subject (no stream keeps it, or the server has no JetStream).
    async fn stream_name(
        &self,
        client: &async_nats::Client,
        subject: &str,
    ) -> Result<Option<String>, SourceError> {
        let js = jetstream::new(client.clone());
        let found = tokio::time::timeout(self.conn.timeout, js.stream_by_subject(subject)).await;
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
                return Ok(None);
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
        Ok(Some(name))
    }

    fn value(&self, payload: &[u8]) -> Message {
        if payload.len() > self.conn.max_message {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "a message of {} bytes, over the limit of {} bytes",
                payload.len(),
                self.conn.max_message
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
                    self.conn.timeout,
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

impl Inner {
    /// Checks `requests` without reading a message (see the module's "Preflight"): one
    /// connection; per subject, which JetStream stream keeps it and, for one that does,
    /// how many messages it holds on the subject (`STREAM.INFO` filtered to it: counts,
    /// no payload). Bounded by the source's timeout.
    async fn preflight(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let deadline = tokio::time::Instant::now() + self.conn.timeout;
        let client = match self.conn.client(deadline).await {
            Ok(client) => client,
            Err(e) => {
                let probe = probe_of_error(&e);
                return requests.iter().map(|_| probe.clone()).collect();
            }
        };
        let asked = tokio::time::Instant::now();
        let checks = futures::future::join_all(requests.iter().map(|r| async {
            let Some(subject) = r.topic() else {
                return Probe::from_error(&no_topic());
            };
            self.check_subject(&client, subject, asked).await
        }));
        match tokio::time::timeout_at(deadline, checks).await {
            Ok(probes) => probes,
            Err(_) => {
                let e = SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "JetStream did not answer within {:?}",
                    self.conn.timeout
                ));
                requests.iter().map(|_| Probe::from_error(&e)).collect()
            }
        }
    }

    /// The server answers nothing to a JetStream request its permissions refuse: it
    /// reports a violation naming the request's subject instead. Each lookup waits for a
    /// violation of its own subject only (`$JS.API.STREAM.NAMES`, then
    /// `$JS.API.STREAM.INFO.<stream>`): a refusal of another stream's lookup, by another
    /// check or a watch on the connection, is not this one's.
    async fn check_subject(
        &self,
        client: &async_nats::Client,
        subject: &str,
        asked: tokio::time::Instant,
    ) -> Probe {
        let denied = |violation: String| {
            Probe::new(Access::Denied).with_detail(format!(
                "the server refused a JetStream lookup of the subject ({violation})"
            ))
        };
        let name = tokio::select! {
            name = self.stream_name(client, subject) => match name {
                Ok(Some(name)) => name,
                Ok(None) => {
                    return Probe::readable()
                        .with_detail("connected; core subject, nothing to look up");
                }
                Err(e) => return probe_of_error(&e),
            },
            violation = self.conn.violations.of(asked, "$JS.API.STREAM.NAMES") => {
                return denied(violation);
            }
        };
        let body = serde_json::json!({ "subjects_filter": subject }).to_string();
        let info_subject = format!("$JS.API.STREAM.INFO.{name}");
        let answer = tokio::select! {
            answer = client.request(info_subject.clone(), body.into()) => match answer {
                Ok(answer) => answer,
                Err(e) => {
                    return probe_of_error(
                        &self.unavailable(&format_args!("JetStream stream `{name}`: {e}")),
                    );
                }
            },
            violation = self.conn.violations.of(asked, &info_subject) => return denied(violation),
        };
        let info: serde_json::Value = match serde_json::from_slice(&answer.payload) {
            Ok(info) => info,
            Err(e) => {
                return Probe::new(Access::Invalid).with_detail(format!(
                    "JetStream's answer about stream `{name}` is not JSON: {e}"
                ));
            }
        };
        if let Some(description) = info.pointer("/error/description").and_then(|d| d.as_str()) {
            return probe_of_error(
                &self.unavailable(&format_args!("JetStream stream `{name}`: {description}")),
            );
        }
        let count = info
            .pointer("/state/subjects")
            .and_then(|s| s.get(subject))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        match count {
            0 => Probe::missing().with_detail(format!(
                "JetStream stream `{name}` keeps the subject; no message on it"
            )),
            n => Probe::readable().with_detail(format!(
                "JetStream stream `{name}` keeps {n} message(s) on the subject"
            )),
        }
    }
}

/// What an error of a preflight means: refused credentials (an authorization violation
/// when connecting) are [`Access::Unauthenticated`]; the rest as [`Probe::from_error`]
/// says (cannot connect, no answer in time: unreachable).
fn probe_of_error(e: &SourceError) -> Probe {
    let mut probe = Probe::from_error(e);
    if e.kind() == ErrorKind::Unauthorized {
        probe.access = Access::Unauthenticated;
    }
    probe
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

    /// Without reading a message: connects, and looks the subject up in JetStream (see
    /// the module's "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.inner.preflight(requests))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL without a scheme (async-nats takes it) and a password holding `/`, `?` or
    /// `#` are masked too: in `Debug`, `location()`, `address()` and a refused URL's
    /// error.
    #[tokio::test]
    async fn credentials_without_a_scheme_or_with_url_delimiters_are_never_shown() {
        for url in [
            "app:CANARY@h:4222",
            "nats://u:CANARY/x@h",
            "nats://u:pa/CANARY@h",
            "nats://u:CANARY?x@h:4222",
            "nats://u:CANARY#x@h",
            "tls://h1:4222,app:CANARY@h2:4222",
        ] {
            let s = NatsSource::new(url);
            let shown = format!("{s:?} {:?} {}", s.location(), s.address());
            assert!(!shown.contains("CANARY"), "{url}: {shown}");
            assert!(shown.contains("***"), "{url}: {shown}");
        }
        let r = FetchRequest::for_key("nats", "config.app").with_param("topic", "config.app");
        for url in ["app:CANARY@h:port", "nats://u:pa/CANARY@h:port"] {
            let e = NatsSource::new(url).fetch(&r).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
            assert!(!format!("{e} {e:?}").contains("CANARY"), "{url}: {e}");
        }
    }
}
