//! Retry and timeout for any [`ComponentFetcher`], standalone: kompoz's `AsyncRetry` and
//! symphra's `async_timeout`, for a fetcher used on its own or registered in
//! [`Sources`](crate::Sources). Both fail with a [`BoxError`], so they nest either way
//! (`AsyncRetry::new(WithTimeout::new(f, limit), 3, backoff)` gives each attempt `limit`).

use std::time::Duration;

use super::retry::{RetryPolicy, run_single};
use crate::error::BoxError;
use crate::fetcher::ComponentFetcher;

/// Retries a fetcher's transient failures with exponential backoff and full jitter.
///
/// `max_attempts` counts every call, the first included (kompoz's `max_attempts`); the
/// first wait is `backoff`, doubling up to 30 s. A failure is retried when it is transient
/// ([`ErrorKind::is_transient`](crate::ErrorKind::is_transient)) or is the fetcher's own
/// error (not one of this crate's), which may well succeed next time.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use component_model_async::resilience::AsyncRetry;
/// use component_model_async::{async_trait, ComponentFetcher};
///
/// struct Flaky(AtomicU32);
/// #[async_trait]
/// impl ComponentFetcher<u16> for Flaky {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<u16, Self::Error> {
///         match self.0.fetch_add(1, Ordering::SeqCst) {
///             0 | 1 => Err(std::io::Error::other("connection reset")),
///             _ => Ok(8080),
///         }
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let resilient = AsyncRetry::new(Flaky(AtomicU32::new(0)), 3, Duration::from_millis(1));
/// assert_eq!(resilient.fetch_component().await.unwrap(), 8080);
/// assert_eq!(resilient.get_ref().0.load(Ordering::SeqCst), 3);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct AsyncRetry<F> {
    fetcher: F,
    policy: RetryPolicy,
}

impl<F> AsyncRetry<F> {
    /// At most `max_attempts` calls of `fetcher` (at least one), waiting `backoff`, then
    /// twice as long, and so on (with jitter), between them.
    pub fn new(fetcher: F, max_attempts: u32, backoff: Duration) -> Self {
        let mut policy = RetryPolicy::new(max_attempts.saturating_sub(1));
        policy.min_delay = backoff;
        policy.max_delay = Duration::from_secs(30).max(backoff);
        AsyncRetry { fetcher, policy }
    }

    /// The longest wait between attempts (default 30 s).
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.policy.max_delay = max.max(self.policy.min_delay);
        self
    }

    /// The wrapped fetcher.
    pub fn get_ref(&self) -> &F {
        &self.fetcher
    }
}

#[async_trait::async_trait]
impl<T, F> ComponentFetcher<T> for AsyncRetry<F>
where
    T: Send,
    F: ComponentFetcher<T> + Send + Sync,
    F::Error: Into<BoxError>,
{
    type Error = BoxError;

    async fn fetch_component(&self) -> Result<T, BoxError> {
        let calls = std::sync::atomic::AtomicU32::new(0);
        let retried = |e: &BoxError| {
            let kind = super::kind_of(e.as_ref());
            kind == crate::ErrorKind::Other || kind.is_transient()
        };
        run_single(
            self.policy,
            || async {
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.fetcher.fetch_component().await.map_err(Into::into)
            },
            retried,
        )
        .await
        .map_err(|e| {
            let n = calls.load(std::sync::atomic::Ordering::Relaxed);
            match n {
                // Not retried (one call, or an error never retried): as it is.
                0 | 1 => e,
                _ => Box::new(
                    crate::SourceError::new(super::kind_of(e.as_ref()))
                        .with_message(format!("gave up after {n} attempts: {e}"))
                        .with_cause(e),
                ) as BoxError,
            }
        })
    }
}

/// Bounds a fetcher's call: past `limit` it fails with a timeout
/// ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)).
///
/// ```
/// use std::time::Duration;
/// use component_model_async::resilience::WithTimeout;
/// use component_model_async::{async_trait, ComponentFetcher, ErrorKind, SourceError};
///
/// struct Slow;
/// #[async_trait]
/// impl ComponentFetcher<u16> for Slow {
///     type Error = std::io::Error;
///     async fn fetch_component(&self) -> Result<u16, Self::Error> {
///         tokio::time::sleep(Duration::from_secs(5)).await;
///         Ok(8080)
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let bounded = WithTimeout::new(Slow, Duration::from_millis(20));
/// let err = bounded.fetch_component().await.unwrap_err();
/// assert_eq!(err.downcast_ref::<SourceError>().unwrap().kind(), ErrorKind::Timeout);
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct WithTimeout<F> {
    fetcher: F,
    limit: Duration,
}

impl<F> WithTimeout<F> {
    /// Each call of `fetcher` gets at most `limit`.
    pub fn new(fetcher: F, limit: Duration) -> Self {
        WithTimeout { fetcher, limit }
    }

    /// The wrapped fetcher.
    pub fn get_ref(&self) -> &F {
        &self.fetcher
    }
}

#[async_trait::async_trait]
impl<T, F> ComponentFetcher<T> for WithTimeout<F>
where
    T: Send,
    F: ComponentFetcher<T> + Send + Sync,
    F::Error: Into<BoxError>,
{
    type Error = BoxError;

    async fn fetch_component(&self) -> Result<T, BoxError> {
        match tokio::time::timeout(self.limit, self.fetcher.fetch_component()).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(Box::new(super::timeout::elapsed(self.limit))),
        }
    }
}
