//! Loads an `AppConfig` concurrently from the environment and two registered in-process
//! sources, and prints it with secrets redacted, then shows every error at once for a
//! broken environment.
//!
//! Run: `cargo run --example async_config_example` (no external service needed; set
//! `APP_PORT=...` or `APP_API_KEY=...` to see env values win over fallbacks).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use component_model::{
    AsyncAssign, ComponentFetcher, EnvSource, FetchRequest, RawValue, SecretString, Source,
    SourceError, Sources, async_trait,
};
use serde::Deserialize;

/// Settings stored as a JSON document in the settings service.
#[derive(Debug, Deserialize, Default)]
#[allow(dead_code)] // read through Debug
struct Limits {
    max_connections: u32,
    burst: Option<u32>,
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_", timeout = "5s")]
#[allow(dead_code)] // fields are read through Debug
struct AppConfig {
    #[component(fetch_from = "env", fallback = "0.0.0.0")]
    host: String,
    #[component(fetch_from = "env", fallback = "8080")]
    port: u16,
    #[component(fetch_from = "env", fallback = "dev-key-not-for-production")]
    api_key: SecretString,
    #[component(fetch_from = "settings", key = "limits")]
    limits: Limits,
    #[component(fetch_from = "settings", key = "region", fallback = "eu-west-1")]
    region: String,
    #[component(fetch_from = "flags", timeout = "1s", retry_attempts = 2)]
    beta_enabled: bool,
    /// Not fetched: keeps its Default.
    started_by: String,
}

/// An in-process key/value service with network-like latency (a stand-in for a config
/// server). It answers all keys of one fetch in one round trip.
struct SettingsService {
    data: HashMap<&'static str, &'static str>,
    latency: Duration,
}

#[async_trait]
impl Source for SettingsService {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        tokio::time::sleep(self.latency).await;
        let key = request.key().unwrap_or_default();
        self.data
            .get(key)
            .map(|v| RawValue::from(*v))
            .ok_or_else(SourceError::not_found)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        tokio::time::sleep(self.latency).await; // one round trip for the whole batch
        requests
            .iter()
            .map(|r| {
                let key = r.key().unwrap_or_default();
                self.data
                    .get(key)
                    .map(|v| RawValue::from(*v))
                    .ok_or_else(SourceError::not_found)
            })
            .collect()
    }

    fn location(&self) -> Option<String> {
        Some("in-process settings service".into())
    }
}

/// A feature-flag service serving one typed value.
struct FlagService;

#[async_trait]
impl ComponentFetcher<bool> for FlagService {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, Self::Error> {
        tokio::time::sleep(Duration::from_millis(80)).await;
        Ok(true)
    }
}

fn sources(env: EnvSource) -> Sources {
    let settings = SettingsService {
        data: HashMap::from([("limits", r#"{"max_connections": 512}"#)]),
        latency: Duration::from_millis(100),
    };
    Sources::new()
        .with_env(env)
        .register("settings", settings)
        .register("flags", FlagService)
}

#[tokio::main]
async fn main() {
    println!("Where each field comes from:");
    println!("  {:<14} {:<9} {:<12} fallback", "field", "source", "key");
    for spec in AppConfig::component_sources() {
        println!(
            "  {:<14} {:<9} {:<12} {}",
            spec.field,
            spec.source,
            spec.key
                .or(spec.default_key.filter(|_| spec.source == "env"))
                .unwrap_or("-"),
            spec.fallback
                .map(|f| if spec.field == "api_key" {
                    "<secret>"
                } else {
                    f
                })
                .unwrap_or("-")
        );
    }

    let started = Instant::now();
    match AppConfig::fetch_with_resilience_with(&sources(EnvSource::process())).await {
        Ok(config) => {
            println!(
                "\nFetched in {:?} (sources answered concurrently):\n{config:#?}",
                started.elapsed()
            );
        }
        Err(e) => println!("\nFetch failed:\n{e}"),
    }

    // A broken environment: every problem is reported at once, each naming its field,
    // source and key; the secret's value is never shown.
    let broken = EnvSource::from_map([("APP_PORT", "eighty"), ("APP_API_KEY", "s3cr3t-value")]);
    let broken_sources = sources(broken).register("flags", FlagService);
    #[derive(AsyncAssign, Debug)]
    #[component(env_prefix = "APP_")]
    #[allow(dead_code)]
    struct Strict {
        #[component(fetch_from = "env")]
        port: u16,
        #[component(fetch_from = "env", secret)]
        api_key: u64,
        #[component(fetch_from = "settings", key = "region")]
        region: String,
    }
    if let Err(errors) = Strict::fetch_all_components_with(&broken_sources).await {
        println!(
            "\nA broken environment reports {} errors at once:",
            errors.len()
        );
        for e in &errors {
            println!("  - {e}");
        }
    }
}
