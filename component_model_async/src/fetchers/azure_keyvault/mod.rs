//! The `azure_keyvault` backend (cargo feature `azure`): secrets of an Azure Key Vault
//! through its REST API (`GET {vault}/secrets/{name}[/{version}]?api-version=2026-04-01`),
//! one GET per secret (no batch read), concurrently, with Microsoft Entra ID tokens from
//! the standard `AZURE_*` variables and Key Vault's challenge flow. See
//! [`AzureKeyVaultSource`].
//!
//! ## What this module declares
//!
//! * name `azure_keyvault`, cargo feature `azure`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `AZURE_KEYVAULT_URL` (or
//!   `AZURE_KEY_VAULT_URL`);
//! * attribute keys: `key` (the secret's name), `version` (a version id; else the current
//!   one).
//!
//! The managed identity endpoints (IMDS, App Service's) are reached directly, never
//! through `HTTP_PROXY`/`HTTPS_PROXY`; Key Vault and Entra ID use the proxy.

#[cfg(feature = "azure")]
mod auth;
#[cfg(feature = "azure")]
mod source;
#[cfg(feature = "azure")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["azure_keyvault"],
    hint: "`Sources::from_env()` registers it from `AZURE_KEYVAULT_URL` (or `AZURE_KEY_VAULT_URL`) with cargo feature `azure`; or register an `AzureKeyVaultSource`",
    from_env: |env| {
        #[cfg(feature = "azure")]
        return AzureKeyVaultSource::from_env_source(env)
            .map(|s| ("azure_keyvault", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "azure"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "azure_keyvault"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_azure_keyvault {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_azure! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param version) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "azure_keyvault" [key version] }
    };
}

#[cfg(feature = "azure")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_azure {
    ($entry:tt) => {};
}
#[cfg(not(feature = "azure"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_azure {
    (facade) => {
        ::core::compile_error!("backend `azure_keyvault` needs cargo feature `azure` of component_model: `component_model = { features = [\"azure\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `azure_keyvault` needs cargo feature `azure` of component_model_async");
    };
}
