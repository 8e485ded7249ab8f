//! Push streams (`stream_from`): a start-up value from the broker, every later message a
//! candidate update through a `Live`'s validation and swap, malformed and oversize
//! messages rejected with the old value kept, broker restarts and dropped connections
//! survived. Against real brokers: tansu (Kafka-compatible, 127.0.0.1:9092, and private
//! instances started here), NATS with JetStream (127.0.0.1:4222), Redis (127.0.0.1:6379),
//! Mosquitto (127.0.0.1:1883), and the in-process websocket server of `test_util`.
//!
//! Its own binary: the seed's example runs `watch_for_updates()`, which reads the
//! process-wide sources (`Sources::set_global`, once per process).

mod kafka;
mod mqtt;
mod nats;
mod readme_features;
mod redis_streams;
mod seed;
mod websocket;

use std::time::Duration;

use component_model::{ConfigUpdate, ConfigUpdates};
use futures::StreamExt;

/// The next `Applied` or `Rejected` update within `limit` (others are skipped).
pub async fn next_update(updates: &mut ConfigUpdates, limit: Duration) -> ConfigUpdate {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, updates.next()).await {
            Ok(Some(u @ (ConfigUpdate::Applied { .. } | ConfigUpdate::Rejected { .. }))) => {
                return u;
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the update stream ended"),
            Err(_) => panic!("no update within {limit:?}"),
        }
    }
}

/// Waits (checking every 20 ms) until `done()`, at most `limit`; else panics with `what()`.
/// The value of a `Live` is read with `get()`, so no update stream needs draining.
pub async fn eventually(limit: Duration, done: impl Fn() -> bool, what: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{}", what());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A free local port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A server process of a test's own (a broker to restart), killed when dropped.
pub struct Process(tokio::process::Child);

impl Process {
    /// Starts `command` (output discarded) and waits until it listens on `port`.
    pub async fn start(command: &mut tokio::process::Command, port: u16) -> Process {
        let what = format!("{:?}", command.as_std().get_program());
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Process(child)
    }

    /// Kills it and waits for it to end.
    pub async fn stop(mut self) {
        let _ = self.0.kill().await;
        let _ = self.0.wait().await;
    }
}

/// The reason of a rejected update, or a panic naming what came instead.
pub fn rejected(update: &ConfigUpdate) -> &str {
    match update {
        ConfigUpdate::Rejected { reason, .. } => reason,
        other => panic!("expected a rejected update, got {other}"),
    }
}

/// Panics unless `update` is an applied one.
pub fn applied(update: &ConfigUpdate) {
    assert!(
        matches!(update, ConfigUpdate::Applied { .. }),
        "expected an applied update, got {update}"
    );
}
