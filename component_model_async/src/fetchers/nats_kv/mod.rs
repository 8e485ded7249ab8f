//! The `nats_kv` backend: `fetch_from = "nats_kv", bucket = "config", key = "app.port"`,
//! a key of a NATS JetStream key-value bucket (being built: issue 34). Distinct from the
//! `nats` push source (`stream_from = "nats"`), which keeps its meaning.
//!
//! ## What this module declares
//!
//! * name `nats_kv`, cargo feature `nats`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `NATS_URL`;
//! * attribute keys: `bucket` (required), `key`.

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
