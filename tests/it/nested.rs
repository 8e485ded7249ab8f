//! `#[component(nested)]`: a tree of configuration structs fetched as one plan, against
//! real PostgreSQL and the Consul and Vault API doubles, with round trips counted.

use component_model::secrecy::ExposeSecret;
use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    AsyncAssign, ComponentError, ConsulSource, DatabaseSource, EnvSource, ErrorKind, SecretString,
    Sources, VaultSource,
};
use component_model_tests::{CapturedLogs, capture};
use serde_json::json;

use crate::database::{drop_schema, exec, pg_isolated};

/// Level 3: limits of one database.
#[derive(AsyncAssign, Debug, Default)]
struct Limits {
    #[component(fetch_from = "consul", key = "limits/max_conn")]
    max_conn: u32,
    #[component(
        fetch_from = "database",
        table = "cm_nested_settings",
        key = "timeout_ms"
    )]
    timeout_ms: u64,
    #[component(fetch_from = "env", fallback = "4")]
    burst: u8,
}

/// Level 2: one database, used twice.
#[derive(AsyncAssign, Debug, Default)]
#[component(env_prefix = "DB_")] // used only when `DbConfig` is fetched on its own
struct DbConfig {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "consul", key = "db/port")]
    port: u16,
    #[component(
        fetch_from = "vault",
        secret = "db",
        field = "password",
        kv_version = 2
    )]
    password: SecretString,
    // A key bound into SQL is a value: `key_prefix` never touches it.
    #[component(
        fetch_from = "database",
        table = "cm_nested_settings",
        key = "pool_size"
    )]
    pool_size: u32,
    #[component(nested)]
    limits: Limits,
}

/// Level 1.
#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_")]
struct AppConfig {
    #[component(fetch_from = "env")]
    name: String,
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
    #[component(nested, key_prefix = "primary/")]
    database: DbConfig,
    #[component(nested, env_prefix = "RO_", key_prefix = "replica/")]
    replica: DbConfig,
}

struct World {
    consul: ConsulDouble,
    vault: VaultDouble,
    db: DatabaseSource,
    pool: sqlx::PgPool,
    schema: String,
}

impl World {
    async fn start() -> Option<World> {
        let (pool, schema) = pg_isolated(2).await?;
        exec(
            &pool,
            "CREATE TABLE cm_nested_settings (key TEXT PRIMARY KEY, value TEXT)".into(),
        )
        .await;
        exec(
            &pool,
            "INSERT INTO cm_nested_settings VALUES ('pool_size', '16'), ('timeout_ms', '2500')"
                .into(),
        )
        .await;
        let consul = ConsulDouble::start().await;
        for (k, v) in [
            ("app/port", "8080"),
            ("primary/db/port", "5432"),
            ("primary/limits/max_conn", "100"),
            ("replica/db/port", "5433"),
            ("replica/limits/max_conn", "50"),
        ] {
            consul.put(k, v);
        }
        let vault = VaultDouble::start().await;
        vault.put("secret", "primary/db", json!({"password": "pw-primary"}));
        vault.put("secret", "replica/db", json!({"password": "pw-replica"}));
        let db = DatabaseSource::new(pool.clone());
        Some(World {
            consul,
            vault,
            db,
            pool,
            schema,
        })
    }

    fn sources(&self, env: &[(&str, &str)]) -> Sources {
        Sources::new()
            .with_env(EnvSource::from_map(env.iter().copied()))
            .register("consul", ConsulSource::new(self.consul.address()))
            .register(
                "vault",
                VaultSource::new(self.vault.url()).with_token("root"),
            )
            .register("database", self.db.clone())
    }

    async fn stop(self) {
        drop_schema(&self.pool, &self.schema).await;
    }
}

const ENV: &[(&str, &str)] = &[
    ("APP_NAME", "billing"),
    ("APP_DATABASE_HOST", "db-1.internal"),
    ("APP_DATABASE_LIMITS_BURST", "9"),
    ("APP_RO_HOST", "db-2.internal"),
];

#[tokio::test]
async fn a_three_level_tree_is_one_fetch_with_one_round_trip_per_backend() {
    let Some(w) = World::start().await else {
        return;
    };
    let sources = w.sources(ENV);
    let queries = w.db.queries_run();
    let app = AppConfig::fetch_all_components_with(&sources)
        .await
        .unwrap();

    assert_eq!((app.name.as_str(), app.port), ("billing", 8080));
    let (db, ro) = (&app.database, &app.replica);
    assert_eq!((db.host.as_str(), db.port), ("db-1.internal", 5432));
    assert_eq!((ro.host.as_str(), ro.port), ("db-2.internal", 5433));
    assert_eq!(db.password.expose_secret(), "pw-primary");
    assert_eq!(ro.password.expose_secret(), "pw-replica");
    assert_eq!((db.pool_size, ro.pool_size), (16, 16));
    assert_eq!((db.limits.max_conn, ro.limits.max_conn), (100, 50));
    assert_eq!((db.limits.timeout_ms, ro.limits.timeout_ms), (2500, 2500));
    // APP_DATABASE_LIMITS_BURST is set; APP_RO_LIMITS_BURST is not: its fallback.
    assert_eq!((db.limits.burst, ro.limits.burst), (9, 4));

    // Every Consul key of the tree, at every level: ONE transaction.
    let txns = w.consul.requests();
    assert_eq!(txns.len(), 1, "{txns:?}");
    assert_eq!(txns[0].path, "/v1/txn");
    let ops: serde_json::Value = serde_json::from_slice(&txns[0].body).unwrap();
    let mut keys: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["KV"]["Key"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "app/port",
            "primary/db/port",
            "primary/limits/max_conn",
            "replica/db/port",
            "replica/limits/max_conn"
        ]
    );
    // Both levels' table keys, both branches: ONE query (identical keys asked once).
    assert_eq!(w.db.queries_run() - queries, 1);
    // One read per Vault path (kv_version given: no mount detection).
    assert_eq!(w.vault.requests().len(), 2, "{:?}", w.vault.requests());
    assert_eq!(w.vault.requests_to("/v1/secret/data/primary/db").len(), 1);
    assert_eq!(w.vault.requests_to("/v1/secret/data/replica/db").len(), 1);
    w.stop().await;
}

#[tokio::test]
async fn errors_from_two_branches_arrive_together_with_full_paths() {
    let Some(w) = World::start().await else {
        return;
    };
    w.consul.delete("replica/limits/max_conn");
    let env: Vec<(&str, &str)> = ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "APP_DATABASE_HOST")
        .collect();
    let errors = AppConfig::fetch_all_components_with(&w.sources(&env))
        .await
        .unwrap_err();
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(texts.len(), 2, "{texts:#?}");
    assert_eq!(
        texts[0],
        "AppConfig.database.host: env variable `APP_DATABASE_HOST`: not found"
    );
    assert!(
        texts[1].starts_with(
            "AppConfig.replica.limits.max_conn: consul key `replica/limits/max_conn` at "
        ) && texts[1].contains(": not found"),
        "{}",
        texts[1]
    );
    assert_eq!(errors[1].field_name(), Some("replica.limits.max_conn"));
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::NotFound));

    // Degraded: the failed fields take their `Default` inside their own sub-structs.
    let partial = AppConfig::fetch_available_components_with(&w.sources(&env))
        .await
        .unwrap();
    assert_eq!(partial.errors.len(), 2);
    assert_eq!(partial.value.database.host, "");
    assert_eq!(partial.value.database.port, 5432);
    assert_eq!(partial.value.replica.limits.max_conn, 0);
    assert_eq!(partial.value.replica.limits.timeout_ms, 2500);

    // `fetch_with_resilience` reports both at once too.
    let err = AppConfig::fetch_with_resilience_with(&w.sources(&env))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComponentError::Multiple(v) if v.len() == 2),
        "{err:?}"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_nested_field_fetched_alone_keeps_its_path_and_prefixes() {
    let Some(w) = World::start().await else {
        return;
    };
    let sources = w.sources(ENV);
    let ro = AppConfig::fetch_replica_with(&sources).await.unwrap();
    assert_eq!((ro.host.as_str(), ro.port), ("db-2.internal", 5433));
    assert_eq!(ro.limits.max_conn, 50);
    assert_eq!(
        w.consul.requests().len(),
        1,
        "only the replica's keys, one txn"
    );

    // `DbConfig` on its own is a root: its own `env_prefix`, no key prefix.
    w.consul.put("db/port", "6000");
    w.consul.put("limits/max_conn", "7");
    w.vault.put("secret", "db", json!({"password": "pw-root"}));
    let alone = DbConfig::fetch_all_components_with(&w.sources(&[("DB_HOST", "solo")]))
        .await
        .unwrap();
    assert_eq!((alone.host.as_str(), alone.port), ("solo", 6000));
    assert_eq!(alone.limits.max_conn, 7);

    // A per-field error names the whole path.
    w.consul.delete("replica/db/port");
    let err = AppConfig::fetch_replica_with(&sources).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("AppConfig.replica.port: consul key `replica/db/port`"),
        "{err}"
    );
    w.stop().await;
}

#[tokio::test]
async fn component_sources_with_lists_every_leaf_with_its_resolved_key() {
    let Some(w) = World::start().await else {
        return;
    };
    let listed: Vec<String> = AppConfig::component_sources_with(&w.sources(ENV))
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s.path,
                s.spec.source,
                s.key_label,
                s.key.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "AppConfig.name env variable APP_NAME",
            "AppConfig.port consul key app/port",
            "AppConfig.database.host env variable APP_DATABASE_HOST",
            "AppConfig.database.port consul key primary/db/port",
            "AppConfig.database.password vault secret secret/primary/db",
            "AppConfig.database.pool_size database key cm_nested_settings.pool_size",
            "AppConfig.database.limits.max_conn consul key primary/limits/max_conn",
            "AppConfig.database.limits.timeout_ms database key cm_nested_settings.timeout_ms",
            "AppConfig.database.limits.burst env variable APP_DATABASE_LIMITS_BURST",
            "AppConfig.replica.host env variable APP_RO_HOST",
            "AppConfig.replica.port consul key replica/db/port",
            "AppConfig.replica.password vault secret secret/replica/db",
            "AppConfig.replica.pool_size database key cm_nested_settings.pool_size",
            "AppConfig.replica.limits.max_conn consul key replica/limits/max_conn",
            "AppConfig.replica.limits.timeout_ms database key cm_nested_settings.timeout_ms",
            "AppConfig.replica.limits.burst env variable APP_RO_LIMITS_BURST",
        ]
    );
    // The struct's own compile-time list: its own fetched fields only.
    let own: Vec<&str> = AppConfig::component_sources()
        .iter()
        .map(|s| s.field)
        .collect();
    assert_eq!(own, ["name", "port"]);
    w.stop().await;
}

#[tokio::test]
async fn spans_name_the_full_path() {
    #[derive(AsyncAssign, Debug, Default)]
    struct Inner {
        #[component(fetch_from = "env")]
        port: u16,
    }
    #[derive(AsyncAssign, Debug)]
    struct Outer {
        #[component(nested, env_prefix = "IN_")]
        inner: Inner,
    }
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let sources = Sources::new().with_env(EnvSource::from_map([("IN_PORT", "1")]));
    let outer = Outer::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(outer.inner.port, 1);
    let text = logs.text();
    assert!(text.contains("owner=\"Outer\""), "{text}");
    assert!(text.contains("field=\"inner.port\""), "{text}");
    assert!(text.contains("key=IN_PORT"), "{text}");
}

/// `Option<Sub>`: absent when none of its fields is found, an error when some are.
#[derive(AsyncAssign, Debug, Default, PartialEq)]
struct Cache {
    #[component(fetch_from = "env")]
    url: String,
    #[component(fetch_from = "consul", key = "cache/ttl")]
    ttl: u32,
    #[component(fetch_from = "env")]
    label: Option<String>,
}

#[derive(AsyncAssign, Debug)]
struct WithCache {
    #[component(fetch_from = "env")]
    name: String,
    #[component(nested)]
    cache: Option<Cache>,
}

#[tokio::test]
async fn an_optional_sub_struct_is_none_when_absent_and_an_error_when_partly_there() {
    let consul = ConsulDouble::start().await;
    let sources = |env: &[(&'static str, &'static str)]| {
        Sources::new()
            .with_env(EnvSource::from_map(env.iter().copied()))
            .register("consul", ConsulSource::new(consul.address()))
    };
    // Nothing of `cache` anywhere: `None`, no error.
    let c = WithCache::fetch_all_components_with(&sources(&[("NAME", "x")]))
        .await
        .unwrap();
    assert_eq!(c.cache, None);

    // Only the URL: the missing TTL is an error naming its path.
    let errors = WithCache::fetch_all_components_with(&sources(&[
        ("NAME", "x"),
        ("CACHE_URL", "redis://c"),
    ]))
    .await
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with("WithCache.cache.ttl: consul key `cache/ttl`"),
        "{}",
        errors[0]
    );

    // Both required fields: `Some`, the optional member stays `None`.
    consul.put("cache/ttl", "60");
    let c = WithCache::fetch_all_components_with(&sources(&[
        ("NAME", "x"),
        ("CACHE_URL", "redis://c"),
    ]))
    .await
    .unwrap();
    assert_eq!(
        c.cache,
        Some(Cache {
            url: "redis://c".into(),
            ttl: 60,
            label: None
        })
    );

    // A source that is down is not "absent": the sub-struct is taken field by field.
    let down = Sources::new()
        .with_env(EnvSource::from_map([("NAME", "x")]))
        .register("consul", ConsulSource::new("127.0.0.1:1"));
    let errors = WithCache::fetch_all_components_with(&down)
        .await
        .unwrap_err();
    let kinds: Vec<ErrorKind> = errors.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [ErrorKind::NotFound, ErrorKind::Unavailable]);
}

/// Answers every request with what it was asked for (`key`, `path` and `secret` as sent);
/// `Echo(true)` says "not found" for anything containing `missing/`.
struct Echo(bool);

#[component_model::async_trait]
impl component_model::Source for Echo {
    async fn fetch(
        &self,
        r: &component_model::FetchRequest,
    ) -> Result<component_model::RawValue, component_model::SourceError> {
        let asked = [r.key(), r.path(), r.secret_path()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("|");
        if self.0 && asked.contains("missing/") {
            return Err(component_model::SourceError::new(ErrorKind::NotFound));
        }
        Ok(component_model::RawValue::Text(asked))
    }
}

#[derive(AsyncAssign, Debug, Default, PartialEq)]
struct Leafy {
    #[component(fetch_from = "echo", key = "k")]
    key: String,
    #[component(fetch_from = "echo", path = "p.json")]
    path: String,
    #[component(fetch_from = "echo", secret = "s")]
    secret: String,
    #[component(
        fetch_from = "echo",
        query = "SELECT v FROM t WHERE k = $1",
        key = "bound"
    )]
    bound: String,
    #[component(fetch_from = "echo", key = "missing/x", fallback_to = "echo2")]
    via_fallback: String,
    #[component(fetcher = || Ok::<_, std::io::Error>(7u8))]
    made: u8,
}

#[derive(AsyncAssign, Debug)]
struct Prefixed {
    #[component(nested, key_prefix = "${REGION:-eu}/")]
    outer: Middle,
}

#[derive(AsyncAssign, Debug, Default)]
struct Middle {
    #[component(nested, key_prefix = "m/")]
    leafy: Leafy,
}

fn echo_sources(env: &[(&'static str, &'static str)]) -> Sources {
    Sources::new()
        .with_env(EnvSource::from_map(env.iter().copied()))
        .register("echo", Echo(true))
        .register("echo2", Echo(false))
}

#[tokio::test]
async fn key_prefixes_concatenate_resolve_placeholders_and_spare_sql_keys_and_fetchers() {
    let p = Prefixed::fetch_all_components_with(&echo_sources(&[("REGION", "us")]))
        .await
        .unwrap();
    let l = &p.outer.leafy;
    assert_eq!(l.key, "us/m/k");
    assert_eq!(l.path, "us/m/p.json");
    assert_eq!(l.secret, "us/m/s");
    assert_eq!(l.bound, "bound", "a key bound into SQL is a value");
    assert_eq!(l.made, 7);
    // The fallback source is asked for the prefixed key, in its own form.
    assert_eq!(l.via_fallback, "us/m/missing/x");

    let p = Prefixed::fetch_all_components_with(&echo_sources(&[]))
        .await
        .unwrap();
    assert_eq!(p.outer.leafy.key, "eu/m/k", "the placeholder's default");
}

#[tokio::test]
async fn an_unset_placeholder_in_a_key_prefix_fails_each_field_below_naming_it() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Strict {
        #[component(nested, key_prefix = "${TENANT}/")]
        leafy: Leafy,
    }
    let errors = Strict::fetch_all_components_with(&echo_sources(&[]))
        .await
        .unwrap_err();
    // Every named-source field below (the fetcher makes its own request).
    assert_eq!(errors.len(), 5, "{errors:#?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("TENANT"), "{e}");
        assert!(e.to_string().starts_with("Strict.leafy."), "{e}");
    }
}

#[tokio::test]
async fn optional_groups_inside_optional_groups_stay_aligned() {
    #[derive(AsyncAssign, Debug, Default, PartialEq)]
    struct Inner {
        #[component(fetch_from = "echo", key = "missing/inner")]
        a: String,
    }
    #[derive(AsyncAssign, Debug, Default, PartialEq)]
    struct Outer {
        #[component(fetch_from = "echo", key = "b")]
        b: String,
        #[component(nested)]
        inner: Option<Inner>,
    }
    #[derive(AsyncAssign, Debug)]
    struct Root {
        #[component(nested, key_prefix = "missing/")]
        first: Option<Outer>,
        #[component(nested)]
        second: Option<Outer>,
        #[component(fetch_from = "echo", key = "last")]
        last: String,
    }
    let r = Root::fetch_all_components_with(&echo_sources(&[]))
        .await
        .unwrap();
    assert_eq!(r.first, None);
    // `first`'s keys are all under `missing/` (its inner group is skipped with it);
    // in `second`, `b` is found and `inner` is absent as a whole.
    assert_eq!(
        r.second,
        Some(Outer {
            b: "b".into(),
            inner: None
        })
    );
    assert_eq!(r.last, "last");
}

/// `nested_only`: fetched only as part of its parents (no fetch methods of its own).
#[derive(AsyncAssign, Debug, Default, PartialEq)]
#[component(nested_only)]
struct Endpoint {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "echo", key = "port")]
    port: String,
    #[component(fetch_from = "env", fallback = "3")]
    retries: u8,
}

#[derive(AsyncAssign, Debug, Default, PartialEq)]
#[component(env_prefix = "SVC_")]
struct Service {
    #[component(nested, key_prefix = "up/")]
    upstream: Endpoint,
    #[component(nested, env_prefix = "DOWN_", key_prefix = "down/")]
    downstream: Option<Endpoint>,
}

#[tokio::test]
async fn a_nested_only_struct_is_fetched_through_its_parents_with_their_prefixes() {
    let env = [
        ("SVC_UPSTREAM_HOST", "a.internal"),
        ("SVC_DOWN_HOST", "b.internal"),
        ("SVC_DOWN_RETRIES", "5"),
    ];
    let s = Service::fetch_all_components_with(&echo_sources(&env))
        .await
        .unwrap();
    assert_eq!(
        s.upstream,
        Endpoint {
            host: "a.internal".into(),
            port: "up/port".into(),
            retries: 3,
        }
    );
    let down = s.downstream.expect("present");
    assert_eq!(
        (down.host.as_str(), down.port.as_str()),
        ("b.internal", "down/port")
    );
    assert_eq!(down.retries, 5);

    // The parent's per-branch method reaches it, with the branch's prefixes.
    let up = Service::fetch_upstream_with(&echo_sources(&env))
        .await
        .unwrap();
    assert_eq!(up.port, "up/port");

    // Its fields are in the parent's tree, with full paths.
    let listed = Service::component_sources_with(&echo_sources(&env));
    let paths: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("Service.downstream.port: echo")),
        "{paths:#?}"
    );

    // An error inside it names the whole path.
    let errors = Service::fetch_all_components_with(&echo_sources(&[("SVC_DOWN_HOST", "b")]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with("Service.upstream.host: env"),
        "{}",
        errors[0]
    );
}
