//! The `etcd` backend against the shared etcd of `scripts/services.sh` (127.0.0.1:2379),
//! each figure against a baseline measured in the same run:
//!
//! * 50 etcd fields in one fetch (`fetch_all_components`: ONE `/v3/kv/txn`) against the
//!   same 50 keys read by hand with reqwest, one `/v3/kv/range` each, all concurrent;
//!   round trips counted by a TCP proxy in front of etcd and printed with the time ratio;
//! * watch propagation: write → `Live::changes()` item, p50/p99 over 200 writes, against a
//!   bare `/v3/watch` client's write → event line (goal: live p99 ≤ bare p99 + the
//!   quiescence window + 5 ms).
//!
//! Skips (prints why) when etcd is not reachable.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use component_model::{AsyncAssign, EnvSource, EtcdSource, Live, Sources};
use component_model_benches::propagation::{self, CHANGES, QUIET};
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ETCD: &str = "http://127.0.0.1:2379";

/// 50 keys, read in one transaction.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Fifty {
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k00")]
    f00: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k01")]
    f01: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k02")]
    f02: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k03")]
    f03: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k04")]
    f04: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k05")]
    f05: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k06")]
    f06: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k07")]
    f07: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k08")]
    f08: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k09")]
    f09: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k10")]
    f10: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k11")]
    f11: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k12")]
    f12: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k13")]
    f13: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k14")]
    f14: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k15")]
    f15: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k16")]
    f16: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k17")]
    f17: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k18")]
    f18: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k19")]
    f19: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k20")]
    f20: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k21")]
    f21: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k22")]
    f22: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k23")]
    f23: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k24")]
    f24: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k25")]
    f25: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k26")]
    f26: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k27")]
    f27: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k28")]
    f28: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k29")]
    f29: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k30")]
    f30: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k31")]
    f31: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k32")]
    f32: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k33")]
    f33: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k34")]
    f34: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k35")]
    f35: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k36")]
    f36: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k37")]
    f37: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k38")]
    f38: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k39")]
    f39: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k40")]
    f40: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k41")]
    f41: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k42")]
    f42: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k43")]
    f43: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k44")]
    f44: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k45")]
    f45: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k46")]
    f46: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k47")]
    f47: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k48")]
    f48: u32,
    #[component(fetch_from = "etcd", key = "/cm_bench_etcd/k49")]
    f49: u32,
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct Watched {
    #[component(fetch_from = "etcd", key = "${P}value")]
    value: u64,
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn call(http: &reqwest::Client, path: &str, body: serde_json::Value) -> Result<(), String> {
    let r = http
        .post(format!("{ETCD}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("HTTP {}", r.status()));
    }
    let _ = r.bytes().await;
    Ok(())
}

async fn put(http: &reqwest::Client, key: &str, value: &str) {
    call(
        http,
        "/v3/kv/put",
        serde_json::json!({"key": b64(key.as_bytes()), "value": b64(value.as_bytes())}),
    )
    .await
    .expect("put");
}

/// A TCP proxy to etcd counting the request lines (`POST /v3/...`) through it.
async fn proxy(count: Arc<AtomicUsize>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect("127.0.0.1:2379").await else {
                    return;
                };
                let (mut dr, mut dw) = down.split();
                let (mut ur, mut uw) = up.split();
                let to_up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match dr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let lines = buf[..n].windows(9).filter(|w| *w == b"POST /v3/").count();
                        count.fetch_add(lines, Ordering::Relaxed);
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let to_down = async {
                    let _ = tokio::io::copy(&mut ur, &mut dw).await;
                };
                tokio::join!(to_up, to_down);
            });
        }
    });
    url
}

/// The 50 keys read by hand: one `/v3/kv/range` each, concurrently.
async fn by_hand(http: &reqwest::Client, base: &str) -> usize {
    let reads = (0..50).map(|i| {
        let body = serde_json::json!({"key": b64(format!("/cm_bench_etcd/k{i:02}").as_bytes())});
        async move {
            let r = http
                .post(format!("{base}/v3/kv/range"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            v["kvs"].as_array().map_or(0, Vec::len)
        }
    });
    futures::future::join_all(reads).await.into_iter().sum()
}

/// A bare `/v3/watch` client: write → event line, [`CHANGES`] times.
async fn bare_latency(http: &reqwest::Client, key: &str) -> Vec<Duration> {
    let body = serde_json::json!({"create_request": {"key": b64(key.as_bytes())}});
    let mut response = http
        .post(format!("{ETCD}/v3/watch"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(3600))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The `created` line first.
    while !buf.contains(&b'\n') {
        buf.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    buf.clear();
    let mut out = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let started = Instant::now();
        let writer = http.clone();
        let k = key.to_owned();
        tokio::spawn(async move { put(&writer, &k, &(5_000 + i).to_string()).await });
        loop {
            if let Some(at) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=at).collect();
                if line.windows(8).any(|w| w == b"\"events\"") {
                    break;
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .unwrap();
            buf.extend_from_slice(&chunk);
        }
        out.push(started.elapsed());
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    if let Err(e) = rt.block_on(call(
        &http,
        "/v3/kv/range",
        serde_json::json!({"key": b64(b"\0"), "count_only": true}),
    )) {
        println!(
            "SKIPPED etcd bench: etcd unreachable at {ETCD} ({e}); start it with scripts/services.sh"
        );
        return;
    }
    rt.block_on(async {
        for i in 0..50 {
            put(&http, &format!("/cm_bench_etcd/k{i:02}"), &i.to_string()).await;
        }
    });

    // Round trips, through the counting proxy.
    let count = Arc::new(AtomicUsize::new(0));
    let via = rt.block_on(proxy(count.clone()));
    let proxied = Sources::new().register("etcd", EtcdSource::new(&via));
    rt.block_on(async {
        Fifty::fetch_all_components_with(&proxied).await.unwrap();
        let engine = count.swap(0, Ordering::Relaxed);
        assert_eq!(by_hand(&http, &via).await, 50);
        let hand = count.swap(0, Ordering::Relaxed);
        println!("etcd 50 keys round trips: fetch_all_components {engine}, by hand {hand}");
    });

    // Time, the same run: mean of 200 of each, interleaved.
    let sources = Sources::new().register("etcd", EtcdSource::new(ETCD));
    rt.block_on(async {
        let (mut engine, mut hand) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..200 {
            let t = Instant::now();
            black_box(Fifty::fetch_all_components_with(&sources).await.unwrap());
            engine += t.elapsed();
            let t = Instant::now();
            black_box(by_hand(&http, ETCD).await);
            hand += t.elapsed();
        }
        println!(
            "etcd 50 keys mean: fetch_all_components {:.3} ms, by hand (50 concurrent ranges) {:.3} ms, ratio {:.3}x",
            engine.as_secs_f64() * 1e3 / 200.0,
            hand.as_secs_f64() * 1e3 / 200.0,
            engine.as_secs_f64() / hand.as_secs_f64()
        );
    });

    let mut group = c.benchmark_group("etcd");
    group.bench_function("fifty_keys_one_txn", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(Fifty::fetch_all_components_with(&sources).await.unwrap()) })
    });
    group.bench_function("fifty_ranges_by_hand", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(by_hand(&http, ETCD).await) })
    });
    group.finish();

    // Propagation: bare watch client, then a Live, in the same run.
    let key = format!("/cm_bench_etcd/watch_{}/", std::process::id());
    rt.block_on(async {
        put(&http, &format!("{key}value"), "1").await;
        let bare = bare_latency(&http, &format!("{key}value")).await;
        let sources = Sources::new()
            .register("etcd", EtcdSource::new(ETCD))
            .with_env(EnvSource::from_map([("P", key.as_str())]));
        let live = Live::<Watched>::builder(&sources)
            .quiescence(QUIET, QUIET * 4)
            .start()
            .await
            .unwrap();
        let writer = http.clone();
        let k = format!("{key}value");
        let handle = tokio::runtime::Handle::current();
        let live_samples = propagation::live_latency(&live, Duration::from_millis(300), |v| {
            let writer = writer.clone();
            let k = k.clone();
            handle.spawn(async move { put(&writer, &k, &v.to_string()).await });
        })
        .await;
        propagation::report("etcd", "bare", bare, live_samples);
        drop(live);
        let _ = call(
            &http,
            "/v3/kv/deleterange",
            serde_json::json!({"key": b64(b"/cm_bench_etcd/"), "range_end": b64(b"/cm_bench_etcd0")}),
        )
        .await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
