//! `fetch_all_components` against baselines measured in the same run:
//!
//! * `latency_20ms/*`: 16 fields from a source answering each request after 20 ms.
//!   `fetch_all_16` vs `slowest_single_field` (one 20 ms fetch) and `sequential_16`.
//! * `overhead_0ms/*`: the same 16 fields from memory, `generated` vs `hand_written_join`
//!   (`futures::join!` of the 16 fetches through the same `Source`, parsed with `str::parse`).
//! * `typed_0ms/*`: 16 `u32` fields, each from its own registered `ComponentFetcher<u32>`
//!   answering at once: `generated` vs `hand_written_join_all` (`join_all` of the same 16
//!   `fetch_component()` calls).
//!
//! Ratios: `python3 scripts/bench_ratios.py` after `cargo bench -p component_model_benches`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentFetcher, FetchRequest, FieldSpec, RawValue, Source, Sources, async_trait,
};
use component_model_benches::MemorySource;
use criterion::{Criterion, criterion_group, criterion_main};

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct Sixteen {
    #[component(fetch_from = "mem", key = "k0")]
    f0: u16,
    #[component(fetch_from = "mem", key = "k1")]
    f1: u32,
    #[component(fetch_from = "mem", key = "k2")]
    f2: String,
    #[component(fetch_from = "mem", key = "k3")]
    f3: bool,
    #[component(fetch_from = "mem", key = "k4")]
    f4: u16,
    #[component(fetch_from = "mem", key = "k5")]
    f5: u64,
    #[component(fetch_from = "mem", key = "k6")]
    f6: String,
    #[component(fetch_from = "mem", key = "k7")]
    f7: bool,
    #[component(fetch_from = "mem", key = "k8")]
    f8: u16,
    #[component(fetch_from = "mem", key = "k9")]
    f9: i32,
    #[component(fetch_from = "mem", key = "k10")]
    f10: String,
    #[component(fetch_from = "mem", key = "k11")]
    f11: bool,
    #[component(fetch_from = "mem", key = "k12")]
    f12: u16,
    #[component(fetch_from = "mem", key = "k13")]
    f13: i64,
    #[component(fetch_from = "mem", key = "k14")]
    f14: String,
    #[component(fetch_from = "mem", key = "k15")]
    f15: bool,
}

static SPECS: [FieldSpec; 16] = {
    const fn s(key: &'static str) -> FieldSpec {
        FieldSpec::new("Sixteen", "f", "?", "mem").key(key)
    }
    [
        s("k0"),
        s("k1"),
        s("k2"),
        s("k3"),
        s("k4"),
        s("k5"),
        s("k6"),
        s("k7"),
        s("k8"),
        s("k9"),
        s("k10"),
        s("k11"),
        s("k12"),
        s("k13"),
        s("k14"),
        s("k15"),
    ]
};

fn text(r: Result<RawValue, component_model::SourceError>) -> String {
    match r {
        Ok(RawValue::Text(s)) => s,
        _ => String::new(),
    }
}

/// What a user would write by hand: join the 16 fetches, parse each value.
async fn hand_written(src: &MemorySource) -> Sixteen {
    let r: Vec<FetchRequest> = SPECS.iter().map(FetchRequest::new).collect();
    let (a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15) = futures::join!(
        src.fetch(&r[0]),
        src.fetch(&r[1]),
        src.fetch(&r[2]),
        src.fetch(&r[3]),
        src.fetch(&r[4]),
        src.fetch(&r[5]),
        src.fetch(&r[6]),
        src.fetch(&r[7]),
        src.fetch(&r[8]),
        src.fetch(&r[9]),
        src.fetch(&r[10]),
        src.fetch(&r[11]),
        src.fetch(&r[12]),
        src.fetch(&r[13]),
        src.fetch(&r[14]),
        src.fetch(&r[15])
    );
    Sixteen {
        f0: text(a0).parse().unwrap_or_default(),
        f1: text(a1).parse().unwrap_or_default(),
        f2: text(a2),
        f3: text(a3).parse().unwrap_or_default(),
        f4: text(a4).parse().unwrap_or_default(),
        f5: text(a5).parse().unwrap_or_default(),
        f6: text(a6),
        f7: text(a7).parse().unwrap_or_default(),
        f8: text(a8).parse().unwrap_or_default(),
        f9: text(a9).parse().unwrap_or_default(),
        f10: text(a10),
        f11: text(a11).parse().unwrap_or_default(),
        f12: text(a12).parse().unwrap_or_default(),
        f13: text(a13).parse().unwrap_or_default(),
        f14: text(a14),
        f15: text(a15).parse().unwrap_or_default(),
    }
}

fn latency(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let src = Arc::new(MemorySource::sixteen(Duration::from_millis(20)));
    let sources = Sources::new().register("mem", MemorySource::sixteen(Duration::from_millis(20)));
    let mut g = c.benchmark_group("latency_20ms");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("fetch_all_16", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                Sixteen::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("slowest_single_field", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(src.get("k0").await) })
    });
    g.bench_function("sequential_16", |b| {
        b.to_async(&rt).iter(|| async {
            let mut out = Vec::with_capacity(16);
            for i in 0..16 {
                out.push(src.get(&format!("k{i}")).await);
            }
            black_box(out)
        })
    });
    g.finish();
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let src = MemorySource::sixteen(Duration::ZERO);
    let sources = Sources::new().register("mem", MemorySource::sixteen(Duration::ZERO));
    let mut g = c.benchmark_group("overhead_0ms");
    g.bench_function("generated", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                Sixteen::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("hand_written_join", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(hand_written(&src).await) })
    });
    g.finish();
}

/// A typed fetcher answering at once.
struct Const(u32);

#[async_trait]
impl ComponentFetcher<u32> for Const {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<u32, Self::Error> {
        Ok(self.0)
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // the values are only produced, through black_box
struct SixteenTyped {
    #[component(fetch_from = "t0")]
    f0: u32,
    #[component(fetch_from = "t1")]
    f1: u32,
    #[component(fetch_from = "t2")]
    f2: u32,
    #[component(fetch_from = "t3")]
    f3: u32,
    #[component(fetch_from = "t4")]
    f4: u32,
    #[component(fetch_from = "t5")]
    f5: u32,
    #[component(fetch_from = "t6")]
    f6: u32,
    #[component(fetch_from = "t7")]
    f7: u32,
    #[component(fetch_from = "t8")]
    f8: u32,
    #[component(fetch_from = "t9")]
    f9: u32,
    #[component(fetch_from = "t10")]
    f10: u32,
    #[component(fetch_from = "t11")]
    f11: u32,
    #[component(fetch_from = "t12")]
    f12: u32,
    #[component(fetch_from = "t13")]
    f13: u32,
    #[component(fetch_from = "t14")]
    f14: u32,
    #[component(fetch_from = "t15")]
    f15: u32,
}

const TYPED: [&str; 16] = [
    "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11", "t12", "t13", "t14",
    "t15",
];

fn typed(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut sources = Sources::new();
    for (i, name) in TYPED.iter().enumerate() {
        sources = sources.register(*name, Const(i as u32));
    }
    let fetchers: Vec<Const> = (0..16).map(Const).collect();
    let mut g = c.benchmark_group("typed_0ms");
    g.bench_function("generated", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                SixteenTyped::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("hand_written_join_all", |b| {
        b.to_async(&rt).iter(|| async {
            let values =
                futures::future::join_all(fetchers.iter().map(|f| f.fetch_component())).await;
            let v: Vec<u32> = values.into_iter().map(|r| r.unwrap_or_default()).collect();
            black_box(SixteenTyped {
                f0: v[0],
                f1: v[1],
                f2: v[2],
                f3: v[3],
                f4: v[4],
                f5: v[5],
                f6: v[6],
                f7: v[7],
                f8: v[8],
                f9: v[9],
                f10: v[10],
                f11: v[11],
                f12: v[12],
                f13: v[13],
                f14: v[14],
                f15: v[15],
            })
        })
    });
    g.finish();
}

criterion_group!(benches, latency, overhead, typed);
criterion_main!(benches);
