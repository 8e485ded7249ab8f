//! Live configuration on embedded defaults: a TOML file in a temporary directory and the
//! in-process Consul and Vault API doubles (`component_model::test_util`; they speak the
//! HTTP APIs, they are not Consul or Vault). The example prints the config, then changes
//! values on a timer — a file edit, a Consul write, a new Vault secret version, a value
//! the validator refuses, and a rollback — and prints each update as the `Live` applies
//! (or rejects) it. No external service needed.
//!
//! Run: `cargo run --example live`.

use std::time::Duration;

use component_model::secrecy::ExposeSecret;
use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    AsyncAssign, ConfigUpdate, ConsulSource, FileSource, Live, SecretString, Sources, VaultSource,
};
use futures::StreamExt;

#[derive(AsyncAssign, Debug)]
#[component(watch, watch_interval = "200ms")]
struct ServiceConfig {
    #[component(fetch_from = "file", path = "service.toml", pointer = "/log/level")]
    log_level: String,
    #[component(fetch_from = "consul", key = "orders/pool/max")]
    pool_max: u32,
    #[component(fetch_from = "consul", key = "orders/pool/size")]
    pool_size: u32,
    #[component(fetch_from = "vault", secret = "orders/db", field = "password")]
    db_password: SecretString,
}

fn validate(c: &ServiceConfig) -> Result<(), String> {
    if c.pool_size > c.pool_max {
        return Err(format!(
            "pool size {} is over the maximum {}",
            c.pool_size, c.pool_max
        ));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("component_model_live_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("service.toml");
    std::fs::write(&file, "[log]\nlevel = \"info\"\n")?;
    let consul = ConsulDouble::start().await;
    consul.put("orders/pool/max", "32");
    consul.put("orders/pool/size", "8");
    let vault = VaultDouble::start().await;
    vault.put(
        "secret",
        "orders/db",
        serde_json::json!({"password": "s3cret-v1"}),
    );

    let sources = Sources::new()
        .register("file", FileSource::new().with_base_dir(&dir))
        .register("consul", ConsulSource::new(consul.address()))
        .register("vault", VaultSource::new(vault.url()).with_token("root"));
    let live = Live::<ServiceConfig>::builder(&sources)
        .validate(validate)
        .quiescence(Duration::from_millis(50), Duration::from_millis(500))
        .start()
        .await
        .map_err(component_model::ComponentError::from)?;
    let show = |c: &ServiceConfig| {
        format!(
            "log_level={} pool={}/{} db_password={} chars",
            c.log_level,
            c.pool_size,
            c.pool_max,
            c.db_password.expose_secret().len()
        )
    };
    println!("version {}: {}", live.version(), show(&live.get()));

    // The "operator": one change every 700 ms.
    let writer = {
        let file = file.clone();
        async move {
            let step = Duration::from_millis(700);
            tokio::time::sleep(step).await;
            println!("\n> edit service.toml: log level debug");
            std::fs::write(&file, "[log]\nlevel = \"debug\"\n").unwrap();
            tokio::time::sleep(step).await;
            println!("\n> consul: orders/pool/size = 16");
            consul.put("orders/pool/size", "16");
            tokio::time::sleep(step).await;
            println!("\n> vault: a new version of orders/db");
            vault.put(
                "secret",
                "orders/db",
                serde_json::json!({"password": "s3cret-v2-longer"}),
            );
            tokio::time::sleep(step).await;
            println!("\n> consul: orders/pool/size = 64 (over the maximum)");
            consul.put("orders/pool/size", "64");
            tokio::time::sleep(step).await;
            (consul, vault)
        }
    };
    let mut updates = live.changes();
    let reader = async {
        let mut seen = 0;
        while let Some(update) = updates.next().await {
            println!("  update: {update}");
            if let ConfigUpdate::Applied { version, .. } = &update {
                println!("  version {version}: {}", show(&live.get()));
            }
            seen += 1;
            if seen == 4 {
                break;
            }
        }
    };
    let ((_consul, _vault), ()) = tokio::join!(writer, reader);

    println!("\n> rollback to version 2");
    live.rollback(2).await?;
    println!("  version {}: {}", live.version(), show(&live.get()));
    println!(
        "\nkept versions: {:?}",
        live.history().iter().map(|v| v.version).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
