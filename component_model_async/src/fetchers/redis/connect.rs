//! A `redis` client opened from a fetched URL (`connect = "{...}"`; see
//! `fetchers/connect.rs`): connected now, so an unreachable server or refused credentials
//! are reported by the opening (and nothing broken is kept).
#![cfg(feature = "redis")]

use ::redis::Value;

use super::RedisSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::tls::TlsConfig;

/// A [`RedisSource`] for `url` with the `REDIS_*` TLS settings of `env` (as
/// [`RedisSource::from_env_source`] applies them), its connection opened and answering a
/// `PING`; bounded by the source's timeout (10 s) per step.
pub(crate) async fn open(url: &str, env: &EnvSource) -> Result<RedisSource, SourceError> {
    let url = url.trim();
    let mut source = RedisSource::new(url);
    match TlsConfig::redis_from_env(env) {
        Ok(Some(mut tls)) => {
            if url.starts_with("rediss://") && url.ends_with("#insecure") {
                tls = tls.danger_skip_verify(true);
            }
            source = source.with_tls(tls);
        }
        Ok(None) => {}
        Err(why) => return Err(SourceError::new(ErrorKind::Config).with_message(why)),
    }
    if source.connection_info().is_err() {
        // Not the URL (it may be a secret), not redis-rs's parse error (it may quote it).
        return Err(SourceError::new(ErrorKind::Config).with_message(
            "the address is not a Redis URL (redis://[user:password@]host[:port][/db], rediss://..., redis+unix:///path)",
        ));
    }
    let mut ping = ::redis::pipe();
    ping.ignore_errors().cmd("PING");
    let replies = source.round_trip(&ping, "PING").await?;
    match replies.into_iter().next() {
        Some(Ok(Value::SimpleString(_) | Value::Okay | Value::BulkString(_))) => Ok(source),
        Some(Err(e)) => {
            let kind = match e.code() {
                Some("NOAUTH" | "WRONGPASS" | "NOPERM") => ErrorKind::Unauthorized,
                _ => ErrorKind::Unavailable,
            };
            Err(SourceError::new(kind).with_message(format!(
                "the server refused PING: {}",
                e.code().unwrap_or("an error")
            )))
        }
        _ => Err(SourceError::new(ErrorKind::Unavailable)
            .with_message("the server did not answer PING as Redis does")),
    }
}
