//! Quickstart: a service config read concurrently from an embedded SQLite database, an HTTP
//! settings API (served in process, on 127.0.0.1) and the environment, printed as a table
//! (secrets redacted). No external service needed.
//!
//! Run: `cargo run --example quickstart`. The database file is `quickstart.db` in the
//! current directory (or `$QUICKSTART_DB`), created and seeded on first run; edit it with
//! any SQLite tool, or set `APP_PORT=9000` and run again. Point the HTTP fields at a real
//! service with `SETTINGS_API=https://...` (the base URL of a `/v1/settings` JSON document).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use component_model::{
    AsyncAssign, DatabaseSource, DbPool, EnvSource, HttpSource, SecretString, Sources,
};
use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;

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

/// Per-field timings, read from the `component_fetch` spans the library emits.
#[derive(Clone, Default)]
struct Timings(Arc<Mutex<HashMap<String, f64>>>);

struct Fields {
    field: Option<String>,
    elapsed_ms: Option<f64>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        if f.name() == "field" {
            self.field = Some(v.to_owned());
        }
    }
    fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
        if f.name() == "elapsed_ms" {
            self.elapsed_ms = Some(v);
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S> tracing_subscriber::Layer<S> for Timings
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = Fields {
            field: None,
            elapsed_ms: None,
        };
        attrs.record(&mut v);
        if let (Some(span), Some(field)) = (ctx.span(id), v.field) {
            span.extensions_mut().insert(field);
        }
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut v = Fields {
            field: None,
            elapsed_ms: None,
        };
        values.record(&mut v);
        if let (Some(span), Some(ms)) = (ctx.span(id), v.elapsed_ms)
            && let Some(field) = span.extensions().get::<String>()
            && let Ok(mut t) = self.0.lock()
        {
            t.insert(field.clone(), ms);
        }
    }
}

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
    let timings = Timings::default();
    let subscriber = tracing_subscriber::registry().with(timings.clone());
    tracing::subscriber::set_global_default(subscriber)?;

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
    let started = Instant::now();
    let config = AppConfig::fetch_with_resilience_with(&sources).await?;
    let total = started.elapsed();

    let values: HashMap<&str, String> = HashMap::from([
        ("service_name", format!("{:?}", config.service_name)),
        ("max_connections", config.max_connections.to_string()),
        ("feature_flags", format!("{:?}", config.feature_flags)),
        ("limits", format!("{:?}", config.limits)),
        ("api_key", "[REDACTED]".to_owned()),
        ("rollout_percent", config.rollout_percent.to_string()),
        ("regions", format!("{:?}", config.regions)),
        ("host", format!("{:?}", config.host)),
        ("port", config.port.to_string()),
        ("log_level", format!("{:?}", config.log_level)),
    ]);
    let timings = timings.0.lock().map(|t| t.clone()).unwrap_or_default();
    println!(
        "{:<16} {:<48} {:<13} {:<30} {:>9}",
        "field", "value", "source", "key", "elapsed"
    );
    println!("{}", "-".repeat(120));
    for spec in AppConfig::component_sources() {
        let key = match (spec.table, spec.key, spec.path) {
            (Some(table), Some(key), _) => format!("{table}.{key}"),
            (_, Some(key), _) => key.to_owned(),
            (_, _, Some(path)) => format!("{path}#{}", spec.pointer.unwrap_or("")),
            _ if spec.source == "env" => spec.default_key.unwrap_or("-").to_owned(),
            _ => "-".to_owned(),
        };
        let ms = timings
            .get(spec.field)
            .map(|ms| format!("{ms:.2} ms"))
            .unwrap_or_default();
        let value = values.get(spec.field).cloned().unwrap_or_default();
        println!(
            "{:<16} {:<48} {:<13} {:<30} {:>9}",
            spec.field, value, spec.source, key, ms
        );
    }
    println!(
        "\n{} fields in {:.2} ms, concurrently; the database answered {} queries (one per table, one per distinct query), the settings API at {api_url} {}.",
        AppConfig::component_sources().len(),
        total.as_secs_f64() * 1000.0,
        db.queries_run(),
        match api_calls.load(Ordering::SeqCst) {
            0 => "was asked once per distinct URL".to_owned(),
            n => format!("answered {n} request(s)"),
        }
    );
    println!(
        "Debug output keeps the secret hidden too: api_key = {:?}",
        config.api_key
    );
    Ok(())
}
