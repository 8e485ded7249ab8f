//! The timeout layer: each attempt of a batch gets at most the limit; members not answered
//! by then fail with [`ErrorKind::Timeout`](crate::ErrorKind).

use std::sync::Arc;
use std::time::Duration;

use super::SourceLayer;
use crate::error::{ErrorKind, SourceError};
use crate::source::{FetchContext, FetchRequest, RawValue, Source};

/// Bounds each `fetch`/`fetch_many` of the wrapped source by `limit`.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::resilience::{SourceExt, TimeoutLayer};
/// use component_model_async::EnvSource;
///
/// let bounded = EnvSource::process().with_layer(TimeoutLayer::new(Duration::from_secs(2)));
/// # let _ = bounded;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// A layer bounding each attempt by `limit`.
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer { limit }
    }
}

impl SourceLayer for TimeoutLayer {
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(TimeoutSource {
            inner,
            limit: self.limit,
        })
    }
}

/// A source whose answers come within a time limit (see [`TimeoutLayer`]).
pub struct TimeoutSource {
    inner: Arc<dyn Source>,
    limit: Duration,
}

impl TimeoutSource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }
}

/// The error of a request that had no answer within `limit`.
pub(crate) fn elapsed(limit: Duration) -> SourceError {
    SourceError::new(ErrorKind::Timeout).with_message(format!("no answer within {limit:?}"))
}

#[async_trait::async_trait]
impl Source for TimeoutSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        tokio::time::timeout(self.limit, self.inner.fetch(request))
            .await
            .unwrap_or_else(|_| Err(elapsed(self.limit)))
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        match tokio::time::timeout(self.limit, self.inner.fetch_many_in(cx, requests)).await {
            Ok(answers) => answers,
            Err(_) => requests.iter().map(|_| Err(elapsed(self.limit))).collect(),
        }
    }

    crate::forward_description!(inner);
}
