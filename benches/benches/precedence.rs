//! Precedence sources fetched concurrently (issue 31):
//!
//! * `precedence_50ms/fetch_16x3`: 16 fields, each with an override source above its own
//!   and a defaults source below it; every source answers a batch in one 50 ms round trip
//!   (as Consul, Redis or a database do: one request for all of its keys).
//! * `precedence_50ms/one_round_trip`: one such round trip for one key (the baseline).
//!
//! Goal: `fetch_16x3 / one_round_trip <= 1.10`: the three sources are asked at once, not
//! one after another (that would be 3x). Ratios: `python3 scripts/bench_ratios.py`.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use component_model::{
    AsyncAssign, FetchRequest, RawValue, Source, SourceError, Sources, async_trait,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// A store answering every batch in one round trip of `latency`.
struct RoundTrip {
    data: HashMap<String, String>,
    latency: Duration,
}

impl RoundTrip {
    /// `k<i>` for each `i` in `keys`.
    fn with(keys: impl IntoIterator<Item = usize>, latency: Duration) -> Self {
        let data = keys
            .into_iter()
            .map(|i| (format!("k{i}"), format!("{}", 1000 + i)))
            .collect();
        RoundTrip { data, latency }
    }
}

#[async_trait]
impl Source for RoundTrip {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::not_found()))
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        tokio::time::sleep(self.latency).await;
        requests
            .iter()
            .map(|r| {
                let key = r.key().unwrap_or_default();
                self.data
                    .get(key)
                    .map(|v| RawValue::Text(v.clone()))
                    .ok_or_else(SourceError::not_found)
            })
            .collect()
    }
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["over"], defaults = ["defaults"])]
#[allow(dead_code)] // the values are only produced, through black_box
struct Layered {
    #[component(fetch_from = "main")]
    k0: u32,
    #[component(fetch_from = "main")]
    k1: u32,
    #[component(fetch_from = "main")]
    k2: u32,
    #[component(fetch_from = "main")]
    k3: u32,
    #[component(fetch_from = "main")]
    k4: u32,
    #[component(fetch_from = "main")]
    k5: u32,
    #[component(fetch_from = "main")]
    k6: u32,
    #[component(fetch_from = "main")]
    k7: u32,
    #[component(fetch_from = "main")]
    k8: u32,
    #[component(fetch_from = "main")]
    k9: u32,
    #[component(fetch_from = "main")]
    k10: u32,
    #[component(fetch_from = "main")]
    k11: u32,
    #[component(fetch_from = "main")]
    k12: u32,
    #[component(fetch_from = "main")]
    k13: u32,
    #[component(fetch_from = "main")]
    k14: u32,
    #[component(fetch_from = "main")]
    k15: u32,
}

fn precedence(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latency = Duration::from_millis(50);
    // Overrides for 4 fields, the fields' own source for 12, defaults for all 16.
    let sources = Sources::new()
        .register("over", RoundTrip::with(0..4, latency))
        .register("main", RoundTrip::with(0..12, latency))
        .register("defaults", RoundTrip::with(0..16, latency));
    let single = RoundTrip::with(0..16, latency);
    let one = FetchRequest::for_key("single", "k0");
    let mut g = c.benchmark_group("precedence_50ms");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("fetch_16x3", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                Layered::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("one_round_trip", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(single.fetch(&one).await) })
    });
    g.finish();
}

criterion_group!(benches, precedence);
criterion_main!(benches);
