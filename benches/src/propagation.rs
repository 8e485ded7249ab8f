//! What the propagation benchmarks (`live`, `streams`) share: the write → `changes()`
//! loop, percentiles, and the report line against a baseline measured in the same run.

use std::time::{Duration, Instant};

use component_model::{ConfigUpdate, Live};
use futures::StreamExt;

/// How many changes each row measures.
pub const CHANGES: usize = 200;
/// The `Live`'s quiescence window in these runs (its maximum is four times that).
pub const QUIET: Duration = Duration::from_millis(5);

/// The 50th and 99th percentiles of `samples` (not empty).
pub fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99))
}

/// Prints one row: the baseline (`base_label`: "raw", "bare") and the `Live`, and
/// whether live p99 ≤ baseline p99 + [`QUIET`] + 5 ms.
pub fn report(name: &str, base_label: &str, base: Vec<Duration>, live: Vec<Duration>) {
    let (b50, b99) = percentiles(base);
    let (l50, l99) = percentiles(live);
    let goal = b99 + QUIET + Duration::from_millis(5);
    println!(
        "{name:<12} {base_label} p50 {:>7.2} ms p99 {:>7.2} ms | live p50 {:>7.2} ms p99 {:>7.2} ms | goal p99 <= {:.2} ms: {}",
        b50.as_secs_f64() * 1e3,
        b99.as_secs_f64() * 1e3,
        l50.as_secs_f64() * 1e3,
        l99.as_secs_f64() * 1e3,
        goal.as_secs_f64() * 1e3,
        if l99 <= goal { "met" } else { "NOT met" }
    );
}

/// Write → `changes()` item, [`CHANGES`] times, after `settle` (for the watch to be in
/// place); each write waits for its applied update.
pub async fn live_latency<T: Send + Sync + 'static>(
    live: &Live<T>,
    settle: Duration,
    mut write: impl FnMut(u64),
) -> Vec<Duration> {
    let mut updates = live.changes();
    tokio::time::sleep(settle).await;
    let mut out = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES as u64 {
        let started = Instant::now();
        write(1_000 + i);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), updates.next()).await {
                Ok(Some(ConfigUpdate::Applied { .. })) => break,
                Ok(Some(_)) => continue,
                _ => panic!("no update for change {i}"),
            }
        }
        out.push(started.elapsed());
    }
    out
}
