//! [`ConsulDouble`]: Consul's KV and transaction endpoints, in process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{RecordedRequest, Recorder, Server, parse_go_duration};

/// Consul allows at most this many operations in one transaction.
/// The transaction endpoint's documented limit ("Transactions … may contain at most 128
/// operations", Consul's `/v1/txn` API page); the client keeps to 64 per transaction.
const MAX_TXN_OPS: usize = 128;
/// Consul caps a blocking query's `wait` at 10 minutes; 5 minutes when not given.
const MAX_WAIT: Duration = Duration::from_secs(600);
const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const ANONYMOUS: &str = "00000000-0000-0000-0000-000000000002";

/// An in-process **API double** of a Consul agent's KV store (not Consul itself).
///
/// Implemented as the Consul HTTP API documents them:
///
/// * `GET /v1/kv/<key>`: `200` with a JSON list of entries (`LockIndex`, `Key`, `Flags`,
///   `Value` base64 or `null` for an empty value, `CreateIndex`, `ModifyIndex`); `404`
///   with an empty body when absent. `?raw` (the value as the body), `?recurse` (every
///   key under the prefix), `?keys` (key names, with `?separator=`), `?dc=` (unknown →
///   `500 No path to datacenter`), blocking queries `?index=&wait=` (waits until the
///   index passes `index` or `wait` elapses, default 5m, at most 10m);
/// * `PUT /v1/kv/<key>` (`?flags=`, `?cas=`) → `true`/`false`; `DELETE /v1/kv/<key>`
///   (`?recurse`, `?cas=`: deleted only when it equals the `ModifyIndex`, never for 0) →
///   `true`/`false`; `?acquire=`/`?release=` → `500 invalid session` (sessions are not
///   modelled, so every session is unknown);
/// * `PUT /v1/txn`: every `KV` verb of the transaction API (`set` with `Flags`, `cas`,
///   `get`, `get-tree`, `get-or-empty`, `check-index`, `check-not-exists`, `delete`,
///   `delete-tree`, `delete-cas`; `lock`, `unlock`, `check-session` fail as an unknown
///   session), at most 128 operations (else `413`), run in order so each sees the ones
///   before it; all or nothing: failing operations roll the transaction back and answer
///   `409` with `{"Results": null, "Errors": [{"OpIndex", "What"}]}`; an unknown verb is
///   `400`; writes need `key:write`; reads the token may not see are left out of `Results`;
/// * `?recurse`/`?keys` leave out keys the token may not read and then send
///   `X-Consul-Results-Filtered-By-ACLs: true`;
/// * headers `X-Consul-Index`, `X-Consul-Knownleader`, `X-Consul-Lastcontact` on reads;
/// * ACLs when built with [`ConsulDoubleBuilder::acl_token`] (a token that may do
///   everything) or [`ConsulDoubleBuilder::acl_token_with_rules`] (`key_prefix` rules:
///   the longest matching prefix decides, no match is denied): the token is read from
///   `X-Consul-Token`, `Authorization: Bearer` or `?token=`; an unknown token gets
///   `403 ACL not found`; no token is the anonymous token, which may read nothing
///   (`403 Permission denied: ...`); keys under a [`ConsulDoubleBuilder::deny_prefix`]
///   are denied to every token. A transaction's operations are checked first, as
///   Consul's `preCheck` does (writes and `check-not-exists` need `key:write`,
///   `check-index` and `check-session` `key:read`): any refusal is a `409` naming only
///   the refused operations, and nothing runs.
///
/// Every request is recorded ([`ConsulDouble::requests`]).
pub struct ConsulDouble {
    server: Server,
    state: Arc<ConsulState>,
}

impl std::fmt::Debug for ConsulDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsulDouble")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Configures a [`ConsulDouble`].
#[derive(Debug, Default)]
pub struct ConsulDoubleBuilder {
    token: Option<String>,
    tokens: HashMap<String, Vec<(String, KeyPolicy)>>,
    datacenters: Vec<String>,
    denied: Vec<String>,
}

/// The `policy` of a `key_prefix` rule of a Consul ACL policy
/// (`key_prefix "app/" { policy = "read" }`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyPolicy {
    /// `read`: read and list the keys.
    Read,
    /// `write`: read, list, write and delete them.
    Write,
    /// `deny`: nothing.
    Deny,
}

impl ConsulDoubleBuilder {
    /// Enables ACLs: `token` may read and write everything not denied.
    #[must_use]
    pub fn acl_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Enables ACLs and adds `token` with a policy of `key_prefix` rules, `("app/",
    /// "read")` being `key_prefix "app/" { policy = "read" }` (`read`, `write` or
    /// `deny`): as in Consul, the rule with the longest prefix of a key decides, and a key
    /// no rule matches is denied (`default_policy = "deny"`). Several calls add several
    /// tokens.
    ///
    /// # Panics
    /// On a policy other than `read`, `write` and `deny`.
    #[must_use]
    pub fn acl_token_with_rules(
        mut self,
        token: impl Into<String>,
        rules: &[(&str, &str)],
    ) -> Self {
        let rules = rules
            .iter()
            .map(|(prefix, policy)| {
                let policy = match *policy {
                    "read" => KeyPolicy::Read,
                    "write" => KeyPolicy::Write,
                    "deny" => KeyPolicy::Deny,
                    other => panic!("a key_prefix policy is read, write or deny, not {other:?}"),
                };
                ((*prefix).to_owned(), policy)
            })
            .collect();
        self.tokens.insert(token.into(), rules);
        self
    }

    /// Adds a datacenter besides the default `dc1`.
    #[must_use]
    pub fn datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenters.push(dc.into());
        self
    }

    /// Denies every token access to keys starting with `prefix` (with ACLs on).
    #[must_use]
    pub fn deny_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.denied.push(prefix.into());
        self
    }

    /// Starts serving on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port of 127.0.0.1 can be bound (a test-support type: failing loudly is the point).
    pub async fn start(self) -> ConsulDouble {
        let mut stores = HashMap::new();
        stores.insert("dc1".to_owned(), BTreeMap::new());
        for dc in self.datacenters {
            stores.insert(dc, BTreeMap::new());
        }
        let (index_tx, _) = watch::channel(1u64);
        let state = Arc::new(ConsulState {
            data: Mutex::new(Data {
                stores,
                index: 1,
                restores: 0,
                tombstones: HashMap::new(),
            }),
            index_tx,
            acl: self.token.is_some() || !self.tokens.is_empty(),
            token: self.token,
            tokens: self.tokens,
            denied: self.denied,
            recorder: Recorder::default(),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Server::spawn(router)
            .await
            .expect("the Consul double could not bind 127.0.0.1");
        ConsulDouble { server, state }
    }
}

struct ConsulState {
    data: Mutex<Data>,
    /// The latest raft index, for blocking queries.
    index_tx: watch::Sender<u64>,
    /// Whether ACLs are on (a token was configured).
    acl: bool,
    /// The token that may do everything not denied ([`ConsulDoubleBuilder::acl_token`]).
    token: Option<String>,
    /// Tokens with `key_prefix` rules ([`ConsulDoubleBuilder::acl_token_with_rules`]).
    tokens: HashMap<String, Vec<(String, KeyPolicy)>>,
    denied: Vec<String>,
    recorder: Recorder,
}

#[derive(Clone)]
struct Data {
    /// Where each deleted key was deleted (per datacenter): a listing's index counts
    /// deletions under its prefix, as Consul's tombstones do, so a blocking `?recurse`
    /// query wakes on a delete.
    tombstones: HashMap<String, BTreeMap<String, u64>>,
    stores: HashMap<String, BTreeMap<String, Entry>>,
    index: u64,
    /// How many snapshot restores happened: each abandons the blocking queries waiting.
    restores: u64,
}

#[derive(Clone)]
struct Entry {
    value: Vec<u8>,
    flags: u64,
    create_index: u64,
    modify_index: u64,
}

impl Entry {
    fn json(&self, key: &str) -> Value {
        json!({
            "LockIndex": 0,
            "Key": key,
            "Flags": self.flags,
            "Value": if self.value.is_empty() {
                Value::Null
            } else {
                Value::String(base64::engine::general_purpose::STANDARD.encode(&self.value))
            },
            "CreateIndex": self.create_index,
            "ModifyIndex": self.modify_index,
        })
    }
}

impl ConsulDouble {
    /// A double without ACLs and one datacenter, `dc1`.
    pub async fn start() -> ConsulDouble {
        Self::builder().start().await
    }

    /// Configures a double (ACL token, datacenters, denied prefixes).
    pub fn builder() -> ConsulDoubleBuilder {
        ConsulDoubleBuilder::default()
    }

    /// `127.0.0.1:<port>`, as `CONSUL_HTTP_ADDR` takes it.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Sets `key` in `dc1` (as `PUT /v1/kv/<key>` would).
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>) {
        self.put_in("dc1", key, value);
    }

    /// Sets `key` in datacenter `dc`.
    ///
    /// # Panics
    /// When `dc` was not configured with [`ConsulDoubleBuilder::datacenter`].
    pub fn put_in(&self, dc: &str, key: &str, value: impl AsRef<[u8]>) {
        self.state.write(|data| {
            assert!(data.stores.contains_key(dc), "unknown datacenter {dc}");
            data.set(dc, key, value.as_ref().to_vec(), 0);
        });
    }

    /// Stores a raw `Value` string for `key` in `dc1` as-is, e.g. invalid base64, to test
    /// how a client copes with a corrupted answer.
    pub fn put_raw_value(&self, key: &str, encoded: &str) {
        let value = CORRUPT_MARKER
            .iter()
            .copied()
            .chain(encoded.bytes())
            .collect();
        self.state.write(|data| data.set("dc1", key, value, 0));
    }

    /// Deletes `key` in `dc1`.
    pub fn delete(&self, key: &str) {
        self.state.write(|data| data.remove("dc1", key, false));
    }

    /// Simulates a snapshot restore (or a new cluster) at raft index `index`: every
    /// entry's indexes drop to at most `index`, and the blocking queries waiting are
    /// abandoned, as Consul does, so they answer at once with the lower index (clients
    /// must then reset theirs to 0).
    pub fn restore_snapshot(&self, index: u64) {
        let index = index.max(1);
        {
            let mut data = self.state.lock();
            data.index = index;
            data.restores += 1;
            data.tombstones.clear();
            for store in data.stores.values_mut() {
                for e in store.values_mut() {
                    e.create_index = e.create_index.min(index);
                    e.modify_index = e.modify_index.min(index);
                }
            }
        }
        self.state.index_tx.send_replace(index);
    }

    /// The current raft index (`X-Consul-Index` of the latest write).
    pub fn index(&self) -> u64 {
        self.state.lock().index
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// The requests whose path starts with `prefix` (`"/v1/txn"`, `"/v1/kv/app"`).
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.state.recorder.matching(prefix)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
    }
}

/// Marks a value stored with [`ConsulDouble::put_raw_value`]: served verbatim as `Value`.
const CORRUPT_MARKER: &[u8] = b"\0corrupt\0";

impl ConsulState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `change` on the data, then wakes blocking queries if the index moved.
    fn write<R>(&self, change: impl FnOnce(&mut Data) -> R) -> R {
        let mut data = self.lock();
        let before = data.index;
        let out = change(&mut data);
        let after = data.index;
        drop(data);
        if after != before {
            self.index_tx.send_replace(after);
        }
        out
    }
}

impl Data {
    /// Removes `key` (every key under it with `recurse`); the index moves either way.
    fn remove(&mut self, dc: &str, key: &str, recurse: bool) {
        self.index += 1;
        let index = self.index;
        if let Some(store) = self.stores.get_mut(dc) {
            let gone: Vec<String> = if recurse {
                store
                    .keys()
                    .filter(|k| k.starts_with(key))
                    .cloned()
                    .collect()
            } else {
                store
                    .remove_entry(key)
                    .map(|(k, _)| k)
                    .into_iter()
                    .collect()
            };
            let tombstones = self.tombstones.entry(dc.to_owned()).or_default();
            for k in gone {
                store.remove(&k);
                tombstones.insert(k, index);
            }
        }
    }

    /// The latest deletion under `prefix`, if any.
    fn deleted_under(&self, dc: &str, prefix: &str) -> Option<u64> {
        self.tombstones.get(dc).and_then(|t| {
            t.range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, i)| *i)
                .max()
        })
    }

    fn set(&mut self, dc: &str, key: &str, value: Vec<u8>, flags: u64) {
        self.index += 1;
        if let Some(t) = self.tombstones.get_mut(dc) {
            t.remove(key);
        }
        let index = self.index;
        if let Some(store) = self.stores.get_mut(dc) {
            let create_index = store.get(key).map_or(index, |e| e.create_index);
            store.insert(
                key.to_owned(),
                Entry {
                    value,
                    flags,
                    create_index,
                    modify_index: index,
                },
            );
        }
    }
}

fn entry_json(key: &str, e: &Entry) -> Value {
    if let Some(encoded) = e.value.strip_prefix(CORRUPT_MARKER) {
        let mut v = e.json(key);
        v["Value"] = Value::String(String::from_utf8_lossy(encoded).into_owned());
        return v;
    }
    e.json(key)
}

enum Access {
    /// A known token or ACLs off.
    Token,
    /// A token with `key_prefix` rules.
    Rules(Vec<(String, KeyPolicy)>),
    Anonymous,
    Unknown,
}

/// What an operation needs on a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Read,
    Write,
}

impl ConsulState {
    fn access(&self, r: &RecordedRequest) -> Access {
        if !self.acl {
            return Access::Token;
        }
        let given = r
            .header("x-consul-token")
            .map(str::to_owned)
            .or_else(|| {
                r.header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::to_owned)
            })
            .or_else(|| r.query_param("token").map(str::to_owned));
        match given {
            None => Access::Anonymous,
            Some(t) if t.is_empty() => Access::Anonymous,
            Some(t) if self.token.as_ref() == Some(&t) => Access::Token,
            Some(t) => match self.tokens.get(&t) {
                Some(rules) => Access::Rules(rules.clone()),
                None => Access::Unknown,
            },
        }
    }

    /// Whether the token may write every key under `prefix` (Consul's `KeyWritePrefix`:
    /// a recursive delete needs write access to the whole tree, including any denied
    /// prefix inside it).
    fn may_tree(&self, access: &Access, prefix: &str) -> bool {
        self.may_write(access, prefix)
            && !(self.acl && self.denied.iter().any(|d| d.starts_with(prefix)))
            && match access {
                Access::Rules(rules) => rules
                    .iter()
                    .filter(|(p, _)| p.starts_with(prefix))
                    .all(|(_, k)| *k == KeyPolicy::Write),
                _ => true,
            }
    }

    /// Whether the token may read `key`.
    fn may(&self, access: &Access, key: &str) -> bool {
        self.allows(access, key, Need::Read)
    }

    fn may_write(&self, access: &Access, key: &str) -> bool {
        self.allows(access, key, Need::Write)
    }

    fn allows(&self, access: &Access, key: &str, need: Need) -> bool {
        if self.acl && self.denied.iter().any(|p| key.starts_with(p.as_str())) {
            return false;
        }
        match access {
            Access::Token => true,
            // The longest matching `key_prefix` decides; none: the default policy, deny.
            Access::Rules(rules) => rules
                .iter()
                .filter(|(p, _)| key.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .is_some_and(|(_, k)| match k {
                    KeyPolicy::Write => true,
                    KeyPolicy::Read => need == Need::Read,
                    KeyPolicy::Deny => false,
                }),
            Access::Anonymous | Access::Unknown => false,
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

fn denied(access: &Access, permission: &str, key: &str) -> Response {
    let accessor = match access {
        Access::Anonymous => ANONYMOUS,
        _ => "5a5e5ca7-0000-4000-8000-000000000001",
    };
    text(
        StatusCode::FORBIDDEN,
        format!(
            "Permission denied: token with AccessorID '{accessor}' lacks permission '{permission}' on \"{key}\""
        ),
    )
}

fn with_index(mut response: Response, index: u64) -> Response {
    let h = response.headers_mut();
    h.insert("x-consul-index", HeaderValue::from(index.max(1)));
    h.insert("x-consul-knownleader", HeaderValue::from_static("true"));
    h.insert("x-consul-lastcontact", HeaderValue::from_static("0"));
    response
}

async fn handle(
    State(state): State<Arc<ConsulState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = state.recorder.record(&method, &uri, &headers, &body);
    let access = state.access(&r);
    if let Access::Unknown = access {
        return text(StatusCode::FORBIDDEN, "ACL not found");
    }
    let dc = r.query_param("dc").unwrap_or("dc1").to_owned();
    if !state.lock().stores.contains_key(&dc) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "No path to datacenter");
    }
    if let Some(key) = r.path.strip_prefix("/v1/kv/") {
        let key = key.to_owned();
        return match method {
            Method::GET => kv_get(&state, &r, &access, &dc, &key).await,
            Method::PUT => kv_put(&state, &r, &access, &dc, &key),
            Method::DELETE => kv_delete(&state, &r, &access, &dc, &key),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        };
    }
    match (method, r.path.as_str()) {
        (Method::PUT, "/v1/txn") => txn(&state, &r, &access, &dc),
        (_, "/v1/txn") => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
        (Method::GET, "/v1/status/leader") => (
            [("content-type", "application/json")],
            "\"127.0.0.1:8300\"".to_owned(),
        )
            .into_response(),
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// The answer to a KV read and its index, computed from the current data.
fn kv_read(
    state: &ConsulState,
    r: &RecordedRequest,
    access: &Access,
    dc: &str,
    key: &str,
) -> (Option<Response>, u64) {
    let data = state.lock();
    let table_index = data.index;
    let store = &data.stores[dc];
    if r.query_param("recurse").is_some() || r.query_param("keys").is_some() {
        let under: Vec<(&String, &Entry)> = store
            .range(key.to_owned()..)
            .take_while(|(k, _)| k.starts_with(key))
            .collect();
        let index = under
            .iter()
            .map(|(_, e)| e.modify_index)
            .chain(data.deleted_under(dc, key))
            .max()
            .unwrap_or(table_index);
        // Keys the token may not read are left out, and Consul says so in a header (ACL
        // docs: results filtered by ACLs set `X-Consul-Results-Filtered-By-ACLs: true`).
        let matching: Vec<(&String, &Entry)> = under
            .iter()
            .copied()
            .filter(|(k, _)| state.may(access, k))
            .collect();
        let filtered = matching.len() != under.len();
        let mark = |mut resp: Response| {
            if filtered {
                resp.headers_mut().insert(
                    "x-consul-results-filtered-by-acls",
                    HeaderValue::from_static("true"),
                );
            }
            resp
        };
        if matching.is_empty() {
            return (
                filtered.then(|| mark(StatusCode::NOT_FOUND.into_response())),
                index,
            );
        }
        let body = if r.query_param("keys").is_some() {
            let sep = r.query_param("separator").filter(|s| !s.is_empty());
            let mut names: Vec<String> = Vec::new();
            for (k, _) in &matching {
                let name = match sep.and_then(|s| k[key.len()..].find(s).map(|i| (i, s))) {
                    Some((i, s)) => k[..key.len() + i + s.len()].to_owned(),
                    None => (*k).clone(),
                };
                if names.last() != Some(&name) {
                    names.push(name);
                }
            }
            json!(names)
        } else {
            Value::Array(matching.iter().map(|(k, e)| entry_json(k, e)).collect())
        };
        return (Some(mark(axum::Json(body).into_response())), index);
    }
    match store.get(key) {
        None => (None, table_index),
        Some(e) if r.query_param("raw").is_some() => {
            let value = e
                .value
                .strip_prefix(CORRUPT_MARKER)
                .unwrap_or(&e.value)
                .to_vec();
            let mut resp = value.into_response();
            resp.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            resp.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            (Some(resp), e.modify_index)
        }
        Some(e) => (
            Some(axum::Json(json!([entry_json(key, e)])).into_response()),
            e.modify_index,
        ),
    }
}

async fn kv_get(
    state: &ConsulState,
    r: &RecordedRequest,
    access: &Access,
    dc: &str,
    key: &str,
) -> Response {
    let listing = r.query_param("recurse").is_some() || r.query_param("keys").is_some();
    // A listing filters out what the token may not read (below); a single key is refused.
    if !listing && !state.may(access, key) {
        return denied(access, "key:read", key);
    }
    let min_index: u64 = r
        .query_param("index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let wait = r
        .query_param("wait")
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_WAIT)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.index_tx.subscribe();
    let restores = state.lock().restores;
    loop {
        let (response, index) = kv_read(state, r, access, dc, key);
        let expired = tokio::time::Instant::now() >= deadline;
        let abandoned = state.lock().restores != restores;
        if min_index == 0 || index > min_index || expired || abandoned {
            let response = response.unwrap_or_else(|| StatusCode::NOT_FOUND.into_response());
            return with_index(response, index);
        }
        // Wait for any write (or the deadline), then look again.
        let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
    }
}

fn kv_put(
    state: &ConsulState,
    r: &RecordedRequest,
    access: &Access,
    dc: &str,
    key: &str,
) -> Response {
    if !state.may_write(access, key) {
        return denied(access, "key:write", key);
    }
    let flags = r
        .query_param("flags")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // `?acquire=`/`?release=` take a session ID (KV API); sessions are not modelled, so any
    // session is unknown, and Consul refuses an invalid session with a server error.
    for lock in ["acquire", "release"] {
        if let Some(session) = r.query_param(lock) {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("invalid session {session:?}"),
            );
        }
    }
    let cas = r.query_param("cas").and_then(|c| c.parse::<u64>().ok());
    let written = state.write(|data| {
        let current = data.stores[dc].get(key).map_or(0, |e| e.modify_index);
        if cas.is_some_and(|cas| cas != current) {
            return false;
        }
        data.set(dc, key, r.body.clone(), flags);
        true
    });
    axum::Json(written).into_response()
}

fn kv_delete(
    state: &ConsulState,
    r: &RecordedRequest,
    access: &Access,
    dc: &str,
    key: &str,
) -> Response {
    let recurse = r.query_param("recurse").is_some();
    let allowed = if recurse {
        state.may_tree(access, key)
    } else {
        state.may_write(access, key)
    };
    if !allowed {
        return denied(access, "key:write", key);
    }
    // `?cas=<index>` (KV API, DELETE): "Unlike PUT, the index must be greater than 0 for
    // Consul to take any action: a 0 index will not delete the key. If the index is
    // non-zero, the key is only deleted if the index matches the ModifyIndex of that key."
    let cas = r.query_param("cas").map(|c| c.parse::<u64>().unwrap_or(0));
    let deleted = state.write(|data| {
        if let Some(cas) = cas {
            let current = data.stores[dc].get(key).map(|e| e.modify_index);
            if cas == 0 || current != Some(cas) {
                return false;
            }
        }
        data.remove(dc, key, recurse);
        true
    });
    axum::Json(deleted).into_response()
}

fn txn(state: &ConsulState, r: &RecordedRequest, access: &Access, dc: &str) -> Response {
    let ops: Vec<Value> = match serde_json::from_slice(&r.body) {
        Ok(Value::Array(ops)) => ops,
        Ok(_) => {
            return text(
                StatusCode::BAD_REQUEST,
                "Failed to parse body: expected a list of operations",
            );
        }
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: {e}"),
            );
        }
    };
    if ops.len() > MAX_TXN_OPS {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
                ops.len()
            ),
        );
    }
    state.write(|data| txn_apply(state, access, dc, &ops, data))
}

/// One KV operation of a transaction, parsed.
struct TxnOp {
    verb: String,
    key: String,
    value: Option<Vec<u8>>,
    flags: u64,
    index: u64,
}

/// The verbs of the KV operations of `/v1/txn`, as the "KV Operations" table of Consul's
/// transaction API lists them; each is checked against the state left by the operations
/// before it ("operations are executed in order").
const KV_VERBS: &[&str] = &[
    "set",
    "cas",
    "lock",
    "unlock",
    "get",
    "get-tree",
    "check-index",
    "check-session",
    "check-not-exists",
    "delete",
    "delete-tree",
    "delete-cas",
    "get-or-empty",
];

/// Runs a transaction's operations: all of them, or none when one fails (Consul answers
/// `409` with the failed operations' `OpIndex` and `What`).
fn txn_apply(
    state: &ConsulState,
    access: &Access,
    dc: &str,
    ops: &[Value],
    data: &mut Data,
) -> Response {
    let mut parsed = Vec::new();
    for op in ops {
        let kv = &op["KV"];
        let verb = kv["Verb"].as_str().unwrap_or("");
        // An unknown verb is a malformed request, not a failed operation.
        if !KV_VERBS.contains(&verb) {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body: unknown KV verb {verb:?}"),
            );
        }
        parsed.push(TxnOp {
            verb: verb.to_owned(),
            key: kv["Key"].as_str().unwrap_or("").to_owned(),
            value: kv["Value"].as_str().map(|v| {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .unwrap_or_default()
            }),
            flags: kv["Flags"].as_u64().unwrap_or(0),
            index: kv["Index"].as_u64().unwrap_or(0),
        });
    }
    // Consul checks the ACLs of every operation first (its `preCheck`): writes need
    // `key:write` (`delete-tree` on the whole tree), `check-index` and `check-session`
    // `key:read` ("these could reveal information based on the outcome"), and so does
    // `check-not-exists` need `key:write` (its `default` case); `get` and `get-tree` are
    // filtered afterwards. Any refusal answers `409` with the refused operations alone,
    // none of the others run.
    let refused: Vec<Value> = parsed
        .iter()
        .enumerate()
        .filter_map(|(i, op)| {
            let key = op.key.as_str();
            let (allowed, permission) = match op.verb.as_str() {
                "get" | "get-tree" | "get-or-empty" => (true, ""),
                "check-index" | "check-session" => (state.may(access, key), "key:read"),
                "delete-tree" => (state.may_tree(access, key), "key:write"),
                _ => (state.may_write(access, key), "key:write"),
            };
            (!allowed).then(|| {
                json!({"OpIndex": i, "What": format!(
                    "Permission denied: token lacks permission '{permission}' on {key:?}"
                )})
            })
        })
        .collect();
    if !refused.is_empty() {
        let index = data.index;
        let body = json!({"Results": Value::Null, "Errors": refused});
        return with_index(
            (StatusCode::CONFLICT, axum::Json(body)).into_response(),
            index,
        );
    }
    // The operations run in order on a copy, each seeing the ones before it; the copy
    // replaces the data only when none failed (all or nothing, every failure reported).
    let mut work = data.clone();
    let mut errors = Vec::new();
    let mut results = Vec::new();
    for (i, op) in parsed.into_iter().enumerate() {
        let key = op.key.as_str();
        let current = work.stores[dc].get(key).cloned();
        let fail = |what: String| json!({"OpIndex": i, "What": what});
        // Writes answer the entry without its value; reads the token may not read are
        // left out of the results (Consul filters them).
        let written = |work: &Data| {
            let mut e = work.stores[dc][key].json(key);
            e["Value"] = Value::Null;
            json!({"KV": e})
        };
        let stale = |what: &str| fail(format!("failed to {what} key {key:?}, index is stale"));
        match op.verb.as_str() {
            "set" => {
                work.set(dc, key, op.value.unwrap_or_default(), op.flags);
                results.push(written(&work));
            }
            "cas" => match (&current, op.index) {
                (None, 0) => {
                    work.set(dc, key, op.value.unwrap_or_default(), op.flags);
                    results.push(written(&work));
                }
                (Some(e), index) if index != 0 && e.modify_index == index => {
                    work.set(dc, key, op.value.unwrap_or_default(), op.flags);
                    results.push(written(&work));
                }
                _ => errors.push(stale("set")),
            },
            "get" | "get-or-empty" => match &current {
                None if op.verb == "get" => errors.push(fail(format!("key {key:?} doesn't exist"))),
                None => results.push(json!({"KV": {
                    "LockIndex": 0, "Key": key, "Flags": 0, "Value": Value::Null,
                    "CreateIndex": 0, "ModifyIndex": 0,
                }})),
                Some(e) if state.may(access, key) => {
                    results.push(json!({"KV": entry_json(key, e)}))
                }
                Some(_) => {}
            },
            "get-tree" => {
                for (k, e) in work.stores[dc]
                    .range(key.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(key))
                {
                    if state.may(access, k) {
                        results.push(json!({"KV": entry_json(k, e)}));
                    }
                }
            }
            "check-index" => match &current {
                None => errors.push(fail(format!(
                    "failed to check index, key {key:?} doesn't exist"
                ))),
                Some(e) if e.modify_index != op.index => errors.push(fail(format!(
                    "failed index check for key {key:?}, current modify index {} != {}",
                    e.modify_index, op.index
                ))),
                Some(_) => {}
            },
            "check-not-exists" if current.is_some() => {
                errors.push(fail(format!("key {key:?} exists")))
            }
            "check-not-exists" => {}
            "delete" => work.remove(dc, key, false),
            "delete-tree" => work.remove(dc, key, true),
            "delete-cas" => match &current {
                Some(e) if e.modify_index == op.index => work.remove(dc, key, false),
                _ => errors.push(stale("delete")),
            },
            // Sessions are not modelled: every session is unknown.
            _ => errors.push(fail("invalid session \"\"".to_owned())),
        }
    }
    if !errors.is_empty() {
        let index = data.index;
        let body = json!({"Results": Value::Null, "Errors": errors});
        return with_index(
            (StatusCode::CONFLICT, axum::Json(body)).into_response(),
            index,
        );
    }
    *data = work;
    let index = data.index;
    let results = if results.is_empty() {
        Value::Null
    } else {
        Value::Array(results)
    };
    let body = json!({"Results": results, "Errors": Value::Null});
    with_index(axum::Json(body).into_response(), index)
}
