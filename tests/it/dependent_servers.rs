//! Dependent fields against real servers: the environment names the region, OpenBao holds
//! that region's database DSN, PostgreSQL (through a client `connect` opens for that DSN)
//! the setting — with the Consul double and Redis beside them — in one
//! `fetch_all_components`; a failed input named by its dependants; the secret DSN never
//! shown; a `Live` re-reading a dependant when the field it references changes.

use std::time::Duration;

use component_model::{
    AsyncAssign, ConfigUpdate, ConsulSource, EnvSource, ErrorKind, Live, RedisSource, SecretString,
    Sources, VaultSource,
};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use futures::StreamExt;
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// OpenBao's address and root token (see `openbao.rs`).
fn bao_addr() -> (String, String) {
    (
        std::env::var("CM_OPENBAO_ADDR").unwrap_or_else(|_| "http://127.0.0.1:8200".to_owned()),
        std::env::var("CM_OPENBAO_TOKEN").unwrap_or_else(|_| "cm-openbao-root".to_owned()),
    )
}

/// Writes (or, with `None`, deletes) the KV v2 secret `secret/<path>`; `false` after
/// `skip` when OpenBao is not there.
async fn bao_put(path: &str, data: Option<Value>) -> bool {
    let (addr, token) = bao_addr();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let request = match &data {
        Some(d) => http
            .post(format!("{addr}/v1/secret/data/{path}"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&json!({ "data": d })).unwrap()),
        None => http.delete(format!("{addr}/v1/secret/metadata/{path}")),
    };
    match request.header("X-Vault-Token", token).send().await {
        Ok(r) => {
            assert!(r.status().is_success(), "{path}: {}", r.status());
            true
        }
        Err(e) => {
            skip("OpenBao", format!("{addr}: {e}"));
            false
        }
    }
}

async fn pg() -> Option<sqlx::PgPool> {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(PG_URL)
        .await
    {
        Ok(p) => Some(p),
        Err(e) => {
            skip("PostgreSQL", e);
            None
        }
    }
}

async fn redis() -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(REDIS_URL).expect("url");
    match client.get_multiplexed_async_connection().await {
        Ok(c) => Some(c),
        Err(e) => {
            skip("Redis", e);
            None
        }
    }
}

#[derive(AsyncAssign, Debug)]
struct Regional {
    #[component(fetch_from = "env", key = "CM_DEP_REGION")]
    region: String,
    #[component(fetch_from = "vault", secret = "{region}/db", field = "dsn")]
    dsn: SecretString,
    #[component(
        fetch_from = "database",
        connect = "{dsn}",
        query = "SELECT value FROM cm_dependent_settings WHERE key = $1",
        key = "{region}.pool"
    )]
    pool: u32,
    #[component(fetch_from = "consul", key = "{region}/name")]
    name: String,
    #[component(fetch_from = "redis", key = "{region}:limit")]
    limit: u16,
}

#[tokio::test]
async fn env_then_vault_then_the_database_it_names_in_one_fetch_with_the_dsn_never_shown() {
    let Some(db) = pg().await else { return };
    let Some(mut conn) = redis().await else {
        return;
    };
    let region = unique("cmdep");
    let canary = unique("canary");
    // Trust authentication: the password is never checked, so it can be a canary.
    let dsn = format!("postgres://postgres:{canary}@127.0.0.1:5432/test");
    if !bao_put(&format!("{region}/db"), Some(json!({ "dsn": dsn }))).await {
        return;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS cm_dependent_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO cm_dependent_settings VALUES ($1, '24')")
        .bind(format!("{region}.pool"))
        .execute(&db)
        .await
        .unwrap();
    let _: () = conn.set(format!("{region}:limit"), "100").await.unwrap();
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put(&format!("{region}/name"), "billing");
    let (addr, token) = bao_addr();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_DEP_REGION", region.as_str())]))
        .register("vault", VaultSource::new(&addr).with_token(&token))
        .register("consul", ConsulSource::new(consul.address()))
        .register("redis", RedisSource::new(REDIS_URL));

    let logs = CapturedLogs::default();
    let guard = capture(&logs);
    let report = Regional::fetch_report_with(&sources).await;
    drop(guard);
    let shown = format!("{report}");
    let config = report.result.as_ref().expect("fetched");
    assert_eq!(config.region, region);
    assert_eq!(config.dsn.expose_secret(), dsn);
    assert_eq!(
        (config.pool, config.name.as_str(), config.limit),
        (24, "billing", 100)
    );
    assert_eq!(
        report.critical_path(),
        ["Regional.region", "Regional.dsn", "Regional.pool"],
        "{shown}"
    );
    let pool = report
        .fields
        .iter()
        .find(|r| r.path == "Regional.pool")
        .unwrap();
    // `region` in its key, `dsn` in its `connect`.
    assert_eq!(pool.waited_for, ["Regional.region", "Regional.dsn"]);
    assert_eq!(pool.bound_key.as_deref(), Some(&*format!("{region}.pool")));
    // The secret address: not in the report, its Debug, nor any log line at TRACE.
    assert!(!shown.contains(&canary), "{shown}");
    assert!(!format!("{report:?}").contains(&canary));
    assert!(!logs.text().contains(&canary), "a log line showed the DSN");
    assert!(!format!("{sources:?}").contains(&canary));

    // The same region without its secret: the DSN fails, the setting read through it
    // says so, and the fields that do not need it are fetched.
    assert!(bao_put(&format!("{region}/db"), None).await);
    let partial = Regional::fetch_available_components_with(&sources).await;
    let errors = match partial {
        Ok(p) => {
            assert_eq!((p.value.name.as_str(), p.value.limit), ("billing", 100));
            p.errors
        }
        Err(errors) => errors,
    };
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{text:#?}");
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{}", text[0]);
    assert!(text[0].contains(&format!("{region}/db")), "{}", text[0]);
    assert_eq!(errors[1].kind(), ErrorKind::NotFetched);
    assert!(
        text[1].contains("Regional.pool") && text[1].contains("needs `dsn`, which failed"),
        "{}",
        text[1]
    );

    sqlx::query("DELETE FROM cm_dependent_settings WHERE key = $1")
        .bind(format!("{region}.pool"))
        .execute(&db)
        .await
        .unwrap();
    let _: () = conn.del(format!("{region}:limit")).await.unwrap();
}

#[derive(AsyncAssign, Debug)]
struct LiveRegional {
    #[component(fetch_from = "consul", key = "dep/region")]
    region: String,
    #[component(fetch_from = "consul", key = "dep/{region}/pool")]
    pool: u32,
}

async fn next(updates: &mut component_model::ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("an update within 10 s")
        .expect("the updates go on")
}

#[tokio::test]
async fn a_live_value_rereads_the_dependants_of_a_changed_field_in_the_same_update() {
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put("dep/region", "eu");
    consul.put("dep/eu/pool", "8");
    consul.put("dep/us/pool", "32");
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let live = Live::<LiveRegional>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    assert_eq!(live.get().pool, 8);
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(200)).await; // the watch is in place
    consul.put("dep/region", "us");
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["LiveRegional.region", "LiveRegional.pool"]);
        }
        other => panic!("{other:?}"),
    }
    let now = live.get();
    assert_eq!((now.region.as_str(), now.pool), ("us", 32));
    // The watch is aimed at the new region's key: its change is an update.
    tokio::time::sleep(Duration::from_millis(200)).await;
    consul.put("dep/us/pool", "64");
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
            assert_eq!(names, ["LiveRegional.pool"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().pool, 64);
}

#[derive(AsyncAssign, Debug)]
struct RedisThroughConnect {
    #[component(fetch_from = "env", key = "CM_DEP_REDIS")]
    address: SecretString,
    #[component(fetch_from = "redis", connect = "{address}", key = "{shard}:limit")]
    limit: u16,
    #[component(fetch_from = "env", key = "CM_DEP_SHARD")]
    shard: String,
}

#[tokio::test]
async fn a_redis_client_is_opened_from_a_fetched_address_and_kept() {
    let Some(mut conn) = redis().await else {
        return;
    };
    let shard = unique("cmdep_shard");
    let _: () = conn.set(format!("{shard}:limit"), "7").await.unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([
            ("CM_DEP_REDIS", REDIS_URL),
            ("CM_DEP_SHARD", shard.as_str()),
        ]))
        .with_max_dynamic_clients(2);
    for _ in 0..2 {
        let c = RedisThroughConnect::fetch_all_components_with(&sources)
            .await
            .unwrap();
        assert_eq!(c.limit, 7);
    }
    let _: () = conn.del(format!("{shard}:limit")).await.unwrap();
}
