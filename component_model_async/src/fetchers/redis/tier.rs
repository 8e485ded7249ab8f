//! A [`RedisSource`] as the shared tier of the cache layer ([`CacheTier`]): values with
//! `SET key value PX ttl`, read with one `MGET`, locks with `SET lock 1 NX PX ttl`, all
//! pipelined, through the source's bounded, timed connection.

use std::time::Duration;

use ::redis::Value;

use super::source::RedisSource;
use crate::error::{ErrorKind, SourceError};
use crate::resilience::CacheTier;

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn unexpected(what: &str) -> SourceError {
    SourceError::new(ErrorKind::Decode).with_message(format!(
        "redis answered the shared cache's {what} unexpectedly"
    ))
}

#[async_trait::async_trait]
impl CacheTier for RedisSource {
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, SourceError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("MGET").arg(keys);
        let mut replies = self.round_trip(&pipe, "shared cache read").await?;
        let reply = replies
            .pop()
            .ok_or_else(|| unexpected("MGET"))?
            .map_err(|_| unexpected("MGET"))?;
        let Value::Array(items) = reply else {
            return Err(unexpected("MGET"));
        };
        if items.len() != keys.len() {
            return Err(unexpected("MGET"));
        }
        Ok(items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect())
    }

    async fn put_many(
        &self,
        entries: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), SourceError> {
        let mut pipe = ::redis::pipe();
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .ignore();
        }
        self.round_trip(&pipe, "shared cache write").await.map(drop)
    }

    async fn lock_many(&self, keys: &[String], ttl: Duration) -> Result<Vec<bool>, SourceError> {
        let mut pipe = ::redis::pipe();
        for key in keys {
            pipe.cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(ttl));
        }
        let replies = self.round_trip(&pipe, "shared cache lock").await?;
        if replies.len() != keys.len() {
            return Err(unexpected("SET NX"));
        }
        Ok(replies
            .into_iter()
            .map(|r| matches!(r, Ok(Value::Okay) | Ok(Value::SimpleString(_))))
            .collect())
    }

    async fn unlock_many(&self, keys: &[String]) -> Result<(), SourceError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("DEL").arg(keys).ignore();
        self.round_trip(&pipe, "shared cache unlock")
            .await
            .map(drop)
    }
}
