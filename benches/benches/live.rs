//! Live configuration: how fast a change reaches `Live::changes()`, against the raw
//! notification measured in the same run, and what `Live::get()` costs.
//!
//! * propagation, 200 changes each, p50/p99 (write → item), for the Consul double
//!   (blocking query), PostgreSQL (LISTEN/NOTIFY through the trigger) and Redis (keyspace
//!   notification); the raw baseline is the same notification received by a bare client
//!   (a blocking query, a `PgListener`, a pub/sub subscription), with no fetch after it;
//! * `live_get`: `Live::get()` vs a bare `ArcSwap::load` of an `Arc` of the same struct
//!   (criterion).
//!
//! PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) rows are skipped with a message
//! when the server is not up. Run: `cargo bench -p component_model_benches --bench live`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use component_model::test_util::ConsulDouble;
use component_model::{AsyncAssign, ConsulSource, DatabaseSource, Live, RedisSource, Sources};
use criterion::{Criterion, criterion_group};
use futures::StreamExt;

use component_model_benches::propagation::{CHANGES, QUIET, report};

/// Write → `changes()` item for each of [`CHANGES`] writes.
async fn live_latency<T: Send + Sync + 'static>(
    live: &Live<T>,
    write: impl FnMut(u64),
) -> Vec<std::time::Duration> {
    component_model_benches::propagation::live_latency(live, Duration::from_millis(200), write)
        .await
}

#[derive(AsyncAssign, Debug, Clone, Default)]
#[component(watch)]
struct FromConsul {
    #[component(fetch_from = "consul", key = "bench/live/n")]
    n: u64,
}

#[derive(AsyncAssign, Debug, Clone)]
#[component(watch)]
struct FromPg {
    #[component(fetch_from = "postgres", table = "cm_bench_live", key = "n")]
    n: u64,
}

#[derive(AsyncAssign, Debug, Clone)]
#[component(watch)]
struct FromRedis {
    #[component(fetch_from = "redis", key = "${CM_BENCH_KEY}")]
    n: u64,
}

async fn consul_rows() {
    let consul = ConsulDouble::start().await;
    consul.put("bench/live/n", "0");
    // Raw: a bare blocking query per change.
    let client = reqwest::Client::new();
    let base = format!("{}/v1/kv/bench/live/n", consul.url());
    let mut raw = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES as u64 {
        let index = consul.index();
        let waiting = client.get(format!("{base}?index={index}&wait=10s")).send();
        let write = async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let started = Instant::now();
            consul.put("bench/live/n", (1_000 + i).to_string());
            started
        };
        let (answer, started) = tokio::join!(waiting, write);
        answer.expect("blocking query");
        raw.push(started.elapsed());
    }
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let live = Live::<FromConsul>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, |n| consul.put("bench/live/n", n.to_string())).await;
    report("consul", "raw", raw, samples);
}

async fn postgres_rows() {
    use sqlx::Executor;
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let Ok(admin) = sqlx::PgPool::connect(url).await else {
        println!("postgres   skipped: PostgreSQL at 127.0.0.1:5432 is not up");
        return;
    };
    let schema = format!("cm_bench_{}", std::process::id());
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.cm_bench_live (key text primary key, value text); INSERT INTO {schema}.cm_bench_live VALUES ('n', '0')"
        )))
        .await
        .expect("setup");
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("pool");
    let db = DatabaseSource::new(pool.clone());
    db.install_notify_trigger("cm_bench_live")
        .await
        .expect("trigger");
    let writer = pool.clone();
    let update = move |n: u64| {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .execute(sqlx::AssertSqlSafe(format!(
                    "UPDATE cm_bench_live SET value = '{n}'"
                )))
                .await
                .expect("update");
        });
    };
    // Raw: a bare listener on the table's channel.
    let mut listener = sqlx::postgres::PgListener::connect_with(&pool)
        .await
        .expect("listener");
    listener.listen("cm_cm_bench_live").await.expect("listen");
    let mut raw = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES as u64 {
        let started = Instant::now();
        update(1_000_000 + i);
        listener.recv().await.expect("notification");
        raw.push(started.elapsed());
    }
    drop(listener);
    let sources = Sources::new().register("postgres", db);
    let live = Live::<FromPg>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, update).await;
    report("postgres", "raw", raw, samples);
    drop(live);
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .expect("cleanup");
}

async fn redis_rows() {
    let key = format!("cm_bench_live_{}", std::process::id());
    let Ok(client) = redis::Client::open("redis://127.0.0.1:6379") else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        println!("redis      skipped: Redis at 127.0.0.1:6379 is not up");
        return;
    };
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KA")
        .query_async(&mut conn)
        .await
        .expect("CONFIG SET");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("0")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let set = {
        let conn = conn.clone();
        let key = key.clone();
        move |n: u64| {
            let mut conn = conn.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(n)
                    .query_async(&mut conn)
                    .await
                    .expect("SET");
            });
        }
    };
    // Raw: a bare subscription to the key's keyspace channel.
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(format!("__keyspace@0__:{key}"))
        .await
        .expect("subscribe");
    let mut raw = Vec::with_capacity(CHANGES);
    {
        let mut messages = pubsub.on_message();
        for i in 0..CHANGES as u64 {
            let started = Instant::now();
            set(1_000 + i);
            messages.next().await.expect("notification");
            raw.push(started.elapsed());
        }
    }
    drop(pubsub);
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_BENCH_KEY",
            key.as_str(),
        )]))
        .register("redis", RedisSource::new("redis://127.0.0.1:6379"));
    let live = Live::<FromRedis>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, set).await;
    report("redis", "raw", raw, samples);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

fn live_get(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (consul, live) = rt.block_on(async {
        let consul = ConsulDouble::start().await;
        consul.put("bench/live/n", "7");
        let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
        let live = Live::<FromConsul>::builder(&sources)
            .start()
            .await
            .expect("live");
        (consul, live)
    });
    let bare = arc_swap::ArcSwap::from_pointee(FromConsul { n: 7 });
    let mut g = c.benchmark_group("live_get");
    g.bench_function("live_get", |b| b.iter(|| black_box(live.get().n)));
    g.bench_function("arc_swap_load", |b| b.iter(|| black_box(bare.load().n)));
    g.finish();
    drop((live, consul));
}

criterion_group!(benches, live_get);

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "propagation, {CHANGES} changes each, quiescence {} ms:",
        QUIET.as_millis()
    );
    rt.block_on(async {
        consul_rows().await;
        postgres_rows().await;
        redis_rows().await;
    });
    drop(rt);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
