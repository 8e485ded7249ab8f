//! [`GcpSecretsDouble`]: Google Secret Manager's REST API (v1), its OAuth token endpoint
//! and the metadata server's token, as far as this crate and the official Python client
//! use them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{RecordedRequest, Recorder, Server, rfc3339};

/// Google's answer to a request without valid credentials.
const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// An in-process **API double** of Google Secret Manager (not Secret Manager itself).
///
/// Implemented as the REST reference (v1) documents it, JSON in the API's camelCase with
/// int64 as strings and bytes as base64, every error in Google's shape
/// `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}`:
///
/// * `POST /v1/projects/{p}/secrets?secretId={s}` (a `Secret`; `409 ALREADY_EXISTS`),
///   `GET` / `DELETE /v1/projects/{p}/secrets/{s}`, `GET /v1/projects/{p}/secrets`;
/// * `POST /v1/projects/{p}/secrets/{s}:addVersion` with `{"payload": {"data",
///   "dataCrc32c"}}`: a `dataCrc32c` that does not match the data is `400
///   INVALID_ARGUMENT`, as Secret Manager checks it;
/// * `GET /v1/projects/{p}/secrets/{s}/versions/{v}:access`: `{"name", "payload":
///   {"data", "dataCrc32c"}}`; `latest` is the most recently created version, whatever
///   its state (as Secret Manager resolves it: a disabled or destroyed newest version is
///   `400 FAILED_PRECONDITION "Secret Version [...] is in DISABLED state."`);
/// * `GET /v1/projects/{p}/secrets/{s}/versions/{v}` (metadata: `name`, `createTime`,
///   `state`, `etag`, never the payload), `GET .../versions` (newest first; `pageSize`,
///   `pageToken`, `nextPageToken`, `totalSize`), `POST .../versions/{v}:disable`,
///   `:enable`, `:destroy`; enums as text, or as numbers when the client asks
///   `$alt=json;enum-encoding=int` (the Python client does);
/// * a missing secret `404 NOT_FOUND` (`Secret [projects/p/secrets/s] not found or has no
///   versions.` on access), a missing version `404 NOT_FOUND`, a secret
///   [`deny`](GcpSecretsDouble::deny)ed (or denied one permission,
///   [`deny_permission`](GcpSecretsDouble::deny_permission)) `403 PERMISSION_DENIED`;
/// * authentication: [`GcpSecretsDouble::start`] takes any request (the Python client's
///   `AnonymousCredentials` send none); [`GcpSecretsDouble::start_authenticated`] needs
///   `Authorization: Bearer` with a token of [`GcpSecretsDouble::add_token`] or one it
///   issued (else `401 UNAUTHENTICATED`), issued by
///   * `POST /token` (an OAuth token endpoint): grant
///     `urn:ietf:params:oauth:grant-type:jwt-bearer` with an RS256 `assertion` of a
///     [`service_account`](GcpSecretsDouble::service_account) (signature checked with its
///     public key; `iss`, `aud` = `https://oauth2.googleapis.com/token` (the constant google-auth signs), `scope`, `iat`, `exp` checked), or
///     grant `refresh_token` of an [`authorized_user`](GcpSecretsDouble::authorized_user);
///     else `400 {"error": "invalid_grant", "error_description": ...}`;
///   * `GET /computeMetadata/v1/instance/service-accounts/default/token` and
///     `GET /computeMetadata/v1/project/project-id` with `Metadata-Flavor: Google` (else
///     `403`): the metadata server, for `GCE_METADATA_HOST`.
///
/// Every request is recorded ([`GcpSecretsDouble::requests`]).
///
/// ```
/// # #[cfg(feature = "gcp")] {
/// use component_model_async::test_util::GcpSecretsDouble;
/// use component_model_async::{FetchRequest, GcpSecretsSource, RawValue, Source};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let gcp = GcpSecretsDouble::start_authenticated().await;
/// gcp.add_token("ya29.test");
/// gcp.add_version("p", "db", b"v1");
/// gcp.add_version("p", "db", b"v2");
/// let source = GcpSecretsSource::new().with_endpoint(gcp.url()).with_token("ya29.test");
/// let latest = FetchRequest::for_key("gcp_secrets", "projects/p/secrets/db");
/// assert_eq!(source.fetch(&latest).await.unwrap(), RawValue::from("v2"));
/// let first = FetchRequest::for_key("gcp_secrets", "projects/p/secrets/db/versions/1");
/// assert_eq!(source.fetch(&first).await.unwrap(), RawValue::from("v1"));
/// # });
/// # }
/// ```
pub struct GcpSecretsDouble {
    server: Server,
    state: Arc<DoubleState>,
}

impl std::fmt::Debug for GcpSecretsDouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpSecretsDouble")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct DoubleState {
    url: Mutex<String>,
    authenticated: bool,
    secrets: Mutex<BTreeMap<(String, String), Secret>>,
    tokens: Mutex<HashMap<String, Option<Instant>>>,
    issued: AtomicU64,
    token_ttl: AtomicU64,
    accounts: Mutex<Vec<(String, Vec<u8>)>>,
    users: Mutex<Vec<(String, String, String)>>,
    /// `(project, secret, permission)`; no permission: every one.
    denied: Mutex<Vec<(String, String, Option<String>)>>,
    corrupt: Mutex<Vec<(String, String)>>,
    metadata_project: Mutex<Option<String>>,
    recorder: Recorder,
}

struct Secret {
    created: SystemTime,
    versions: Vec<Version>,
}

struct Version {
    data: Vec<u8>,
    checksum: bool,
    state: &'static str,
    created: SystemTime,
    destroyed: Option<SystemTime>,
}

/// The CRC32C (Castagnoli) of `data`, as Secret Manager's `dataCrc32c` carries it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A Google error response.
fn error(code: StatusCode, status: &str, message: impl Into<String>) -> Response {
    let body =
        json!({"error": {"code": code.as_u16(), "message": message.into(), "status": status}});
    (
        code,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// An OAuth error response.
fn oauth_error(code: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

impl GcpSecretsDouble {
    /// A double that takes every request, with or without credentials.
    pub async fn start() -> GcpSecretsDouble {
        Self::spawn(false).await
    }

    /// The same as [`GcpSecretsDouble::start`]: no authentication (the Python client's
    /// `AnonymousCredentials`).
    pub async fn anonymous() -> GcpSecretsDouble {
        Self::spawn(false).await
    }

    /// A double that needs `Authorization: Bearer` with a token it knows
    /// ([`GcpSecretsDouble::add_token`], or one its `/token` endpoint or metadata server
    /// issued).
    pub async fn start_authenticated() -> GcpSecretsDouble {
        Self::spawn(true).await
    }

    async fn spawn(authenticated: bool) -> GcpSecretsDouble {
        let state = Arc::new(DoubleState {
            authenticated,
            token_ttl: AtomicU64::new(3600),
            ..DoubleState::default()
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(state.clone());
        let server = Server::spawn(router)
            .await
            .expect("the Secret Manager double binds 127.0.0.1:0");
        *lock(&state.url) = format!("http://{}", server.addr);
        GcpSecretsDouble { server, state }
    }

    /// The base URL: `http://127.0.0.1:PORT` (the endpoint, the metadata host, and
    /// `{url}/token` the token endpoint).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `127.0.0.1:PORT`, for `GCE_METADATA_HOST`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// The OAuth token endpoint: `{url}/token`.
    pub fn token_uri(&self) -> String {
        format!("{}/token", self.url())
    }

    /// Accepts `token` as a bearer token (never expires).
    pub fn add_token(&self, token: impl Into<String>) {
        lock(&self.state.tokens).insert(token.into(), None);
    }

    /// Forgets every token it issued (they are refused with `401` from now on); tokens of
    /// [`GcpSecretsDouble::add_token`] stay.
    pub fn revoke_issued_tokens(&self) {
        lock(&self.state.tokens).retain(|_, expiry| expiry.is_none());
    }

    /// The lifetime (`expires_in`) of the tokens it issues from now on (default 3600 s).
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state.token_ttl.store(ttl.as_secs(), Ordering::SeqCst);
    }

    /// A service account whose JWT assertions `/token` takes: `client_email`, and its
    /// public key as PEM (`-----BEGIN RSA PUBLIC KEY-----`, PKCS#1) to check the RS256
    /// signature with.
    pub fn service_account(&self, email: impl Into<String>, public_key_pem: &str) {
        let der = pem_body(public_key_pem).expect("an RSA PUBLIC KEY PEM");
        lock(&self.state.accounts).push((email.into(), der));
    }

    /// An `authorized_user` whose refresh token `/token` takes.
    pub fn authorized_user(
        &self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) {
        lock(&self.state.users).push((
            client_id.into(),
            client_secret.into(),
            refresh_token.into(),
        ));
    }

    /// The project the metadata server answers (`project/project-id`).
    pub fn set_metadata_project(&self, project: impl Into<String>) {
        *lock(&self.state.metadata_project) = Some(project.into());
    }

    /// Creates the secret if needed and adds a version holding `data`: its number.
    pub fn add_version(&self, project: &str, secret: &str, data: &[u8]) -> u64 {
        let mut secrets = lock(&self.state.secrets);
        let s = secrets
            .entry((project.to_owned(), secret.to_owned()))
            .or_insert_with(|| Secret {
                created: SystemTime::now(),
                versions: Vec::new(),
            });
        s.versions.push(Version {
            data: data.to_vec(),
            checksum: true,
            state: "ENABLED",
            created: SystemTime::now(),
            destroyed: None,
        });
        s.versions.len() as u64
    }

    fn set_state(&self, project: &str, secret: &str, version: u64, state: &'static str) {
        let mut secrets = lock(&self.state.secrets);
        if let Some(v) = secrets
            .get_mut(&(project.to_owned(), secret.to_owned()))
            .and_then(|s| s.versions.get_mut(version.saturating_sub(1) as usize))
        {
            v.state = state;
        }
    }

    /// Disables version `version` of the secret.
    pub fn disable(&self, project: &str, secret: &str, version: u64) {
        self.set_state(project, secret, version, "DISABLED");
    }

    /// Enables version `version` of the secret.
    pub fn enable(&self, project: &str, secret: &str, version: u64) {
        self.set_state(project, secret, version, "ENABLED");
    }

    /// Answers `403 PERMISSION_DENIED` for the secret.
    pub fn deny(&self, project: &str, secret: &str) {
        lock(&self.state.denied).push((project.to_owned(), secret.to_owned(), None));
    }

    /// Answers `403 PERMISSION_DENIED` for the requests on the secret that need
    /// `permission` only: `secretmanager.versions.get` (the version's metadata; what
    /// `roles/secretmanager.secretAccessor` lacks), `secretmanager.versions.access`,
    /// `secretmanager.versions.list`, `secretmanager.secrets.get`...
    pub fn deny_permission(&self, project: &str, secret: &str, permission: &str) {
        lock(&self.state.denied).push((
            project.to_owned(),
            secret.to_owned(),
            Some(permission.to_owned()),
        ));
    }

    /// Answers the secret's payloads with a `dataCrc32c` that does not match their data.
    pub fn set_corrupt_crc(&self, project: &str, secret: &str) {
        lock(&self.state.corrupt).push((project.to_owned(), secret.to_owned()));
    }

    /// Deletes the secret and its versions.
    pub fn delete(&self, project: &str, secret: &str) {
        lock(&self.state.secrets).remove(&(project.to_owned(), secret.to_owned()));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// The `:access` requests received.
    pub fn access_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path.ends_with(":access"))
            .count()
    }

    /// The token requests received (`/token` and the metadata server's token).
    pub fn token_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path == "/token" || r.path.ends_with("/service-accounts/default/token"))
            .count()
    }

    /// Forgets the requests received.
    pub fn clear_requests(&self) {
        self.state.recorder.clear();
    }
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .ok()
}

/// Whether `signature` is `public_key`'s (PKCS#1 DER) RS256 signature of `message`.
fn rs256_valid(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(scheme, _)| *scheme == rustls::SignatureScheme::RSA_PKCS1_SHA256)
        .is_some_and(|(_, algs)| {
            algs.iter()
                .any(|a| a.verify_signature(public_key, message, signature).is_ok())
        })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl DoubleState {
    fn issue(&self) -> Response {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("ya29.double-token-{n}-{:x}", now_secs());
        let ttl = self.token_ttl.load(Ordering::SeqCst);
        lock(&self.tokens).insert(
            token.clone(),
            Some(Instant::now() + Duration::from_secs(ttl)),
        );
        ok(json!({"access_token": token, "expires_in": ttl, "token_type": "Bearer"}))
    }

    fn token_endpoint(&self, body: &[u8]) -> Response {
        let form: HashMap<String, String> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        match get("grant_type") {
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                let assertion = get("assertion");
                match self.check_jwt(assertion) {
                    Ok(()) => self.issue(),
                    Err(why) => oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
                }
            }
            "refresh_token" => {
                let known = lock(&self.users).iter().any(|(id, secret, refresh)| {
                    id == get("client_id")
                        && secret == get("client_secret")
                        && refresh == get("refresh_token")
                });
                if known {
                    self.issue()
                } else if !lock(&self.users)
                    .iter()
                    .any(|(id, _, _)| id == get("client_id"))
                {
                    oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_client",
                        "The OAuth client was not found.",
                    )
                } else {
                    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request")
                }
            }
            "" => oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing required parameter: grant_type",
            ),
            _ => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Invalid grant_type",
            ),
        }
    }

    /// Checks a service account's JWT assertion as Google's token endpoint does.
    fn check_jwt(&self, jwt: &str) -> Result<(), &'static str> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, c, s] = parts.as_slice() else {
            return Err(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        };
        let header: Value = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("Invalid JWT header")?;
        if header["alg"] != "RS256" {
            return Err("Invalid JWT: unsupported algorithm");
        }
        let claims: Value = b64url_decode(c)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("Invalid JWT claims")?;
        let signature = b64url_decode(s).ok_or("Invalid JWT Signature.")?;
        let iss = claims["iss"].as_str().unwrap_or("");
        let accounts = lock(&self.accounts);
        let Some((_, key)) = accounts.iter().find(|(email, _)| email == iss) else {
            return Err("Invalid grant: account not found");
        };
        if !rs256_valid(key, format!("{h}.{c}").as_bytes(), &signature) {
            return Err("Invalid JWT Signature.");
        }
        // google-auth signs this constant audience whatever the `token_uri`.
        if claims["aud"].as_str() != Some("https://oauth2.googleapis.com/token") {
            return Err("Invalid JWT: Failed audience check.");
        }
        if !claims["scope"].as_str().is_some_and(|s| {
            s.split(' ')
                .any(|s| s == "https://www.googleapis.com/auth/cloud-platform")
        }) {
            return Err("Invalid OAuth scope or ID token audience provided.");
        }
        let (iat, exp, now) = (
            claims["iat"].as_u64().unwrap_or(0),
            claims["exp"].as_u64().unwrap_or(0),
            now_secs(),
        );
        if iat > now + 300 || exp <= now || exp < iat || exp - iat > 3600 {
            return Err(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            );
        }
        Ok(())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        if !self.authenticated {
            return true;
        }
        let Some(token) = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        match lock(&self.tokens).get(token) {
            Some(None) => true,
            Some(Some(expiry)) => Instant::now() < *expiry,
            None => false,
        }
    }
}

fn version_json(project: &str, secret: &str, n: usize, v: &Version, ints: bool) -> Value {
    let state = if ints {
        json!(match v.state {
            "ENABLED" => 1,
            "DISABLED" => 2,
            _ => 3,
        })
    } else {
        json!(v.state)
    };
    let mut out = json!({
        "name": format!("projects/{project}/secrets/{secret}/versions/{n}"),
        "createTime": rfc3339(v.created),
        "state": state,
        "replicationStatus": {"automatic": {}},
        "etag": format!("\"{:x}\"", v.created.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros()),
        "clientSpecifiedPayloadChecksum": v.checksum,
    });
    if let Some(t) = v.destroyed {
        out["destroyTime"] = json!(rfc3339(t));
    }
    out
}

fn secret_json(project: &str, secret: &str, s: &Secret) -> Value {
    json!({
        "name": format!("projects/{project}/secrets/{secret}"),
        "replication": {"automatic": {}},
        "createTime": rfc3339(s.created),
        "etag": format!("\"{:x}\"", s.created.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros()),
    })
}

async fn handle(
    State(state): State<Arc<DoubleState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = state.recorder.record(&method, &uri, &headers, &body);
    let path = request.path.clone();
    if path == "/token" && method == Method::POST {
        return state.token_endpoint(&body);
    }
    if let Some(rest) = path.strip_prefix("/computeMetadata/v1/") {
        if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return (
                StatusCode::FORBIDDEN,
                "Missing required header: Metadata-Flavor",
            )
                .into_response();
        }
        return match rest {
            "instance/service-accounts/default/token" => state.issue(),
            "project/project-id" => match lock(&state.metadata_project).clone() {
                Some(p) => {
                    (StatusCode::OK, [("content-type", "application/text")], p).into_response()
                }
                None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
            },
            _ => (StatusCode::NOT_FOUND, "Not Found").into_response(),
        };
    }
    if !state.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", UNAUTHENTICATED);
    }
    let ints = request
        .query_param("$alt")
        .is_some_and(|a| a.contains("enum-encoding=int"));
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("The requested URL {path} was not found on this server."),
        );
    };
    let parts: Vec<&str> = rest.split('/').collect();
    // The custom method after `:` on the last segment.
    let (parts, verb) = match parts.split_last() {
        Some((last, init)) => match last.split_once(':') {
            Some((name, verb)) => {
                let mut p = init.to_vec();
                p.push(name);
                (p, Some(verb))
            }
            None => (parts.clone(), None),
        },
        None => (parts.clone(), None),
    };
    match (method.as_str(), parts.as_slice(), verb) {
        ("POST", [p, "secrets"], None) => create_secret(&state, p, &request),
        ("GET", [p, "secrets"], None) => list_secrets(&state, p),
        ("GET", [p, "secrets", s], None) => {
            with_secret(&state, p, s, |s_| ok(secret_json(p, s, s_)))
        }
        ("DELETE", [p, "secrets", s], None) => {
            if lock(&state.secrets)
                .remove(&((*p).to_owned(), (*s).to_owned()))
                .is_some()
            {
                ok(json!({}))
            } else {
                secret_not_found(p, s)
            }
        }
        ("POST", [p, "secrets", s], Some("addVersion")) => add_version(&state, p, s, &body, ints),
        ("GET", [p, "secrets", s, "versions"], None) => list_versions(&state, p, s, &request, ints),
        ("GET", [p, "secrets", s, "versions", v], None) => {
            version_op(&state, (p, s, v), "secretmanager.versions.get", |n, ver| {
                ok(version_json(p, s, n, ver, ints))
            })
        }
        ("GET", [p, "secrets", s, "versions", v], Some("access")) => access(&state, p, s, v),
        (
            "POST",
            [p, "secrets", s, "versions", v],
            Some(op @ ("disable" | "enable" | "destroy")),
        ) => version_op(
            &state,
            (p, s, v),
            &format!("secretmanager.versions.{op}"),
            |n, ver| {
                if ver.state == "DESTROYED" && op != "destroy" {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "FAILED_PRECONDITION",
                        format!(
                            "Secret Version [projects/{p}/secrets/{s}/versions/{n}] is in DESTROYED state."
                        ),
                    );
                }
                ver.state = match op {
                    "disable" => "DISABLED",
                    "enable" => "ENABLED",
                    _ => {
                        ver.data.clear();
                        ver.destroyed = Some(SystemTime::now());
                        "DESTROYED"
                    }
                };
                ok(version_json(p, s, n, ver, ints))
            },
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("The requested URL {path} was not found on this server."),
        ),
    }
}

fn secret_not_found(p: &str, s: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("Secret [projects/{p}/secrets/{s}] not found or has no versions."),
    )
}

fn denied(
    state: &DoubleState,
    p: &str,
    s: &str,
    permission: &str,
    resource: &str,
) -> Option<Response> {
    lock(&state.denied)
        .iter()
        .any(|(dp, ds, dperm)| {
            dp == p && ds == s && dperm.as_deref().is_none_or(|d| d == permission)
        })
        .then(|| {
            error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!("Permission '{permission}' denied for resource '{resource}' (or it may not exist)."),
            )
        })
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn create_secret(state: &DoubleState, p: &str, request: &RecordedRequest) -> Response {
    let Some(id) = request.query_param("secretId").filter(|s| !s.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The request must specify a secret_id.",
        );
    };
    if !valid_id(id) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Secret ID must be 1 to 255 characters long, and may contain only letters, numbers, hyphens, and underscores.",
        );
    }
    let mut secrets = lock(&state.secrets);
    let key = (p.to_owned(), id.to_owned());
    if secrets.contains_key(&key) {
        return error(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("Secret [projects/{p}/secrets/{id}] already exists."),
        );
    }
    let secret = Secret {
        created: SystemTime::now(),
        versions: Vec::new(),
    };
    let out = secret_json(p, id, &secret);
    secrets.insert(key, secret);
    ok(out)
}

fn list_secrets(state: &DoubleState, p: &str) -> Response {
    let secrets = lock(&state.secrets);
    let list: Vec<Value> = secrets
        .iter()
        .filter(|((sp, _), _)| sp == p)
        .map(|((sp, ss), s)| secret_json(sp, ss, s))
        .collect();
    let total = list.len();
    if list.is_empty() {
        return ok(json!({}));
    }
    ok(json!({"secrets": list, "totalSize": total}))
}

fn with_secret(
    state: &DoubleState,
    p: &str,
    s: &str,
    f: impl FnOnce(&Secret) -> Response,
) -> Response {
    if let Some(r) = denied(
        state,
        p,
        s,
        "secretmanager.secrets.get",
        &format!("projects/{p}/secrets/{s}"),
    ) {
        return r;
    }
    match lock(&state.secrets).get(&(p.to_owned(), s.to_owned())) {
        Some(secret) => f(secret),
        None => secret_not_found(p, s),
    }
}

fn add_version(state: &DoubleState, p: &str, s: &str, body: &[u8], ints: bool) -> Response {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                format!("Invalid JSON payload received. {e}"),
            );
        }
    };
    let data = match parsed["payload"]["data"].as_str() {
        Some(d) => match base64::engine::general_purpose::STANDARD
            .decode(d)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(d))
        {
            Ok(bytes) => bytes,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    "Invalid value at 'payload.data' (TYPE_BYTES), Base64 decoding failed",
                );
            }
        },
        None => Vec::new(),
    };
    let given = match &parsed["payload"]["dataCrc32c"] {
        Value::String(t) => t.parse::<i64>().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    if let Some(given) = given
        && given != i64::from(crc32c(&data))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Checksum mismatch: the provided data_crc32c does not match the CRC32C of the payload data.",
        );
    }
    if data.len() > 64 * 1024 {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Secret Payload cannot exceed 65536 bytes.",
        );
    }
    if let Some(r) = denied(
        state,
        p,
        s,
        "secretmanager.versions.add",
        &format!("projects/{p}/secrets/{s}"),
    ) {
        return r;
    }
    let mut secrets = lock(&state.secrets);
    let Some(secret) = secrets.get_mut(&(p.to_owned(), s.to_owned())) else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Secret [projects/{p}/secrets/{s}] not found."),
        );
    };
    secret.versions.push(Version {
        data,
        checksum: given.is_some(),
        state: "ENABLED",
        created: SystemTime::now(),
        destroyed: None,
    });
    let n = secret.versions.len();
    ok(version_json(p, s, n, &secret.versions[n - 1], ints))
}

fn list_versions(
    state: &DoubleState,
    p: &str,
    s: &str,
    request: &RecordedRequest,
    ints: bool,
) -> Response {
    if let Some(r) = denied(
        state,
        p,
        s,
        "secretmanager.versions.list",
        &format!("projects/{p}/secrets/{s}"),
    ) {
        return r;
    }
    let secrets = lock(&state.secrets);
    let Some(secret) = secrets.get(&(p.to_owned(), s.to_owned())) else {
        return secret_not_found(p, s);
    };
    let size = request
        .query_param("pageSize")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(25_000);
    let start = request
        .query_param("pageToken")
        .filter(|t| !t.is_empty())
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    // Newest first, as Secret Manager lists them.
    let all: Vec<(usize, &Version)> = secret
        .versions
        .iter()
        .enumerate()
        .rev()
        .map(|(i, v)| (i + 1, v))
        .collect();
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(size)
        .map(|(n, v)| version_json(p, s, *n, v, ints))
        .collect();
    let mut out = json!({"totalSize": all.len()});
    if !page.is_empty() {
        out["versions"] = Value::Array(page);
    }
    if start + size < all.len() {
        out["nextPageToken"] = json!((start + size).to_string());
    }
    ok(out)
}

/// Runs `f` on version `v` (`latest`: the most recently created) of the secret.
fn version_op(
    state: &DoubleState,
    (p, s, v): (&str, &str, &str),
    permission: &str,
    f: impl FnOnce(usize, &mut Version) -> Response,
) -> Response {
    let resource = format!("projects/{p}/secrets/{s}/versions/{v}");
    if let Some(r) = denied(state, p, s, permission, &resource) {
        return r;
    }
    let mut secrets = lock(&state.secrets);
    let Some(secret) = secrets.get_mut(&(p.to_owned(), s.to_owned())) else {
        return secret_not_found(p, s);
    };
    let n = match v {
        "latest" => secret.versions.len(),
        number => match number.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INVALID_ARGUMENT",
                    format!("Invalid resource field value in the request: {resource}"),
                );
            }
        },
    };
    match n.checked_sub(1).and_then(|i| secret.versions.get_mut(i)) {
        Some(version) => f(n, version),
        None if v == "latest" => secret_not_found(p, s),
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Secret Version [projects/{p}/secrets/{s}/versions/{n}] not found."),
        ),
    }
}

fn access(state: &DoubleState, p: &str, s: &str, v: &str) -> Response {
    let corrupt = lock(&state.corrupt)
        .iter()
        .any(|(cp, cs)| cp == p && cs == s);
    version_op(
        state,
        (p, s, v),
        "secretmanager.versions.access",
        |n, ver| {
            if ver.state != "ENABLED" {
                return error(
                    StatusCode::BAD_REQUEST,
                    "FAILED_PRECONDITION",
                    format!(
                        "Secret Version [projects/{p}/secrets/{s}/versions/{n}] is in {} state.",
                        ver.state
                    ),
                );
            }
            let crc = i64::from(crc32c(&ver.data)) ^ i64::from(corrupt);
            ok(json!({
                "name": format!("projects/{p}/secrets/{s}/versions/{n}"),
                "payload": {"data": b64(&ver.data), "dataCrc32c": crc.to_string()},
            }))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }
}
