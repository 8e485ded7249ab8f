//! Per-field resilience layers: a timeout on each attempt ([`timeout`]) and retries with
//! exponential backoff and jitter for transient failures ([`retry`]).
//!
//! A field with `timeout` or `retry_attempts` is fetched on its own, wrapped in these
//! layers, rather than in its source's batch.

pub(crate) mod retry;
pub(crate) mod timeout;

use std::future::Future;

use crate::error::{BoxError, ComponentError, ErrorKind, SourceError};
use crate::source::FieldSpec;

/// Why one attempt failed, before the field's provenance is attached.
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

    pub(crate) fn is_transient(&self) -> bool {
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

/// Runs `op` with the field's timeout and retries.
pub(crate) async fn call<T, F, Fut>(spec: &FieldSpec, op: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>> + Send + 'static,
    T: 'static,
{
    let timed = timeout::TimeoutLayer::new(spec.timeout).wrap(op);
    retry::RetryLayer::new(spec.retry_attempts.unwrap_or(0))
        .run(timed)
        .await
}
