//! Metrics per source through the `metrics` facade: requests, round trips, errors by
//! kind, cache hits and misses, durations — read back with metrics-util's debugging
//! recorder around real fetches from the Consul and Vault doubles.

use std::collections::HashMap;
use std::time::Duration;

use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{AsyncAssign, ConsulSource, SecretString, Sources, VaultSource};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct App {
    #[component(fetch_from = "consul", key = "m/host")]
    host: String,
    #[component(fetch_from = "consul", key = "m/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "m/missing")]
    missing: Option<String>,
    #[component(fetch_from = "vault", secret = "m/db", field = "user")]
    user: String,
    #[component(fetch_from = "vault", secret = "m/db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "consul", key = "m/cached", cache_for = "1m")]
    cached: u32,
}

/// (name, labels sorted) → counter value or histogram sample count.
type Snapshot = HashMap<(String, Vec<(String, String)>), u64>;

fn snapshot(recorder: &DebuggingRecorder) -> Snapshot {
    recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<(String, String)> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            let n = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(_) => 0,
            };
            ((key.key().name().to_owned(), labels), n)
        })
        .collect()
}

fn get(m: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    m.get(&(name.to_owned(), labels)).copied().unwrap_or(0)
}

#[test]
fn requests_round_trips_errors_cache_and_durations_are_counted_per_source() {
    let recorder = DebuggingRecorder::new();
    let m = metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let consul = ConsulDouble::start().await;
            consul.put("m/host", "db.internal");
            consul.put("m/port", "5432");
            consul.put("m/cached", "7");
            let vault = VaultDouble::start().await;
            vault.put(
                "secret",
                "m/db",
                serde_json::json!({"user": "app", "password": "pw"}),
            );
            let sources = Sources::new()
                .register("consul", ConsulSource::new(consul.url()))
                .register(
                    "vault",
                    VaultSource::new(vault.url())
                        .with_token("root")
                        .with_kv_version("secret", 2)
                        .with_timeout(Duration::from_secs(5)),
                );
            let first = App::fetch_all_components_with(&sources).await.unwrap();
            assert_eq!(first.cached, 7);
            let second = App::fetch_all_components_with(&sources).await.unwrap();
            assert_eq!(second.port, 5432);
            (
                consul.requests_to("/v1/txn").len() + consul.requests_to("/v1/kv").len(),
                vault.requests().len(),
            )
        })
    });
    let (consul_requests, vault_requests) = m;
    let m = snapshot(&recorder);
    // Two fetches: 3 uncached consul reads each, plus the cached one read once.
    assert_eq!(
        get(
            &m,
            "component_model_requests_total",
            &[("source", "consul")]
        ),
        8,
        "{m:?}"
    );
    assert_eq!(
        get(&m, "component_model_requests_total", &[("source", "vault")]),
        4
    );
    // Round trips are what the servers saw.
    assert_eq!(
        get(
            &m,
            "component_model_round_trips_total",
            &[("source", "consul")]
        ) as usize,
        consul_requests,
        "{m:?}"
    );
    assert_eq!(
        get(
            &m,
            "component_model_round_trips_total",
            &[("source", "vault")]
        ) as usize,
        vault_requests
    );
    assert_eq!(vault_requests, 2, "one read of m/db per fetch");
    // The missing key: not found, twice (an absent Option is still a not-found read).
    assert_eq!(
        get(
            &m,
            "component_model_errors_total",
            &[("source", "consul"), ("kind", "not_found")]
        ),
        2
    );
    assert_eq!(
        get(
            &m,
            "component_model_cache_misses_total",
            &[("source", "consul")]
        ),
        1
    );
    assert_eq!(
        get(
            &m,
            "component_model_cache_hits_total",
            &[("source", "consul")]
        ),
        1
    );
    assert!(
        get(
            &m,
            "component_model_fetch_duration_seconds",
            &[("source", "consul")]
        ) >= 2
    );
    // No key or value is ever a label.
    let text = format!("{m:?}");
    for leak in ["m/host", "db.internal", "pw", "m/db"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
}
