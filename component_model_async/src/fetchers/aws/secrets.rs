//! [`AwsSecretsSource`] (stub; being built: issue 36).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// AWS Secrets Manager.
#[derive(Debug, Clone)]
pub struct AwsSecretsSource {}

impl AwsSecretsSource {
    /// From the standard AWS environment.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for AwsSecretsSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }

    fn is_sensitive(&self) -> bool {
        true
    }
}
