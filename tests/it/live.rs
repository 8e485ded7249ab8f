//! Live configuration: `Live<T>` sees changes, validates before the swap, keeps the old
//! value on a failed fetch or a refused candidate, versions and rolls back, coalesces
//! bursts, polls sources that cannot watch, and never shows a secret in an update.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::{
    AsyncAssign, Change, Changes, ConfigUpdate, FetchRequest, Live, RawValue, SecretString, Source,
    SourceError, Sources, async_trait,
};
use futures::StreamExt;

/// An in-memory store that can watch: every `set` tells its watchers.
#[derive(Clone)]
pub(crate) struct Store {
    values: Arc<Mutex<HashMap<String, String>>>,
    changed: tokio::sync::broadcast::Sender<()>,
    fetches: Arc<AtomicUsize>,
    watches: bool,
}

impl Store {
    pub(crate) fn new(pairs: &[(&str, &str)]) -> Self {
        Store {
            values: Arc::new(Mutex::new(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )),
            changed: tokio::sync::broadcast::channel(1024).0,
            fetches: Arc::default(),
            watches: true,
        }
    }
    fn polled(pairs: &[(&str, &str)]) -> Self {
        Store {
            watches: false,
            ..Store::new(pairs)
        }
    }
    pub(crate) fn set(&self, key: &str, value: &str) {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_owned(), value.to_owned());
        let _ = self.changed.send(());
    }
    /// `key` answers `unavailable` from now on.
    fn fail_key(&self, key: &str) {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_owned(), "\u{0}down".to_owned());
        let _ = self.changed.send(());
    }
    fn remove(&self, key: &str) {
        self.values.lock().unwrap().remove(key);
        let _ = self.changed.send(());
    }
}

#[async_trait]
impl Source for Store {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let key = request.key().unwrap_or_default();
        match self.values.lock().unwrap().get(key).cloned() {
            Some(v) if v == "\u{0}down" => {
                Err(SourceError::new(component_model::ErrorKind::Unavailable)
                    .with_message("the store is down"))
            }
            Some(v) => Ok(RawValue::Text(v)),
            None => Err(SourceError::not_found()),
        }
    }
    fn watch(&self, _requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        if !self.watches {
            return Err(
                SourceError::new(component_model::ErrorKind::Config).with_message("cannot watch")
            );
        }
        let rx = self.changed.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(()) => return Some((Ok(Change::All), rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })
        .boxed())
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Service {
    #[component(fetch_from = "store", key = "port", watch)]
    port: u16,
    #[component(fetch_from = "store", key = "pool", watch)]
    pool: u32,
    #[component(fetch_from = "store", key = "token", watch)]
    token: SecretString,
}

fn service_store() -> Store {
    Store::new(&[("port", "8080"), ("pool", "10"), ("token", "canary-a1")])
}

async fn next(updates: &mut component_model::ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update within 5 s")
        .expect("the stream goes on")
}

fn quick(sources: &Sources) -> component_model::LiveBuilder<'_, Service> {
    Live::<Service>::builder(sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .validate(|s: &Service| match s.pool {
            0 => Err("the pool must not be empty"),
            _ => Ok(()),
        })
}

#[tokio::test]
async fn a_change_is_applied_with_its_diff_and_secrets_say_only_changed() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let live = quick(&sources).start().await.unwrap();
    let mut updates = live.changes();
    assert_eq!((live.get().port, live.version()), (8080, 1));

    store.set("port", "9090");
    match next(&mut updates).await {
        ConfigUpdate::Applied {
            version, fields, ..
        } => {
            assert_eq!(version, 2);
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "Service.port");
            assert_eq!(fields[0].key.as_deref(), Some("port"));
            assert_eq!(
                (fields[0].old.as_deref(), fields[0].new.as_deref()),
                (Some("8080"), Some("9090"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().port, 9090);

    store.set("token", "canary-b2");
    let update = next(&mut updates).await;
    let text = format!("{update} {update:?}");
    assert!(text.contains("Service.token: changed (secret)"), "{text}");
    assert!(!text.contains("canary"), "{text}");
}

#[tokio::test]
async fn a_refused_candidate_or_a_failed_field_keeps_the_old_value() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let live = quick(&sources).start().await.unwrap();
    let mut updates = live.changes();

    store.set("pool", "0");
    match next(&mut updates).await {
        ConfigUpdate::Rejected { reason, .. } => {
            assert_eq!(reason, "the pool must not be empty")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((live.get().pool, live.version()), (10, 1));

    store.set("pool", "12");
    store.remove("port");
    match next(&mut updates).await {
        ConfigUpdate::Rejected { reason, fields, .. } => {
            assert_eq!(fields, ["Service.port"]);
            assert!(
                reason.contains("Service.port: store key `port`: not found"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Never half-updated: `pool` changed too, and is not applied alone.
    assert_eq!((live.get().port, live.get().pool), (8080, 10));
}

#[tokio::test]
async fn the_first_fetch_is_validated_too() {
    let store = Store::new(&[("port", "8080"), ("pool", "0"), ("token", "t")]);
    let sources = Sources::new().register("store", store);
    let errors = quick(&sources).start().await.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), component_model::ErrorKind::Invalid);
    assert!(errors[0].to_string().contains("the pool must not be empty"));
}

#[tokio::test]
async fn versions_are_kept_and_one_can_be_rolled_back() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let live = quick(&sources).history(3).start().await.unwrap();
    let mut updates = live.changes();
    for port in ["8081", "8082", "8083"] {
        store.set("port", port);
        assert!(matches!(
            next(&mut updates).await,
            ConfigUpdate::Applied { .. }
        ));
    }
    let kept: Vec<u64> = live.history().iter().map(|v| v.version).collect();
    assert_eq!(kept, [2, 3, 4], "the last 3 versions");
    assert_eq!(
        live.rollback(1).await.unwrap_err().to_string(),
        "version 1 is not in the history (see `Live::history`)"
    );
    live.rollback(2).await.unwrap();
    assert_eq!(
        next(&mut updates).await,
        ConfigUpdate::RolledBack { to_version: 2 }
    );
    assert_eq!((live.get().port, live.version()), (8081, 2));
    // The next change applies on top of the rolled-back version, with a new number.
    store.set("pool", "11");
    match next(&mut updates).await {
        ConfigUpdate::Applied {
            version, fields, ..
        } => {
            assert_eq!(version, 5);
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["Service.port", "Service.pool"]);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_burst_of_writes_makes_few_swaps() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let live = Live::<Service>::builder(&sources)
        .quiescence(Duration::from_millis(30), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    let started = tokio::time::Instant::now();
    for i in 0..100 {
        store.set("pool", &(100 + i).to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let burst = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut applied = 0;
    while let Ok(Some(u)) = tokio::time::timeout(Duration::from_millis(50), updates.next()).await {
        assert!(matches!(u, ConfigUpdate::Applied { .. }), "{u:?}");
        applied += 1;
    }
    let bound = (burst.as_millis() / 200 + 1) as usize + 1;
    assert!(
        (1..=bound).contains(&applied),
        "{applied} swaps for a {burst:?} burst (bound {bound})"
    );
    assert_eq!(live.get().pool, 199, "the last value wins");
}

#[derive(AsyncAssign, Debug)]
#[component(watch, watch_interval = "50ms")]
#[allow(dead_code)]
struct Polled {
    #[component(fetch_from = "plain", key = "level")]
    level: String,
}

#[tokio::test]
async fn a_source_that_cannot_watch_is_polled_at_watch_interval() {
    let store = Store::polled(&[("level", "info")]);
    let sources = Sources::new().register("plain", store.clone());
    let live = Polled::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();
    store.set("level", "debug");
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { version: 2, .. }
    ));
    assert_eq!(live.get().level, "debug");
    // Polling with nothing changed applies nothing.
    let before = store.fetches.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(store.fetches.load(Ordering::SeqCst) > before, "polled");
    assert_eq!(live.version(), 2);
}

#[tokio::test]
async fn refresh_reads_now_and_a_slow_consumer_is_told_what_it_missed() {
    let store = Store::polled(&[("port", "1"), ("pool", "1"), ("token", "t")]);
    let sources = Sources::new().register("store", store.clone());
    let live = Live::<Service>::builder(&sources).start().await.unwrap();
    let mut slow = live.changes();
    assert_eq!(live.refresh().await, None, "nothing changed");
    for i in 2..100 {
        store.set("pool", &i.to_string());
        assert!(matches!(
            live.refresh().await,
            Some(ConfigUpdate::Applied { .. })
        ));
    }
    assert_eq!(live.get().pool, 99);
    match next(&mut slow).await {
        ConfigUpdate::Lagged { missed } => assert_eq!(missed, 98 - 64),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next(&mut slow).await,
        ConfigUpdate::Applied { .. }
    ));
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct FromConsul {
    #[component(fetch_from = "consul", key = "live/app/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "live/app/name")]
    name: String,
    #[component(fetch_from = "consul", key = "live/app/name")]
    name_again: String,
}

#[tokio::test]
async fn consul_changes_arrive_through_one_blocking_query_on_the_common_prefix() {
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put("live/app/port", "8080");
    consul.put("live/app/name", "billing");
    let sources = Sources::new().register(
        "consul",
        component_model::ConsulSource::new(consul.address()),
    );
    let live = Live::<FromConsul>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await; // the watch is in place
    consul.put("live/app/port", "9090");
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "FromConsul.port");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().port, 9090);
    // One blocking query on `live/app/` (recurse) carries the watch, not one per key/field.
    let blocking: Vec<_> = consul
        .requests_to("/v1/kv")
        .into_iter()
        .filter(|r| r.query_param("index").is_some())
        .collect();
    assert!(!blocking.is_empty());
    assert!(
        blocking
            .iter()
            .all(|r| r.path == "/v1/kv/live/app/" && r.query_param("recurse").is_some()),
        "{:?}",
        blocking.iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // A snapshot restore sends the index backwards: the watcher resets and reads again.
    consul.restore_snapshot(1);
    consul.put("live/app/name", "orders");
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["FromConsul.name", "FromConsul.name_again"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().name, "orders");
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Scattered {
    #[component(fetch_from = "consul", key = "alpha/port", watch)]
    port: u16,
    #[component(fetch_from = "consul", key = "beta/name", watch)]
    name: String,
    #[component(fetch_from = "consul", key = "beta/unwatched")]
    other: String,
}

#[tokio::test]
async fn keys_without_a_common_prefix_get_one_blocking_query_each_and_unmarked_fields_none() {
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put("alpha/port", "1");
    consul.put("beta/name", "a");
    consul.put("beta/unwatched", "x");
    let sources = Sources::new().register(
        "consul",
        component_model::ConsulSource::new(consul.address()),
    );
    let live = Scattered::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await;
    consul.put("beta/name", "b");
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    let mut watched: Vec<String> = consul
        .requests_to("/v1/kv")
        .into_iter()
        .filter(|r| r.query_param("index").is_some())
        .map(|r| r.path)
        .collect();
    watched.sort();
    watched.dedup();
    assert_eq!(watched, ["/v1/kv/alpha/port", "/v1/kv/beta/name"]);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct FromPostgres {
    #[component(fetch_from = "postgres", table = "cm_live_settings", key = "port")]
    port: u16,
    #[component(fetch_from = "postgres", table = "cm_live_settings", key = "mode")]
    mode: String,
    #[component(
        fetch_from = "postgres",
        query = "SELECT value FROM cm_live_flags WHERE name = $1",
        key = "beta"
    )]
    beta: bool,
}

#[tokio::test]
async fn postgres_changes_arrive_by_listen_notify_on_the_tables_channel_and_a_user_channel() {
    use component_model::fetchers::database::notify_channel;
    let Some((pool, schema)) = crate::database::pg_isolated(4).await else {
        return;
    };
    crate::database::exec(
        &pool,
        "CREATE TABLE cm_live_settings (key text primary key, value text);
         INSERT INTO cm_live_settings VALUES ('port', '8080'), ('mode', 'a');
         CREATE TABLE cm_live_flags (name text primary key, value text);
         INSERT INTO cm_live_flags VALUES ('beta', 'false');"
            .to_owned(),
    )
    .await;
    // The user channel is per run: tests in parallel must not hear each other's.
    let channel = format!("{schema}_flags");
    let db = component_model::DatabaseSource::new(pool.clone()).with_notify_channel(&channel);
    db.install_notify_trigger("cm_live_settings").await.unwrap();
    let sources = Sources::new().register("postgres", db);
    let live = Live::<FromPostgres>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await; // LISTEN is in place

    crate::database::exec(
        &pool,
        "UPDATE cm_live_settings SET value = '9090' WHERE key = 'port'".to_owned(),
    )
    .await;
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "FromPostgres.port");
            assert_eq!(fields[0].key.as_deref(), Some("cm_live_settings.port"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().port, 9090);

    // A query field: the application notifies its own channel.
    crate::database::exec(
        &pool,
        format!("UPDATE cm_live_flags SET value = 'true'; NOTIFY {channel}"),
    )
    .await;
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert!(live.get().beta);
    assert_eq!(notify_channel("cm_live_settings"), "cm_cm_live_settings");
    drop(live);
    crate::database::drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn redis_changes_arrive_by_keyspace_notifications() {
    use redis::AsyncCommands;
    let Some((mut conn, prefix, _cleanup)) = crate::redis::setup("cm_live").await else {
        return;
    };
    let port_key = format!("{prefix}port");
    let db_key = format!("{prefix}db");
    let _: () = conn.set(&port_key, "8080").await.unwrap();
    let _: () = conn.hset(&db_key, "pool", "10").await.unwrap();
    // Keys are per run: the struct names them through `${VAR}` placeholders.
    let sources = Sources::new().register(
        "redis",
        component_model::RedisSource::new("redis://127.0.0.1:6379"),
    );
    let live =
        Live::<RedisWatched>::builder(&sources.with_env(component_model::EnvSource::from_map([
            ("PORT_KEY", port_key.as_str()),
            ("DB_KEY", db_key.as_str()),
        ])))
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await; // SUBSCRIBE is in place
    let _: () = conn.hset(&db_key, "pool", "20").await.unwrap();
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "RedisWatched.pool");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().pool, 20);
    let _: () = conn.set(&port_key, "9090").await.unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().port, 9090);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct RedisWatched {
    #[component(fetch_from = "redis", key = "${PORT_KEY}")]
    port: u16,
    #[component(fetch_from = "redis", key = "${DB_KEY}", field = "pool")]
    pool: u32,
}

#[derive(AsyncAssign, Debug)]
#[component(watch, watch_interval = "100ms")]
#[allow(dead_code)]
struct FromVault {
    #[component(fetch_from = "vault", secret = "live/db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "vault", secret = "live/db", field = "user")]
    user: String,
}

#[tokio::test]
async fn a_new_vault_secret_version_is_seen_through_its_metadata_and_never_shown() {
    let vault = component_model::test_util::VaultDouble::start().await;
    vault.put(
        "secret",
        "live/db",
        serde_json::json!({"password": "canary-p1", "user": "svc"}),
    );
    let sources = Sources::new().register(
        "vault",
        component_model::VaultSource::new(vault.url()).with_token("root"),
    );
    let live = Live::<FromVault>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(150)).await;
    vault.clear_requests();
    vault.put(
        "secret",
        "live/db",
        serde_json::json!({"password": "canary-p2", "user": "svc2"}),
    );
    let update = next(&mut updates).await;
    match &update {
        ConfigUpdate::Applied { fields, .. } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["FromVault.password", "FromVault.user"]);
            assert!(
                fields
                    .iter()
                    .all(|f| f.secret && f.old.is_none() && f.new.is_none())
            );
        }
        other => panic!("{other:?}"),
    }
    let text = format!("{update} {update:?}");
    assert!(!text.contains("canary") && !text.contains("svc"), "{text}");
    assert_eq!(live.get().user, "svc2");
    // One metadata read per interval for the secret, not one per field.
    let metadata = vault.requests_to("/v1/secret/metadata/live/db").len();
    let data = vault.requests_to("/v1/secret/data/live/db").len();
    assert!(
        metadata >= 1 && data == 1,
        "metadata {metadata}, data {data}"
    );
}

#[tokio::test]
async fn an_async_validator_sees_every_candidate() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let checked = Arc::new(AtomicUsize::new(0));
    let seen = checked.clone();
    let live = Live::<Service>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .validate_async(move |s: Arc<Service>| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await; // e.g. a query
                match s.port {
                    p if p < 1024 => Err(format!("port {p} needs privileges")),
                    _ => Ok(()),
                }
            }
        })
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    store.set("port", "80");
    match next(&mut updates).await {
        ConfigUpdate::Rejected { reason, fields, .. } => {
            assert_eq!(reason, "port 80 needs privileges");
            assert_eq!(fields, ["Service.port"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().port, 8080);
    assert!(
        checked.load(Ordering::SeqCst) >= 2,
        "the first value and the candidate"
    );
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct CachedAndWatched {
    #[component(fetch_from = "store", key = "port", cache_for = "1h", watch)]
    port: u16,
    #[component(fetch_from = "store", key = "pool", fallback = "5", watch)]
    pool: u32,
}

#[tokio::test]
async fn a_watched_change_is_read_past_the_cache_and_an_outage_keeps_the_value_not_the_fallback() {
    let store = service_store();
    let sources = Sources::new().register("store", store.clone());
    let live = Live::<CachedAndWatched>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    store.set("port", "9090");
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().port, 9090, "not the cached 8080");
    // The cache was refreshed too: a plain fetch sees the new value.
    let plain = CachedAndWatched::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(plain.port, 9090);

    // `pool`'s source fails: the current 10 stays, not the fallback 5.
    store.fail_key("pool");
    match next(&mut updates).await {
        ConfigUpdate::Rejected { reason, .. } => {
            assert!(reason.contains("rather than its `fallback`"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().pool, 10);
}

#[tokio::test]
async fn a_rollback_stays_until_the_sources_change_and_history_and_rollback_agree() {
    let store = Store::polled(&[("port", "8081"), ("pool", "1"), ("token", "t")]);
    let sources = Sources::new().register("store", store.clone());
    let live = Live::<Service>::builder(&sources)
        .history(3)
        .start()
        .await
        .unwrap();
    for port in ["8082", "8083"] {
        store.set("port", port);
        live.refresh().await.unwrap();
    }
    live.rollback(1).await.unwrap();
    assert_eq!(
        live.refresh().await,
        None,
        "the sources did not change: v1 stays"
    );
    assert_eq!(live.get().port, 8081);
    store.set("port", "8084");
    assert!(matches!(
        live.refresh().await,
        Some(ConfigUpdate::Applied { version: 4, .. })
    ));
    let kept: Vec<u64> = live.history().iter().map(|v| v.version).collect();
    assert_eq!(kept, [3, 1, 4]);
    for v in kept {
        live.rollback(v).await.unwrap();
    }
}
