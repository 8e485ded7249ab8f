//! The AWS backends (cargo feature `aws`): **Secrets Manager** (`fetch_from = "aws_secrets",
//! key = "prod/db"`) and **SSM Parameter Store** (`fetch_from = "aws_ssm", key =
//! "/app/port"`). Being built (issue 36).
//!
//! ## What this module declares
//!
//! * names `aws_secrets` and `aws_ssm`, cargo feature `aws`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) when AWS credentials or a region are
//!   in the environment;
//! * attribute keys: `aws_secrets`: `key`, `version_stage`; `aws_ssm`: `key` or `prefix`
//!   (with `max_keys`).

#[cfg(feature = "aws")]
pub(crate) mod credentials;
#[cfg(feature = "aws")]
mod secrets;
#[cfg(feature = "aws")]
pub use secrets::*;
#[cfg(feature = "aws")]
mod ssm;
#[cfg(feature = "aws")]
pub use ssm::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["aws_secrets", "aws_ssm"],
    hint: "`Sources::from_env()` registers them with cargo feature `aws` when AWS credentials or a region are set; or register an `AwsSecretsSource` / `AwsSsmSource`",
    from_env: |env| {
        #[cfg(feature = "aws")]
        {
            let mut found: crate::fetchers::Registrations = Vec::new();
            if let Some(s) = AwsSecretsSource::from_env_source(env) {
                found.push(("aws_secrets", std::sync::Arc::new(s) as _));
            }
            if let Some(s) = AwsSsmSource::from_env_source(env) {
                found.push(("aws_ssm", std::sync::Arc::new(s) as _));
            }
            found
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "aws_secrets"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_aws_secrets {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_aws! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param version_stage) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "aws_secrets" [key version_stage] }
    };
}

/// Compile-time rules of `fetch_from = "aws_ssm"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_aws_ssm {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_aws! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "aws_ssm" [key prefix max_keys] }
    };
}

#[cfg(feature = "aws")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_aws {
    ($entry:tt) => {};
}
#[cfg(not(feature = "aws"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_aws {
    (facade) => {
        ::core::compile_error!("backends `aws_secrets` and `aws_ssm` needs cargo feature `aws` of component_model: `component_model = { features = [\"aws\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backends `aws_secrets` and `aws_ssm` needs cargo feature `aws` of component_model_async");
    };
}
