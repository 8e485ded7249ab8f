//! NATS JetStream KV (`fetch_from = "nats_kv"`), against the machine's NATS at
//! 127.0.0.1:4222 (nats-server 2.9: no multi-get, which came with 2.11).
//!
//! * **50 keys of one bucket in one fetch** (`fetch_all_components` of 50 fields: the
//!   source reads them concurrently on its one connection, through its bounding relay)
//!   against, in the same run, the same 50 direct gets by hand on one bare async-nats
//!   connection — one after the other, and all at once — and a single key's fetch. The
//!   gap between "sequential" and "concurrent" is what the missing multi-get costs and
//!   what reading concurrently wins back.
//! * **Watch propagation**: a put → `Live::changes()` item, p50/p99 over 200 puts, against
//!   a bare async-nats watch of the key (an ordered push consumer on `$KV.<bucket>.<key>`,
//!   what async-nats's `Store::watch` makes) in the same run, with
//!   `propagation::report`: the goal is p99 ≤ bare p99 + the quiescence window + 5 ms.
//!
//! Prints why and exits when NATS is not up. Run:
//! `cargo bench -p component_model_benches --bench nats_kv`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use component_model::{AsyncAssign, EnvSource, Live, NatsKvSource, Sources};
use component_model_benches::propagation::{CHANGES, QUIET, live_latency, report};
use criterion::Criterion;
use futures::StreamExt;

const NATS: &str = "nats://127.0.0.1:4222";

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Fifty {
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k0")]
    f0: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k1")]
    f1: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k2")]
    f2: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k3")]
    f3: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k4")]
    f4: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k5")]
    f5: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k6")]
    f6: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k7")]
    f7: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k8")]
    f8: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k9")]
    f9: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k10")]
    f10: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k11")]
    f11: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k12")]
    f12: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k13")]
    f13: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k14")]
    f14: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k15")]
    f15: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k16")]
    f16: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k17")]
    f17: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k18")]
    f18: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k19")]
    f19: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k20")]
    f20: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k21")]
    f21: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k22")]
    f22: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k23")]
    f23: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k24")]
    f24: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k25")]
    f25: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k26")]
    f26: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k27")]
    f27: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k28")]
    f28: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k29")]
    f29: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k30")]
    f30: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k31")]
    f31: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k32")]
    f32: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k33")]
    f33: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k34")]
    f34: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k35")]
    f35: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k36")]
    f36: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k37")]
    f37: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k38")]
    f38: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k39")]
    f39: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k40")]
    f40: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k41")]
    f41: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k42")]
    f42: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k43")]
    f43: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k44")]
    f44: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k45")]
    f45: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k46")]
    f46: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k47")]
    f47: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k48")]
    f48: u32,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k49")]
    f49: u32,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct One {
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "k0")]
    f0: u32,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Watched {
    #[component(fetch_from = "nats_kv", bucket = "${CM_BENCH_BUCKET}", key = "watched")]
    n: u64,
}

/// A bucket made as `nats kv add` makes it.
async fn make_bucket(js: &jetstream::Context, name: &str) {
    let _ = js.delete_stream(format!("KV_{name}")).await;
    js.create_stream(jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("the bucket's stream");
}

async fn put(js: &jetstream::Context, bucket: &str, key: &str, value: String) {
    js.publish(format!("$KV.{bucket}.{key}"), value.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
}

/// One direct get by hand, as `Store::get` sends it.
async fn direct_get(client: &async_nats::Client, bucket: &str, key: &str) -> async_nats::Message {
    let body = format!(r#"{{"last_by_subj":"$KV.{bucket}.{key}"}}"#);
    let m = client
        .request(format!("$JS.API.DIRECT.GET.KV_{bucket}"), body.into())
        .await
        .expect("direct get");
    assert!(!m.payload.is_empty(), "{key} has a value");
    m
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let Some(client) = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), async_nats::connect(NATS))
            .await
            .ok()
            .and_then(Result::ok)
    }) else {
        println!("nats_kv skipped: NATS at 127.0.0.1:4222 is not up");
        return;
    };
    let js = rt.block_on(async { jetstream::new(client.clone()) });
    let bucket = format!("cm_bench_kv_{}", std::process::id());
    rt.block_on(async {
        make_bucket(&js, &bucket).await;
        for i in 0..50 {
            put(&js, &bucket, &format!("k{i}"), i.to_string()).await;
        }
    });
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_BENCH_BUCKET", bucket.as_str())]))
        .register("nats_kv", NatsKvSource::new(NATS));
    // Connected and the bucket looked up before measuring.
    rt.block_on(async {
        Fifty::fetch_all_components_with(&sources)
            .await
            .expect("fetch")
    });
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();

    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut g = c.benchmark_group("nats_kv_50_keys");
        g.bench_function("fetch_all_components_50_fields", |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    Fifty::fetch_all_components_with(&sources)
                        .await
                        .expect("fetch"),
                )
            })
        });
        g.bench_function("bare_50_direct_gets_sequential", |b| {
            b.to_async(&rt).iter(|| async {
                for k in &keys {
                    black_box(direct_get(&client, &bucket, k).await);
                }
            })
        });
        g.bench_function("bare_50_direct_gets_concurrent", |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    futures::future::join_all(keys.iter().map(|k| direct_get(&client, &bucket, k)))
                        .await,
                )
            })
        });
        g.bench_function("fetch_all_components_1_field", |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    One::fetch_all_components_with(&sources)
                        .await
                        .expect("fetch"),
                )
            })
        });
        g.bench_function("bare_1_direct_get", |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(direct_get(&client, &bucket, "k0").await) })
        });
        g.finish();
    }

    rt.block_on(async {
        println!("propagation, {CHANGES} puts each, quiescence {QUIET:?}:");
        put(&js, &bucket, "watched", "0".into()).await;
        let publish = |n: u64| {
            let js = js.clone();
            let subject = format!("$KV.{bucket}.watched");
            tokio::spawn(async move {
                js.publish(subject, n.to_string().into())
                    .await
                    .expect("publish")
                    .await
                    .expect("ack");
            });
        };
        // Bare: an ordered push consumer from new records (async-nats's `Store::watch`).
        let stream = js.get_stream(format!("KV_{bucket}")).await.expect("stream");
        let consumer = stream
            .create_consumer(jetstream::consumer::push::OrderedConfig {
                deliver_subject: client.new_inbox(),
                filter_subject: format!("$KV.{bucket}.watched"),
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut messages = consumer.messages().await.expect("messages");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let reader = tokio::spawn(async move {
            while let Some(Ok(_)) = messages.next().await {
                let _ = tx.send(()).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut bare = Vec::with_capacity(CHANGES);
        for i in 0..CHANGES as u64 {
            let started = Instant::now();
            publish(1_000 + i);
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("the bare watch received nothing")
                .expect("open");
            bare.push(started.elapsed());
        }
        reader.abort();
        let live = Live::<Watched>::builder(&sources)
            .quiescence(QUIET, QUIET * 4)
            .start()
            .await
            .expect("live");
        let samples = live_latency(&live, Duration::from_millis(300), publish).await;
        report("nats_kv", "bare", bare, samples);
        drop(live);
        let _ = js.delete_stream(format!("KV_{bucket}")).await;
    });
    c.final_summary();
}
