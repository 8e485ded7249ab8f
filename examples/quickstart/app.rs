//! The quickstart's configuration, shared by `cargo run --example quickstart` (which fetches
//! it) and `cargo run --example explain` (which describes and checks it): the struct, the
//! embedded SQLite database's seed, the in-process settings API, and the sources.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use component_model::{
    AsyncAssign, DatabaseSource, DbPool, EnvSource, HttpSource, SecretString, Sources,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // printed through Debug
pub struct Limits {
    requests_per_second: u32,
    burst: u32,
}

/// The quickstart service's configuration.
#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_", timeout = "10s")]
pub struct AppConfig {
    /// The name the service reports itself by.
    #[component(fetch_from = "database", table = "settings", key = "service_name")]
    pub service_name: String,
    /// The most connections the service accepts at once.
    #[component(
        fetch_from = "database",
        table = "settings",
        key = "max_connections",
        validate(range(min = 1, max = 10_000))
    )]
    pub max_connections: u32,
    /// Features switched on (comma-separated in the database).
    #[component(fetch_from = "database", table = "settings", key = "feature_flags")]
    pub feature_flags: Vec<String>,
    /// Request rate limits (a JSON document in the database).
    #[component(fetch_from = "database", table = "settings", key = "limits")]
    pub limits: Limits,
    /// The key of the payment provider's API.
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM secrets WHERE name = ?",
        key = "api_key",
        secret
    )]
    pub api_key: SecretString,
    /// The share of users on the new release, in percent.
    #[component(
        fetch_from = "settings_api",
        path = "/v1/settings",
        pointer = "/rollout/percent",
        validate(range(max = 100))
    )]
    pub rollout_percent: u8,
    /// The regions the service runs in.
    #[component(
        fetch_from = "settings_api",
        path = "/v1/settings",
        pointer = "/regions"
    )]
    pub regions: Vec<String>,
    /// The address to listen on.
    #[component(fetch_from = "env", fallback = "127.0.0.1")]
    pub host: String,
    /// The port to listen on.
    #[component(fetch_from = "env", fallback = "8080", validate(range(min = 1)))]
    pub port: u16,
    /// How much the service logs: error, warn, info, debug or trace.
    #[component(
        fetch_from = "env",
        fallback = "info",
        validate(one_of = ["error", "warn", "info", "debug", "trace"])
    )]
    pub log_level: String,
}

const SEED: &str = r#"
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO settings VALUES
  ('service_name', 'orders-api'),
  ('max_connections', '64'),
  ('feature_flags', 'checkout-v2, fast-search'),
  ('limits', '{"requests_per_second": 200, "burst": 50}');
INSERT OR IGNORE INTO secrets VALUES ('api_key', 'sk_live_quickstart_not_a_real_key');
"#;

/// The in-process settings API: `GET /v1/settings` answers a JSON document and counts calls.
pub async fn settings_api(calls: Arc<AtomicUsize>) -> std::io::Result<String> {
    let app = axum::Router::new().route(
        "/v1/settings",
        axum::routing::get(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                axum::Json(serde_json::json!({
                    "rollout": {"percent": 25, "cohort": "beta"},
                    "regions": ["eu-west-1", "us-east-1"],
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// The quickstart's sources: the embedded database (created and seeded on first run, at
/// `$QUICKSTART_DB` or `quickstart.db`), the settings API (in process unless
/// `SETTINGS_API` names a real one; its calls counted in `api_calls`) and the environment.
/// Returns the sources, the database and the API's URL.
pub async fn sources(
    api_calls: Arc<AtomicUsize>,
) -> Result<(Sources, DatabaseSource, String), Box<dyn std::error::Error>> {
    let path = std::env::var("QUICKSTART_DB").unwrap_or_else(|_| "quickstart.db".to_owned());
    let db = DatabaseSource::connect(&format!("sqlite://{path}?mode=rwc")).await?;
    if let Some(DbPool::Sqlite(pool)) = db.pool() {
        sqlx::raw_sql(SEED).execute(pool).await?;
    }
    let api_url = match std::env::var("SETTINGS_API") {
        Ok(url) => url,
        Err(_) => settings_api(api_calls).await?,
    };
    let sources = Sources::new()
        .with_env(EnvSource::process())
        .register("database", db.clone())
        .register("settings_api", HttpSource::new(&api_url));
    Ok((sources, db, api_url))
}
