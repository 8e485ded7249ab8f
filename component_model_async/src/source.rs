//! The seam every backend implements: a [`Source`] answers a [`FetchRequest`] with a
//! [`RawValue`]; conversion into the field's type happens afterwards, in one place, so a
//! cached or retried value converts the same way.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::error::SourceError;

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

/// One field's request to a source, with `${VAR}` placeholders already resolved.
///
/// A request owns its parameters (what goes on the wire: key, query, secret path, url,
/// path, mount, table, datacenter, KV version and any backend-defined parameter), so it
/// can be built at run time, kept, and used as a cache key: `Hash`/`Eq` cover exactly
/// those parameters — not the field it came from, nor the `field`/`pointer` selection made
/// after fetching — so two fields reading one key make equal requests. A backend reads
/// what it needs; it never needs the field's Rust type.
///
/// ```
/// use component_model_async::{FetchRequest, FieldSpec};
///
/// static SPEC: FieldSpec = FieldSpec::new("AppConfig", "port", "u16", "consul").key("${APP:-web}/port");
/// let request = FetchRequest::resolved(&SPEC, &|_| None).unwrap();
/// assert_eq!(request.key(), Some("web/port"));
/// assert_eq!(request.native_key(), Some(("key", "web/port".to_owned())));
///
/// // Built in code, it is the same request.
/// assert_eq!(request, FetchRequest::for_key("consul", "web/port"));
/// ```
#[derive(Clone)]
pub struct FetchRequest {
    params: Params,
    origin: Origin,
}

type Text = Cow<'static, str>;

/// What goes on the wire; the request's identity.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
struct Params {
    key: Option<Text>,
    query: Option<Text>,
    secret_path: Option<Text>,
    url: Option<Text>,
    path: Option<Text>,
    mount: Option<Text>,
    table: Option<Text>,
    dc: Option<Text>,
    topic: Option<Text>,
    kv_version: Option<u8>,
    /// `field = "..."` when the source reads it itself (a Redis hash member).
    member: Option<Text>,
    /// Backend-defined parameters, sorted by name.
    extra: Vec<(Text, Text)>,
}

/// Where the request comes from; not part of its identity.
#[derive(Clone)]
struct Origin {
    spec: Option<&'static FieldSpec>,
    source: Text,
    owner: Text,
    field: Text,
    /// The field's default key (see [`FieldSpec::default_key`]).
    default_key: Option<Text>,
    select: Option<Text>,
    sensitive: bool,
}

impl PartialEq for FetchRequest {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params
    }
}

impl Eq for FetchRequest {}

impl std::hash::Hash for FetchRequest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.params.hash(state);
    }
}

impl fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.params;
        let mut d = f.debug_struct("FetchRequest");
        d.field(
            "field",
            &format_args!("{}.{}", self.origin.owner, self.origin.field),
        )
        .field("source", &self.origin.source);
        let mut opt = |name: &str, v: &Option<Text>| {
            if let Some(v) = v {
                d.field(name, v);
            }
        };
        opt("key", &p.key);
        opt("query", &p.query);
        opt("secret_path", &p.secret_path);
        opt("url", &p.url.as_deref().map(|u| Cow::Owned(redact_url(u))));
        opt("path", &p.path);
        opt("mount", &p.mount);
        opt("table", &p.table);
        opt("dc", &p.dc);
        opt("topic", &p.topic);
        opt("member", &p.member);
        if !p.extra.is_empty() {
            d.field("extra", &p.extra);
        }
        d.finish_non_exhaustive()
    }
}

impl FetchRequest {
    /// A request for `spec` with no placeholders to resolve (see [`FetchRequest::resolved`]).
    pub fn new(spec: &'static FieldSpec) -> Self {
        Self::from_spec(spec, |v| {
            Ok::<_, std::convert::Infallible>(Cow::Borrowed(v))
        })
        .unwrap_or_else(|never| match never {})
    }

    /// A request for `spec` whose `${VAR}` / `${VAR:-default}` placeholders in `key`,
    /// `secret`, `url`, `path`, `mount` and `topic` are looked up with `lookup`.
    pub fn resolved(
        spec: &'static FieldSpec,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::placeholder::PlaceholderError> {
        Self::from_spec(spec, |v| crate::placeholder::expand(v, lookup))
    }

    fn from_spec<E>(
        spec: &'static FieldSpec,
        resolve: impl Fn(&'static str) -> Result<Text, E>,
    ) -> Result<Self, E> {
        let r = |v: Option<&'static str>| v.map(&resolve).transpose();
        let fixed = |v: Option<&'static str>| v.map(Cow::Borrowed);
        Ok(FetchRequest {
            params: Params {
                key: r(spec.key)?,
                query: fixed(spec.query),
                secret_path: r(spec.secret_path)?,
                url: r(spec.url)?,
                path: r(spec.path)?,
                mount: r(spec.mount)?,
                table: fixed(spec.table),
                dc: fixed(spec.dc),
                topic: r(spec.topic)?,
                kv_version: spec.kv_version,
                member: None,
                extra: Vec::new(),
            },
            origin: Origin {
                spec: Some(spec),
                source: Cow::Borrowed(spec.source),
                owner: Cow::Borrowed(spec.owner),
                field: Cow::Borrowed(spec.field),
                default_key: fixed(spec.default_key),
                select: fixed(spec.select),
                sensitive: spec.sensitive,
            },
        })
    }

    /// An empty request to the source named `source`, to build in code with the `with_*`
    /// methods (a standalone fetcher, a test, a cache warm-up).
    ///
    /// ```
    /// use component_model_async::FetchRequest;
    ///
    /// let r = FetchRequest::for_source("vault").with_secret_path("app/db").with_mount("kv");
    /// assert_eq!((r.secret_path(), r.mount()), (Some("app/db"), Some("kv")));
    /// ```
    pub fn for_source(source: impl Into<Text>) -> Self {
        FetchRequest {
            params: Params::default(),
            origin: Origin {
                spec: None,
                source: source.into(),
                owner: Cow::Borrowed(""),
                field: Cow::Borrowed("value"),
                default_key: None,
                select: None,
                sensitive: false,
            },
        }
    }

    /// A request for `key` to the source named `source`.
    pub fn for_key(source: impl Into<Text>, key: impl Into<Text>) -> Self {
        Self::for_source(source).with_key(key)
    }
}

macro_rules! request_setters {
    ($($(#[$m:meta])* $with:ident => $field:ident: $ty:ty, $conv:expr;)*) => {
        impl FetchRequest {
            $(
                $(#[$m])*
                #[must_use]
                pub fn $with(mut self, value: $ty) -> Self {
                    self.params.$field = Some($conv(value));
                    self
                }
            )*
        }
    };
}

request_setters! {
    /// Sets the key (env variable, Consul/Redis key, SQL key parameter).
    with_key => key: impl Into<Text>, Into::into;
    /// Sets the SQL query.
    with_query => query: impl Into<Text>, Into::into;
    /// Sets the secret's path (Vault).
    with_secret_path => secret_path: impl Into<Text>, Into::into;
    /// Sets the URL.
    with_url => url: impl Into<Text>, Into::into;
    /// Sets the path under a registered base URL.
    with_path => path: impl Into<Text>, Into::into;
    /// Sets the mount (Vault).
    with_mount => mount: impl Into<Text>, Into::into;
    /// Sets the table (SQL).
    with_table => table: impl Into<Text>, Into::into;
    /// Sets the Consul datacenter.
    with_dc => dc: impl Into<Text>, Into::into;
    /// Sets the topic, stream or subject of a push source.
    with_topic => topic: impl Into<Text>, Into::into;
    /// Sets the Vault KV engine version.
    with_kv_version => kv_version: u8, core::convert::identity;
}

impl FetchRequest {
    /// Sets `field = "..."`: the member to take out of the fetched JSON object (or, for a
    /// source that reads it itself, such as a Redis hash, the member to read). Built in
    /// code, the member is part of the request's identity, so it is right for either kind
    /// of source; the derive leaves it out for sources that select after fetching, so
    /// fields reading different members of one document share one read.
    #[must_use]
    pub fn with_select(mut self, member: impl Into<Text>) -> Self {
        let member = member.into();
        self.params.member = Some(member.clone());
        self.origin.select = Some(member);
        self
    }

    /// Sets a backend-defined parameter (part of the request's identity).
    #[must_use]
    pub fn with_param(mut self, name: impl Into<Text>, value: impl Into<Text>) -> Self {
        let name = name.into();
        let extra = &mut self.params.extra;
        extra.retain(|(n, _)| *n != name);
        let at = extra.partition_point(|(n, _)| *n < name);
        extra.insert(at, (name, value.into()));
        self
    }

    /// Names the struct and field the request is for (used in messages).
    #[must_use]
    pub fn in_field(mut self, owner: impl Into<Text>, field: impl Into<Text>) -> Self {
        self.origin.owner = owner.into();
        self.origin.field = field.into();
        self
    }

    /// Marks the value secret.
    #[must_use]
    pub fn sensitive(mut self, yes: bool) -> Self {
        self.origin.sensitive = yes;
        self
    }

    /// Sets the field's default key (its env variable name in a nested struct).
    pub(crate) fn with_default_key(mut self, key: String) -> Self {
        self.origin.default_key = Some(Cow::Owned(key));
        self
    }

    /// Prepends a nested field's `key_prefix` to the key, path and secret path; a key
    /// bound into SQL (the request has a query or a table) is a value and keeps its text.
    pub(crate) fn with_key_prefix(mut self, prefix: &str) -> Self {
        let p = &mut self.params;
        let add = |v: &mut Option<Text>| {
            if let Some(v) = v {
                *v = Cow::Owned(format!("{prefix}{v}"));
            }
        };
        if p.query.is_none() && p.table.is_none() {
            add(&mut p.key);
        }
        add(&mut p.path);
        add(&mut p.secret_path);
        self
    }

    /// Makes `field = "..."` part of the request's identity: the source reads the member
    /// itself (see [`Source::selects_field`]), so two members are two requests.
    pub(crate) fn select_on_wire(&mut self) {
        self.params.member = self.origin.select.clone();
    }

    /// Makes the field's default key its key when it names none: the source reads a key
    /// named after the field (see [`Source::keys_by_field_name`]).
    pub(crate) fn default_key_on_wire(&mut self) {
        if self.params.key.is_none() {
            self.params.key = self.origin.default_key.clone();
        }
    }

    /// The compile-time description of the field, for requests made by the derive.
    pub fn spec(&self) -> Option<&'static FieldSpec> {
        self.origin.spec
    }
    /// The request's identity (its wire parameters) as text, the same in every process
    /// and build: what a cache shared between processes keys on.
    pub(crate) fn identity(&self) -> String {
        format!("{:?}", self.params)
    }

    /// The struct the request is for (empty for a request built in code).
    pub fn owner(&self) -> &str {
        &self.origin.owner
    }
    /// The field name.
    pub fn field(&self) -> &str {
        &self.origin.field
    }
    /// The source name (`fetch_from`).
    pub fn source_name(&self) -> &str {
        &self.origin.source
    }
    /// The key (env variable, Consul/Redis key, SQL key parameter).
    pub fn key(&self) -> Option<&str> {
        self.params.key.as_deref()
    }
    /// The key the field names, else its default key (the `env` variable name that
    /// `env_prefix` and the field name make).
    pub fn key_or_default(&self) -> Option<&str> {
        self.params
            .key
            .as_deref()
            .or(self.origin.default_key.as_deref())
    }
    /// The key bound into the query, when the request has both (`query = "... $1"`,
    /// `key = "checkout"`): shown after the query in messages.
    pub fn bound_key(&self) -> Option<&str> {
        self.query().and(self.key())
    }
    /// The SQL query.
    pub fn query(&self) -> Option<&str> {
        self.params.query.as_deref()
    }
    /// The secret's path (Vault).
    pub fn secret_path(&self) -> Option<&str> {
        self.params.secret_path.as_deref()
    }
    /// The member to select (`field = "..."`).
    pub fn select(&self) -> Option<&str> {
        self.origin.select.as_deref()
    }
    /// The URL.
    pub fn url(&self) -> Option<&str> {
        self.params.url.as_deref()
    }
    /// The path under a registered base URL.
    pub fn path(&self) -> Option<&str> {
        self.params.path.as_deref()
    }
    /// The mount (Vault).
    pub fn mount(&self) -> Option<&str> {
        self.params.mount.as_deref()
    }
    /// The Vault KV engine version named by `kv_version`, if any.
    pub fn kv_version(&self) -> Option<u8> {
        self.params.kv_version
    }
    /// The Consul datacenter named by `dc`, if any.
    pub fn dc(&self) -> Option<&str> {
        self.params.dc.as_deref()
    }
    /// The topic, stream or subject of a push source (`topic = "..."`), if any.
    pub fn topic(&self) -> Option<&str> {
        self.params.topic.as_deref()
    }
    /// The table (SQL).
    pub fn table(&self) -> Option<&str> {
        self.params.table.as_deref()
    }
    /// A backend-defined parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .extra
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_ref())
    }
    /// Whether the value is secret: never log or display it.
    pub fn is_sensitive(&self) -> bool {
        self.origin.sensitive
    }

    /// What the native key is called and its value, for messages, when the source has
    /// no more specific name for it ([`Source::native_key`]): the topic (with the key,
    /// if any) of a stream, else the first of key, url
    /// (password redacted), path, secret and query the request has.
    pub fn native_key(&self) -> Option<(&'static str, String)> {
        if let Some(topic) = self.topic() {
            return Some(match self.key() {
                Some(key) => ("topic", format!("{topic}, key {key}")),
                None => ("topic", topic.to_owned()),
            });
        }
        self.key()
            .map(|k| ("key", k.to_owned()))
            .or_else(|| self.url().map(|u| ("url", redact_url(u))))
            .or_else(|| self.path().map(|p| ("path", p.to_owned())))
            .or_else(|| self.secret_path().map(|p| ("secret", p.to_owned())))
            .or_else(|| self.query().map(|q| ("query", q.to_owned())))
    }
}

/// `scheme://user:password@host/...` with the password replaced by `***`, for messages.
///
/// ```
/// use component_model_async::source_support::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/test"), "postgres://app:***@db:5432/test");
/// assert_eq!(redact_url("https://example.org/x?y=1"), "https://example.org/x?y=1");
/// // Credentials in the query (`redis+unix:///s?pass=…`, `?token=…`) are masked too.
/// assert_eq!(redact_url("redis+unix:///run/redis.sock?db=1&pass=hunter2"), "redis+unix:///run/redis.sock?db=1&pass=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = redact_userinfo(head);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

/// Query parameter names that carry credentials.
fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "password",
        "passwd",
        "token",
        "secret",
        "api_key",
        "apikey",
        "key",
        "access_token",
        "auth",
    ]
    .contains(&name.as_str())
        || name.ends_with("password")
        || name.ends_with("token")
        || name.ends_with("secret")
}

/// `scheme://user:***@host...` for the part before the query.
fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], shown, &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// What a watched source reports (see [`Source::watch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// These watched requests (by their position in the watched list) may have new values.
    Changed(Vec<usize>),
    /// Any of them may have changed (after a reconnect or an index reset): read them all.
    All,
}

/// The stream [`Source::watch`] returns; an `Err` item says the watch broke (the watcher
/// decides whether to watch again).
pub type Changes = futures::stream::BoxStream<'static, Result<Change, SourceError>>;

/// A value as a source delivered it, before conversion into the field's type.
///
/// Its `Debug` never shows the content, only its form and length.
///
/// ```
/// use component_model_async::RawValue;
///
/// let v = RawValue::from("hunter2");
/// assert_eq!(format!("{v:?}"), "Text(<7 bytes>)");
/// ```
#[derive(Clone, PartialEq)]
pub enum RawValue {
    /// Text, e.g. an environment variable or a raw Consul value.
    Text(String),
    /// Bytes that may not be UTF-8.
    Bytes(Vec<u8>),
    /// A JSON document, e.g. an HTTP body or a Vault secret.
    Json(serde_json::Value),
}

impl RawValue {
    /// The size of the value in bytes (a JSON document: its compact serialization).
    pub fn len(&self) -> usize {
        match self {
            RawValue::Text(s) => s.len(),
            RawValue::Bytes(b) => b.len(),
            RawValue::Json(v) => serde_json::to_vec(v).map_or(0, |b| b.len()),
        }
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(s) => write!(f, "Text(<{} bytes>)", s.len()),
            RawValue::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            RawValue::Json(v) => write!(f, "Json(<{}>)", json_kind(v)),
        }
    }
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl From<String> for RawValue {
    fn from(s: String) -> Self {
        RawValue::Text(s)
    }
}
impl From<&str> for RawValue {
    fn from(s: &str) -> Self {
        RawValue::Text(s.to_owned())
    }
}
impl From<serde_json::Value> for RawValue {
    fn from(v: serde_json::Value) -> Self {
        RawValue::Json(v)
    }
}
impl From<Vec<u8>> for RawValue {
    fn from(b: Vec<u8>) -> Self {
        RawValue::Bytes(b)
    }
}

/// A backend that serves many keys of many types: env, a database pool, Consul, Vault.
///
/// Implement `fetch`; implement `fetch_many` too when the backend can answer several
/// requests in one round trip (one SQL query, one Consul transaction). `fetch_all_components`
/// hands each source all of its plain requests at once.
///
/// ```
/// use component_model_async::{async_trait, FetchRequest, RawValue, Source, SourceError};
///
/// struct Fixed;
///
/// #[async_trait]
/// impl Source for Fixed {
///     async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
///         match request.key() {
///             Some("port") => Ok(RawValue::from("8080")),
///             _ => Err(SourceError::not_found()),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait Source: Send + Sync + 'static {
    /// Answers one request.
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError>;

    /// Answers several requests; the result has one entry per request, in order.
    ///
    /// The default runs `fetch` for each request concurrently.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        futures::future::join_all(requests.iter().map(|r| self.fetch(r))).await
    }

    /// Where the source lives, for error messages (never with credentials).
    fn location(&self) -> Option<String> {
        None
    }

    /// What this source calls the request's key and its value, for messages
    /// (`("variable", "APP_PORT")`, `("secret", "app/db")`). The default names the first
    /// of key, url, path, secret and query the request has ([`FetchRequest::native_key`]).
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        request.native_key()
    }

    /// Whether every value of this source is secret (a Vault source): errors and logs then
    /// never show its values, whatever name the source is registered under.
    fn is_sensitive(&self) -> bool {
        false
    }

    /// Whether a JSON object of exactly one member may be read into a scalar field without
    /// `field = "..."` (a Vault secret holding one key).
    fn unwraps_single_member(&self) -> bool {
        false
    }

    /// Watches `requests`: a stream that says when some of them may have new values, so
    /// a watcher fetches those again (through `fetch_many`, as any fetch). The default
    /// says the source cannot watch; a watcher then polls it.
    ///
    /// ```
    /// use component_model_async::{EnvSource, ErrorKind, FetchRequest, Source};
    ///
    /// let env = EnvSource::from_map([("PORT", "1")]);
    /// let err = env.watch(vec![FetchRequest::for_key("env", "PORT")]).err().unwrap();
    /// assert_eq!(err.kind(), ErrorKind::Config);
    /// ```
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let _ = requests;
        Err(SourceError::new(crate::ErrorKind::Config)
            .with_message("this source cannot watch its keys; poll it instead"))
    }

    /// Whether a field that names no `key` reads the key named after it (`env_prefix` +
    /// FIELD, [`FieldSpec::default_key`]): the `env` source.
    fn keys_by_field_name(&self) -> bool {
        false
    }

    /// Whether a `nested` field's `key_prefix` is prepended to this source's keys. The
    /// default: unless the source keys by field name (`env` takes `env_prefix` instead).
    /// A source whose keys are file paths answers `false`.
    fn takes_key_prefix(&self) -> bool {
        !self.keys_by_field_name()
    }

    /// Whether the value this source answered for `request` must never be shown, beyond
    /// [`Source::is_sensitive`]: asked only when an error would show a value. The `env`
    /// source answers `true` for a value it read from an `X_FILE` secret file.
    fn conceals(&self, request: &FetchRequest) -> bool {
        let _ = request;
        self.is_sensitive()
    }

    /// Called when this source is a field's `fallback_to` and the field's own source
    /// answered: `answers` are those values (never a secret one: the engine keeps secret
    /// values from every fallback source, with a warning naming the field), each with the
    /// request in this source's form. A source that keeps last-known-good values
    /// ([`LocalCacheSource`](crate::LocalCacheSource)) returns the future that stores them;
    /// the fetch awaits it. The default stores nothing.
    fn remember(&self, answers: Vec<(FetchRequest, RawValue)>) -> Option<Remembering> {
        let _ = answers;
        None
    }

    /// Whether [`Source::remember`] keeps values: the engine hands it the answers of the
    /// fields it backs up only then (and warns about the secret ones it withholds).
    fn keeps_answers(&self) -> bool {
        false
    }

    /// Whether the source itself reads `field = "..."` (Redis: a member of a hash), so the
    /// value it returns is already the selected one and conversion must not select again.
    fn selects_field(&self) -> bool {
        false
    }
}

/// A [`RawValue`] as stored outside the process (`local_cache` files, the shared cache tier).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredValue {
    Text(String),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
}

impl From<RawValue> for StoredValue {
    fn from(raw: RawValue) -> Self {
        match raw {
            RawValue::Text(s) => StoredValue::Text(s),
            RawValue::Bytes(b) => StoredValue::Bytes(b),
            RawValue::Json(v) => StoredValue::Json(v),
        }
    }
}

impl From<StoredValue> for RawValue {
    fn from(v: StoredValue) -> Self {
        match v {
            StoredValue::Text(s) => RawValue::Text(s),
            StoredValue::Bytes(b) => RawValue::Bytes(b),
            StoredValue::Json(v) => RawValue::Json(v),
        }
    }
}

/// What [`Source::remember`] returns: the work of storing the values.
pub type Remembering = futures::future::BoxFuture<'static, ()>;

/// Answers `requests` by asking `fetch` once per distinct request and giving each answer
/// to every request equal to it (`FetchRequest`'s `Eq`: the same wire parameters), in the
/// order of `requests`. Two fields reading one key cost one read, whatever the backend.
///
/// `fetch` gets the distinct requests and returns one answer per request, in order; an
/// answer it leaves out becomes an `unavailable` error saying so, never a panic.
///
/// ```
/// use component_model_async::source_support::coalesce;
/// use component_model_async::{FetchRequest, RawValue};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let a = FetchRequest::for_key("kv", "a");
/// let also_a = FetchRequest::for_key("kv", "a").in_field("App", "other");
/// let b = FetchRequest::for_key("kv", "b");
/// let answers = coalesce(&[&a, &also_a, &b], |unique| async move {
///     assert_eq!(unique.len(), 2); // `a` once
///     unique.iter().map(|r| Ok(RawValue::from(r.key().unwrap()))).collect()
/// })
/// .await;
/// assert_eq!(answers[1].as_ref().ok(), Some(&RawValue::from("a")));
/// # });
/// ```
pub async fn coalesce<'r, F, Fut>(
    requests: &[&'r FetchRequest],
    fetch: F,
) -> Vec<Result<RawValue, SourceError>>
where
    F: FnOnce(Vec<&'r FetchRequest>) -> Fut,
    Fut: std::future::Future<Output = Vec<Result<RawValue, SourceError>>>,
{
    let mut index: std::collections::HashMap<&FetchRequest, usize> =
        std::collections::HashMap::with_capacity(requests.len());
    let mut unique: Vec<&'r FetchRequest> = Vec::with_capacity(requests.len());
    let slots: Vec<usize> = requests
        .iter()
        .map(|r| {
            *index.entry(*r).or_insert_with(|| {
                unique.push(*r);
                unique.len() - 1
            })
        })
        .collect();
    let asked = unique.len();
    let mut answers: Vec<Option<Result<RawValue, SourceError>>> =
        fetch(unique).await.into_iter().map(Some).collect();
    answers.resize_with(asked, || None);
    // The last request of each slot takes the answer; earlier ones get a clone.
    let mut remaining = vec![0usize; asked];
    for &s in &slots {
        remaining[s] += 1;
    }
    slots
        .into_iter()
        .map(|s| {
            remaining[s] -= 1;
            let answer = if remaining[s] == 0 {
                answers[s].take()
            } else {
                answers[s].clone()
            };
            answer.unwrap_or_else(|| {
                Err(SourceError::new(crate::ErrorKind::Unavailable)
                    .with_message("the source returned fewer answers than requests"))
            })
        })
        .collect()
}
