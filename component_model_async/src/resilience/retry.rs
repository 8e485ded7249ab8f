//! The retry layer: the members of a batch that failed transiently (unavailable, timed
//! out) are asked again, together in one `fetch_many`, up to `attempts` more times, with
//! exponential backoff and full jitter (50 ms doubling, at most 2 s; backon's policy).
//! Not-found, unauthorized, decode and configuration errors are never retried.
//!
//! The loop ([`RetrySource`]) is apart from the policy ([`RetryPolicy`]): which errors
//! are worth another try, and how long to wait before it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::SourceLayer;
use crate::error::SourceError;
use crate::source::{FetchContext, FetchRequest, RawValue, Source};

/// Which failures are retried and how long to wait between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub attempts: u32,
    /// The first wait; each next one doubles (before jitter).
    pub min_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `attempts` retries, waiting 50 ms doubling up to 2 s, with full jitter.
    pub fn new(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }

    /// Whether `error` is worth another try.
    pub fn retries(&self, error: &SourceError) -> bool {
        error.kind().is_transient()
    }

    /// The waits before each retry.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts as usize)
            .with_jitter()
            .build()
    }
}

/// Retries the transient failures of every batch (see the module docs).
///
/// ```
/// use component_model_async::resilience::{RetryLayer, SourceExt};
/// use component_model_async::EnvSource;
///
/// let patient = EnvSource::process().with_layer(RetryLayer::new(3));
/// # let _ = patient;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RetryLayer {
    policy: RetryPolicy,
}

impl RetryLayer {
    /// `attempts` retries with the default backoff.
    pub fn new(attempts: u32) -> Self {
        RetryLayer {
            policy: RetryPolicy::new(attempts),
        }
    }

    /// A layer with this policy.
    pub fn with_policy(policy: RetryPolicy) -> Self {
        RetryLayer { policy }
    }

    /// Waits `first` before the first retry, doubling after (capped at 2 s, or `first`
    /// when that is larger).
    #[must_use]
    pub fn backoff(mut self, first: Duration) -> Self {
        self.policy.min_delay = first;
        self.policy.max_delay = self.policy.max_delay.max(first);
        self
    }
}

impl SourceLayer for RetryLayer {
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(RetrySource {
            inner,
            policy: self.policy,
        })
    }
}

/// A source whose transient failures are retried (see [`RetryLayer`]).
pub struct RetrySource {
    inner: Arc<dyn Source>,
    policy: RetryPolicy,
}

impl RetrySource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl Source for RetrySource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        super::one(self.fetch_many(&[request]).await)
    }

    /// One `fetch_many` of the whole batch, then one per retry of only the members that
    /// failed transiently; no retry whose wait would end past the fetch's deadline.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let mut answers = self.inner.fetch_many_in(cx, requests).await;
        let mut delays = self.policy.delays();
        loop {
            let failed: Vec<usize> = answers
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Err(e) if self.policy.retries(e)))
                .map(|(i, _)| i)
                .collect();
            if failed.is_empty() {
                break;
            }
            let Some(delay) = delays.next() else { break };
            if cx.remaining().is_some_and(|left| left <= delay) {
                break; // the answer could not come in time: say the failure now
            }
            tracing::debug!(
                failed = failed.len(),
                retry_in_ms = delay.as_millis() as u64,
                "retrying components"
            );
            tokio::time::sleep(delay).await;
            let again: Vec<&FetchRequest> = failed.iter().map(|&i| requests[i]).collect();
            for r in &again {
                cx.note(r, |n| n.retries += 1);
            }
            for (i, answer) in failed
                .into_iter()
                .zip(self.inner.fetch_many_in(cx, &again).await)
            {
                answers[i] = answer;
            }
        }
        answers
    }

    crate::forward_description!(inner);
}

/// The same loop for one operation that is not a source (a typed fetcher).
pub(crate) async fn run_single<T, E, F, Fut>(
    policy: RetryPolicy,
    mut op: F,
    retries: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = policy.delays();
    loop {
        match op().await {
            Err(e) if retries(&e) => match delays.next() {
                Some(delay) => {
                    tracing::debug!(
                        retry_in_ms = delay.as_millis() as u64,
                        "retrying component fetch"
                    );
                    tokio::time::sleep(delay).await;
                }
                None => return Err(e),
            },
            other => return other,
        }
    }
}

/// How long a watch waits before reconnecting after `attempt` failures in a row (0 for the
/// first retry): `first` doubling, at most 30 s, plus up to half of `first` of jitter so
/// that the instances of a fleet do not reconnect in step.
pub(crate) fn reconnect_delay(first: Duration, attempt: u32) -> Duration {
    let base = first
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(30));
    let half = u64::try_from(first.as_millis() / 2)
        .unwrap_or(u64::MAX)
        .max(1);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_millis()))
        % half;
    base + Duration::from_millis(jitter)
}
