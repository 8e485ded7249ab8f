//! Watching Consul keys with blocking queries (`?index=N&wait=…`, answered when the index
//! passes N or the wait ends), as HashiCorp documents them: `/v1/txn` cannot block, so the
//! watched keys of one datacenter are watched through their longest common prefix with
//! `recurse` when that prefix is selective (it holds at most 4 × the keys + 16 entries),
//! else with one blocking query per distinct key — never one per field.
//!
//! Index rules: an index that goes backwards resets to 0 (and says everything may have
//! changed); an index below 1 is treated as 1; after an error the next query waits a
//! backoff with jitter (1 s doubling to 30 s); an answer that comes back at once with the
//! same index waits a short while before the next query.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::Method;

use super::source::ConsulSource;
use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest};

/// How long one blocking query waits at Consul (its `wait`).
const WAIT: Duration = Duration::from_secs(60);

/// A recurse query is used when the prefix holds at most this many entries per key (+16).
const SELECTIVE: usize = 4;

/// One blocking query: a key (or a prefix with `recurse`) in a datacenter, and the
/// positions of the watched requests it covers.
#[derive(Clone)]
struct Query {
    key: String,
    recurse: bool,
    dc: Option<String>,
    covers: Vec<usize>,
}

/// The longest common prefix of `keys`, cut after its last `/` (a directory).
fn common_dir(keys: &[&str]) -> Option<String> {
    let first = keys.first()?;
    let mut len = first.len();
    for k in &keys[1..] {
        len = len.min(
            first
                .bytes()
                .zip(k.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    let prefix = &first[..len];
    let dir = &prefix[..prefix.rfind('/')? + 1];
    (!dir.is_empty()).then(|| dir.to_owned())
}

/// `url` with the trailing `/` of a directory `key` (`recurse` on `app/` is not on `app`,
/// which would also match `apple`).
fn with_slash(mut url: reqwest::Url, key: &str) -> reqwest::Url {
    if key.ends_with('/')
        && let Ok(mut path) = url.path_segments_mut()
    {
        path.push("");
    }
    url
}

fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_secs(1), failures)
}

impl ConsulSource {
    /// One blocking query; the index Consul answered with.
    async fn block(&self, q: &Query, index: u64) -> Result<u64, SourceError> {
        let mut query: Vec<(&str, String)> = self
            .query_pairs(q.dc.as_deref())
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect();
        if q.recurse {
            query.push(("recurse", String::new()));
        }
        if index > 0 {
            query.push(("index", index.to_string()));
            query.push(("wait", format!("{}s", WAIT.as_secs())));
        }
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let key = q.key.trim_start_matches('/');
        let url = with_slash(self.endpoint().url(&["v1", "kv", key], &pairs)?, key);
        // Consul adds up to wait/16 of jitter to a blocking query.
        let limit = WAIT + WAIT / 16 + self.timeout();
        let (status, headers, body) = self
            .endpoint()
            .send_full(Method::GET, &url, |r| r.timeout(limit))
            .await?;
        if !status.is_success() && status != reqwest::StatusCode::NOT_FOUND {
            return Err(self.status_error(status, &body, &format!("watching `{key}`")));
        }
        headers
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                SourceError::new(ErrorKind::Decode).with_message(format!(
                    "consul answered a blocking query on `{key}` without an `X-Consul-Index` header"
                ))
            })
    }

    /// How many entries `prefix` holds (`?keys`, no values), to decide on `recurse`.
    async fn count_under(&self, prefix: &str, dc: Option<&str>) -> Result<usize, SourceError> {
        let mut pairs = self.query_pairs(dc);
        pairs.push(("keys", ""));
        let prefix = prefix.trim_start_matches('/');
        let url = with_slash(self.endpoint().url(&["v1", "kv", prefix], &pairs)?, prefix);
        let (status, _, body) = self.endpoint().send_full(Method::GET, &url, |r| r).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        if !status.is_success() {
            return Err(self.status_error(status, &body, &format!("listing `{prefix}`")));
        }
        let keys: Vec<String> = serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(ErrorKind::Decode)
                .with_message(format!("consul's key list under `{prefix}`: {e}"))
        })?;
        Ok(keys.len())
    }

    /// The queries that watch `requests`: per datacenter, one on the common prefix when it
    /// is selective, else one per distinct key.
    async fn plan_watch(&self, requests: &[FetchRequest]) -> Vec<Query> {
        type Keys = Vec<(usize, String)>;
        let mut by_dc: Vec<(Option<String>, Keys)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let Some(key) = r.key() else { continue };
            let dc = r.dc().map(str::to_owned);
            match by_dc.iter_mut().find(|(d, _)| *d == dc) {
                Some((_, keys)) => keys.push((i, key.to_owned())),
                None => by_dc.push((dc, vec![(i, key.to_owned())])),
            }
        }
        let mut queries = Vec::new();
        for (dc, keys) in by_dc {
            let mut distinct: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() > 1
                && let Some(dir) = common_dir(&distinct)
                && self
                    .count_under(&dir, dc.as_deref())
                    .await
                    .is_ok_and(|n| n <= SELECTIVE * distinct.len() + 16)
            {
                queries.push(Query {
                    key: dir,
                    recurse: true,
                    dc,
                    covers: keys.iter().map(|(i, _)| *i).collect(),
                });
                continue;
            }
            for key in distinct {
                queries.push(Query {
                    key: key.to_owned(),
                    recurse: false,
                    dc: dc.clone(),
                    covers: keys
                        .iter()
                        .filter(|(_, k)| k == key)
                        .map(|(i, _)| *i)
                        .collect(),
                });
            }
        }
        queries
    }

    /// Blocking queries on `q` forever: a change whenever its index moves.
    fn blocking(self, q: Query) -> Changes {
        struct S {
            source: ConsulSource,
            q: Query,
            index: u64,
            failures: u32,
        }
        let state = S {
            source: self,
            q,
            index: 0,
            failures: 0,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if s.failures > 0 {
                    tokio::time::sleep(backoff(s.failures - 1)).await;
                }
                let started = Instant::now();
                match s.source.block(&s.q, s.index).await {
                    // Not an outage: a blocking query that cannot work (a token without read,
                    // no `X-Consul-Index`, an answer over the body bound) is said once, and
                    // a `Live` polls instead.
                    Err(e) if !e.kind().is_transient() && e.kind() != ErrorKind::NotFound => {
                        let why = SourceError::new(ErrorKind::Config).with_message(format!(
                            "watching consul key `{}` failed: {}",
                            s.q.key,
                            e.message().unwrap_or(e.kind().as_str())
                        ));
                        return Some((Err(why), s));
                    }
                    Err(e) => {
                        s.failures += 1;
                        tracing::debug!(key = %s.q.key, error = %e, "a consul blocking query failed; backing off");
                    }
                    Ok(new) => {
                        let recovered = std::mem::take(&mut s.failures) > 0;
                        let new = new.max(1);
                        let old = s.index;
                        if new < old {
                            // The index went backwards (a restored snapshot, a new leader):
                            // start again from 0 and read everything.
                            s.index = 0;
                            return Some((Ok(Change::All), s));
                        }
                        s.index = new;
                        // The first answer (the watch is in place: read again what may
                        // have changed since the values were read), a change, or the
                        // first answer after errors.
                        if old == 0 || new > old || recovered {
                            return Some((Ok(Change::Changed(s.q.covers.clone())), s));
                        }
                        // Same index: the wait ended. Never spin on quick answers.
                        if started.elapsed() < Duration::from_millis(100) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// [`Source::watch`](crate::Source::watch) of the Consul source.
    pub(crate) fn watch_keys(&self, requests: Vec<FetchRequest>) -> Changes {
        let source = self.clone();
        futures::stream::once(async move {
            let queries = source.plan_watch(&requests).await;
            futures::stream::select_all(queries.into_iter().map(|q| source.clone().blocking(q)))
        })
        .flatten()
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::common_dir;

    #[test]
    fn the_common_directory_of_keys() {
        assert_eq!(common_dir(&["app/a", "app/b"]).as_deref(), Some("app/"));
        assert_eq!(
            common_dir(&["app/db/a", "app/db/b", "app/x"]).as_deref(),
            Some("app/")
        );
        assert_eq!(common_dir(&["app/a", "web/b"]), None);
        assert_eq!(common_dir(&["app", "apple"]), None);
        assert_eq!(common_dir(&["app/x"]).as_deref(), Some("app/"));
    }
}
