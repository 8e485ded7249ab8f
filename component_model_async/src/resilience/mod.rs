//! Resilience as layers around a [`Source`]: a [`SourceLayer`] wraps a source and is a
//! source itself, and `fetch_many` passes through every layer, so a batch stays a batch
//! (one Consul transaction, one SQL query, one Redis pipeline) however many layers wrap it.
//!
//! * [`TimeoutLayer`] ([`timeout`]): each attempt of a batch gets at most the limit;
//! * [`RetryLayer`] ([`retry`]): the members of a batch that failed transiently are asked
//!   again, together, with exponential backoff and jitter (backon's policy);
//! * [`CacheLayer`] ([`cache`]): hits from memory, misses together in one call, one
//!   upstream call for concurrent misses (single flight), stale-if-error;
//! * [`CircuitBreakerLayer`] ([`breaker`]): fail fast while a source keeps failing;
//! * [`ConcurrencyLimitLayer`] ([`limit`]): at most N calls of a source in flight.
//!
//! For a single [`ComponentFetcher`](crate::ComponentFetcher), [`AsyncRetry`] and
//! [`WithTimeout`] ([`fetcher`]) do the same standalone.
//!
//! The derive's attributes use these layers (`timeout`, `retry_attempts`, `retry_backoff`,
//! `cache_for`/`ttl`, `stale_for`, `circuit_breaker`, `max_concurrency`): the engine groups
//! a source's fields by their settings and wraps the source once per group, so fields with
//! the same settings share one batch. Around a source, from the outside in: cache, circuit
//! breaker, retry, timeout (each attempt, including its wait for a permit), concurrency
//! limit. The state of what the attributes build (cache, circuit, permits) belongs to the
//! [`Sources`](crate::Sources) and is shared by its clones, by every struct and task that
//! uses them: one circuit and one cache per registered source, one set of permits per
//! source and limit. In code, wrap a source before
//! registering it, or wrap a registered one:
//!
//! ```
//! use std::time::Duration;
//! use component_model_async::resilience::{RetryLayer, SourceExt, TimeoutLayer};
//! use component_model_async::{EnvSource, Sources};
//!
//! let env = EnvSource::from_map([("PORT", "8080")])
//!     .with_layer(TimeoutLayer::new(Duration::from_millis(250)))
//!     .with_layer(RetryLayer::new(3));
//! let sources = Sources::new().register("settings", env);
//! assert!(sources.contains("settings"));
//! ```
//!
//! Layer state lives in the wrapping source, which the clones of a `Sources` share.

pub mod breaker;
pub mod cache;
pub mod fetcher;
pub mod limit;
pub mod retry;
pub mod timeout;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use breaker::{BreakerSource, CircuitBreakerLayer};
pub use cache::{CacheLayer, CacheSource, CacheTier, Namespaced};
pub use fetcher::{AsyncRetry, WithTimeout};
pub use limit::{ConcurrencyLimitLayer, LimitSource};
pub use retry::{RetryLayer, RetrySource};
pub use timeout::{TimeoutLayer, TimeoutSource};

use crate::error::{BoxError, ComponentError, ErrorKind, SourceError};
use crate::source::{FieldSpec, RawValue, Source};

/// Wraps a [`Source`] in another that adds one concern (tower's `Layer`, for sources).
///
/// ```
/// use std::sync::Arc;
/// use component_model_async::{async_trait, FetchRequest, RawValue, Source, SourceError};
/// use component_model_async::resilience::SourceLayer;
///
/// /// Counts requests on their way through.
/// struct Counting(Arc<std::sync::atomic::AtomicUsize>);
/// struct Counted { inner: Arc<dyn Source>, seen: Arc<std::sync::atomic::AtomicUsize> }
///
/// impl SourceLayer for Counting {
///     fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
///         Arc::new(Counted { inner, seen: self.0.clone() })
///     }
/// }
///
/// #[async_trait]
/// impl Source for Counted {
///     async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
///         self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.fetch(r).await
///     }
///     async fn fetch_many(&self, rs: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
///         self.seen.fetch_add(rs.len(), std::sync::atomic::Ordering::Relaxed);
///         self.inner.fetch_many(rs).await // the batch stays a batch
///     }
///     // What the engine calls: the fetch's context (report, fresh read, deadline) goes on.
///     async fn fetch_many_in(
///         &self,
///         cx: &component_model_async::FetchContext,
///         rs: &[&FetchRequest],
///     ) -> Vec<Result<RawValue, SourceError>> {
///         self.seen.fetch_add(rs.len(), std::sync::atomic::Ordering::Relaxed);
///         self.inner.fetch_many_in(cx, rs).await
///     }
/// }
/// ```
///
/// A layer's source should forward `location`, `native_key`, `is_sensitive`,
/// `unwraps_single_member`, `selects_field`, `keys_by_field_name`, `takes_key_prefix`, `convention`, `conceals`, `watch`, `remember` and `keeps_answers`
/// to its inner source; the built-in layers do
/// (see [`forward_description!`](crate::forward_description)). It should implement
/// `fetch_many_in` and hand the [`FetchContext`](crate::FetchContext) on (a layer that
/// implements only `fetch_many` still works: below it, the context is a new one, so a
/// fetch report does not see what the layers under it did, and a live refresh may be
/// answered by a cache under it). A layer that changes values (decrypts, rewrites) must
/// not hand its inner source's [`Change::Value`](crate::Change::Value) on unchanged from
/// `watch`: map it to `Change::Changed` so the value is fetched through the layer.
pub trait SourceLayer: Send + Sync + 'static {
    /// Wraps `inner`.
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source>;
}

/// `source.with_layer(layer)`: wraps any [`Source`] (or an `Arc<dyn Source>`).
pub trait SourceExt {
    /// This source wrapped in `layer`.
    fn with_layer(self, layer: impl SourceLayer) -> Arc<dyn Source>;
}

impl<S: Source> SourceExt for S {
    fn with_layer(self, layer: impl SourceLayer) -> Arc<dyn Source> {
        layer.layer(Arc::new(self))
    }
}

impl SourceExt for Arc<dyn Source> {
    fn with_layer(self, layer: impl SourceLayer) -> Arc<dyn Source> {
        layer.layer(self)
    }
}

/// Implements the descriptive methods of [`Source`] by asking `self.inner`, for a layer's
/// source (`forward_description!(inner);` inside an `impl Source for ...` block).
#[macro_export]
macro_rules! forward_description {
    ($inner:ident) => {
        fn location(&self) -> ::core::option::Option<::std::string::String> {
            self.$inner.location()
        }
        fn native_key(
            &self,
            request: &$crate::FetchRequest,
        ) -> ::core::option::Option<(&'static str, ::std::string::String)> {
            self.$inner.native_key(request)
        }
        fn is_sensitive(&self) -> bool {
            self.$inner.is_sensitive()
        }
        fn unwraps_single_member(&self) -> bool {
            self.$inner.unwraps_single_member()
        }
        fn selects_field(&self) -> bool {
            self.$inner.selects_field()
        }
        fn keys_by_field_name(&self) -> bool {
            self.$inner.keys_by_field_name()
        }
        fn takes_key_prefix(&self) -> bool {
            self.$inner.takes_key_prefix()
        }
        fn convention(
            &self,
            request: $crate::FetchRequest,
            field: &$crate::FieldPath<'_>,
        ) -> ::core::result::Result<$crate::FetchRequest, ::std::string::String> {
            self.$inner.convention(request, field)
        }
        fn conceals(&self, request: &$crate::FetchRequest) -> bool {
            self.$inner.conceals(request)
        }
        fn remember(
            &self,
            answers: ::std::vec::Vec<($crate::FetchRequest, $crate::RawValue)>,
        ) -> ::core::option::Option<$crate::Remembering> {
            self.$inner.remember(answers)
        }
        fn keeps_answers(&self) -> bool {
            self.$inner.keeps_answers()
        }
        fn watch(
            &self,
            requests: ::std::vec::Vec<$crate::FetchRequest>,
        ) -> ::core::result::Result<$crate::Changes, $crate::SourceError> {
            self.$inner.watch(requests)
        }
        fn preflight(
            &self,
            requests: ::std::vec::Vec<$crate::FetchRequest>,
        ) -> $crate::Preflighting<'_> {
            self.$inner.preflight(requests)
        }
    };
}

/// A layer's `fetch`: the one answer of a batch of one (a source that answered nothing
/// failed, it did not say "not found").
pub(crate) fn one(
    mut answers: Vec<Result<RawValue, SourceError>>,
) -> Result<RawValue, SourceError> {
    answers.pop().unwrap_or_else(|| {
        Err(SourceError::new(ErrorKind::Unavailable).with_message("the source returned no answer"))
    })
}

/// The settings that decide a field's layers: fields with equal settings share a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Settings {
    timeout: Option<Duration>,
    retry_attempts: u32,
    retry_backoff: Option<Duration>,
    cache_for: Option<Duration>,
    stale_for: Option<Duration>,
    circuit_breaker: bool,
    max_concurrency: Option<u32>,
}

impl Settings {
    pub(crate) fn of(spec: &FieldSpec) -> Self {
        Settings {
            timeout: spec.timeout,
            retry_attempts: spec.retry_attempts.unwrap_or(0),
            retry_backoff: spec.retry_backoff,
            cache_for: spec.cache_for,
            stale_for: spec.stale_for,
            circuit_breaker: spec.circuit_breaker,
            max_concurrency: spec.max_concurrency,
        }
    }

    fn is_plain(&self) -> bool {
        *self
            == Settings {
                retry_backoff: self.retry_backoff,
                stale_for: self.stale_for,
                ..Settings::default()
            }
    }
}

/// The layers the attributes asked for, built once per source and settings and kept by
/// [`Sources`](crate::Sources) (shared by its clones), with their state: one cache and one
/// circuit per source, one semaphore per source and limit.
#[derive(Default)]
pub(crate) struct Registry {
    inner: Mutex<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    /// Keyed by the address of the registered source (kept alive by the entry here).
    layered: HashMap<(usize, Settings), Arc<dyn Source>>,
    caches: HashMap<usize, (Arc<dyn Source>, Arc<cache::CacheState>)>,
    breakers: HashMap<usize, Arc<breaker::BreakerState>>,
    limits: HashMap<(usize, u32), Arc<tokio::sync::Semaphore>>,
    /// The shared cache tier of every cache the attributes build.
    tier: Option<Arc<dyn cache::CacheTier>>,
}

fn address(source: &Arc<dyn Source>) -> usize {
    Arc::as_ptr(source).cast::<()>() as usize
}

impl Registry {
    /// `source` wrapped in the layers `spec` asks for (itself when it asks for none).
    pub(crate) fn layered(&self, source: &Arc<dyn Source>, spec: &FieldSpec) -> Arc<dyn Source> {
        let settings = Settings::of(spec);
        if settings.is_plain() {
            return source.clone();
        }
        let at = address(source);
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(built) = inner.layered.get(&(at, settings)) {
            return built.clone();
        }
        let mut layered = source.clone();
        if let Some(max) = settings.max_concurrency {
            let permits = inner
                .limits
                .entry((at, max))
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max.max(1) as usize)))
                .clone();
            layered = ConcurrencyLimitLayer::sharing(permits).layer(layered);
        }
        if let Some(limit) = settings.timeout {
            layered = TimeoutLayer::new(limit).layer(layered);
        }
        if settings.retry_attempts > 0 {
            let mut policy = retry::RetryPolicy::new(settings.retry_attempts);
            if let Some(d) = settings.retry_backoff {
                policy.min_delay = d;
                policy.max_delay = policy.max_delay.max(d);
            }
            layered = RetryLayer::with_policy(policy).layer(layered);
        }
        if settings.circuit_breaker {
            let state = inner
                .breakers
                .entry(at)
                .or_insert_with(|| {
                    Arc::new(breaker::BreakerState::new(
                        breaker::DEFAULT_FAILURE_THRESHOLD,
                        breaker::DEFAULT_OPEN_FOR,
                    ))
                })
                .clone();
            layered = CircuitBreakerLayer::sharing(state).layer(layered);
        }
        if let Some(ttl) = settings.cache_for {
            let state = inner
                .caches
                .entry(at)
                .or_insert_with(|| {
                    (
                        source.clone(),
                        Arc::new(cache::CacheState::new(cache::DEFAULT_CAPACITY)),
                    )
                })
                .1
                .clone();
            let stale_for = settings.stale_for.unwrap_or(cache::DEFAULT_STALE_FOR);
            layered = CacheLayer::sharing(ttl, stale_for, state, inner.tier.clone()).layer(layered);
        }
        inner.layered.insert((at, settings), layered.clone());
        layered
    }

    /// Forgets the cached values of `source` whose key is `key`; how many.
    pub(crate) fn invalidate(&self, source: &Arc<dyn Source>, key: &str) -> usize {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .caches
            .get(&address(source))
            .map_or(0, |(_, state)| state.invalidate_key(key))
    }

    /// Puts `tier` behind the caches built from now on.
    pub(crate) fn set_tier(&self, tier: Arc<dyn cache::CacheTier>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tier = Some(tier);
        inner
            .layered
            .retain(|(_, settings), _| settings.cache_for.is_none());
    }

    /// Forgets every cached value.
    pub(crate) fn invalidate_all(&self) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, state) in inner.caches.values() {
            state.invalidate_all();
        }
    }
}

/// Why one attempt of a typed fetcher (`fetcher = ...`) failed, before the field's
/// provenance is attached.
#[derive(Debug)]
pub(crate) enum Failure {
    Source(SourceError),
    Fetcher(BoxError),
}

impl Failure {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Failure::Source(e) => e.kind(),
            Failure::Fetcher(e) => kind_of(e.as_ref()),
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Failure::Source(e) => e.kind().is_transient(),
            // A user's fetcher failing with its own error may well succeed next time.
            Failure::Fetcher(e) => {
                matches!(kind_of(e.as_ref()), ErrorKind::Other)
                    || kind_of(e.as_ref()).is_transient()
            }
        }
    }
}

/// The kind of a user's error: kept when it is one of ours, `Other` otherwise.
pub(crate) fn kind_of(e: &(dyn std::error::Error + Send + Sync + 'static)) -> ErrorKind {
    if let Some(s) = e.downcast_ref::<SourceError>() {
        s.kind()
    } else if let Some(c) = e.downcast_ref::<ComponentError>() {
        c.kind()
    } else {
        ErrorKind::Other
    }
}

/// Runs a typed fetcher's `op` with the field's timeout per attempt and its retries.
pub(crate) async fn call<T, F, Fut>(spec: &FieldSpec, mut op: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let limit = spec.timeout;
    if limit.is_none() && spec.retry_attempts.unwrap_or(0) == 0 {
        // No layer: the call itself (a retry policy and its futures cost more than a
        // fetcher answering from memory).
        return op().await;
    }
    let attempt = || {
        let fut = op();
        async move {
            match limit {
                None => fut.await,
                Some(d) => tokio::time::timeout(d, fut)
                    .await
                    .unwrap_or_else(|_| Err(Failure::Source(timeout::elapsed(d)))),
            }
        }
    };
    let mut policy = retry::RetryPolicy::new(spec.retry_attempts.unwrap_or(0));
    if let Some(d) = spec.retry_backoff {
        policy.min_delay = d;
        policy.max_delay = policy.max_delay.max(d);
    }
    retry::run_single(policy, attempt, Failure::is_transient).await
}
