//! `preflight` of the `consul` source: whether each key may be read and exists, without
//! reading a value (see the module above, "Preflight").
//!
//! * Keys: `PUT /v1/txn` of `check-index` operations with `Index: 0`, one transaction per
//!   datacenter and 64 keys. Consul checks `key:read` on each before running any (a key
//!   the token may not read fails with `Permission denied`, and nothing else runs: the
//!   others are sent again without it), then fails every key that exists (`current modify
//!   index N != 0`: no key has index 0) and every key that does not (`doesn't exist`); a
//!   failed transaction returns no entry, so no value is ever sent.
//! * Subtrees (`prefix`): `GET /v1/kv/<prefix>?keys&separator=/` — key names only.

use serde_json::Value;

use reqwest::Method;

use crate::convert::subtree::Subtree;
use crate::error::{ErrorKind, SourceError};
use crate::source::{Access, FetchRequest, Probe};

use super::{ConsulSource, MAX_TXN_OPS};

/// The keys of one datacenter: each with the index of its request.
type DcKeys<'a> = (Option<&'a str>, Vec<(usize, &'a str)>);

/// What one request asks Consul.
enum Check<'a> {
    Key(&'a str),
    Prefix(&'a str, usize),
}

impl ConsulSource {
    /// [`Source::preflight`](crate::Source::preflight) of the `consul` source.
    pub(super) async fn preflight_requests(&self, requests: Vec<FetchRequest>) -> Vec<Probe> {
        let mut probes: Vec<Option<Probe>> = requests.iter().map(|_| None).collect();
        // Keys grouped by datacenter; prefixes one by one.
        let mut groups: Vec<DcKeys<'_>> = Vec::new();
        let mut prefixes: Vec<(usize, Option<&str>, &str, usize)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let check = if Subtree::is_subtree(r) {
                match Subtree::of(r) {
                    Some(Ok(tree)) => Check::Prefix(tree.prefix(), tree.max_keys()),
                    Some(Err(e)) => {
                        probes[i] = Some(Probe::new(Access::Invalid).with_detail(e.to_string()));
                        continue;
                    }
                    None => {
                        probes[i] = Some(
                            Probe::new(Access::Invalid).with_detail("the field names no `prefix`"),
                        );
                        continue;
                    }
                }
            } else {
                match r.key() {
                    Some(key) => Check::Key(key),
                    None => {
                        probes[i] = Some(
                            Probe::new(Access::Invalid).with_detail("the field names no `key`"),
                        );
                        continue;
                    }
                }
            };
            match check {
                Check::Key(key) => {
                    let key = key.trim_start_matches('/');
                    match groups.iter_mut().find(|(dc, _)| *dc == r.dc()) {
                        Some((_, members)) => members.push((i, key)),
                        None => groups.push((r.dc(), vec![(i, key)])),
                    }
                }
                Check::Prefix(prefix, max_keys) => {
                    prefixes.push((i, r.dc(), prefix.trim_start_matches('/'), max_keys));
                }
            }
        }
        let key_checks = groups.iter().flat_map(|(dc, members)| {
            let mut distinct: Vec<&str> = members.iter().map(|(_, k)| *k).collect();
            distinct.sort_unstable();
            distinct.dedup();
            distinct
                .chunks(MAX_TXN_OPS)
                .map(|chunk| {
                    let chunk = chunk.to_vec();
                    async move {
                        let probes = self.check_keys(&chunk, *dc).await;
                        (*dc, chunk, probes)
                    }
                })
                .collect::<Vec<_>>()
        });
        let prefix_checks = prefixes
            .iter()
            .map(|&(i, dc, prefix, max_keys)| async move {
                (i, self.check_prefix(prefix, dc, max_keys).await)
            });
        let (keys, trees) = futures::future::join(
            futures::future::join_all(key_checks),
            futures::future::join_all(prefix_checks),
        )
        .await;
        for (dc, chunk, answers) in keys {
            let Some((_, members)) = groups.iter().find(|(d, _)| *d == dc) else {
                continue;
            };
            for (key, probe) in chunk.iter().zip(answers) {
                for (i, _) in members.iter().filter(|(_, k)| k == key) {
                    probes[*i] = Some(probe.clone());
                }
            }
        }
        for (i, probe) in trees {
            probes[i] = Some(probe);
        }
        probes
            .into_iter()
            .map(|p| p.unwrap_or_else(|| Probe::unchecked("not checked (no answer for it)")))
            .collect()
    }

    /// At most 64 distinct keys of datacenter `dc`: a transaction of `check-index`
    /// operations, again without the keys settled by a failed round; one probe per key.
    async fn check_keys(&self, keys: &[&str], dc: Option<&str>) -> Vec<Probe> {
        let mut probes: Vec<Option<Probe>> = keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        // Each round settles at least one key or stops, so this ends.
        while !pending.is_empty() {
            match self.check_round(keys, &pending, dc).await {
                Round::All(probe) => {
                    for &i in &pending {
                        probes[i] = Some(probe.clone());
                    }
                    break;
                }
                Round::Settled(settled) => {
                    let before = pending.len();
                    for (i, probe) in settled {
                        probes[i] = Some(probe);
                    }
                    pending.retain(|&i| probes[i].is_none());
                    if pending.len() == before {
                        for &i in &pending {
                            probes[i] = Some(Probe::new(Access::Invalid).with_detail(
                                "consul failed the check without naming a failed operation",
                            ));
                        }
                        break;
                    }
                }
            }
        }
        probes
            .into_iter()
            .map(|p| p.unwrap_or_else(|| Probe::unchecked("not checked (no answer for it)")))
            .collect()
    }

    async fn check_round(&self, keys: &[&str], pending: &[usize], dc: Option<&str>) -> Round {
        let body: Vec<Value> = pending
            .iter()
            .map(|&i| match self.namespace() {
                Some(ns) => serde_json::json!({"KV": {"Verb": "check-index", "Key": keys[i], "Index": 0, "Namespace": ns}}),
                None => serde_json::json!({"KV": {"Verb": "check-index", "Key": keys[i], "Index": 0}}),
            })
            .collect();
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let url = match self.endpoint().url(&["v1", "txn"], &self.query_pairs(dc)) {
            Ok(url) => url,
            Err(e) => return Round::All(Probe::new(Access::Invalid).with_detail(e.to_string())),
        };
        let (status, answer) = match self
            .endpoint()
            .send(Method::PUT, &url, |r| {
                r.header("content-type", "application/json").body(body)
            })
            .await
        {
            Ok(answer) => answer,
            Err(e) => return Round::All(Probe::from_error(&e)),
        };
        let what = format!("a check of {} keys", pending.len());
        match status.as_u16() {
            // Every key passed: its modify index is 0, which no key has; it exists.
            200..=299 => Round::Settled(
                pending
                    .iter()
                    .map(|&i| (i, Probe::readable().with_detail("the key exists")))
                    .collect(),
            ),
            409 => {
                let errors = serde_json::from_slice::<Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("Errors").cloned())
                    .and_then(|e| e.as_array().cloned())
                    .unwrap_or_default();
                let settled = errors
                    .iter()
                    .filter_map(|e| {
                        let at = e.get("OpIndex")?.as_u64()? as usize;
                        let what = e.get("What")?.as_str()?;
                        Some((*pending.get(at)?, self.op_probe(what)))
                    })
                    .collect();
                Round::Settled(settled)
            }
            _ => Round::All(self.refusal(status, &answer, &what)),
        }
    }

    /// What a failed `check-index` with `Index: 0` says about its key.
    fn op_probe(&self, what: &str) -> Probe {
        let lower = what.to_ascii_lowercase();
        if lower.contains("permission denied") {
            let hint = if self.endpoint().has_token() {
                ""
            } else {
                " (no token: set CONSUL_HTTP_TOKEN)"
            };
            Probe::new(Access::Denied).with_detail(format!("consul: {what}{hint}"))
        } else if lower.contains("doesn't exist") || lower.contains("does not exist") {
            Probe::missing().with_detail("no such key")
        } else if lower.contains("modify index") {
            Probe::readable().with_detail("the key exists")
        } else {
            Probe::new(Access::Invalid).with_detail(format!("consul: {what}"))
        }
    }

    /// A status that answers the whole request: `403 ACL not found` (an unknown token) →
    /// unauthenticated, another `403` → denied, an unknown datacenter → invalid, else what
    /// the status means.
    fn refusal(&self, status: reqwest::StatusCode, body: &[u8], what: &str) -> Probe {
        let text = String::from_utf8_lossy(body);
        if status.as_u16() == 403 && text.contains("ACL not found") {
            return Probe::new(Access::Unauthenticated).with_detail(
                "consul does not know the token (403 ACL not found): it is invalid, expired or deleted",
            );
        }
        if status.as_u16() == 500 && text.contains("No path to datacenter") {
            return Probe::new(Access::Invalid)
                .with_detail(format!("consul: {} (check `dc`)", text.trim()));
        }
        let e: SourceError = self.status_error(status, body, what);
        match e.kind() {
            ErrorKind::NotFound => Probe::missing(),
            _ => Probe::from_error(&e),
        }
    }

    /// A subtree: `GET /v1/kv/<prefix>?keys` (names only, every level, bounded by the
    /// source's body limit): readable, empty included (the field reads an empty map, as
    /// a fetch does), unless it holds more than `max_keys` keys (a fetch refuses it).
    async fn check_prefix(&self, prefix: &str, dc: Option<&str>, max_keys: usize) -> Probe {
        let mut query = self.query_pairs(dc);
        query.push(("keys", ""));
        let url = match self.endpoint().url(&["v1", "kv", prefix], &query) {
            Ok(url) => super::watch::with_slash(url, prefix),
            Err(e) => return Probe::new(Access::Invalid).with_detail(e.to_string()),
        };
        let (status, headers, body) =
            match self.endpoint().send_full(Method::GET, &url, |r| r).await {
                Ok(answer) => answer,
                Err(e) => return Probe::from_error(&e),
            };
        let filtered = headers
            .get("x-consul-results-filtered-by-acls")
            .is_some_and(|v| v.as_bytes() == b"true");
        let hidden = if filtered {
            " (Consul's ACLs hide some keys under it from the token)"
        } else {
            ""
        };
        match status.as_u16() {
            404 if filtered => Probe::new(Access::Denied).with_detail(format!(
                "the token may read no key under prefix `{prefix}`{hidden}"
            )),
            404 => Probe::readable().with_detail(format!(
                "no key under prefix `{prefix}`: the field reads an empty map"
            )),
            200..=299 => {
                let names: Vec<String> = serde_json::from_slice(&body).unwrap_or_default();
                // Folder entries (`a/`) hold no value: a fetch skips them.
                let under = names
                    .iter()
                    .filter(|k| k.as_str() != prefix && !k.ends_with('/'))
                    .count();
                let entries = if under == 1 { "key" } else { "keys" };
                if under > max_keys {
                    Probe::new(Access::Invalid).with_detail(format!(
                        "{under} {entries} under prefix `{prefix}`, over its `max_keys` of {max_keys}{hidden}"
                    ))
                } else if under == 0 {
                    Probe::readable().with_detail(format!(
                        "no key under prefix `{prefix}`: the field reads an empty map{hidden}"
                    ))
                } else {
                    Probe::readable()
                        .with_detail(format!("{under} {entries} under prefix `{prefix}`{hidden}"))
                }
            }
            _ => self.refusal(status, &body, &format!("prefix `{prefix}`")),
        }
    }
}

enum Round {
    /// The whole transaction was answered so (refused, unreachable).
    All(Probe),
    /// The keys this round settled (by their index in the keys).
    Settled(Vec<(usize, Probe)>),
}
