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
///
/// // A backend's own keys are named parameters.
/// static PASSWORD: FieldSpec = FieldSpec::new("AppConfig", "password", "String", "vault")
///     .params(&[("secret", "app/db"), ("mount", "kv")]);
/// assert_eq!(PASSWORD.param("mount"), Some("kv"));
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
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"query\")`")]
    pub query: Option<&'static str>,
    /// `secret = "..."` (a Vault path).
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"secret\")`")]
    pub secret_path: Option<&'static str>,
    /// `field = "..."`: the key to take out of a JSON object (e.g. one field of a secret).
    pub select: Option<&'static str>,
    /// `url = "..."`.
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"url\")`")]
    pub url: Option<&'static str>,
    /// `path = "..."`, appended to a registered HTTP source's base URL.
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"path\")`")]
    pub path: Option<&'static str>,
    /// `pointer = "/a/b"`: a JSON pointer into the fetched document.
    pub pointer: Option<&'static str>,
    /// `mount = "..."` (Vault).
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"mount\")`")]
    pub mount: Option<&'static str>,
    /// `kv_version = 1 | 2` (Vault): the KV engine version; `None` detects it from the mount.
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"kv_version\")`")]
    pub kv_version: Option<u8>,
    /// `dc = "..."` (Consul): the datacenter to read from; `None` is the agent's own.
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"dc\")`")]
    pub dc: Option<&'static str>,
    /// `table = "..."` (SQL).
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"table\")`")]
    pub table: Option<&'static str>,
    /// `topic = "..."`: the stream, topic or subject a push source reads (`stream_from`).
    #[deprecated(note = "a backend parameter: read it with `FieldSpec::param(\"topic\")`")]
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
    /// The source's own parameters, by name, as written in `#[component(...)]`: every
    /// `name = <literal>` that is not a key of the derive (`dc = "eu1"`, `mount = "kv"`,
    /// `version = 3`), and `secret = "path"` as `secret`. Values are text (a number's
    /// digits, `true`/`false`). Read one with [`FieldSpec::param`].
    pub params: &'static [(&'static str, &'static str)],
    /// The precedence sources above the field's own (`overrides = [...]` on the field,
    /// else on the struct), highest first: `"env"`, `"file@config/{@profile}.toml"`.
    pub overrides: &'static [&'static str],
    /// The precedence sources below the field's own (`defaults = [...]`), highest first.
    pub defaults: &'static [&'static str],
    /// `env = "PORT"`: the variable this field is read from in any env source (its own
    /// `fetch_from = "env"` and env precedence sources).
    pub env: Option<&'static str>,
    /// The struct's `key_prefix`: before the key a key-value store's convention makes
    /// of the field's path ([`FieldPath`](crate::FieldPath)).
    pub key_prefix: Option<&'static str>,
    /// The struct's `table`: the key/value table a database's convention reads (default
    /// `config`).
    pub config_table: Option<&'static str>,
    /// The fields this field's keys reference (`{region}`, `{database.host}`), by their
    /// path below the field's struct: it is fetched once they are converted, and each
    /// `{name}` in its `key`, `secret`, `path`, `url`, `topic`, `field`, `prefix`,
    /// precedence arguments and `connect` becomes that field's value.
    pub refs: &'static [&'static str],
    /// `connect = "{dsn}"`: the address of the client the field is read through, opened
    /// from fetched values (see [`Sources::with_max_dynamic_clients`](crate::Sources)).
    pub connect: Option<&'static str>,
    /// The field's `///` doc comment, lines joined with `\n` (for `config_doc()`).
    pub doc: Option<&'static str>,
}

#[allow(deprecated)] // builds the fields kept for readers of `component_sources()`
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
            params: &[],
            overrides: &[],
            defaults: &[],
            env: None,
            key_prefix: None,
            config_table: None,
            refs: &[],
            connect: None,
            doc: None,
        }
    }
}

macro_rules! const_setters {
    ($($(#[$m:meta])* $name:ident: $ty:ty => $expr:expr;)*) => {
        #[allow(deprecated)] // the setters of the fields that moved to `params`
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
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"query\", ...)])`")]
    query: &'static str => Some;
    /// Sets `secret_path`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"secret\", ...)])`")]
    secret_path: &'static str => Some;
    /// Sets `select` (the `field` attribute).
    select: &'static str => Some;
    /// Sets `refs`: the fields the keys reference.
    refs: &'static [&'static str] => core::convert::identity;
    /// Sets `connect`: the address template of the client the field is read through.
    connect: &'static str => Some;
    /// Sets `doc`: the field's doc comment, shown by `config_doc()`.
    doc: &'static str => Some;
    /// Sets `url`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"url\", ...)])`")]
    url: &'static str => Some;
    /// Sets `path`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"path\", ...)])`")]
    path: &'static str => Some;
    /// Sets `pointer`.
    pointer: &'static str => Some;
    /// Sets `mount`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"mount\", ...)])`")]
    mount: &'static str => Some;
    /// Sets `kv_version`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"kv_version\", ...)])`")]
    kv_version: u8 => Some;
    /// Sets `dc`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"dc\", ...)])`")]
    dc: &'static str => Some;
    /// Sets `table`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"table\", ...)])`")]
    table: &'static str => Some;
    /// Sets `topic`.
    #[deprecated(note = "a backend parameter: set it with `FieldSpec::params(&[(\"topic\", ...)])`")]
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
    /// Sets the precedence sources above the field's own.
    overrides: &'static [&'static str] => core::convert::identity;
    /// Sets the precedence sources below the field's own.
    defaults: &'static [&'static str] => core::convert::identity;
    /// Sets the variable env sources read the field from.
    env: &'static str => Some;
    /// Sets the struct's key prefix.
    key_prefix: &'static str => Some;
    /// Sets the struct's key/value table.
    config_table: &'static str => Some;
}

impl FieldSpec {
    /// Whether the field is read from precedence sources (it has `overrides` or
    /// `defaults`).
    ///
    /// ```
    /// use component_model_async::FieldSpec;
    ///
    /// static PORT: FieldSpec = FieldSpec::new("App", "port", "u16", "consul").overrides(&["env"]);
    /// assert!(PORT.has_precedence());
    /// ```
    pub const fn has_precedence(&self) -> bool {
        !self.overrides.is_empty() || !self.defaults.is_empty()
    }
}

/// The parameters that have a field of their own in [`FieldSpec`] and a slot of their own
/// in [`FetchRequest`](crate::FetchRequest) (the keys of the first built-in backends), by
/// name; `secret` is `secret = "path"`.
pub(crate) const LEGACY_PARAMS: &[&str] = &[
    "key",
    "query",
    "secret",
    "url",
    "path",
    "mount",
    "kv_version",
    "dc",
    "table",
    "topic",
];

/// `a == b`, in a `const fn`.
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `"2"` → `Some(2)`, in a `const fn`; `None` unless the text is a number up to 255.
const fn small_number(text: &str) -> Option<u8> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 3 {
        return None;
    }
    let mut n: u16 = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            return None;
        }
        n = n * 10 + (bytes[i] - b'0') as u16;
        i += 1;
    }
    if n > u8::MAX as u16 {
        return None;
    }
    Some(n as u8)
}

/// The decimal text of every `u8`, so a number kept as one reads back as `&'static str`.
static NUMBERS: [[u8; 3]; 256] = {
    let mut table = [[0u8; 3]; 256];
    let mut n = 0;
    while n < 256 {
        table[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        n += 1;
    }
    table
};

/// `2` → `"2"`.
pub(crate) fn number_text(n: u8) -> &'static str {
    let digits = &NUMBERS[usize::from(n)];
    let skip = match n {
        100.. => 0,
        10.. => 1,
        _ => 2,
    };
    std::str::from_utf8(&digits[skip..]).unwrap_or_default()
}

#[allow(deprecated)] // fills the fields kept for readers of `component_sources()`
impl FieldSpec {
    /// Sets the source's own parameters (see [`FieldSpec::params`](#structfield.params)),
    /// as the derive does for every `name = <literal>` it does not know itself. The
    /// parameters that had fields of their own (`query`, `secret`, `url`, `path`, `mount`,
    /// `kv_version`, `dc`, `table`, `topic`) fill those fields too, so readers of
    /// `component_sources()` still find them there.
    ///
    /// ```
    /// use component_model_async::{FetchRequest, FieldSpec};
    ///
    /// static SPEC: FieldSpec = FieldSpec::new("Db", "password", "String", "vault")
    ///     .params(&[("secret", "app/db"), ("version", "3")]);
    /// assert_eq!(SPEC.param("secret"), Some("app/db"));
    /// assert_eq!(SPEC.param("version"), Some("3"));
    /// let request = FetchRequest::new(&SPEC);
    /// assert_eq!((request.secret_path(), request.param("version")), (Some("app/db"), Some("3")));
    /// ```
    #[must_use]
    pub const fn params(mut self, params: &'static [(&'static str, &'static str)]) -> Self {
        self.params = params;
        let mut i = 0;
        while i < params.len() {
            let (name, value) = params[i];
            if same(name, "key") {
                self.key = Some(value);
            } else if same(name, "query") {
                self.query = Some(value);
            } else if same(name, "secret") {
                self.secret_path = Some(value);
            } else if same(name, "url") {
                self.url = Some(value);
            } else if same(name, "path") {
                self.path = Some(value);
            } else if same(name, "mount") {
                self.mount = Some(value);
            } else if same(name, "kv_version") {
                self.kv_version = small_number(value);
            } else if same(name, "dc") {
                self.dc = Some(value);
            } else if same(name, "table") {
                self.table = Some(value);
            } else if same(name, "topic") {
                self.topic = Some(value);
            }
            i += 1;
        }
        self
    }

    /// The source's parameter `name` (`"dc"`, `"mount"`, `"secret"` for `secret =
    /// "path"`, or any key a backend declares), as written; `"key"` is the field's key.
    ///
    /// ```
    /// use component_model_async::FieldSpec;
    ///
    /// static SPEC: FieldSpec = FieldSpec::new("App", "port", "u16", "consul")
    ///     .key("app/port")
    ///     .params(&[("dc", "eu1")]);
    /// assert_eq!((SPEC.param("dc"), SPEC.param("key"), SPEC.param("ns")), (Some("eu1"), Some("app/port"), None));
    /// ```
    pub fn param(&self, name: &str) -> Option<&'static str> {
        match name {
            "key" => self.key,
            "query" => self.query,
            "secret" => self.secret_path,
            "url" => self.url,
            "path" => self.path,
            "mount" => self.mount,
            "kv_version" => self.kv_version.map(number_text),
            "dc" => self.dc,
            "table" => self.table,
            "topic" => self.topic,
            _ => self
                .params
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| *v),
        }
    }
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
