//! The `redis` backend's implementation (see the module above for what it declares).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{ConnectionAddr, IntoConnectionInfo, RedisError, RedisResult, Value};

use crate::fetchers::tls::TlsConfig;

/// A byte stream to a server (TCP, TLS or Unix socket).
pub(super) trait Io:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

use super::bounded::{BoundedStream, Exceeded};
use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};
use crate::source_support::redact_url;

/// The largest value a [`RedisSource`] accepts by default: 16 MiB. One reply may make it
/// hold twice that in memory once parsed (every element counted at its cost there, a
/// fixed ~100 bytes, plus its bytes; see [`RedisSource::with_max_reply`]).
pub const DEFAULT_MAX_REPLY: usize = 16 * 1024 * 1024;

/// How long connecting, and then each round trip, may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A Redis server's string keys and hashes.
///
/// Clones share one connection, opened on first use and opened again after it broke.
///
/// ```
/// use component_model_async::RedisSource;
///
/// let redis = RedisSource::new("redis://:s3cret@127.0.0.1:6379/2");
/// assert_eq!(redis.address(), "redis://:***@127.0.0.1:6379/2");
/// assert!(!format!("{redis:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct RedisSource {
    info: Result<Arc<::redis::ConnectionInfo>, String>,
    /// TLS settings (`rediss://`, or `with_tls`): connections are TLS over TCP.
    tls: Option<Arc<TlsConfig>>,
    location: String,
    max_reply: usize,
    timeout: Duration,
    connection: Arc<tokio::sync::Mutex<Option<Connection>>>,
    /// The latest entry of each watched stream (`topic`).
    latest: Arc<crate::fetchers::stream::Latest>,
}

/// An open connection and the flag its reader sets when a reply broke the size bound.
#[derive(Clone)]
pub(super) struct Connection {
    pub(super) multiplexed: MultiplexedConnection,
    pub(super) exceeded: Exceeded,
    /// Ends the connection's driver when the last clone is dropped.
    _driver: Arc<Driver>,
}

/// The task that reads and writes a connection's socket, aborted with the last clone of
/// its [`Connection`]. redis-rs ends the driver itself only once every request in flight
/// is answered: after a round trip timed out, a server that sends pushes instead of the
/// answer would keep it reading (and the socket open) for as long as it sends.
struct Driver(tokio::task::AbortHandle);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSource")
            .field("address", &self.location)
            .field("max_reply", &self.max_reply)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisSource {
    /// A server at `url`: `redis://[user:password@]host[:port][/db]` or
    /// `redis+unix:///path/to/socket`. An invalid URL is reported by every fetch as a
    /// configuration error (never a panic).
    pub fn new(url: impl AsRef<str>) -> Self {
        let url = url.as_ref().trim();
        // `rediss://` is TLS through this crate's own TLS settings (the system roots by
        // default; `#insecure`, as redis-rs reads it, skips verification).
        let (plain, tls) = match url.strip_prefix("rediss://") {
            Some(rest) => {
                let (rest, insecure) = match rest.strip_suffix("#insecure") {
                    Some(r) => (r, true),
                    None => (rest, false),
                };
                (
                    format!("redis://{rest}"),
                    Some(Arc::new(TlsConfig::new().danger_skip_verify(insecure))),
                )
            }
            None => (url.to_owned(), None),
        };
        let info = plain
            .as_str()
            .into_connection_info()
            .map(Arc::new)
            .map_err(|_| format!("invalid Redis URL {}", redact_url(url)));
        RedisSource {
            info,
            tls,
            location: redact_url(url),
            max_reply: DEFAULT_MAX_REPLY,
            timeout: DEFAULT_TIMEOUT,
            connection: Default::default(),
            latest: Default::default(),
        }
    }

    /// The server named by `REDIS_URL` in the process environment, if it is set.
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// Like [`RedisSource::from_env`], reading `REDIS_URL` from `env`.
    ///
    /// ```
    /// use component_model_async::{EnvSource, RedisSource};
    ///
    /// let env = EnvSource::from_map([("REDIS_URL", "redis://cache.internal:6380/1")]);
    /// assert_eq!(RedisSource::from_env_source(&env).unwrap().address(), "redis://cache.internal:6380/1");
    /// assert!(RedisSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let mut source = env
            .get("REDIS_URL")
            .filter(|u| !u.trim().is_empty())
            .map(Self::new)?;
        match TlsConfig::redis_from_env(env) {
            Ok(Some(mut tls)) => {
                if source.tls.as_ref().is_some_and(|t| t.skips_verify()) {
                    tls = tls.danger_skip_verify(true);
                }
                source.tls = Some(Arc::new(tls));
            }
            Ok(None) => {}
            Err(why) => source.info = Err(why),
        }
        Some(source)
    }

    /// Connects over TLS with these settings (CA, client certificate, server name; see
    /// [`TlsConfig`]), whatever the URL's scheme.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(Arc::new(tls));
        self.connection = Default::default();
        self
    }

    /// Accepts values up to `bytes` long, and replies that hold at most twice that in
    /// memory once parsed (at least 64 KiB): every element counts a fixed cost (a parsed
    /// value in a vector, ~100 bytes) plus its bytes, and an array is counted for all the
    /// elements it announces as soon as it announces them. A longer value, or a larger
    /// reply, fails its fields with an error instead of being read.
    #[must_use]
    pub fn with_max_reply(mut self, bytes: usize) -> Self {
        self.max_reply = bytes;
        self.connection = Default::default();
        self
    }

    /// Limits connecting, and each round trip, to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.connection = Default::default();
        self
    }

    /// The server's URL, password redacted.
    pub fn address(&self) -> &str {
        &self.location
    }

    pub(super) fn connection_info(&self) -> Result<&::redis::ConnectionInfo, SourceError> {
        self.info
            .as_deref()
            .map_err(|why| SourceError::new(ErrorKind::Config).with_message(why.clone()))
    }

    pub(super) fn response_timeout(&self) -> Duration {
        self.timeout
    }

    pub(super) fn max_reply(&self) -> usize {
        self.max_reply
    }

    /// The open connection, or a new one.
    async fn connection(&self) -> Result<Connection, SourceError> {
        let mut slot = self.connection.lock().await;
        if let Some(open) = slot.as_ref() {
            return Ok(open.clone());
        }
        let opened = self.connect().await?;
        *slot = Some(opened.clone());
        Ok(opened)
    }

    /// A connection of its own (for a blocking command), not shared, and the flag its
    /// reader sets when a reply broke the size bound.
    pub(super) async fn dedicated(&self) -> Result<Connection, SourceError> {
        self.connect().await
    }

    /// The latest entries of watched streams.
    pub(super) fn latest(&self) -> &Arc<crate::fetchers::stream::Latest> {
        &self.latest
    }

    async fn forget_connection(&self) {
        *self.connection.lock().await = None;
    }

    async fn connect(&self) -> Result<Connection, SourceError> {
        let info = self.connection_info()?;
        let stream = self.open_stream(info).await?;
        self.handshake(info, stream).await
    }

    /// A new byte stream to the server: TCP, TLS over TCP, or a Unix socket.
    pub(super) async fn open_stream(
        &self,
        info: &::redis::ConnectionInfo,
    ) -> Result<Box<dyn Io>, SourceError> {
        let unreachable = |e: std::io::Error| {
            SourceError::new(ErrorKind::Unavailable)
                .with_message(format!("cannot connect to redis at {}: {e}", self.location))
        };
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = self
                    .within(tokio::net::TcpStream::connect((host.as_str(), *port)))
                    .await?
                    .map_err(unreachable)?;
                let _ = stream.set_nodelay(true);
                match &self.tls {
                    None => Ok(Box::new(stream)),
                    Some(tls) => Ok(Box::new(self.tls_handshake(tls, host, stream).await?)),
                }
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                let stream = self
                    .within(tokio::net::UnixStream::connect(path))
                    .await?
                    .map_err(unreachable)?;
                Ok(Box::new(stream))
            }
            _ => Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "redis at {}: this kind of address is not supported",
                self.location
            ))),
        }
    }

    /// TLS over `stream`, verified against `host` (or the configured server name).
    async fn tls_handshake(
        &self,
        tls: &TlsConfig,
        host: &str,
        stream: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, SourceError> {
        let config = tls.client_config().map_err(|why| {
            SourceError::new(ErrorKind::Config)
                .with_message(format!("redis at {}: {why}", self.location))
        })?;
        if tls.skips_verify() {
            tracing::warn!(
                address = %self.location,
                "TLS verification is OFF for this redis source (`#insecure` / REDIS_SKIP_VERIFY): anyone on the network path can read its traffic"
            );
        }
        let mut config = config;
        config.alpn_protocols.clear();
        let name = tls.server_name().unwrap_or(host).trim_matches(['[', ']']);
        let name = rustls::pki_types::ServerName::try_from(name.to_owned()).map_err(|_| {
            SourceError::new(ErrorKind::Config).with_message(format!(
                "redis at {}: `{name}` is not a valid TLS server name",
                self.location
            ))
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        self.within(connector.connect(name, stream))
            .await?
            .map_err(|e| {
                let why = crate::fetchers::tls::explain(&e).unwrap_or_else(|| e.to_string());
                SourceError::new(ErrorKind::Unavailable).with_message(format!(
                    "cannot connect to redis at {}: {why}",
                    self.location
                ))
            })
    }

    /// `connecting` bounded by the timeout.
    async fn within<F: std::future::Future>(
        &self,
        connecting: F,
    ) -> Result<F::Output, SourceError> {
        tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| {
                SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "no connection to redis at {} within {}",
                    self.location,
                    crate::error::humanize(self.timeout)
                ))
            })
    }

    /// AUTH, SELECT and the client name over `stream`, read through the size bound.
    async fn handshake<S>(
        &self,
        info: &::redis::ConnectionInfo,
        stream: S,
    ) -> Result<Connection, SourceError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (stream, exceeded) = BoundedStream::new(stream, self.max_reply);
        let config = ::redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.timeout))
            .set_connection_timeout(Some(self.timeout));
        let opened = tokio::time::timeout(
            self.timeout,
            MultiplexedConnection::new_with_config(info.redis_settings(), stream, config),
        )
        .await;
        match opened {
            Ok(Ok((multiplexed, driver))) => {
                let driver = crate::task::spawn(driver).abort_handle();
                Ok(Connection {
                    multiplexed,
                    exceeded,
                    _driver: Arc::new(Driver(driver)),
                })
            }
            Ok(Err(e)) => Err(self.error(&e, &exceeded, "the connection handshake")),
            Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "redis at {} did not finish the handshake within {}",
                self.location,
                crate::error::humanize(self.timeout)
            ))),
        }
    }

    /// Sends `pipe` (errors of single commands kept per command) on the connection.
    pub(super) async fn round_trip(
        &self,
        pipe: &::redis::Pipeline,
        what: &str,
    ) -> Result<Vec<RedisResult<Value>>, SourceError> {
        let mut connection = self.connection().await?;
        crate::metrics::round_trip();
        let sent = tokio::time::timeout(
            self.timeout,
            pipe.query_async::<Vec<RedisResult<Value>>>(&mut connection.multiplexed),
        )
        .await;
        match sent {
            Ok(Ok(replies)) => Ok(replies),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                    self.forget_connection().await;
                }
                Err(self.error(&e, &connection.exceeded, what))
            }
            Err(_) => {
                self.forget_connection().await;
                Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                    "no answer from redis at {} to {what} within {}",
                    self.location,
                    crate::error::humanize(self.timeout)
                )))
            }
        }
    }

    /// A redis-rs error as a [`SourceError`] of the right kind.
    pub(super) fn error(&self, e: &RedisError, exceeded: &Exceeded, what: &str) -> SourceError {
        let at = &self.location;
        if exceeded.not_redis() {
            return SourceError::new(ErrorKind::Unavailable).with_message(format!(
                "the server at {at} does not speak the Redis protocol (its answer to {what} is not RESP); check REDIS_URL"
            ));
        }
        if exceeded.is_set() {
            return SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "reply larger than {} from redis at {at} for {what} ({}); raise the limit with `RedisSource::with_max_reply`",
                crate::error::bytes(self.max_reply as u64),
                exceeded.reason()
            ));
        }
        let detail = e.detail().unwrap_or_default();
        match e.code() {
            Some("WRONGPASS" | "NOAUTH" | "NOPERM") => {
                return SourceError::new(ErrorKind::Unauthorized).with_message(format!(
                    "redis at {at} refused {what}: {} {detail}",
                    e.code().unwrap_or_default()
                ));
            }
            Some("WRONGTYPE") => {
                return SourceError::new(ErrorKind::Decode).with_message(format!(
                    "{what}: the key holds another type of value (`field = \"...\"` reads a member of a hash; without it the key must be a string)"
                ));
            }
            _ => {}
        }
        if e.kind() == ::redis::ErrorKind::AuthenticationFailed {
            return SourceError::new(ErrorKind::Unauthorized).with_message(format!(
                "redis at {at} refused the credentials of its URL (WRONGPASS): {e}"
            ));
        }
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
            ErrorKind::Unavailable
        } else {
            ErrorKind::Other
        };
        SourceError::new(kind).with_message(format!("redis at {at}, {what}: {e}"))
    }
}

/// Which command answers a request: a string key, or a member of a hash.
enum Read<'a> {
    String(&'a str),
    Member(&'a str, &'a str),
}

impl<'a> Read<'a> {
    fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        match (request.key(), request.select()) {
            (Some(key), None) => Ok(Read::String(key)),
            (Some(key), Some(member)) => Ok(Read::Member(key, member)),
            (None, _) => {
                Err(SourceError::new(ErrorKind::Config).with_message("the field names no `key`"))
            }
        }
    }
}

/// One answer, or `None` for a nil reply.
type Answer = Option<Result<RawValue, SourceError>>;

/// One fetch's reads, each distinct key or member once.
#[derive(Default)]
struct Batch<'a> {
    strings: Vec<&'a str>,
    hashes: Vec<(&'a str, Vec<&'a str>)>,
}

impl<'a> Batch<'a> {
    fn add(&mut self, read: &Read<'a>) {
        match *read {
            Read::String(key) => {
                if !self.strings.contains(&key) {
                    self.strings.push(key);
                }
            }
            Read::Member(key, member) => match self.hashes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) if members.contains(&member) => {}
                Some((_, members)) => members.push(member),
                None => self.hashes.push((key, vec![member])),
            },
        }
    }

    /// GET or MGET, then HGET or HMGET per hash, as one pipeline.
    fn pipeline(&self) -> ::redis::Pipeline {
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        match self.strings.as_slice() {
            [] => {}
            [one] => {
                pipe.cmd("GET").arg(*one);
            }
            many => {
                pipe.cmd("MGET").arg(many);
            }
        }
        for (key, members) in &self.hashes {
            match members.as_slice() {
                [one] => pipe.cmd("HGET").arg(*key).arg(*one),
                many => pipe.cmd("HMGET").arg(*key).arg(many),
            };
        }
        pipe
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.strings.as_slice() {
            [] => {}
            [one] => parts.push(format!("GET of key `{one}`")),
            many => parts.push(format!("MGET of {} keys", many.len())),
        }
        for (key, members) in &self.hashes {
            parts.push(format!("{} members of hash `{key}`", members.len()));
        }
        parts.join(" and ")
    }
}

/// A reply element as a value: a bulk string (text, or bytes when not UTF-8), a number.
fn raw_value(v: Value) -> Option<Result<RawValue, SourceError>> {
    Some(Ok(match v {
        Value::Nil => return None,
        Value::BulkString(bytes) => match String::from_utf8(bytes) {
            Ok(s) => RawValue::Text(s),
            Err(e) => RawValue::Bytes(e.into_bytes()),
        },
        Value::SimpleString(s) => RawValue::Text(s),
        Value::VerbatimString { text, .. } => RawValue::Text(text),
        Value::Int(i) => RawValue::Text(i.to_string()),
        Value::Double(d) => RawValue::Text(d.to_string()),
        Value::Boolean(b) => RawValue::Text(b.to_string()),
        _ => {
            return Some(Err(SourceError::new(ErrorKind::Decode).with_message(
                "redis answered with an aggregate where a value was expected",
            )));
        }
    }))
}

/// The elements of an MGET/HMGET reply (or the one value of a GET/HGET).
fn elements(reply: Value, expected: usize) -> Result<Vec<Value>, SourceError> {
    match reply {
        Value::Array(items) if expected > 1 && items.len() == expected => Ok(items),
        single if expected == 1 => Ok(vec![single]),
        _ => Err(SourceError::new(ErrorKind::Decode).with_message(format!(
            "redis answered with another number of values than the {expected} asked for"
        ))),
    }
}

impl RedisSource {
    /// Answers `reads` in one round trip (two when string keys came back empty).
    async fn read_all(
        &self,
        reads: &[Result<Read<'_>, SourceError>],
    ) -> Vec<Result<RawValue, SourceError>> {
        let mut batch = Batch::default();
        for read in reads.iter().flatten() {
            batch.add(read);
        }
        let what = batch.describe();
        let mut strings: Vec<Answer> = Vec::new();
        let mut members: Vec<Result<Vec<Answer>, SourceError>> = Vec::new();
        if !batch.strings.is_empty() || !batch.hashes.is_empty() {
            let replies = match self.round_trip(&batch.pipeline(), &what).await {
                Ok(r) => r,
                Err(e) => {
                    return reads
                        .iter()
                        .map(|r| match r {
                            Ok(_) => Err(e.clone()),
                            Err(own) => Err(own.clone()),
                        })
                        .collect();
                }
            };
            let mut replies = replies.into_iter();
            let mut next = |expected: usize, what: &str| {
                match replies.next() {
                    Some(Ok(v)) => elements(v, expected),
                    Some(Err(e)) => Err(self.error(&e, &Exceeded::default(), what)),
                    None => Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message("redis answered fewer commands than were sent")),
                }
                .map(|values| values.into_iter().map(raw_value).collect::<Vec<_>>())
            };
            if !batch.strings.is_empty() {
                match next(batch.strings.len(), &what) {
                    Ok(values) => strings = values,
                    Err(e) => {
                        strings = batch.strings.iter().map(|_| Some(Err(e.clone()))).collect()
                    }
                }
            }
            for (key, m) in &batch.hashes {
                members.push(next(m.len(), &format!("hash `{key}`")));
            }
            self.explain_missing(&batch.strings, &mut strings).await;
        }
        reads
            .iter()
            .map(|read| match read {
                Err(e) => Err(e.clone()),
                Ok(Read::String(key)) => {
                    let i = batch.strings.iter().position(|k| k == key);
                    match i.and_then(|i| strings.get(i)).cloned().flatten() {
                        Some(v) => v,
                        None => Err(SourceError::not_found()),
                    }
                }
                Ok(Read::Member(key, member)) => {
                    let h = batch.hashes.iter().position(|(k, _)| k == key);
                    let m = h.and_then(|h| batch.hashes[h].1.iter().position(|x| x == member));
                    match (h.map(|h| &members[h]), m) {
                        (Some(Err(e)), _) => Err(e.clone()),
                        (Some(Ok(values)), Some(m)) => match values.get(m).cloned().flatten() {
                            Some(v) => v,
                            None => Err(SourceError::not_found().with_message(format!(
                                "no member `{member}` in hash `{key}` (or no such key)"
                            ))),
                        },
                        _ => Err(SourceError::not_found()),
                    }
                }
            })
            .collect()
    }

    /// For string keys that came back empty, asks their `TYPE`: `none` is a missing key;
    /// anything else is a key of another type, which GET would have refused.
    async fn explain_missing(&self, keys: &[&str], values: &mut [Answer]) {
        let missing: Vec<usize> = (0..keys.len().min(values.len()))
            .filter(|&i| values[i].is_none())
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut pipe = ::redis::pipe();
        pipe.ignore_errors();
        for &i in &missing {
            pipe.cmd("TYPE").arg(keys[i]);
        }
        let Ok(types) = self.round_trip(&pipe, "TYPE of empty keys").await else {
            return;
        };
        for (&i, ty) in missing.iter().zip(types) {
            let ty = match ty {
                Ok(Value::SimpleString(t)) => t,
                Ok(Value::Okay) => "string".to_owned(),
                _ => continue,
            };
            if ty != "none" && ty != "string" {
                values[i] = Some(Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "key `{}` holds a {ty}, not a string (WRONGTYPE); read a member with `field = \"...\"`",
                    keys[i]
                ))));
            }
        }
    }
}

/// How many keys one `SCAN` is asked to look at (`COUNT`, a hint to the server).
const SCAN_COUNT: usize = 1000;

/// `prefix` as a `SCAN MATCH` glob matching every key that starts with it: the glob's
/// own characters (`*`, `?`, `[`, `]`, `\`) escaped with `\`, then `*`.
pub(super) fn glob_prefix(prefix: &str) -> String {
    let mut glob = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            glob.push('\\');
        }
        glob.push(c);
    }
    glob.push('*');
    glob
}

/// A reply element as text (a key, a cursor).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Whether a request reads a whole hash: `field = "*"`.
fn whole_hash(request: &FetchRequest) -> bool {
    request.key().is_some() && request.select() == Some("*")
}

impl RedisSource {
    /// One command, one round trip; its reply.
    async fn command(&self, cmd: &::redis::Cmd, what: &str) -> Result<Value, SourceError> {
        let mut pipe = ::redis::pipe();
        pipe.add_command(cmd.clone());
        match self.round_trip(&pipe, what).await?.into_iter().next() {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(self.error(&e, &Exceeded::default(), what)),
            None => Err(SourceError::new(ErrorKind::Unavailable)
                .with_message("redis answered fewer commands than were sent")),
        }
    }

    /// A subtree read (`prefix = "app:"`): `SCAN 0 MATCH <prefix>* COUNT 1000` until the
    /// cursor is back at 0 (stopping, too large, as soon as more than `max_keys` distinct
    /// keys were found), then ONE `MGET` of the keys found. A key that is gone by then,
    /// or that holds another type than a string, is left out.
    async fn read_prefix(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let mut tree = match Subtree::of(request) {
            Some(tree) => tree?,
            None => return Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
        };
        let prefix = tree.prefix();
        let glob = glob_prefix(prefix);
        let what = format!("SCAN of prefix `{prefix}`");
        let mut keys: std::collections::BTreeSet<String> = Default::default();
        let mut cursor = "0".to_owned();
        loop {
            let mut cmd = ::redis::cmd("SCAN");
            cmd.arg(&cursor)
                .arg("MATCH")
                .arg(&glob)
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let reply = self.command(&cmd, &what).await?;
            let Value::Array(mut parts) = reply else {
                return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "redis answered the {what} with something else than a cursor and keys"
                )));
            };
            let (Some(found), Some(next)) = (parts.pop(), parts.pop()) else {
                return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "redis answered the {what} with something else than a cursor and keys"
                )));
            };
            let Value::Array(found) = found else {
                return Err(SourceError::new(ErrorKind::Decode)
                    .with_message(format!("redis answered the {what} without a key list")));
            };
            // Counted as they come: past `max_keys` distinct keys the scan stops.
            for key in found.iter().filter_map(text_of) {
                if keys.insert(key) {
                    tree.admit(keys.len())?;
                }
            }
            cursor = text_of(&next).unwrap_or_else(|| "0".to_owned());
            if cursor == "0" {
                break;
            }
        }
        if keys.is_empty() {
            return Ok(tree.finish());
        }
        let keys: Vec<String> = keys.into_iter().collect();
        let mut cmd = ::redis::cmd("MGET");
        cmd.arg(&keys);
        let what = format!("MGET of the {} keys under prefix `{prefix}`", keys.len());
        let reply = self.command(&cmd, &what).await?;
        let values = match reply {
            Value::Array(values) if values.len() == keys.len() => values,
            _ => {
                return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "redis answered the {what} with another number of values than the keys asked for"
                )));
            }
        };
        for (key, value) in keys.iter().zip(values) {
            let Some(name) = key.strip_prefix(prefix).filter(|n| !n.is_empty()) else {
                continue;
            };
            if let Some(value) = raw_value(value) {
                tree.insert(name, value?)?;
            }
        }
        Ok(tree.finish())
    }

    /// A whole hash (`key = "app", field = "*"`): `HLEN` first (more members than
    /// `max_keys` is too large, and nothing more is read), then `HGETALL`, counted again.
    /// A missing key is not found.
    async fn read_hash(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let key = request.key().unwrap_or_default();
        let mut tree = Subtree::whole(request, format!("in hash `{key}`"))?;
        let what = format!("hash `{key}`");
        let len = match self.command(::redis::cmd("HLEN").arg(key), &what).await? {
            Value::Int(n) => usize::try_from(n).unwrap_or(0),
            _ => 0,
        };
        if len == 0 {
            return Err(SourceError::not_found().with_message(format!("no hash `{key}`")));
        }
        tree.admit(len)?;
        let pairs: Vec<(Value, Value)> = match self
            .command(::redis::cmd("HGETALL").arg(key), &what)
            .await?
        {
            Value::Map(pairs) => pairs,
            Value::Array(flat) => {
                let mut flat = flat.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                    pairs.push((k, v));
                }
                pairs
            }
            _ => {
                return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "redis answered HGETALL of {what} with something else than its members"
                )));
            }
        };
        for (name, value) in pairs {
            let Some(name) = text_of(&name) else { continue };
            if let Some(value) = raw_value(value) {
                tree.insert(&name, value?)?;
            }
        }
        Ok(tree.finish())
    }

    /// The subtree reads and whole hashes of `requests` (positions `which`), each
    /// distinct one once, all concurrently.
    async fn read_trees(
        &self,
        requests: &[&FetchRequest],
        which: &[usize],
    ) -> Vec<Result<RawValue, SourceError>> {
        let asked: Vec<&FetchRequest> = which.iter().map(|&i| requests[i]).collect();
        crate::source_support::coalesce(&asked, |unique| async move {
            futures::future::join_all(unique.iter().map(|r| async move {
                match Subtree::is_subtree(r) {
                    true => self.read_prefix(r).await,
                    false => self.read_hash(r).await,
                }
            }))
            .await
        })
        .await
    }
}

#[async_trait::async_trait]
impl Source for RedisSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::not_found()))
    }

    /// One pipeline for every request: MGET for string keys, HMGET per hash; another
    /// for the streams (`topic`) no watch holds the latest entry of.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let trees: Vec<usize> = (0..requests.len())
            .filter(|&i| {
                requests[i].topic().is_none()
                    && (Subtree::is_subtree(requests[i]) || whole_hash(requests[i]))
            })
            .collect();
        if !trees.is_empty() {
            // Subtrees and whole hashes on their own, the rest as always, concurrently.
            let rest: Vec<usize> = (0..requests.len()).filter(|i| !trees.contains(i)).collect();
            let others: Vec<&FetchRequest> = rest.iter().map(|&i| requests[i]).collect();
            let (read, other) = futures::join!(self.read_trees(requests, &trees), async {
                match others.is_empty() {
                    true => Vec::new(),
                    false => self.fetch_many(&others).await,
                }
            });
            let mut out: Vec<Option<Result<RawValue, SourceError>>> =
                requests.iter().map(|_| None).collect();
            for (i, v) in trees
                .into_iter()
                .zip(read)
                .chain(rest.into_iter().zip(other))
            {
                out[i] = Some(v);
            }
            return out
                .into_iter()
                .map(|v| v.unwrap_or_else(|| Err(SourceError::not_found())))
                .collect();
        }
        if requests.iter().all(|r| r.topic().is_none()) {
            let reads: Vec<_> = requests.iter().map(|r| Read::of(r)).collect();
            return self.read_all(&reads).await;
        }
        let mut out: Vec<Option<Result<RawValue, SourceError>>> = requests
            .iter()
            .map(|r| r.topic().and_then(|_| self.latest.get(r)))
            .collect();
        let (mut keys, mut streams) = (Vec::new(), Vec::new());
        for (i, r) in requests.iter().enumerate() {
            match (out[i].is_some(), r.topic().is_some()) {
                (true, _) => {}
                (false, true) => streams.push(i),
                (false, false) => keys.push(i),
            }
        }
        let key_reads: Vec<_> = keys.iter().map(|&i| Read::of(requests[i])).collect();
        let stream_reads: Vec<&FetchRequest> = streams.iter().map(|&i| requests[i]).collect();
        let (k, s) = futures::join!(
            async {
                match key_reads.is_empty() {
                    true => Vec::new(),
                    false => self.read_all(&key_reads).await,
                }
            },
            async {
                match stream_reads.is_empty() {
                    true => Vec::new(),
                    false => self.read_streams(&stream_reads).await,
                }
            }
        );
        for (i, v) in keys.into_iter().zip(k).chain(streams.into_iter().zip(s)) {
            out[i] = Some(v);
        }
        out.into_iter()
            .map(|v| v.unwrap_or_else(|| Err(SourceError::not_found())))
            .collect()
    }

    fn location(&self) -> Option<String> {
        Some(self.location.clone())
    }

    /// `field = "..."` is a member of a hash, read by HGET/HMGET.
    /// Keyspace notifications (see the `watch` module).
    /// Streams (`topic`): XREAD BLOCK from the last entry seen (see the `stream` module).
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<crate::Changes, SourceError> {
        let (streams, keys): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .enumerate()
            .partition(|(_, r)| r.topic().is_some());
        if streams.is_empty() {
            return self.watch_keys(keys);
        }
        let (positions, streams): (Vec<usize>, Vec<FetchRequest>) = streams.into_iter().unzip();
        let pushed = self.watch_streams(streams, positions);
        if keys.is_empty() {
            return Ok(pushed);
        }
        // (A `Live` watches streams and keys apart; this is for a direct caller.) The keys'
        // watch ending ends the whole: the caller watches again.
        let keys = futures::StreamExt::chain(
            self.watch_keys(keys)?,
            futures::stream::once(async {
                Err(SourceError::new(ErrorKind::Unavailable)
                    .with_message("the keyspace watch ended"))
            }),
        );
        Ok(Box::pin(futures::stream::select(pushed, keys)))
    }

    fn selects_field(&self) -> bool {
        true
    }

    /// The key `{argument}{key_prefix}{path with :}` (`app:db:port`); a subtree read
    /// (`prefix`) names its keys itself.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) {
            return Ok(request);
        }
        Ok(request.with_key(field.key(':')))
    }

    /// `TYPE`, `HEXISTS`, `HLEN` in one pipeline, `SCAN` for a subtree: no value read
    /// (see the `preflight` module).
    fn preflight(&self, requests: Vec<FetchRequest>) -> crate::source::Preflighting<'_> {
        Box::pin(async move { self.preflight_all(&requests).await })
    }

    /// `prefix <prefix>` for a subtree read, else the key (and a hash's member).
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        subtree::native_key(request).or_else(|| request.native_key())
    }
}

#[path = "preflight.rs"]
mod preflight;
