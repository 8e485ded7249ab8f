//! The seam every backend implements: a [`Source`] answers a [`FetchRequest`] with a
//! [`RawValue`]; conversion into the field's type happens afterwards, in one place, so a
//! cached or retried value converts the same way.
//!
//! One concern a file: [`FieldSpec`] (`spec`), [`FetchRequest`] (`request`), [`RawValue`]
//! (`raw`), [`Change`] (`change`), `coalesce` and `redact_url` (support every backend uses),
//! and the [`Source`] trait here. This is the seam: it imports nothing of the crate but its
//! errors and `placeholder`.

mod change;
mod coalesce;
mod context;
mod convention;
mod preflight;
mod raw;
mod redact;
mod request;
mod spec;

pub use change::{Change, Changes, Revision};
pub use coalesce::coalesce;
pub use context::FetchContext;
pub(crate) use context::{Note, Notes};
pub use convention::FieldPath;
pub use preflight::{Access, Preflighting, Probe};
pub use raw::RawValue;
pub(crate) use raw::{StoredValue, json_kind};
pub use redact::redact_url;
pub use request::FetchRequest;
pub(crate) use request::{expand_profile_text, fill_references};
pub use spec::FieldSpec;

use crate::error::SourceError;

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

    /// [`Source::fetch_many`] within the context of one fetch ([`FetchContext`]: the
    /// report being collected, a read that must pass caches, the deadline): what the
    /// engine calls. The default ignores the context and calls `fetch_many`; a layer
    /// overrides it and hands the context on to the source it wraps.
    ///
    /// ```
    /// use component_model_async::{async_trait, FetchContext, FetchRequest, RawValue, Source, SourceError};
    ///
    /// struct Fixed;
    /// #[async_trait]
    /// impl Source for Fixed {
    ///     async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
    ///         Ok(RawValue::from("1"))
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let r = FetchRequest::for_key("fixed", "a");
    /// let answers = Fixed.fetch_many_in(&FetchContext::new(), &[&r]).await;
    /// assert_eq!(answers[0].as_ref().ok(), Some(&RawValue::from("1")));
    /// # });
    /// ```
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let _ = cx;
        self.fetch_many(requests).await
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

    /// The request that reads `field` by this source's convention, when nothing names its
    /// key: a precedence source (`overrides = ["env"]`, `defaults = ["file@app.toml"]`), or
    /// a `fetch_from` field that names no key. `request` is the empty request of the field
    /// (its struct, path and secrecy set); set what the source reads on it. A
    /// [`FetchRequest::with_pointer`] is looked up in the value answered: what it does not
    /// find is absent. `Err` says why the source cannot read a field without a key (a
    /// configuration error of the field).
    ///
    /// The default reads the key `{argument}{key_prefix}{path with /}` (Consul's
    /// convention): see [`FieldPath`] for every built-in source's.
    ///
    /// ```
    /// use component_model_async::{EnvSource, FetchRequest, FieldPath, Source};
    ///
    /// let env = EnvSource::from_map([("APP_PORT", "80")]);
    /// let field = FieldPath::new("port").with_env_name("APP_PORT");
    /// let request = env.convention(FetchRequest::for_source("env"), &field).unwrap();
    /// assert_eq!(request.key(), Some("APP_PORT"));
    /// ```
    fn convention(
        &self,
        request: FetchRequest,
        field: &FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        Ok(request.with_key(field.key('/')))
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

    /// Checks `requests` without reading a value — reachable, authenticated, allowed to
    /// read each key, the key exists — for `preflight()`: one [`Probe`] per request, in
    /// order. A source checks with what reads no value (Vault
    /// `sys/capabilities-self`, Redis `EXISTS`, SQL `PREPARE`, an HTTP `HEAD`, a file's
    /// metadata) and never logs one. The engine bounds the call by the struct's deadline
    /// (a source that does not answer in time is unreachable).
    ///
    /// The default cannot check without reading: every request is
    /// [`Access::Unchecked`]. A layer forwards it to the source it wraps
    /// ([`forward_description!`](crate::forward_description) does).
    ///
    /// ```
    /// use component_model_async::{async_trait, Access, FetchRequest, Preflighting, Probe, RawValue, Source, SourceError};
    ///
    /// struct Fixed;
    ///
    /// #[async_trait]
    /// impl Source for Fixed {
    ///     async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
    ///         Ok(RawValue::from("1"))
    ///     }
    ///     fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
    ///         Box::pin(async move {
    ///             requests
    ///                 .iter()
    ///                 .map(|r| match r.key() {
    ///                     Some("port") => Probe::readable(),
    ///                     _ => Probe::missing(),
    ///                 })
    ///                 .collect()
    ///         })
    ///     }
    /// }
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let probes = Fixed.preflight(vec![FetchRequest::for_key("fixed", "port")]).await;
    /// assert_eq!(probes[0].access, Access::Readable);
    /// # });
    /// ```
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        let probes = requests
            .iter()
            .map(|_| Probe::unchecked("this source cannot check a key without reading it"))
            .collect();
        Box::pin(std::future::ready(probes))
    }
}

/// What [`Source::remember`] returns: the work of storing the values.
pub type Remembering = futures::future::BoxFuture<'static, ()>;
