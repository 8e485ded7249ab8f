//! The retry layer: transient failures (unavailable, timeout, a user's fetcher error) are
//! tried again up to `retry_attempts` more times, with exponential backoff and jitter
//! (50 ms doubling, at most 2 s between attempts), using `backon`.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::Failure;

pub(crate) struct RetryLayer {
    extra_attempts: u32,
}

impl RetryLayer {
    pub(crate) fn new(extra_attempts: u32) -> Self {
        RetryLayer { extra_attempts }
    }

    pub(crate) async fn run<T, F, Fut>(self, mut op: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        if self.extra_attempts == 0 {
            return op().await;
        }
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.extra_attempts as usize)
            .with_jitter();
        (|| op())
            .retry(policy)
            .when(Failure::is_transient)
            .notify(|err: &Failure, after: Duration| {
                tracing::debug!(kind = %err.kind(), retry_in_ms = after.as_millis() as u64, "retrying component fetch");
            })
            .await
    }
}
