//! The generated methods' runtime: `fetch_all_components`, `fetch_available_components`,
//! `fetch_report`, `fetch_with_resilience`, `fetch_<field>` and `component_sources` are
//! thin calls into the generic functions here, which run the engine's pipeline
//! ([`crate::engine`]) and return a [`FetchFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::config_doc::ConfigDoc;
use crate::engine::{ComponentSource, Nest, Nested, NestedOps, Plan};
use crate::error::ComponentError;
use crate::partial::Partial;
use crate::preflight::PreflightReport;
use crate::source::{FetchContext, FieldSpec};
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

/// `fetch_all_components_with`: the whole tree, or every error.
pub fn fetch_all<T: Nested + Send>(
    sources: &Sources,
) -> FetchFuture<'_, Result<T, Vec<ComponentError>>> {
    FetchFuture::new(async move {
        let plan = Plan::of::<T>(sources);
        let mut out = plan.run().await;
        let value = T::take(&mut out, false);
        let value = out.validated(value, sources).await;
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
        let notes = std::sync::Arc::new(crate::source::Notes::default());
        let mut out = plan.run_in(FetchContext::new().collecting(notes)).await;
        let value = T::take(&mut out, false);
        let value = out.validated(value, sources).await;
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
        let value = out.validated(value, sources).await;
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
        // The deadline travels with the fetch (a retry does not start a wait it cannot
        // finish); the timeout ends whatever is still running at the limit.
        let cx = FetchContext::new().with_deadline(std::time::Instant::now() + limit);
        let fetch = async {
            let plan = Plan::of::<T>(sources);
            let mut out = plan.run_in(cx).await;
            let value = T::take(&mut out, false);
            let value = out.validated(value, sources).await;
            out.into_result(value)
        };
        match tokio::time::timeout(limit, fetch).await {
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
/// has inside its parent, and the parent's `validate_concurrency`.
pub fn fetch_nested<'a, T: Send + 'a>(
    sources: &'a Sources,
    nest: &'static Nest,
    ops: NestedOps<T>,
    validate_concurrency: usize,
) -> FetchFuture<'a, Result<T, ComponentError>> {
    FetchFuture::new(async move {
        let mut plan = Plan::new(sources);
        plan.validate_concurrency = validate_concurrency;
        plan.set_profile_env(nest.owner_profile_env);
        plan.nest(nest, ops.plan);
        plan.link();
        let mut out = plan.run().await;
        let value = (ops.take)(&mut out, false);
        let value = out
            .validated_by(value, ops.rules, sources, nest.field)
            .await;
        out.into_result(value).map_err(ComponentError::from)
    })
}

/// `fetch_<field>_with` of a field: the struct's own `Nested::plan`, passing over every
/// field but the one with `spec`.
pub fn fetch_field<'a, S: Nested, T: Send + 'static>(
    sources: &'a Sources,
    spec: &'static FieldSpec,
    default: Option<fn() -> T>,
) -> FetchFuture<'a, Result<T, ComponentError>> {
    FetchFuture::new(async move {
        let plan = Plan::only_of::<S>(sources, spec);
        let handle = plan.first::<T>().ok_or_else(|| {
            ComponentError::field(crate::ErrorKind::Other)
                .in_field(spec.owner, spec.field)
                .detail("the field is not in its struct's plan")
                .build()
        })?;
        plan.run().await.take_or_default(handle, default)
    })
}

/// `component_sources_with`: every fetched field of the tree, resolved against `sources`.
pub fn describe<T: Nested>(sources: &Sources) -> Vec<ComponentSource> {
    Plan::fresh::<T>(sources).describe()
}

/// `config_doc_with`: the tree described, resolved against `sources`; nothing fetched.
pub fn config_doc<T: Nested>(owner: &'static str, sources: &Sources) -> ConfigDoc {
    ConfigDoc::new(owner, Plan::fresh::<T>(sources).field_docs())
}

/// `preflight_with`: every field's sources checked without reading a value, bounded by
/// the struct's `limit`.
pub fn preflight<'a, T: Nested>(
    owner: &'static str,
    limit: Duration,
    sources: &'a Sources,
) -> FetchFuture<'a, PreflightReport> {
    FetchFuture::new(async move {
        let started = std::time::Instant::now();
        let rows = Plan::of::<T>(sources).preflight(started + limit).await;
        PreflightReport::new(owner, rows, started.elapsed())
    })
}
