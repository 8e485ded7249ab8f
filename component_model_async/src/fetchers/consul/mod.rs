//! The `consul` source: Consul's KV store over its HTTP API.
//!
//! * One key: `GET /v1/kv/<key>` (the JSON entry list; `Value` is base64, `null` for an
//!   empty value), or `GET /v1/kv/<key>?raw` with [`ConsulFetcher::raw`];
//! * several keys in one fetch: ONE `PUT /v1/txn` of `get` operations (the client sends at
//!   most 64 operations per transaction — current Consul documents 128, older versions
//!   64 — so more keys are split into several transactions, sent concurrently). A `get` of a missing key makes Consul roll the transaction back
//!   with `409 Conflict` and list the failing operations; those fields get `not found` and
//!   the rest are read again in one more transaction. Results are matched to fields by
//!   key, so a key the token may not read (Consul drops it from the results) is reported
//!   as unauthorized for that field alone.
//!
//! The address and token come from `CONSUL_HTTP_ADDR` (`host:port` or a URL; default
//! `127.0.0.1:8500`, `https` when `CONSUL_HTTP_SSL=true`), `CONSUL_HTTP_TOKEN` (sent as
//! `X-Consul-Token`) and `CONSUL_NAMESPACE` (sent as `?ns=`); `dc = "..."` on a field or
//! [`ConsulSource::with_datacenter`] picks the datacenter (`?dc=`). 404 → not found,
//! 403 → unauthorized, 5xx → unavailable.
//!
//! * a subtree, `prefix = "app/features/"`: every key under the prefix as ONE JSON object
//!   of the keys relative to the prefix (`dark-mode`, `beta/x`), for a `HashMap<String, T>`,
//!   a `BTreeMap` or a struct; folders (keys ending in `/`) are left out and nothing under
//!   the prefix is an empty object. Alone in a fetch it is ONE `GET /v1/kv/<prefix>?recurse`;
//!   with other fields of the same datacenter it is a `get-tree` operation in the SAME
//!   `/v1/txn` as their `get`s (a `get-tree` never rolls the transaction back; its entries
//!   come back among the results and are picked out by prefix). Bounded while reading:
//!   the entry list is parsed one entry at a time and the read stops past `max_keys = N`
//!   entries (default 10 000) or the field's `max_size` bytes (keys and values), with
//!   [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) (the body itself is bounded by
//!   [`ConsulSource::with_max_body`]). Values are the stored texts; the field's type says
//!   what each one is (`"8080"` into `HashMap<String, u16>`). Write a trailing `/` to read
//!   a folder: like Consul's own `recurse`, `app/f` also matches `app/foo`.
//!
//! Watched (`watch`, for a [`Live`](crate::Live)) with blocking queries on
//! `X-Consul-Index`: one on the keys' common prefix with `recurse` when it is selective,
//! else one per distinct key (see the `watch` module); a subtree field with one blocking
//! `recurse` query on its prefix (a key written, added or deleted under it moves its
//! index, and the field is read again).
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no value:
//!
//! * keys: ONE `PUT /v1/txn` per datacenter and 64 keys of `check-index` operations with
//!   `Index: 0`, which Consul runs only after checking `key:read` on every key and which
//!   fail for every key (no key has modify index 0), saying whether it exists — a failed
//!   transaction returns no entry. `Permission denied` → `denied` (the other keys are
//!   checked again without it); `current modify index N != 0` → `readable`; `doesn't
//!   exist` → `missing`;
//! * subtrees (`prefix`): `GET /v1/kv/<prefix>?keys&separator=/` (names only): a key
//!   under it → `readable`, none → `missing` (the field reads an empty map) — or `denied`
//!   when Consul says its ACLs hid every key (`X-Consul-Results-Filtered-By-ACLs`);
//! * `403 ACL not found` (an unknown token) → `unauthenticated`; no answer within the
//!   source's timeout, refused connections, 5xx → `unreachable`; an unknown datacenter →
//!   `invalid`. The token, datacenter and namespace are sent as a read sends them.
//!
//! ## What this module declares
//!
//! * name `consul`, cargo feature `consul`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `CONSUL_HTTP_ADDR`;
//! * attribute keys: `key` (else the field's convention key), `dc`, `prefix` (a subtree,
//!   instead of `key`: both is a compile error), `max_keys`; any other key is a compile
//!   error that names these (and suggests the closest);
//! * key label `key` (`prefix` for a subtree); values are not secret; coalescing: one
//!   `/v1/txn` per datacenter and 64 operations (keys and prefixes).

pub(crate) mod connect;
#[cfg(feature = "consul")]
mod source;
#[cfg(feature = "consul")]
pub use source::*;
#[cfg(feature = "consul")]
mod preflight;
#[cfg(feature = "consul")]
mod watch;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["consul"],
    hint: "`Sources::from_env()` registers it with cargo feature `consul`; or register a `ConsulSource`",
    from_env: |env| {
        #[cfg(feature = "consul")]
        return vec![(
            "consul",
            std::sync::Arc::new(ConsulSource::from_env_source(env)) as _,
        )];
        #[cfg(not(feature = "consul"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "consul"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_consul {
    // Without `key`, the field's convention key: `{key_prefix}{path with /}`.
    // `@kp [<key> <prefix>] <names>`: a key or a subtree, not both.
    (@kp [$k:tt $p:tt] key $($rest:ident)*) => {
        $crate::__component_model_rules_consul! { @kp [1 $p] $($rest)* }
    };
    (@kp [$k:tt $p:tt] prefix $($rest:ident)*) => {
        $crate::__component_model_rules_consul! { @kp [$k 1] $($rest)* }
    };
    (@kp $kp:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_consul! { @kp $kp $($rest)* }
    };
    (@kp [1 1]) => {
        ::core::compile_error!("the `consul` source reads either one key (`key = \"...\"`) or every key under a prefix (`prefix = \"...\"`), not both");
    };
    (@kp $kp:tt) => {};
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_consul! { $entry }
        $crate::__component_model_rules_consul! { @kp [0 0] $($names)* }
    };
    ($entry:tt param key) => {};
    ($entry:tt param dc) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "consul" [key dc prefix max_keys] }
    };
}

#[cfg(feature = "consul")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_consul {
    ($entry:tt) => {};
}
#[cfg(not(feature = "consul"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_consul {
    (facade) => {
        ::core::compile_error!("backend `consul` needs cargo feature `consul` of component_model: `component_model = { features = [\"consul\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `consul` needs cargo feature `consul` of component_model_async");
    };
}
