//! [`AzureKeyVaultSource`] (stub; being built: issue 36).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// Azure Key Vault secrets.
#[derive(Debug, Clone)]
pub struct AzureKeyVaultSource {}

impl AzureKeyVaultSource {
    /// From `AZURE_KEYVAULT_URL` and the standard `AZURE_*` credentials.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for AzureKeyVaultSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }

    fn is_sensitive(&self) -> bool {
        true
    }
}
