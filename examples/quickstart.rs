//! Quickstart: a service config read concurrently from an embedded SQLite database, an HTTP
//! settings API (served in process, on 127.0.0.1) and the environment, with its fetch
//! report (per field: source, key, outcome, time) and the values (secrets redacted). No
//! external service needed.
//!
//! Run: `cargo run --example quickstart`. The database file is `quickstart.db` in the
//! current directory (or `$QUICKSTART_DB`), created and seeded on first run; edit it with
//! any SQLite tool, or set `APP_PORT=9000` and run again. Point the HTTP fields at a real
//! service with `SETTINGS_API=https://...` (the base URL of a `/v1/settings` JSON document).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use component_model::{
    AsyncAssign, DatabaseSource, DbPool, EnvSource, HttpSource, SecretString, Sources,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // printed through Debug
struct Limits {
    requests_per_second: u32,
    burst: u32,
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_", timeout = "10s")]
struct AppConfig {
    #[component(fetch_from = "database", table = "settings", key = "service_name")]
    service_name: String,
    #[component(fetch_from = "database", table = "settings", key = "max_connections")]
    max_connections: u32,
    #[component(fetch_from = "database", table = "settings", key = "feature_flags")]
    feature_flags: Vec<String>,
    #[component(fetch_from = "database", table = "settings", key = "limits")]
    limits: Limits,
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM secrets WHERE name = ?",
        key = "api_key",
        secret
    )]
    api_key: SecretString,
    #[component(
        fetch_from = "settings_api",
        path = "/v1/settings",
        pointer = "/rollout/percent"
    )]
    rollout_percent: u8,
    #[component(
        fetch_from = "settings_api",
        path = "/v1/settings",
        pointer = "/regions"
    )]
    regions: Vec<String>,
    #[component(fetch_from = "env", fallback = "127.0.0.1")]
    host: String,
    #[component(fetch_from = "env", fallback = "8080")]
    port: u16,
    #[component(fetch_from = "env", fallback = "info")]
    log_level: String,
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
async fn settings_api(calls: Arc<AtomicUsize>) -> std::io::Result<String> {
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Warnings (a fallback used, a stale value served) go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();

    // The embedded database: created and seeded on first run.
    let path = std::env::var("QUICKSTART_DB").unwrap_or_else(|_| "quickstart.db".to_owned());
    let db = DatabaseSource::connect(&format!("sqlite://{path}?mode=rwc")).await?;
    if let Some(DbPool::Sqlite(pool)) = db.pool() {
        sqlx::raw_sql(SEED).execute(pool).await?;
    }

    // The HTTP settings API: in process unless SETTINGS_API names a real one.
    let api_calls = Arc::new(AtomicUsize::new(0));
    let api_url = match std::env::var("SETTINGS_API") {
        Ok(url) => url,
        Err(_) => settings_api(api_calls.clone()).await?,
    };

    let sources = Sources::new()
        .with_env(EnvSource::process())
        .register("database", db.clone())
        .register("settings_api", HttpSource::new(&api_url));
    // The fetch report: the value (or every error) and, per field, where it came from.
    let report = AppConfig::fetch_report_with(&sources).await;
    println!("{report}");
    let config = report
        .into_result()
        .map_err(component_model::ComponentError::from)?;
    println!(
        "The database answered {} queries (one per table, one per distinct query); the settings API at {api_url} {}.",
        db.queries_run(),
        match api_calls.load(Ordering::SeqCst) {
            0 => "was asked once per distinct URL".to_owned(),
            n => format!("answered {n} request(s)"),
        }
    );
    println!(
        "\n{} would listen on {}:{} (log level {}, {} connections at most), with features {:?}, {}% rollout in {:?}.",
        config.service_name,
        config.host,
        config.port,
        config.log_level,
        config.max_connections,
        config.feature_flags,
        config.rollout_percent,
        config.regions
    );
    // Debug output keeps the secret hidden.
    println!("\n{config:#?}");
    Ok(())
}
