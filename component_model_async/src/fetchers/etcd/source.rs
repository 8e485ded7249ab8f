//! [`EtcdSource`] (stub; being built).
use crate::error::SourceError;
use crate::fetchers::env::EnvSource;
use crate::source::{FetchRequest, RawValue, Source};

/// An etcd cluster read through its v3 JSON gateway.
#[derive(Debug, Clone)]
pub struct EtcdSource {}

impl EtcdSource {
    /// From `ETCDCTL_ENDPOINTS`.
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let _ = env;
        None
    }
}

#[async_trait::async_trait]
impl Source for EtcdSource {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Err(SourceError::not_found())
    }
}
