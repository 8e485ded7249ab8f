//! Coalescing of the remote backends, against the in-process API doubles on loopback:
//!
//! * 32 Consul keys: `fetch_all_components` (ONE `PUT /v1/txn`) against the same 32 fields
//!   each read alone (a different `timeout` on each field puts each in a batch of its own:
//!   32 concurrent `GET /v1/kv/<key>`), and against the same 32 fields behind timeout,
//!   retry, circuit breaker and concurrency limit layers (no faults: still ONE transaction);
//! * 8 fields from one Vault secret: ONE read against 8 reads of the same path.
//!
//! Round trips are counted from the doubles' request logs and printed before the timings.
//! Ratios: `python3 scripts/bench_ratios.py`.

#![allow(missing_docs)]

use std::hint::black_box;

use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{AsyncAssign, ConsulSource, Sources, VaultSource};
use criterion::{Criterion, criterion_group, criterion_main};

/// 32 keys, coalesced into one transaction.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulTxn {
    #[component(fetch_from = "consul", key = "bench/k00")]
    f00: u32,
    #[component(fetch_from = "consul", key = "bench/k01")]
    f01: u32,
    #[component(fetch_from = "consul", key = "bench/k02")]
    f02: u32,
    #[component(fetch_from = "consul", key = "bench/k03")]
    f03: u32,
    #[component(fetch_from = "consul", key = "bench/k04")]
    f04: u32,
    #[component(fetch_from = "consul", key = "bench/k05")]
    f05: u32,
    #[component(fetch_from = "consul", key = "bench/k06")]
    f06: u32,
    #[component(fetch_from = "consul", key = "bench/k07")]
    f07: u32,
    #[component(fetch_from = "consul", key = "bench/k08")]
    f08: u32,
    #[component(fetch_from = "consul", key = "bench/k09")]
    f09: u32,
    #[component(fetch_from = "consul", key = "bench/k10")]
    f10: u32,
    #[component(fetch_from = "consul", key = "bench/k11")]
    f11: u32,
    #[component(fetch_from = "consul", key = "bench/k12")]
    f12: u32,
    #[component(fetch_from = "consul", key = "bench/k13")]
    f13: u32,
    #[component(fetch_from = "consul", key = "bench/k14")]
    f14: u32,
    #[component(fetch_from = "consul", key = "bench/k15")]
    f15: u32,
    #[component(fetch_from = "consul", key = "bench/k16")]
    f16: u32,
    #[component(fetch_from = "consul", key = "bench/k17")]
    f17: u32,
    #[component(fetch_from = "consul", key = "bench/k18")]
    f18: u32,
    #[component(fetch_from = "consul", key = "bench/k19")]
    f19: u32,
    #[component(fetch_from = "consul", key = "bench/k20")]
    f20: u32,
    #[component(fetch_from = "consul", key = "bench/k21")]
    f21: u32,
    #[component(fetch_from = "consul", key = "bench/k22")]
    f22: u32,
    #[component(fetch_from = "consul", key = "bench/k23")]
    f23: u32,
    #[component(fetch_from = "consul", key = "bench/k24")]
    f24: u32,
    #[component(fetch_from = "consul", key = "bench/k25")]
    f25: u32,
    #[component(fetch_from = "consul", key = "bench/k26")]
    f26: u32,
    #[component(fetch_from = "consul", key = "bench/k27")]
    f27: u32,
    #[component(fetch_from = "consul", key = "bench/k28")]
    f28: u32,
    #[component(fetch_from = "consul", key = "bench/k29")]
    f29: u32,
    #[component(fetch_from = "consul", key = "bench/k30")]
    f30: u32,
    #[component(fetch_from = "consul", key = "bench/k31")]
    f31: u32,
}

/// The same 32 keys behind a timeout, retry, circuit breaker and concurrency limit (no
/// faults): still one transaction.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulLayered {
    #[component(
        fetch_from = "consul",
        key = "bench/k00",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f00: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k01",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f01: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k02",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f02: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k03",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f03: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k04",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f04: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k05",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f05: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k06",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f06: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k07",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f07: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k08",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f08: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k09",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f09: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k10",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f10: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k11",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f11: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k12",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f12: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k13",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f13: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k14",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f14: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k15",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f15: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k16",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f16: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k17",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f17: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k18",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f18: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k19",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f19: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k20",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f20: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k21",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f21: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k22",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f22: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k23",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f23: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k24",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f24: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k25",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f25: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k26",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f26: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k27",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f27: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k28",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f28: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k29",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f29: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k30",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f30: u32,
    #[component(
        fetch_from = "consul",
        key = "bench/k31",
        timeout = "2s",
        retry_attempts = 3,
        circuit_breaker = true,
        max_concurrency = 16
    )]
    f31: u32,
}

/// The same 32 keys, each a GET of its own: fields with different layer settings are
/// batched apart (each field a different `timeout`), and a batch of one key is one GET.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulGets {
    #[component(fetch_from = "consul", key = "bench/k00", timeout = "10000ms")]
    f00: u32,
    #[component(fetch_from = "consul", key = "bench/k01", timeout = "10001ms")]
    f01: u32,
    #[component(fetch_from = "consul", key = "bench/k02", timeout = "10002ms")]
    f02: u32,
    #[component(fetch_from = "consul", key = "bench/k03", timeout = "10003ms")]
    f03: u32,
    #[component(fetch_from = "consul", key = "bench/k04", timeout = "10004ms")]
    f04: u32,
    #[component(fetch_from = "consul", key = "bench/k05", timeout = "10005ms")]
    f05: u32,
    #[component(fetch_from = "consul", key = "bench/k06", timeout = "10006ms")]
    f06: u32,
    #[component(fetch_from = "consul", key = "bench/k07", timeout = "10007ms")]
    f07: u32,
    #[component(fetch_from = "consul", key = "bench/k08", timeout = "10008ms")]
    f08: u32,
    #[component(fetch_from = "consul", key = "bench/k09", timeout = "10009ms")]
    f09: u32,
    #[component(fetch_from = "consul", key = "bench/k10", timeout = "10010ms")]
    f10: u32,
    #[component(fetch_from = "consul", key = "bench/k11", timeout = "10011ms")]
    f11: u32,
    #[component(fetch_from = "consul", key = "bench/k12", timeout = "10012ms")]
    f12: u32,
    #[component(fetch_from = "consul", key = "bench/k13", timeout = "10013ms")]
    f13: u32,
    #[component(fetch_from = "consul", key = "bench/k14", timeout = "10014ms")]
    f14: u32,
    #[component(fetch_from = "consul", key = "bench/k15", timeout = "10015ms")]
    f15: u32,
    #[component(fetch_from = "consul", key = "bench/k16", timeout = "10016ms")]
    f16: u32,
    #[component(fetch_from = "consul", key = "bench/k17", timeout = "10017ms")]
    f17: u32,
    #[component(fetch_from = "consul", key = "bench/k18", timeout = "10018ms")]
    f18: u32,
    #[component(fetch_from = "consul", key = "bench/k19", timeout = "10019ms")]
    f19: u32,
    #[component(fetch_from = "consul", key = "bench/k20", timeout = "10020ms")]
    f20: u32,
    #[component(fetch_from = "consul", key = "bench/k21", timeout = "10021ms")]
    f21: u32,
    #[component(fetch_from = "consul", key = "bench/k22", timeout = "10022ms")]
    f22: u32,
    #[component(fetch_from = "consul", key = "bench/k23", timeout = "10023ms")]
    f23: u32,
    #[component(fetch_from = "consul", key = "bench/k24", timeout = "10024ms")]
    f24: u32,
    #[component(fetch_from = "consul", key = "bench/k25", timeout = "10025ms")]
    f25: u32,
    #[component(fetch_from = "consul", key = "bench/k26", timeout = "10026ms")]
    f26: u32,
    #[component(fetch_from = "consul", key = "bench/k27", timeout = "10027ms")]
    f27: u32,
    #[component(fetch_from = "consul", key = "bench/k28", timeout = "10028ms")]
    f28: u32,
    #[component(fetch_from = "consul", key = "bench/k29", timeout = "10029ms")]
    f29: u32,
    #[component(fetch_from = "consul", key = "bench/k30", timeout = "10030ms")]
    f30: u32,
    #[component(fetch_from = "consul", key = "bench/k31", timeout = "10031ms")]
    f31: u32,
}

/// 8 keys of one secret: one read.
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct VaultOne {
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k0",
        kv_version = 2
    )]
    f0: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k1",
        kv_version = 2
    )]
    f1: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k2",
        kv_version = 2
    )]
    f2: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k3",
        kv_version = 2
    )]
    f3: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k4",
        kv_version = 2
    )]
    f4: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k5",
        kv_version = 2
    )]
    f5: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k6",
        kv_version = 2
    )]
    f6: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k7",
        kv_version = 2
    )]
    f7: String,
}

/// The same 8 keys, one read each (a different `timeout` per field: a batch each).
#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct VaultEach {
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k0",
        kv_version = 2,
        timeout = "10000ms"
    )]
    f0: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k1",
        kv_version = 2,
        timeout = "10001ms"
    )]
    f1: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k2",
        kv_version = 2,
        timeout = "10002ms"
    )]
    f2: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k3",
        kv_version = 2,
        timeout = "10003ms"
    )]
    f3: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k4",
        kv_version = 2,
        timeout = "10004ms"
    )]
    f4: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k5",
        kv_version = 2,
        timeout = "10005ms"
    )]
    f5: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k6",
        kv_version = 2,
        timeout = "10006ms"
    )]
    f6: String,
    #[component(
        fetch_from = "vault",
        secret = "bench/app",
        field = "k7",
        kv_version = 2,
        timeout = "10007ms"
    )]
    f7: String,
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (consul, vault) = rt.block_on(async {
        let consul = ConsulDouble::start().await;
        for i in 0..32 {
            consul.put(&format!("bench/k{i:02}"), (1000 + i).to_string());
        }
        let vault = VaultDouble::start().await;
        let secret: serde_json::Map<String, serde_json::Value> = (0..8)
            .map(|i| {
                (
                    format!("k{i}"),
                    serde_json::Value::String(format!("value-{i}")),
                )
            })
            .collect();
        vault.put("secret", "bench/app", serde_json::Value::Object(secret));
        (consul, vault)
    });
    let sources = Sources::new()
        .register("consul", ConsulSource::new(consul.address()))
        .register("vault", VaultSource::new(vault.url()).with_token("root"));

    // Round trips of one fetch each, from the doubles' logs.
    rt.block_on(async {
        consul.clear_requests();
        ConsulTxn::fetch_all_components_with(&sources).await.expect("consul txn");
        let txn = consul.requests().len();
        consul.clear_requests();
        ConsulGets::fetch_all_components_with(&sources).await.expect("consul gets");
        let gets = consul.requests().len();
        consul.clear_requests();
        ConsulLayered::fetch_all_components_with(&sources).await.expect("consul layered");
        let layered = consul.requests().len();
        vault.clear_requests();
        VaultOne::fetch_all_components_with(&sources).await.expect("vault one");
        let one = vault.requests().len();
        vault.clear_requests();
        VaultEach::fetch_all_components_with(&sources).await.expect("vault each");
        let each = vault.requests().len();
        println!("round trips: consul 32 keys: {txn} (txn) vs {gets} (one GET per key), {layered} with timeout+retry+breaker+limit layers; vault 8 fields of one path: {one} vs {each}");
    });

    let mut g = c.benchmark_group("consul_32_keys");
    g.bench_function("one_txn", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                ConsulTxn::fetch_all_components_with(&sources)
                    .await
                    .expect("txn"),
            )
        })
    });
    g.bench_function("layers_no_faults", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                ConsulLayered::fetch_all_components_with(&sources)
                    .await
                    .expect("layered"),
            )
        })
    });
    g.bench_function("one_get_per_key", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                ConsulGets::fetch_all_components_with(&sources)
                    .await
                    .expect("gets"),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("vault_8_fields_one_path");
    g.bench_function("one_read", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                VaultOne::fetch_all_components_with(&sources)
                    .await
                    .expect("one"),
            )
        })
    });
    g.bench_function("one_read_per_field", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                VaultEach::fetch_all_components_with(&sources)
                    .await
                    .expect("each"),
            )
        })
    });
    g.finish();
    drop((consul, vault));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
