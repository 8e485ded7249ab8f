//! Fields that reference other fields (issue 33):
//!
//! * `dependent_50ms/chain_2_plus_14`: a chain of two fields (`b`'s key is made of `a`'s
//!   value) and 14 fields that reference nothing; every answer takes one 50 ms round trip.
//! * `dependent_50ms/two_round_trips`: two such round trips one after the other (the
//!   baseline: the chain alone, with no engine around it).
//!
//! Goal: `chain_2_plus_14 / two_round_trips <= 1.10`: the fetch costs its longest chain of
//! references, the 14 others are fetched alongside the chain's first field, and the second
//! field starts as soon as the first is converted. Ratios: `python3 scripts/bench_ratios.py`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use component_model::{
    AsyncAssign, FetchRequest, RawValue, Source, SourceError, Sources, async_trait,
};
use criterion::{Criterion, criterion_group, criterion_main};

/// Answers every batch after one round trip of `latency`: `a` is `x`, `b/x` is `2`,
/// every other key its own length.
struct RoundTrip {
    latency: Duration,
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
            .map(|r| match r.key() {
                Some("a") => Ok(RawValue::Text("x".into())),
                Some("b/x") => Ok(RawValue::Text("2".into())),
                Some(k) => Ok(RawValue::Text(k.len().to_string())),
                None => Err(SourceError::not_found()),
            })
            .collect()
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct Chained {
    #[component(fetch_from = "kv", key = "a")]
    a: String,
    #[component(fetch_from = "kv", key = "b/{a}")]
    b: u32,
    #[component(fetch_from = "kv", key = "k0")]
    k0: u32,
    #[component(fetch_from = "kv", key = "k1")]
    k1: u32,
    #[component(fetch_from = "kv", key = "k2")]
    k2: u32,
    #[component(fetch_from = "kv", key = "k3")]
    k3: u32,
    #[component(fetch_from = "kv", key = "k4")]
    k4: u32,
    #[component(fetch_from = "kv", key = "k5")]
    k5: u32,
    #[component(fetch_from = "kv", key = "k6")]
    k6: u32,
    #[component(fetch_from = "kv", key = "k7")]
    k7: u32,
    #[component(fetch_from = "kv", key = "k8")]
    k8: u32,
    #[component(fetch_from = "kv", key = "k9")]
    k9: u32,
    #[component(fetch_from = "kv", key = "k10")]
    k10: u32,
    #[component(fetch_from = "kv", key = "k11")]
    k11: u32,
    #[component(fetch_from = "kv", key = "k12")]
    k12: u32,
    #[component(fetch_from = "kv", key = "k13")]
    k13: u32,
}

fn dependent(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let latency = Duration::from_millis(50);
    let sources = Sources::new().register("kv", RoundTrip { latency });
    let single = RoundTrip { latency };
    let (first, second) = (
        FetchRequest::for_key("kv", "a"),
        FetchRequest::for_key("kv", "b/x"),
    );
    let mut g = c.benchmark_group("dependent_50ms");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("chain_2_plus_14", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                Chained::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("two_round_trips", |b| {
        b.to_async(&rt).iter(|| async {
            let a = single.fetch(&first).await;
            black_box((a, single.fetch(&second).await))
        })
    });
    g.finish();
}

criterion_group!(benches, dependent);
criterion_main!(benches);
