//! A [`RedisSource`] as the shared tier of the cache layer ([`CacheTier`]): values with
//! `SET key value PX ttl`, read with one `MGET`, locks with `SET lock <token> NX PX ttl`
//! released and renewed only by their holder (compare-and-delete, compare-and-`PEXPIRE`
//! scripts), all pipelined, through the source's bounded, timed connection.

use std::time::Duration;

use ::redis::Value;

use super::source::RedisSource;
use crate::error::{ErrorKind, SourceError};
use crate::resilience::CacheTier;

/// This process's lock token: a lock is released only by its holder (a slow holder whose
/// lock expired and was taken by another instance must not release that one).
fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

/// Deletes `KEYS[1]` when it still holds `ARGV[1]`.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Makes `KEYS[1]` expire in `ARGV[2]` milliseconds when it still holds `ARGV[1]`.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// The longest expiry sent to Redis: a year (it refuses one whose end in milliseconds
/// overflows a signed 64-bit number, so `Duration::MAX` would store nothing).
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// `d` in milliseconds for `PX` / `PEXPIRE`: at least 1, at most [`LONGEST`].
fn millis(d: Duration) -> u64 {
    u64::try_from(d.min(LONGEST).as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
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
                .arg(token())
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
        for key in keys {
            pipe.cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(key)
                .arg(token())
                .ignore();
        }
        self.round_trip(&pipe, "shared cache unlock")
            .await
            .map(drop)
    }

    async fn extend_many(&self, keys: &[String], ttl: Duration) -> Result<(), SourceError> {
        let mut pipe = ::redis::pipe();
        for key in keys {
            pipe.cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(key)
                .arg(token())
                .arg(millis(ttl))
                .ignore();
        }
        self.round_trip(&pipe, "shared cache lock renewal")
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expiry_sent_to_redis_is_at_least_a_millisecond_and_at_most_a_year() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_millis(1_500)), 1_500);
        assert_eq!(millis(Duration::MAX), 365 * 24 * 3600 * 1000);
        assert!(millis(Duration::MAX) < i64::MAX as u64 / 2);
    }
}
