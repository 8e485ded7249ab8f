//! The `etcd` backend's implementation (see the module above for what it declares).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client};
use crate::source::{
    Access, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision, Source,
};
use crate::source_support::{coalesce, redact_url};

/// The most operations this client puts in one `/v3/kv/txn` unless
/// [`EtcdSource::with_max_txn_ops`] says otherwise: etcd's default `--max-txn-ops`.
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

/// Keys read by the last reads, with the revision they were read at: the watch starts
/// after it. Forgotten past this many keys (a watch then starts at the current revision).
const MAX_REMEMBERED: usize = 10_000;

/// An etcd cluster's KV store, read through its v3 JSON gateway (`/v3/kv/txn`,
/// `/v3/watch`) over HTTP.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::EtcdSource;
///
/// let etcd = EtcdSource::endpoints(["http://10.0.0.1:2379", "10.0.0.2:2379"])
///     .with_auth("app", "s3cret")
///     .with_timeout(Duration::from_secs(5))
///     .with_max_txn_ops(64);
/// assert_eq!(
///     etcd.location().as_deref(),
///     Some("http://10.0.0.1:2379, http://10.0.0.2:2379")
/// );
/// // Neither Debug nor the location shows the password.
/// assert!(!format!("{etcd:?}").contains("s3cret"));
/// # use component_model_async::Source;
/// ```
///
/// A field reads one key with `key`, or every key under a prefix with `prefix`:
///
/// ```no_run
/// use std::collections::HashMap;
/// use component_model_async::{AsyncAssign, EtcdSource, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Settings {
///     #[component(fetch_from = "etcd", key = "/app/port")]
///     port: u16,
///     #[component(fetch_from = "etcd", prefix = "/app/features/", max_keys = 100)]
///     features: HashMap<String, bool>,
/// }
///
/// # async fn run() -> Result<(), component_model_async::ComponentError> {
/// let sources = Sources::new().register("etcd", EtcdSource::new("http://127.0.0.1:2379"));
/// let settings = Settings::fetch_all_components_with(&sources).await?; // ONE txn
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EtcdSource {
    endpoints: Arc<[String]>,
    client: Client,
    auth: Option<Arc<Auth>>,
    max_txn_ops: usize,
    invalid: Option<String>,
    state: Arc<State>,
}

/// A user name and its password (kept secret).
struct Auth {
    user: String,
    password: SecretString,
}

/// What the clones of a source share.
#[derive(Default)]
struct State {
    /// The endpoint that answered last (the first one tried).
    current: AtomicUsize,
    /// The token: `None` not asked yet, `Some(None)` authentication is off on the server.
    token: tokio::sync::Mutex<Option<Option<HeaderValue>>>,
    /// The revision each key (or prefix) was last read at.
    read_at: Mutex<HashMap<String, u64>>,
}

impl fmt::Debug for EtcdSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<String> = self.endpoints.iter().map(|e| redact_url(e)).collect();
        f.debug_struct("EtcdSource")
            .field("endpoints", &endpoints)
            .field("user", &self.auth.as_ref().map(|a| a.user.as_str()))
            .field("password", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.client.timeout)
            .field("max_body", &self.client.max_body)
            .field("max_txn_ops", &self.max_txn_ops)
            .finish()
    }
}

/// An int64 of the gateway: a JSON string (`"42"`), or a number; anything else (or a
/// negative one) fails the answer's decoding.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(try_from = "I64Repr")]
pub(super) struct I64(pub(super) u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum I64Repr {
    Text(String),
    Number(u64),
}

impl TryFrom<I64Repr> for I64 {
    type Error = String;

    fn try_from(r: I64Repr) -> Result<Self, String> {
        match r {
            I64Repr::Text(s) => s
                .parse::<u64>()
                .map(I64)
                .map_err(|_| format!("`{}` is not a revision", s.escape_debug())),
            I64Repr::Number(n) => Ok(I64(n)),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct Header {
    #[serde(default)]
    revision: I64,
}

#[derive(Deserialize)]
pub(super) struct Kv {
    #[serde(default)]
    pub(super) key: String,
    #[serde(default)]
    pub(super) value: Option<String>,
    #[serde(default)]
    mod_revision: I64,
}

impl Kv {
    pub(super) fn mod_revision(&self) -> u64 {
        self.mod_revision.0
    }
}

#[derive(Deserialize, Default)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<Kv>,
    #[serde(default)]
    count: I64,
}

#[derive(Deserialize)]
struct TxnOpResponse {
    #[serde(default)]
    response_range: Option<RangeResponse>,
}

#[derive(Deserialize)]
struct TxnResponse {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    responses: Vec<TxnOpResponse>,
}

#[derive(Deserialize)]
struct RangeOnly {
    #[serde(default)]
    header: Header,
}

#[derive(Deserialize)]
struct AuthResponse {
    #[serde(default)]
    token: String,
}

/// What the gateway says of a failed call: `{"error": "...", "message": "...", "code": N}`.
#[derive(Deserialize, Default)]
struct GatewayError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

pub(super) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// The end of the range of every key starting with `prefix` (etcd's `GetPrefixRangeEnd`):
/// the prefix with its last byte below 0xff incremented; `[0]` (every key) when there is
/// none.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().unwrap_or(&mut 0) = last + 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// A value as the fetch answers it: text when UTF-8, else bytes; `None` when not base64.
pub(super) fn decode_value(value: Option<&str>) -> Option<RawValue> {
    match value {
        None => Some(RawValue::Text(String::new())),
        Some(v) => unb64(v).map(RawValue::text_or_bytes),
    }
}

/// What one request reads: a key, or the keys under a prefix (with its `max_keys`).
#[derive(Clone, Copy)]
pub(super) enum Op<'a> {
    Key(&'a str),
    Prefix(&'a str),
}

impl<'a> Op<'a> {
    pub(super) fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        if let Some(prefix) = request.param(subtree::PREFIX) {
            return Ok(Op::Prefix(prefix));
        }
        match request.key() {
            Some(key) => Ok(Op::Key(key)),
            None => {
                Err(SourceError::new(ErrorKind::Config).with_message("the field names no `key`"))
            }
        }
    }

    /// The key range: `(key, range_end)`, no end for one key.
    pub(super) fn range(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            Op::Key(k) => (k.as_bytes().to_vec(), None),
            Op::Prefix("") => (vec![0], Some(vec![0])),
            Op::Prefix(p) => (p.as_bytes().to_vec(), Some(prefix_end(p.as_bytes()))),
        }
    }

    /// How the revision a read was at is remembered.
    pub(super) fn memo(&self) -> String {
        match self {
            Op::Key(k) => format!("k{k}"),
            Op::Prefix(p) => format!("p{p}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::Key(k) => format!("key `{k}`"),
            Op::Prefix(p) => format!("prefix `{p}`"),
        }
    }
}

/// Whether an etcd error message says the token is not (or no longer) valid.
fn token_refused(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("invalid auth token")
        || m.contains("token expired")
        || m.contains("user name is empty")
}

/// The kind of error an etcd message means (the gateway answers most with 400).
fn kind_of(status: StatusCode, message: &str) -> ErrorKind {
    let m = message.to_ascii_lowercase();
    if m.contains("authentication failed")
        || m.contains("permission denied")
        || token_refused(&m)
        || m.contains("invalid user")
    {
        ErrorKind::Unauthorized
    } else if m.contains("too many operations") {
        ErrorKind::Config
    } else if m.contains("leader")
        || m.contains("timed out")
        || m.contains("unavailable")
        || m.contains("too many requests")
    {
        ErrorKind::Unavailable
    } else {
        transport::status_kind(status)
    }
}

/// The message of a gateway error body (bounded, never the whole body).
fn gateway_message(body: &[u8]) -> String {
    let parsed: GatewayError = serde_json::from_slice(body).unwrap_or_default();
    let text = parsed
        .error
        .or(parsed.message)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

impl EtcdSource {
    /// A cluster reached at `endpoint`: a URL (`http://127.0.0.1:2379`) or `host:port`
    /// (http).
    pub fn new(endpoint: impl AsRef<str>) -> Self {
        Self::endpoints([endpoint])
    }

    /// A cluster reached at any of `endpoints`, tried in order: a request that cannot
    /// connect to one (or that it answers with a 5xx or "no leader") goes to the next, and
    /// the one that answered with a success is tried first next time.
    ///
    /// ```
    /// use component_model_async::{EtcdSource, Source};
    ///
    /// let etcd = EtcdSource::endpoints(["127.0.0.1:1", "127.0.0.1:2379"]);
    /// assert_eq!(etcd.location().as_deref(), Some("http://127.0.0.1:1, http://127.0.0.1:2379"));
    /// ```
    pub fn endpoints<S: AsRef<str>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        let endpoints: Vec<String> = endpoints
            .into_iter()
            .map(|e| transport::base_url(e.as_ref(), "http"))
            .filter(|e| e != "http://")
            .collect();
        let invalid = endpoints
            .is_empty()
            .then(|| "no etcd endpoint was given".to_owned());
        EtcdSource {
            endpoints: endpoints.into(),
            client: Client::new(transport::DEFAULT_REQUEST_TIMEOUT),
            auth: None,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            invalid,
            state: Arc::default(),
        }
    }

    /// The cluster named by the process environment (see [`EtcdSource::from_env_source`]).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The cluster named by `ETCDCTL_ENDPOINTS` (comma-separated URLs or `host:port`s;
    /// `None` when unset or empty), with `ETCDCTL_USER` (`user:password`, or the user
    /// with `ETCDCTL_PASSWORD`) and TLS from `ETCDCTL_CACERT`, `ETCDCTL_CERT` and
    /// `ETCDCTL_KEY` (`host:port` endpoints are then `https`), as `etcdctl` reads them.
    ///
    /// ```
    /// use component_model_async::{EnvSource, EtcdSource, Source};
    ///
    /// let env = EnvSource::from_map([
    ///     ("ETCDCTL_ENDPOINTS", "etcd-1:2379,etcd-2:2379"),
    ///     ("ETCDCTL_USER", "app:s3cret"),
    /// ]);
    /// let etcd = EtcdSource::from_env_source(&env).unwrap();
    /// assert_eq!(etcd.location().as_deref(), Some("http://etcd-1:2379, http://etcd-2:2379"));
    /// assert!(!format!("{etcd:?}").contains("s3cret"));
    /// assert!(EtcdSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let endpoints = env.get("ETCDCTL_ENDPOINTS")?;
        let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
        let tls = crate::TlsConfig::etcd_from_env(env);
        let tls_vars = !matches!(tls, Ok(None));
        let scheme = if tls_vars { "https" } else { "http" };
        let list: Vec<String> = endpoints
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| transport::base_url(e, scheme))
            .collect();
        if list.is_empty() {
            return None;
        }
        let mut source = EtcdSource::endpoints(list);
        if let Some(user) = get("ETCDCTL_USER") {
            source = match (user.split_once(':'), get("ETCDCTL_PASSWORD")) {
                (_, Some(password)) => source.with_auth(user, password),
                (Some((name, password)), None) => source.with_auth(name, password),
                (None, None) => {
                    source.invalid = Some(
                        "ETCDCTL_USER names a user without a password: write `user:password` or set ETCDCTL_PASSWORD"
                            .to_owned(),
                    );
                    source
                }
            };
        }
        match tls {
            Ok(Some(tls)) => source = source.with_tls(tls),
            Ok(None) => {}
            Err(why) => source.invalid = Some(why),
        }
        Some(source)
    }

    /// Authenticates as `user` with `password` (kept secret: never in `Debug`, errors or
    /// logs) through `/v3/auth/authenticate`; the token it answers is sent with every
    /// request, and asked again once when etcd says it is invalid or expired.
    #[must_use]
    pub fn with_auth(mut self, user: impl Into<String>, password: impl Into<SecretString>) -> Self {
        self.auth = Some(Arc::new(Auth {
            user: user.into(),
            password: password.into(),
        }));
        self.state = Arc::default();
        self
    }

    /// Connects with these TLS settings (CA, client certificate; see
    /// [`TlsConfig`](crate::TlsConfig)).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    /// Limits each request to `timeout` (default 10 s); a watch's stream is not limited,
    /// its opening is.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self
    }

    /// Reads response bodies (and each line of a watch's stream) of at most `bytes`
    /// (default [`DEFAULT_MAX_BODY`](crate::fetchers::transport::DEFAULT_MAX_BODY),
    /// 16 MiB): a larger one fails its fields with [`ErrorKind::TooLarge`].
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.max_body = bytes;
        self
    }

    /// Puts at most `ops` reads in one `/v3/kv/txn` (default [`DEFAULT_MAX_TXN_OPS`],
    /// etcd's own default `--max-txn-ops`); more fields are split into several
    /// transactions: the first, then the others concurrently at the revision the first
    /// was read at (one snapshot). `0` counts as 1.
    #[must_use]
    pub fn with_max_txn_ops(mut self, ops: usize) -> Self {
        self.max_txn_ops = ops.max(1);
        self
    }

    /// The endpoints' base URLs.
    pub fn endpoint_urls(&self) -> &[String] {
        &self.endpoints
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn max_body(&self) -> usize {
        self.client.max_body
    }

    pub(super) fn check_valid(&self) -> Result<(), SourceError> {
        match &self.invalid {
            Some(why) => Err(SourceError::new(ErrorKind::Config).with_message(why.clone())),
            None => Ok(()),
        }
    }

    /// The endpoints in the order to try them: the one that answered last first.
    pub(super) fn endpoint_order(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.endpoints.len();
        let first = self.state.current.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |i| {
            let at = (first + i) % n;
            (at, self.endpoints[at].as_str())
        })
    }

    pub(super) fn answered(&self, at: usize) {
        self.state.current.store(at, Ordering::Relaxed);
    }

    /// The token to send: `None` without authentication (or with it off on the server).
    pub(super) async fn token(&self) -> Result<Option<HeaderValue>, SourceError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let mut token = self.state.token.lock().await;
        if let Some(t) = token.as_ref() {
            return Ok(t.clone());
        }
        let fresh = self.authenticate(auth).await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    /// Asks for a new token, unless another request did since `stale` was handed out.
    pub(super) async fn refresh(
        &self,
        stale: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, SourceError> {
        let Some(auth) = &self.auth else {
            return Ok(None);
        };
        let mut token = self.state.token.lock().await;
        if let Some(current) = token.as_ref()
            && current.as_ref() != stale
        {
            return Ok(current.clone());
        }
        tracing::debug!(user = %auth.user, "etcd refused its token; authenticating again");
        let fresh = self.authenticate(auth).await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    async fn authenticate(&self, auth: &Auth) -> Result<Option<HeaderValue>, SourceError> {
        let body =
            serde_json::json!({"name": auth.user, "password": auth.password.expose_secret()});
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let (status, answer, endpoint) = self.post_raw("/v3/auth/authenticate", body, None).await?;
        if !status.is_success() {
            let message = gateway_message(&answer);
            if message.contains("authentication is not enabled") {
                return Ok(None);
            }
            let kind = match kind_of(status, &message) {
                ErrorKind::Other | ErrorKind::NotFound => ErrorKind::Unauthorized,
                k => k,
            };
            return Err(SourceError::new(kind).with_message(format!(
                "etcd at {} refused to authenticate user `{}` (HTTP {status}): {message}",
                redact_url(&endpoint),
                auth.user
            )));
        }
        let parsed: AuthResponse = serde_json::from_slice(&answer).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "etcd's answer to authenticating at {} is not a token: {}",
                redact_url(&endpoint),
                transport::json_error(&e)
            ))
        })?;
        if parsed.token.is_empty() {
            return Ok(None);
        }
        transport::secret_header("Authorization", &parsed.token).map(Some)
    }

    /// POSTs `body` to `path` at the first endpoint that answers it: one that cannot be
    /// connected to (a connect timeout included), answers 5xx or says it has no leader
    /// is passed over for the next (the last such answer is returned when every endpoint
    /// gave one); only a success makes an endpoint the first one tried. HTTP 404 or 405
    /// is a configuration error: there is no etcd v3 gateway at that URL. The status, the
    /// body (bounded) and the endpoint that answered.
    async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        token: Option<&HeaderValue>,
    ) -> Result<Answered, SourceError> {
        self.check_valid()?;
        let client = self.client.get().await?;
        let limits = self.client.limits();
        let mut last: Option<Result<Answered, SourceError>> = None;
        for (at, endpoint) in self.endpoint_order() {
            let url = transport::join_url(endpoint, &[path], &[])?;
            // reqwest's connect timeout is the request timeout: a little more for the
            // whole exchange lets an endpoint that never accepts time out as a connect
            // failure, so the next one is tried.
            let mut request = client
                .post(url.clone())
                .header("content-type", "application/json")
                .timeout(limits.timeout.saturating_add(CONNECT_MARGIN))
                .body(body.clone());
            if let Some(token) = token {
                request = request.header("Authorization", token.clone());
            }
            match transport::send(request, url.as_str(), limits).await {
                Ok((status, _, answer)) if status.is_success() => {
                    self.answered(at);
                    return Ok((status, answer, endpoint.to_owned()));
                }
                Ok((status, _, _)) if no_gateway(status) => {
                    return Err(no_gateway_error(status, endpoint, path));
                }
                Ok((status, _, answer))
                    if status.is_server_error()
                        || gateway_message(&answer).contains("no leader") =>
                {
                    tracing::debug!(endpoint = %redact_url(endpoint), %status, "etcd endpoint failed the request; trying the next");
                    last = Some(Ok((status, answer, endpoint.to_owned())));
                }
                Ok((status, _, answer)) => return Ok((status, answer, endpoint.to_owned())),
                Err(e) if cannot_connect(&e) => {
                    tracing::debug!(endpoint = %redact_url(endpoint), error = %e, "etcd endpoint unreachable; trying the next");
                    last = Some(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        last.unwrap_or_else(|| {
            Err(SourceError::new(ErrorKind::Config).with_message("no etcd endpoint was given"))
        })
    }

    /// POSTs `body` (JSON) to `path` with the token, authenticating again once when etcd
    /// refuses it; the body of a success, else an error naming the endpoint and `what`.
    pub(super) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let mut token = self.token().await?;
        let mut refreshed = false;
        loop {
            let (status, answer, endpoint) =
                self.post_raw(path, body.clone(), token.as_ref()).await?;
            if status.is_success() {
                return Ok(answer);
            }
            let message = gateway_message(&answer);
            if self.auth.is_some() && !refreshed && token_refused(&message) {
                refreshed = true;
                token = self.refresh(token.as_ref()).await?;
                continue;
            }
            let mut text = format!(
                "HTTP {status} from etcd at {} for {what}",
                redact_url(&endpoint)
            );
            if !message.is_empty() {
                text.push_str(&format!(": {message}"));
            }
            if self.auth.is_none() && message.contains("user name is empty") {
                text.push_str(" (authentication is on: set ETCDCTL_USER or `with_auth`)");
            }
            return Err(SourceError::new(kind_of(status, &message)).with_message(text));
        }
    }

    /// The cluster's current revision: the header of a `count_only` range of `key` (a key
    /// the caller may read: with RBAC, another one may be refused).
    pub(super) async fn current_revision(&self, key: &[u8]) -> Result<u64, SourceError> {
        let body = serde_json::json!({"key": b64(key), "count_only": true});
        let answer = self
            .post("/v3/kv/range", &body, "the current revision")
            .await?;
        let parsed: RangeOnly = serde_json::from_slice(&answer).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "etcd's range answer is not one: {}",
                transport::json_error(&e)
            ))
        })?;
        Ok(parsed.header.revision.0)
    }

    /// The revision `op` was last read at, if remembered.
    pub(super) fn read_at(&self, op: &Op<'_>) -> Option<u64> {
        self.state
            .read_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&op.memo())
            .copied()
    }

    fn remember(&self, ops: &[Op<'_>], revision: u64) {
        let mut map = self
            .state
            .read_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() + ops.len() > MAX_REMEMBERED {
            map.clear();
        }
        for op in ops {
            let at = map.entry(op.memo()).or_insert(0);
            *at = (*at).max(revision);
        }
    }

    /// ONE `/v3/kv/txn` of ranges for `requests` (at most `max_txn_ops` of them); each
    /// answer with its revision (the key's `mod_revision`, a prefix's newest one).
    /// `at`: read at that revision (every range of the transaction says so), else the
    /// current one. Also answers the transaction's revision (0 when it failed).
    async fn txn(
        &self,
        requests: &[&FetchRequest],
        at: Option<u64>,
    ) -> (Vec<(Result<RawValue, SourceError>, u64)>, u64) {
        let mut read_at = 0;
        let mut ops = Vec::with_capacity(requests.len());
        let mut answers: Vec<Option<(Result<RawValue, SourceError>, u64)>> =
            requests.iter().map(|_| None).collect();
        let mut live = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match Op::of(r).and_then(|op| match (op, Subtree::of(r)) {
                (Op::Prefix(_), Some(Err(e))) => Err(e),
                (Op::Prefix(_), Some(Ok(tree))) => Ok((op, Some(tree.max_keys()))),
                _ => Ok((op, None)),
            }) {
                Ok((op, max_keys)) => {
                    let (key, end) = op.range();
                    let mut range = serde_json::json!({"key": b64(&key)});
                    if let Some(end) = end {
                        range["range_end"] = b64(&end).into();
                    }
                    if let Some(at) = at {
                        range["revision"] = at.to_string().into();
                    }
                    if let Some(max) = max_keys {
                        // One more than admitted: more than `max_keys` is then seen.
                        range["limit"] = (max.saturating_add(1).min(i64::MAX as usize) as i64)
                            .to_string()
                            .into();
                    }
                    ops.push(serde_json::json!({"request_range": range}));
                    live.push((i, op));
                }
                Err(e) => answers[i] = Some((Err(e), 0)),
            }
        }
        if !live.is_empty() {
            let what = match live.as_slice() {
                [(_, op)] => op.describe(),
                _ => format!("a transaction of {} reads", live.len()),
            };
            let body = serde_json::json!({"success": ops});
            match self.post("/v3/kv/txn", &body, &what).await.and_then(|b| {
                serde_json::from_slice::<TxnResponse>(&b).map_err(|e| {
                    SourceError::new(ErrorKind::Decode).with_message(format!(
                        "etcd's answer to {what} is not a transaction result: {}",
                        transport::json_error(&e)
                    ))
                })
            }) {
                Ok(parsed) => {
                    // Read at `at` when asked (the header says the current revision).
                    let revision = at.unwrap_or(parsed.header.revision.0);
                    read_at = revision;
                    let done: Vec<Op<'_>> = live.iter().map(|(_, op)| *op).collect();
                    self.remember(&done, revision);
                    let mut responses = parsed.responses.into_iter();
                    for (i, op) in live {
                        let range = responses.next().and_then(|r| r.response_range);
                        answers[i] = Some(match range {
                            None => (
                                Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                                    "etcd's transaction result has no range answer for {}",
                                    op.describe()
                                ))),
                                0,
                            ),
                            Some(range) => answer_of(requests[i], op, range, revision),
                        });
                    }
                }
                Err(e) => {
                    for (i, _) in live {
                        answers[i] = Some((Err(e.clone()), 0));
                    }
                }
            }
        }
        let answers = answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| (Err(SourceError::new(ErrorKind::Unavailable)), 0)))
            .collect();
        (answers, read_at)
    }

    /// Distinct requests in transactions of at most `max_txn_ops` reads: the first, then
    /// the others concurrently at the revision it was read at, so that every field of the
    /// fetch is read at one revision (one snapshot of the store).
    async fn read(&self, requests: &[&FetchRequest]) -> Vec<(Result<RawValue, SourceError>, u64)> {
        let mut chunks = requests.chunks(self.max_txn_ops.max(1));
        let Some(first) = chunks.next() else {
            return Vec::new();
        };
        let (mut answers, revision) = self.txn(first, None).await;
        let at = (revision > 0).then_some(revision);
        let rest = futures::future::join_all(chunks.map(|c| self.txn(c, at))).await;
        for (more, _) in rest {
            answers.extend(more);
        }
        answers
    }
}

/// What a preflight asks of one request: a key's existence (`keys_only`), or how many
/// keys a prefix holds (`count_only`), with the `max_keys` they are held to.
struct Check<'a> {
    op: Op<'a>,
    max_keys: Option<usize>,
}

impl EtcdSource {
    /// Checks `requests` without reading a value: one `/v3/kv/txn` of `keys_only`
    /// (key) and `count_only` (prefix) ranges per `max_txn_ops` of them, with the
    /// fetch's failover, token handling and limits. A transaction RBAC refuses is asked
    /// again one range per request, so that only the keys refused are [`Access::Denied`].
    async fn preflight_probes(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let mut probes: Vec<Option<Probe>> = requests.iter().map(|_| None).collect();
        if let Err(e) = self.check_valid() {
            return requests.iter().map(|_| Probe::from_error(&e)).collect();
        }
        // The credentials first: a refused password is every request's answer.
        if let Err(e) = self.token().await {
            return requests.iter().map(|_| probe_of_error(&e)).collect();
        }
        let mut live = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let check = Op::of(r).and_then(|op| match (op, Subtree::of(r)) {
                (Op::Prefix(_), Some(Err(e))) => Err(e),
                (Op::Prefix(_), Some(Ok(tree))) => Ok(Check {
                    op,
                    max_keys: Some(tree.max_keys()),
                }),
                _ => Ok(Check { op, max_keys: None }),
            });
            match check {
                Ok(check) => live.push((i, check)),
                Err(e) => probes[i] = Some(Probe::from_error(&e)),
            }
        }
        let chunks: Vec<&[(usize, Check<'_>)]> = live.chunks(self.max_txn_ops.max(1)).collect();
        let answers = futures::future::join_all(chunks.iter().map(|chunk| async move {
            match self.check_txn(chunk).await {
                Err(e) if chunk.len() > 1 && denied(&e) => {
                    // Which keys RBAC refuses: one range each.
                    futures::future::join_all(chunk.chunks(1).map(|one| async move {
                        self.check_txn(one)
                            .await
                            .unwrap_or_else(|e| vec![probe_of_error(&e)])
                    }))
                    .await
                    .into_iter()
                    .flatten()
                    .collect()
                }
                Err(e) => chunk.iter().map(|_| probe_of_error(&e)).collect(),
                Ok(probes) => probes,
            }
        }))
        .await;
        for (chunk, answer) in chunks.iter().zip(answers) {
            for ((i, _), probe) in chunk.iter().zip(answer) {
                probes[*i] = Some(probe);
            }
        }
        probes
            .into_iter()
            .map(|p| p.unwrap_or_else(|| Probe::unchecked("not checked")))
            .collect()
    }

    /// ONE `/v3/kv/txn` of ranges that answer no value: one probe per check, or the
    /// transaction's error.
    async fn check_txn(&self, checks: &[(usize, Check<'_>)]) -> Result<Vec<Probe>, SourceError> {
        let ops: Vec<serde_json::Value> = checks
            .iter()
            .map(|(_, check)| {
                let (key, end) = check.op.range();
                let mut range = serde_json::json!({"key": b64(&key)});
                match end {
                    Some(end) => {
                        range["range_end"] = b64(&end).into();
                        range["count_only"] = true.into();
                    }
                    None => range["keys_only"] = true.into(),
                }
                serde_json::json!({"request_range": range})
            })
            .collect();
        let what = match checks {
            [(_, check)] => format!("checking {}", check.op.describe()),
            _ => format!("checking {} keys and prefixes", checks.len()),
        };
        let body = serde_json::json!({"success": ops});
        let answer = self.post("/v3/kv/txn", &body, &what).await?;
        let parsed: TxnResponse = serde_json::from_slice(&answer).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "etcd's answer to {what} is not a transaction result: {}",
                transport::json_error(&e)
            ))
        })?;
        let mut responses = parsed.responses.into_iter();
        Ok(checks
            .iter()
            .map(|(_, check)| {
                let Some(range) = responses.next().and_then(|r| r.response_range) else {
                    return Probe::new(Access::Invalid).with_detail(format!(
                        "etcd's transaction result has no range answer for {}",
                        check.op.describe()
                    ));
                };
                match (check.op, check.max_keys) {
                    (Op::Key(_), _) => match range.kvs.first() {
                        Some(kv) => Probe::readable()
                            .with_detail(format!("mod_revision {}", kv.mod_revision.0)),
                        None => Probe::missing(),
                    },
                    (Op::Prefix(_), max) => {
                        let count = (range.count.0 as usize).max(range.kvs.len());
                        match max {
                            Some(max) if count > max => Probe::new(Access::Invalid).with_detail(
                                format!("{count} keys under the prefix, over `max_keys` {max}"),
                            ),
                            _ => Probe::readable().with_detail(match count {
                                1 => "1 key under the prefix".to_owned(),
                                n => format!("{n} keys under the prefix"),
                            }),
                        }
                    }
                }
            })
            .collect())
    }
}

/// Whether etcd refused a range to an authenticated user (RBAC).
fn denied(e: &SourceError) -> bool {
    e.kind() == ErrorKind::Unauthorized
        && e.message()
            .is_some_and(|m| m.to_ascii_lowercase().contains("permission denied"))
}

/// What an error of a preflight's request means: RBAC's "permission denied" is
/// [`Access::Denied`]; any other refusal (a wrong password, a token etcd does not take,
/// no credentials where authentication is on) is [`Access::Unauthenticated`]; the rest
/// as [`Probe::from_error`] says (no endpoint reachable: unreachable).
fn probe_of_error(e: &SourceError) -> Probe {
    let mut probe = Probe::from_error(e);
    if e.kind() == ErrorKind::Unauthorized && !denied(e) {
        probe.access = Access::Unauthenticated;
    }
    probe
}

/// What an endpoint answered: the status, the body and the endpoint.
type Answered = (StatusCode, Vec<u8>, String);

/// Whether `e` says no connection could be made, a connect timeout included (the next
/// endpoint is then tried).
pub(super) fn cannot_connect(e: &SourceError) -> bool {
    (e.kind() == ErrorKind::Unavailable
        && e.message().is_some_and(|m| m.starts_with("cannot connect")))
        || transport::failed_to_connect(e)
}

/// How much longer than the source's timeout a request may take as a whole: its connect
/// timeout (the source's timeout) then ends first, as a connect failure.
pub(super) const CONNECT_MARGIN: Duration = Duration::from_millis(100);

/// Whether `status` says the URL serves no etcd v3 gateway (a wrong URL or proxy path, or
/// an etcd before 3.4, whose gateway is `/v3beta`).
pub(super) fn no_gateway(status: StatusCode) -> bool {
    matches!(status.as_u16(), 404 | 405)
}

pub(super) fn no_gateway_error(status: StatusCode, endpoint: &str, path: &str) -> SourceError {
    SourceError::new(ErrorKind::Config).with_message(format!(
        "no etcd v3 gateway at {} (HTTP {status} for {path}; etcd 3.4 or later serves `/v3/...`)",
        redact_url(endpoint)
    ))
}

/// One range answer as the field's value and its revision.
fn answer_of(
    request: &FetchRequest,
    op: Op<'_>,
    range: RangeResponse,
    header_revision: u64,
) -> (Result<RawValue, SourceError>, u64) {
    match op {
        Op::Key(key) => {
            let Some(kv) = range.kvs.into_iter().next() else {
                return (Err(SourceError::not_found()), header_revision);
            };
            let revision = kv.mod_revision.0;
            match decode_value(kv.value.as_deref()) {
                Some(v) => (Ok(v), revision),
                None => (
                    Err(SourceError::new(ErrorKind::Decode)
                        .with_message(format!("etcd's value for key `{key}` is not valid base64"))),
                    revision,
                ),
            }
        }
        Op::Prefix(prefix) => {
            let mut tree = match Subtree::of(request) {
                Some(Ok(tree)) => tree,
                Some(Err(e)) => return (Err(e), 0),
                None => {
                    return (
                        Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
                        0,
                    );
                }
            };
            let count = (range.count.0 as usize).max(range.kvs.len());
            if let Err(e) = tree.admit(count) {
                return (Err(e), header_revision);
            }
            // The header's revision: a key deleted under the prefix changes the subtree,
            // and no remaining key's `mod_revision` says so.
            let revision = header_revision;
            for kv in &range.kvs {
                let Some(bytes) = unb64(&kv.key) else {
                    return (
                        Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                            "etcd's key under prefix `{prefix}` is not valid base64"
                        ))),
                        revision,
                    );
                };
                let key = match String::from_utf8(bytes) {
                    Ok(k) => k,
                    Err(e) => {
                        return (
                            Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                                "the key `{}` under prefix `{prefix}` is not UTF-8: a subtree's member names are text",
                                String::from_utf8_lossy(e.as_bytes()).escape_debug()
                            ))),
                            revision,
                        );
                    }
                };
                // One leading `/` of the rest is dropped (`p/x` under `p` is `x`), no more:
                // `p//x` is `/x`.
                let Some(name) = key
                    .strip_prefix(prefix)
                    .map(|rest| rest.strip_prefix('/').unwrap_or(rest))
                    .filter(|rest| !rest.is_empty())
                else {
                    continue;
                };
                if tree.contains(name) {
                    return (
                        Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                            "the key `{key}` under prefix `{prefix}` names member `{name}` as another key does (`{prefix}{name}` and `{prefix}/{name}`)"
                        ))),
                        revision,
                    );
                }
                let Some(value) = decode_value(kv.value.as_deref()) else {
                    return (
                        Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                            "etcd's value for key `{key}` is not valid base64"
                        ))),
                        revision,
                    );
                };
                if let Err(e) = tree.insert(name, value) {
                    return (Err(e), revision);
                }
            }
            (Ok(tree.finish()), revision)
        }
    }
}

#[async_trait::async_trait]
impl Source for EtcdSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// ONE `/v3/kv/txn` of ranges per `max_txn_ops` distinct requests.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// As [`Source::fetch_many`], noting each value's revision (`mod_revision`) for the
    /// fetch report.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let revisions: Mutex<Vec<(FetchRequest, u64)>> = Mutex::new(Vec::new());
        let answers = coalesce(requests, |unique| {
            let revisions = &revisions;
            async move {
                let read = self.read(&unique).await;
                let mut out = Vec::with_capacity(read.len());
                let mut noted = revisions.lock().unwrap_or_else(PoisonError::into_inner);
                for (r, (answer, revision)) in unique.iter().zip(read) {
                    if answer.is_ok() && revision > 0 {
                        noted.push(((*r).clone(), revision));
                    }
                    out.push(answer);
                }
                out
            }
        })
        .await;
        for (request, revision) in revisions
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            cx.note_revision(&request, Revision::Index(revision));
        }
        answers
    }

    /// The endpoints, without credentials.
    fn location(&self) -> Option<String> {
        Some(
            self.endpoints
                .iter()
                .map(|e| redact_url(e))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// `prefix <prefix>` for a subtree read, else `key <key>`.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        subtree::native_key(request).or_else(|| request.native_key())
    }

    /// A subtree read (`prefix = "..."`) names its keys itself: no convention key.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) {
            return Ok(request);
        }
        Ok(request.with_key(field.key('/')))
    }

    /// Without reading a value: one `/v3/kv/txn` of `keys_only` / `count_only` ranges
    /// (see the module's "Preflight").
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(self.preflight_probes(requests))
    }

    /// One `/v3/watch` stream over the range that holds every watched key and prefix,
    /// from the revision after the one they were read at (see the `watch` module).
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<crate::Changes, SourceError> {
        self.check_valid()?;
        super::watch::watch(self.clone(), requests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/app/"), b"/app0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn token_errors_and_kinds() {
        assert!(token_refused("etcdserver: invalid auth token"));
        assert_eq!(
            kind_of(
                StatusCode::BAD_REQUEST,
                "etcdserver: authentication failed, invalid user ID or password"
            ),
            ErrorKind::Unauthorized
        );
        assert_eq!(
            kind_of(
                StatusCode::BAD_REQUEST,
                "etcdserver: too many operations in txn request"
            ),
            ErrorKind::Config
        );
        assert_eq!(gateway_message(br#"{"error":"x","code":3}"#), "x");
        assert_eq!(gateway_message(&[b'a'; 400]).chars().count(), 301);
    }

    #[test]
    fn int64_as_text_or_number() {
        let h: Header = serde_json::from_str(r#"{"revision":"42"}"#).unwrap();
        assert_eq!(h.revision.0, 42);
        let h: Header = serde_json::from_str(r#"{"revision":7}"#).unwrap();
        assert_eq!(h.revision.0, 7);
        assert!(serde_json::from_str::<Header>(r#"{"revision":"x"}"#).is_err());
        assert!(serde_json::from_str::<Header>(r#"{"revision":-1}"#).is_err());
    }

    #[test]
    fn debug_and_env_show_no_password() {
        let env = EnvSource::from_map([
            ("ETCDCTL_ENDPOINTS", "h1:2379, https://h2:2379"),
            ("ETCDCTL_USER", "root"),
            ("ETCDCTL_PASSWORD", "pa55"),
        ]);
        let s = EtcdSource::from_env_source(&env).unwrap();
        assert_eq!(s.endpoint_urls(), ["http://h1:2379", "https://h2:2379"]);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("pa55") && dbg.contains("root"), "{dbg}");
        let lone = EnvSource::from_map([("ETCDCTL_ENDPOINTS", "h:1"), ("ETCDCTL_USER", "u")]);
        assert!(
            EtcdSource::from_env_source(&lone)
                .unwrap()
                .check_valid()
                .is_err()
        );
    }
}
