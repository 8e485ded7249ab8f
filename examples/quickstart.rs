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

#[path = "quickstart/app.rs"]
mod app;

use app::AppConfig;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Warnings (a fallback used, a stale value served) go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();

    // The embedded database (created and seeded on first run), the HTTP settings API (in
    // process unless SETTINGS_API names a real one) and the environment.
    let api_calls = Arc::new(AtomicUsize::new(0));
    let (sources, db, api_url) = app::sources(api_calls.clone()).await?;
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
