//! 64 fields from one PostgreSQL table: `fetch_all_components` (one coalesced
//! `SELECT key, value ... WHERE key IN (...)`) against, in the same run, 64 one-row queries
//! (one per field, concurrently on the same pool) and a single one-row query.
//!
//! Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`); prints why and exits
//! otherwise. Ratios: `python3 scripts/bench_ratios.py`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use component_model::{AsyncAssign, ComponentFetcher, DatabaseFetcher, DatabaseSource, Sources};
use criterion::{Criterion, criterion_group, criterion_main};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct SixtyFour {
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k0")]
    f0: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k1")]
    f1: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k2")]
    f2: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k3")]
    f3: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k4")]
    f4: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k5")]
    f5: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k6")]
    f6: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k7")]
    f7: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k8")]
    f8: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k9")]
    f9: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k10")]
    f10: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k11")]
    f11: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k12")]
    f12: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k13")]
    f13: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k14")]
    f14: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k15")]
    f15: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k16")]
    f16: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k17")]
    f17: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k18")]
    f18: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k19")]
    f19: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k20")]
    f20: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k21")]
    f21: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k22")]
    f22: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k23")]
    f23: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k24")]
    f24: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k25")]
    f25: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k26")]
    f26: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k27")]
    f27: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k28")]
    f28: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k29")]
    f29: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k30")]
    f30: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k31")]
    f31: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k32")]
    f32: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k33")]
    f33: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k34")]
    f34: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k35")]
    f35: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k36")]
    f36: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k37")]
    f37: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k38")]
    f38: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k39")]
    f39: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k40")]
    f40: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k41")]
    f41: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k42")]
    f42: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k43")]
    f43: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k44")]
    f44: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k45")]
    f45: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k46")]
    f46: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k47")]
    f47: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k48")]
    f48: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k49")]
    f49: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k50")]
    f50: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k51")]
    f51: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k52")]
    f52: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k53")]
    f53: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k54")]
    f54: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k55")]
    f55: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k56")]
    f56: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k57")]
    f57: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k58")]
    f58: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k59")]
    f59: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k60")]
    f60: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k61")]
    f61: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k62")]
    f62: u32,
    #[component(fetch_from = "database", table = "cm_bench_kv", key = "k63")]
    f63: u32,
}

fn database(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pool = match rt.block_on(
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(PG_URL),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("SKIPPED database benchmarks: PostgreSQL at {PG_URL} unreachable: {e}");
            return;
        }
    };
    rt.block_on(async {
        sqlx::raw_sql("DROP TABLE IF EXISTS cm_bench_kv; CREATE TABLE cm_bench_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .execute(&pool)
            .await
            .expect("create");
        sqlx::raw_sql("INSERT INTO cm_bench_kv SELECT 'k' || i, (1000 + i)::text FROM generate_series(0, 63) AS i")
            .execute(&pool)
            .await
            .expect("seed");
    });
    let db = DatabaseSource::new(pool.clone());
    let sources = Sources::new().register("database", db.clone());
    let per_field: Vec<DatabaseFetcher> = (0..64)
        .map(|i| {
            DatabaseFetcher::new(pool.clone(), "SELECT value FROM cm_bench_kv WHERE key = $1")
                .with_key(format!("k{i}"))
        })
        .collect();
    let single = DatabaseFetcher::new(pool.clone(), "SELECT value FROM cm_bench_kv WHERE key = $1")
        .with_key("k0");

    // Round trips, counted by the source itself.
    let before = db.queries_run();
    rt.block_on(SixtyFour::fetch_all_components_with(&sources))
        .expect("fetch");
    eprintln!(
        "round trips: coalesced fetch of 64 fields = {} query; one query per field = 64 queries",
        db.queries_run() - before
    );

    let mut g = c.benchmark_group("postgres_64_fields");
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("coalesced_fetch_all", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                SixtyFour::fetch_all_components_with(&sources)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.bench_function("one_query_per_field", |b| {
        b.to_async(&rt).iter(|| async {
            let all = futures::future::join_all(
                per_field
                    .iter()
                    .map(ComponentFetcher::<u32>::fetch_component),
            )
            .await;
            black_box(all)
        })
    });
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    g.bench_function("raw_sqlx_same_64_row_query", |b| {
        b.to_async(&rt).iter(|| async {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT key, value FROM cm_bench_kv WHERE key = ANY($1)")
                    .bind(&keys)
                    .fetch_all(&pool)
                    .await
                    .expect("raw");
            black_box(rows)
        })
    });
    g.bench_function("single_one_row_query", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                ComponentFetcher::<u32>::fetch_component(&single)
                    .await
                    .expect("fetch"),
            )
        })
    });
    g.finish();
    rt.block_on(async {
        sqlx::raw_sql("DROP TABLE cm_bench_kv")
            .execute(&pool)
            .await
            .ok();
    });
}

criterion_group!(benches, database);
criterion_main!(benches);
