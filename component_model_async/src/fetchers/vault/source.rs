//! The `vault` backend's implementation (see the module above for what it declares).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::error::{ComponentError, ErrorKind, SourceError};
use crate::fetcher::ComponentFetcher;
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Endpoint};
use crate::fetchers::vault::auth::{Auth, Conn, Credential, Method, Refusal};
use crate::source::{FetchRequest, RawValue, Source};
use crate::source_support::{coalesce, redact_url};
use crate::standalone::SourceFetcher;
use secrecy::SecretString;

/// Vault's error for an `X-Vault-Namespace` that does not exist (with `404`).
const NAMESPACE_NOT_FOUND: &str = "namespace not found";

/// The mount used when a field names none: where a Vault dev server mounts KV v2.
pub const DEFAULT_MOUNT: &str = "secret";

/// Vault's response envelope, every field of it.
///
/// ```
/// use component_model_async::fetchers::vault::Envelope;
///
/// let body = r#"{"request_id":"5d0c","lease_id":"","renewable":false,"lease_duration":0,
///   "data":{"data":{"api-key":"x"},"metadata":{"version":1}},"wrap_info":null,"warnings":null,"auth":null}"#;
/// let envelope: Envelope = serde_json::from_str(body).unwrap();
/// assert_eq!(envelope.request_id, "5d0c");
/// assert!(!format!("{envelope:?}").contains("\"x\""));
/// ```
#[derive(Deserialize)]
#[non_exhaustive]
pub struct Envelope {
    /// The request's id, for Vault's audit log.
    pub request_id: String,
    /// The lease of a dynamic secret (empty for KV).
    #[serde(default)]
    pub lease_id: String,
    /// Whether the lease can be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// The lease's length in seconds (KV v1 reports its refresh interval here).
    #[serde(default)]
    pub lease_duration: u64,
    /// The payload: the secret (v1) or `{data, metadata}` (v2).
    pub data: Option<Value>,
    /// Set when the response is wrapped (the payload is then behind a wrapping token).
    pub wrap_info: Option<Value>,
    /// Warnings, e.g. about a path of the wrong KV version.
    pub warnings: Option<Vec<String>>,
    /// Set by auth endpoints.
    pub auth: Option<Value>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("request_id", &self.request_id)
            .field("lease_id", &self.lease_id)
            .field("renewable", &self.renewable)
            .field("lease_duration", &self.lease_duration)
            .field("data", &self.data.as_ref().map(|_| "<secret>"))
            .field("wrap_info", &self.wrap_info.as_ref().map(|_| "<wrapped>"))
            .field("warnings", &self.warnings)
            .field("auth", &self.auth.as_ref().map(|_| "<auth>"))
            .finish()
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
}

/// A Vault server's KV secrets engines.
///
/// ```
/// use component_model_async::VaultSource;
///
/// let vault = VaultSource::new("http://127.0.0.1:8200")
///     .with_token("hvs.s3cret")
///     .with_namespace("team-a")
///     .with_kv_version("legacy", 1);
/// assert!(!format!("{vault:?}").contains("hvs.s3cret"));
/// ```
#[derive(Clone)]
pub struct VaultSource {
    endpoint: Endpoint,
    namespace: Option<String>,
    default_mount: String,
    configured: HashMap<String, u8>,
    /// Detected KV versions, one single-flight cell per mount.
    detected: Arc<Mutex<HashMap<String, Arc<OnceCell<u8>>>>>,
    /// A token the source obtains and renews itself (token file, AppRole, Kubernetes).
    auth: Option<Arc<Auth>>,
}

impl fmt::Debug for VaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSource")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("default_mount", &self.default_mount)
            .field("auth", &self.auth)
            .finish()
    }
}

impl VaultSource {
    /// A Vault server at `address` (a URL; `host:port` means https).
    pub fn new(address: impl AsRef<str>) -> Self {
        VaultSource {
            endpoint: Endpoint::new(address.as_ref(), "https", "X-Vault-Token"),
            namespace: None,
            default_mount: DEFAULT_MOUNT.to_owned(),
            configured: HashMap::new(),
            detected: Arc::default(),
            auth: None,
        }
    }

    /// The server named by `VAULT_ADDR`, `VAULT_NAMESPACE`, the TLS variables of
    /// [`TlsConfig::vault_from_env`](crate::TlsConfig::vault_from_env), and the first
    /// credentials set of: `VAULT_TOKEN` (used as given); `VAULT_TOKEN_FILE` (Vault Agent's
    /// sink, renewed); `VAULT_ROLE_ID` with `VAULT_SECRET_ID` or `VAULT_SECRET_ID_FILE`
    /// (AppRole login, renewed); `VAULT_K8S_ROLE` with `VAULT_K8S_JWT_PATH` (default the
    /// pod's service-account token; Kubernetes login, renewed). `VAULT_AUTH_MOUNT` names
    /// the auth method's mount when it is not the default (`approle`, `kubernetes`).
    pub fn from_env() -> Self {
        Self::from_env_source(&EnvSource::process())
    }

    /// Like [`VaultSource::from_env`], reading the variables from `env`.
    ///
    /// ```
    /// use component_model_async::{EnvSource, VaultSource};
    ///
    /// let env = EnvSource::from_map([("VAULT_ADDR", "http://127.0.0.1:8200"), ("VAULT_TOKEN", "root")]);
    /// assert_eq!(VaultSource::from_env_source(&env).address(), "http://127.0.0.1:8200");
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Self {
        let addr = env
            .get("VAULT_ADDR")
            .unwrap_or_else(|| "https://127.0.0.1:8200".to_owned());
        let mut source = VaultSource::new(addr);
        let get = |name: &str| env.get(name).filter(|t| !t.trim().is_empty());
        // The first that is set: a static token, a token file, AppRole, Kubernetes.
        if let Some(token) = get("VAULT_TOKEN") {
            source = source.with_token(token);
        } else if let Some(path) = get("VAULT_TOKEN_FILE") {
            source = source.with_token_file(path);
        } else if let Some(role_id) = get("VAULT_ROLE_ID") {
            match (get("VAULT_SECRET_ID"), get("VAULT_SECRET_ID_FILE")) {
                (Some(secret_id), _) => source = source.with_approle(role_id, secret_id),
                (None, Some(file)) => source = source.with_approle_secret_id_file(role_id, file),
                (None, None) => source.endpoint.set_invalid(
                    "VAULT_ROLE_ID is set but neither VAULT_SECRET_ID nor VAULT_SECRET_ID_FILE is: an AppRole login needs the secret id".to_owned(),
                ),
            }
        } else if let Some(role) = get("VAULT_K8S_ROLE") {
            let jwt = get("VAULT_K8S_JWT_PATH")
                .unwrap_or_else(|| super::auth::KUBERNETES_JWT_PATH.to_owned());
            source = source.with_kubernetes(role, jwt);
        }
        if let Some(mount) = get("VAULT_AUTH_MOUNT") {
            source = source.with_auth_mount(mount);
        }
        if let Some(ns) = env.get("VAULT_NAMESPACE").filter(|t| !t.is_empty()) {
            source = source.with_namespace(ns);
        }
        match crate::TlsConfig::vault_from_env(env) {
            Ok(Some(tls)) => source = source.with_tls(tls),
            Ok(None) => {}
            Err(why) => source.endpoint.set_invalid(why),
        }
        source
    }

    /// Sends `X-Vault-Token: <token>` (kept secret) with every request, as given: no
    /// lookup, no renewal (replaces a login method set before).
    #[must_use]
    pub fn with_token(mut self, token: impl AsRef<str>) -> Self {
        self.endpoint.set_token(token.as_ref());
        self.auth = None;
        self
    }

    /// Reads the token from `path` (Vault Agent's sink), looks it up and renews it at 2/3
    /// of its TTL; reads the file again when it fails (see [`auth`](super::auth)).
    #[must_use]
    pub fn with_token_file(self, path: impl Into<std::path::PathBuf>) -> Self {
        self.with_auth(Method::TokenFile(path.into()))
    }

    /// Logs in with AppRole (`auth/approle`; see [`VaultSource::with_auth_mount`]) and keeps
    /// the token renewed; logs in again when renewal fails.
    ///
    /// ```
    /// use component_model_async::VaultSource;
    ///
    /// let vault = VaultSource::new("https://vault.internal:8200")
    ///     .with_approle("0b6a-role-id", "s3cret-id");
    /// assert!(!format!("{vault:?}").contains("s3cret-id"));
    /// ```
    #[must_use]
    pub fn with_approle(self, role_id: impl Into<String>, secret_id: impl Into<String>) -> Self {
        self.with_auth(Method::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.into(),
            secret_id: Credential::Value(SecretString::from(secret_id.into())),
        })
    }

    /// Like [`VaultSource::with_approle`], reading the secret id from a file at each login
    /// (a response-wrapped or rotated secret id delivered by the platform).
    #[must_use]
    pub fn with_approle_secret_id_file(
        self,
        role_id: impl Into<String>,
        secret_id_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.with_auth(Method::AppRole {
            mount: "approle".to_owned(),
            role_id: role_id.into(),
            secret_id: Credential::File(secret_id_file.into()),
        })
    }

    /// Logs in with the Kubernetes auth method (`auth/kubernetes`) as `role`, with the
    /// pod's service-account token read from `jwt_file` at each login
    /// ([`KUBERNETES_JWT_PATH`](super::auth::KUBERNETES_JWT_PATH) in a pod).
    #[must_use]
    pub fn with_kubernetes(
        self,
        role: impl Into<String>,
        jwt_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.with_auth(Method::Kubernetes {
            mount: "kubernetes".to_owned(),
            role: role.into(),
            jwt: Credential::File(jwt_file.into()),
        })
    }

    /// The path the AppRole or Kubernetes auth method is mounted at (`approle`,
    /// `kubernetes` by default).
    #[must_use]
    pub fn with_auth_mount(mut self, mount: impl Into<String>) -> Self {
        let mount = mount.into().trim_matches('/').to_owned();
        if let Some(auth) = &self.auth {
            let method = match auth.method().clone() {
                Method::AppRole {
                    role_id, secret_id, ..
                } => Method::AppRole {
                    mount,
                    role_id,
                    secret_id,
                },
                Method::Kubernetes { role, jwt, .. } => Method::Kubernetes { mount, role, jwt },
                other => other,
            };
            self = self.with_auth(method);
        }
        self
    }

    fn with_auth(mut self, method: Method) -> Self {
        self.endpoint.clear_token();
        self.auth = Some(Auth::new(method));
        self
    }

    /// How many times the source obtained a token itself (logins, token-file reads); 0
    /// with a static token.
    pub fn logins(&self) -> u64 {
        self.auth.as_ref().map_or(0, |a| a.obtained())
    }

    /// Sends `X-Vault-Namespace: <ns>` (Vault Enterprise / HCP namespaces).
    #[must_use]
    pub fn with_namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// The mount used by fields that name none (default `secret`).
    #[must_use]
    pub fn with_default_mount(mut self, mount: impl Into<String>) -> Self {
        self.default_mount = mount.into().trim_matches('/').to_owned();
        self
    }

    /// Says which KV version `mount` runs (1 or 2), so it is not detected.
    #[must_use]
    pub fn with_kv_version(mut self, mount: impl Into<String>, version: u8) -> Self {
        self.configured
            .insert(mount.into().trim_matches('/').to_owned(), version);
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

    /// The server's base URL.
    pub fn address(&self) -> &str {
        self.endpoint.base()
    }

    pub(super) async fn call(
        &self,
        segments: &[&str],
        what: &str,
    ) -> Result<Envelope, SourceError> {
        self.call_with(segments, &[], what).await
    }

    /// Sends `method` to `segments` (with `query` and a JSON `body`) with the source's
    /// token — a managed token obtained, renewed, or replaced once when Vault refuses it as
    /// bad (see [`auth`](super::auth)) — and the namespace; the status, the body, and why a
    /// `403` with a managed token is a denial (a valid token the policy refuses).
    pub(super) async fn exchange(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>, Option<String>), SourceError> {
        let url = self.endpoint.url(segments, query)?;
        let namespaced = |r: reqwest::RequestBuilder| match &self.namespace {
            Some(ns) => r.header("X-Vault-Namespace", ns.as_str()),
            None => r,
        };
        let with_body = |r: reqwest::RequestBuilder| match body {
            Some(bytes) => r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.to_vec()),
            None => r,
        };
        // Why a 403 with a managed token is a denial, for the error.
        let mut why_denied = None;
        let (status, body) = match &self.auth {
            None => {
                self.endpoint
                    .send(method.clone(), &url, |r| namespaced(with_body(r)))
                    .await?
            }
            Some(auth) => {
                let conn = Conn {
                    endpoint: self.endpoint.clone(),
                    namespace: self.namespace.clone(),
                };
                let mut retried = false;
                loop {
                    let token = auth.header(&conn).await?;
                    let (status, body) = self
                        .endpoint
                        .send_anonymous(method.clone(), &url, |r| {
                            namespaced(with_body(r.header("X-Vault-Token", token.clone())))
                        })
                        .await?;
                    if status.as_u16() != 403 {
                        break (status, body);
                    }
                    if retried {
                        // Not a bad token after all: later 403s with it are denials.
                        auth.refused_again(&token).await;
                        why_denied = Some("refused again with a newly obtained token".to_owned());
                        break (status, body);
                    }
                    // A revoked token and a denied path both answer 403: a new token
                    // only when the token itself is bad (see the `auth` module).
                    match auth.refused(&conn, &token).await {
                        Refusal::Retry => retried = true,
                        Refusal::Denied(why) => {
                            why_denied = Some(why);
                            break (status, body);
                        }
                    }
                }
            }
        };
        Ok((status, body, why_denied))
    }

    /// [`call`](Self::call) with a query string.
    async fn call_with(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Envelope, SourceError> {
        let (status, body, why_denied) = self
            .exchange(reqwest::Method::GET, segments, query, None)
            .await?;
        if !status.is_success() {
            let e = self.status_error(status, &body, what);
            return Err(match why_denied {
                Some(why) => {
                    let message = format!("{} ({why})", e.message().unwrap_or_default());
                    e.with_message(message)
                }
                None => e,
            });
        }
        let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "vault's answer for {what} is not a response envelope ({} bytes): {}",
                body.len(),
                transport::json_error(&e)
            ))
        })?;
        if let Some(w) = envelope.warnings.as_ref().filter(|w| !w.is_empty()) {
            tracing::warn!(target: "component_model::vault", request_id = %envelope.request_id, warnings = ?w, "vault answered {what} with warnings");
        }
        if envelope.wrap_info.is_some() {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "vault wrapped the response for {what}; unset VAULT_WRAP_TTL / X-Vault-Wrap-TTL for configuration reads"
            )));
        }
        Ok(envelope)
    }

    pub(super) fn status_error(
        &self,
        status: reqwest::StatusCode,
        body: &[u8],
        what: &str,
    ) -> SourceError {
        let mut message = format!("HTTP {status} from vault for {what}");
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let errors = parsed
            .as_ref()
            .map(|b| b.errors.clone())
            .unwrap_or_default();
        // KV v2 answers a path without `data/` (a v1 read of a v2 mount) with a 404 and
        // only a warning: the field's `kv_version` is wrong, not the secret missing.
        if status.as_u16() == 404
            && parsed
                .as_ref()
                .and_then(|b| b.warnings.as_ref())
                .is_some_and(|w| {
                    w.iter()
                        .any(|w| w.contains("Invalid path for a versioned K/V"))
                })
        {
            return SourceError::new(ErrorKind::Config).with_message(format!(
                "{message}: the mount is a KV v2 engine read as KV v1 (check `kv_version`)"
            ));
        }
        let errors: Vec<String> = errors
            .iter()
            .map(|e| {
                e.replace("1 error occurred:", "")
                    .replace(['\n', '\t', '*'], " ")
            })
            .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|e| !e.is_empty())
            .collect();
        if !errors.is_empty() {
            message.push_str(&format!(": {}", errors.join("; ")));
        }
        if status.as_u16() == 403 && !self.endpoint.has_token() && self.auth.is_none() {
            message.push_str(" (no token: set VAULT_TOKEN)");
        }
        // Vault and OpenBao answer a namespace that does not exist `404 namespace not found`.
        if status.as_u16() == 404 && errors.iter().any(|e| e == NAMESPACE_NOT_FOUND) {
            message.push_str(&format!(
                " (the namespace `{}` does not exist on this server: check VAULT_NAMESPACE)",
                self.namespace.as_deref().unwrap_or_default()
            ));
            return SourceError::new(ErrorKind::Config).with_message(message);
        }
        // A missing secret is `404 {"errors": []}`; a 404 that says why ("no handler for
        // route ...") means the path leads nowhere: a mistyped mount, not a missing key, so
        // no `fallback` may hide it.
        if status.as_u16() == 404 && !errors.is_empty() {
            message.push_str(" (no such mount or endpoint: check the field's `mount` and the source's default mount)");
            return SourceError::new(ErrorKind::Config).with_message(message);
        }
        SourceError::new(transport::status_kind(status)).with_message(message)
    }

    pub(super) fn default_mount(&self) -> &str {
        &self.default_mount
    }

    /// Whether requests carry a token (a static one, or one the source obtains).
    pub(super) fn has_credentials(&self) -> bool {
        self.endpoint.has_token() || self.auth.is_some()
    }

    pub(super) async fn kv_version_of(&self, mount: &str, path: &str) -> Result<u8, SourceError> {
        self.version(mount, path).await
    }

    /// The KV version of `mount`: configured, else detected once (single flight).
    async fn version(&self, mount: &str, path: &str) -> Result<u8, SourceError> {
        if let Some(v) = self.configured.get(mount) {
            return Ok(*v);
        }
        let cell = {
            let mut map = self.detected.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(mount.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| self.detect(mount, path))
            .await
            .copied()
    }

    async fn detect(&self, mount: &str, path: &str) -> Result<u8, SourceError> {
        let what = format!("the mount of `{mount}/{path}`");
        let envelope = match self
            .call(
                &["v1", "sys", "internal", "ui", "mounts", mount, path],
                &what,
            )
            .await
        {
            Ok(e) => e,
            // Before Vault 1.1 the endpoint does not exist (a 404, with or without a route
            // error): KV v1 was the only version.
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    || e.message().is_some_and(|m| {
                        m.starts_with("HTTP 404") && !m.contains(NAMESPACE_NOT_FOUND)
                    }) =>
            {
                return Ok(1);
            }
            Err(e) => return Err(e),
        };
        let data = envelope.data.unwrap_or(Value::Null);
        if let Some(kind) = data.get("type").and_then(Value::as_str)
            && kind != "kv"
            && kind != "generic"
        {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message(format!("`{mount}` is a `{kind}` secrets engine, not KV")));
        }
        let version = data.pointer("/options/version").and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        });
        Ok(match version.as_deref() {
            Some("2") => 2,
            _ => 1,
        })
    }

    /// Reads the secret at `path` under `mount` (the source's default when `None`); the
    /// KV version is `version`, else configured or detected. Returns the secret's key/value
    /// object.
    pub async fn read(
        &self,
        mount: Option<&str>,
        path: &str,
        version: Option<u8>,
    ) -> Result<Value, SourceError> {
        self.read_at(mount, path, version, None).await
    }

    /// [`read`](Self::read) of the secret's version `at` (`version = 3` on the field; KV v2
    /// only), else its current version.
    async fn read_at(
        &self,
        mount: Option<&str>,
        path: &str,
        version: Option<u8>,
        at: Option<&str>,
    ) -> Result<Value, SourceError> {
        let mount = mount.unwrap_or(&self.default_mount).trim_matches('/');
        let path = path.trim_matches('/');
        let version = match version {
            Some(v) => v,
            None => self.version(mount, path).await?,
        };
        let what = match at {
            Some(at) => format!("version {at} of secret `{mount}/{path}`"),
            None => format!("secret `{mount}/{path}`"),
        };
        if let Some(at) = at {
            if !at.bytes().all(|b| b.is_ascii_digit())
                || !matches!(at.parse::<u64>(), Ok(n) if n > 0)
            {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "`version = \"{at}\"` for secret `{mount}/{path}` is not a version number (1, 2, ...)"
                )));
            }
            if version != 2 {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "`version` picks a version of a KV v2 secret, and `{mount}` is a KV v1 mount (secret `{mount}/{path}`)"
                )));
            }
        }
        let envelope = match (version, at) {
            (2, Some(at)) => {
                self.call_with(&["v1", mount, "data", path], &[("version", at)], &what)
                    .await?
            }
            (2, None) => self.call(&["v1", mount, "data", path], &what).await?,
            _ => self.call(&["v1", mount, path], &what).await?,
        };
        let data = match (version, envelope.data) {
            (2, Some(mut d)) => d.get_mut("data").map(Value::take).unwrap_or(Value::Null),
            (_, Some(d)) => d,
            (_, None) => Value::Null,
        };
        match data {
            Value::Object(_) => Ok(data),
            Value::Null => Err(SourceError::not_found().with_message(format!(
                "{what} has no data (deleted or destroyed version?)"
            ))),
            other => Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                "{what} is a JSON {} where vault returns an object",
                crate::source::json_kind(&other)
            ))),
        }
    }
}

/// `version = 3` on a field: the version of a KV v2 secret to read (a parameter of this
/// backend, `FetchRequest::param("version")`).
const VERSION: &str = "version";

#[async_trait::async_trait]
impl Source for VaultSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let Some(path) = request.secret_path() else {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("the field names no `secret = \"path\"`"));
        };
        self.read_at(
            request.mount(),
            path,
            request.kv_version(),
            request.param(VERSION),
        )
        .await
        .map(RawValue::Json)
    }

    /// One read per distinct (mount, path, version).
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        coalesce(requests, |unique| {
            futures::future::join_all(unique.into_iter().map(|r| self.fetch(r)))
        })
        .await
    }

    fn location(&self) -> Option<String> {
        Some(redact_url(self.endpoint.base()))
    }

    /// `<mount>/<path>`, the mount being the field's or the source's default (and
    /// `?version=<n>` when the field reads one version).
    /// The secret at the argument (`vault@app/config`, under the default mount), the field
    /// its member at the JSON pointer of its path (`/db_password`, `/db/password`).
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        let path = field.argument.filter(|a| !a.is_empty()).ok_or_else(|| {
            "a Vault source reads the members of one secret: name it, `vault@app/config`".to_owned()
        })?;
        Ok(request
            .with_secret_path(path.to_owned())
            .with_pointer(field.pointer()))
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        let mount = request.mount().unwrap_or(&self.default_mount);
        let at = request
            .param(VERSION)
            .map(|v| format!("?version={v}"))
            .unwrap_or_default();
        // A convention reads one member of the secret: `kv/app/config#/db_password`.
        let member = request
            .pointer()
            .map(|p| format!("#{p}"))
            .unwrap_or_default();
        request.secret_path().map(|p| {
            (
                "secret",
                format!(
                    "{}/{}{at}{member}",
                    mount.trim_matches('/'),
                    p.trim_matches('/')
                ),
            )
        })
    }

    /// Every Vault value is a secret.
    /// KV v2 metadata polled for `current_version` (see the `watch` module).
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<crate::Changes, SourceError> {
        self.watch_secrets(requests)
    }

    /// What the token may read and whether each secret exists, without reading one: see
    /// the module's "Preflight".
    fn preflight(&self, requests: Vec<FetchRequest>) -> crate::Preflighting<'_> {
        Box::pin(self.preflight_requests(requests))
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// A secret holding one key reads into a scalar without `field = "..."`.
    fn unwraps_single_member(&self) -> bool {
        true
    }
}

/// Reads one Vault secret, as the specification sketches it; `ComponentFetcher<T>` for
/// any `serde::Deserialize` type: the whole secret (a struct or map), or one key of it with
/// [`VaultFetcher::field`]. Values are secret: errors never show them.
///
/// ```no_run
/// use component_model_async::{ComponentFetcher, SecretString, VaultFetcher};
///
/// # async fn run() -> Result<(), component_model_async::ComponentError> {
/// let key: SecretString = VaultFetcher::new("app/api").field("key").fetch_component().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct VaultFetcher(SourceFetcher<VaultSource>);

impl VaultFetcher {
    /// Reads the secret at `path` from the server configured by the environment.
    pub fn new(path: impl Into<String>) -> Self {
        Self::with_source(VaultSource::from_env(), path)
    }

    /// Reads the secret at `path` from `source`.
    pub fn with_source(source: VaultSource, path: impl Into<String>) -> Self {
        VaultFetcher(SourceFetcher::new(
            source,
            FetchRequest::for_source("vault").with_secret_path(path.into()),
        ))
    }

    /// Takes one key of the secret.
    #[must_use]
    pub fn field(self, name: impl Into<String>) -> Self {
        VaultFetcher(self.0.map_request(|r| r.with_select(name.into())))
    }

    /// Reads under `mount` instead of the source's default.
    #[must_use]
    pub fn mount(self, mount: impl Into<String>) -> Self {
        VaultFetcher(self.0.map_request(|r| r.with_mount(mount.into())))
    }

    /// The KV version of the mount (1 or 2) instead of detecting it.
    #[must_use]
    pub fn kv_version(self, version: u8) -> Self {
        VaultFetcher(self.0.map_request(|r| r.with_kv_version(version)))
    }

    /// Reads version `version` of a KV v2 secret instead of its current one.
    #[must_use]
    pub fn version(self, version: u32) -> Self {
        VaultFetcher(
            self.0
                .map_request(|r| r.with_param(VERSION, version.to_string())),
        )
    }
}

#[async_trait::async_trait]
impl<T: DeserializeOwned + Send + 'static> ComponentFetcher<T> for VaultFetcher {
    type Error = ComponentError;

    async fn fetch_component(&self) -> Result<T, ComponentError> {
        self.0.fetch_component().await
    }
}
