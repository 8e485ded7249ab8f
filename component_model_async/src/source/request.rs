//! [`FetchRequest`]: one field's request to a source, its identity and its wire parameters.

use std::borrow::Cow;
use std::fmt;

use super::redact::redact_url;
use super::spec::{FieldSpec, LEGACY_PARAMS, number_text};

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

/// `value` with every `{@profile}` replaced by the profile (asked for only when there is
/// a placeholder).
fn expand_profile(
    value: &mut Text,
    profile: &dyn Fn() -> std::sync::Arc<str>,
) -> Result<(), String> {
    if !value.contains("{@") {
        return Ok(());
    }
    *value = Cow::Owned(expand_profile_text(value, &profile())?);
    Ok(())
}

/// `value` with every `{@profile}` replaced by `profile`; another `{@name}` is an error.
pub(crate) fn expand_profile_text(value: &str, profile: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len() + profile.len());
    let mut rest: &str = value;
    while let Some(at) = rest.find("{@") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "a `{@` without its closing `}`".to_owned())?;
        match &after[..end] {
            "profile" => out.push_str(profile),
            other => {
                return Err(format!(
                    "unknown placeholder `{{@{other}}}`; the only one is `{{@profile}}`"
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

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
    /// A JSON pointer into the value answered (a convention's), not part of the identity.
    pointer: Option<Text>,
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
    /// `secret`, `url`, `path`, `mount`, `topic` and every parameter a backend declares
    /// itself (any name but those) are looked up with `lookup`. `query`, `table` and
    /// `dc` keep their text (SQL and identifiers are never expanded).
    pub fn resolved(
        spec: &'static FieldSpec,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::placeholder::PlaceholderError> {
        Self::from_spec(spec, |v| crate::placeholder::expand(v, lookup))
    }

    #[allow(deprecated)] // the fields of the parameters that have a slot of their own
    fn from_spec<E>(
        spec: &'static FieldSpec,
        resolve: impl Fn(&'static str) -> Result<Text, E>,
    ) -> Result<Self, E> {
        let r = |v: Option<&'static str>| v.map(&resolve).transpose();
        let fixed = |v: Option<&'static str>| v.map(Cow::Borrowed);
        // A backend's own parameters (any name without a slot), resolved like `key`.
        let mut extra = Vec::new();
        for (name, value) in spec.params {
            if !LEGACY_PARAMS.contains(name) && !extra.iter().any(|(n, _)| n == name) {
                extra.push((Cow::Borrowed(*name), resolve(value)?));
            }
        }
        extra.sort_by(|(a, _), (b, _)| a.cmp(b));
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
                extra,
            },
            origin: Origin {
                spec: Some(spec),
                source: Cow::Borrowed(spec.source),
                owner: Cow::Borrowed(spec.owner),
                field: Cow::Borrowed(spec.field),
                default_key: fixed(spec.default_key),
                select: fixed(spec.select),
                pointer: None,
                sensitive: spec.sensitive,
            },
        })
    }

    /// The request with `{@profile}` in its key, secret path, url, path, mount, topic and
    /// backend parameters replaced by `profile` (never in SQL text: `query` and `table`
    /// are left as written). Another `{@name}` is an error naming it.
    pub(crate) fn with_profile(
        mut self,
        profile: &dyn Fn() -> std::sync::Arc<str>,
    ) -> Result<Self, String> {
        let p = &mut self.params;
        let slots = [
            &mut p.key,
            &mut p.secret_path,
            &mut p.url,
            &mut p.path,
            &mut p.mount,
            &mut p.topic,
        ];
        for value in slots.into_iter().flatten() {
            expand_profile(value, profile)?;
        }
        for (_, value) in &mut p.extra {
            expand_profile(value, profile)?;
        }
        Ok(self)
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
                pointer: None,
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

    /// Sets the parameter `name` (part of the request's identity): a backend's own key
    /// (`with_param("version", "3")`), or one with a method of its own (`"dc"` is
    /// [`with_dc`](FetchRequest::with_dc), `"secret"` is
    /// [`with_secret_path`](FetchRequest::with_secret_path), `"kv_version"` a number up
    /// to 255, else unset). [`FetchRequest::param`] reads either kind.
    ///
    /// ```
    /// use component_model_async::FetchRequest;
    ///
    /// let r = FetchRequest::for_key("consul", "app/port").with_param("dc", "eu1").with_param("ns", "team-a");
    /// assert_eq!((r.dc(), r.param("dc"), r.param("ns")), (Some("eu1"), Some("eu1"), Some("team-a")));
    /// assert_eq!(r, FetchRequest::for_key("consul", "app/port").with_dc("eu1").with_param("ns", "team-a"));
    /// ```
    #[must_use]
    pub fn with_param(mut self, name: impl Into<Text>, value: impl Into<Text>) -> Self {
        let name = name.into();
        let value = value.into();
        let p = &mut self.params;
        let slot = match name.as_ref() {
            "key" => &mut p.key,
            "query" => &mut p.query,
            "secret" => &mut p.secret_path,
            "url" => &mut p.url,
            "path" => &mut p.path,
            "mount" => &mut p.mount,
            "table" => &mut p.table,
            "dc" => &mut p.dc,
            "topic" => &mut p.topic,
            "kv_version" => {
                p.kv_version = value.trim().parse().ok();
                return self;
            }
            _ => {
                let extra = &mut p.extra;
                extra.retain(|(n, _)| *n != name);
                let at = extra.partition_point(|(n, _)| *n < name);
                extra.insert(at, (name, value));
                return self;
            }
        };
        *slot = Some(value);
        self
    }

    /// Sets a JSON pointer into the value answered (`/db/port`): the value the request
    /// reads is what the pointer finds, and a value where it finds nothing is absent.
    /// Not part of the request's identity, so fields reading one document share one read.
    ///
    /// ```
    /// use component_model_async::FetchRequest;
    ///
    /// let a = FetchRequest::for_source("file").with_path("app.toml").with_pointer("/db/port");
    /// let b = FetchRequest::for_source("file").with_path("app.toml").with_pointer("/db/host");
    /// assert_eq!(a.pointer(), Some("/db/port"));
    /// assert_eq!(a, b);
    /// ```
    #[must_use]
    pub fn with_pointer(mut self, pointer: impl Into<Text>) -> Self {
        self.origin.pointer = Some(pointer.into());
        self
    }

    /// The JSON pointer of [`FetchRequest::with_pointer`], if any.
    pub fn pointer(&self) -> Option<&str> {
        self.origin.pointer.as_deref()
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

    /// Prepends a nested field's `key_prefix` to the key, path and secret path, and to a
    /// subtree read's `prefix` parameter as to the key; a key (or prefix) bound into SQL
    /// (the request has a query or a table) is a value and keeps its text.
    pub(crate) fn with_key_prefix(mut self, prefix: &str) -> Self {
        let p = &mut self.params;
        let add = |v: &mut Option<Text>| {
            if let Some(v) = v {
                *v = Cow::Owned(format!("{prefix}{v}"));
            }
        };
        if p.query.is_none() && p.table.is_none() {
            add(&mut p.key);
            if let Some((_, v)) = p.extra.iter_mut().find(|(n, _)| n == "prefix") {
                *v = Cow::Owned(format!("{prefix}{v}"));
            }
        }
        add(&mut p.path);
        add(&mut p.secret_path);
        self
    }

    /// Makes `field = "..."` part of the request's identity: the source reads the member
    /// itself (see [`Source::selects_field`](crate::Source::selects_field)), so two members are two requests.
    pub(crate) fn select_on_wire(&mut self) {
        self.params.member = self.origin.select.clone();
    }

    /// Makes the field's default key its key when it names none: the source reads a key
    /// named after the field (see [`Source::keys_by_field_name`](crate::Source::keys_by_field_name)).
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
    /// The parameter `name`: a backend's own key as the field wrote it (`version = 3` is
    /// `param("version") == Some("3")`, `${VAR}` resolved), or one with an accessor of its
    /// own (`param("dc")` is [`dc`](FetchRequest::dc), `param("secret")` is
    /// [`secret_path`](FetchRequest::secret_path), `param("key")` is
    /// [`key`](FetchRequest::key)).
    pub fn param(&self, name: &str) -> Option<&str> {
        let p = &self.params;
        let slot = match name {
            "key" => &p.key,
            "query" => &p.query,
            "secret" => &p.secret_path,
            "url" => &p.url,
            "path" => &p.path,
            "mount" => &p.mount,
            "table" => &p.table,
            "dc" => &p.dc,
            "topic" => &p.topic,
            "kv_version" => return p.kv_version.map(number_text),
            _ => {
                return p
                    .extra
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_ref());
            }
        };
        slot.as_deref()
    }
    /// Whether the value is secret: never log or display it.
    pub fn is_sensitive(&self) -> bool {
        self.origin.sensitive
    }

    /// What the native key is called and its value, for messages, when the source has
    /// no more specific name for it ([`Source::native_key`](crate::Source::native_key)): the topic (with the key,
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

impl FetchRequest {
    /// The request with each `{name}` reference in its key, secret path, url, path,
    /// mount, topic, member (`field`) and backend parameters replaced by `value(name)`, and
    /// `{{`/`}}` made literal braces. SQL text (`query`, `table`) and `dc` are left as
    /// written: a reference in SQL is only ever a bound parameter (the `key`).
    /// A `{name}` `value` does not know is kept as written.
    pub(crate) fn with_references(mut self, value: &dyn Fn(&str) -> Option<String>) -> Self {
        let p = &mut self.params;
        let slots = [
            &mut p.key,
            &mut p.secret_path,
            &mut p.url,
            &mut p.path,
            &mut p.mount,
            &mut p.topic,
            &mut p.member,
            &mut self.origin.select,
        ];
        for text in slots.into_iter().flatten() {
            if let Cow::Owned(filled) = fill_references(text, value) {
                *text = Cow::Owned(filled);
            }
        }
        for (_, text) in &mut p.extra {
            if let Cow::Owned(filled) = fill_references(text, value) {
                *text = Cow::Owned(filled);
            }
        }
        self
    }
}

/// `text` with `{name}` replaced by `value(name)` and `{{`/`}}` made single braces;
/// borrowed when it has no brace.
pub(crate) fn fill_references<'t>(
    text: &'t str,
    value: &dyn Fn(&str) -> Option<String>,
) -> Cow<'t, str> {
    if !text.contains(['{', '}']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(inner) = tail.strip_prefix('{')
            && let Some(end) = inner.find('}')
        {
            let name = &inner[..end];
            match value(name) {
                Some(v) => out.push_str(&v),
                // Not a reference (a `${VAR}`'s value had braces): kept as it is.
                None => out.push_str(&tail[..end + 2]),
            }
            rest = &inner[end + 1..];
            continue;
        }
        // A lone brace (only from a `${VAR}`'s value): kept as it is.
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}
