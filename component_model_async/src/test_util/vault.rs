//! [`VaultDouble`]: Vault's KV v1/v2 secrets engines and the system endpoints they need.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{RecordedRequest, Recorder, Server, rfc3339};

/// KV v1 reports its default refresh interval (768h) as `lease_duration`.
const KV1_LEASE_SECONDS: u64 = 2_764_800;
const INVALID_V2_PATH: &str = "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation.";

/// An in-process **API double** of a Vault server's KV secrets engines (not Vault itself).
///
/// Implemented as Vault's HTTP API documents them, every JSON answer in Vault's response
/// envelope (`request_id`, `lease_id`, `renewable`, `lease_duration`, `data`, `wrap_info`,
/// `warnings`, `auth`, `mount_type`) and every error as `{"errors": [...]}`:
///
/// * KV v2 mounts: `GET /v1/<mount>/data/<path>` (`?version=`; `data.data` and
///   `data.metadata`), `POST`/`PUT` of `{"data": {...}}` (a new version), `DELETE`
///   (soft-deletes the latest version: reads then answer `404` with the metadata and
///   `deletion_time`); a path without `data/` answers `404` with Vault's "Invalid path for
///   a versioned K/V secrets engine" warning;
/// * KV v1 mounts: `GET /v1/<mount>/<path>` (`data` is the secret, `lease_duration`
///   2764800), `POST`/`PUT` (`204`), `DELETE` (`204`);
/// * `GET /v1/sys/internal/ui/mounts/<path>`: the mount (`path`, `type: kv`,
///   `options.version`), `403` when no mount matches;
/// * `GET /v1/sys/seal-status`, `GET /v1/sys/health` (`503` when sealed);
/// * missing secret → `404 {"errors": []}`; no route → `404 no handler for route`; a
///   missing or wrong `X-Vault-Token` (or `Authorization: Bearer`) → `403 permission
///   denied`; with [`VaultDoubleBuilder::namespace`], a request without that
///   `X-Vault-Namespace` → `403`; sealed ([`VaultDouble::seal`]) → `503 Vault is sealed`.
///
/// The default double has a KV v2 mount `secret/` and token `root`, like `vault server -dev`.
/// Every request is recorded ([`VaultDouble::requests`]).
///
/// ```
/// use component_model_async::test_util::VaultDouble;
/// use component_model_async::{AsyncAssign, SecretString, Sources, VaultSource};
/// use component_model_async::secrecy::ExposeSecret;
///
/// #[derive(AsyncAssign, Debug)]
/// struct Secrets {
///     #[component(fetch_from = "vault", secret = "app/db", field = "username")]
///     user: String,
///     #[component(fetch_from = "vault", secret = "app/db", field = "password")]
///     password: SecretString,
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let vault = VaultDouble::start().await;
/// vault.put("secret", "app/db", serde_json::json!({"username": "app", "password": "pw"}));
/// let sources = Sources::new().register("vault", VaultSource::new(vault.url()).with_token("root"));
/// let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((s.user.as_str(), s.password.expose_secret()), ("app", "pw"));
/// assert_eq!(vault.requests_to("/v1/secret/data/app/db").len(), 1); // one read for both
/// # });
/// ```
pub struct VaultDouble {
    server: Server,
    state: Arc<VaultState>,
}

impl std::fmt::Debug for VaultDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultDouble")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// Configures a [`VaultDouble`].
#[derive(Debug)]
pub struct VaultDoubleBuilder {
    token: String,
    namespace: Option<String>,
    mounts: Vec<(String, u8)>,
}

impl VaultDoubleBuilder {
    /// The one valid token (default `root`).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = token.into();
        self
    }

    /// Puts every mount in namespace `ns`: requests must send `X-Vault-Namespace: ns`.
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into().trim_matches('/').to_owned());
        self
    }

    /// Adds a KV v1 mount.
    #[must_use]
    pub fn kv_v1(mut self, mount: impl Into<String>) -> Self {
        self.mounts
            .push((mount.into().trim_matches('/').to_owned(), 1));
        self
    }

    /// Adds a KV v2 mount.
    #[must_use]
    pub fn kv_v2(mut self, mount: impl Into<String>) -> Self {
        self.mounts
            .push((mount.into().trim_matches('/').to_owned(), 2));
        self
    }

    /// Starts serving on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When no port of 127.0.0.1 can be bound (a test-support type: failing loudly is the point).
    pub async fn start(self) -> VaultDouble {
        let mounts = self
            .mounts
            .into_iter()
            .map(|(m, v)| {
                (
                    m,
                    Mount {
                        version: v,
                        secrets: BTreeMap::new(),
                    },
                )
            })
            .collect();
        let state = Arc::new(VaultState {
            token: self.token,
            namespace: self.namespace,
            mounts: Mutex::new(mounts),
            sealed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            recorder: Recorder::default(),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Server::spawn(router)
            .await
            .expect("the Vault double could not bind 127.0.0.1");
        VaultDouble { server, state }
    }
}

struct VaultState {
    token: String,
    namespace: Option<String>,
    mounts: Mutex<HashMap<String, Mount>>,
    sealed: AtomicBool,
    requests: AtomicU64,
    recorder: Recorder,
}

struct Mount {
    version: u8,
    /// Versions of each secret, oldest first (v1 keeps only one).
    secrets: BTreeMap<String, Vec<Version>>,
}

#[derive(Clone)]
struct Version {
    data: Map<String, Value>,
    created: SystemTime,
    deleted: Option<SystemTime>,
}

impl VaultDouble {
    /// A double like `vault server -dev`: token `root`, KV v2 at `secret/`.
    pub async fn start() -> VaultDouble {
        Self::builder().start().await
    }

    /// Configures a double; with no mount added, it has KV v2 at `secret/`.
    pub fn builder() -> VaultDoubleBuilder {
        VaultDoubleBuilder {
            token: "root".to_owned(),
            namespace: None,
            mounts: vec![("secret".to_owned(), 2)],
        }
    }

    /// `http://127.0.0.1:<port>`, as `VAULT_ADDR` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Writes `data` (a JSON object) as the secret at `path` of `mount`: a new version on
    /// KV v2, a replacement on KV v1.
    ///
    /// # Panics
    /// When `mount` does not exist or `data` is not an object.
    pub fn put(&self, mount: &str, path: &str, data: Value) {
        let Value::Object(data) = data else {
            panic!("a Vault secret is a JSON object");
        };
        let mut mounts = self.state.lock();
        let m = mounts
            .get_mut(mount.trim_matches('/'))
            .unwrap_or_else(|| panic!("no mount {mount}"));
        write(m, path.trim_matches('/'), data);
    }

    /// Seals the server: every request but `sys/seal-status` answers `503`.
    pub fn seal(&self) {
        self.state.sealed.store(true, Ordering::SeqCst);
    }

    /// Unseals the server.
    pub fn unseal(&self) {
        self.state.sealed.store(false, Ordering::SeqCst);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.state.recorder.matching(prefix)
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
    }
}

fn write(m: &mut Mount, path: &str, data: Map<String, Value>) -> usize {
    let version = Version {
        data,
        created: SystemTime::now(),
        deleted: None,
    };
    let versions = m.secrets.entry(path.to_owned()).or_default();
    if m.version == 1 {
        versions.clear();
    }
    versions.push(version);
    versions.len()
}

impl VaultState {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Mount>> {
        self.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn envelope(&self, data: Value, lease_duration: u64, warnings: Option<Vec<&str>>) -> Value {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        json!({
            "request_id": format!("{:08x}-0000-4000-8000-{:012x}", n, n),
            "lease_id": "",
            "renewable": false,
            "lease_duration": lease_duration,
            "data": data,
            "wrap_info": Value::Null,
            "warnings": warnings,
            "auth": Value::Null,
            "mount_type": "kv",
        })
    }
}

fn errors(status: StatusCode, errors: &[&str]) -> Response {
    (status, axum::Json(json!({ "errors": errors }))).into_response()
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

async fn handle(
    State(state): State<Arc<VaultState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = state.recorder.record(&method, &uri, &headers, &body);
    let sealed = state.sealed.load(Ordering::SeqCst);
    match (method.clone(), r.path.as_str()) {
        (Method::GET, "/v1/sys/seal-status") => {
            return ok(json!({
                "type": "shamir", "initialized": true, "sealed": sealed, "t": 1, "n": 1,
                "progress": 0, "nonce": "", "version": "1.15.0-double", "migration": false,
                "recovery_seal": false, "storage_type": "inmem",
            }));
        }
        (Method::GET, "/v1/sys/health") => {
            let status = if sealed {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            return (
                status,
                axum::Json(json!({
                    "initialized": true, "sealed": sealed, "standby": false,
                    "performance_standby": false, "version": "1.15.0-double",
                })),
            )
                .into_response();
        }
        _ => {}
    }
    if sealed {
        return errors(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    let token = r.header("x-vault-token").or_else(|| {
        r.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    });
    if token != Some(state.token.as_str()) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    let namespace = r.header("x-vault-namespace").map(|n| n.trim_matches('/'));
    if namespace.filter(|n| !n.is_empty()) != state.namespace.as_deref() {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    let Some(rest) = r.path.strip_prefix("/v1/") else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    if let Some(path) = rest.strip_prefix("sys/internal/ui/mounts/") {
        return ui_mount(&state, path);
    }
    let rest = rest.trim_end_matches('/');
    let mut mounts = state.lock();
    let Some(mount_name) = mounts
        .keys()
        .filter(|m| rest == m.as_str() || rest.starts_with(&format!("{m}/")))
        .max_by_key(|m| m.len())
        .cloned()
    else {
        drop(mounts);
        let msg = format!("no handler for route \"{rest}\". route entry not found.");
        return errors(StatusCode::NOT_FOUND, &[msg.as_str()]);
    };
    let mount = mounts.get_mut(&mount_name).expect("found above");
    let sub = rest[mount_name.len()..].trim_start_matches('/').to_owned();
    if mount.version == 1 {
        return kv1(&state, mount, &method, &sub, &r);
    }
    match sub.strip_prefix("data/") {
        Some(path) => kv2(&state, mount, &method, path, &r),
        None => {
            drop(mounts);
            (
                StatusCode::NOT_FOUND,
                axum::Json(state.envelope(Value::Null, 0, Some(vec![INVALID_V2_PATH]))),
            )
                .into_response()
        }
    }
}

fn ui_mount(state: &VaultState, path: &str) -> Response {
    let mounts = state.lock();
    let found = mounts
        .iter()
        .filter(|(m, _)| path == m.as_str() || path.starts_with(&format!("{m}/")))
        .max_by_key(|(m, _)| m.len())
        .map(|(m, mount)| (m.clone(), mount.version));
    drop(mounts);
    // Vault answers "permission denied" so the endpoint cannot be used to list mounts.
    let Some((name, version)) = found else {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    };
    ok(state.envelope(
        json!({
            "accessor": format!("kv_{:08x}", name.len() * 2_654_435_761 % 0xffff_ffff),
            "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
            "description": "key/value secret storage",
            "external_entropy_access": false,
            "local": false,
            "options": {"version": version.to_string()},
            "path": format!("{name}/"),
            "seal_wrap": false,
            "type": "kv",
            "uuid": format!("00000000-0000-4000-8000-{:012x}", name.len()),
        }),
        0,
        None,
    ))
}

fn body_object(body: &[u8], wrapped: bool) -> Result<Map<String, Value>, &'static str> {
    let parsed: Value = serde_json::from_slice(body).map_err(|_| "error parsing JSON")?;
    let data = if wrapped {
        parsed.get("data").cloned().unwrap_or(Value::Null)
    } else {
        parsed
    };
    match data {
        Value::Object(m) => Ok(m),
        _ => Err("no data provided"),
    }
}

fn kv1(
    state: &VaultState,
    mount: &mut Mount,
    method: &Method,
    path: &str,
    r: &RecordedRequest,
) -> Response {
    match *method {
        Method::GET => match mount.secrets.get(path).and_then(|v| v.last()) {
            Some(v) => ok(state.envelope(Value::Object(v.data.clone()), KV1_LEASE_SECONDS, None)),
            None => errors(StatusCode::NOT_FOUND, &[]),
        },
        Method::POST | Method::PUT => match body_object(&r.body, false) {
            Ok(data) => {
                write(mount, path, data);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(why) => errors(StatusCode::BAD_REQUEST, &[why]),
        },
        Method::DELETE => {
            mount.secrets.remove(path);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
    }
}

fn metadata(v: &Version, number: usize) -> Value {
    json!({
        "created_time": rfc3339(v.created),
        "custom_metadata": Value::Null,
        "deletion_time": v.deleted.map(rfc3339).unwrap_or_default(),
        "destroyed": false,
        "version": number,
    })
}

fn kv2(
    state: &VaultState,
    mount: &mut Mount,
    method: &Method,
    path: &str,
    r: &RecordedRequest,
) -> Response {
    match *method {
        Method::GET => {
            let Some(versions) = mount.secrets.get(path) else {
                return errors(StatusCode::NOT_FOUND, &[]);
            };
            let wanted = r
                .query_param("version")
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|v| *v > 0)
                .unwrap_or(versions.len());
            let Some(v) = versions.get(wanted - 1) else {
                return errors(StatusCode::NOT_FOUND, &[]);
            };
            if v.deleted.is_some() {
                let body = state.envelope(
                    json!({"data": Value::Null, "metadata": metadata(v, wanted)}),
                    0,
                    None,
                );
                return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
            }
            ok(state.envelope(
                json!({"data": Value::Object(v.data.clone()), "metadata": metadata(v, wanted)}),
                0,
                None,
            ))
        }
        Method::POST | Method::PUT => match body_object(&r.body, true) {
            Ok(data) => {
                let n = write(mount, path, data);
                let v = &mount.secrets[path][n - 1];
                ok(state.envelope(metadata(v, n), 0, None))
            }
            Err(why) => errors(StatusCode::BAD_REQUEST, &[why]),
        },
        Method::DELETE => {
            if let Some(v) = mount.secrets.get_mut(path).and_then(|v| v.last_mut()) {
                v.deleted = Some(SystemTime::now());
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &["unsupported operation"]),
    }
}
