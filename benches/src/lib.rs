//! Sources used by the benchmarks: an in-memory map with an optional fixed latency; and
//! the propagation helpers of the `live` and `streams` benchmarks.

pub mod propagation;

use std::collections::HashMap;
use std::time::Duration;

use component_model::{FetchRequest, RawValue, Source, SourceError, async_trait};

/// An in-memory key/value source; each `fetch` waits `latency` first (0 = no wait).
pub struct MemorySource {
    /// The values.
    pub data: HashMap<String, String>,
    /// Simulated latency of one request.
    pub latency: Duration,
}

impl MemorySource {
    /// 16 keys `k0`..`k15` with values that fit every benchmark field type.
    pub fn sixteen(latency: Duration) -> Self {
        let data = (0..16)
            .map(|i| {
                (
                    format!("k{i}"),
                    if i % 4 == 3 {
                        "true".to_owned()
                    } else {
                        format!("{}", 1000 + i)
                    },
                )
            })
            .collect();
        MemorySource { data, latency }
    }

    /// The value of `key`, waiting the latency first.
    pub async fn get(&self, key: &str) -> Option<String> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.data.get(key).cloned()
    }
}

#[async_trait]
impl Source for MemorySource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let key = request.key().unwrap_or_default();
        self.get(key)
            .await
            .map(RawValue::Text)
            .ok_or_else(SourceError::not_found)
    }
}
