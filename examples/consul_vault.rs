//! Consul KV and Vault KV together, against the in-process API doubles of
//! `component_model::test_util` (they speak Consul's and Vault's HTTP APIs; they are not
//! Consul or Vault). With `CONSUL_HTTP_ADDR` / `VAULT_ADDR` (and their tokens) set, the
//! same struct reads a real Consul agent and Vault server instead.
//!
//! Run: `cargo run --example consul_vault`.

use component_model::secrecy::ExposeSecret;
use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{AsyncAssign, ErrorsExt, SecretString, Sources};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // printed through Debug
struct Pool {
    min: u32,
    max: u32,
}

#[derive(AsyncAssign, Debug)]
struct ServiceConfig {
    #[component(fetch_from = "consul", key = "${SERVICE:-orders}/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "${SERVICE:-orders}/pool")]
    pool: Pool,
    #[component(
        fetch_from = "consul",
        key = "${SERVICE:-orders}/maintenance",
        fallback = "false"
    )]
    maintenance: bool,
    #[component(
        fetch_from = "vault",
        secret = "${SERVICE:-orders}/db",
        field = "username"
    )]
    db_user: String,
    #[component(
        fetch_from = "vault",
        secret = "${SERVICE:-orders}/db",
        field = "password"
    )]
    db_password: SecretString,
    #[component(
        fetch_from = "vault",
        secret = "${SERVICE:-orders}/stripe",
        mount = "legacy"
    )]
    stripe_key: SecretString,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let real = std::env::var("CONSUL_HTTP_ADDR").is_ok() && std::env::var("VAULT_ADDR").is_ok();
    // Keep the doubles alive for the whole run.
    let mut doubles = None;
    let sources = if real {
        println!("reading the Consul agent and Vault server named by the environment");
        Sources::from_env()
    } else {
        let consul = ConsulDouble::builder()
            .acl_token("consul-demo-token")
            .start()
            .await;
        consul.put("orders/port", "8443");
        consul.put("orders/pool", r#"{"min": 4, "max": 32}"#);
        let vault = VaultDouble::builder().kv_v1("legacy").start().await;
        vault.put(
            "secret",
            "orders/db",
            serde_json::json!({"username": "orders", "password": "correct horse battery staple"}),
        );
        vault.put(
            "legacy",
            "orders/stripe",
            serde_json::json!({"key": "sk_test_not_real"}),
        );
        println!(
            "Consul API double at {}, Vault API double at {}",
            consul.url(),
            vault.url()
        );
        // What a deployment sets in its environment; read here from an injected map.
        let env = component_model::EnvSource::from_map([
            ("CONSUL_HTTP_ADDR", consul.address()),
            ("CONSUL_HTTP_TOKEN", "consul-demo-token".to_owned()),
            ("VAULT_ADDR", vault.url()),
            ("VAULT_TOKEN", "root".to_owned()),
        ]);
        let sources = Sources::new()
            .register(
                "consul",
                component_model::ConsulSource::from_env_source(&env),
            )
            .register("vault", component_model::VaultSource::from_env_source(&env))
            .with_env(env);
        doubles = Some((consul, vault));
        sources
    };

    match ServiceConfig::fetch_all_components_with(&sources).await {
        Ok(config) => {
            println!("{config:#?}");
            println!(
                "(secrets print as [REDACTED]; the password has {} characters, the Stripe key starts with {:?})",
                config.db_password.expose_secret().len(),
                config
                    .stripe_key
                    .expose_secret()
                    .get(..3)
                    .unwrap_or_default()
            );
        }
        Err(errors) => {
            eprintln!("{}", errors.display());
            std::process::exit(1);
        }
    }

    if let Some((consul, vault)) = &doubles {
        let txns = consul.requests_to("/v1/txn").len();
        let gets = consul.requests_to("/v1/kv/").len();
        println!(
            "\nconsul: {txns} transaction(s) and {gets} GET(s) for 3 keys (the missing `maintenance` key rolled the first transaction back, so the rest were read again; its field took its fallback)"
        );
        let reads =
            vault.requests_to("/v1/secret/data/").len() + vault.requests_to("/v1/legacy/").len();
        let detections = vault.requests_to("/v1/sys/internal/ui/mounts/").len();
        println!(
            "vault: {reads} secret read(s) for 3 fields on 2 paths, {detections} KV-version detection(s) (one per mount)"
        );
    }
    Ok(())
}
