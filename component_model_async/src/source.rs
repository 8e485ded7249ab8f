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
    /// or `"fetcher"` for `fetcher = <expr>`.
    pub source: &'static str,
    /// `key = "..."` (for `env`, the variable name, defaulted by the derive).
    pub key: Option<&'static str>,
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
            fallback: None,
            fallback_to: None,
            sensitive: false,
            timeout: None,
            retry_attempts: None,
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
/// A backend reads what it needs (`key`, `query`, `secret_path`, ...); it never needs the
/// field's Rust type.
///
/// ```
/// use component_model_async::{FetchRequest, FieldSpec};
///
/// static SPEC: FieldSpec = FieldSpec::new("AppConfig", "port", "u16", "consul").key("${APP:-web}/port");
/// let request = FetchRequest::resolved(&SPEC, &|_| None).unwrap();
/// assert_eq!(request.key(), Some("web/port"));
/// assert_eq!(request.native_key(), Some(("key", "web/port".to_owned())));
/// ```
#[derive(Clone)]
pub struct FetchRequest {
    spec: &'static FieldSpec,
    key: Option<Cow<'static, str>>,
    secret_path: Option<Cow<'static, str>>,
    url: Option<Cow<'static, str>>,
    path: Option<Cow<'static, str>>,
    mount: Option<Cow<'static, str>>,
}

impl fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchRequest")
            .field(
                "field",
                &format_args!("{}.{}", self.spec.owner, self.spec.field),
            )
            .field("source", &self.spec.source)
            .field("key", &self.key)
            .field("query", &self.spec.query)
            .field("secret_path", &self.secret_path)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FetchRequest {
    /// A request for `spec` with no placeholders to resolve (see [`FetchRequest::resolved`]).
    pub fn new(spec: &'static FieldSpec) -> Self {
        FetchRequest {
            spec,
            key: spec.key.map(Cow::Borrowed),
            secret_path: spec.secret_path.map(Cow::Borrowed),
            url: spec.url.map(Cow::Borrowed),
            path: spec.path.map(Cow::Borrowed),
            mount: spec.mount.map(Cow::Borrowed),
        }
    }

    /// A request for `spec` whose `${VAR}` / `${VAR:-default}` placeholders in `key`,
    /// `secret`, `url`, `path` and `mount` are looked up with `lookup`.
    pub fn resolved(
        spec: &'static FieldSpec,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::placeholder::PlaceholderError> {
        use crate::placeholder::expand;
        let r = |v: Option<&'static str>| -> Result<Option<Cow<'static, str>>, _> {
            v.map(|s| expand(s, lookup)).transpose()
        };
        Ok(FetchRequest {
            spec,
            key: r(spec.key)?,
            secret_path: r(spec.secret_path)?,
            url: r(spec.url)?,
            path: r(spec.path)?,
            mount: r(spec.mount)?,
        })
    }

    /// The compile-time description of the field.
    pub fn spec(&self) -> &'static FieldSpec {
        self.spec
    }
    /// The field name.
    pub fn field(&self) -> &'static str {
        self.spec.field
    }
    /// The source name (`fetch_from`).
    pub fn source_name(&self) -> &'static str {
        self.spec.source
    }
    /// The key (env variable, Consul/Redis key, SQL key parameter).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    /// The SQL query.
    pub fn query(&self) -> Option<&'static str> {
        self.spec.query
    }
    /// The secret's path (Vault).
    pub fn secret_path(&self) -> Option<&str> {
        self.secret_path.as_deref()
    }
    /// The field to select from a JSON object.
    pub fn select(&self) -> Option<&'static str> {
        self.spec.select
    }
    /// The URL.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
    /// The path under a registered base URL.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
    /// The mount (Vault).
    pub fn mount(&self) -> Option<&str> {
        self.mount.as_deref()
    }
    /// The Vault KV engine version named by `kv_version`, if any.
    pub fn kv_version(&self) -> Option<u8> {
        self.spec.kv_version
    }
    /// The Consul datacenter named by `dc`, if any.
    pub fn dc(&self) -> Option<&'static str> {
        self.spec.dc
    }
    /// The table (SQL).
    pub fn table(&self) -> Option<&'static str> {
        self.spec.table
    }
    /// Whether the value is secret: never log or display it.
    pub fn is_sensitive(&self) -> bool {
        self.spec.sensitive
    }

    /// What the native key is called and its value, for messages
    /// (`("variable", "APP_PORT")`, `("query", "SELECT ...")`).
    pub fn native_key(&self) -> Option<(&'static str, String)> {
        let kind = self.spec.source_kind();
        let label_key = |label: &'static str, v: Option<&str>| v.map(|v| (label, v.to_owned()));
        match kind {
            "env" => label_key("variable", self.key()),
            "vault" => label_key("secret", self.secret_path()),
            "database" | "postgres" | "mysql" | "sqlite" => match (self.query(), self.table()) {
                (Some(q), _) => match self.key() {
                    Some(k) => Some(("query", format!("{q}` with key `{k}"))),
                    None => Some(("query", q.to_owned())),
                },
                (None, Some(t)) => Some(("key", format!("{t}.{}", self.key().unwrap_or("")))),
                _ => label_key("key", self.key()),
            },
            "api" | "http" => self.url().map(|u| ("url", redact_url(u))),
            _ => self
                .key()
                .map(|k| ("key", k.to_owned()))
                .or_else(|| self.url().map(|u| ("url", redact_url(u))))
                .or_else(|| self.path().map(|p| ("path", p.to_owned())))
                .or_else(|| self.secret_path().map(|p| ("secret", p.to_owned())))
                .or_else(|| self.query().map(|q| ("query", q.to_owned()))),
        }
    }
}

/// `scheme://user:password@host/...` with the password replaced by `***`, for messages.
///
/// ```
/// use component_model_async::source_support::redact_url;
///
/// assert_eq!(redact_url("postgres://app:s3cret@db:5432/test"), "postgres://app:***@db:5432/test");
/// assert_eq!(redact_url("https://example.org/x?y=1"), "https://example.org/x?y=1");
/// ```
pub fn redact_url(url: &str) -> String {
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
}
