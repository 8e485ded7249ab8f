//! Cache, circuit breaker and concurrency limit layers, from the derive's attributes and
//! from code: hits never reach the source, concurrent misses share one call, stale values
//! are served when a refresh fails, an open circuit fails fast, a limit is never exceeded,
//! and a batch stays one call through every layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use component_model::resilience::{
    CacheLayer, CircuitBreakerLayer, ConcurrencyLimitLayer, SourceExt,
};
use component_model::{
    AsyncAssign, ComponentError, ErrorKind, FetchRequest, RawValue, RedisSource, Source,
    SourceError, Sources, async_trait,
};
use redis::AsyncCommands;
use serde::Deserialize;

/// Answers a key with `<key>=<version>`; counts calls and requests; can be switched down
/// (every request `Unavailable`), slowed, and records the most calls in flight at once.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    version: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    delay: Option<Duration>,
}

impl Counting {
    fn slow(delay: Duration) -> Self {
        Counting {
            delay: Some(delay),
            ..Counting::default()
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Source for Counting {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request]).await.remove(0)
    }
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(requests.len(), Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let version = self.version.load(Ordering::SeqCst);
        requests
            .iter()
            .map(|r| {
                if self.down.load(Ordering::SeqCst) {
                    return Err(SourceError::new(ErrorKind::Unavailable).with_message("down"));
                }
                let key = r.key().unwrap_or_default();
                if key.starts_with("missing") {
                    return Err(SourceError::not_found());
                }
                Ok(RawValue::Text(format!("{key}={version}")))
            })
            .collect()
    }
    fn location(&self) -> Option<String> {
        Some("counting://test".into())
    }
}

#[derive(AsyncAssign, Debug, Default)]
struct Cached {
    #[component(fetch_from = "kv", key = "app/a", cache_for = "1h")]
    a: String,
    #[component(fetch_from = "kv", key = "app/b", ttl = "3600")]
    b: String,
    #[component(fetch_from = "kv", key = "app/c")]
    uncached: String,
}

#[tokio::test]
async fn cached_fields_are_answered_from_memory_until_invalidated() {
    let kv = Counting::default();
    let sources = Sources::new().register("kv", kv.clone());
    let first = Cached::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((first.a.as_str(), first.b.as_str()), ("app/a=0", "app/b=0"));
    // `cache_for` and `ttl` with the same duration share one batch; `uncached` has its own.
    assert_eq!(kv.calls(), 2);

    kv.version.store(1, Ordering::SeqCst);
    let clone = sources.clone(); // clones share the cache
    let second = Cached::fetch_with_cache_with(&clone).await.unwrap();
    assert_eq!(
        (second.a.as_str(), second.b.as_str()),
        ("app/a=0", "app/b=0")
    );
    assert_eq!(second.uncached, "app/c=1");
    assert_eq!(kv.calls(), 3, "only the uncached field went to the source");
    // A per-field fetch honours the cache too.
    assert_eq!(Cached::fetch_a_with(&sources).await.unwrap(), "app/a=0");
    assert_eq!(kv.calls(), 3);

    assert_eq!(sources.invalidate("kv", "app/a"), 1);
    let third = Cached::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((third.a.as_str(), third.b.as_str()), ("app/a=1", "app/b=0"));
    // a+b, c; c; a, c.
    assert_eq!(kv.requests.load(Ordering::SeqCst), 2 + 1 + 1 + 2);

    sources.invalidate_all();
    let fourth = Cached::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(fourth.b, "app/b=1");
}

#[allow(dead_code)]
#[derive(AsyncAssign, Debug, Default)]
struct Wide {
    #[component(fetch_from = "kv", key = "w/1", cache_for = "1h")]
    f1: String,
    #[component(fetch_from = "kv", key = "w/2", cache_for = "1h")]
    f2: String,
    #[component(fetch_from = "kv", key = "w/3", cache_for = "1h")]
    f3: String,
    #[component(fetch_from = "kv", key = "w/4", cache_for = "1h")]
    f4: String,
}

#[tokio::test]
async fn a_thousand_concurrent_misses_cost_one_upstream_call() {
    let kv = Counting::slow(Duration::from_millis(100));
    let sources = Sources::new().register("kv", kv.clone());
    let fetches = (0..1000).map(|_| Wide::fetch_all_components_with(&sources));
    let all = futures::future::join_all(fetches).await;
    assert!(all.iter().all(|r| r.as_ref().unwrap().f4 == "w/4=0"));
    assert_eq!(kv.calls(), 1, "one batch for all 1,000 fetches");
    assert_eq!(kv.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_batch_stays_one_call_through_cache_retry_timeout_and_breaker() {
    let kv = Counting::default();
    let sources = Sources::new().register("kv", kv.clone());
    #[allow(dead_code)]
    #[derive(AsyncAssign, Debug, Default)]
    struct Layered {
        #[component(
            fetch_from = "kv",
            key = "l/1",
            cache_for = "1h",
            retry_attempts = 3,
            retry_backoff = "10ms",
            timeout = "2s",
            circuit_breaker = true,
            max_concurrency = 2
        )]
        f1: String,
        #[component(
            fetch_from = "kv",
            key = "l/2",
            cache_for = "1h",
            retry_attempts = 3,
            retry_backoff = "10ms",
            timeout = "2s",
            circuit_breaker = true,
            max_concurrency = 2
        )]
        f2: String,
        #[component(
            fetch_from = "kv",
            key = "l/3",
            cache_for = "1h",
            retry_attempts = 3,
            retry_backoff = "10ms",
            timeout = "2s",
            circuit_breaker = true,
            max_concurrency = 2
        )]
        f3: String,
    }
    let v = Layered::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(v.f3, "l/3=0");
    assert_eq!(kv.calls(), 1);
    assert_eq!(kv.requests.load(Ordering::SeqCst), 3);
}

#[derive(AsyncAssign, Debug, Default)]
struct Stale {
    #[component(fetch_from = "kv", key = "s/1", cache_for = "50ms", stale_for = "1h")]
    value: String,
    #[component(fetch_from = "kv", key = "s/2", cache_for = "50ms", stale_for = "1h")]
    never_cached: Option<String>,
}

#[tokio::test]
async fn an_expired_value_is_served_when_its_refresh_fails() {
    let kv = Counting::default();
    let sources = Sources::new().register("kv", kv.clone());
    let first = Stale::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(first.value, "s/1=0");
    kv.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let second = Stale::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(second.value, "s/1=0", "stale, because the refresh failed");
    assert_eq!(kv.calls(), 2, "the refresh was tried");
    // Back up: the fresh value replaces the stale one.
    kv.down.store(false, Ordering::SeqCst);
    kv.version.store(7, Ordering::SeqCst);
    let third = Stale::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(third.value, "s/1=7");
}

#[tokio::test]
async fn a_failure_without_a_cached_value_is_an_error_and_not_found_is_not_cached() {
    let kv = Counting::default();
    kv.down.store(true, Ordering::SeqCst);
    let sources = Sources::new().register("kv", kv.clone());
    let errors = Stale::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Unavailable));
    kv.down.store(false, Ordering::SeqCst);
    #[derive(AsyncAssign, Debug, Default)]
    struct Missing {
        #[component(fetch_from = "kv", key = "missing/x", cache_for = "1h")]
        x: Option<String>,
    }
    assert_eq!(
        Missing::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .x,
        None
    );
    assert_eq!(
        Missing::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .x,
        None
    );
    assert_eq!(kv.calls(), 3, "a not-found answer is asked again");
}

#[allow(dead_code)]
#[derive(AsyncAssign, Debug, Default)]
struct Guarded {
    #[component(fetch_from = "kv", key = "g/port", circuit_breaker = "true")]
    port: String,
    #[component(fetch_from = "kv", key = "g/host", circuit_breaker = true)]
    host: String,
}

#[tokio::test]
async fn the_circuit_opens_after_five_failed_calls_and_fails_fast_naming_field_and_key() {
    let kv = Counting::default();
    kv.down.store(true, Ordering::SeqCst);
    let sources = Sources::new().register("kv", kv.clone());
    for _ in 0..5 {
        let errors = Guarded::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        assert!(errors.iter().all(|e| e.kind() == ErrorKind::Unavailable));
    }
    assert_eq!(
        kv.calls(),
        5,
        "one call per fetch: both fields in one batch"
    );
    // Open: shared by another struct on the same source, and by a clone of the sources.
    let errors = Guarded::fetch_all_components_with(&sources.clone())
        .await
        .unwrap_err();
    assert_eq!(kv.calls(), 5, "nothing was sent");
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::CircuitOpen);
    }
    let text = errors[0].to_string();
    assert!(text.contains("Guarded.port"), "{text}");
    assert!(text.contains("g/port"), "{text}");
    assert!(text.contains("circuit is open"), "{text}");
    assert!(text.contains("next probe in"), "{text}");
}

#[tokio::test]
async fn a_half_open_circuit_lets_one_probe_through_and_closes_on_success() {
    let kv = Counting::slow(Duration::from_millis(50));
    kv.down.store(true, Ordering::SeqCst);
    // Open long enough (20 times a call) that the call after the failures finds it open
    // even on a busy machine; the breaker's clock is the real one, not tokio's.
    let open_for = Duration::from_secs(1);
    let guarded = kv.clone().with_layer(
        CircuitBreakerLayer::new()
            .failure_threshold(2)
            .open_for(open_for),
    );
    let request = FetchRequest::for_key("kv", "p/1");
    for _ in 0..2 {
        assert_eq!(
            guarded.fetch(&request).await.unwrap_err().kind(),
            ErrorKind::Unavailable
        );
    }
    assert_eq!(
        guarded.fetch(&request).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen
    );
    assert_eq!(kv.calls(), 2, "an open circuit sends nothing");
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    kv.down.store(false, Ordering::SeqCst);
    // Ten callers at once: one probe goes through, the others fail fast.
    let answers = futures::future::join_all((0..10).map(|_| guarded.fetch(&request))).await;
    let passed = answers.iter().filter(|a| a.is_ok()).count();
    assert_eq!(passed, 1, "{answers:?}");
    assert_eq!(kv.calls(), 3);
    // Closed again: everything passes.
    assert!(guarded.fetch(&request).await.is_ok());
    assert_eq!(kv.calls(), 4);
}

#[tokio::test]
async fn max_concurrency_is_never_exceeded_by_many_callers() {
    let kv = Counting::slow(Duration::from_millis(5));
    let sources = Sources::new().register("kv", kv.clone());
    #[derive(AsyncAssign, Debug, Default)]
    struct Limited {
        #[component(fetch_from = "kv", key = "m/1", max_concurrency = 3)]
        one: String,
    }
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let s = sources.clone();
            tokio::spawn(async move { Limited::fetch_all_components_with(&s).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().one, "m/1=0");
    }
    assert_eq!(kv.calls(), 300);
    let max = kv.max_in_flight.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "at most 3 in flight, saw {max}");

    // The same limit in code.
    let kv2 = Counting::slow(Duration::from_millis(5));
    let limited = kv2.clone().with_layer(ConcurrencyLimitLayer::new(2));
    let request = FetchRequest::for_key("kv", "m/2");
    futures::future::join_all((0..50).map(|_| limited.fetch(&request))).await;
    assert!(kv2.max_in_flight.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn a_cache_layer_in_code_serves_hits_and_sends_only_misses_together() {
    let kv = Counting::default();
    let cached = kv
        .clone()
        .with_layer(CacheLayer::new(Duration::from_secs(60)));
    let a = FetchRequest::for_key("kv", "c/a");
    let b = FetchRequest::for_key("kv", "c/b");
    let c = FetchRequest::for_key("kv", "c/c");
    cached.fetch(&a).await.unwrap();
    let answers = cached.fetch_many(&[&a, &b, &c, &b]).await;
    assert_eq!(answers.len(), 4);
    assert_eq!(
        answers[3].as_ref().unwrap(),
        &RawValue::Text("c/b=0".into())
    );
    assert_eq!(kv.calls(), 2);
    assert_eq!(
        kv.requests.load(Ordering::SeqCst),
        1 + 2,
        "b asked once, a not again"
    );
}

#[tokio::test]
async fn typed_fetchers_refuse_cache_and_circuit_keys_naming_the_field() {
    struct Typed;
    #[async_trait]
    impl component_model::ComponentFetcher<String> for Typed {
        type Error = std::convert::Infallible;
        async fn fetch_component(&self) -> Result<String, Self::Error> {
            Ok("x".into())
        }
    }
    #[derive(AsyncAssign, Debug, Default)]
    struct T {
        #[component(fetch_from = "typed", cache_for = "1h")]
        v: String,
    }
    let sources = Sources::new().register("typed", Typed);
    let errors = T::fetch_all_components_with(&sources).await.unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Config, "{text}");
    assert!(text.contains("T.v") && text.contains("cache_for"), "{text}");
}

// The seed's examples with their attributes verbatim; the seed's `api` needs a `url` here
// (the built-in HTTP source), so its source is registered under a test name.

#[derive(Debug, Default, Deserialize, PartialEq, Clone)]
struct ExpensiveData {
    rows: u32,
}

#[derive(AsyncAssign)]
struct CachedConfig {
    #[component(
    fetch_from = "expensive_api",
    cache_for = "3600",  // Cache for 1 hour
    fallback = "default_value"
  )]
    expensive_setting: ExpensiveData,
}

#[derive(Clone, Default)]
struct Json(Arc<AtomicUsize>);

#[async_trait]
impl Source for Json {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(RawValue::Json(serde_json::json!({ "rows": 12 })))
    }
}

#[tokio::test]
async fn the_seeds_cached_component_fetches_once_an_hour() {
    let api = Json::default();
    let sources = Sources::new().register("expensive_api", api.clone());
    for _ in 0..3 {
        let c: Result<CachedConfig, ComponentError> =
            CachedConfig::fetch_with_cache_with(&sources).await;
        assert_eq!(c.unwrap().expensive_setting, ExpensiveData { rows: 12 });
    }
    assert_eq!(api.0.load(Ordering::SeqCst), 1);
}

#[derive(Debug, Default, Deserialize, PartialEq)]
struct CriticalData {
    level: String,
}

#[derive(AsyncAssign)]
struct ResilientConfig {
    #[component(
        fetch_from = "remote_api",
        retry_attempts = "3",
        circuit_breaker = "true",
        fallback_to = "local_cache"
    )]
    critical_setting: CriticalData,
}

#[tokio::test]
async fn the_seeds_resilient_component_retries_then_falls_back_then_fails_fast() {
    let remote = Counting::default();
    remote.down.store(true, Ordering::SeqCst);
    let local =
        component_model::EnvSource::from_map([("CRITICAL_SETTING", r#"{"level":"from local"}"#)]);
    let sources = Sources::new()
        .register("remote_api", remote.clone())
        .register("local_cache", local);
    let c = ResilientConfig::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(c.critical_setting.level, "from local");
    assert_eq!(remote.calls(), 4, "one call and three retries");
    for _ in 0..4 {
        ResilientConfig::fetch_all_components_with(&sources)
            .await
            .unwrap();
    }
    assert_eq!(
        remote.calls(),
        20,
        "five failed calls (each with its retries) open the circuit"
    );
    let c = ResilientConfig::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(c.critical_setting.level, "from local");
    assert_eq!(
        remote.calls(),
        20,
        "open: not asked, the fallback answers at once"
    );
}

#[tokio::test]
async fn redis_values_are_cached_until_invalidated() {
    let Some((mut conn, p, _cleanup)) = crate::redis::setup("cm_cache").await else {
        return;
    };
    let _: () = conn.set(format!("{p}port"), 8080).await.unwrap();
    let sources = Sources::new().register("redis", RedisSource::new("redis://127.0.0.1:6379"));
    let key = format!("{p}port");
    #[derive(AsyncAssign, Debug, Default)]
    struct R {
        #[component(fetch_from = "redis", key = "${CM_CACHE_KEY}", cache_for = "1h")]
        port: u16,
    }
    let sources = sources.with_env(component_model::EnvSource::from_map([(
        "CM_CACHE_KEY",
        key.as_str(),
    )]));
    let (first, seen) = crate::redis::monitored(&p, R::fetch_all_components_with(&sources)).await;
    assert_eq!(first.unwrap().port, 8080);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let _: () = conn.set(&key, 9090).await.unwrap();
    let (second, seen) = crate::redis::monitored(&p, R::fetch_all_components_with(&sources)).await;
    assert_eq!(second.unwrap().port, 8080, "served from the cache");
    assert!(seen.is_empty(), "no command reached Redis: {seen:?}");
    assert_eq!(sources.invalidate("redis", &key), 1);
    let third = R::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(third.port, 9090);
}

#[derive(AsyncAssign, Debug)]
struct Fleet {
    #[component(fetch_from = "consul", key = "fleet/a", cache_for = "30s")]
    a: u32,
    #[component(fetch_from = "consul", key = "fleet/b", cache_for = "30s")]
    b: u32,
    #[component(fetch_from = "consul", key = "fleet/c", cache_for = "30s")]
    c: String,
}

#[tokio::test]
async fn instances_starting_together_fetch_each_key_once_through_the_shared_redis_tier() {
    use component_model::resilience::CacheTier;
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_tier").await else {
        return;
    };
    let consul = component_model::test_util::ConsulDouble::start().await;
    for (k, v) in [("fleet/a", "1"), ("fleet/b", "2"), ("fleet/c", "three")] {
        consul.put(k, v);
    }
    // Eight instances of one service, each with its own `Sources` (and memory cache).
    let instances = fleet(8, &consul, &prefix);
    let (results, seen) = crate::redis::monitored(
        &prefix,
        futures::future::join_all(instances.iter().map(Fleet::fetch_all_components_with)),
    )
    .await;
    for r in &results {
        let f = r.as_ref().unwrap();
        assert_eq!((f.a, f.b, f.c.as_str()), (1, 2, "three"));
    }
    assert_eq!(
        consul.requests().len(),
        1,
        "one transaction for the whole fleet"
    );
    assert_eq!(consul.requests_to("/v1/txn").len(), 1);
    let sets = seen
        .iter()
        .filter(|l| {
            crate::redis::command(l) == "SET" && l.contains("\"PX\"") && !l.contains("\"NX\"")
        })
        .count();
    assert_eq!(sets, 3, "each value stored once: {seen:#?}");

    // A later instance (a restart) reads the tier: still no new upstream call.
    let late = Sources::new()
        .register(
            "consul",
            component_model::ConsulSource::new(consul.address()),
        )
        .with_shared_cache(RedisSource::new("redis://127.0.0.1:6379").namespaced(prefix.clone()));
    let report = Fleet::fetch_report_with(&late).await;
    assert!(report.is_ok(), "{report}");
    assert!(
        report
            .fields
            .iter()
            .all(|f| f.outcome == component_model::Outcome::CacheHit),
        "{report}"
    );
    assert_eq!(consul.requests().len(), 1);
}

#[derive(AsyncAssign, Debug)]
struct FleetSecret {
    #[component(
        fetch_from = "vault",
        secret = "app/api",
        field = "token",
        cache_for = "30s"
    )]
    token: component_model::SecretString,
}

#[tokio::test]
async fn secret_values_never_reach_the_shared_tier() {
    use component_model::resilience::CacheTier;
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_tier_secret").await else {
        return;
    };
    let vault = component_model::test_util::VaultDouble::start().await;
    vault.put(
        "secret",
        "app/api",
        serde_json::json!({"token": "canary-51c0"}),
    );
    let instances: Vec<Sources> = (0..3)
        .map(|_| {
            Sources::new()
                .register(
                    "vault",
                    component_model::VaultSource::new(vault.url()).with_token("root"),
                )
                .with_shared_cache(
                    RedisSource::new("redis://127.0.0.1:6379").namespaced(prefix.clone()),
                )
        })
        .collect();
    let (results, seen) = crate::redis::monitored(
        &prefix,
        futures::future::join_all(instances.iter().map(FleetSecret::fetch_all_components_with)),
    )
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert!(
        seen.is_empty(),
        "a secret field touched the shared tier: {seen:#?}"
    );
}

#[derive(AsyncAssign, Debug)]
struct FleetOptional {
    #[component(fetch_from = "consul", key = "fleet/absent", cache_for = "30s")]
    absent: Option<u32>,
}

#[tokio::test]
async fn waiting_instances_stop_waiting_when_the_lock_holder_found_nothing() {
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_tier_absent").await else {
        return;
    };
    let consul = component_model::test_util::ConsulDouble::start().await;
    let instances = fleet(6, &consul, &prefix);
    let started = std::time::Instant::now();
    let results = futures::future::join_all(
        instances
            .iter()
            .map(FleetOptional::fetch_all_components_with),
    )
    .await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Ok(f) if f.absent.is_none()))
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "instances waited for a value that never comes: {:?}",
        started.elapsed()
    );
}

/// `n` instances of one service: each its own `Sources` on the Consul double, sharing the
/// Redis tier under `prefix`.
fn fleet(
    n: usize,
    consul: &component_model::test_util::ConsulDouble,
    prefix: &str,
) -> Vec<Sources> {
    use component_model::resilience::CacheTier;
    (0..n)
        .map(|_| {
            Sources::new()
                .register(
                    "consul",
                    component_model::ConsulSource::new(consul.address()),
                )
                .with_shared_cache(
                    RedisSource::new("redis://127.0.0.1:6379").namespaced(prefix.to_owned()),
                )
        })
        .collect()
}
