//! Push streams on embedded defaults: an in-process websocket server
//! (`component_model::test_util::WebSocketServer`, a double of a configuration service)
//! pushes feature-flag changes; the struct's `stream_from = "websocket"` field takes each
//! message as an update, validated before it is swapped in. A malformed message and one
//! the validator refuses are rejected, and the old value stays. No external service
//! needed.
//!
//! Run: `cargo run --example streaming`.
//!
//! The same field on Kafka, NATS or a Redis stream is one attribute away:
//! `#[component(stream_from = "kafka", topic = "config-updates", key = "flags")]`,
//! `#[component(stream_from = "nats", topic = "config.flags")]`,
//! `#[component(stream_from = "redis", topic = "config:flags")]`,
//! `#[component(stream_from = "mqtt", topic = "config/flags")]` (with `KAFKA_BROKERS`,
//! `NATS_URL`, `REDIS_URL` or `MQTT_URL` set for `Sources::from_env()`).

use std::time::Duration;

use component_model::test_util::WebSocketServer;
use component_model::{AsyncAssign, ConfigUpdate, Live, Sources, WebSocketSource};
use futures::StreamExt;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
struct FeatureFlags {
    dark_mode: bool,
    rollout_percent: u8,
}

impl std::fmt::Display for FeatureFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dark_mode={} rollout={}%",
            self.dark_mode, self.rollout_percent
        )
    }
}

#[derive(AsyncAssign, Debug)]
struct StreamingConfig {
    #[component(stream_from = "websocket", url = "ws://config.service/flags")]
    realtime_flags: FeatureFlags,
    #[component(fetch_from = "env", key = "APP_REGION", fallback = "eu-west-1")]
    region: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = WebSocketServer::start().await;
    server.set(r#"{"dark_mode": false, "rollout_percent": 0}"#);

    // `ws://config.service` is pinned to the in-process server (as curl's --resolve).
    let sources = Sources::from_env().register(
        "websocket",
        WebSocketSource::new().resolve("config.service", server.address()),
    );
    let live = Live::<StreamingConfig>::builder(&sources)
        .validate(
            |c: &StreamingConfig| match c.realtime_flags.rollout_percent {
                0..=100 => Ok(()),
                p => Err(format!("rollout_percent {p} is over 100")),
            },
        )
        .quiescence(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await
        .map_err(component_model::ComponentError::from)?;
    println!(
        "version {}: {} in {}",
        live.version(),
        live.get().realtime_flags,
        live.get().region
    );

    // The "configuration service": one push every 300 ms.
    let pushes = [
        r#"{"dark_mode": true, "rollout_percent": 10}"#,
        r#"{"dark_mode": true, "rollout_percent": 50}"#,
        "{ this is not json",
        r#"{"dark_mode": true, "rollout_percent": 250}"#,
        r#"{"dark_mode": false, "rollout_percent": 100}"#,
    ];
    let pusher = tokio::spawn(async move {
        for message in pushes {
            tokio::time::sleep(Duration::from_millis(300)).await;
            println!("  server pushes {message}");
            server.set(message);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
    });

    let mut updates = live.changes();
    let mut seen = 0;
    while seen < pushes.len() {
        let Ok(Some(update)) = tokio::time::timeout(Duration::from_secs(5), updates.next()).await
        else {
            return Err("no update within 5 s".into());
        };
        seen += 1;
        match &update {
            ConfigUpdate::Applied { version, .. } => {
                println!("applied version {version}: {}", live.get().realtime_flags);
            }
            ConfigUpdate::Rejected { reason, .. } => {
                println!("rejected, kept version {}: {reason}", live.version());
            }
            other => println!("{other}"),
        }
    }
    let _server = pusher.await?;
    println!(
        "final version {}: {}",
        live.version(),
        live.get().realtime_flags
    );
    Ok(())
}
