//! The `redis` source: string keys and hash members from Redis (or a server speaking its
//! protocol), over one multiplexed connection (redis-rs on tokio).
//!
//! * `key = "app:port"` reads a string with `GET`; every string key of one fetch is read
//!   with ONE `MGET`;
//! * `key = "app:db", field = "port"` reads a member of a hash with `HGET`; several members
//!   of one hash with ONE `HMGET`. All of it goes out as one pipeline: one round trip per
//!   fetch, whatever the number of fields (plus one `TYPE` round trip only when some
//!   string keys came back empty, to tell a missing key from one of another type);
//! * a subtree, `prefix = "app:features:"`: every string key under the prefix as ONE JSON
//!   object of the keys relative to the prefix (for a `HashMap<String, T>`, a `BTreeMap` or
//!   a struct; each value converts as the field's type asks): `SCAN <cursor> MATCH
//!   <prefix>* COUNT 1000` (the glob characters `*?[]\` of the prefix escaped) until the
//!   cursor comes back to 0 — one round trip per scan step, so one on a small database —
//!   stopping with `too large` as soon as more than `max_keys = N` keys (default 10 000)
//!   were found, then ONE `MGET` of them; a key of another type, or gone meanwhile, is
//!   left out; the field's `max_size` bounds the keys' and values' bytes in all (counted as
//!   the values come, after the `MGET` reply, itself bounded by the source's
//!   `with_max_reply`, was read);
//! * a whole hash, `key = "app:db", field = "*"`: `HLEN` (more members than `max_keys` is
//!   too large, and nothing more is read), then `HGETALL`, into one JSON object of its
//!   members (a missing hash is not found);
//! * `REDIS_URL` (`redis://[:password@]host[:port][/db]`, `redis+unix:///path`) is
//!   registered by [`Sources::from_env`](crate::Sources::from_env) as `redis`;
//!   [`RedisSource::new`] builds one in code.
//!
//! Every reply is read through a size bound ([`DEFAULT_MAX_REPLY`], per source with
//! [`RedisSource::with_max_reply`]): a value announced larger than that is an error, never
//! an allocation, and so is a reply that would hold more than twice that in memory once
//! parsed (each element counted at its parsed cost plus its bytes; an array of 16 million
//! small integers is refused at its first line). A connection refused is `unavailable`, `WRONGPASS`/`NOAUTH` are
//! `unauthorized`, `WRONGTYPE` (a string read of a hash, a member read of a string) is a
//! decode error; each names the field, the source and the key, and the password of the
//! URL is never shown.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) sends ONE pipeline that reads no value:
//! `TYPE` of each key (`none` is [`Access::Missing`](crate::Access); a string key of
//! another type, a hash read of a string, a `topic` that is no stream are `Invalid`:
//! "key `k` is a list, the field reads a string"), `HEXISTS` of a hash member, `HLEN` of a
//! whole hash (`field = "*"`); a subtree counts its keys with `SCAN` (names only).
//! `WRONGPASS`/`NOAUTH` are `Unauthenticated`, `NOPERM` on a key `Denied` (an ACL that
//! refuses `TYPE` itself leaves the key `Unchecked`), no connection `Unreachable`.
//!
//! ## What this module declares
//!
//! * name `redis`, cargo feature `redis`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `REDIS_URL` when it is set;
//! * attribute keys: `key` (or `topic`, or `prefix` with `max_keys`: a subtree; any two
//!   of `key`, `topic` and `prefix` are a compile error); `field` reads a hash member
//!   (`field = "*"`: all of them), or a member of a stream entry (the source selects it
//!   itself, [`Source::selects_field`](crate::Source::selects_field));
//! * `topic = "config:app"` (with `stream_from = "redis"`) reads a **Redis stream**: the
//!   last entry at start (`XREVRANGE ... COUNT 1`), then every new entry (`XREAD BLOCK`
//!   on a connection of its own, from the last entry ID seen, so a reconnect skips
//!   nothing). A stream rather than pub/sub because a stream keeps its entries: there is
//!   a value at start and nothing is lost while reconnecting. An entry's value is the
//!   member named by `field`, else its only member, else all members as a JSON object;
//! * key label `key`; values are not secret; coalescing: one pipeline per fetch.
//!
//! Watched (for a [`Live`](crate::Live)) with keyspace notifications on one pub/sub
//! connection (turned on with `CONFIG SET notify-keyspace-events KA` when they are off
//! and `CONFIG` is allowed; see the `watch` module).
//!
//! A `RedisSource` is also a shared cache tier
//! ([`CacheTier`](crate::resilience::CacheTier)):
//! [`Sources::with_shared_cache`](crate::Sources::with_shared_cache) or
//! [`CacheLayer::shared`](crate::resilience::CacheLayer::shared).

#[cfg(feature = "redis")]
mod bounded;
pub(crate) mod connect;
#[cfg(feature = "redis")]
mod source;
#[cfg(feature = "redis")]
pub use source::*;
#[cfg(feature = "redis")]
mod stream;
#[cfg(feature = "redis")]
mod tier;
#[cfg(feature = "redis")]
mod watch;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["redis"],
    hint: "`Sources::from_env()` registers it from REDIS_URL with cargo feature `redis`; or register a `RedisSource`",
    from_env: |env| {
        #[cfg(feature = "redis")]
        return RedisSource::from_env_source(env)
            .map(|s| ("redis", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "redis"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "redis"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_redis {
    // `@ktp [<key> <topic> <prefix>] <names>`: at most one of the three.
    (@ktp [$k:tt $t:tt $p:tt] key $($rest:ident)*) => {
        $crate::__component_model_rules_redis! { @ktp [1 $t $p] $($rest)* }
    };
    (@ktp [$k:tt $t:tt $p:tt] topic $($rest:ident)*) => {
        $crate::__component_model_rules_redis! { @ktp [$k 1 $p] $($rest)* }
    };
    (@ktp [$k:tt $t:tt $p:tt] prefix $($rest:ident)*) => {
        $crate::__component_model_rules_redis! { @ktp [$k $t 1] $($rest)* }
    };
    (@ktp $ktp:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_redis! { @ktp $ktp $($rest)* }
    };
    (@ktp [1 1 $p:tt]) => {
        ::core::compile_error!("the `redis` source reads either a key (`key = \"...\"`) or a stream (`topic = \"...\"`), not both");
    };
    (@ktp [1 $t:tt 1]) => {
        ::core::compile_error!("the `redis` source reads either one key (`key = \"...\"`) or every key under a prefix (`prefix = \"...\"`), not both");
    };
    (@ktp [$k:tt 1 1]) => {
        ::core::compile_error!("the `redis` source reads either a stream (`topic = \"...\"`) or the keys under a prefix (`prefix = \"...\"`), not both");
    };
    (@ktp $ktp:tt) => {};
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_redis! { $entry }
        $crate::__component_model_rules_redis! { @ktp [0 0 0] $($names)* }
    };
    ($entry:tt param key) => {};
    ($entry:tt param topic) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "redis" [key topic prefix max_keys] }
    };
}

#[cfg(feature = "redis")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_redis {
    ($entry:tt) => {};
}
#[cfg(not(feature = "redis"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_redis {
    (facade) => {
        ::core::compile_error!("backend `redis` needs cargo feature `redis` of component_model: `component_model = { features = [\"redis\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `redis` needs cargo feature `redis` of component_model_async");
    };
}
