//! The `kafka` push source: `stream_from = "kafka", topic = "config-updates"` (optionally
//! `key = "app"`) — the field's value is the newest message of the topic (with that key),
//! and every later one is a candidate update. A pure-Rust client (rskafka): no librdkafka
//! to build or install.
//!
//! * **At start** (a fetch with no watch), each partition's last
//!   [`DEFAULT_LOOKBACK`] messages ([`KafkaSource::with_lookback`]) are read and the
//!   newest message with the key (any message when the field names no key) is the value;
//!   newest means the highest record timestamp across partitions. The partition of a key
//!   depends on the producer's partitioner, so every partition is read; a key whose last
//!   message lies further back than the look-back is `not found` (the field's `fallback`
//!   applies). Use a **compacted topic** (`cleanup.policy=compact`) for configuration:
//!   the broker then keeps the last message of every key. A message without a value (a
//!   compaction tombstone) is the key deleted: `not found`.
//! * **Watched** (`stream_from` fields always are), one consumer per field reads every
//!   partition from where the start-up read ended, with long polls (500 ms,
//!   [`KafkaSource::with_long_poll`]). Its position
//!   (the next offset of each partition) is kept across failures: after a lost
//!   connection it goes on from there, reads what it missed and applies only the newest
//!   message of it (a value, not a log: old values are not applied one by one; a burst is
//!   one update too, as the `Live` waits for quiet). No message is read twice. When the
//!   consumer is more than the look-back behind, or the log no longer reaches its
//!   position (a broker that lost its data, retention), it reads the newest message again
//!   as at start. Reconnects back off from 500 ms to 30 s. A broker that answers a poll
//!   at once when nothing is new is polled at most every 500 ms.
//! * Bounded: a record value larger than [`DEFAULT_MAX_MESSAGE`]
//!   ([`KafkaSource::with_max_message`]) is refused (the update is rejected with the
//!   reason; fetches of the field answer that error until the next message); each fetch
//!   request asks for at most that many bytes. Every connection to a broker goes
//!   through a relay of the source's on 127.0.0.1 (rskafka connects through it as a
//!   SOCKS5 proxy; it reaches only the configured brokers and those their metadata
//!   names), which reads each response first: a frame over four times the largest
//!   message, or a response whose gzip and snappy batches would inflate past four times
//!   that together, is refused before rskafka buffers or inflates it (rskafka inflates
//!   every batch of a response in one decode: a 1.7 MB gzip batch of zeros held 256 MiB,
//!   30 batches of 16 MB each 480 MiB) — reported as too large, and the watch of that
//!   partition steps over the batch (the watch of another partition does not).
//!   A broker answering requests it was never sent is cut off (`unavailable`), not read
//!   on (rskafka logs a warning for each such answer).
//! * `KAFKA_BROKERS` (comma-separated `host:port`) registers the source in
//!   [`Sources::from_env`](crate::Sources::from_env). A broker given as an IPv6 literal
//!   (`[::1]:9092`) is a `Config` error naming it: rskafka hands its SOCKS5 proxy (the
//!   relay) the host cut at the first `:`, and reaching the broker around the relay
//!   would leave its responses unbounded; name it by a host name that resolves to the
//!   address. (A broker the metadata names by an IPv6 address cannot be reached either.)
//!
//! Kafka API requests used (through rskafka 0.6, which negotiates versions with
//! ApiVersions): Metadata, Fetch (also to find a partition's bounds: a small fetch from
//! offset 0 gives the high watermark and the first offset kept) and, only when a log no
//! longer starts at offset 0, ListOffsets (tansu 0.6 answers ListOffsets with no topic,
//! so it is not relied on); the tests also use CreateTopics, DeleteTopics and Produce. Tested against
//! **tansu** 0.6 (a Kafka-compatible broker, memory storage), not against Apache Kafka
//! itself; plain TCP only (no TLS or SASL yet). Records compressed with gzip or snappy are
//! read; lz4 and zstd are not (they need C libraries).
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no message, within the source's
//! timeout: it connects (through the relay, as a fetch does) and asks the brokers'
//! metadata for the topics, once for every request. A topic with partitions is
//! readable (detail: how many; whether a message has a field's `key` is not looked
//! up), an absent one missing — brokers with ACLs leave out of the listing the topics
//! the user may not describe, so "missing" means absent or not visible to this user; a
//! refused SASL login is unauthenticated; brokers that cannot be reached in time,
//! unreachable.
//!
//! ## What this module declares
//!
//! * name `kafka`, cargo feature `kafka`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `KAFKA_BROKERS`;
//! * attribute keys: `topic` (required), `key` (the message key to follow);
//! * key label `topic` (`config-updates, key app`); values are not secret.

#[cfg(feature = "kafka")]
mod relay;
#[cfg(feature = "kafka")]
mod source;
#[cfg(feature = "kafka")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["kafka"],
    hint: "`Sources::from_env()` registers it from KAFKA_BROKERS with cargo feature `kafka`; or register a `KafkaSource`",
    from_env: |env| {
        #[cfg(feature = "kafka")]
        return KafkaSource::from_env_source(env)
            .map(|s| ("kafka", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "kafka"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from`/`stream_from = "kafka"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_kafka {
    (@topic topic $($rest:ident)*) => {};
    (@topic $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_kafka! { @topic $($rest)* }
    };
    (@topic) => {
        ::core::compile_error!("the `kafka` source needs `topic = \"...\"`, the topic to read (e.g. `stream_from = \"kafka\", topic = \"config-updates\", key = \"app\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_kafka! { $entry }
        $crate::__component_model_rules_kafka! { @topic $($names)* }
    };
    ($entry:tt param topic) => {};
    ($entry:tt param key) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "kafka" [topic key] }
    };
}

#[cfg(feature = "kafka")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_kafka {
    ($entry:tt) => {};
}
#[cfg(not(feature = "kafka"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_kafka {
    (facade) => {
        ::core::compile_error!("backend `kafka` needs cargo feature `kafka` of component_model: `component_model = { features = [\"kafka\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `kafka` needs cargo feature `kafka` of component_model_async");
    };
}
