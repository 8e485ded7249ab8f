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
//!
//! What changed: a blocking query answers with the entries themselves (their values and
//! `ModifyIndex`), so the watch says [`Change::Value`] for each watched key whose
//! `ModifyIndex` moved (its revision), and a `Live` applies it without reading Consul
//! again; a key that disappeared, or whose value cannot be decoded, is a
//! [`Change::Changed`] (the `Live` reads it and reports what it finds). The first answer,
//! and the first after errors, hand on every watched key (what changed since the values
//! were read, or during the outage, is then known).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use base64::Engine as _;

use futures::StreamExt;
use reqwest::Method;

use super::source::ConsulSource;
use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest, RawValue, Revision};

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
pub(super) fn with_slash(mut url: reqwest::Url, key: &str) -> reqwest::Url {
    if key.ends_with('/')
        && let Ok(mut path) = url.path_segments_mut()
    {
        path.push("");
    }
    url
}

/// One entry of a blocking query's answer (the fields a watch needs).
#[derive(Clone, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    value: Option<String>,
    #[serde(default)]
    modify_index: u64,
}

/// What one blocking query answered: the index, and the entries (keys and values).
struct Answer {
    index: u64,
    entries: Vec<Entry>,
}

/// A base64 `Value` (`null`: empty) as the fetch would answer it: text when UTF-8, else
/// bytes. `None` when it is not valid base64 (the watcher then reads the key, and the
/// read reports the error).
fn decode(value: Option<&str>) -> Option<RawValue> {
    let Some(encoded) = value else {
        return Some(RawValue::Text(String::new()));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    Some(crate::source::RawValue::text_or_bytes(bytes))
}

fn backoff(failures: u32) -> Duration {
    crate::resilience::retry::reconnect_delay(Duration::from_secs(1), failures)
}

impl ConsulSource {
    /// One blocking query; the index Consul answered with, and the entries.
    async fn block(&self, q: &Query, index: u64) -> Result<Answer, SourceError> {
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
        let index = headers
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                SourceError::new(ErrorKind::Decode).with_message(format!(
                    "consul answered a blocking query on `{key}` without an `X-Consul-Index` header"
                ))
            })?;
        // A 404 (nothing under the key) has an empty body: no entries. An answer that is
        // not an entry list names no values: every covered key is then read again.
        let entries = match status.is_success() {
            true => serde_json::from_slice(&body).unwrap_or_default(),
            false => Vec::new(),
        };
        Ok(Answer { index, entries })
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
        let mut queries = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            // A subtree read (`prefix`) is watched as a prefix: one `recurse` query, whose
            // index moves when a key under it is written, added or deleted.
            if let Some(prefix) = r.param(crate::convert::subtree::PREFIX) {
                queries.push(Query {
                    key: prefix.to_owned(),
                    recurse: true,
                    dc: r.dc().map(str::to_owned),
                    covers: vec![i],
                });
                continue;
            }
            let Some(key) = r.key() else { continue };
            let dc = r.dc().map(str::to_owned);
            match by_dc.iter_mut().find(|(d, _)| *d == dc) {
                Some((_, keys)) => keys.push((i, key.to_owned())),
                None => by_dc.push((dc, vec![(i, key.to_owned())])),
            }
        }
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

    /// Blocking queries on `q` forever: the changed keys whenever its index moves.
    fn blocking(self, q: Query, requests: &[FetchRequest]) -> Changes {
        struct S {
            source: ConsulSource,
            q: Query,
            /// The key of each covered request (as Consul names it: no leading `/`).
            keys: Vec<(usize, String)>,
            index: u64,
            failures: u32,
            /// The `ModifyIndex` last handed on per key (absent: gone, or not seen yet).
            seen: HashMap<String, u64>,
            /// Changes of one answer not handed on yet.
            queue: VecDeque<Change>,
            /// The covered subtree reads (`prefix`): read again whenever the index moves.
            trees: Vec<usize>,
        }
        let trees: Vec<usize> = q
            .covers
            .iter()
            .copied()
            .filter(|&i| {
                requests
                    .get(i)
                    .is_some_and(crate::convert::subtree::Subtree::is_subtree)
            })
            .collect();
        let keys = q
            .covers
            .iter()
            .filter_map(|&i| {
                let key = requests.get(i)?.key()?;
                Some((i, key.trim_start_matches('/').to_owned()))
            })
            .collect();
        let state = S {
            source: self,
            q,
            keys,
            index: 0,
            failures: 0,
            seen: HashMap::new(),
            queue: VecDeque::new(),
            trees,
        };
        futures::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(change) = s.queue.pop_front() {
                    return Some((Ok(change), s));
                }
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
                    Ok(answer) => {
                        let recovered = std::mem::take(&mut s.failures) > 0;
                        let new = answer.index.max(1);
                        let old = s.index;
                        if new < old {
                            // The index went backwards (a restored snapshot, a new leader):
                            // start again from 0 and read everything.
                            s.index = 0;
                            s.seen.clear();
                            return Some((Ok(Change::All), s));
                        }
                        s.index = new;
                        // The first answer (the watch is in place: what may have changed
                        // since the values were read), the first after errors (what may
                        // have changed meanwhile): every key. Else the keys that moved.
                        if old == 0 || new > old || recovered {
                            let every = old == 0 || recovered;
                            s.queue = changes(&s.keys, &answer.entries, &mut s.seen, every);
                            if !s.trees.is_empty() {
                                // A key added, changed or removed under the prefix.
                                s.queue.push_back(Change::Changed(s.trees.clone()));
                            }
                            continue;
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
            futures::stream::select_all(
                queries
                    .into_iter()
                    .map(|q| source.clone().blocking(q, &requests)),
            )
        })
        .flatten()
        .boxed()
    }
}

/// What an answer changed for the covered `keys` (request position, key), given the
/// `ModifyIndex` each key had when last handed on (`seen`, updated; `every`: hand on
/// every key, after the first answer or an outage): a
/// [`Change::Value`] per present key whose `ModifyIndex` differs, at that revision (every
/// request of the key); one [`Change::Changed`] for the keys that disappeared or whose
/// value does not decode (they are read again).
fn changes(
    keys: &[(usize, String)],
    entries: &[Entry],
    seen: &mut HashMap<String, u64>,
    every: bool,
) -> VecDeque<Change> {
    let by_key: HashMap<&str, &Entry> = entries.iter().map(|e| (e.key.as_str(), e)).collect();
    let mut out = VecDeque::new();
    let mut read = Vec::new();
    for (i, key) in keys {
        match by_key.get(key.as_str()) {
            Some(e) if !every && seen.get(key) == Some(&e.modify_index) => {}
            Some(e) => match decode(e.value.as_deref()) {
                Some(value) => out.push_back(Change::Value {
                    index: *i,
                    value,
                    revision: Some(Revision::Index(e.modify_index)),
                }),
                None => read.push(*i),
            },
            None if every || seen.contains_key(key) => read.push(*i),
            None => {}
        }
    }
    for (_, key) in keys {
        match by_key.get(key.as_str()) {
            Some(e) => seen.insert(key.clone(), e.modify_index),
            None => seen.remove(key),
        };
    }
    if !read.is_empty() {
        out.push_back(Change::Changed(read));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str, modify_index: u64) -> Entry {
        Entry {
            key: key.to_owned(),
            value: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            modify_index,
        }
    }

    #[test]
    fn an_answer_says_which_keys_moved_with_their_values() {
        let keys = vec![
            (0, "app/a".to_owned()),
            (1, "app/b".to_owned()),
            (2, "app/a".to_owned()),
            (3, "app/gone".to_owned()),
        ];
        let mut seen = HashMap::new();
        // The first answer hands on every key; the absent one is read.
        let first = changes(
            &keys,
            &[entry("app/a", "1", 5), entry("app/b", "x", 6)],
            &mut seen,
            true,
        );
        assert_eq!(
            Vec::from(first),
            vec![
                Change::Value {
                    index: 0,
                    value: RawValue::from("1"),
                    revision: Some(Revision::Index(5))
                },
                Change::Value {
                    index: 1,
                    value: RawValue::from("x"),
                    revision: Some(Revision::Index(6))
                },
                Change::Value {
                    index: 2,
                    value: RawValue::from("1"),
                    revision: Some(Revision::Index(5))
                },
                Change::Changed(vec![3]),
            ]
        );
        // Only `app/b` moved.
        let next = changes(
            &keys,
            &[entry("app/a", "1", 5), entry("app/b", "y", 9)],
            &mut seen,
            false,
        );
        assert_eq!(
            Vec::from(next),
            vec![Change::Value {
                index: 1,
                value: RawValue::from("y"),
                revision: Some(Revision::Index(9))
            }]
        );
        // `app/a` was deleted: both of its requests are read; an undecodable value too.
        let mut bad = entry("app/b", "", 10);
        bad.value = Some("%%%".to_owned());
        let gone = changes(&keys, &[bad.clone()], &mut seen, false);
        assert_eq!(Vec::from(gone), vec![Change::Changed(vec![0, 1, 2])]);
        // Nothing moved: nothing to say.
        assert!(changes(&keys, &[bad.clone()], &mut seen, false).is_empty());
        // After an outage, every key again.
        assert_eq!(
            Vec::from(changes(&keys, &[bad], &mut seen, true)),
            vec![Change::Changed(vec![0, 1, 2, 3])]
        );
    }

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
