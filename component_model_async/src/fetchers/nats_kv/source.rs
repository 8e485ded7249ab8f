//! [`NatsKvSource`]: keys of NATS JetStream key-value buckets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, ReplayPolicy, push::OrderedConfig},
};
use futures::StreamExt;
use tokio::time::Instant;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::nats::connection::Connection;
use crate::fetchers::nats::relay::TOO_LARGE;
use crate::fetchers::tls::TlsConfig;
use crate::source::{
    Access, Change, Changes, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision,
    Source,
};

/// The largest value a [`NatsKvSource`] accepts, by default (1 MiB, NATS's own default
/// `max_payload`).
pub const DEFAULT_MAX_VALUE: usize = 1024 * 1024;

/// The attribute key naming the bucket.
const BUCKET: &str = "bucket";

/// The `nats_kv` source: keys of NATS JetStream key-value buckets (see the
/// [module](crate::fetchers::nats_kv)).
///
/// One connection per source, opened on the first read and reused (async-nats reconnects
/// it); each read, connecting included, is bounded as a whole by
/// [`with_timeout`](Self::with_timeout). Neither `Debug` nor
/// [`location`](Source::location) shows credentials (with or without `nats://`).
///
/// ```
/// use std::time::Duration;
/// use component_model_async::{NatsKvSource, Source, Sources};
///
/// let kv = NatsKvSource::new("nats://app:s3cret@127.0.0.1:4222")
///     .with_timeout(Duration::from_secs(2))
///     .with_max_value(64 * 1024);
/// assert_eq!(kv.location().as_deref(), Some("nats://app:***@127.0.0.1:4222"));
/// assert!(!format!("{kv:?}").contains("s3cret"));
/// let sources = Sources::new().register("nats_kv", kv);
/// ```
///
/// With the derive (a server at `NATS_URL`, a bucket `config`):
///
/// ```no_run
/// use component_model_async::{AsyncAssign, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct App {
///     #[component(fetch_from = "nats_kv", bucket = "config", key = "app.port")]
///     port: u16,
///     #[component(fetch_from = "nats_kv", bucket = "config", key = "app.mode", fallback = "\"normal\"")]
///     mode: String,
/// }
///
/// # async fn run() {
/// let sources = Sources::from_env(); // NATS_URL=nats://127.0.0.1:4222
/// match App::fetch_all_components_with(&sources).await {
///     Ok(app) => println!("port {}", app.port),
///     // e.g. "App.port: ... key `app.port` is not in NATS KV bucket `config`"
///     Err(errors) => errors.iter().for_each(|e| eprintln!("{e}")),
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct NatsKvSource {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Connection,
    /// Per bucket known to exist: whether its stream answers direct gets.
    buckets: Mutex<HashMap<String, bool>>,
    /// Per bucket, held while it is looked up: the reads of one fetch wait for one
    /// lookup (of their own bucket only), and take its failure rather than asking again.
    lookups: Mutex<HashMap<String, Arc<Lookup>>>,
}

/// One bucket's lookup: the last failure and when it was known.
type Lookup = tokio::sync::Mutex<Option<(Instant, SourceError)>>;

impl std::fmt::Debug for NatsKvSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsKvSource")
            .field("url", &self.inner.conn.shown())
            .field("timeout", &self.inner.conn.timeout)
            .field("max_value", &self.inner.conn.max_message)
            .finish_non_exhaustive()
    }
}

impl NatsKvSource {
    /// A source for the server(s) at `url` (`nats://host:4222`, comma-separated for a
    /// cluster; `nats://user:password@host` or `nats://token@host` for credentials, handed
    /// to the client as connect options and never shown). Nothing is opened yet.
    pub fn new(url: impl Into<String>) -> Self {
        NatsKvSource {
            inner: Arc::new(Inner {
                conn: Connection::new(url.into(), DEFAULT_MAX_VALUE, Duration::from_secs(10)),
                buckets: Mutex::new(HashMap::new()),
                lookups: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The source `NATS_URL` names, if it is set (what
    /// [`Sources::from_env`](crate::Sources::from_env) registers as `nats_kv`).
    ///
    /// ```
    /// use component_model_async::{EnvSource, NatsKvSource};
    ///
    /// let env = EnvSource::from_map([("NATS_URL", "nats://127.0.0.1:4222")]);
    /// assert!(NatsKvSource::from_env_source(&env).is_some());
    /// assert!(NatsKvSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        env.get("NATS_URL")
            .filter(|u| !u.trim().is_empty())
            .map(Self::new)
    }

    fn with(self, f: impl FnOnce(&mut Connection)) -> Self {
        let mut conn = self.inner.conn.settings();
        f(&mut conn);
        NatsKvSource {
            inner: Arc::new(Inner {
                conn,
                buckets: Mutex::new(HashMap::new()),
                lookups: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Limits each read as a whole (connecting, the bucket's lookup, the get, a second
    /// try), 10 s by default.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.timeout = timeout)
    }

    /// The largest value accepted ([`DEFAULT_MAX_VALUE`] by default): a larger one is
    /// refused as `TooLarge` before it is buffered.
    #[must_use]
    pub fn with_max_value(self, bytes: usize) -> Self {
        self.with(|c| c.max_message = bytes.max(1))
    }

    /// TLS settings for servers that require TLS (or `tls://` URLs): the CA to trust,
    /// a client certificate, the expected name. The system's roots by default.
    #[must_use]
    pub fn with_tls(self, tls: TlsConfig) -> Self {
        self.with(|c| c.tls = tls)
    }

    /// The server's URL, credentials masked.
    pub fn address(&self) -> String {
        self.inner.conn.shown()
    }
}

/// A bucket and key as NATS KV allows them (they become subjects: no wildcard, no
/// space can slip in).
fn checked(request: &FetchRequest) -> Result<(&str, &str), SourceError> {
    let bucket = request.param(BUCKET).ok_or_else(|| {
        SourceError::new(ErrorKind::Config).with_message(
            "the `nats_kv` source needs `bucket = \"...\"`, the key-value bucket to read",
        )
    })?;
    if bucket.is_empty()
        || !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(SourceError::new(ErrorKind::Config).with_message(format!(
            "`{bucket}` is not a NATS KV bucket name (letters, digits, `_` and `-`)"
        )));
    }
    let key = request.key().ok_or_else(|| {
        SourceError::new(ErrorKind::Config).with_message(format!(
            "the `nats_kv` source needs `key = \"...\"`, the key to read in bucket `{bucket}`"
        ))
    })?;
    if key.is_empty()
        || key.starts_with('.')
        || key.ends_with('.')
        || key.contains("..")
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    {
        return Err(SourceError::new(ErrorKind::Config).with_message(format!(
            "`{key}` is not a NATS KV key (letters, digits, `-/_=.`, no leading, trailing or double `.`; bucket `{bucket}`)"
        )));
    }
    Ok((bucket, key))
}

/// What a key holds, as read.
enum Read {
    /// A value at its revision (stream sequence).
    Value(RawValue, u64),
    /// Deleted or purged at this revision, or (0) never written.
    Absent(&'static str, u64),
}

fn bucket_missing(bucket: &str) -> SourceError {
    SourceError::not_found().with_message(format!(
        "NATS KV bucket `{bucket}` does not exist (no JetStream stream `KV_{bucket}` on the server)"
    ))
}

fn too_large(bucket: &str, key: &str, bytes: u64, limit: usize) -> SourceError {
    SourceError::new(ErrorKind::TooLarge).with_message(format!(
        "key `{key}` of NATS KV bucket `{bucket}`: the server announced an answer of {bytes} bytes, over what a value of at most {limit} bytes takes; refused before reading it"
    ))
}

/// A request the server's permissions refused (the violation names the subject, never
/// a payload).
fn refused_error(what: &str, violation: &str) -> SourceError {
    SourceError::new(ErrorKind::Unauthorized)
        .with_message(format!("{what}: the server refused it ({violation})"))
}

fn late(what: &str, budget: Duration) -> SourceError {
    SourceError::new(ErrorKind::Timeout)
        .with_message(format!("{what}: no answer within {budget:?}"))
}

/// A JetStream request that failed: whether no server answered its subject.
struct Failed {
    no_responders: bool,
    error: SourceError,
}

/// The operation a KV message records, from its headers (`KV-Operation`).
fn operation(headers: Option<&async_nats::HeaderMap>) -> Option<&'static str> {
    match headers?.get("KV-Operation")?.as_str() {
        "DEL" => Some("deleted"),
        "PURGE" => Some("purged"),
        _ => None,
    }
}

/// The size the relay announced for a message it stood in for.
fn stood_in(headers: Option<&async_nats::HeaderMap>) -> Option<u64> {
    headers?.get(TOO_LARGE)?.as_str().parse().ok()
}

/// A JetStream API error answer (`{"error": {"code", "err_code", "description"}}`).
fn api_error(answer: &serde_json::Value) -> Option<(u64, u64, String)> {
    let e = answer.get("error")?;
    Some((
        e.get("code")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        e.get("err_code")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        e.get("description")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned(),
    ))
}

/// JetStream's "stream not found".
const STREAM_NOT_FOUND: u64 = 10059;

/// Standard base64 (with padding), as JetStream encodes a message in JSON.
fn base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The value of `KV-Operation` in the NATS header block `block` (`NATS/1.0\r\nK: V...`).
fn operation_in(block: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(block).ok()?;
    text.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("KV-Operation") {
            return None;
        }
        match value.trim() {
            "DEL" => Some("deleted"),
            "PURGE" => Some("purged"),
            _ => None,
        }
    })
}

impl Inner {
    /// When a read must be done by: the source's timeout from now, or the fetch's
    /// deadline if sooner. Every step of the read (connecting, waiting for the bucket's
    /// lookup, the lookup, the get, the second get) shares it.
    fn deadline(&self, cx: Option<&FetchContext>) -> Instant {
        let budget = match cx.and_then(FetchContext::remaining) {
            Some(left) => self.conn.timeout.min(left.max(Duration::from_millis(1))),
            None => self.conn.timeout,
        };
        Instant::now() + budget
    }

    /// One JetStream API request, answered by `deadline`.
    async fn request(
        &self,
        client: &async_nats::Client,
        subject: String,
        body: String,
        deadline: Instant,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<async_nats::Message, Failed> {
        crate::metrics::round_trip();
        let left = deadline.saturating_duration_since(Instant::now());
        let failed = |error| Failed {
            no_responders: false,
            error,
        };
        if left.is_zero() {
            return Err(failed(late(&what(), self.conn.timeout)));
        }
        let request = async_nats::Request::new()
            .payload(body.into())
            .timeout(Some(left));
        // The server answers nothing to a request its permissions refuse: it reports a
        // violation naming the subject instead.
        let asked = Instant::now();
        let refused = self.conn.violations.of(asked, &subject);
        let answered =
            tokio::time::timeout_at(deadline, client.send_request(subject.clone(), request));
        let answered = tokio::select! {
            answered = answered => answered,
            violation = refused => return Err(failed(refused_error(&what(), &violation))),
        };
        match answered {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                Err(failed(late(&what(), self.conn.timeout)))
            }
            Ok(Err(e)) => Err(Failed {
                no_responders: e.kind() == async_nats::RequestErrorKind::NoResponders,
                error: self.conn.unavailable(&format_args!("{}: {e}", what())),
            }),
            Err(_) => Err(failed(late(&what(), self.conn.timeout))),
        }
    }

    /// Whether `bucket`'s stream answers direct gets (asked once per bucket), or that the
    /// bucket does not exist.
    async fn direct(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        deadline: Instant,
    ) -> Result<bool, SourceError> {
        let known = || {
            self.buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(bucket)
                .copied()
        };
        if let Some(direct) = known() {
            return Ok(direct);
        }
        let asked = Instant::now();
        let lookup = self
            .lookups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(bucket.to_owned())
            .or_default()
            .clone();
        let mut last = tokio::time::timeout_at(deadline, lookup.lock())
            .await
            .map_err(|_| {
                late(
                    &format!("looking NATS KV bucket `{bucket}` up"),
                    self.conn.timeout,
                )
            })?;
        if let Some(direct) = known() {
            return Ok(direct);
        }
        // The lookup this read waited for failed: its answer is this read's too.
        if let Some((at, e)) = last.as_ref()
            && *at >= asked
        {
            return Err(e.clone());
        }
        let found = self.look_up(client, bucket, deadline).await;
        match &found {
            Ok(direct) => {
                self.buckets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(bucket.to_owned(), *direct);
                *last = None;
            }
            Err(e) => *last = Some((Instant::now(), e.clone())),
        }
        found
    }

    /// `$JS.API.STREAM.INFO` of the bucket's stream: whether it answers direct gets.
    async fn look_up(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        deadline: Instant,
    ) -> Result<bool, SourceError> {
        let what = || format!("asking JetStream for NATS KV bucket `{bucket}`");
        let subject = format!("$JS.API.STREAM.INFO.KV_{bucket}");
        let info = match self
            .api(client, subject, String::new(), deadline, &what)
            .await
        {
            Ok(info) => info,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(bucket_missing(bucket)),
            Err(e) => return Err(e),
        };
        Ok(info
            .pointer("/config/allow_direct")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false))
    }

    fn forget(&self, bucket: &str) {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(bucket);
    }

    /// The last record of `key` in `bucket`, by `deadline`. When a direct get finds
    /// nobody answering, the bucket is asked for again: missing, it is `not found`;
    /// there (a restart or a leader change leaves the direct get unanswered for a
    /// moment), the get is tried once more, then once as `STREAM.MSG.GET` (the leader
    /// answers it), and a last "no responders" is `Unavailable` — never `not found`,
    /// which would let a fallback replace the real value.
    async fn read(&self, bucket: &str, key: &str, deadline: Instant) -> Result<Read, SourceError> {
        let client = self.conn.client(deadline).await?;
        let direct = self.direct(&client, bucket, deadline).await?;
        match self.read_once(&client, bucket, key, direct, deadline).await {
            Err(Gone) => {
                self.forget(bucket);
                let direct = self.direct(&client, bucket, deadline).await?;
                match self.read_once(&client, bucket, key, direct, deadline).await {
                    Ok(read) => read,
                    Err(Gone) if direct => self
                        .read_once(&client, bucket, key, false, deadline)
                        .await
                        .unwrap_or_else(|Gone| Err(bucket_missing(bucket))),
                    Err(Gone) => Err(bucket_missing(bucket)),
                }
            }
            Ok(read) => read,
        }
    }

    /// One read; `Err(Gone)` when the bucket's stream did not answer as existing.
    async fn read_once(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        key: &str,
        direct: bool,
        deadline: Instant,
    ) -> Result<Result<Read, SourceError>, Gone> {
        let what = || format!("reading key `{key}` of NATS KV bucket `{bucket}`");
        let body = serde_json::json!({ "last_by_subj": format!("$KV.{bucket}.{key}") }).to_string();
        let subject = if direct {
            format!("$JS.API.DIRECT.GET.KV_{bucket}")
        } else {
            format!("$JS.API.STREAM.MSG.GET.KV_{bucket}")
        };
        let answer = match self.request(client, subject, body, deadline, &what).await {
            Ok(answer) => answer,
            // A direct get nobody answers: the stream is gone, or its servers are
            // restarting (the caller asks).
            Err(Failed {
                no_responders: true,
                ..
            }) if direct => {
                return Err(Gone);
            }
            Err(f) => return Ok(Err(f.error)),
        };
        if let Some(bytes) = stood_in(answer.headers.as_ref()) {
            // Taken, so a later error of another read is not mistaken for this one.
            let _ = self.conn.refused();
            return Ok(Err(too_large(bucket, key, bytes, self.conn.max_message)));
        }
        Ok(if direct {
            self.direct_answer(bucket, key, &answer, &what)
        } else {
            self.json_answer(bucket, key, &answer, &what)
        })
        .and_then(|r| r)
    }

    fn direct_answer(
        &self,
        bucket: &str,
        key: &str,
        answer: &async_nats::Message,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Result<Read, SourceError>, Gone> {
        match answer.status {
            Some(s) if s == async_nats::StatusCode::NOT_FOUND => {
                return Ok(Ok(Read::Absent("never written", 0)));
            }
            Some(s) if s != async_nats::StatusCode::OK => {
                return Ok(Err(self.conn.unavailable(&format_args!(
                    "{}: {s} {}",
                    what(),
                    answer.description.as_deref().unwrap_or("")
                ))));
            }
            _ => {}
        }
        let revision = answer
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Sequence"))
            .and_then(|v| v.as_str().parse::<u64>().ok())
            .unwrap_or(0);
        if let Some(op) = operation(answer.headers.as_ref()) {
            return Ok(Ok(Read::Absent(op, revision)));
        }
        Ok(self.value(bucket, key, answer.payload.to_vec(), revision))
    }

    fn json_answer(
        &self,
        bucket: &str,
        key: &str,
        answer: &async_nats::Message,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<Result<Read, SourceError>, Gone> {
        let decode = |e: &dyn std::fmt::Display| {
            SourceError::new(ErrorKind::Decode).with_message(format!("{}: {e}", what()))
        };
        let parsed: serde_json::Value = match serde_json::from_slice(&answer.payload) {
            Ok(v) => v,
            Err(e) => return Ok(Err(decode(&e))),
        };
        if let Some((code, err_code, description)) = api_error(&parsed) {
            if err_code == STREAM_NOT_FOUND {
                return Err(Gone);
            }
            if code == 404 {
                return Ok(Ok(Read::Absent("never written", 0)));
            }
            return Ok(Err(self
                .conn
                .unavailable(&format_args!("{}: {description} ({code})", what()))));
        }
        let message = parsed.get("message");
        let field = |name: &str| message.and_then(|m| m.get(name));
        let revision = field("seq")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let headers = match field("hdrs").and_then(serde_json::Value::as_str) {
            Some(h) => match base64(h) {
                Some(h) => h,
                None => return Ok(Err(decode(&"headers are not base64"))),
            },
            None => Vec::new(),
        };
        if let Some(op) = operation_in(&headers) {
            return Ok(Ok(Read::Absent(op, revision)));
        }
        let data = match field("data").and_then(serde_json::Value::as_str) {
            Some(d) => match base64(d) {
                Some(d) => d,
                None => return Ok(Err(decode(&"the value is not base64"))),
            },
            None => Vec::new(),
        };
        Ok(self.value(bucket, key, data, revision))
    }

    fn value(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        revision: u64,
    ) -> Result<Read, SourceError> {
        if bytes.len() > self.conn.max_message {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "key `{key}` of NATS KV bucket `{bucket}`: a value of {} bytes, over the limit of {} bytes",
                bytes.len(),
                self.conn.max_message
            )));
        }
        Ok(Read::Value(RawValue::text_or_bytes(bytes), revision))
    }

    /// A request's value and its revision.
    async fn fetch_one(
        &self,
        request: &FetchRequest,
        deadline: Instant,
    ) -> Result<(RawValue, u64), SourceError> {
        let (bucket, key) = checked(request)?;
        match self.read(bucket, key, deadline).await? {
            Read::Value(value, revision) => Ok((value, revision)),
            Read::Absent("never written", _) => Err(SourceError::not_found()
                .with_message(format!("key `{key}` is not in NATS KV bucket `{bucket}`"))),
            Read::Absent(how, revision) => Err(SourceError::not_found().with_message(format!(
                "key `{key}` of NATS KV bucket `{bucket}` was {how} (revision {revision})"
            ))),
        }
    }
}

/// How long the consumer a preflight makes to see a key's last record lives on the
/// server if the preflight cannot delete it (the call ended, the connection broke).
const PROBE_CONSUMER_TTL: Duration = Duration::from_secs(10);

impl Inner {
    /// Checks `requests` without reading a value (see the module's "Preflight"): one
    /// connection, then per key a `STREAM.INFO` of the bucket's stream filtered to the
    /// key's subject (a count, no payload), and when the key has records a consumer that
    /// delivers its last one headers only (whether it is a delete), deleted after.
    async fn preflight(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let deadline = self.deadline(None);
        let client = match self.conn.client(deadline).await {
            Ok(client) => client,
            Err(e) => {
                let probe = probe_of_error(&e);
                return requests.iter().map(|_| probe.clone()).collect();
            }
        };
        futures::future::join_all(requests.iter().map(|r| async {
            match checked(r) {
                Ok((bucket, key)) => self.check_key(&client, bucket, key, deadline).await,
                Err(e) => Probe::from_error(&e),
            }
        }))
        .await
    }

    /// One key's probe.
    async fn check_key(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        key: &str,
        deadline: Instant,
    ) -> Probe {
        let subject = format!("$KV.{bucket}.{key}");
        let what = || format!("checking key `{key}` of NATS KV bucket `{bucket}`");
        let info = match self
            .api(
                client,
                format!("$JS.API.STREAM.INFO.KV_{bucket}"),
                serde_json::json!({ "subjects_filter": subject }).to_string(),
                deadline,
                &what,
            )
            .await
        {
            Ok(info) => info,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Probe::new(Access::Invalid).with_detail(format!("no bucket `{bucket}`"));
            }
            Err(e) => return probe_of_error(&e),
        };
        let records = info
            .pointer("/state/subjects")
            .and_then(|s| s.get(&subject))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if records == 0 {
            return Probe::missing().with_detail("never written");
        }
        match self
            .last_record(client, bucket, &subject, deadline, &what)
            .await
        {
            Ok((Some(how), revision)) => {
                Probe::missing().with_detail(format!("{how} (revision {revision})"))
            }
            Ok((None, revision)) => Probe::readable().with_detail(format!("revision {revision}")),
            Err(e) => Probe::unchecked(format!(
                "the key has records; whether the last one is a delete could not be checked: {e}"
            )),
        }
    }

    /// One JetStream API request (`body`: JSON, or empty), its JSON answer, bounded as
    /// every read; a stream that does not exist is `not found`, another API error
    /// `Unavailable` naming it.
    async fn api(
        &self,
        client: &async_nats::Client,
        subject: String,
        body: String,
        deadline: Instant,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<serde_json::Value, SourceError> {
        let answer = match self.request(client, subject, body, deadline, what).await {
            Ok(answer) => answer,
            Err(Failed {
                no_responders: true,
                ..
            }) => {
                return Err(SourceError::new(ErrorKind::Unavailable)
                    .with_message(format!("{}: the server has no JetStream", what())));
            }
            Err(f) => return Err(f.error),
        };
        if stood_in(answer.headers.as_ref()).is_some() {
            let _ = self.conn.refused();
            return Err(SourceError::new(ErrorKind::TooLarge)
                .with_message(format!("{}: the answer is over the limit", what())));
        }
        let parsed: serde_json::Value = serde_json::from_slice(&answer.payload).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!("{}: {e}", what()))
        })?;
        if let Some((code, err_code, description)) = api_error(&parsed) {
            return Err(if err_code == STREAM_NOT_FOUND {
                SourceError::not_found().with_message(format!("{}: {description}", what()))
            } else {
                self.conn
                    .unavailable(&format_args!("{}: {description} ({code})", what()))
            });
        }
        Ok(parsed)
    }

    /// The key's last record, its headers only (never its value): whether it is a delete
    /// or purge, and its revision. An ephemeral pull consumer on the key's subject
    /// (`last_per_subject`, `headers_only`, in memory), one message pulled without
    /// waiting, the consumer deleted (else the server removes it once idle).
    async fn last_record(
        &self,
        client: &async_nats::Client,
        bucket: &str,
        subject: &str,
        deadline: Instant,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<(Option<&'static str>, u64), SourceError> {
        let stream = format!("KV_{bucket}");
        let created = self
            .api(
                client,
                format!("$JS.API.CONSUMER.CREATE.{stream}"),
                serde_json::json!({
                    "stream_name": stream,
                    "config": {
                        "deliver_policy": "last_per_subject",
                        "ack_policy": "none",
                        "filter_subject": subject,
                        "headers_only": true,
                        "mem_storage": true,
                        "num_replicas": 1,
                        "inactive_threshold": PROBE_CONSUMER_TTL.as_nanos() as u64,
                    },
                })
                .to_string(),
                deadline,
                what,
            )
            .await?;
        let Some(name) = created.get("name").and_then(serde_json::Value::as_str) else {
            return Err(SourceError::new(ErrorKind::Decode)
                .with_message(format!("{}: the consumer made has no name", what())));
        };
        let pulled = self.pull_one(client, &stream, name, deadline, what).await;
        // Deleted whatever the pull answered (bounded by the same deadline).
        let _ = self
            .request(
                client,
                format!("$JS.API.CONSUMER.DELETE.{stream}.{name}"),
                String::new(),
                deadline,
                what,
            )
            .await;
        let message = pulled?;
        if let Some(status) = message.status
            && status != async_nats::StatusCode::OK
        {
            return Err(self.conn.unavailable(&format_args!(
                "{}: the pull answered {status} {}",
                what(),
                message.description.as_deref().unwrap_or("")
            )));
        }
        // `$JS.ACK.<stream>.<consumer>.<delivered>.<stream sequence>.…`
        let revision = message
            .reply
            .as_ref()
            .and_then(|r| r.as_str().split('.').nth(5))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        Ok((operation(message.headers.as_ref()), revision))
    }
}

impl Inner {
    /// One message of a pull consumer, asked without waiting: JetStream delivers it
    /// under its own subject to the pull's reply inbox, which the client's request mux
    /// cannot route, so on a subscription of a fresh inbox (dropped when done).
    async fn pull_one(
        &self,
        client: &async_nats::Client,
        stream: &str,
        consumer: &str,
        deadline: Instant,
        what: &(dyn Fn() -> String + Sync),
    ) -> Result<async_nats::Message, SourceError> {
        let late = || late(&what(), self.conn.timeout);
        let inbox = client.new_inbox();
        let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}");
        crate::metrics::round_trip();
        let asked = Instant::now();
        let refused = async {
            let violation = tokio::select! {
                v = self.conn.violations.of(asked, &next) => v,
                v = self.conn.violations.of(asked, &inbox) => v,
            };
            refused_error(&what(), &violation)
        };
        let work = async {
            let mut subscription = client
                .subscribe(inbox.clone())
                .await
                .map_err(|e| self.conn.unavailable(&format_args!("{}: {e}", what())))?;
            client
                .publish_with_reply(
                    next.clone(),
                    inbox.clone(),
                    serde_json::json!({ "batch": 1, "no_wait": true })
                        .to_string()
                        .into(),
                )
                .await
                .map_err(|e| self.conn.unavailable(&format_args!("{}: {e}", what())))?;
            let got = subscription.next().await;
            let _ = subscription.unsubscribe().await;
            got.ok_or_else(|| {
                self.conn
                    .unavailable(&format_args!("{}: the subscription ended", what()))
            })
        };
        tokio::time::timeout_at(deadline, async {
            tokio::select! {
                got = work => got,
                e = refused => Err(e),
            }
        })
        .await
        .map_err(|_| late())?
    }
}

/// What an error of a preflight means: a request the server's permissions refused is
/// [`Access::Denied`] (as [`Probe::from_error`] says); refused credentials (an
/// authorization violation when connecting) are [`Access::Unauthenticated`]; the rest as
/// [`Probe::from_error`] says (cannot connect, no answer in time: unreachable).
fn probe_of_error(e: &SourceError) -> Probe {
    let mut probe = Probe::from_error(e);
    if e.kind() == ErrorKind::Unauthorized
        && !e
            .message()
            .is_some_and(|m| m.to_ascii_lowercase().contains("permissions violation"))
    {
        probe.access = Access::Unauthenticated;
    }
    probe
}

/// The bucket's stream did not answer as existing.
struct Gone;

#[async_trait::async_trait]
impl Source for NatsKvSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let deadline = self.inner.deadline(None);
        self.inner
            .fetch_one(request, deadline)
            .await
            .map(|(v, _)| v)
    }

    /// Every request at once, on the one connection: NATS before 2.11 has no multi-get,
    /// so each key is one direct get, all in flight together.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let deadline = self.inner.deadline(None);
        futures::future::join_all(requests.iter().map(|r| self.inner.fetch_one(r, deadline)))
            .await
            .into_iter()
            .map(|r| r.map(|(v, _)| v))
            .collect()
    }

    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let deadline = self.inner.deadline(Some(cx));
        futures::future::join_all(requests.iter().map(|r| async move {
            let (value, revision) = self.inner.fetch_one(r, deadline).await?;
            cx.note_revision(r, Revision::Index(revision));
            Ok(value)
        }))
        .await
    }

    fn location(&self) -> Option<String> {
        Some(self.inner.conn.shown())
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        let key = request.key()?;
        Some(match request.param(BUCKET) {
            Some(bucket) => ("key", format!("{bucket}/{key}")),
            None => ("key", key.to_owned()),
        })
    }

    /// Without reading a value: the bucket's stream filtered to the key's subject, then
    /// the key's last record headers only (see the module's "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.inner.preflight(requests))
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        // One follower per distinct bucket and key, for every request of it.
        let mut keys: Vec<((String, String), Vec<usize>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let Ok((bucket, key)) = checked(r) else {
                continue;
            };
            let id = (bucket.to_owned(), key.to_owned());
            match keys.iter_mut().find(|(k, _)| *k == id) {
                Some((_, covers)) => covers.push(i),
                None => keys.push((id, vec![i])),
            }
        }
        Ok(futures::stream::select_all(
            keys.into_iter()
                .map(|((bucket, key), covers)| follow(self.inner.clone(), bucket, key, covers)),
        )
        .boxed())
    }
}

/// What one key's follower holds between items.
struct Follower {
    inner: Arc<Inner>,
    bucket: String,
    key: String,
    covers: Vec<usize>,
    messages: Option<jetstream::consumer::push::Ordered>,
    /// The last revision handed on, or the one before the first the consumer starts at
    /// (0: not subscribed yet, or nothing in the bucket's stream then). Records at or
    /// before it are dropped (an ordered consumer async-nats makes again before its
    /// first delivery starts with the stream's first record).
    revision: u64,
    /// When the bucket's stream was made, as last seen: another stream of the same
    /// name (the bucket deleted and made again) numbers its records from 1 again.
    created: Option<i128>,
    failures: u32,
    queue: VecDeque<Change>,
}

/// Consecutive failures to watch a key after which the watch hands on the error (the
/// Live watches again after a backoff of its own), e.g. when the bucket was deleted.
const FAILURES_REPORTED: u32 = 3;

/// Follows one key with an ordered push consumer: first its last record (the current
/// value again, or the delete that made it absent), then every new one. async-nats
/// recreates the consumer from the last sequence after a reconnect; when it fails, the
/// follower makes a new one from the revision after the last it handed on.
fn follow(inner: Arc<Inner>, bucket: String, key: String, covers: Vec<usize>) -> Changes {
    let state = Follower {
        inner,
        bucket,
        key,
        covers,
        messages: None,
        revision: 0,
        created: None,
        failures: 0,
        queue: VecDeque::new(),
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(change) = s.queue.pop_front() {
                return Some((Ok(change), s));
            }
            let Some(messages) = s.messages.as_mut() else {
                if s.failures > 0 {
                    tokio::time::sleep(crate::fetchers::stream::backoff(s.failures - 1)).await;
                }
                match s.subscribe().await {
                    Ok(messages) => {
                        s.messages = Some(messages);
                        s.failures = 0;
                    }
                    Err(e) => {
                        s.failures = s.failures.saturating_add(1);
                        tracing::debug!(bucket = %s.bucket, key = %s.key, error = %e, "nats_kv: cannot watch the key yet; retrying");
                        if s.failures % FAILURES_REPORTED == 0 {
                            return Some((Err(e), s));
                        }
                    }
                }
                continue;
            };
            match messages.next().await {
                Some(Ok(m)) => s.delivered(&m),
                Some(Err(e)) => {
                    tracing::debug!(bucket = %s.bucket, key = %s.key, error = %e, "nats_kv: the watch consumer failed; making it again");
                    s.messages = None;
                    s.failures = s.failures.saturating_add(1);
                }
                None => {
                    s.messages = None;
                    s.failures = s.failures.saturating_add(1);
                }
            }
        }
    })
    .boxed()
}

impl Follower {
    /// A new ordered consumer on the key, at an explicit sequence: the first time (or
    /// when the bucket was made again) from the key's last record, read once, else from
    /// the record after the last handed on. Connecting, the stream's info, the read and
    /// making the consumer share one timeout.
    async fn subscribe(&mut self) -> Result<jetstream::consumer::push::Ordered, SourceError> {
        let inner = &self.inner;
        let (bucket, key) = (&self.bucket, &self.key);
        let deadline = Instant::now() + inner.conn.timeout;
        let late = || late("watching NATS KV: JetStream", inner.conn.timeout);
        let client = inner.conn.client(deadline).await?;
        let js = jetstream::new(client.clone());
        crate::metrics::round_trip();
        let stream = tokio::time::timeout_at(deadline, js.get_stream(format!("KV_{bucket}")))
            .await
            .map_err(|_| late())?
            .map_err(|e| match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    bucket_missing(bucket)
                }
                _ => inner.conn.unavailable(&e),
            })?;
        let info = stream.cached_info();
        let created = info.created.unix_timestamp_nanos();
        let last = info.state.last_sequence;
        let remade = self.created.is_some_and(|c| c != created) || last < self.revision;
        self.created = Some(created);
        if remade && self.revision > 0 {
            // The bucket was made again: its records are numbered anew. Whatever the
            // key holds now is read again, and followed from its last record.
            tracing::debug!(bucket = %bucket, key = %key, "nats_kv: the bucket was made again; following it from its start");
            self.revision = 0;
            self.queue.push_back(Change::Changed(self.covers.clone()));
        }
        if self.revision == 0 {
            // The key's last record at or after `last`'s time: from it on (handed on
            // again), or after `last` when the key has none (nothing is skipped: a
            // record written after `last` would have been read).
            let start = match inner.read(bucket, key, deadline).await {
                Ok(Read::Value(_, r) | Read::Absent(_, r)) if r > 0 => r,
                Ok(_) => last + 1,
                Err(e) if e.kind() == ErrorKind::TooLarge => last + 1,
                Err(e) => return Err(e),
            };
            self.revision = start - 1;
        }
        crate::metrics::round_trip();
        let consumer = tokio::time::timeout_at(
            deadline,
            stream.create_consumer(OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: format!("$KV.{bucket}.{key}"),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: self.revision + 1,
                },
                replay_policy: ReplayPolicy::Instant,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| late())?
        .map_err(|e| inner.conn.unavailable(&e))?;
        tokio::time::timeout_at(deadline, consumer.messages())
            .await
            .map_err(|_| late())?
            .map_err(|e| inner.conn.unavailable(&e))
    }
    /// What a delivered record changes: a put is the value of every request of the key;
    /// a delete or purge (absent), or a value over the bound, is a re-read (which answers
    /// not found, or `TooLarge`).
    fn delivered(&mut self, m: &jetstream::Message) {
        let revision = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        if revision != 0 && revision <= self.revision {
            return;
        }
        self.revision = self.revision.max(revision);
        let headers = m.headers.as_ref();
        let reread = if let Some(bytes) = stood_in(headers) {
            let _ = self.inner.conn.refused();
            tracing::warn!(bucket = %self.bucket, key = %self.key, bytes, limit = self.inner.conn.max_message, "nats_kv: a watched value over the limit was refused");
            true
        } else {
            operation(headers).is_some() || m.payload.len() > self.inner.conn.max_message
        };
        if reread {
            self.queue.push_back(Change::Changed(self.covers.clone()));
            return;
        }
        let value = RawValue::text_or_bytes(m.payload.to_vec());
        for &index in &self.covers {
            self.queue.push_back(Change::Value {
                index,
                value: value.clone(),
                revision: Some(Revision::Index(revision)),
            });
        }
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
            "nats://h1:4222,app:CANARY@h2:4222",
        ] {
            let s = NatsKvSource::new(url);
            let shown = format!("{s:?} {:?} {}", s.location(), s.address());
            assert!(!shown.contains("CANARY"), "{url}: {shown}");
            assert!(shown.contains("***"), "{url}: {shown}");
        }
        let r = FetchRequest::for_key("nats_kv", "a").with_param("bucket", "b");
        for url in ["app:CANARY@h:port", "nats://u:pa/CANARY@h:port"] {
            let e = NatsKvSource::new(url).fetch(&r).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{url}: {e}");
            assert!(!format!("{e} {e:?}").contains("CANARY"), "{url}: {e}");
        }
    }

    #[test]
    fn base64_and_header_blocks_decode() {
        assert_eq!(base64("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64("").as_deref(), Some(&b""[..]));
        assert!(base64("a b").is_none());
        assert_eq!(
            operation_in(b"NATS/1.0\r\nKV-Operation: PURGE\r\nNats-Rollup: sub\r\n\r\n"),
            Some("purged")
        );
        assert_eq!(
            operation_in(b"NATS/1.0\r\nkv-operation:DEL\r\n\r\n"),
            Some("deleted")
        );
        assert_eq!(operation_in(b"NATS/1.0\r\nX: DEL\r\n\r\n"), None);
    }

    #[test]
    fn buckets_and_keys_that_would_be_other_subjects_are_refused() {
        let ok = FetchRequest::for_key("nats_kv", "app.port").with_param("bucket", "config");
        assert_eq!(checked(&ok).unwrap(), ("config", "app.port"));
        for (bucket, key) in [
            ("config", "app.>"),
            ("config", "a *"),
            ("config", ".a"),
            ("config", "a."),
            ("config", "a..b"),
            ("con.fig", "a"),
            ("", "a"),
        ] {
            let r = FetchRequest::for_key("nats_kv", key).with_param("bucket", bucket);
            let e = checked(&r).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config, "{bucket} {key}");
        }
        let e = checked(&FetchRequest::for_key("nats_kv", "a")).unwrap_err();
        assert!(e.message().unwrap().contains("bucket"), "{e:?}");
    }

    #[test]
    fn debug_and_location_show_no_credentials() {
        let s = NatsKvSource::new("nats://u:hunter2@h:4222,nats://tok3n@h2:4222");
        let shown = format!("{s:?} {:?}", s.location());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("tok3n"), "{shown}");
        let r = FetchRequest::for_key("nats_kv", "app.port").with_param("bucket", "config");
        assert_eq!(
            s.native_key(&r),
            Some(("key", "config/app.port".to_owned()))
        );
    }
}
