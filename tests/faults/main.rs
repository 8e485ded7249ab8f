//! Resilience proven against real servers through `test_util::FaultProxy`: retries recover
//! from resets inside one batch, the circuit breaker opens, fails fast, probes once and
//! closes, a blackhole times out on time, stale-if-error serves the old value from a real
//! PostgreSQL, `max_concurrency` holds at the server, `local_cache` restarts a service
//! whose source is down, and no task this library spawned outlives its fetch.
//!
//! Alone in its binary: the count of the library's live tasks is per process, and the other
//! binaries' Redis tests keep connection drivers alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use component_model::resilience::{CircuitBreakerLayer, SourceExt};
use component_model::test_util::{ConsulDouble, Fault, FaultProxy, library_tasks_alive};
use component_model::{
    AsyncAssign, ConsulSource, DatabaseSource, ErrorKind, HttpSource, Outcome, Sources, VaultSource,
};
use component_model_tests::{skip, unique};

/// Every test of this binary holds this lock. The count of the library's live tasks is
/// per process, and nearly every fetch spawns counted tasks (the HTTP client built off the
/// runtime, a cache's fetch, a `local_cache` write, a watcher): a test that counts them
/// runs [`alone`], every other one [`shared`] — never while one counts. The tests that
/// assert timings and the one that loads the CPU (10,000 callers) run alone too, so none
/// skews another on a 2-core machine.
static SERIAL: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// For a test that counts the library's tasks or asserts timings: no other test runs.
async fn alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    SERIAL.write().await
}

/// For every other test: it may run beside the others that share, never beside one alone.
async fn shared() -> tokio::sync::RwLockReadGuard<'static, ()> {
    SERIAL.read().await
}

async fn consul_behind_proxy() -> (ConsulDouble, FaultProxy) {
    let consul = ConsulDouble::start().await;
    let proxy = FaultProxy::start(consul.address().parse().expect("address"))
        .await
        .expect("proxy");
    (consul, proxy)
}

#[derive(AsyncAssign, Debug)]
struct Retried {
    #[component(
        fetch_from = "consul",
        key = "app/a",
        retry_attempts = 3,
        retry_backoff = "10ms"
    )]
    a: u32,
    #[component(
        fetch_from = "consul",
        key = "app/b",
        retry_attempts = 3,
        retry_backoff = "10ms"
    )]
    b: u32,
    #[component(
        fetch_from = "consul",
        key = "app/c",
        retry_attempts = 3,
        retry_backoff = "10ms"
    )]
    c: u32,
}

#[tokio::test]
async fn retry_recovers_from_resets_inside_one_batch() {
    let _serial = shared().await;
    let (consul, proxy) = consul_behind_proxy().await;
    for (k, v) in [("app/a", "1"), ("app/b", "2"), ("app/c", "3")] {
        consul.put(k, v);
    }
    let sources = Sources::new().register("consul", ConsulSource::new(proxy.address().to_string()));
    proxy.reset_next(2);
    let report = Retried::fetch_report_with(&sources).await;
    let r = report.result.as_ref().expect("fetched after two resets");
    assert_eq!((r.a, r.b, r.c), (1, 2, 3));
    // Three attempts, each one connection carrying the whole batch; one reached Consul.
    assert_eq!(proxy.accepted(), 3);
    assert_eq!(consul.requests_to("/v1/txn").len(), 1);
    assert_eq!(consul.requests_to("/v1/kv").len(), 0);
    for field in &report.fields {
        assert_eq!(field.outcome, Outcome::Retried { retries: 2 }, "{report}");
    }
}

#[derive(AsyncAssign, Debug)]
struct Guarded {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_lets_one_probe_through_and_closes() {
    let _serial = alone().await;
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    // Long enough that the fast-failing call below comes while it is open, even on a busy
    // machine.
    let open_for = Duration::from_secs(1);
    let guarded = ConsulSource::new(proxy.address().to_string()).with_layer(
        CircuitBreakerLayer::new()
            .failure_threshold(3)
            .open_for(open_for),
    );
    let sources = Sources::new().register("consul", guarded);

    proxy.set(Fault::Reset);
    for _ in 0..3 {
        let e = Guarded::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        assert_eq!(e[0].kind(), ErrorKind::Unavailable, "{}", e[0]);
    }
    assert_eq!(proxy.accepted(), 3);

    // Open: fails at once, without a connection (`accepted` below), naming field, source,
    // key and the probe; well before the circuit would let a probe through.
    let started = Instant::now();
    let e = Guarded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e[0].kind(), ErrorKind::CircuitOpen, "{}", e[0]);
    assert!(
        took < open_for / 4,
        "an open circuit answered after {took:?}"
    );
    let text = e[0].to_string();
    assert!(
        text.starts_with("Guarded.port: consul key `app/port`"),
        "{text}"
    );
    assert!(
        text.contains("circuit is open") && text.contains("next probe in"),
        "{text}"
    );
    assert_eq!(proxy.accepted(), 3);

    // Half open: of ten concurrent callers, one probe goes through; it succeeds and closes.
    proxy.set(Fault::Latency(Duration::from_millis(150)));
    tokio::time::sleep(open_for + Duration::from_millis(100)).await;
    consul.clear_requests();
    let results =
        futures::future::join_all((0..10).map(|_| Guarded::fetch_all_components_with(&sources)))
            .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let open = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e[0].kind() == ErrorKind::CircuitOpen))
        .count();
    assert_eq!((ok, open), (1, 9));
    assert_eq!(consul.requests().len(), 1, "one probe reached the server");
    proxy.set(Fault::Pass);
    let closed =
        futures::future::join_all((0..5).map(|_| Guarded::fetch_all_components_with(&sources)))
            .await;
    assert!(closed.iter().all(Result::is_ok), "closed again");
}

#[derive(AsyncAssign, Debug)]
struct Bounded {
    #[component(fetch_from = "consul", key = "app/port", timeout = "300ms")]
    port: u16,
    #[component(fetch_from = "env", fallback = "x")]
    other: String,
}

#[tokio::test]
async fn a_blackhole_times_out_within_the_deadline() {
    let _serial = alone().await;
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    let sources = Sources::new().register("consul", ConsulSource::new(proxy.address().to_string()));
    proxy.set(Fault::Blackhole);
    let started = Instant::now();
    let e = Bounded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind(), ErrorKind::Timeout, "{}", e[0]);
    assert!(
        e[0].to_string()
            .starts_with("Bounded.port: consul key `app/port`"),
        "{}",
        e[0]
    );
    // Not before the field's 300 ms, and well before the source's default (10 s): the
    // field's deadline is the one that ended it (the slack is for a busy machine).
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "timed out after {took:?}"
    );
    // A response cut short is an error too, on time, and not a panic.
    proxy.set(Fault::CutAfter(20));
    let e = Bounded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(
        matches!(e[0].kind(), ErrorKind::Unavailable | ErrorKind::Decode),
        "{}",
        e[0]
    );
}

// Multi-threaded: `local_cache` writes on a blocking task there (inline on one thread).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_failed_fetch_leaves_no_task_of_ours_behind() {
    let _serial = alone().await;
    assert_eq!(settled().await, 0, "no task of ours is alive before");
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    consul.put("app/name", "billing");
    let dir = std::env::temp_dir().join(unique("cm_tasks"));
    let sources = Sources::new()
        .register("consul", ConsulSource::new(proxy.address().to_string()))
        .with_local_cache(&dir);
    assert_eq!(
        Cached::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .port,
        8080
    );
    proxy.set(Fault::Blackhole);
    // Cancelled from outside while waiting on a blackhole, and failed on its own timeout.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        Bounded::fetch_all_components_with(&sources),
    )
    .await;
    assert!(cancelled.is_err(), "the blackhole answered: {cancelled:?}");
    let e = Bounded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind(), ErrorKind::Timeout, "{}", e[0]);
    proxy.set(Fault::Reset);
    assert_eq!(
        Cached::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .port,
        8080
    );
    assert_eq!(
        library_tasks_alive(),
        0,
        "no task of this library outlives a fetch"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(AsyncAssign, Debug)]
struct Cached {
    #[component(fetch_from = "consul", key = "app/port", fallback_to = "local_cache")]
    port: u16,
    #[component(fetch_from = "consul", key = "app/name", fallback_to = "local_cache")]
    name: String,
}

#[tokio::test]
async fn local_cache_starts_a_service_whose_source_is_down_with_the_stored_values() {
    let _serial = shared().await;
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    consul.put("app/name", "billing");
    let dir = std::env::temp_dir().join(unique("cm_lkg"));
    let first = Sources::new()
        .register("consul", ConsulSource::new(proxy.address().to_string()))
        .with_local_cache(&dir);
    let up = Cached::fetch_all_components_with(&first).await.unwrap();
    assert_eq!((up.port, up.name.as_str()), (8080, "billing"));
    let file = dir.join("Cached.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    drop(first);

    // The source goes down; the service restarts (new `Sources`, same directory).
    proxy.set(Fault::Reset);
    let restarted = Sources::new()
        .register("consul", ConsulSource::new(proxy.address().to_string()))
        .with_local_cache(&dir);
    let report = Cached::fetch_report_with(&restarted).await;
    let value = report
        .result
        .as_ref()
        .expect("started from the stored values");
    assert_eq!((value.port, value.name.as_str()), (8080, "billing"));
    for field in &report.fields {
        assert!(
            matches!(
                field.outcome,
                Outcome::FallbackTo {
                    source: "local_cache",
                    age: Some(_)
                }
            ),
            "{report}"
        );
    }
    assert!(
        report
            .to_string()
            .contains("fallback_to local_cache (stored"),
        "{report}"
    );

    // A corrupt file is an error naming it, kept beside the primary error; never a panic.
    std::fs::write(&file, b"{ not json").unwrap();
    let e = Cached::fetch_all_components_with(&restarted)
        .await
        .unwrap_err();
    let text = e[0].to_string();
    assert!(
        text.contains("fallback_to `local_cache` failed too"),
        "{text}"
    );
    assert!(
        text.contains("Cached.json") && text.contains("corrupt"),
        "{text}"
    );

    // The source comes back: the next fetch stores over the corrupt file.
    proxy.set(Fault::Pass);
    consul.put("app/port", "9090");
    assert_eq!(
        Cached::fetch_all_components_with(&restarted)
            .await
            .unwrap()
            .port,
        9090
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("9090"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(AsyncAssign, Debug)]
struct SecretBackup {
    #[component(
        fetch_from = "vault",
        secret = "app/db",
        field = "password",
        fallback_to = "local_cache"
    )]
    password: component_model::SecretString,
    #[component(
        fetch_from = "vault",
        secret = "app/db",
        field = "user",
        fallback_to = "local_cache"
    )]
    user: String,
}

#[tokio::test]
async fn secret_values_are_never_written_to_the_local_cache() {
    let _serial = shared().await;
    let vault = component_model::test_util::VaultDouble::start().await;
    vault.put(
        "secret",
        "app/db",
        serde_json::json!({"password": "canary-9f3e", "user": "svc"}),
    );
    let dir = std::env::temp_dir().join(unique("cm_secret_lkg"));
    let sources = Sources::new()
        .register("vault", VaultSource::new(vault.url()).with_token("root"))
        .with_local_cache(&dir);
    let got = SecretBackup::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(got.user, "svc");
    // Every value of a Vault source is secret: nothing is stored, not even `user`.
    let stored = std::fs::read_to_string(dir.join("SecretBackup.json")).unwrap_or_default();
    assert!(
        !stored.contains("canary-9f3e") && !stored.contains("svc"),
        "{stored}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn exec(db: &sqlx::PgPool, sql: String) {
    use sqlx::Executor;
    db.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("setup SQL");
}

/// A proxy in front of the real PostgreSQL, and a pool through it whose connections use
/// `schema`.
async fn postgres_behind_proxy(schema: &str) -> (FaultProxy, sqlx::PgPool) {
    let proxy = FaultProxy::start("127.0.0.1:5432".parse().unwrap())
        .await
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions = PG_URL.parse().unwrap();
    let options = options
        .port(proxy.address().port())
        .options([("search_path", schema)]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(options);
    (proxy, pool)
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(AsyncAssign, Debug)]
struct Pricing {
    #[component(
        fetch_from = "postgres",
        query = "SELECT value FROM cm_prices WHERE name = $1",
        key = "base",
        cache_for = "1s",
        stale_for = "1h"
    )]
    base: String,
}

#[tokio::test]
async fn stale_if_error_serves_the_old_value_when_postgres_is_cut_off() {
    let _serial = shared().await;
    let admin = match sqlx::PgPool::connect(PG_URL).await {
        Ok(p) => p,
        Err(e) => return skip("PostgreSQL at 127.0.0.1:5432", e),
    };
    let schema = unique("cm_faults");
    exec(&admin, format!("CREATE SCHEMA {schema}")).await;
    let setup = format!(
        "CREATE TABLE {schema}.cm_prices (name text primary key, value text);
         INSERT INTO {schema}.cm_prices VALUES ('base', 'v1')"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&admin)
        .await
        .unwrap();

    let (proxy, pool) = postgres_behind_proxy(&schema).await;
    let sources = Sources::new().register("postgres", DatabaseSource::new(pool));

    assert_eq!(
        Pricing::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .base,
        "v1"
    );
    exec(
        &admin,
        format!("UPDATE {schema}.cm_prices SET value = 'v2'"),
    )
    .await;
    // Within `cache_for` (1 s: many times what the UPDATE takes, even on a busy machine):
    // answered from memory, the old value.
    let report = Pricing::fetch_report_with(&sources).await;
    assert_eq!(report.fields[0].outcome, Outcome::CacheHit, "{report}");
    assert_eq!(report.result.as_ref().expect("cached").base, "v1");

    proxy.set(Fault::Reset);
    // Past `cache_for`: the value must be fetched again, and the fetch fails.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = Pricing::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().expect("stale value").base,
        "v1",
        "{report}"
    );
    assert!(
        matches!(report.fields[0].outcome, Outcome::Stale { .. }),
        "{report}"
    );

    proxy.set(Fault::Pass);
    let fresh = Pricing::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(fresh.base, "v2");
    exec(&admin, format!("DROP SCHEMA {schema} CASCADE")).await;
}

/// An HTTP server that answers `7` after `delay`, counting requests in flight.
async fn counting_server(
    delay: Duration,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (n, m) = (now.clone(), most.clone());
    let app = axum::Router::new().route(
        "/v",
        axum::routing::get(move || {
            let (n, m) = (n.clone(), m.clone());
            async move {
                let at = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(at, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                n.fetch_sub(1, Ordering::SeqCst);
                "7"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, now, most)
}

#[derive(AsyncAssign, Debug)]
struct Limited {
    #[component(fetch_from = "slow_api", path = "/v", max_concurrency = 4)]
    v: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_never_put_more_than_max_concurrency_requests_in_flight() {
    let _serial = alone().await;
    let (addr, _, most) = counting_server(Duration::from_millis(1)).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let sources = Sources::new().register("slow_api", HttpSource::new(proxy.url()));
    let callers = (0..10_000).map(|_| {
        let sources = sources.clone();
        async move { Limited::fetch_all_components_with(&sources).await }
    });
    let results = futures::future::join_all(callers).await;
    assert!(results.iter().all(|r| matches!(r, Ok(l) if l.v == 7)));
    let most = most.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&most),
        "{most} requests in flight at the server"
    );
}

#[derive(AsyncAssign, Debug, Default)]
#[component(watch)]
struct Watched {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
}

/// The next update, within 15 s, is an applied one (after an outage ends).
async fn applied_after_outage(updates: &mut component_model::ConfigUpdates) {
    let update = tokio::time::timeout(Duration::from_secs(15), futures::StreamExt::next(updates))
        .await
        .expect("an update after the outage")
        .unwrap();
    assert!(
        matches!(update, component_model::ConfigUpdate::Applied { .. }),
        "{update:?}"
    );
}

/// Waits (at most 2 s) until no task of the library is alive.
async fn settled() -> usize {
    for _ in 0..200 {
        if library_tasks_alive() == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    library_tasks_alive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_live_or_stopping_it_ends_its_watcher_even_through_a_blackhole() {
    let _serial = alone().await;
    assert_eq!(settled().await, 0, "no task of ours is alive before");
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    let sources = Sources::new().register("consul", ConsulSource::new(proxy.address().to_string()));
    let live = Watched::watch_with(&sources).await.unwrap();
    let reader = live.clone();
    assert_eq!(library_tasks_alive(), 1, "one watcher for the struct");
    drop(live);
    assert_eq!(library_tasks_alive(), 1, "a clone keeps it");
    // The watcher is blocked on a query the proxy never answers: it still ends.
    proxy.set(Fault::Blackhole);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(reader);
    assert_eq!(settled().await, 0, "no task outlives the last Live");

    proxy.set(Fault::Pass);
    let live = Watched::watch_with(&sources).await.unwrap();
    assert_eq!(library_tasks_alive(), 1);
    live.stop();
    assert_eq!(settled().await, 0, "stop() ends the watcher");
    assert_eq!(live.get().port, 8080, "the value stays readable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_recovers_after_its_connection_is_reset_and_reads_again() {
    let _serial = alone().await;
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    let sources = Sources::new().register("consul", ConsulSource::new(proxy.address().to_string()));
    let live = component_model::Live::<Watched>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The server goes away (every connection reset) while the value changes.
    proxy.set(Fault::Reset);
    tokio::time::sleep(Duration::from_millis(100)).await;
    consul.put("app/port", "9090"); // its answer to the waiting query is reset
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.get().port, 8080);
    proxy.set(Fault::Pass);
    applied_after_outage(&mut updates).await;
    assert_eq!(
        live.get().port,
        9090,
        "the change made during the outage is not lost"
    );
    live.stop();
    assert_eq!(settled().await, 0);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
struct LivePg {
    #[component(fetch_from = "postgres", table = "cm_live_outage", key = "level")]
    level: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_listener_cut_off_reconnects_and_reads_what_changed_meanwhile() {
    let _serial = alone().await;
    let admin = match sqlx::PgPool::connect(PG_URL).await {
        Ok(p) => p,
        Err(e) => return skip("PostgreSQL at 127.0.0.1:5432", e),
    };
    let schema = unique("cm_live_faults");
    exec(&admin, format!("CREATE SCHEMA {schema}")).await;
    exec(
        &admin,
        format!(
            "CREATE TABLE {schema}.cm_live_outage (key text primary key, value text);
             INSERT INTO {schema}.cm_live_outage VALUES ('level', 'info')"
        ),
    )
    .await;
    let (proxy, pool) = postgres_behind_proxy(&schema).await;
    let db = DatabaseSource::new(pool);
    db.install_notify_trigger("cm_live_outage").await.unwrap();
    let sources = Sources::new().register("postgres", db);
    let live = component_model::Live::<LivePg>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The database goes away (connections reset) while the value changes.
    proxy.set(Fault::Reset);
    exec(
        &admin,
        format!("UPDATE {schema}.cm_live_outage SET value = 'debug'"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.get().level, "info");
    proxy.set(Fault::Pass);
    applied_after_outage(&mut updates).await;
    assert_eq!(live.get().level, "debug");
    // The watcher ends with the Live; the Redis connection's driver with the last
    // holder of the source.
    drop((live, updates, sources));
    assert_eq!(settled().await, 0);
    exec(&admin, format!("DROP SCHEMA {schema} CASCADE")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_watch_for_updates_fills_self_then_yields_updates() {
    // The only test in this binary that sets the process-wide default.
    let _serial = alone().await;
    let consul = ConsulDouble::start().await;
    consul.put("app/port", "8080");
    Sources::set_global(Sources::new().register("consul", ConsulSource::new(consul.address())))
        .expect("the first global");
    let mut config = Watched::default();
    let mut updates = config.watch_for_updates().await;
    assert_eq!(config.port, 8080, "filled before the first update");
    tokio::time::sleep(Duration::from_millis(200)).await;
    consul.put("app/port", "9090");
    let update = tokio::time::timeout(
        Duration::from_secs(5),
        futures::StreamExt::next(&mut updates),
    )
    .await
    .expect("an update")
    .unwrap();
    assert!(
        matches!(
            update,
            component_model::ConfigUpdate::Applied { version: 2, .. }
        ),
        "{update:?}"
    );
    // How a user applies it: read the applied version from the stream's `Live`.
    let live = updates.live::<Watched>().expect("the stream's Live");
    config.port = live.get().port;
    assert_eq!(config.port, 9090);
    drop(live);
    drop(updates);
    assert_eq!(settled().await, 0, "dropping the stream stops its watcher");
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
struct LiveRedis {
    #[component(fetch_from = "redis", key = "${CM_FAULT_KEY}")]
    level: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_watch_cut_off_reconnects_and_reads_what_changed_meanwhile() {
    let _serial = alone().await;
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => return skip("Redis at 127.0.0.1:6379", e),
    };
    let key = unique("cm_fault_live");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("info")
        .query_async(&mut conn)
        .await
        .unwrap();
    let proxy = FaultProxy::start("127.0.0.1:6379".parse().unwrap())
        .await
        .unwrap();
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_FAULT_KEY",
            key.as_str(),
        )]))
        .register(
            "redis",
            component_model::RedisSource::new(format!("redis://{}", proxy.address()))
                .with_timeout(Duration::from_millis(500)),
        );
    let live = component_model::Live::<LiveRedis>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.set(Fault::Reset);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("debug")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live.get().level, "info");
    proxy.set(Fault::Pass);
    applied_after_outage(&mut updates).await;
    assert_eq!(live.get().level, "debug");
    // The watcher ends with the Live; the Redis connection's driver with the last
    // holder of the source.
    drop((live, updates, sources));
    assert_eq!(settled().await, 0);
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_value_that_does_not_convert_never_replaces_the_last_known_good_one() {
    let _serial = shared().await;
    let (consul, proxy) = consul_behind_proxy().await;
    consul.put("app/port", "8080");
    consul.put("app/name", "billing");
    let dir = std::env::temp_dir().join(unique("cm_lkg_bad"));
    let sources = Sources::new()
        .register("consul", ConsulSource::new(proxy.address().to_string()))
        .with_local_cache(&dir);
    Cached::fetch_all_components_with(&sources).await.unwrap();
    consul.put("app/port", "eighty"); // not a u16
    let e = Cached::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind(), ErrorKind::Decode, "{}", e[0]);
    assert!(e[0].to_string().starts_with("Cached.port"), "{}", e[0]);
    let stored = std::fs::read_to_string(dir.join("Cached.json")).unwrap();
    assert!(
        stored.contains("8080") && !stored.contains("eighty"),
        "{stored}"
    );
    proxy.set(Fault::Reset);
    let restarted = Sources::new()
        .register("consul", ConsulSource::new(proxy.address().to_string()))
        .with_local_cache(&dir);
    assert_eq!(
        Cached::fetch_all_components_with(&restarted)
            .await
            .unwrap()
            .port,
        8080
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_secret_field_falling_back_to_local_cache_says_why_it_finds_nothing() {
    let _serial = shared().await;
    let vault = component_model::test_util::VaultDouble::start().await;
    vault.put(
        "secret",
        "app/db",
        serde_json::json!({"password": "canary-5e", "user": "svc"}),
    );
    let proxy = FaultProxy::start(vault.url().trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(unique("cm_secret_why"));
    let sources = Sources::new()
        .register("vault", VaultSource::new(proxy.url()).with_token("root"))
        .with_local_cache(&dir);
    SecretBackup::fetch_all_components_with(&sources)
        .await
        .unwrap();
    proxy.set(Fault::Reset);
    let errors = SecretBackup::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    for e in &errors {
        let text = e.to_string();
        assert!(
            text.contains("secret values are never stored for fallback"),
            "{text}"
        );
        assert!(!text.contains("canary"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_watch_ends_its_subscription_tasks_with_the_live_even_through_a_blackhole() {
    use component_model::WebSocketSource;
    use component_model::test_util::WebSocketServer;
    #[derive(AsyncAssign, Debug)]
    struct Pushed {
        #[component(stream_from = "websocket", url = "ws://config.service/n")]
        n: u32,
    }
    let _serial = alone().await;
    assert_eq!(settled().await, 0, "no task of ours is alive before");
    let server = WebSocketServer::start().await;
    server.set("1");
    let proxy = FaultProxy::start(server.address()).await.unwrap();
    let sources = Sources::new().register(
        "websocket",
        WebSocketSource::new().resolve("config.service", proxy.address()),
    );
    let live = Pushed::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();
    server.set("2");
    let update = tokio::time::timeout(
        Duration::from_secs(10),
        futures::StreamExt::next(&mut updates),
    )
    .await
    .expect("an update")
    .unwrap();
    assert!(
        matches!(update, component_model::ConfigUpdate::Applied { .. }),
        "{update:?}"
    );
    assert_eq!(live.get().n, 2);
    // The watcher and one subscription per stream request.
    assert_eq!(library_tasks_alive(), 2);
    proxy.set(Fault::Blackhole);
    tokio::time::sleep(Duration::from_millis(100)).await;
    live.stop();
    assert_eq!(
        settled().await,
        0,
        "stop() ends the watcher and the subscription"
    );
    assert_eq!(live.get().n, 2, "the value stays readable");
}
