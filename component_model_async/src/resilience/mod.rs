//! Resilience as layers around a [`Source`]: a [`SourceLayer`] wraps a source and is a
//! source itself, and `fetch_many` passes through every layer, so a batch stays a batch
//! (one Consul transaction, one SQL query, one Redis pipeline) however many layers wrap it.
//!
//! * [`TimeoutLayer`] ([`timeout`]): each attempt of a batch gets at most the limit;
//! * [`RetryLayer`] ([`retry`]): the members of a batch that failed transiently are asked
//!   again, together, with exponential backoff and full jitter (backon's policy).
//!
//! The derive's `timeout` and `retry_attempts` attributes use these layers: the engine
//! groups a source's fields by their settings and wraps the source once per group, so
//! fields with the same settings share one batch. In code, wrap a source before
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

pub mod retry;
pub mod timeout;

use std::future::Future;
use std::sync::Arc;

pub use retry::{RetryLayer, RetrySource};
pub use timeout::{TimeoutLayer, TimeoutSource};

use crate::error::{BoxError, ComponentError, ErrorKind, SourceError};
use crate::source::{FieldSpec, Source};

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
/// }
/// ```
///
/// A layer's source should forward `location`, `native_key`, `is_sensitive`,
/// `unwraps_single_member` and `selects_field` to its inner source; the built-in layers do
/// (see [`forward_description!`](crate::forward_description)).
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
        fn watch(
            &self,
            requests: ::std::vec::Vec<$crate::FetchRequest>,
        ) -> ::core::result::Result<$crate::Changes, $crate::SourceError> {
            self.$inner.watch(requests)
        }
    };
}

/// The layers a field's attributes ask for around `source`: a timeout on each attempt
/// inside the retries.
pub(crate) fn for_field(source: Arc<dyn Source>, spec: &FieldSpec) -> Arc<dyn Source> {
    let mut source = source;
    if let Some(limit) = spec.timeout {
        source = TimeoutLayer::new(limit).layer(source);
    }
    if let Some(n) = spec.retry_attempts.filter(|n| *n > 0) {
        source = RetryLayer::new(n).layer(source);
    }
    source
}

/// The settings that decide a field's layers: fields with equal settings share a batch.
pub(crate) fn settings_of(spec: &FieldSpec) -> (Option<std::time::Duration>, u32) {
    (spec.timeout, spec.retry_attempts.unwrap_or(0))
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
    retry::run_single(
        spec.retry_attempts.unwrap_or(0),
        attempt,
        Failure::is_transient,
    )
    .await
}
