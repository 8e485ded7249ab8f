//! [`AwsSsmSource`] (stub; being built: issue 36).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// AWS Systems Manager Parameter Store.
#[derive(Debug, Clone)]
pub struct AwsSsmSource {}

impl AwsSsmSource {
    /// From the standard AWS environment.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for AwsSsmSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }

    fn is_sensitive(&self) -> bool {
        true
    }
}
