//! [`NatsKvSource`] (stub; being built).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// A NATS JetStream KV bucket.
#[derive(Debug, Clone)]
pub struct NatsKvSource {}

impl NatsKvSource {
    /// From `NATS_URL`.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for NatsKvSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }
}
