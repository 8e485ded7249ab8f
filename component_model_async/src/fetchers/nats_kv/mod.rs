//! The `nats_kv` backend: `fetch_from = "nats_kv", bucket = "config", key = "app.port"`,
//! a key of a NATS JetStream key-value bucket. Distinct from the `nats` push source
//! (`stream_from = "nats"`), which keeps its meaning.
//!
//! * **Reads**: the key's last record in the bucket's stream `KV_<bucket>` (subject
//!   `$KV.<bucket>.<key>`): a direct get (`$JS.API.DIRECT.GET`) when the stream allows
//!   it, else `$JS.API.STREAM.MSG.GET`; which one is asked of JetStream once per bucket
//!   (`$JS.API.STREAM.INFO`), and a bucket that does not exist is `not found` naming the
//!   bucket. The value's stream sequence is its revision (the fetch report shows it).
//!   A key never written, deleted or purged is absent (`not found`: the field's
//!   `fallback` applies). NATS before 2.11 has no multi-get: the keys of one fetch are
//!   read concurrently on the source's one connection, one get each.
//! * **Watched** ([`Source::watch`](crate::Source::watch)): one ordered push consumer per
//!   distinct bucket and key, starting with the key's last record (so nothing written
//!   between the fetch and the watch is lost: the current value is handed on again, at
//!   its revision), then every new one. A put is a [`Change::Value`](crate::Change) at
//!   its revision for every request of the key; a delete or purge is a
//!   [`Change::Changed`](crate::Change), so the watcher reads the key, finds it absent
//!   and applies the `fallback`. After a reconnect async-nats makes the consumer again
//!   from the last sequence it delivered; when that fails the watch makes a new one from
//!   the revision after the last it handed on, with a backoff. A revision already handed
//!   on is never handed on again. Nothing runs once the stream is dropped (no task).
//! * **Bounded before anything is buffered**: the client reaches the servers through the
//!   relay of the [`nats`](crate::fetchers::nats) source, which refuses a message
//!   announced over the bound before reading its payload. A value over
//!   [`DEFAULT_MAX_VALUE`] ([`NatsKvSource::with_max_value`]) is `TooLarge`, naming the
//!   announced size, the bucket and the key; a watched one is read again (and fails so).
//!   One announced over four times the relay's limit also closes the relay's server
//!   connection (async-nats reconnects): a read of another key in flight on it at that
//!   moment fails with `Timeout`, and the next fetch reads it again.
//! * **Limits**: JetStream's default API prefix only (no domains), buckets whose stream
//!   keeps `$KV.<bucket>.>` (not mirrors); watching many keys makes one consumer each
//!   (nats-server 2.9 has no consumer with several filters).
//! * **One connection per source**, opened on first use and reused; connecting and every
//!   read are bounded by [`NatsKvSource::with_timeout`] (10 s; and the fetch's deadline).
//! * `NATS_URL` (`nats://host:4222`, several comma-separated) registers the source in
//!   [`Sources::from_env`](crate::Sources::from_env), next to the `nats` push source.
//!   Credentials in the URL (`nats://user:password@host`, or `nats://token@host`) are
//!   handed to async-nats as connect options, never inside a URL it may log, and are
//!   never shown (`Debug`, [`location`](crate::Source::location), errors). TLS:
//!   `tls://` or a server that requires it, with [`NatsKvSource::with_tls`].
//! * Metrics: one round trip per key read (and per bucket lookup, per consumer made).
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
