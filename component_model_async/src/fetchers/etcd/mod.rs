//! The `etcd` source: an etcd cluster's KV store (v3) through its JSON gateway over HTTP
//! (`/v3/kv/txn`, `/v3/watch`; no gRPC code generation).
//!
//! * One key, `fetch_from = "etcd", key = "/app/port"`: the key's value as text (bytes
//!   when it is not UTF-8); the field's type says what it is (`"8080"` into a `u16`, a
//!   JSON document into a struct). A missing key is not found (the field's fallback or
//!   default applies).
//! * Every etcd field of one fetch in ONE `POST /v3/kv/txn` of `request_range`
//!   operations (no compares: it always succeeds and reads one revision); more than
//!   [`EtcdSource::with_max_txn_ops`] operations (default 128, etcd's `--max-txn-ops`)
//!   are split into several transactions: the first, then the others concurrently at the
//!   revision the first was read at (one snapshot).
//! * A subtree, `prefix = "/app/features/"`: every key under the prefix as ONE JSON object
//!   of the keys relative to the prefix (one leading `/` of the rest dropped: under `p`,
//!   `p/x` is `x` and `p//x` is `/x`), for a `HashMap<String, T>`, a `BTreeMap` or a
//!   struct, in the same transaction as the keys. Two keys naming one member (`p/x` and
//!   `p//x` under `p/`) or a key that is not UTF-8 is [`ErrorKind::Decode`](crate::ErrorKind::Decode)
//!   naming the key, never a member silently left out.
//!   Bounded: the range asks etcd for at most `max_keys + 1` keys (default 10 000; more is
//!   [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge)), the field's `max_size` bounds
//!   the keys and values, and every response body is bounded by
//!   [`EtcdSource::with_max_body`].
//! * Endpoints: [`EtcdSource::new`] or several with [`EtcdSource::endpoints`]; a request
//!   that cannot connect to one (a connect timeout included), or that it answers with a
//!   5xx or "no leader", tries the next, and the one that answered with a success is
//!   tried first from then on. HTTP 404 or 405 is [`ErrorKind::Config`](crate::ErrorKind::Config)
//!   "no etcd v3 gateway at ..." (a wrong URL or proxy path, or an etcd before 3.4), not
//!   every key absent.
//! * Authentication: [`EtcdSource::with_auth`] (user and password, kept secret) gets a
//!   token from `/v3/auth/authenticate`, sent as `Authorization`; when etcd says the
//!   token is invalid (expired), the source authenticates again once and retries. A wrong
//!   password is [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized).
//! * TLS: [`EtcdSource::with_tls`] with a [`TlsConfig`](crate::TlsConfig).
//! * The value's `mod_revision` is noted for the fetch report
//!   ([`FetchContext::note_revision`](crate::FetchContext::note_revision)); for a prefix,
//!   the revision it was read at (a key deleted under it changes the subtree too). A
//!   revision that is not a number fails the answer with `ErrorKind::Decode`.
//!
//! [`Sources::from_env`](crate::Sources::from_env) registers it when `ETCDCTL_ENDPOINTS`
//! is set (comma-separated), with `ETCDCTL_USER` (`user:password`, or the user with
//! `ETCDCTL_PASSWORD`), `ETCDCTL_CACERT`, `ETCDCTL_CERT`, `ETCDCTL_KEY` and
//! `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`, as `etcdctl` reads them.
//!
//! Watched (`watch`, for a [`Live`](crate::Live)) with ONE `/v3/watch` stream over the
//! range that holds every watched key and prefix, from the revision after the read: a PUT
//! is a [`Change::Value`](crate::Change::Value) with its revision, a DELETE or any event
//! under a watched prefix a re-read; after a reconnect the stream resumes after the last
//! event seen (or the last progress notification). A compacted start revision, or a line
//! over `max_body`, is one `Change::All` (everything read again) and the watch goes on
//! after the current revision, replaying nothing older. With RBAC the user needs read
//! permission on that whole range: refused, the watch ends with
//! [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized) naming it. The stream is
//! read on the runtime that polls the changes (the caller's), not on the threads of the
//! HTTP transport, and opened when first polled (see the `watch` module).
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no value: ONE `/v3/kv/txn` per
//! `max_txn_ops` requests, of `keys_only` ranges (a key comes back without its value)
//! and `count_only` ranges for prefixes, with the fetch's endpoints, failover, token
//! handling and limits. A key present is readable (detail: its `mod_revision`), absent
//! missing; a prefix is readable with its count of keys (an empty one too: the field
//! reads an empty map), over its `max_keys` invalid. A wrong password, a token etcd
//! refuses or no credentials where authentication is on is unauthenticated; RBAC's
//! "permission denied" is denied (a transaction refused is asked again one range per
//! request, so that only the refused keys say so); no endpoint reachable is
//! unreachable.
//!
//! ## What this module declares
//!
//! * name `etcd`, cargo feature `etcd`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `ETCDCTL_ENDPOINTS`;
//! * attribute keys: `key` (else the field's convention key), `prefix` (a subtree, instead
//!   of `key`: both is a compile error), `max_keys`; any other key is a compile error that
//!   names these;
//! * key label `key` (`prefix` for a subtree); values are not secret; coalescing: one
//!   `/v3/kv/txn` per 128 (`with_max_txn_ops`) distinct keys and prefixes.

#[cfg(feature = "etcd")]
mod source;
#[cfg(feature = "etcd")]
pub use source::*;
#[cfg(feature = "etcd")]
mod watch;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["etcd"],
    hint: "`Sources::from_env()` registers it from ETCDCTL_ENDPOINTS with cargo feature `etcd`; or register an `EtcdSource`",
    from_env: |env| {
        #[cfg(feature = "etcd")]
        return EtcdSource::from_env_source(env)
            .map(|s| ("etcd", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "etcd"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "etcd"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_etcd {
    // `@kp [<key> <prefix>] <names>`: a key or a subtree, not both.
    (@kp [$k:tt $p:tt] key $($rest:ident)*) => {
        $crate::__component_model_rules_etcd! { @kp [1 $p] $($rest)* }
    };
    (@kp [$k:tt $p:tt] prefix $($rest:ident)*) => {
        $crate::__component_model_rules_etcd! { @kp [$k 1] $($rest)* }
    };
    (@kp $kp:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_etcd! { @kp $kp $($rest)* }
    };
    (@kp [1 1]) => {
        ::core::compile_error!("the `etcd` source reads either one key (`key = \"...\"`) or every key under a prefix (`prefix = \"...\"`), not both");
    };
    (@kp $kp:tt) => {};
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_etcd! { $entry }
        $crate::__component_model_rules_etcd! { @kp [0 0] $($names)* }
    };
    ($entry:tt param key) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "etcd" [key prefix max_keys] }
    };
}

#[cfg(feature = "etcd")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_etcd {
    ($entry:tt) => {};
}
#[cfg(not(feature = "etcd"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_etcd {
    (facade) => {
        ::core::compile_error!("backend `etcd` needs cargo feature `etcd` of component_model: `component_model = { features = [\"etcd\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `etcd` needs cargo feature `etcd` of component_model_async");
    };
}
