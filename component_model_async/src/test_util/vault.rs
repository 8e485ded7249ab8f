//! [`VaultDouble`]: Vault's KV v1/v2 secrets engines and the system endpoints they need.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::vault_auth::{AuthConfig, POLICY_DENIED, Policy, Tokens};
use super::{RecordedRequest, Recorder, Server, rfc3339};

/// KV v1 reports its default refresh interval (768h) as `lease_duration`.
const KV1_LEASE_SECONDS: u64 = 2_764_800;
/// Vault's answer to an operation a known path does not support (`405`), wrapped as its
/// multierror (OpenBao 2.7.2 answers exactly this).
const UNSUPPORTED: &str = "1 error occurred:\n\t* unsupported operation\n\n";
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
///   `POST`/`PUT` honour `options.cas` (`400 check-and-set parameter did not match the
///   current version`); `PATCH` (JSON merge patch of the latest version);
///   `GET`/`LIST`/`DELETE /v1/<mount>/metadata/<path>` (`current_version`, every version;
///   keys; the secret and all versions); `POST /v1/<mount>/delete|undelete|destroy/<path>`
///   with `{"versions": [..]}`; `GET /v1/<mount>/config`;
/// * KV v1 mounts: `GET /v1/<mount>/<path>` (`data` is the secret, `lease_duration`
///   2764800), `POST`/`PUT` (`204`), `DELETE` (`204`), `LIST` (or `GET ?list=true`);
/// * `GET /v1/auth/token/lookup-self`: the token's properties (the root token: no TTL, not
///   renewable; an issued token: `ttl` left, `creation_ttl`, `expire_time`, `renewable`,
///   `path`, `meta`, ...);
/// * `POST /v1/auth/approle/login` (`role_id`, `secret_id`) and
///   `POST /v1/auth/kubernetes/login` (`role`, `jwt`) for the roles of
///   [`VaultDoubleBuilder::approle`] and [`VaultDoubleBuilder::kubernetes`]: a service
///   token under `auth` (`client_token`, `accessor`, `policies`, `metadata`,
///   `lease_duration`, `renewable`, ...); a wrong secret id `400 invalid role or secret ID`,
///   a wrong JWT `403`, an unknown Kubernetes role `400 invalid role name` (see the
///   `vault_auth` module for the evidence);
/// * `POST`/`PUT /v1/auth/token/renew-self` (`increment` in seconds or as `"1h"`): the
///   token's TTL restarted, capped at [`VaultDoubleBuilder::token_max_ttl`] after its
///   creation with Vault's warning; `400 lease is not renewable` for a token that is not;
///   issued tokens ([`VaultDouble::issue_token`]) expire and can be revoked
///   ([`VaultDouble::revoke_token`], or `POST /v1/auth/token/revoke-self`: `204`), then
///   answer `403 permission denied`;
/// * policies, as far as reads go: a token of [`VaultDouble::issue_scoped_token`] or of a
///   login after [`VaultDoubleBuilder::login_policy`] reads only under its path prefixes,
///   and elsewhere gets `403` with Vault's multierror text
///   (`1 error occurred:\n\t* permission denied\n\n`); one without the `default` policy
///   gets that on `lookup-self`, `renew-self` and `revoke-self` too, and every issued
///   token on `lookup-self` after
///   [`VaultDoubleBuilder::default_policy_without_lookup_self`];
/// * an unsupported operation on a known path → `405` (`1 error occurred: … unsupported
///   operation`); an unknown path → `404` whose `errors` says `no handler for route` (a
///   missing secret's `404` has `"errors": []`); any `PATCH` without
///   `Content-Type: application/merge-patch+json` → `415` (`400 mime: no media type`
///   without a content type), before routing, as OpenBao answers;
/// * the namespace as `X-Vault-Namespace` or as the first segments of the path; a
///   namespace that does not exist → `404 namespace not found`; no namespace (the root
///   namespace, which has no mounts when [`VaultDoubleBuilder::namespace`] is set) → `404
///   no handler for route`;
/// * `POST`/`PUT /v1/sys/capabilities-self` with `{"paths": [...]}`: the token's
///   capabilities on each path, in `data` and at the top level as Vault answers (`root`
///   for the root token and [`VaultDouble::issue_token`] tokens; `list`, `read` under a
///   scoped token's prefixes, `deny` elsewhere); a token without the `default` policy gets
///   `403` with the multierror, a bad one `403 permission denied`;
/// * `GET /v1/sys/internal/ui/mounts/<path>`: the mount (`path`, `type: kv`,
///   `options.version`), `403` when no mount matches;
/// * `GET /v1/sys/seal-status`; `GET`/`HEAD /v1/sys/health` without a token (`503` when
///   sealed; `activecode`, `sealedcode`, ... choose the codes, as documented);
/// * missing secret → `404 {"errors": []}`; no route → `404 no handler for route`; a
///   missing or wrong `X-Vault-Token` (or `Authorization: Bearer`) → `403 permission
///   denied`; sealed ([`VaultDouble::seal`]) → `503 Vault is sealed`.
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
    auth: AuthConfig,
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

    /// An AppRole role (auth mount `approle`) whose login takes this role id and secret
    /// id; several calls add several roles.
    #[must_use]
    pub fn approle(mut self, role_id: impl Into<String>, secret_id: impl Into<String>) -> Self {
        self.auth.approles.push((role_id.into(), secret_id.into()));
        self
    }

    /// A Kubernetes auth role (auth mount `kubernetes`) that accepts this service-account
    /// JWT (the double does no token review: the JWT must be exactly this one).
    #[must_use]
    pub fn kubernetes(mut self, role: impl Into<String>, jwt: impl Into<String>) -> Self {
        self.auth.kubernetes.push((role.into(), jwt.into()));
        self
    }

    /// What the tokens logins issue may read: only paths (after `/v1/`) starting with one
    /// of `readable` (e.g. `secret/data/app/`); with `default_policy` false they also may
    /// not look themselves up, renew or revoke themselves (a role with
    /// `token_no_default_policy`). Default: everything, with the `default` policy.
    #[must_use]
    pub fn login_policy(mut self, readable: &[&str], default_policy: bool) -> Self {
        self.auth.policy = Policy {
            readable: Some(readable.iter().map(|p| (*p).to_owned()).collect()),
            default_policy,
        };
        self
    }

    /// The `default` policy edited so that it no longer allows `auth/token/lookup-self`
    /// (it still allows `renew-self` and `revoke-self`): issued tokens then get `403` with
    /// Vault's multierror text on `lookup-self`, though their policies list `default`.
    #[must_use]
    pub fn default_policy_without_lookup_self(mut self) -> Self {
        self.auth.default_lookup_self = false;
        self
    }

    /// The TTL of the tokens logins issue (default 768h, Vault's default).
    #[must_use]
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.auth.ttl = ttl;
        self
    }

    /// How long after its creation renewals may extend a token (default 768h); a
    /// renewal past it is capped, with Vault's warning.
    #[must_use]
    pub fn token_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.auth.max_ttl = max_ttl;
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
            auth: self.auth,
            tokens: Tokens::default(),
            token: self.token,
            namespace: self.namespace,
            mounts: Mutex::new(mounts),
            sealed: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            recorder: Recorder::default(),
            delays: Mutex::new(Vec::new()),
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
    auth: AuthConfig,
    tokens: Tokens,
    token: String,
    namespace: Option<String>,
    mounts: Mutex<HashMap<String, Mount>>,
    sealed: AtomicBool,
    requests: AtomicU64,
    recorder: Recorder,
    /// Path prefixes whose answers come late, and how late ([`VaultDouble::delay`]).
    delays: Mutex<Vec<(String, Duration)>>,
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
    destroyed: bool,
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
            auth: AuthConfig::default(),
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

    /// A service token that reads what the root token reads until `ttl` passes (or it is
    /// revoked), as `vault token create -ttl=.. [-renewable=false]` makes one; renewals
    /// are capped at [`VaultDoubleBuilder::token_max_ttl`] after its creation.
    pub fn issue_token(&self, ttl: Duration, renewable: bool) -> String {
        self.state.tokens.issue(
            ttl,
            self.state.auth.max_ttl,
            renewable,
            "auth/token/create",
            "token",
            Value::Null,
            Policy::default(),
        )
    }

    /// A service token that may read only paths (after `/v1/`) starting with one of
    /// `readable`, as `vault token create -policy=app [-no-default-policy]` makes one;
    /// without `default_policy` it may not look itself up, renew or revoke itself.
    pub fn issue_scoped_token(
        &self,
        ttl: Duration,
        readable: &[&str],
        default_policy: bool,
    ) -> String {
        self.state.tokens.issue(
            ttl,
            self.state.auth.max_ttl,
            true,
            "auth/token/create",
            "token",
            Value::Null,
            Policy {
                readable: Some(readable.iter().map(|p| (*p).to_owned()).collect()),
                default_policy,
            },
        )
    }

    /// Answers requests whose path starts with `prefix` (e.g. `/v1/auth/token/revoke-self`)
    /// `by` late, from now on (a slow server, for timeouts and for what waits on what).
    pub fn delay(&self, prefix: &str, by: Duration) {
        self.state
            .delays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((prefix.to_owned(), by));
    }

    /// Revokes an issued token: from now on it gets `403 permission denied`.
    pub fn revoke_token(&self, token: &str) {
        self.state.tokens.revoke(token);
    }

    /// Successful logins (AppRole and Kubernetes) so far.
    pub fn logins(&self) -> u64 {
        self.state.tokens.logins()
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
        destroyed: false,
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

    /// The envelope of a login or renewal: `data` null, the token under `auth`.
    fn auth_envelope(&self, auth: Value, warnings: Vec<String>) -> Value {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        json!({
            "request_id": format!("{:08x}-0000-4000-8000-{:012x}", n, n),
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": Value::Null,
            "wrap_info": Value::Null,
            "warnings": (!warnings.is_empty()).then_some(warnings),
            "auth": auth,
            "mount_type": "",
        })
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
    let delay = state
        .delays
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(prefix, _)| r.path.starts_with(prefix.as_str()))
        .map(|(_, by)| *by)
        .max();
    if let Some(by) = delay {
        tokio::time::sleep(by).await;
    }
    let sealed = state.sealed.load(Ordering::SeqCst);
    match (method.clone(), r.path.as_str()) {
        (Method::GET, "/v1/sys/seal-status") => {
            return ok(json!({
                "type": "shamir", "initialized": true, "sealed": sealed, "t": 1, "n": 1,
                "progress": 0, "nonce": "", "version": "1.15.0-double", "migration": false,
                "recovery_seal": false, "storage_type": "inmem",
            }));
        }
        (Method::GET | Method::HEAD, "/v1/sys/health") => return health(&r, sealed, &method),
        _ => {}
    }
    if sealed {
        return errors(StatusCode::SERVICE_UNAVAILABLE, &["Vault is sealed"]);
    }
    // Logins need no token.
    let auth_envelope = |auth: Value, warnings: Vec<String>| state.auth_envelope(auth, warnings);
    match (&method, r.path.as_str()) {
        (&Method::POST | &Method::PUT, "/v1/auth/approle/login") => {
            return state
                .tokens
                .approle_login(&state.auth, &r.body, auth_envelope);
        }
        (&Method::POST | &Method::PUT, "/v1/auth/kubernetes/login") => {
            return state
                .tokens
                .kubernetes_login(&state.auth, &r.body, auth_envelope);
        }
        _ => {}
    }
    let token = r.header("x-vault-token").or_else(|| {
        r.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
    });
    let root = token == Some(state.token.as_str());
    if !root && !token.is_some_and(|t| state.tokens.valid(t)) {
        return errors(StatusCode::FORBIDDEN, &["permission denied"]);
    }
    // The token endpoints of an issued token.
    if !root && let Some(token) = token {
        let own = r.path.trim_start_matches("/v1/");
        if own.starts_with("auth/token/") && !state.tokens.allows(&state.auth, token, own) {
            return errors(StatusCode::FORBIDDEN, &[POLICY_DENIED]);
        }
        match (&method, r.path.as_str()) {
            (&Method::POST | &Method::PUT, "/v1/auth/token/revoke-self") => {
                state.tokens.revoke(token);
                return StatusCode::NO_CONTENT.into_response();
            }
            (&Method::GET, "/v1/auth/token/lookup-self") => {
                if let Some(data) = state.tokens.lookup(token) {
                    return ok(state.envelope(data, 0, None));
                }
            }
            (&Method::POST | &Method::PUT, "/v1/auth/token/renew-self") => {
                if let Some(answer) = state.tokens.renew(token, &r.body, auth_envelope) {
                    return answer;
                }
            }
            _ => {}
        }
    }
    if root && r.path == "/v1/auth/token/renew-self" && matches!(method, Method::POST | Method::PUT)
    {
        return errors(StatusCode::BAD_REQUEST, &["lease is not renewable"]);
    }
    // OpenBao checks a PATCH's content type before routing it.
    if method == Method::PATCH {
        match r.header("content-type") {
            None => return errors(StatusCode::BAD_REQUEST, &["mime: no media type"]),
            Some(c) if !c.starts_with("application/merge-patch+json") => {
                let msg = format!(
                    "PATCH requires Content-Type of application/merge-patch+json, provided {}",
                    c.split(';').next().unwrap_or(c).trim()
                );
                return errors(StatusCode::UNSUPPORTED_MEDIA_TYPE, &[msg.as_str()]);
            }
            Some(_) => {}
        }
    }
    let Some(mut rest) = r.path.strip_prefix("/v1/") else {
        return errors(StatusCode::NOT_FOUND, &[]);
    };
    // The namespace comes from `X-Vault-Namespace`, or as a prefix of the path ("the
    // namespace can be provided in the header or as part of the request path"), or both,
    // header first.
    let header_ns = r
        .header("x-vault-namespace")
        .map(|n| n.trim_matches('/'))
        .filter(|n| !n.is_empty());
    let mut namespace = header_ns.map(str::to_owned);
    if let Some(expected) = state.namespace.as_deref()
        && namespace.as_deref() != Some(expected)
    {
        let needed = match header_ns {
            Some(h) => expected.strip_prefix(h).and_then(|p| p.strip_prefix('/')),
            None => Some(expected),
        };
        if let Some(tail) = needed
            .and_then(|n| rest.strip_prefix(n))
            .and_then(|r| r.strip_prefix('/'))
        {
            rest = tail;
            namespace = Some(expected.to_owned());
        }
    }
    if namespace.as_deref() != state.namespace.as_deref() {
        // OpenBao: an unknown namespace is `404 namespace not found`; the root namespace
        // (no header) has none of the double's mounts.
        if namespace.is_some() {
            return errors(StatusCode::NOT_FOUND, &["namespace not found"]);
        }
        let msg = format!("no handler for route \"{rest}\". route entry not found.");
        return errors(StatusCode::NOT_FOUND, &[msg.as_str()]);
    }
    if !root && token.is_some_and(|t| !state.tokens.allows(&state.auth, t, rest)) {
        return errors(StatusCode::FORBIDDEN, &[POLICY_DENIED]);
    }
    if let Some(path) = rest.strip_prefix("sys/internal/ui/mounts/") {
        return ui_mount(&state, path);
    }
    if rest == "sys/capabilities-self" {
        return match method {
            Method::POST | Method::PUT => {
                let token = token.unwrap_or_default();
                capabilities_self(&state, &r.body, |path| {
                    if root {
                        vec!["root"]
                    } else {
                        state.tokens.capabilities(token, path)
                    }
                })
            }
            _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
        };
    }
    if rest == "auth/token/lookup-self" {
        return match method {
            Method::GET => lookup_self(&state),
            _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
        };
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
    let (endpoint, path) = match sub.split_once('/') {
        Some((e, p)) => (e, p),
        None => (sub.as_str(), ""),
    };
    match endpoint {
        "data" => kv2(&state, mount, &method, path, &r),
        "metadata" => kv2_metadata(&state, mount, &method, path, &r),
        "delete" | "undelete" | "destroy" => kv2_versions(mount, &method, endpoint, path, &r),
        "config" if path.is_empty() => match method {
            Method::GET => ok(state.envelope(
                json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0}),
                0,
                None,
            )),
            _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
        },
        _ => {
            drop(mounts);
            (
                StatusCode::NOT_FOUND,
                axum::Json(state.envelope(Value::Null, 0, Some(vec![INVALID_V2_PATH]))),
            )
                .into_response()
        }
    }
}

/// `sys/health`: no token needed; `HEAD` answers the status alone; the documented
/// query parameters choose the codes (`activecode` 200, `sealedcode` 503, `standbycode`
/// 429, `uninitcode` 501, ...). The double is always initialized and active.
fn health(r: &RecordedRequest, sealed: bool, method: &Method) -> Response {
    let code = |param: &str, default: u16| {
        r.query_param(param)
            .and_then(|c| c.parse::<u16>().ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or_else(|| StatusCode::from_u16(default).unwrap_or(StatusCode::OK))
    };
    let status = if sealed {
        code("sealedcode", 503)
    } else {
        code("activecode", 200)
    };
    if *method == Method::HEAD {
        return status.into_response();
    }
    (
        status,
        axum::Json(json!({
            "initialized": true, "sealed": sealed, "standby": false,
            "performance_standby": false, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "version": "1.15.0-double", "cluster_name": "vault-double",
            "cluster_id": "00000000-0000-4000-8000-000000000000",
        })),
    )
        .into_response()
}

/// `GET auth/token/lookup-self` (Token auth method API, "Lookup a token (Self)"): the
/// calling token's properties — a root token: policies `["root"]`, no TTL, not renewable.
/// hvac's `is_authenticated()` is this call.
fn lookup_self(state: &VaultState) -> Response {
    ok(state.envelope(
        json!({
            "accessor": "5a5e5ca7-0000-4000-8000-00000000a11c",
            "creation_time": 1_700_000_000u64,
            "creation_ttl": 0,
            "display_name": "token",
            "entity_id": "",
            "expire_time": Value::Null,
            "explicit_max_ttl": 0,
            "id": "[redacted by the double]",
            "meta": Value::Null,
            "num_uses": 0,
            "orphan": true,
            "path": "auth/token/root",
            "policies": ["root"],
            "renewable": false,
            "ttl": 0,
            "type": "service",
        }),
        0,
        None,
    ))
}

/// `POST sys/capabilities-self` (System backend API, "/sys/capabilities-self"): for each
/// of `paths` (or the deprecated `path`, a string or a list) the calling token's
/// capabilities there, in `data` and — as Vault and OpenBao answer — at the top level of
/// the answer too; with one path, also as `capabilities`. No path: `400 paths must be
/// supplied`.
fn capabilities_self(
    state: &VaultState,
    body: &[u8],
    caps: impl Fn(&str) -> Vec<&'static str>,
) -> Response {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => s.split(',').map(str::to_owned).collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut paths = list(&parsed["paths"]);
    if paths.is_empty() {
        paths = list(&parsed["path"]);
    }
    paths.retain(|p| !p.is_empty());
    if paths.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &["paths must be supplied"]);
    }
    let mut data = Map::new();
    for p in &paths {
        data.insert(p.clone(), json!(caps(p.trim_start_matches('/'))));
    }
    if paths.len() == 1 {
        data.insert("capabilities".to_owned(), data[&paths[0]].clone());
    }
    let mut answer = state.envelope(Value::Object(data.clone()), 0, None);
    if let Value::Object(top) = &mut answer {
        top.remove("mount_type");
        for (k, v) in data {
            top.insert(k, v);
        }
    }
    ok(answer)
}

/// Whether a request lists keys: Vault's `LIST` method, or `GET` with `?list=true` (the
/// API overview: "LIST ... can also be invoked with GET and the `list=true` parameter").
fn is_list(method: &Method, r: &RecordedRequest) -> bool {
    method.as_str() == "LIST" || (*method == Method::GET && r.query_param("list") == Some("true"))
}

/// The keys directly under `prefix` (folders end in `/`), or a 404 when there are none.
fn list<'a>(state: &VaultState, keys: impl Iterator<Item = &'a String>, prefix: &str) -> Response {
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_owned()
    } else {
        format!("{prefix}/")
    };
    let mut names: Vec<String> = Vec::new();
    for k in keys {
        let Some(rest) = k.strip_prefix(prefix.as_str()) else {
            continue;
        };
        let name = match rest.find('/') {
            Some(i) => rest[..=i].to_owned(),
            None => rest.to_owned(),
        };
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return errors(StatusCode::NOT_FOUND, &[]);
    }
    names.sort();
    ok(state.envelope(json!({ "keys": names }), 0, None))
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
    if is_list(method, r) {
        return list(state, mount.secrets.keys(), path);
    }
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
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
    }
}

/// `options.cas` of a KV v2 write: allowed only when it equals the current version (0: the
/// secret must not exist yet); otherwise Vault's 400.
fn cas_refusal(mount: &Mount, path: &str, r: &RecordedRequest) -> Option<Response> {
    let current = mount.secrets.get(path).map_or(0, Vec::len);
    let cas = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|b| b["options"]["cas"].as_u64())?;
    (cas as usize != current).then(|| {
        errors(
            StatusCode::BAD_REQUEST,
            &["check-and-set parameter did not match the current version"],
        )
    })
}

/// RFC 7386 JSON merge patch: objects merge recursively, `null` removes, anything else
/// replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in patch {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge_patch(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

fn metadata(v: &Version, number: usize) -> Value {
    json!({
        "created_time": rfc3339(v.created),
        "custom_metadata": Value::Null,
        "deletion_time": v.deleted.map(rfc3339).unwrap_or_default(),
        "destroyed": v.destroyed,
        "version": number,
    })
}

/// `<mount>/metadata/<path>`: `GET` (every version and `current_version`), `LIST` (keys),
/// `DELETE` (the secret and all its versions).
fn kv2_metadata(
    state: &VaultState,
    mount: &mut Mount,
    method: &Method,
    path: &str,
    r: &RecordedRequest,
) -> Response {
    if is_list(method, r) {
        return list(state, mount.secrets.keys(), path);
    }
    match *method {
        Method::GET => {
            let Some(versions) = mount.secrets.get(path) else {
                return errors(StatusCode::NOT_FOUND, &[]);
            };
            let all: Map<String, Value> = versions
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (
                        (i + 1).to_string(),
                        json!({
                            "created_time": rfc3339(v.created),
                            "deletion_time": v.deleted.map(rfc3339).unwrap_or_default(),
                            "destroyed": v.destroyed,
                        }),
                    )
                })
                .collect();
            let first = versions
                .first()
                .map(|v| rfc3339(v.created))
                .unwrap_or_default();
            let last = versions
                .last()
                .map(|v| rfc3339(v.created))
                .unwrap_or_default();
            ok(state.envelope(
                json!({
                    "cas_required": false,
                    "created_time": first,
                    "current_version": versions.len(),
                    "custom_metadata": Value::Null,
                    "delete_version_after": "0s",
                    "max_versions": 0,
                    "oldest_version": 0,
                    "updated_time": last,
                    "versions": all,
                }),
                0,
                None,
            ))
        }
        Method::DELETE => {
            mount.secrets.remove(path);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
    }
}

/// `<mount>/delete|undelete|destroy/<path>` with `{"versions": [..]}`: soft-delete,
/// restore, or permanently remove the data of those versions.
fn kv2_versions(
    mount: &mut Mount,
    method: &Method,
    endpoint: &str,
    path: &str,
    r: &RecordedRequest,
) -> Response {
    if !matches!(*method, Method::POST | Method::PUT) {
        return errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]);
    }
    let wanted: Vec<usize> = serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|b| b["versions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_u64().map(|v| v as usize))
        .collect();
    if wanted.is_empty() {
        return errors(StatusCode::BAD_REQUEST, &["no version number provided"]);
    }
    if let Some(versions) = mount.secrets.get_mut(path) {
        for n in wanted {
            let Some(v) = n.checked_sub(1).and_then(|i| versions.get_mut(i)) else {
                continue;
            };
            match endpoint {
                "delete" => v.deleted = Some(SystemTime::now()),
                "undelete" if !v.destroyed => v.deleted = None,
                "destroy" => {
                    v.destroyed = true;
                    v.data.clear();
                }
                _ => {}
            }
        }
    }
    StatusCode::NO_CONTENT.into_response()
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
            if v.deleted.is_some() || v.destroyed {
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
                // `options.cas`: write only when it equals the current version; 0 only
                // when the secret does not exist yet (KV v2 API, "Create/Update Secret").
                if let Some(refused) = cas_refusal(mount, path, r) {
                    return refused;
                }
                let n = write(mount, path, data);
                let v = &mount.secrets[path][n - 1];
                ok(state.envelope(metadata(v, n), 0, None))
            }
            Err(why) => errors(StatusCode::BAD_REQUEST, &[why]),
        },
        // JSON merge patch of the latest version (`application/merge-patch+json`).
        // "Patch Secret" (KV v2 API): `Content-Type: application/merge-patch+json` (else
        // 415), a JSON merge patch (RFC 7386) of the latest live version, `options.cas`.
        Method::PATCH => {
            if r.header("content-type")
                .is_none_or(|c| !c.starts_with("application/merge-patch+json"))
            {
                return errors(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    &["PATCH requires Content-Type of application/merge-patch+json"],
                );
            }
            let Some(latest) = mount
                .secrets
                .get(path)
                .and_then(|v| v.last())
                .filter(|v| v.deleted.is_none() && !v.destroyed)
            else {
                return errors(StatusCode::NOT_FOUND, &[]);
            };
            if let Some(refused) = cas_refusal(mount, path, r) {
                return refused;
            }
            let patch = match body_object(&r.body, true) {
                Ok(p) => p,
                Err(why) => return errors(StatusCode::BAD_REQUEST, &[why]),
            };
            let mut merged = Value::Object(latest.data.clone());
            merge_patch(&mut merged, Value::Object(patch));
            let Value::Object(data) = merged else {
                return errors(StatusCode::BAD_REQUEST, &["no data provided"]);
            };
            let n = write(mount, path, data);
            let v = &mount.secrets[path][n - 1];
            ok(state.envelope(metadata(v, n), 0, None))
        }
        Method::DELETE => {
            if let Some(v) = mount.secrets.get_mut(path).and_then(|v| v.last_mut()) {
                v.deleted = Some(SystemTime::now());
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, &[UNSUPPORTED]),
    }
}
