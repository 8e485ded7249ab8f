//! The `gcp_secrets` backend (cargo feature `gcp`). Being built (issue 36).
//!
//! ## What this module declares
//!
//! * name `gcp_secrets`, cargo feature `gcp`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `GOOGLE_CLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS`;
//! * attribute keys: `key`, `version`, `project`.

#[cfg(feature = "gcp")]
mod auth;
#[cfg(feature = "gcp")]
mod source;
#[cfg(feature = "gcp")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["gcp_secrets"],
    hint: "`Sources::from_env()` registers it from `GOOGLE_CLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS` with cargo feature `gcp`; or register a `GcpSecretsSource`",
    from_env: |env| {
        #[cfg(feature = "gcp")]
        return GcpSecretsSource::from_env_source(env)
            .map(|s| ("gcp_secrets", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "gcp"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "gcp_secrets"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_gcp_secrets {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_gcp! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param version) => {};
    ($entry:tt param project) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "gcp_secrets" [key version project] }
    };
}

#[cfg(feature = "gcp")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_gcp {
    ($entry:tt) => {};
}
#[cfg(not(feature = "gcp"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_gcp {
    (facade) => {
        ::core::compile_error!("backend `gcp_secrets` needs cargo feature `gcp` of component_model: `component_model = { features = [\"gcp\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `gcp_secrets` needs cargo feature `gcp` of component_model_async");
    };
}
