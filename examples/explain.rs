//! Explain: what the quickstart's configuration is and whether it can be read — before
//! anything is fetched. Prints the config doc (per field: type, sources and keys, default,
//! secrecy, rules, doc comment), a TOML defaults file, and a preflight of every source
//! (reachable, allowed, the key there) that reads no secret value. No external service
//! needed: the same embedded SQLite database and in-process settings API as the quickstart.
//!
//! Run: `cargo run --example explain` (everything), `-- --describe` (the doc as Markdown),
//! `-- --template` (the TOML file), `-- --schema` (its JSON Schema) or `-- --preflight`
//! (the check alone; the exit code says whether it passed). Try
//! `QUICKSTART_DB=/tmp/empty.db SETTINGS_API=http://127.0.0.1:9 cargo run --example explain -- --preflight`
//! for a failing one.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

#[path = "quickstart/app.rs"]
#[allow(dead_code)] // the fetch half is the quickstart's
mod app;

use app::AppConfig;

#[tokio::main]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let (sources, _db, _url) = app::sources(Arc::new(AtomicUsize::new(0))).await?;
    // The few lines a service adds to its own `main` for `--describe` / `--preflight`.
    match std::env::args().nth(1).as_deref() {
        Some("--describe") => {
            println!("{}", AppConfig::config_doc_with(&sources).to_markdown());
            return Ok(ExitCode::SUCCESS);
        }
        Some("--template") => {
            print!("{}", AppConfig::config_doc_with(&sources).toml_template());
            return Ok(ExitCode::SUCCESS);
        }
        Some("--schema") => {
            let schema = AppConfig::config_doc_with(&sources).json_schema();
            println!("{}", serde_json::to_string_pretty(&schema)?);
            return Ok(ExitCode::SUCCESS);
        }
        Some("--preflight") => {
            let report = AppConfig::preflight_with(&sources).await;
            println!("{report}");
            return Ok(report.exit_code());
        }
        _ => {}
    }
    let doc = AppConfig::config_doc_with(&sources);
    println!("{doc}");
    println!("--- a defaults file (TOML) ---\n{}", doc.toml_template());
    let report = AppConfig::preflight_with(&sources).await;
    println!("--- preflight ---\n{report}");
    Ok(report.exit_code())
}
