//! The timeout layer: each attempt of a fetch gets at most the field's `timeout`.

use std::future::Future;
use std::time::Duration;

use super::Failure;
use crate::error::{ErrorKind, SourceError};

/// Bounds each attempt; `None` leaves it unbounded (the struct-level timeout still applies).
pub(crate) struct TimeoutLayer {
    limit: Option<Duration>,
}

impl TimeoutLayer {
    pub(crate) fn new(limit: Option<Duration>) -> Self {
        TimeoutLayer { limit }
    }

    /// Wraps `op` so every future it makes is bounded by the limit.
    pub(crate) fn wrap<T, F, Fut>(
        self,
        mut op: F,
    ) -> impl FnMut() -> std::pin::Pin<Box<dyn Future<Output = Result<T, Failure>> + Send>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
        T: 'static,
    {
        let limit = self.limit;
        move || {
            let fut = op();
            Box::pin(async move {
                match limit {
                    None => fut.await,
                    Some(d) => match tokio::time::timeout(d, fut).await {
                        Ok(r) => r,
                        Err(_) => Err(Failure::Source(
                            SourceError::new(ErrorKind::Timeout)
                                .with_message(format!("no answer within {d:?}")),
                        )),
                    },
                }
            })
        }
    }
}
