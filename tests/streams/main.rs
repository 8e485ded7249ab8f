//! Push streams (`stream_from`): a start-up value from the broker, every later message a
//! candidate update through a `Live`'s validation and swap, malformed and oversize
//! messages rejected with the old value kept, broker restarts and dropped connections
//! survived. Against real brokers: tansu (Kafka-compatible, 127.0.0.1:9092, and private
//! instances started here), NATS with JetStream (127.0.0.1:4222), Redis (127.0.0.1:6379),
//! and the in-process websocket server of `test_util`.
//!
//! Its own binary: the seed's example runs `watch_for_updates()`, which reads the
//! process-wide sources (`Sources::set_global`, once per process).

mod kafka;
mod nats;
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
