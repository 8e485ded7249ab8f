//! The circuit breaker layer: after `failure_threshold` failed calls in a row the circuit
//! opens and every request fails at once with [`ErrorKind::CircuitOpen`]; after
//! `open_for`, one call is let through as a probe (the others still fail fast), and its
//! outcome closes the circuit or opens it again.
//!
//! One `fetch_many` is one outcome, however many requests it carries: it failed when every
//! answer is a transient error (the server could not be reached or timed out); a not-found
//! or a decode error is the server answering, so it counts as a success.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::SourceLayer;
use crate::error::{ErrorKind, SourceError};
use crate::source::{FetchContext, FetchRequest, RawValue, Source};

/// Failed calls in a row that open the circuit, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;

/// How long an open circuit fails fast before a probe, by default.
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(30);

/// Opens a circuit around the wrapped source when it keeps failing (see the
/// [module](self)). Clones of the layer, and every source it wraps, share one circuit.
///
/// ```
/// use std::time::Duration;
/// use component_model_async::resilience::{CircuitBreakerLayer, SourceExt};
/// use component_model_async::EnvSource;
///
/// let guarded = EnvSource::process().with_layer(
///     CircuitBreakerLayer::new().failure_threshold(3).open_for(Duration::from_secs(10)),
/// );
/// # let _ = guarded;
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer {
    state: Arc<BreakerState>,
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerLayer {
    /// A breaker with [`DEFAULT_FAILURE_THRESHOLD`] and [`DEFAULT_OPEN_FOR`].
    pub fn new() -> Self {
        CircuitBreakerLayer {
            state: Arc::new(BreakerState::new(
                DEFAULT_FAILURE_THRESHOLD,
                DEFAULT_OPEN_FOR,
            )),
        }
    }

    /// Opens after `n` failed calls in a row (at least 1).
    #[must_use]
    pub fn failure_threshold(self, n: u32) -> Self {
        CircuitBreakerLayer {
            state: Arc::new(BreakerState::new(n.max(1), self.state.open_for)),
        }
    }

    /// Stays open for `d` before letting a probe through.
    #[must_use]
    pub fn open_for(self, d: Duration) -> Self {
        CircuitBreakerLayer {
            state: Arc::new(BreakerState::new(self.state.threshold, d)),
        }
    }

    /// Whether the circuit is open now (failing fast).
    pub fn is_open(&self) -> bool {
        matches!(self.state.phase(), Phase::Open { .. } | Phase::HalfOpen)
    }

    pub(crate) fn sharing(state: Arc<BreakerState>) -> Self {
        CircuitBreakerLayer { state }
    }
}

impl SourceLayer for CircuitBreakerLayer {
    fn layer(&self, inner: Arc<dyn Source>) -> Arc<dyn Source> {
        Arc::new(BreakerSource {
            inner,
            state: self.state.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        failures: u32,
    },
    /// A probe is in flight; everything else fails fast.
    HalfOpen,
}

/// One circuit: shared by every batch and task that reaches one server.
#[derive(Debug)]
pub(crate) struct BreakerState {
    phase: Mutex<Phase>,
    threshold: u32,
    open_for: Duration,
}

enum Admit {
    Call,
    Probe,
    Reject { failures: u32, retry_in: Duration },
}

impl BreakerState {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        BreakerState {
            phase: Mutex::new(Phase::Closed { failures: 0 }),
            threshold,
            open_for,
        }
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(&self) -> Admit {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match *phase {
            Phase::Closed { .. } => Admit::Call,
            Phase::Open { until, failures } => {
                let now = Instant::now();
                if now >= until {
                    *phase = Phase::HalfOpen;
                    Admit::Probe
                } else {
                    Admit::Reject {
                        failures,
                        retry_in: until - now,
                    }
                }
            }
            Phase::HalfOpen => Admit::Reject {
                failures: self.threshold,
                retry_in: Duration::ZERO,
            },
        }
    }

    fn record(&self, failed: bool, probe: bool) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let failures = match *phase {
            Phase::Closed { failures } | Phase::Open { failures, .. } => failures,
            Phase::HalfOpen => self.threshold,
        };
        *phase = if !failed {
            Phase::Closed { failures: 0 }
        } else if probe || failures + 1 >= self.threshold {
            let failures = if probe { failures } else { failures + 1 };
            tracing::warn!(
                failures,
                open_for_ms = self.open_for.as_millis() as u64,
                "circuit opened: requests to this source fail fast until a probe succeeds"
            );
            Phase::Open {
                until: Instant::now() + self.open_for,
                failures,
            }
        } else {
            Phase::Closed {
                failures: failures + 1,
            }
        };
    }
}

/// Puts a half-open circuit back to open when its probe is dropped unfinished, so a
/// cancelled probe never leaves the circuit failing fast for ever.
struct ProbeGuard<'a> {
    state: &'a BreakerState,
    done: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut phase = self
                .state
                .phase
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if matches!(*phase, Phase::HalfOpen) {
                *phase = Phase::Open {
                    until: Instant::now(),
                    failures: self.state.threshold,
                };
            }
        }
    }
}

/// A source behind a circuit breaker (see [`CircuitBreakerLayer`]).
pub struct BreakerSource {
    inner: Arc<dyn Source>,
    state: Arc<BreakerState>,
}

impl BreakerSource {
    /// The wrapped source.
    pub fn get_ref(&self) -> &Arc<dyn Source> {
        &self.inner
    }
}

/// The error of a request refused by an open circuit.
fn open(failures: u32, retry_in: Duration) -> SourceError {
    let when = if retry_in.is_zero() {
        "a probe is in flight".to_owned()
    } else {
        format!("next probe in {:.1}s", retry_in.as_secs_f64())
    };
    SourceError::new(ErrorKind::CircuitOpen).with_message(format!(
        "not sent: the circuit is open after {failures} failed calls in a row ({when})"
    ))
}

#[async_trait::async_trait]
impl Source for BreakerSource {
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
        let probe = match self.state.admit() {
            Admit::Reject { failures, retry_in } => {
                return requests
                    .iter()
                    .map(|_| Err(open(failures, retry_in)))
                    .collect();
            }
            Admit::Call => false,
            Admit::Probe => true,
        };
        let mut guard = ProbeGuard {
            state: &self.state,
            done: !probe,
        };
        let answers = self.inner.fetch_many_in(cx, requests).await;
        let failed = !answers.is_empty()
            && answers
                .iter()
                .all(|a| matches!(a, Err(e) if e.kind().is_transient()));
        guard.done = true;
        self.state.record(failed, probe);
        answers
    }

    crate::forward_description!(inner);
}
