//! The cache layer's hit path, against a baseline measured in the same run:
//!
//! * `cache_hit_16/generated`: a 16-field struct whose fields all have `cache_for = "1h"`,
//!   every value in the cache, `fetch_all_components_with`;
//! * `cache_hit_16/moka_gets`: 16 bare `moka::sync::Cache::get` of the same keys plus the
//!   16 conversions into the field types (`str::parse`), what a hand-written cache costs.
//!
//! Ratios: `python3 scripts/bench_ratios.py` after `cargo bench -p component_model_benches`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use component_model::{AsyncAssign, Sources};
use component_model_benches::MemorySource;
use criterion::{Criterion, criterion_group, criterion_main};

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct CachedSixteen {
    #[component(fetch_from = "mem", key = "k0", cache_for = "1h")]
    f0: u16,
    #[component(fetch_from = "mem", key = "k1", cache_for = "1h")]
    f1: u32,
    #[component(fetch_from = "mem", key = "k2", cache_for = "1h")]
    f2: String,
    #[component(fetch_from = "mem", key = "k3", cache_for = "1h")]
    f3: bool,
    #[component(fetch_from = "mem", key = "k4", cache_for = "1h")]
    f4: u16,
    #[component(fetch_from = "mem", key = "k5", cache_for = "1h")]
    f5: u64,
    #[component(fetch_from = "mem", key = "k6", cache_for = "1h")]
    f6: String,
    #[component(fetch_from = "mem", key = "k7", cache_for = "1h")]
    f7: bool,
    #[component(fetch_from = "mem", key = "k8", cache_for = "1h")]
    f8: u16,
    #[component(fetch_from = "mem", key = "k9", cache_for = "1h")]
    f9: i32,
    #[component(fetch_from = "mem", key = "k10", cache_for = "1h")]
    f10: String,
    #[component(fetch_from = "mem", key = "k11", cache_for = "1h")]
    f11: bool,
    #[component(fetch_from = "mem", key = "k12", cache_for = "1h")]
    f12: u16,
    #[component(fetch_from = "mem", key = "k13", cache_for = "1h")]
    f13: i64,
    #[component(fetch_from = "mem", key = "k14", cache_for = "1h")]
    f14: String,
    #[component(fetch_from = "mem", key = "k15", cache_for = "1h")]
    f15: bool,
}

/// The baseline: the same 16 values from a moka cache, converted by hand.
fn by_hand(cache: &moka::sync::Cache<String, Arc<String>>, keys: &[String; 16]) -> CachedSixteen {
    let got: Vec<Arc<String>> = keys
        .iter()
        .map(|k| cache.get(k).unwrap_or_default())
        .collect();
    let v = |i: usize| got[i].as_str();
    CachedSixteen {
        f0: v(0).parse().unwrap_or_default(),
        f1: v(1).parse().unwrap_or_default(),
        f2: v(2).to_string(),
        f3: v(3).parse().unwrap_or_default(),
        f4: v(4).parse().unwrap_or_default(),
        f5: v(5).parse().unwrap_or_default(),
        f6: v(6).to_string(),
        f7: v(7).parse().unwrap_or_default(),
        f8: v(8).parse().unwrap_or_default(),
        f9: v(9).parse().unwrap_or_default(),
        f10: v(10).to_string(),
        f11: v(11).parse().unwrap_or_default(),
        f12: v(12).parse().unwrap_or_default(),
        f13: v(13).parse().unwrap_or_default(),
        f14: v(14).to_string(),
        f15: v(15).parse().unwrap_or_default(),
    }
}

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sources = Sources::new().register("mem", MemorySource::sixteen(Duration::ZERO));
    // Fill the cache once.
    rt.block_on(CachedSixteen::fetch_all_components_with(&sources))
        .expect("first fetch");
    let mem = MemorySource::sixteen(Duration::ZERO);
    let moka: moka::sync::Cache<String, Arc<String>> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    for (k, v) in &mem.data {
        moka.insert(k.clone(), Arc::new(v.clone()));
    }
    let keys: [String; 16] = std::array::from_fn(|i| format!("k{i}"));

    let mut g = c.benchmark_group("cache_hit_16");
    g.bench_function("generated", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                CachedSixteen::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("moka_gets", |b| b.iter(|| black_box(by_hand(&moka, &keys))));
    g.finish();
}

criterion_group!(benches, cache_hit);
criterion_main!(benches);
