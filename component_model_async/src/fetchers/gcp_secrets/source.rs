//! [`GcpSecretsSource`] (stub; being built: issue 36).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// Google Secret Manager.
#[derive(Debug, Clone)]
pub struct GcpSecretsSource {}

impl GcpSecretsSource {
    /// From `GOOGLE_CLOUD_PROJECT` / `GOOGLE_APPLICATION_CREDENTIALS`.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for GcpSecretsSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }

    fn is_sensitive(&self) -> bool {
        true
    }
}
