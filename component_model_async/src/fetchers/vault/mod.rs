//! The `vault` source: secrets from Vault's KV secrets engine over its HTTP API.
//!
//! * KV v2: `GET /v1/<mount>/data/<path>`, the secret under `data.data`;
//! * KV v1: `GET /v1/<mount>/<path>`, the secret under `data`.
//!
//! The version comes from `kv_version = 1|2` on the field, else from
//! [`VaultSource::with_kv_version`], else it is detected once per mount with
//! `GET /v1/sys/internal/ui/mounts/<mount>/<path>` (as the `vault kv` CLI does; a 404 there
//! means a Vault too old to have the endpoint, so v1). The mount is `mount = "..."` on the
//! field, else the source's default (`secret`, the mount of a Vault dev server).
//! `version = 3` on a field reads that version of a KV v2 secret (`?version=3`) instead of
//! the current one.
//!
//! The whole response envelope is parsed (`request_id`, `lease_id`, `renewable`,
//! `lease_duration`, `data`, `wrap_info`, `warnings`, `auth`); `warnings` are logged;
//! `{"errors": [...]}` bodies are surfaced in the error. 403 → unauthorized (with a token
//! the source obtains itself, a 403 leads to a new token only when `lookup-self` shows the
//! token is bad; a path denied by policy is reported as such: see [`auth`]), 404 → not
//! found (`namespace not found` → misconfigured), 503 (sealed, standby) and 5xx →
//! unavailable. Fields reading the same secret in
//! one fetch share ONE read; `field = "..."` then picks each one's key. Every value read
//! from Vault is secret: it never appears in errors or logs.
//!
//! A secret read whole (no `field`) is its map of keys: a
//! `HashMap<String, SecretString>` (or `BTreeMap`, or a struct) holds every key of the
//! secret, each value secret. (A `prefix` over several secrets — a LIST of a folder, then
//! one read per secret under it — is not offered: it would be N + 1 requests and every
//! secret's policy; `prefix` on a `vault` field is a compile error.)
//!
//! Address, token and namespace come from `VAULT_ADDR` (default `https://127.0.0.1:8200`),
//! `VAULT_TOKEN` (sent as `X-Vault-Token`) and `VAULT_NAMESPACE` (`X-Vault-Namespace`).
//!
//! Watched (for a [`Live`](crate::Live)) by polling KV v2 metadata for `current_version`
//! every `watch_interval` (default 10 s; see the `watch` module); KV v1 secrets are polled.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no secret (never a `GET` of a
//! data path):
//!
//! * `GET auth/token/lookup-self`: a token Vault refuses (a plain `403 permission denied`:
//!   bad, expired, revoked, or none) makes every row `unauthenticated`; a login the server
//!   refuses too; otherwise each row's detail ends with the token's TTL (`token ttl
//!   59m59s`, `token never expires`);
//! * ONE `POST sys/capabilities-self` with every path the fields would read (KV v2
//!   `<mount>/data/<path>`, KV v1 `<mount>/<path>`, the KV version found as a read finds
//!   it) and the paths that tell existence: no `read` (or `root`), or `deny` → `denied`
//!   with the capabilities in the detail;
//! * whether an allowed secret exists: KV v2 `GET <mount>/metadata/<path>` (no data in
//!   it; 404, or the version read deleted or destroyed → `missing`), KV v1 a LIST of the
//!   secret's folder — each only when the token may (else `readable` with "existence not
//!   checked"); at most 16 at once;
//! * a server that cannot be reached, sealed or failing → `unreachable`; a token that may
//!   not use `sys/capabilities-self` (no `default` policy) → `unchecked`.
//!
//! ## What this module declares
//!
//! * name `vault`, cargo feature `vault`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `VAULT_ADDR`;
//! * attribute keys: `secret = "path"` (required), `mount`, `kv_version`, `version` (a
//!   KV v2 secret's version to read instead of the current one, `?version=`);
//! * key label `secret`; every value is secret (whatever name the source is registered
//!   under); a one-key secret reads into a scalar; coalescing: one read per path.

#[cfg(feature = "vault")]
pub mod auth;
pub(crate) mod connect;
#[cfg(feature = "vault")]
mod source;
#[cfg(feature = "vault")]
pub use source::*;
#[cfg(feature = "vault")]
mod preflight;
#[cfg(feature = "vault")]
mod watch;
#[cfg(feature = "vault")]
pub use watch::DEFAULT_VAULT_WATCH;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["vault"],
    hint: "`Sources::from_env()` registers it with cargo feature `vault`; or register a `VaultSource`",
    from_env: |env| {
        #[cfg(feature = "vault")]
        return vec![(
            "vault",
            std::sync::Arc::new(VaultSource::from_env_source(env)) as _,
        )];
        #[cfg(not(feature = "vault"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "vault"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_vault {
    ($entry:tt has [secret $($rest:ident)*]) => {
        $crate::__component_model_feature_vault! { $entry }
    };
    ($entry:tt has [key secret $($rest:ident)*]) => {
        $crate::__component_model_feature_vault! { $entry }
    };
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_vault! { $entry }
        ::core::compile_error!("the `vault` source needs `secret = \"...\"`, the secret's path (e.g. `secret = \"app/api-key\"`)");
    };
    ($entry:tt param secret) => {};
    ($entry:tt param mount) => {};
    ($entry:tt param kv_version) => {};
    ($entry:tt param version) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "vault" [secret mount kv_version version] }
    };
}

#[cfg(feature = "vault")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_vault {
    ($entry:tt) => {};
}
#[cfg(not(feature = "vault"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_vault {
    (facade) => {
        ::core::compile_error!("backend `vault` needs cargo feature `vault` of component_model: `component_model = { features = [\"vault\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `vault` needs cargo feature `vault` of component_model_async");
    };
}
