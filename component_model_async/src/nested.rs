//! Nested configuration structs: `#[component(nested)]` puts every fetched field of a
//! sub-struct (recursively) into its parent's plan, so a whole tree is one concurrent,
//! coalesced fetch, and every error names its full path (`AppConfig.replica.port`).
//!
//! The derive implements [`Nested`] for every `#[derive(AsyncAssign)]` struct; the
//! generated `fetch_*` methods are thin calls into the generic functions below.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::ComponentError;
use crate::partial::Partial;
use crate::plan::{Outcomes, Plan, PlanFn, TakeFn};
use crate::source::FieldSpec;
use crate::sources::Sources;

/// The future returned by the `fetch_*` methods `#[derive(AsyncAssign)]` generates:
/// `.await` it for their result. It is `Send` (spawn it on any runtime) and does nothing
/// until polled.
///
/// A named type rather than `impl Future` so that each generated method is a plain call
/// (cheap to compile for every struct); the work itself is one boxed future, allocated once
/// per call.
///
/// ```
/// use component_model_async::{AsyncAssign, FetchFuture, Sources};
///
/// #[derive(AsyncAssign, Debug, Default)]
/// struct Cfg {
///     #[component(fetch_from = "env", key = "FETCH_FUTURE_DOC_PORT", fallback = "8080")]
///     port: u16,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new();
/// let fut: FetchFuture<'_, Result<u16, _>> = Cfg::fetch_port_with(&sources);
/// assert_eq!(fut.await.unwrap(), 8080);
/// # });
/// ```
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct FetchFuture<'a, T> {
    inner: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
}

impl<'a, T> FetchFuture<'a, T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'a) -> Self {
        FetchFuture {
            inner: Box::pin(fut),
        }
    }
}

impl<T> Future for FetchFuture<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for FetchFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FetchFuture")
    }
}

/// A struct whose fields can join a fetch plan: implemented by `#[derive(AsyncAssign)]`,
/// and for `Option<T>` of such a struct (absent when none of its fields is found).
///
/// Not meant to be implemented by hand; the derive's `#[component(nested)]` requires it.
///
/// A struct fetched only as part of others can say `#[component(nested_only)]`: it keeps
/// this impl (and so its place in any tree) but gets no fetch methods of its own, which
/// saves their compile time (15 methods, plus two per field):
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, Sources};
///
/// #[derive(AsyncAssign, Debug, Default)]
/// #[component(nested_only)] // only ever fetched as a branch of `App`
/// struct Endpoint {
///     #[component(fetch_from = "env")]
///     host: String,
///     #[component(fetch_from = "env", fallback = "443")]
///     port: u16,
/// }
///
/// #[derive(AsyncAssign, Debug)]
/// #[component(env_prefix = "APP_")]
/// struct App {
///     #[component(nested)]
///     primary: Endpoint, // APP_PRIMARY_HOST
///     #[component(nested, env_prefix = "RO_")]
///     replica: Endpoint, // APP_RO_HOST
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([
///     ("APP_PRIMARY_HOST", "db-1"),
///     ("APP_RO_HOST", "db-2"),
///     ("APP_RO_PORT", "5433"),
/// ]));
/// let app = App::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((app.primary.host.as_str(), app.primary.port), ("db-1", 443));
/// assert_eq!((app.replica.host.as_str(), app.replica.port), ("db-2", 5433));
/// // One branch alone, through the parent (the prefixes are the parent's):
/// let replica = App::fetch_replica_with(&sources).await.unwrap();
/// assert_eq!(replica.host, "db-2");
/// # });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `nested` component: it does not `#[derive(AsyncAssign)]`",
    label = "`nested` needs a struct that derives `AsyncAssign` (or an `Option` of one)",
    note = "add `#[derive(AsyncAssign)]` to the struct, or fetch this field with `fetch_from`/`fetcher` instead of `nested`"
)]
pub trait Nested: Sized {
    /// Adds every fetched field of `Self`, recursively, to `plan`, in field order.
    fn plan(plan: &mut Plan<'_>);

    /// Takes `Self` out of `out`, in the order [`Nested::plan`] added its fields; errors go
    /// into `out`. `available`: failed fields take their `fallback` or `Default`.
    fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self>;
}

/// A sub-struct's [`Nested`] functions, taken once where a `nested` field is declared, so
/// a type that is not `Nested` is reported there once, not at every use.
pub struct NestedOps<T> {
    /// `T::plan`.
    pub plan: PlanFn,
    /// `T::take`.
    pub take: TakeFn<T>,
}

impl<T> Clone for NestedOps<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for NestedOps<T> {}

impl<T> NestedOps<T> {
    /// The functions of `T`.
    pub const fn of() -> Self
    where
        T: Nested,
    {
        NestedOps {
            plan: T::plan,
            take: T::take,
        }
    }
}

impl<S: Nested> Nested for Option<S> {
    fn plan(plan: &mut Plan<'_>) {
        plan.optional::<S>();
    }

    fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self> {
        out.optional::<S>(available)
    }
}

/// Where a `nested` field puts its sub-struct: what `#[component(nested, ...)]` says.
/// Built by the derive as a `static`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Nest {
    /// The struct that has the field.
    pub owner: &'static str,
    /// The field name.
    pub field: &'static str,
    /// The owner's own `env_prefix` (used when the owner is the root of the fetch).
    pub owner_env_prefix: &'static str,
    /// `env_prefix = "..."` on the field; `None`: the field name upper-cased and `_`.
    pub env_prefix: Option<&'static str>,
    /// `key_prefix = "..."` on the field.
    pub key_prefix: Option<&'static str>,
}

impl Nest {
    /// A nesting with no prefixes of its own.
    pub const fn new(
        owner: &'static str,
        field: &'static str,
        owner_env_prefix: &'static str,
    ) -> Self {
        Nest {
            owner,
            field,
            owner_env_prefix,
            env_prefix: None,
            key_prefix: None,
        }
    }

    /// Sets `env_prefix`.
    #[must_use]
    pub const fn env_prefix(mut self, prefix: &'static str) -> Self {
        self.env_prefix = Some(prefix);
        self
    }

    /// Sets `key_prefix`.
    #[must_use]
    pub const fn key_prefix(mut self, prefix: &'static str) -> Self {
        self.key_prefix = Some(prefix);
        self
    }
}

/// One fetched field of a tree as a set of [`Sources`] resolves it: its full path, the
/// source, the key as sent (prefixes applied, `${VAR}` resolved) and where the source
/// lives. Returned by the generated `component_sources_with(&Sources)`.
///
/// ```
/// use component_model_async::{async_trait, AsyncAssign, EnvSource, FetchRequest, RawValue, Source, SourceError, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Db {
///     #[component(fetch_from = "env")]
///     host: String,
///     #[component(fetch_from = "kv", key = "db/port")]
///     port: u16,
/// }
///
/// #[derive(AsyncAssign, Debug)]
/// #[component(env_prefix = "APP_")]
/// struct App {
///     #[component(nested)]
///     database: Db,
///     #[component(nested, env_prefix = "RO_", key_prefix = "replica/")]
///     replica: Db,
/// }
///
/// /// A key-value store that answers every key with "5432".
/// struct Kv;
/// #[async_trait]
/// impl Source for Kv {
///     async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
///         Ok(RawValue::Text("5432".into()))
///     }
/// }
///
/// let sources = Sources::new().with_env(EnvSource::from_map([("X", "1")])).register("kv", Kv);
/// let listed: Vec<String> = App::component_sources_with(&sources)
///     .iter()
///     .map(|s| format!("{} {} {}", s.path, s.key_label, s.key.as_deref().unwrap_or("-")))
///     .collect();
/// assert_eq!(listed, [
///     "App.database.host variable APP_DATABASE_HOST",
///     "App.database.port key db/port",
///     "App.replica.host variable APP_RO_HOST",
///     "App.replica.port key replica/db/port",
/// ]);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ComponentSource {
    /// `Root.field.subfield`.
    pub path: String,
    /// What the field's attributes say.
    pub spec: &'static FieldSpec,
    /// What the key is called by the source (`key`, `variable`, `secret`, `query`, ...).
    pub key_label: String,
    /// The key as the source will be asked for it, if the field has one.
    pub key: Option<String>,
    /// Where the source lives (`http://127.0.0.1:8500`), if it says.
    pub location: Option<String>,
    /// Why the field cannot be fetched with these sources (an unknown source name, an
    /// unset `${VAR}`), if it cannot.
    pub problem: Option<String>,
}

impl fmt::Display for ComponentSource {
    /// `App.replica.port: consul key `replica/db/port` at http://127.0.0.1:8500`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.spec.source)?;
        if let Some(key) = &self.key {
            write!(f, " {} `{key}`", self.key_label)?;
        }
        if let Some(loc) = &self.location {
            write!(f, " at {loc}")?;
        }
        if let Some(problem) = &self.problem {
            write!(f, " (cannot be fetched: {problem})")?;
        }
        Ok(())
    }
}

/// `fetch_all_components_with`: the whole tree, or every error.
pub fn fetch_all<T: Nested + Send>(
    sources: &Sources,
) -> FetchFuture<'_, Result<T, Vec<ComponentError>>> {
    FetchFuture::new(async move {
        let plan = Plan::of::<T>(sources);
        let mut out = plan.run().await;
        let value = T::take(&mut out, false);
        out.into_result(value)
    })
}

/// `fetch_all` with a [`FetchReport`](crate::FetchReport): where each field's value came
/// from, how long it took, how it failed.
pub fn fetch_report<'a, T: Nested + Send>(
    owner: &'static str,
    sources: &'a Sources,
) -> FetchFuture<'a, crate::report::FetchReport<T>> {
    FetchFuture::new(async move {
        let started = std::time::Instant::now();
        let plan = Plan::of::<T>(sources);
        let notes = std::sync::Arc::new(crate::report::Notes::default());
        let mut out = plan.run_noting(Some(notes)).await;
        let value = T::take(&mut out, false);
        let fields = out.report();
        crate::report::FetchReport {
            result: out.into_result(value),
            fields,
            owner,
            elapsed: started.elapsed(),
        }
    })
}

/// `fetch_available_components_with`: the tree with failed fields at their `fallback` or
/// `Default`, and the errors.
pub fn fetch_available<T: Nested + Send>(
    sources: &Sources,
) -> FetchFuture<'_, Result<Partial<T>, Vec<ComponentError>>> {
    FetchFuture::new(async move {
        let plan = Plan::of::<T>(sources);
        let mut out = plan.run().await;
        let value = T::take(&mut out, true);
        out.into_partial(value)
    })
}

/// `fetch_with_resilience_with`: [`fetch_all`] bounded by the struct's `limit`; a timeout
/// is `ComponentError::Timeout` naming `owner`, several errors one `Multiple`.
pub fn fetch_bounded<'a, T: Nested + Send>(
    owner: &'static str,
    limit: Duration,
    sources: &'a Sources,
) -> FetchFuture<'a, Result<T, ComponentError>> {
    FetchFuture::new(async move {
        match tokio::time::timeout(limit, fetch_all::<T>(sources)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(errors)) => Err(ComponentError::from(errors)),
            Err(_) => Err(ComponentError::Timeout {
                target: owner.into(),
                after: limit,
            }),
        }
    })
}

/// `fetch_<field>_with` of a `nested` field: its sub-tree, with the paths and prefixes it
/// has inside its parent.
pub fn fetch_nested<'a, T: Send + 'a>(
    sources: &'a Sources,
    nest: &'static Nest,
    ops: NestedOps<T>,
) -> FetchFuture<'a, Result<T, ComponentError>> {
    FetchFuture::new(async move {
        let mut plan = Plan::new(sources);
        plan.nest(nest, ops.plan);
        let mut out = plan.run().await;
        let value = (ops.take)(&mut out, false);
        out.into_result(value).map_err(ComponentError::from)
    })
}

/// `fetch_<field>_with` of a field: the struct's own `Nested::plan`, passing over every
/// field but the one with `spec`.
pub fn fetch_field<'a, S: Nested, T: Send + 'static>(
    sources: &'a Sources,
    spec: &'static FieldSpec,
) -> FetchFuture<'a, Result<T, ComponentError>> {
    FetchFuture::new(async move {
        let mut plan = Plan::only(sources, spec);
        S::plan(&mut plan);
        let handle = plan.first::<T>().ok_or_else(|| {
            ComponentError::field(crate::ErrorKind::Other)
                .in_field(spec.owner, spec.field)
                .detail("the field is not in its struct's plan")
                .build()
        })?;
        plan.run().await.take(handle)
    })
}

/// `component_sources_with`: every fetched field of the tree, resolved against `sources`.
pub fn describe<T: Nested>(sources: &Sources) -> Vec<ComponentSource> {
    let mut plan = Plan::new(sources);
    T::plan(&mut plan);
    plan.describe()
}
