//! An API double of Azure Key Vault's secrets (REST API, `api-version` 7.0 to 2026-04-01)
//! and of the Microsoft Entra ID and managed identity token endpoints, for tests.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{RecordedRequest, Recorder, Server};

/// The API versions the double answers (those of azure-keyvault-secrets 4.12).
const API_VERSIONS: &[&str] = &[
    "2016-10-01",
    "7.0",
    "7.1",
    "7.2",
    "7.3",
    "7.4",
    "7.5",
    "7.6",
    "2025-07-01",
    "2026-04-01",
];

/// An API double of **Azure Key Vault** (secrets) on `127.0.0.1`, following the Key Vault
/// REST reference, with the token endpoints its clients use:
///
/// * `GET /secrets/{name}[/{version}]`, `GET /secrets/{name}/versions` (paged:
///   `maxresults`, `nextLink`), `PUT /secrets/{name}` (a new version: what the SDK's
///   `set_secret` sends), `PATCH /secrets/{name}/{version}` (`enabled`, `contentType`,
///   `tags`), `DELETE /secrets/{name}` (soft delete: a `DeletedSecretBundle`) and
///   `GET /deletedsecrets/{name}`; `api-version` required (400 `BadParameter` when missing
///   or not one of 7.0–2026-04-01); a disabled version answers 403 `Forbidden`
///   (`SecretDisabled`), a missing one 404 `SecretNotFound`, with Key Vault's messages.
/// * Every vault request without a valid `Authorization: Bearer` token gets Key Vault's
///   challenge: 401, `WWW-Authenticate: Bearer
///   authorization="https://login.microsoftonline.com/{tenant}", resource="https://{parent
///   domain}"`, the parent domain being the request's `Host` without its first label and
///   with its port (`127.0.0.1:8443` → `https://0.0.1:8443`): what the SDK's resource
///   check (`verify_challenge_resource`) accepts, as `vault.azure.net` for
///   `myvault.vault.azure.net`.
/// * `POST /{tenant}/oauth2/v2.0/token` (Entra ID, client credentials: the client secret,
///   or the federated token as `client_assertion`), `GET /msi/token` (App Service,
///   `X-IDENTITY-HEADER`) and `GET /metadata/identity/oauth2/token` (IMDS, `Metadata:
///   true`): tokens it then accepts, for [`token_ttl`](AzureKeyVaultDoubleBuilder::token_ttl).
///
/// Ids and `nextLink`s are `https://{Host}/...`, as Key Vault's: put the double behind a
/// TLS front (the SDKs send bearer tokens over HTTPS only).
///
/// ```
/// use component_model_async::test_util::AzureKeyVaultDouble;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let kv = AzureKeyVaultDouble::start().await;
/// let v1 = kv.set_secret("db-password", "one");
/// let v2 = kv.set_secret("db-password", "two");
/// assert_ne!(v1, v2);
/// assert_eq!(kv.versions("db-password"), vec![v1, v2]);
/// kv.disable("db-password");
/// assert_eq!(kv.token_requests(), 0);
/// # });
/// ```
pub struct AzureKeyVaultDouble {
    server: Server,
    state: Arc<KvState>,
}

impl std::fmt::Debug for AzureKeyVaultDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKeyVaultDouble")
            .field("address", &self.server.addr)
            .field("tenant", &self.state.config.tenant)
            .finish_non_exhaustive()
    }
}

/// Configures an [`AzureKeyVaultDouble`].
#[derive(Clone)]
pub struct AzureKeyVaultDoubleBuilder {
    config: Config,
}

#[derive(Clone)]
struct Config {
    tenant: String,
    client_id: String,
    client_secret: String,
    federated_token: String,
    identity_header: String,
    token_ttl: Duration,
    resource: Option<String>,
    static_tokens: Vec<String>,
}

impl AzureKeyVaultDoubleBuilder {
    /// The tenant (default `72f988bf-86f1-41af-91ab-2d7cd011db47`).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.config.tenant = tenant.into();
        self
    }

    /// The app registration's client id and secret the token endpoint accepts (default
    /// `kv-app` / `kv-app-secret`).
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self.config.client_secret = secret.into();
        self
    }

    /// The federated token (workload identity) accepted as `client_assertion`.
    pub fn federated_token(mut self, token: impl Into<String>) -> Self {
        self.config.federated_token = token.into();
        self
    }

    /// The `X-IDENTITY-HEADER` App Service's endpoint requires.
    pub fn identity_header(mut self, header: impl Into<String>) -> Self {
        self.config.identity_header = header.into();
        self
    }

    /// How long issued tokens are valid (default 1 h; whole seconds, at least 1).
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.config.token_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// The challenge's `resource` instead of the request host's parent domain (a
    /// challenge a client must refuse, say).
    pub fn challenge_resource(mut self, resource: impl Into<String>) -> Self {
        self.config.resource = Some(resource.into());
        self
    }

    /// A bearer token the vault accepts without it being issued (a test's stub
    /// credential, as the conformance script's `AccessToken("stub-token", ...)`).
    pub fn accept_token(mut self, token: impl Into<String>) -> Self {
        self.config.static_tokens.push(token.into());
        self
    }

    /// Starts the double on a free port of 127.0.0.1.
    pub async fn start(self) -> AzureKeyVaultDouble {
        let state = Arc::new(KvState {
            config: self.config,
            secrets: Mutex::default(),
            deleted: Mutex::default(),
            tokens: Mutex::default(),
            token_requests: AtomicU64::new(0),
            challenges: AtomicU64::new(0),
            counter: AtomicU64::new(0),
            resource_now: Mutex::default(),
            deny_list: std::sync::atomic::AtomicBool::new(false),
            recorder: Recorder::default(),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Server::spawn(router)
            .await
            .expect("the Key Vault double could not bind 127.0.0.1");
        AzureKeyVaultDouble { server, state }
    }
}

struct KvState {
    config: Config,
    secrets: Mutex<BTreeMap<String, Vec<Version>>>,
    deleted: Mutex<BTreeMap<String, (Vec<Version>, u64)>>,
    tokens: Mutex<HashMap<String, Instant>>,
    token_requests: AtomicU64,
    challenges: AtomicU64,
    counter: AtomicU64,
    /// The challenge's resource from now on (`set_challenge_resource`).
    resource_now: Mutex<Option<String>>,
    /// Whether listing versions is refused (`deny_list`).
    deny_list: std::sync::atomic::AtomicBool,
    recorder: Recorder,
}

#[derive(Clone)]
struct Version {
    id: String,
    value: String,
    enabled: bool,
    created: u64,
    updated: u64,
    content_type: Option<String>,
    tags: Value,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl AzureKeyVaultDouble {
    /// A double with the default tenant, client and secret.
    pub async fn start() -> AzureKeyVaultDouble {
        Self::builder().start().await
    }

    /// Configures a double.
    pub fn builder() -> AzureKeyVaultDoubleBuilder {
        AzureKeyVaultDoubleBuilder {
            config: Config {
                tenant: "72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned(),
                client_id: "kv-app".to_owned(),
                client_secret: "kv-app-secret".to_owned(),
                federated_token: "federated.jwt.token".to_owned(),
                identity_header: "identity-header".to_owned(),
                token_ttl: Duration::from_secs(3600),
                resource: None,
                static_tokens: Vec::new(),
            },
        }
    }

    /// `http://127.0.0.1:<port>`: the vault URL, the authority host
    /// (`AZURE_AUTHORITY_HOST`) and the IMDS host (`AZURE_POD_IDENTITY_AUTHORITY_HOST`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The address it listens on (for a TLS front).
    pub fn address(&self) -> SocketAddr {
        self.server.addr
    }

    /// App Service's `IDENTITY_ENDPOINT` on this double: `http://127.0.0.1:<port>/msi/token`.
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.url())
    }

    /// The tenant.
    pub fn tenant(&self) -> String {
        self.state.config.tenant.clone()
    }

    /// The client id the token endpoint accepts.
    pub fn client_id(&self) -> String {
        self.state.config.client_id.clone()
    }

    /// The client secret the token endpoint accepts.
    pub fn client_secret(&self) -> String {
        self.state.config.client_secret.clone()
    }

    /// The federated token accepted as a client assertion.
    pub fn federated_token(&self) -> String {
        self.state.config.federated_token.clone()
    }

    /// The `X-IDENTITY-HEADER` App Service's endpoint requires.
    pub fn identity_header(&self) -> String {
        self.state.config.identity_header.clone()
    }

    /// Sets `name` to `value`: a new, enabled version, whose id is returned.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        self.state
            .put(name, value.to_owned(), true, None, json!({}))
    }

    /// Disables the current version of `name` (reading it answers 403).
    pub fn disable(&self, name: &str) {
        self.state.set_enabled(name, None, false);
    }

    /// Enables or disables one version of `name`.
    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        self.state.set_enabled(name, Some(version), enabled);
    }

    /// The version ids of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.state
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|v| v.iter().map(|v| v.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Deletes `name` (with its versions) for good.
    pub fn remove(&self, name: &str) {
        self.state
            .secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// The challenge's `resource` from now on (as `challenge_resource` at start): a vault
    /// whose refusal names another resource, say.
    pub fn set_challenge_resource(&self, resource: impl Into<String>) {
        *self
            .state
            .resource_now
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(resource.into());
    }

    /// Refuses (`true`) or allows listing secret versions, as a vault whose access policy
    /// grants `get` but not `list`: 403 `Forbidden` / `AccessDenied`, while reads work.
    pub fn deny_list(&self, deny: bool) {
        self.state.deny_list.store(deny, Ordering::SeqCst);
    }

    /// Invalidates every issued token (the next vault request gets a 401).
    pub fn revoke_tokens(&self) {
        self.state
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Token requests answered (with a token or an error), at any of the three token
    /// endpoints.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// 401 challenges answered.
    pub fn challenges(&self) -> u64 {
        self.state.challenges.load(Ordering::SeqCst)
    }

    /// Every request received, in order (tokens redacted from `Debug`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<RecordedRequest> {
        self.state.recorder.matching(prefix)
    }

    /// Forgets the recorded requests and the counters.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
        self.state.token_requests.store(0, Ordering::SeqCst);
        self.state.challenges.store(0, Ordering::SeqCst);
    }
}

impl KvState {
    fn new_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let salt = now() ^ (self as *const Self as u64);
        format!(
            "{:016x}{:016x}",
            salt.rotate_left(17) ^ 0x5a5a_1234_9876_fedc,
            n
        )
    }

    fn put(
        &self,
        name: &str,
        value: String,
        enabled: bool,
        content_type: Option<String>,
        tags: Value,
    ) -> String {
        let id = self.new_id();
        let t = now();
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .push(Version {
                id: id.clone(),
                value,
                enabled,
                created: t,
                updated: t,
                content_type,
                tags,
            });
        id
    }

    fn set_enabled(&self, name: &str, version: Option<&str>, enabled: bool) {
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(versions) = secrets.get_mut(name) {
            let v = match version {
                Some(id) => versions.iter_mut().find(|v| v.id == id),
                None => versions.last_mut(),
            };
            if let Some(v) = v {
                v.enabled = enabled;
                v.updated = now();
            }
        }
    }

    fn issue_token(&self) -> (String, u64) {
        let token = format!("kv-token-{}", self.new_id());
        let ttl = self.config.token_ttl;
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), Instant::now() + ttl);
        (token, ttl.as_secs().max(1))
    }

    fn valid_token(&self, header: Option<&str>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        if self.config.static_tokens.iter().any(|t| t == token) {
            return true;
        }
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .is_some_and(|exp| Instant::now() < *exp)
    }
}

fn kv_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn kv_error_inner(status: StatusCode, code: &str, message: &str, inner: &str) -> Response {
    (
        status,
        axum::Json(
            json!({"error": {"code": code, "message": message, "innererror": {"code": inner}}}),
        ),
    )
        .into_response()
}

fn aad_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description, "error_codes": [], "timestamp": "", "trace_id": "", "correlation_id": ""})),
    )
        .into_response()
}

fn not_found(name: &str) -> Response {
    kv_error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        &format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

async fn handle(
    State(state): State<Arc<KvState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = state.recorder.record(&method, &uri, &headers, &body);
    let path = r.path.clone();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // The token endpoints.
    if method == Method::POST && segments.len() == 4 && segments[1..] == ["oauth2", "v2.0", "token"]
    {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        return entra_token(&state, segments[0], &r);
    }
    if method == Method::GET && path == "/msi/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        if r.header("x-identity-header") != Some(state.config.identity_header.as_str()) {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                "The X-IDENTITY-HEADER is missing or wrong.",
            );
        }
        if r.query_param("api-version") != Some("2019-08-01") {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "api-version 2019-08-01 is required.",
            );
        }
        return identity_token(&state, &r, true);
    }
    if method == Method::GET && path == "/metadata/identity/oauth2/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        if r.header("metadata") != Some("true") {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Required metadata header not specified",
            );
        }
        if r.query_param("api-version").is_none() {
            return aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Required query variable 'api-version' is missing",
            );
        }
        return identity_token(&state, &r, false);
    }
    let host = r.header("host").unwrap_or("127.0.0.1").to_owned();
    // The vault.
    match r.query_param("api-version") {
        None => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The 'api-version' query parameter is missing.",
            );
        }
        Some(v) if !API_VERSIONS.contains(&v) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                &format!(
                    "The specified version ({v}) is not recognized. Consider using the latest supported version (2026-04-01)."
                ),
            );
        }
        Some(_) => {}
    }
    if !state.valid_token(r.header("authorization")) {
        state.challenges.fetch_add(1, Ordering::SeqCst);
        let now = state
            .resource_now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let resource = now
            .or_else(|| state.config.resource.clone())
            .unwrap_or_else(|| {
                let parent = host.split_once('.').map(|(_, rest)| rest).unwrap_or(&host);
                format!("https://{parent}")
            });
        let challenge = format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{resource}\"",
            state.config.tenant
        );
        let missing = r.header("authorization").is_none();
        let mut response = kv_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            if missing {
                "AKV10000: Request is missing a Bearer or PoP token."
            } else {
                "AKV10032: Invalid issuer. The token is not valid for this vault or has expired."
            },
        );
        if let Ok(v) = challenge.parse() {
            response.headers_mut().insert("www-authenticate", v);
        }
        return response;
    }
    let base = format!("https://{host}");
    match (&method, segments.as_slice()) {
        (&Method::GET, ["secrets", name]) => get_secret(&state, &base, name, None),
        (&Method::GET, ["secrets", name, "versions"]) => list_versions(&state, &base, name, &r),
        (&Method::GET, ["secrets", name, version]) => {
            get_secret(&state, &base, name, Some(version))
        }
        (&Method::PUT, ["secrets", name]) => set_secret(&state, &base, name, &r.body),
        (&Method::PATCH, ["secrets", name, version]) => {
            update_secret(&state, &base, name, version, &r.body)
        }
        (&Method::DELETE, ["secrets", name]) => delete_secret(&state, &base, name),
        (&Method::GET, ["deletedsecrets", name]) => get_deleted(&state, &base, name),
        (_, ["secrets", ..] | ["deletedsecrets", ..]) => kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The requested resource does not support http method '{method}'."),
        ),
        _ => kv_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested path is not a Key Vault resource.",
        ),
    }
}

fn entra_token(state: &KvState, tenant: &str, r: &RecordedRequest) -> Response {
    if tenant != state.config.tenant {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&r.body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str);
    if get("grant_type") != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if get("client_id") != Some(state.config.client_id.as_str()) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory.",
                get("client_id").unwrap_or("")
            ),
        );
    }
    let by_secret = get("client_secret") == Some(state.config.client_secret.as_str());
    let by_assertion = get("client_assertion_type")
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && get("client_assertion") == Some(state.config.federated_token.as_str());
    if !by_secret && !by_assertion {
        return if get("client_assertion").is_some() {
            aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS700211: No matching federated identity record found for presented assertion.",
            )
        } else {
            aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )
        };
    }
    if !get("scope").is_some_and(|s| s.ends_with("/.default")) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    }
    let (token, ttl) = state.issue_token();
    axum::Json(json!({"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": token})).into_response()
}

fn identity_token(state: &KvState, r: &RecordedRequest, app_service: bool) -> Response {
    let Some(resource) = r.query_param("resource").map(str::to_owned) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let (token, ttl) = state.issue_token();
    let expires_on = (now() + ttl).to_string();
    if app_service {
        axum::Json(json!({"access_token": token, "expires_on": expires_on, "resource": resource, "token_type": "Bearer", "client_id": r.query_param("client_id").unwrap_or("system-assigned")})).into_response()
    } else {
        axum::Json(json!({"access_token": token, "refresh_token": "", "expires_in": ttl.to_string(), "expires_on": expires_on, "not_before": now().to_string(), "resource": resource, "token_type": "Bearer"})).into_response()
    }
}

fn attributes(v: &Version) -> Value {
    json!({"enabled": v.enabled, "created": v.created, "updated": v.updated, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90})
}

fn bundle(base: &str, name: &str, v: &Version, with_value: bool) -> Value {
    let mut b = json!({
        "id": format!("{base}/secrets/{name}/{}", v.id),
        "attributes": attributes(v),
        "tags": v.tags,
    });
    if with_value {
        b["value"] = json!(v.value);
    }
    if let Some(ct) = &v.content_type {
        b["contentType"] = json!(ct);
    }
    b
}

fn get_secret(state: &KvState, base: &str, name: &str, version: Option<&str>) -> Response {
    let secrets = state.secrets.lock().unwrap_or_else(PoisonError::into_inner);
    let version = version.filter(|v| !v.is_empty());
    let found = secrets.get(name).and_then(|versions| match version {
        Some(id) => versions.iter().find(|v| v.id == id),
        None => versions.last(),
    });
    let Some(v) = found else {
        return not_found(&match version {
            Some(id) => format!("{name}/{id}"),
            None => name.to_owned(),
        });
    };
    if !v.enabled {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": {"code": "Forbidden", "message": "Operation get is not allowed on a disabled secret.", "innererror": {"code": "SecretDisabled"}}})),
        )
            .into_response();
    }
    axum::Json(bundle(base, name, v, true)).into_response()
}

fn list_versions(state: &KvState, base: &str, name: &str, r: &RecordedRequest) -> Response {
    if state.deny_list.load(Ordering::SeqCst) {
        return kv_error_inner(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "The user, group or application 'appid={};oid=00000000-0000-0000-0000-000000000000' does not have secrets list permission on key vault 'double;location=local'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                state.config.client_id
            ),
            "AccessDenied",
        );
    }
    let max: usize = match r.query_param("maxresults").map(str::parse::<usize>) {
        None => 25,
        Some(Ok(n)) if (1..=25).contains(&n) => n,
        Some(_) => {
            return kv_error(
                StatusCode::BAD_REQUEST,
                "BadParameter",
                "The value of 'maxresults' must be between 1 and 25.",
            );
        }
    };
    let skip: usize = r
        .query_param("$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let secrets = state.secrets.lock().unwrap_or_else(PoisonError::into_inner);
    let all = secrets.get(name).map(Vec::as_slice).unwrap_or(&[]);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(max)
        .map(|v| bundle(base, name, v, false))
        .collect();
    let next = (skip + max < all.len()).then(|| {
        format!(
            "{base}/secrets/{name}/versions?api-version={}&$skiptoken={}&maxresults={max}",
            r.query_param("api-version").unwrap_or("7.5"),
            skip + max
        )
    });
    axum::Json(json!({"value": page, "nextLink": next})).into_response()
}

fn set_secret(state: &KvState, base: &str, name: &str, body: &[u8]) -> Response {
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid name: secret names may only contain alphanumeric characters and dashes.",
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request body is not valid JSON.",
        );
    };
    let Some(value) = parsed.get("value").and_then(Value::as_str) else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "Property value is required.",
        );
    };
    let enabled = parsed
        .pointer("/attributes/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let content_type = parsed
        .get("contentType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tags = parsed.get("tags").cloned().unwrap_or_else(|| json!({}));
    let id = state.put(name, value.to_owned(), enabled, content_type, tags);
    let secrets = state.secrets.lock().unwrap_or_else(PoisonError::into_inner);
    match secrets
        .get(name)
        .and_then(|vs| vs.iter().find(|v| v.id == id))
    {
        Some(v) => axum::Json(bundle(base, name, v, true)).into_response(),
        None => not_found(name),
    }
}

fn update_secret(state: &KvState, base: &str, name: &str, version: &str, body: &[u8]) -> Response {
    let parsed: Value = serde_json::from_slice(body).unwrap_or_else(|_| json!({}));
    let mut secrets = state.secrets.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(v) = secrets.get_mut(name).and_then(|vs| {
        if version.is_empty() {
            vs.last_mut()
        } else {
            vs.iter_mut().find(|v| v.id == version)
        }
    }) else {
        return not_found(&format!("{name}/{version}"));
    };
    if let Some(e) = parsed
        .pointer("/attributes/enabled")
        .and_then(Value::as_bool)
    {
        v.enabled = e;
    }
    if let Some(ct) = parsed.get("contentType").and_then(Value::as_str) {
        v.content_type = Some(ct.to_owned());
    }
    if let Some(tags) = parsed.get("tags") {
        v.tags = tags.clone();
    }
    v.updated = now();
    axum::Json(bundle(base, name, v, false)).into_response()
}

fn deleted_bundle(base: &str, name: &str, v: &Version, deleted: u64) -> Value {
    let mut b = bundle(base, name, v, false);
    b["recoveryId"] = json!(format!("{base}/deletedsecrets/{name}"));
    b["deletedDate"] = json!(deleted);
    b["scheduledPurgeDate"] = json!(deleted + 90 * 86_400);
    b
}

fn delete_secret(state: &KvState, base: &str, name: &str) -> Response {
    let Some(versions) = state
        .secrets
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(name)
    else {
        return not_found(name);
    };
    let t = now();
    let answer = versions.last().map(|v| deleted_bundle(base, name, v, t));
    state
        .deleted
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_owned(), (versions, t));
    match answer {
        Some(a) => axum::Json(a).into_response(),
        None => not_found(name),
    }
}

fn get_deleted(state: &KvState, base: &str, name: &str) -> Response {
    let deleted = state.deleted.lock().unwrap_or_else(PoisonError::into_inner);
    match deleted
        .get(name)
        .and_then(|(vs, t)| vs.last().map(|v| deleted_bundle(base, name, v, *t)))
    {
        Some(b) => axum::Json(b).into_response(),
        None => kv_error(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            &format!("Deleted Secret not found: {name}"),
        ),
    }
}
