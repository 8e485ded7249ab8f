//! The concurrency limit layer: at most `max` calls of the wrapped source in flight at
//! once; one `fetch_many` (however many requests it carries) takes one permit, and the
//! others wait their turn (a `timeout` outside the limit bounds that wait too).

use std::sync::Arc;

use tokio::sync::Semaphore;

use super::SourceLayer;
use crate::error::{ErrorKind, SourceError};
use crate::source::{FetchContext, FetchRequest, RawValue, Source};

/// Keeps at most `max` calls of the wrapped source in flight. Clones of the layer, and
/// every source it wraps, share the permits.
///
/// ```
/// use component_model_async::resilience::{ConcurrencyLimitLayer, SourceExt};
/// use component_model_async::EnvSource;
///
/// let limited = EnvSource::process().with_layer(ConcurrencyLimitLayer::new(8));
/// # let _ = limited;
/// ```
#[derive(Debug, Clone)]
pub struct ConcurrencyLimitLayer {
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimitLayer {
    /// At most `max` calls at once (at least 1).
    pub fn new(max: u32) -> Self {
        ConcurrencyLimitLayer {
            permits: Arc::new(Semaphore::new(max.max(1) as usize)),
        }
    }

    pub(crate) fn sharing(permits: Arc<Semaphore>) -> Self {
        ConcurrencyLimitLayer { permits }
    }
}

impl SourceLayer for ConcurrencyLimitLayer {
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(LimitSource {
            inner,
            permits: self.permits.clone(),
        })
    }
}

/// A source with a bounded number of calls in flight (see [`ConcurrencyLimitLayer`]).
pub struct LimitSource {
    inner: Arc<dyn Source>,
    permits: Arc<Semaphore>,
}

impl LimitSource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }
}

#[async_trait::async_trait]
impl Source for LimitSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        super::one(self.fetch_many(&[request]).await)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let Ok(_permit) = self.permits.acquire().await else {
            return requests
                .iter()
                .map(|_| {
                    Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message("the concurrency limit was closed"))
                })
                .collect();
        };
        self.inner.fetch_many_in(cx, requests).await
    }

    crate::forward_description!(inner);
}
