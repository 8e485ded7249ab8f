//! The `etcd` backend: `fetch_from = "etcd", key = "/app/port"` (being built: issue 34).
//!
//! ## What this module declares
//!
//! * name `etcd`, cargo feature `etcd`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `ETCDCTL_ENDPOINTS`;
//! * attribute keys: `key` or `prefix` (with `max_keys`).

#[cfg(feature = "etcd")]
mod source;
#[cfg(feature = "etcd")]
pub use source::*;

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
