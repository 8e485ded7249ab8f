//! [`FieldSpec`]: what `#[component(...)]` says about one field, fixed at compile time.

use std::time::Duration;

/// Everything `#[component(...)]` says about one field, fixed at compile time.
///
/// The derive builds one `static FieldSpec` per fetched field with the `const` builder
/// methods below; a hand-written source or test can build one the same way.
///
/// ```
/// use component_model_async::FieldSpec;
///
/// static PORT: FieldSpec = FieldSpec::new("AppConfig", "port", "u16", "consul").key("app/port");
/// assert_eq!(PORT.key, Some("app/port"));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FieldSpec {
    /// The struct the field belongs to.
    pub owner: &'static str,
    /// The field name.
    pub field: &'static str,
    /// The field type as written, for messages.
    pub type_name: &'static str,
    /// The source name from `fetch_from` (`"consul"`, `"database:analytics"`, `"mock_api"`),
    /// or ``"fetcher `<expr>`"`` for `fetcher = <expr>` (the expression as written).
    pub source: &'static str,
    /// `key = "..."`, as written.
    pub key: Option<&'static str>,
    /// The key of a field that names none: the field name upper-cased, after the
    /// container's `env_prefix` (`APP_PORT`). The `env` source reads this variable.
    pub default_key: Option<&'static str>,
    /// `query = "..."` (SQL).
    pub query: Option<&'static str>,
    /// `secret = "..."` (a Vault path).
    pub secret_path: Option<&'static str>,
    /// `field = "..."`: the key to take out of a JSON object (e.g. one field of a secret).
    pub select: Option<&'static str>,
    /// `url = "..."`.
    pub url: Option<&'static str>,
    /// `path = "..."`, appended to a registered HTTP source's base URL.
    pub path: Option<&'static str>,
    /// `pointer = "/a/b"`: a JSON pointer into the fetched document.
    pub pointer: Option<&'static str>,
    /// `mount = "..."` (Vault).
    pub mount: Option<&'static str>,
    /// `kv_version = 1 | 2` (Vault): the KV engine version; `None` detects it from the mount.
    pub kv_version: Option<u8>,
    /// `dc = "..."` (Consul): the datacenter to read from; `None` is the agent's own.
    pub dc: Option<&'static str>,
    /// `table = "..."` (SQL).
    pub table: Option<&'static str>,
    /// `topic = "..."`: the stream, topic or subject a push source reads (`stream_from`).
    pub topic: Option<&'static str>,
    /// `fallback = "..."`: a literal used when the value is absent or the source is down.
    pub fallback: Option<&'static str>,
    /// `fallback_to = "..."`: another source to ask when this one fails.
    pub fallback_to: Option<&'static str>,
    /// Whether the value is secret (`secret`, a Vault source, or a `secrecy` type).
    pub sensitive: bool,
    /// `timeout = "..."`: limit of one attempt.
    pub timeout: Option<Duration>,
    /// `retry_attempts = N`: extra attempts after a transient failure.
    pub retry_attempts: Option<u32>,
    /// `max_size = "64KiB"`: the largest value (in bytes) the field accepts.
    pub max_size: Option<u64>,
    /// `retry_backoff = "100ms"`: the first retry's delay (doubling after).
    pub retry_backoff: Option<Duration>,
    /// `cache_for = "1h"` (or `ttl`): how long a fetched value is served from memory.
    pub cache_for: Option<Duration>,
    /// `stale_for = "10m"`: how long an expired value is kept to be served when its
    /// refresh fails.
    pub stale_for: Option<Duration>,
    /// `circuit_breaker = true`: fail fast while the source keeps failing.
    pub circuit_breaker: bool,
    /// `max_concurrency = N`: at most N calls of the source in flight.
    pub max_concurrency: Option<u32>,
    /// `watch`: a [`Live`](crate::Live) watches this field (when no field is marked,
    /// every field is watched).
    pub watch: bool,
    /// Written with `stream_from`: a push stream, always watched (it does not count as a
    /// `watch` mark: the struct's other fields are watched as if it were not there).
    pub streamed: bool,
    /// `watch_interval = "30s"`: how often to poll the source when it cannot watch.
    pub watch_interval: Option<Duration>,
}

impl FieldSpec {
    /// A spec with only the names set.
    pub const fn new(
        owner: &'static str,
        field: &'static str,
        type_name: &'static str,
        source: &'static str,
    ) -> Self {
        FieldSpec {
            owner,
            field,
            type_name,
            source,
            key: None,
            default_key: None,
            query: None,
            secret_path: None,
            select: None,
            url: None,
            path: None,
            pointer: None,
            mount: None,
            kv_version: None,
            dc: None,
            table: None,
            topic: None,
            fallback: None,
            fallback_to: None,
            sensitive: false,
            timeout: None,
            retry_attempts: None,
            max_size: None,
            retry_backoff: None,
            cache_for: None,
            stale_for: None,
            circuit_breaker: false,
            max_concurrency: None,
            watch: false,
            streamed: false,
            watch_interval: None,
        }
    }
}

macro_rules! const_setters {
    ($($(#[$m:meta])* $name:ident: $ty:ty => $expr:expr;)*) => {
        impl FieldSpec {
            $(
                $(#[$m])*
                #[must_use]
                pub const fn $name(mut self, value: $ty) -> Self {
                    self.$name = $expr(value);
                    self
                }
            )*
        }
    };
}

const_setters! {
    /// Sets `key`.
    key: &'static str => Some;
    /// Sets `default_key`.
    default_key: &'static str => Some;
    /// Sets `query`.
    query: &'static str => Some;
    /// Sets `secret_path`.
    secret_path: &'static str => Some;
    /// Sets `select` (the `field` attribute).
    select: &'static str => Some;
    /// Sets `url`.
    url: &'static str => Some;
    /// Sets `path`.
    path: &'static str => Some;
    /// Sets `pointer`.
    pointer: &'static str => Some;
    /// Sets `mount`.
    mount: &'static str => Some;
    /// Sets `kv_version`.
    kv_version: u8 => Some;
    /// Sets `dc`.
    dc: &'static str => Some;
    /// Sets `table`.
    table: &'static str => Some;
    /// Sets `topic`.
    topic: &'static str => Some;
    /// Sets `fallback`.
    fallback: &'static str => Some;
    /// Sets `fallback_to`.
    fallback_to: &'static str => Some;
    /// Marks the value secret.
    sensitive: bool => core::convert::identity;
    /// Sets the per-attempt timeout.
    timeout: Duration => Some;
    /// Sets the number of retries.
    retry_attempts: u32 => Some;
    /// Sets the largest value the field accepts, in bytes.
    max_size: u64 => Some;
    /// Sets the first retry's delay.
    retry_backoff: Duration => Some;
    /// Sets how long a value is cached.
    cache_for: Duration => Some;
    /// Sets how long an expired value may be served when its refresh fails.
    stale_for: Duration => Some;
    /// Puts the source behind a circuit breaker.
    circuit_breaker: bool => core::convert::identity;
    /// Sets the most calls of the source in flight at once.
    max_concurrency: u32 => Some;
    /// Marks the field watched.
    watch: bool => core::convert::identity;
    /// Marks the field a push stream (`stream_from`), always watched.
    streamed: bool => core::convert::identity;
    /// Sets the polling interval of a source that cannot watch.
    watch_interval: Duration => Some;
}

impl FieldSpec {
    /// The source kind: the part of `source` before `:` (`"database"` for `"database:analytics"`).
    pub fn source_kind(&self) -> &'static str {
        match self.source.split_once(':') {
            Some((kind, _)) => kind,
            None => self.source,
        }
    }
}
