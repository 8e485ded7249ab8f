//! Metrics per source, through the [`metrics`](https://docs.rs/metrics) facade (cargo
//! feature `metrics`, off by default): whatever recorder the application installed
//! (Prometheus, StatsD, OpenTelemetry's bridge, ...) receives them; without the feature
//! every call here compiles to nothing.
//!
//! Why `metrics` rather than OpenTelemetry's API: it is a facade in the manner of `log`
//! and `tracing` — one small dependency, no exporter, no global runtime — and exporters
//! exist for every backend, OpenTelemetry's included. A library should not choose them.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `component_model_requests_total` | counter | `source` | field reads asked of a source (a value fetched by a `fetcher` counts under its field's source name) |
//! | `component_model_round_trips_total` | counter | `source` | network round trips a backend made for them: HTTP requests (`http`, `consul`, `vault`), Redis pipelines, SQL queries |
//! | `component_model_errors_total` | counter | `source`, `kind` | failed reads by [`ErrorKind`] (`not_found`, `unavailable`, `unauthorized`, `timeout`, ...) |
//! | `component_model_cache_hits_total` | counter | `source` | reads answered by the in-process cache of a `cache_for`/`ttl` field |
//! | `component_model_cache_misses_total` | counter | `source` | reads the in-process cache passed on (to the shared tier, if any, else the source) |
//! | `component_model_shared_cache_hits_total` | counter | `source` | of those, reads the shared tier ([`Sources::with_shared_cache`](crate::Sources::with_shared_cache)) answered |
//! | `component_model_fetch_duration_seconds` | histogram | `source` | how long each call of a source took (one batch of reads) |
//!
//! `source` is the name a field gives in `fetch_from` (or `fallback_to`), as registered in
//! [`Sources`](crate::Sources). Keys and values are never labels (unbounded, and possibly
//! secret).
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! use component_model_async::{AsyncAssign, EnvSource, Sources};
//! use metrics_util::debugging::DebuggingRecorder;
//!
//! #[derive(AsyncAssign, Debug)]
//! struct App {
//!     #[component(fetch_from = "env")]
//!     port: u16,
//! }
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//!         let sources = Sources::new().with_env(EnvSource::from_map([("PORT", "8080")]));
//!         App::fetch_all_components_with(&sources).await.unwrap();
//!     })
//! });
//! let names: Vec<String> = snapshotter.snapshot().into_vec().iter()
//!     .map(|(key, ..)| key.key().name().to_owned()).collect();
//! assert!(names.iter().any(|n| n == "component_model_requests_total"));
//! # }
//! ```
//!
//! [`ErrorKind`]: crate::ErrorKind

use std::future::Future;
use std::time::Duration;

use crate::error::ErrorKind;

/// Whether metrics are recorded (the `metrics` feature): the engine then times every call.
pub(crate) const ENABLED: bool = cfg!(feature = "metrics");

#[cfg(feature = "metrics")]
tokio::task_local! {
    /// The source a batch is being fetched from, for the backends' round trips.
    static SOURCE: &'static str;
}

/// Runs `fut` (a call of source `name`) so that the round trips inside it count for `name`.
#[cfg(feature = "metrics")]
pub(crate) fn scope<F: Future>(name: &'static str, fut: F) -> impl Future<Output = F::Output> {
    SOURCE.scope(name, fut)
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn scope<F: Future>(_: &'static str, fut: F) -> F {
    fut
}

/// `n` reads asked of `source`, answered in `elapsed`.
#[inline]
pub(crate) fn call(source: &'static str, n: usize, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("component_model_requests_total", "source" => source).increment(n as u64);
        metrics::histogram!("component_model_fetch_duration_seconds", "source" => source)
            .record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (source, n, elapsed);
}

/// A read of `source` failed with `kind`.
#[inline]
pub(crate) fn error(source: &'static str, kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    metrics::counter!("component_model_errors_total", "source" => source, "kind" => label(kind))
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (source, kind);
}

/// One network round trip of the source whose call is running (none outside a call).
#[cfg_attr(
    not(any(
        feature = "http",
        feature = "consul",
        feature = "etcd",
        feature = "aws",
        feature = "azure",
        feature = "gcp",
        feature = "vault",
        feature = "redis",
        feature = "nats",
        feature = "postgres",
        feature = "mysql",
        feature = "sqlite"
    )),
    allow(dead_code)
)]
#[inline]
pub(crate) fn round_trip() {
    #[cfg(feature = "metrics")]
    if let Ok(source) = SOURCE.try_with(|s| *s) {
        metrics::counter!("component_model_round_trips_total", "source" => source).increment(1);
    }
}

/// A cache lookup for a read of `source` (the request's source name): a hit or a miss.
#[inline]
pub(crate) fn cache(source: &str, hit: bool) {
    #[cfg(feature = "metrics")]
    {
        let source = source.to_owned();
        if hit {
            metrics::counter!("component_model_cache_hits_total", "source" => source).increment(1);
        } else {
            metrics::counter!("component_model_cache_misses_total", "source" => source)
                .increment(1);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (source, hit);
}

/// A read the shared cache tier answered.
#[inline]
pub(crate) fn shared_cache_hit(source: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("component_model_shared_cache_hits_total", "source" => source.to_owned())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = source;
}

/// `fut`, to be spawned, carrying the current call's source (round trips made by a
/// cache's flight task count for it).
#[cfg(feature = "metrics")]
pub(crate) fn carrying<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    let source = SOURCE.try_with(|s| *s).ok();
    async move {
        match source {
            Some(name) => SOURCE.scope(name, fut).await,
            None => fut.await,
        }
    }
}

#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn carrying<F: Future>(fut: F) -> F {
    fut
}

/// The `kind` label: the error kind in snake case.
#[cfg(feature = "metrics")]
fn label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::Decode => "decode",
        ErrorKind::Timeout => "timeout",
        ErrorKind::CircuitOpen => "circuit_open",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::Config => "config",
        ErrorKind::Multiple => "multiple",
        ErrorKind::Other => "other",
        ErrorKind::Invalid => "invalid",
        ErrorKind::NotFetched => "not_fetched",
    }
}
