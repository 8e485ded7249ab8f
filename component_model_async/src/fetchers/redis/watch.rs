//! Watching Redis keys with keyspace notifications: one pub/sub connection (read through
//! the same size bound as every reply) subscribed to `__keyspace@<db>__:<key>` for each
//! watched key. Notifications must be on (`notify-keyspace-events` with `K` and the event
//! classes of strings and hashes, e.g. `KA`): the watch checks with `CONFIG GET` and, when
//! they are off, turns them on with `CONFIG SET` (adding `KA`); where `CONFIG` is refused
//! (managed Redis), enable them in the server's configuration, or the fields are polled.
//!
//! A notification names its key but carries no value: it is a [`Change::Changed`] of the
//! requests reading that key (a `Live` reads those, not the other fields). A subtree
//! field (`prefix`) is watched with `PSUBSCRIBE __keyspace@<db>__:<prefix>*` (the prefix's
//! glob characters escaped): a key set, added or deleted under it reads the field again.
//!
//! When the pub/sub connection closes, the watch ends; a `Live` watches again after a
//! backoff and reads everything (the watch starts with [`Change::All`]), so a change
//! during the outage is not lost.

use std::collections::HashMap;

use ::redis::Value;
use ::redis::aio::PubSub;
use futures::StreamExt;

use super::bounded::BoundedStream;
use super::source::RedisSource;
use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest};

/// Whether `flags` (a `notify-keyspace-events` value) publish keyspace events of strings,
/// hashes and generic commands (`DEL`, `EXPIRE`, `RENAME`).
fn enough(flags: &str) -> bool {
    flags.contains('K')
        && (flags.contains('A') || ["$", "h", "g"].iter().all(|c| flags.contains(c)))
}

impl RedisSource {
    /// Turns keyspace notifications on when they are off.
    async fn ensure_notifications(&self) -> Result<(), SourceError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("CONFIG").arg("GET").arg("notify-keyspace-events");
        let reply = self.round_trip(&pipe, "CONFIG GET").await?.pop();
        let flags = match reply {
            Some(Ok(v)) => config_value(v),
            _ => String::new(),
        };
        if enough(&flags) {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(format!("{flags}KA"));
        match self.round_trip(&pipe, "CONFIG SET").await?.pop() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "redis at {}: keyspace notifications are off (notify-keyspace-events = {flags:?}) and CONFIG SET was refused ({e}); set `notify-keyspace-events KA` in the server's configuration to watch, else the fields are polled",
                self.address()
            ))),
            None => Err(SourceError::new(ErrorKind::Config)
                .with_message("redis answered CONFIG SET with nothing")),
        }
    }

    /// A pub/sub connection, read through the size bound.
    async fn pubsub(&self) -> Result<PubSub, SourceError> {
        let info = self.connection_info()?;
        let failed = |e: &dyn std::fmt::Display| {
            SourceError::new(ErrorKind::Unavailable).with_message(format!(
                "cannot open a pub/sub connection to redis at {}: {e}",
                self.address()
            ))
        };
        let limit = self.response_timeout();
        let stream = self.open_stream(info).await?;
        let (stream, _) = BoundedStream::new(stream, self.max_reply());
        let opened = tokio::time::timeout(limit, PubSub::new(info.redis_settings(), stream)).await;
        opened
            .map_err(|_| failed(&"timed out"))?
            .map_err(|e| failed(&e))
    }

    /// Subscribes to the keyspace channels of `keys` (each with the positions of the
    /// requests reading it).
    async fn keyspace(
        &self,
        keys: Vec<(String, Vec<usize>)>,
        prefixes: Vec<(String, Vec<usize>)>,
    ) -> Result<Changes, SourceError> {
        self.ensure_notifications().await?;
        let db = self.connection_info()?.redis_settings().db();
        let mut pubsub = self.pubsub().await?;
        let mut readers: HashMap<String, Vec<usize>> = HashMap::with_capacity(keys.len());
        for (key, positions) in keys {
            let channel = format!("__keyspace@{db}__:{key}");
            pubsub.subscribe(&channel).await.map_err(|e| {
                SourceError::new(ErrorKind::Unavailable)
                    .with_message(format!("SUBSCRIBE on redis at {}: {e}", self.address()))
            })?;
            readers.insert(channel, positions);
        }
        // A subtree read (`prefix`): a pattern on its keys' channels, so a key added,
        // changed or removed under the prefix is an event of the subtree.
        let mut patterns: HashMap<String, Vec<usize>> = HashMap::with_capacity(prefixes.len());
        for (prefix, positions) in prefixes {
            let pattern = format!("__keyspace@{db}__:{}", super::source::glob_prefix(&prefix));
            pubsub.psubscribe(&pattern).await.map_err(|e| {
                SourceError::new(ErrorKind::Unavailable)
                    .with_message(format!("PSUBSCRIBE on redis at {}: {e}", self.address()))
            })?;
            patterns.insert(pattern, positions);
        }
        // Subscribed now: read again what may have changed before. Then each event: the
        // requests of its key, or of its prefix (a channel not subscribed to: everything).
        let changed = move |msg: ::redis::Msg| {
            let mut positions: Vec<usize> = Vec::new();
            if msg.from_pattern() {
                if let Some(p) = msg
                    .get_pattern::<String>()
                    .ok()
                    .and_then(|p| patterns.get(&p))
                {
                    positions.extend(p);
                }
            } else if let Some(p) = readers.get(msg.get_channel_name()) {
                positions.extend(p);
            }
            match positions.is_empty() {
                false => Ok(Change::Changed(positions)),
                true => Ok(Change::All),
            }
        };
        Ok(futures::stream::iter([Ok(Change::All)])
            .chain(pubsub.into_on_message().map(changed))
            .boxed())
    }

    /// [`Source::watch`](crate::Source::watch) of the Redis source's keys: `requests`
    /// with their positions in the watched list (the changes name those).
    pub(super) fn watch_keys(
        &self,
        requests: Vec<(usize, FetchRequest)>,
    ) -> Result<Changes, SourceError> {
        let mut keys: Vec<(String, Vec<usize>)> = Vec::new();
        let mut prefixes: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in &requests {
            if let Some(prefix) = r.param(crate::convert::subtree::PREFIX) {
                match prefixes.iter_mut().find(|(p, _)| p == prefix) {
                    Some((_, positions)) => positions.push(*i),
                    None => prefixes.push((prefix.to_owned(), vec![*i])),
                }
                continue;
            }
            let Some(key) = r.key() else { continue };
            match keys.iter_mut().find(|(k, _)| k == key) {
                Some((_, positions)) => positions.push(*i),
                None => keys.push((key.to_owned(), vec![*i])),
            }
        }
        if keys.is_empty() && prefixes.is_empty() {
            return Err(SourceError::new(ErrorKind::Config).with_message("no key to watch"));
        }
        let this = self.clone();
        Ok(
            futures::stream::once(async move { this.keyspace(keys, prefixes).await })
                .flat_map(|subscribed| match subscribed {
                    Ok(changes) => changes,
                    Err(e) => futures::stream::iter([Err(e)]).boxed(),
                })
                .boxed(),
        )
    }
}

/// The value of a `CONFIG GET` reply (`[name, value]` in RESP2, a map in RESP3).
fn config_value(v: Value) -> String {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    match v {
        Value::Array(items) => items.get(1).map(text).unwrap_or_default(),
        Value::Map(pairs) => pairs.first().map(|(_, v)| text(v)).unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::enough;

    #[test]
    fn which_flags_publish_the_events_a_watch_needs() {
        assert!(enough("KA"));
        assert!(enough("AKE"));
        assert!(enough("K$hg"));
        assert!(!enough(""));
        assert!(!enough("E$hg"));
        assert!(!enough("K$"));
    }
}
