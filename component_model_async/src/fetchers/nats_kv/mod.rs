//! The `nats_kv` backend: `fetch_from = "nats_kv", bucket = "config", key = "app.port"`,
//! a key of a NATS JetStream key-value bucket. Distinct from the `nats` push source
//! (`stream_from = "nats"`), which keeps its meaning.
//!
//! * **Reads**: the key's last record in the bucket's stream `KV_<bucket>` (subject
//!   `$KV.<bucket>.<key>`): a direct get (`$JS.API.DIRECT.GET`) when the stream allows
//!   it, else `$JS.API.STREAM.MSG.GET`; which one is asked of JetStream once per bucket
//!   (`$JS.API.STREAM.INFO`), and a bucket that does not exist is `not found` naming the
//!   bucket. The value's stream sequence is its revision (the fetch report shows it).
//!   A direct get nobody answers while the bucket's stream exists (its servers
//!   restarting, a leader election) is tried again, then once as `STREAM.MSG.GET`, and
//!   is then `Unavailable` — never `not found`, so a fallback does not replace the value.
//!   A key never written, deleted or purged is absent (`not found`: the field's
//!   `fallback` applies). NATS before 2.11 has no multi-get: the keys of one fetch are
//!   read concurrently on the source's one connection, one get each.
//! * **Watched** ([`Source::watch`](crate::Source::watch)): one ordered push consumer per
//!   distinct bucket and key, starting with the key's last record (so nothing written
//!   between the fetch and the watch is lost: the current value is handed on again, at
//!   its revision), then every new one. It starts at an explicit sequence (the key's
//!   last record, read once, or the stream's next one): older records are never handed
//!   on, even when async-nats makes the consumer again before its first delivery. A put is a [`Change::Value`](crate::Change) at
//!   its revision for every request of the key; a delete or purge is a
//!   [`Change::Changed`](crate::Change), so the watcher reads the key, finds it absent
//!   and applies the `fallback`. After a reconnect async-nats makes the consumer again
//!   from the last sequence it delivered; when that fails the watch makes a new one from
//!   the revision after the last it handed on, with a backoff. A revision already handed
//!   on is never handed on again. A bucket deleted and made again (its stream's creation
//!   time changed, or its last sequence is below the last revision handed on) is a
//!   [`Change::Changed`](crate::Change) of its keys, then followed from their last
//!   records; a bucket deleted while watched is handed on as an error after three failed
//!   attempts (a Live watches again with its own backoff).
//! * **Tasks**: while a watch runs, async-nats runs tasks of its own (the connection's,
//!   and a consumer it makes again after a reconnect); dropping the stream ends its
//!   subscription, and the server removes the consumer once its inactivity threshold
//!   passes. async-nats queues at most 128 messages per subscription (not its default
//!   65 536): a server flooding a watched key cannot pile messages up; an ordered
//!   consumer that misses one makes itself again from the last record it delivered.
//!   When the source is dropped, a connection task still reconnecting sends no
//!   credentials and stops connecting to the relay's former port.
//! * **Bounded before anything is buffered**: the client reaches the servers through the
//!   relay of the [`nats`](crate::fetchers::nats) source, which refuses a message
//!   announced over its limit before reading its payload. That limit is the answer a
//!   value of the bound takes (JetStream may carry it in base64 inside JSON): a third
//!   more, plus 64 KiB; an answer up to it is buffered before the value is checked. A
//!   value over
//!   [`DEFAULT_MAX_VALUE`] ([`NatsKvSource::with_max_value`]) is `TooLarge`, naming the
//!   announced size, the bucket and the key; a watched one is read again (and fails so).
//!   One announced over four times the relay's limit also closes the relay's server
//!   connection (async-nats reconnects): a read of another key in flight on it at that
//!   moment fails with `Timeout`, and the next fetch reads it again.
//! * **Limits**: JetStream's default API prefix only (no domains), buckets whose stream
//!   keeps `$KV.<bucket>.>` (not mirrors); watching many keys makes one consumer each
//!   (nats-server 2.9 has no consumer with several filters).
//! * **Permissions**: a request the server's permissions refuse gets no answer; the
//!   violation the server reports naming its subject fails it at once with
//!   [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) (not a timeout).
//! * **One connection per source**, opened on first use and reused. One read —
//!   connecting, waiting for its bucket's lookup, the lookup, the get and a second try —
//!   is bounded as a whole by [`NatsKvSource::with_timeout`] (10 s; or the fetch's
//!   deadline if sooner).
//! * `NATS_URL` (`nats://host:4222`, several comma-separated) registers the source in
//!   [`Sources::from_env`](crate::Sources::from_env), next to the `nats` push source.
//!   Credentials in the URL (`nats://user:password@host`, or `nats://token@host`) are
//!   handed to async-nats as connect options, never inside a URL it may log, and are
//!   never shown (`Debug`, [`location`](crate::Source::location), errors; all of a
//!   server up to its last `@`, with or without `nats://`). One client has one set of
//!   credentials: a server without any in `NATS_URL` gets the others', and servers with
//!   different ones are a `Config` error. TLS:
//!   `tls://` or a server that requires it, with [`NatsKvSource::with_tls`].
//! * Metrics: one round trip per key read (and per bucket lookup, per consumer made).
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no value, within the source's
//! timeout: it connects, then per key asks `$JS.API.STREAM.INFO.KV_<bucket>` with
//! `subjects_filter = $KV.<bucket>.<key>` (how many records the key has: counts, no
//! payload). No stream is invalid (`no bucket <bucket>`), no record missing (`never
//! written`); a key with records gets an ephemeral pull consumer on its subject
//! (`last_per_subject`, `headers_only`, in memory, deleted after; the server drops it
//! after 10 s idle otherwise) whose one message says whether the last record is a
//! delete or purge (missing) or a value (readable, detail: its revision). A consumer
//! the user may not make leaves the key unchecked. A request the user's permissions
//! refuse (the server reports a violation naming its subject, and answers nothing) is
//! denied at once, not after the timeout; credentials refused when connecting are
//! unauthenticated; cannot connect or no answer in time, unreachable.
//!
//! ## What this module declares
//!
//! * name `nats_kv`, cargo feature `nats`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `NATS_URL`;
//! * attribute keys: `bucket` (required), `key`;
//! * key label `key` (shown as `bucket/key`); values are not secret.

#[cfg(feature = "nats")]
mod source;
#[cfg(feature = "nats")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["nats_kv"],
    hint: "`Sources::from_env()` registers it from NATS_URL with cargo feature `nats`; or register a `NatsKvSource`",
    from_env: |env| {
        #[cfg(feature = "nats")]
        return NatsKvSource::from_env_source(env)
            .map(|s| ("nats_kv", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "nats"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "nats_kv"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_nats_kv {
    (@bucket bucket $($rest:ident)*) => {};
    (@bucket $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_nats_kv! { @bucket $($rest)* }
    };
    (@bucket) => {
        ::core::compile_error!("the `nats_kv` source needs `bucket = \"...\"`, the key-value bucket to read (e.g. `fetch_from = \"nats_kv\", bucket = \"config\", key = \"app.port\"`)");
    };
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_nats! { $entry }
        $crate::__component_model_rules_nats_kv! { @bucket $($names)* }
    };
    ($entry:tt param key) => {};
    ($entry:tt param bucket) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "nats_kv" [key bucket] }
    };
}
