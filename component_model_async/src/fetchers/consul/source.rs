//! The `consul` backend's implementation (see the module above for what it declares).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use reqwest::Method;

use crate::convert::subtree::{self, Subtree};
use crate::error::{ComponentError, ErrorKind, SourceError};
use crate::fetcher::ComponentFetcher;
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Endpoint};
use crate::source::{FetchRequest, RawValue, Source};
use crate::source_support::{coalesce, redact_url};
use crate::standalone::SourceFetcher;

/// The request parameter that reads a key with `?raw` (see [`ConsulFetcher::raw`]).
const RAW: &str = "consul.raw";

/// The most operations this client puts in one `/v1/txn` request: 64, what every Consul
/// version accepts (current versions document 128).
pub const MAX_TXN_OPS: usize = 64;

/// A Consul agent's KV store.
///
/// ```
/// use component_model_async::ConsulSource;
///
/// let consul = ConsulSource::new("127.0.0.1:8500").with_token("s3cret").with_datacenter("eu-1");
/// assert_eq!(consul.address(), "http://127.0.0.1:8500");
/// assert!(!format!("{consul:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct ConsulSource {
    endpoint: Endpoint,
    datacenter: Option<String>,
    namespace: Option<String>,
}

impl fmt::Debug for ConsulSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulSource")
            .field("endpoint", &self.endpoint)
            .field("datacenter", &self.datacenter)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// One KV entry as Consul returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KvEntry {
    key: String,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse {
    // (`Results`, read one at a time by `TxnSeed`, is skipped here.)
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<KvEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    op_index: usize,
    what: String,
}

impl ConsulSource {
    /// An agent at `address`: `host:port` (http) or a URL.
    pub fn new(address: impl AsRef<str>) -> Self {
        ConsulSource {
            endpoint: Endpoint::new(address.as_ref(), "http", "X-Consul-Token"),
            datacenter: None,
            namespace: None,
        }
    }

    /// The agent named by `CONSUL_HTTP_ADDR`, `CONSUL_HTTP_SSL`, `CONSUL_HTTP_TOKEN`, the TLS
    /// variables of [`TlsConfig::consul_from_env`](crate::TlsConfig::consul_from_env) and
    /// `CONSUL_NAMESPACE` of the process environment.
    pub fn from_env() -> Self {
        Self::from_env_source(&EnvSource::process())
    }

    /// Like [`ConsulSource::from_env`], reading the variables from `env`.
    ///
    /// ```
    /// use component_model_async::{ConsulSource, EnvSource};
    ///
    /// let env = EnvSource::from_map([("CONSUL_HTTP_ADDR", "consul.internal:8501"), ("CONSUL_HTTP_SSL", "true")]);
    /// assert_eq!(ConsulSource::from_env_source(&env).address(), "https://consul.internal:8501");
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Self {
        let scheme = match env.get("CONSUL_HTTP_SSL").as_deref() {
            Some("true" | "1") => "https",
            _ => "http",
        };
        let addr = env
            .get("CONSUL_HTTP_ADDR")
            .unwrap_or_else(|| "127.0.0.1:8500".to_owned());
        let mut source = ConsulSource::new(transport::base_url(&addr, scheme));
        if let Some(token) = env.get("CONSUL_HTTP_TOKEN").filter(|t| !t.is_empty()) {
            source = source.with_token(token);
        }
        if let Some(ns) = env.get("CONSUL_NAMESPACE").filter(|t| !t.is_empty()) {
            source = source.with_namespace(ns);
        }
        match crate::TlsConfig::consul_from_env(env) {
            Ok(Some(tls)) => source = source.with_tls(tls),
            Ok(None) => {}
            Err(why) => source.endpoint.set_invalid(why),
        }
        source
    }

    /// Sends `X-Consul-Token: <token>` (kept secret) with every request.
    #[must_use]
    pub fn with_token(mut self, token: impl AsRef<str>) -> Self {
        self.endpoint.set_token(token.as_ref());
        self
    }

    /// Reads from datacenter `dc` (`?dc=`) unless a field names its own with `dc = "..."`.
    #[must_use]
    pub fn with_datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into());
        self
    }

    /// Reads from namespace `ns` (`?ns=`, Consul Enterprise).
    #[must_use]
    pub fn with_namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Limits each request to `timeout` (default 10 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.set_timeout(timeout);
        self
    }

    /// Reads response bodies of at most `bytes` (default
    /// [`DEFAULT_MAX_BODY`](crate::fetchers::transport::DEFAULT_MAX_BODY), 16 MiB): a larger
    /// one fails its fields with [`ErrorKind::TooLarge`] instead of being read.
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.endpoint.set_max_body(bytes);
        self
    }

    /// Uses `client` (its own timeout, proxy and TLS settings) for every request; a later
    /// `with_timeout` replaces it with a client of this crate.
    #[must_use]
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.endpoint.set_client(client);
        self
    }

    /// Connects with these TLS settings (CA, client certificate, server name; see
    /// [`TlsConfig`](crate::TlsConfig)); replaces a client given with `with_client`.
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.endpoint.set_tls(tls);
        self
    }

    /// The agent's base URL.
    pub fn address(&self) -> &str {
        self.endpoint.base()
    }

    pub(super) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(super) fn timeout(&self) -> Duration {
        self.endpoint.timeout()
    }

    pub(super) fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub(super) fn query_pairs<'a>(&'a self, dc: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        self.query(dc)
    }

    fn query<'a>(&'a self, dc: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
        let mut q = Vec::new();
        if let Some(dc) = dc.or(self.datacenter.as_deref()) {
            q.push(("dc", dc));
        }
        if let Some(ns) = &self.namespace {
            q.push(("ns", ns.as_str()));
        }
        q
    }

    pub(super) fn status_error(
        &self,
        status: reqwest::StatusCode,
        body: &[u8],
        what: &str,
    ) -> SourceError {
        if status == reqwest::StatusCode::NOT_FOUND {
            return SourceError::not_found();
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let mut message = format!("HTTP {status} from consul for {what}");
        if !text.is_empty() && text.len() <= 300 {
            message.push_str(&format!(": {text}"));
        }
        if status.as_u16() == 403 && !self.endpoint.has_token() {
            message.push_str(" (no token: set CONSUL_HTTP_TOKEN)");
        }
        SourceError::new(transport::status_kind(status)).with_message(message)
    }

    /// Reads one key; `raw` uses `?raw` (the body is the value itself).
    pub async fn get(
        &self,
        key: &str,
        dc: Option<&str>,
        raw: bool,
    ) -> Result<RawValue, SourceError> {
        let mut query = self.query(dc);
        if raw {
            query.push(("raw", ""));
        }
        let key = key.trim_start_matches('/');
        let url = self.endpoint.url(&["v1", "kv", key], &query)?;
        let (status, body) = self.endpoint.send(Method::GET, &url, |r| r).await?;
        if !status.is_success() {
            return Err(self.status_error(status, &body, &format!("key `{key}`")));
        }
        if raw {
            return Ok(bytes_value(body));
        }
        let entries: Vec<KvEntry> = serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "consul's answer for key `{key}` is not a KV entry list: {}",
                transport::json_error(&e)
            ))
        })?;
        match entries.into_iter().find(|e| e.key == key) {
            Some(entry) => decode_value(entry.value.as_deref(), key),
            None => Err(SourceError::not_found()),
        }
    }

    /// Reads every key under `request`'s `prefix` with ONE `GET /v1/kv/<prefix>?recurse`
    /// into a JSON object of the keys relative to the prefix (folders, keys ending in `/`,
    /// left out; nothing under the prefix is an empty object). The entry list is read
    /// through the body bound and parsed one entry at a time: past `max_keys` entries or
    /// the field's `max_size` the read stops with [`ErrorKind::TooLarge`].
    async fn get_tree(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let mut tree = match Subtree::of(request) {
            Some(tree) => tree?,
            None => return Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
        };
        let mut query = self.query(request.dc());
        query.push(("recurse", ""));
        let prefix = tree.prefix().trim_start_matches('/');
        let url =
            super::watch::with_slash(self.endpoint.url(&["v1", "kv", prefix], &query)?, prefix);
        let (status, body) = self.endpoint.send(Method::GET, &url, |r| r).await?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(tree.finish());
        }
        if !status.is_success() {
            return Err(self.status_error(status, &body, &format!("prefix `{prefix}`")));
        }
        let mut failed = None;
        let parsed = serde::de::DeserializeSeed::deserialize(
            TreeSeed {
                tree: &mut tree,
                failed: &mut failed,
            },
            &mut serde_json::Deserializer::from_slice(&body),
        );
        if let Some(e) = failed {
            return Err(e);
        }
        parsed.map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "consul's answer for prefix `{prefix}` is not a KV entry list: {}",
                transport::json_error(&e)
            ))
        })?;
        Ok(tree.finish())
    }

    /// Reads `keys` (all in datacenter `dc`) with one transaction per 64 keys; one answer
    /// per key, in order.
    pub async fn get_many(
        &self,
        keys: &[&str],
        dc: Option<&str>,
    ) -> Vec<Result<RawValue, SourceError>> {
        let ops: Vec<Op<'_>> = keys.iter().map(|k| Op::Get(k)).collect();
        self.run_ops(&ops, dc).await
    }

    /// `ops` (all in datacenter `dc`) with one transaction per 64 operations; one answer
    /// per operation, in order.
    async fn run_ops(
        &self,
        ops: &[Op<'_>],
        dc: Option<&str>,
    ) -> Vec<Result<RawValue, SourceError>> {
        let chunks = ops.chunks(MAX_TXN_OPS).map(|chunk| self.txn_get(chunk, dc));
        futures::future::join_all(chunks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// At most 64 operations: a transaction of `get`s and `get-tree`s, again without the
    /// failed ones after a 409 (a `get-tree` never fails for a missing prefix).
    async fn txn_get(
        &self,
        keys: &[Op<'_>],
        dc: Option<&str>,
    ) -> Vec<Result<RawValue, SourceError>> {
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> =
            keys.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..keys.len()).collect();
        // Each round settles at least one key or stops, so this ends.
        while !pending.is_empty() {
            match self.txn_round(keys, &pending, dc).await {
                Err(e) => {
                    for &i in &pending {
                        answers[i] = Some(Err(e.clone()));
                    }
                    break;
                }
                Ok(Round::Done(values)) => {
                    for (i, v) in values {
                        answers[i] = Some(v);
                    }
                    break;
                }
                Ok(Round::RolledBack(failed)) => {
                    let before = pending.len();
                    for (i, e) in failed {
                        answers[i] = Some(Err(e));
                    }
                    pending.retain(|&i| answers[i].is_none());
                    if pending.len() == before {
                        for &i in &pending {
                            answers[i] = Some(Err(SourceError::new(ErrorKind::Unavailable)
                                .with_message("consul rolled the transaction back without naming a failed operation")));
                        }
                        break;
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable))))
            .collect()
    }

    async fn txn_round(
        &self,
        keys: &[Op<'_>],
        pending: &[usize],
        dc: Option<&str>,
    ) -> Result<Round, SourceError> {
        // Identical operations are sent once.
        let mut ops: Vec<(&str, &str)> = Vec::new();
        for &i in pending {
            let op = (keys[i].verb(), keys[i].key());
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
        let body: Vec<serde_json::Value> = ops
            .iter()
            .map(|(verb, k)| match &self.namespace {
                Some(ns) => serde_json::json!({"KV": {"Verb": verb, "Key": k, "Namespace": ns}}),
                None => serde_json::json!({"KV": {"Verb": verb, "Key": k}}),
            })
            .collect();
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let url = self.endpoint.url(&["v1", "txn"], &self.query(dc))?;
        let (status, body) = self
            .endpoint
            .send(Method::PUT, &url, |r| {
                r.header("content-type", "application/json").body(body)
            })
            .await?;
        let what = format!("a transaction of {} keys", ops.len());
        if !(status.is_success() || status.as_u16() == 409) {
            return Err(self.status_error(status, &body, &what));
        }
        let not_a_result = |e: serde_json::Error| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "consul's answer to {what} is not a transaction result: {}",
                transport::json_error(&e)
            ))
        };
        if status.as_u16() == 409 {
            let parsed: TxnResponse = serde_json::from_slice(&body).map_err(not_a_result)?;
            let errors = parsed.errors.unwrap_or_default();
            let mut failed = Vec::new();
            for e in &errors {
                let Some(op) = ops.get(e.op_index) else {
                    continue;
                };
                for &i in pending
                    .iter()
                    .filter(|&&i| (keys[i].verb(), keys[i].key()) == *op)
                {
                    failed.push((i, txn_op_error(&e.what)));
                }
            }
            return Ok(Round::RolledBack(failed));
        }
        // The results, read one at a time and counted per `get-tree` as they come: a
        // prefix past its `max_keys` stops the read (its fields are too large, the others
        // are read again without it, as after a rollback).
        let mut trees: Vec<(&str, usize, usize)> = Vec::new();
        for &i in pending {
            if let Op::Tree(request) = keys[i] {
                let max = match Subtree::of(request) {
                    Some(Ok(tree)) => tree.max_keys(),
                    _ => subtree::DEFAULT_MAX_KEYS,
                };
                if !trees.iter().any(|(p, _, _)| *p == keys[i].key()) {
                    trees.push((keys[i].key(), max, 0));
                }
            }
        }
        let mut by_key: std::collections::BTreeMap<String, Option<String>> =
            std::collections::BTreeMap::new();
        let mut over = None;
        let parsed = serde::de::DeserializeSeed::deserialize(
            TxnSeed {
                trees: &mut trees,
                by_key: &mut by_key,
                over: &mut over,
            },
            &mut serde_json::Deserializer::from_slice(&body),
        );
        if let Some(t) = over {
            let prefix = trees[t].0;
            let failed = pending
                .iter()
                .filter(|&&i| matches!(keys[i], Op::Tree(_)) && keys[i].key() == prefix)
                .map(|&i| {
                    let e = match keys[i] {
                        Op::Tree(request) => Subtree::of(request)
                            .and_then(Result::ok)
                            .and_then(|tree| tree.admit(tree.max_keys() + 1).err()),
                        Op::Get(_) => None,
                    };
                    (
                        i,
                        e.unwrap_or_else(|| SourceError::new(ErrorKind::TooLarge)),
                    )
                })
                .collect();
            return Ok(Round::RolledBack(failed));
        }
        parsed.map_err(not_a_result)?;
        let values = pending
            .iter()
            .map(|&i| {
                let v = match keys[i] {
                    Op::Get(_) => {
                        let key = keys[i].key();
                        match by_key.get(key) {
                            Some(value) => decode_value(value.as_deref(), key),
                            None => Err(SourceError::new(ErrorKind::Unauthorized).with_message(
                                "consul left the key out of the transaction result (the token may not read it)",
                            )),
                        }
                    }
                    Op::Tree(request) => tree_of(request, &by_key),
                };
                (i, v)
            })
            .collect();
        Ok(Round::Done(values))
    }
}

/// One operation of a transaction: a key's `get`, or a subtree's `get-tree`.
#[derive(Clone, Copy)]
enum Op<'a> {
    Get(&'a str),
    Tree(&'a FetchRequest),
}

impl Op<'_> {
    fn verb(&self) -> &'static str {
        match self {
            Op::Get(_) => "get",
            Op::Tree(_) => "get-tree",
        }
    }

    /// The key (or prefix) as Consul names it: no leading `/`.
    fn key(&self) -> &str {
        match self {
            Op::Get(key) => key,
            Op::Tree(request) => request.param(subtree::PREFIX).unwrap_or_default(),
        }
        .trim_start_matches('/')
    }
}

/// The subtree `request` asks for, out of a transaction's results (`by_key`, sorted):
/// the entries under its prefix, bounded as a `?recurse` read is.
fn tree_of(
    request: &FetchRequest,
    by_key: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<RawValue, SourceError> {
    let mut tree = match Subtree::of(request) {
        Some(tree) => tree?,
        None => return Err(SourceError::new(ErrorKind::Config).with_message("no `prefix`")),
    };
    let prefix = tree.prefix().trim_start_matches('/').to_owned();
    for (key, value) in by_key
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
    {
        add_entry(&mut tree, &prefix, key, value.as_deref())?;
    }
    Ok(tree.finish())
}

/// Adds one KV entry under `prefix` to `tree` (a folder, a key ending in `/` without a
/// value, is left out).
fn add_entry(
    tree: &mut Subtree<'_>,
    prefix: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), SourceError> {
    if key.ends_with('/') && value.is_none() {
        return Ok(());
    }
    let Some(name) = key
        .strip_prefix(prefix)
        .map(|rest| rest.trim_start_matches('/'))
        .filter(|rest| !rest.is_empty())
    else {
        return Ok(());
    };
    // Counted before the value is decoded: an entry past `max_keys` is not read.
    tree.admit(tree.len() + 1)?;
    tree.admit_bytes(value.map_or(0, |v| v.len() as u64 / 4 * 3))?;
    let value = decode_value(value, key)?;
    tree.insert(name, value)
}

/// Reads a `?recurse` answer (a JSON list of entries) into a [`Subtree`], one entry at
/// a time, stopping at the first entry past its bounds (the error in `failed`).
struct TreeSeed<'s, 'r> {
    tree: &'s mut Subtree<'r>,
    failed: &'s mut Option<SourceError>,
}

impl<'de> serde::de::DeserializeSeed<'de> for TreeSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TreeSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of KV entries")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let prefix = self.tree.prefix().trim_start_matches('/').to_owned();
        while let Some(entry) = seq.next_element::<KvEntry>()? {
            if let Err(e) = add_entry(self.tree, &prefix, &entry.key, entry.value.as_deref()) {
                *self.failed = Some(e);
                return Err(serde::de::Error::custom("the read stopped at its bound"));
            }
        }
        Ok(())
    }
}

/// Reads a `/v1/txn` answer's `Results` into `by_key`, one result at a time, counting
/// each `get-tree`'s entries (`trees`: prefix, `max_keys`, count); the first prefix past
/// its `max_keys` stops the read (its position in `over`).
struct TxnSeed<'s, 'p> {
    trees: &'s mut Vec<(&'p str, usize, usize)>,
    by_key: &'s mut std::collections::BTreeMap<String, Option<String>>,
    over: &'s mut Option<usize>,
}

impl<'de> serde::de::DeserializeSeed<'de> for TxnSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TxnSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a transaction result")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(name) = map.next_key::<String>()? {
            if name == "Results" {
                map.next_value_seed(Results(TxnSeed {
                    trees: &mut *self.trees,
                    by_key: &mut *self.by_key,
                    over: &mut *self.over,
                }))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The `Results` list (or `null`) of a transaction answer (see [`TxnSeed`]).
struct Results<'s, 'p>(TxnSeed<'s, 'p>);

impl<'de> serde::de::DeserializeSeed<'de> for Results<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Results<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of results")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let TxnSeed {
            trees,
            by_key,
            over,
        } = self.0;
        while let Some(result) = seq.next_element::<TxnResult>()? {
            let Some(kv) = result.kv else { continue };
            for (t, (prefix, max, count)) in trees.iter_mut().enumerate() {
                if kv.key.starts_with(*prefix) {
                    *count += 1;
                    if *count > *max {
                        *over = Some(t);
                        return Err(serde::de::Error::custom("the read stopped at its bound"));
                    }
                }
            }
            by_key.insert(kv.key, kv.value);
        }
        Ok(())
    }
}

impl ConsulSource {
    /// Distinct requests: one `/v1/txn` per datacenter and 64 operations (a key's `get`,
    /// a prefix's `get-tree`); one key is a GET, one prefix a GET with `?recurse`.
    async fn by_datacenter(
        &self,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        if requests.len() == 1 {
            return vec![self.fetch(requests[0]).await];
        }
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> =
            requests.iter().map(|_| None).collect();
        let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            if r.key().is_none() && !Subtree::is_subtree(r) {
                answers[i] =
                    Some(Err(SourceError::new(ErrorKind::Config)
                        .with_message("the field names no `key`")));
                continue;
            }
            match groups.iter_mut().find(|(dc, _)| *dc == r.dc()) {
                Some((_, members)) => members.push(i),
                None => groups.push((r.dc(), vec![i])),
            }
        }
        let calls = groups.iter().map(|(dc, members)| {
            let ops: Vec<Op<'_>> = members
                .iter()
                .map(
                    |&i| match (Subtree::is_subtree(requests[i]), requests[i].key()) {
                        (false, Some(key)) => Op::Get(key),
                        _ => Op::Tree(requests[i]),
                    },
                )
                .collect();
            async move { self.run_ops(&ops, *dc).await }
        });
        let results = futures::future::join_all(calls).await;
        for ((_, members), values) in groups.iter().zip(results) {
            for (&i, v) in members.iter().zip(values) {
                answers[i] = Some(v);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable))))
            .collect()
    }
}

enum Round {
    Done(Vec<(usize, Result<RawValue, SourceError>)>),
    RolledBack(Vec<(usize, SourceError)>),
}

fn txn_op_error(what: &str) -> SourceError {
    let kind = if what.contains("doesn't exist") || what.contains("does not exist") {
        ErrorKind::NotFound
    } else if what.to_ascii_lowercase().contains("permission denied") {
        ErrorKind::Unauthorized
    } else {
        ErrorKind::Other
    };
    SourceError::new(kind).with_message(format!("consul: {what}"))
}

/// A base64 `Value` (or `null`, an empty value) as text, or bytes when not UTF-8.
fn decode_value(value: Option<&str>, key: &str) -> Result<RawValue, SourceError> {
    let Some(encoded) = value else {
        return Ok(RawValue::Text(String::new()));
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map(bytes_value)
        .map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "consul's `Value` for key `{key}` is not valid base64 ({e})"
            ))
        })
}

fn bytes_value(bytes: impl Into<Vec<u8>>) -> RawValue {
    match String::from_utf8(bytes.into()) {
        Ok(s) => RawValue::Text(s),
        Err(e) => RawValue::Bytes(e.into_bytes()),
    }
}

#[async_trait::async_trait]
impl Source for ConsulSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        if Subtree::is_subtree(request) {
            return self.get_tree(request).await;
        }
        match request.key() {
            Some(key) => {
                self.get(key, request.dc(), request.param(RAW).is_some())
                    .await
            }
            None => {
                Err(SourceError::new(ErrorKind::Config).with_message("the field names no `key`"))
            }
        }
    }

    /// One `/v1/txn` per datacenter and 64 keys (each key once); a single key is a plain
    /// GET.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        coalesce(requests, |unique| async move {
            self.by_datacenter(&unique).await
        })
        .await
    }

    fn location(&self) -> Option<String> {
        Some(redact_url(self.endpoint.base()))
    }

    /// `prefix <prefix>` for a subtree read, else the key.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        subtree::native_key(request).or_else(|| request.native_key())
    }

    /// A subtree read (`prefix = "..."`) names its keys itself: no convention key.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        if Subtree::is_subtree(&request) {
            return Ok(request);
        }
        Ok(request.with_key(field.key('/')))
    }

    /// Blocking queries (see the `watch` module): on the keys' common prefix when it is
    /// selective, else one per distinct key.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<crate::Changes, SourceError> {
        Ok(self.watch_keys(requests))
    }

    /// Whether each key may be read and exists, without reading a value: see the
    /// module's "Preflight".
    fn preflight(&self, requests: Vec<FetchRequest>) -> crate::Preflighting<'_> {
        Box::pin(self.preflight_requests(requests))
    }
}

/// Reads one Consul key, as the specification sketches it; `ComponentFetcher<T>` for any
/// `serde::Deserialize` type (a `String`, a number, a JSON document, `Vec<u8>`).
///
/// ```no_run
/// use component_model_async::{ComponentFetcher, ConsulFetcher, ConsulSource};
///
/// # async fn run() -> Result<(), component_model_async::ComponentError> {
/// let port: u16 = ConsulFetcher::new("app/port").fetch_component().await?; // CONSUL_HTTP_ADDR
/// let flags: serde_json::Value = ConsulFetcher::with_source(ConsulSource::new("127.0.0.1:8500"), "app/flags")
///     .raw()
///     .fetch_component()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConsulFetcher(SourceFetcher<ConsulSource>);

impl ConsulFetcher {
    /// Reads `key` from the agent configured by the environment ([`ConsulSource::from_env`]).
    pub fn new(key: impl Into<String>) -> Self {
        Self::with_source(ConsulSource::from_env(), key)
    }

    /// Reads `key` from `source`.
    pub fn with_source(source: ConsulSource, key: impl Into<String>) -> Self {
        ConsulFetcher(SourceFetcher::new(
            source,
            FetchRequest::for_key("consul", key.into()),
        ))
    }

    /// Reads from datacenter `dc`.
    #[must_use]
    pub fn datacenter(self, dc: impl Into<String>) -> Self {
        ConsulFetcher(self.0.map_request(|r| r.with_dc(dc.into())))
    }

    /// Uses `GET /v1/kv/<key>?raw`: the body is the value, no base64.
    #[must_use]
    pub fn raw(self) -> Self {
        ConsulFetcher(self.0.map_request(|r| r.with_param(RAW, "true")))
    }
}

#[async_trait::async_trait]
impl<T: DeserializeOwned + Send + 'static> ComponentFetcher<T> for ConsulFetcher {
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<T, ComponentError> {
        self.0.fetch_component().await
    }
}
