//! [`AzureKeyVaultSource`]: secrets of an Azure Key Vault, one `GET
//! {vault}/secrets/{name}[/{version}]` each (Key Vault has no batch read), concurrently.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use serde::Deserialize;

use super::auth::{self, Challenge, Credential, Token};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client};
use crate::source::{
    Access, Change, Changes, FetchRequest, Preflighting, Probe, RawValue, Revision, Source,
};
use crate::source_support::{coalesce, redact_url};

/// The Key Vault REST API version this source speaks unless
/// [`AzureKeyVaultSource::with_api_version`] says otherwise: the default of the official
/// SDKs (azure-keyvault-secrets 4.12). The paths and answers used here are the same from
/// `7.0` on.
pub const DEFAULT_API_VERSION: &str = "2026-04-01";

/// How many secrets are read at once (one GET each) unless
/// [`AzureKeyVaultSource::with_concurrency`] says otherwise. Key Vault throttles a vault
/// at 4,000 GETs per 10 s.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How often a watched secret's current version is read when the fields name no
/// `watch_interval`.
pub const DEFAULT_KEYVAULT_WATCH: Duration = Duration::from_secs(30);

/// Pages of a secret's version list a preflight reads at most (25 versions each).
const MAX_VERSION_PAGES: usize = 8;

/// Secrets of an Azure Key Vault (`fetch_from = "azure_keyvault"`, `key` = the secret's
/// name, optional `version`, else the current one). Every value is secret.
///
/// Authentication follows the official SDKs: the first request goes without a token, the
/// vault answers 401 with a challenge naming its tenant and resource; the resource's
/// domain is checked against the vault's host (a challenge pointing elsewhere is refused:
/// no token is asked for it), then a token for that scope is asked with the credential
/// (client secret, workload identity or managed identity, from the `AZURE_*` variables)
/// and cached until shortly before it expires. Bearer tokens travel over HTTPS only (or
/// plain HTTP to 127.0.0.1 / localhost).
///
/// On Azure, from the environment (a managed identity, workload identity on AKS, or an
/// app registration's `AZURE_CLIENT_SECRET`):
///
/// ```no_run
/// use component_model_async::{AsyncAssign, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Db {
///     #[component(fetch_from = "azure_keyvault", key = "db-password")]
///     password: String,
///     #[component(fetch_from = "azure_keyvault", key = "api-key", version = "4f1e0c2d9b8a47c6a1e2f3d4c5b6a7e8")]
///     pinned: String,
/// }
///
/// # async fn run() -> Result<(), Vec<component_model_async::ComponentError>> {
/// // AZURE_KEYVAULT_URL=https://myvault.vault.azure.net
/// let db = Db::fetch_all_components_with(&Sources::from_env()).await?;
/// # Ok(()) }
/// ```
///
/// Against the API double of `test_util` (feature `test-util`):
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use component_model_async::test_util::AzureKeyVaultDouble;
/// use component_model_async::{AsyncAssign, AzureKeyVaultSource, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct Db {
///     #[component(fetch_from = "azure_keyvault", key = "db-password")]
///     password: String,
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let vault = AzureKeyVaultDouble::start().await; // plain HTTP on 127.0.0.1: tests only
/// vault.set_secret("db-password", "s3cret");
/// let source = AzureKeyVaultSource::new(vault.url()).with_client_secret(
///     vault.tenant(),
///     vault.client_id(),
///     vault.client_secret(),
/// ).with_authority_host(vault.url());
/// let sources = Sources::new().register("azure_keyvault", source);
/// let db = Db::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!(db.password, "s3cret");
/// assert_eq!(vault.token_requests(), 1);
/// # });
/// # }
/// ```
#[derive(Clone)]
pub struct AzureKeyVaultSource {
    vault: String,
    api_version: String,
    credential: Credential,
    authority: String,
    allowed_tenants: Arc<[String]>,
    client: Client,
    identity: Client,
    concurrency: usize,
    watch_interval: Duration,
    invalid: Option<String>,
    state: Arc<State>,
}

/// What the clones of a source share: the challenge and the token.
#[derive(Default)]
struct State {
    auth: std::sync::Mutex<AuthState>,
    /// Held by the one task asking a challenge or a token (single flight).
    flight: tokio::sync::Mutex<()>,
    /// The version each secret's last read of its current version answered: a watch
    /// starts from it, so a version set between the fetch and the watch is a change.
    read_at: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Secrets whose last version read is remembered, at most (then forgotten).
const MAX_REMEMBERED: usize = 10_000;

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    token: Option<Token>,
    /// The last failed attempt (when it ended): the callers that waited for it get it.
    failure: Option<(Instant, SourceError)>,
    /// After a failed refresh ahead of expiry: the current token is used until then.
    refresh_after: Option<Instant>,
}

/// How long the current token is used without asking again after a refresh ahead of its
/// expiry failed.
const REFRESH_BACKOFF: Duration = Duration::from_secs(30);

impl fmt::Debug for AzureKeyVaultSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKeyVaultSource")
            .field("vault", &redact_url(&self.vault))
            .field("api_version", &self.api_version)
            .field("credential", &self.credential)
            .field("authority", &redact_url(&self.authority))
            .field("timeout", &self.client.timeout)
            .field("max_body", &self.client.max_body)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

/// A secret bundle (`GET /secrets/{name}`): only what is read.
#[derive(Deserialize)]
struct SecretBundle {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

/// One page of `GET /secrets/{name}/versions`.
#[derive(Deserialize)]
struct VersionPage {
    #[serde(default)]
    value: Vec<VersionItem>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct VersionItem {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Deserialize, Default)]
struct Attributes {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    created: Option<i64>,
}

/// Key Vault's error body: `{"error": {"code": "SecretNotFound", "message": "...",
/// "innererror": {"code": "SecretDisabled"}}}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: Option<ErrorDetail>,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    innererror: Option<Box<ErrorDetail>>,
}

/// `code: message` of an error body (the innermost code too), bounded; never the body
/// itself when it is not one.
fn store_error(body: &[u8]) -> Option<String> {
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let e = parsed.error?;
    let mut codes = vec![e.code.clone().unwrap_or_default()];
    let mut inner = e.innererror.as_deref();
    while let Some(i) = inner {
        codes.extend(i.code.clone());
        inner = i.innererror.as_deref();
    }
    let codes: Vec<String> = codes.into_iter().filter(|c| !c.is_empty()).collect();
    Some(auth::clip(&match (codes.is_empty(), e.message) {
        (false, Some(m)) => format!("{}: {m}", codes.join("/")),
        (false, None) => codes.join("/"),
        (true, Some(m)) => m,
        (true, None) => return None,
    }))
}

/// The Bearer challenge of an answer's `WWW-Authenticate` headers.
fn challenge_of(headers: &reqwest::header::HeaderMap) -> Option<Challenge> {
    headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(Challenge::parse)
}

/// The codes of an error body, outermost first (`Forbidden`, `SecretDisabled`).
fn store_codes(body: &[u8]) -> Vec<String> {
    let Ok(ErrorBody { error: Some(e) }) = serde_json::from_slice::<ErrorBody>(body) else {
        return Vec::new();
    };
    let mut codes: Vec<String> = e.code.clone().into_iter().collect();
    let mut inner = e.innererror.as_deref();
    while let Some(i) = inner {
        codes.extend(i.code.clone());
        inner = i.innererror.as_deref();
    }
    codes
}

/// Whether `name` is a Key Vault object name (1-127 of `0-9a-zA-Z-`).
fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The last segment of a secret id (`https://v.vault.azure.net/secrets/name/VERSION`).
fn version_of(id: &str) -> Option<&str> {
    id.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|v| !v.is_empty())
}

/// A version as a revision: its 32 hex digits as bytes (shown again as the same hex).
fn revision_of(version: &str) -> Option<Revision> {
    if !version.len().is_multiple_of(2) || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..version.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&version[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()
        .map(Revision::Digest)
}

/// What one request reads: a secret's name and, optionally, a version.
struct Target<'a> {
    name: &'a str,
    version: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn of(request: &'a FetchRequest) -> Result<Self, SourceError> {
        let Some(name) = request.key() else {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("the field names no `key` (the secret's name)"));
        };
        if !valid_name(name) {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{}` is not a Key Vault secret name (1-127 letters, digits and dashes)",
                name.escape_debug()
            )));
        }
        let version = request.param("version").filter(|v| !v.is_empty());
        if let Some(v) = version
            && !(v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`{}` is not a Key Vault secret version (letters and digits)",
                v.escape_debug()
            )));
        }
        Ok(Target { name, version })
    }

    /// `secrets/{name}[/{version}]`.
    fn segments(&self) -> Vec<&'a str> {
        let mut segments = vec!["secrets", self.name];
        segments.extend(self.version);
        segments
    }

    fn describe(&self) -> String {
        match self.version {
            Some(v) => format!("secret `{}` version `{v}`", self.name),
            None => format!("secret `{}`", self.name),
        }
    }
}

impl AzureKeyVaultSource {
    /// The vault at `vault_url` (`https://myvault.vault.azure.net`), with the credential the
    /// process's `AZURE_*` variables name (see [`AzureKeyVaultSource::from_env_source`]);
    /// `with_client_secret`, `with_workload_identity` or `with_managed_identity` set
    /// another.
    ///
    /// ```
    /// use component_model_async::{AzureKeyVaultSource, Source};
    ///
    /// let kv = AzureKeyVaultSource::new("https://myvault.vault.azure.net/");
    /// assert_eq!(kv.location().as_deref(), Some("https://myvault.vault.azure.net"));
    /// ```
    pub fn new(vault_url: impl AsRef<str>) -> Self {
        Self::with_env(vault_url.as_ref(), &EnvSource::process())
    }

    fn with_env(vault_url: &str, env: &EnvSource) -> Self {
        let vault = transport::base_url(vault_url, "https");
        let invalid = match reqwest::Url::parse(&vault) {
            Err(e) => Some(format!("invalid vault URL {}: {e}", redact_url(&vault))),
            Ok(u) if !auth::may_carry_credentials(&u) => Some(format!(
                "the vault URL {} is not HTTPS: bearer tokens are only sent over HTTPS (or plain HTTP to 127.0.0.1 / localhost)",
                redact_url(&vault)
            )),
            Ok(_) => None,
        };
        let authority = env
            .get("AZURE_AUTHORITY_HOST")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| auth::DEFAULT_AUTHORITY_HOST.to_owned());
        let allowed: Vec<String> = env
            .get("AZURE_ADDITIONALLY_ALLOWED_TENANTS")
            .map(|v| {
                v.split([';', ','])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        AzureKeyVaultSource {
            vault,
            api_version: DEFAULT_API_VERSION.to_owned(),
            credential: Credential::from_env(env),
            authority,
            allowed_tenants: allowed.into(),
            client: Client::new(transport::DEFAULT_REQUEST_TIMEOUT),
            // Straight to the local endpoints, never through a proxy (`Client::direct`).
            identity: Client::new(auth::IDENTITY_TIMEOUT).direct(),
            concurrency: DEFAULT_CONCURRENCY,
            watch_interval: DEFAULT_KEYVAULT_WATCH,
            invalid,
            state: Arc::default(),
        }
    }

    /// The vault named by the process environment (see
    /// [`AzureKeyVaultSource::from_env_source`]).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The vault named by `AZURE_KEYVAULT_URL` (or `AZURE_KEY_VAULT_URL`, the name the
    /// Azure SDK samples use; `None` when neither is set), with the credential of the
    /// `AZURE_*` variables in azure-identity's order:
    ///
    /// 1. `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`: client secret;
    /// 2. `AZURE_FEDERATED_TOKEN_FILE` + `AZURE_CLIENT_ID` + `AZURE_TENANT_ID`: workload
    ///    identity (AKS), the file read again for each token;
    /// 3. else managed identity: `IDENTITY_ENDPOINT` + `IDENTITY_HEADER` (App Service,
    ///    Functions, Container Apps), else IMDS (`AZURE_POD_IDENTITY_AUTHORITY_HOST` or
    ///    169.254.169.254); `AZURE_CLIENT_ID` picks a user-assigned identity. Azure Arc
    ///    (`IMDS_ENDPOINT`), Service Fabric (`IDENTITY_SERVER_THUMBPRINT`) and
    ///    `MSI_ENDPOINT` (Cloud Shell, Azure ML) are not supported: every fetch says so.
    ///    The Azure CLI's login (`az login`) is not used.
    ///
    /// `AZURE_AUTHORITY_HOST` names another cloud's authority (default
    /// `https://login.microsoftonline.com`); `AZURE_ADDITIONALLY_ALLOWED_TENANTS` the
    /// tenants a challenge may move the token request to.
    ///
    /// ```
    /// use component_model_async::{AzureKeyVaultSource, EnvSource, Source};
    ///
    /// let env = EnvSource::from_map([
    ///     ("AZURE_KEYVAULT_URL", "https://myvault.vault.azure.net"),
    ///     ("AZURE_TENANT_ID", "tenant"),
    ///     ("AZURE_CLIENT_ID", "app"),
    ///     ("AZURE_CLIENT_SECRET", "s3cret"),
    /// ]);
    /// let kv = AzureKeyVaultSource::from_env_source(&env).unwrap();
    /// assert!(!format!("{kv:?}").contains("s3cret"));
    /// assert!(format!("{kv:?}").contains("ClientSecret"));
    /// assert!(AzureKeyVaultSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let url = env
            .get("AZURE_KEYVAULT_URL")
            .or_else(|| env.get("AZURE_KEY_VAULT_URL"))
            .filter(|v| !v.trim().is_empty())?;
        Some(Self::with_env(&url, env))
    }

    /// Authenticates with an app registration's client secret (kept secret: never in
    /// `Debug`, errors or logs) at `{authority}/{tenant}/oauth2/v2.0/token`.
    #[must_use]
    pub fn with_client_secret(
        mut self,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<secrecy::SecretString>,
    ) -> Self {
        self.credential = Credential::ClientSecret {
            tenant: tenant.into(),
            client_id: client_id.into(),
            secret: secret.into(),
        };
        self.state = Arc::default();
        self
    }

    /// Authenticates with workload identity: the federated token in `token_file` (read
    /// again for every token request) as the client assertion of `client_id` in `tenant`.
    #[must_use]
    pub fn with_workload_identity(
        mut self,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        token_file: impl Into<std::path::PathBuf>,
    ) -> Self {
        self.credential = Credential::Workload {
            tenant: tenant.into(),
            client_id: client_id.into(),
            token_file: token_file.into(),
        };
        self.state = Arc::default();
        self
    }

    /// Authenticates with a managed identity through IMDS at `imds` (`None`: 169.254.169.254),
    /// the user-assigned one of `client_id` when given.
    #[must_use]
    pub fn with_managed_identity(mut self, client_id: Option<&str>, imds: Option<&str>) -> Self {
        self.credential = Credential::Managed {
            client_id: client_id.map(str::to_owned),
            app_service: None,
            imds: imds.unwrap_or(auth::DEFAULT_IMDS_HOST).to_owned(),
        };
        self.state = Arc::default();
        self
    }

    /// Authenticates with App Service's managed identity endpoint (`IDENTITY_ENDPOINT`,
    /// with `IDENTITY_HEADER`, kept secret), the user-assigned identity of `client_id`
    /// when given.
    #[must_use]
    pub fn with_identity_endpoint(
        mut self,
        endpoint: impl Into<String>,
        header: impl Into<secrecy::SecretString>,
        client_id: Option<&str>,
    ) -> Self {
        self.credential = Credential::Managed {
            client_id: client_id.map(str::to_owned),
            app_service: Some((endpoint.into(), header.into())),
            imds: auth::DEFAULT_IMDS_HOST.to_owned(),
        };
        self.state = Arc::default();
        self
    }

    /// Asks client-secret and workload-identity tokens at `authority` (default
    /// `https://login.microsoftonline.com`; `AZURE_AUTHORITY_HOST`). It must be HTTPS
    /// (or plain HTTP to 127.0.0.1 / localhost).
    #[must_use]
    pub fn with_authority_host(mut self, authority: impl AsRef<str>) -> Self {
        self.authority = transport::base_url(authority.as_ref(), "https");
        self.state = Arc::default();
        self
    }

    /// Tenants a challenge may move a token request to, besides the credential's own
    /// (`"*"`: any), as `AZURE_ADDITIONALLY_ALLOWED_TENANTS`.
    #[must_use]
    pub fn with_additionally_allowed_tenants<S: Into<String>>(
        mut self,
        tenants: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_tenants = tenants.into_iter().map(Into::into).collect();
        self
    }

    /// Speaks another Key Vault REST API version (default [`DEFAULT_API_VERSION`]; `7.5`
    /// for an Azure Stack Hub, say).
    #[must_use]
    pub fn with_api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// Connects to the vault and the authority with these TLS settings (a custom CA).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    /// Limits each request to `timeout` (default 10 s). Managed identity endpoints are
    /// limited to 3 s (or `timeout` when shorter).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self.identity = self
            .identity
            .with_timeout(timeout.min(auth::IDENTITY_TIMEOUT));
        self
    }

    /// Reads response bodies of at most `bytes` (default 16 MiB): a larger one fails its
    /// field with [`ErrorKind::TooLarge`].
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.max_body = bytes;
        self.identity.max_body = bytes;
        self
    }

    /// Reads at most `n` secrets at once (default [`DEFAULT_CONCURRENCY`]; `0` counts as 1).
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Polls watched secrets every `interval` when their fields name no `watch_interval`
    /// (default [`DEFAULT_KEYVAULT_WATCH`]).
    #[must_use]
    pub fn with_watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval;
        self
    }

    /// The vault's base URL.
    pub fn vault_url(&self) -> &str {
        &self.vault
    }

    fn check_valid(&self) -> Result<(), SourceError> {
        match &self.invalid {
            Some(why) => Err(SourceError::new(ErrorKind::Config).with_message(why.clone())),
            None => Ok(()),
        }
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<reqwest::Url, SourceError> {
        let mut q = vec![("api-version", self.api_version.as_str())];
        q.extend_from_slice(query);
        transport::join_url(&self.vault, segments, &q)
    }

    /// A valid token, the challenge found first when none is known yet (by `probe`, sent
    /// without a token); one attempt at a time for all clones (single flight), whose
    /// failure every caller that waited for it gets at once (none asks again). `stale`: a
    /// token the vault refused, asked again unless another request already did; `renewed`:
    /// the challenge of the vault's refusal, which replaces the known one. While the
    /// current token is still valid, one task refreshes it ahead of expiry and the others
    /// use it; after a failed refresh, none is tried again for [`REFRESH_BACKOFF`].
    async fn token(
        &self,
        probe: &reqwest::Url,
        stale: Option<&HeaderValue>,
        renewed: Option<Challenge>,
    ) -> Result<HeaderValue, SourceError> {
        // No credential: said before any round trip.
        if let Credential::Invalid(why) = &self.credential {
            return Err(SourceError::new(ErrorKind::Config).with_message(why.clone()));
        }
        let arrived = Instant::now();
        let usable =
            |t: &Token, now: Instant| stale.is_none_or(|s| s != t.header) && now < t.expires_at;
        let current = {
            let state = self.auth();
            match &state.token {
                Some(t) if usable(t, arrived) => {
                    if arrived < t.refresh_at || state.refresh_after.is_some_and(|a| arrived < a) {
                        return Ok(t.header.clone());
                    }
                    Some(t.header.clone())
                }
                _ => None,
            }
        };
        let _flight = match current.clone() {
            // Refresh ahead: one task asks, the others use the current token.
            Some(header) => match self.state.flight.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(header),
            },
            None => self.state.flight.lock().await,
        };
        let challenge = {
            let mut state = self.auth();
            let now = Instant::now();
            // Another task got one while this one waited (ahead of a refresh: a new one).
            if let Some(t) = &state.token
                && usable(t, now)
                && (now < t.refresh_at || current.is_none())
            {
                return Ok(t.header.clone());
            }
            if let Some((at, e)) = &state.failure
                && *at >= arrived
                && current.is_none()
            {
                return Err(e.clone());
            }
            if let Some(c) = renewed {
                state.challenge = Some(c);
            }
            state.challenge.clone()
        };
        let asked = async {
            let challenge = match challenge {
                Some(c) => c,
                None => {
                    let c = self.discover(probe).await?;
                    self.auth().challenge = Some(c.clone());
                    c
                }
            };
            auth::request_token(
                &self.credential,
                &challenge,
                &self.authority,
                &self.allowed_tenants,
                &self.client,
                &self.identity,
            )
            .await
        }
        .await;
        let mut state = self.auth();
        match asked {
            Ok(t) => {
                let header = t.header.clone();
                state.token = Some(t);
                state.failure = None;
                state.refresh_after = None;
                Ok(header)
            }
            // A refresh ahead of expiry failed: the current token is still good.
            Err(e) if current.is_some() => {
                tracing::warn!(error = %e, "refreshing the Key Vault token failed; using the current one until it expires");
                state.refresh_after = Some(Instant::now() + REFRESH_BACKOFF);
                Ok(current.unwrap_or_else(|| HeaderValue::from_static("")))
            }
            Err(e) => {
                state.failure = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.state
            .auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `probe` without a token: the vault's 401 challenge says the tenant and the
    /// scope, checked against the vault's host before any token is asked.
    async fn discover(&self, probe: &reqwest::Url) -> Result<Challenge, SourceError> {
        let request = self.client.get().await?.get(probe.clone());
        let (status, headers, body) =
            transport::send(request, probe.as_str(), self.client.limits()).await?;
        let Some(challenge) = challenge_of(&headers) else {
            let mut text = format!(
                "the vault at {} answered a request without a token with HTTP {status} and no Bearer challenge",
                redact_url(&self.vault)
            );
            if let Some(e) = store_error(&body) {
                text.push_str(&format!(": {e}"));
            }
            text.push_str(" (is it a Key Vault?)");
            let kind = match transport::status_kind(status) {
                ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Config,
            };
            return Err(SourceError::new(kind).with_message(text));
        };
        challenge.verify(&self.vault_url_parsed()?)?;
        tracing::debug!(vault = %redact_url(&self.vault), scope = %challenge.scope, tenant = ?challenge.tenant, "Key Vault challenge");
        Ok(challenge)
    }

    fn vault_url_parsed(&self) -> Result<reqwest::Url, SourceError> {
        reqwest::Url::parse(&self.vault).map_err(|e| {
            SourceError::new(ErrorKind::Config).with_message(format!("invalid vault URL: {e}"))
        })
    }

    /// GETs `url` with a token, once more with a new token when the vault refuses it.
    async fn get(
        &self,
        url: &reqwest::Url,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), SourceError> {
        self.check_valid()?;
        let mut token = self.token(url, None, None).await?;
        let mut again = false;
        loop {
            let request = self
                .client
                .get()
                .await?
                .get(url.clone())
                .header("Authorization", token.clone());
            let answer = transport::send(request, url.as_str(), self.client.limits()).await?;
            if answer.0 == StatusCode::UNAUTHORIZED && !again {
                again = true;
                // The refusal's challenge replaces the known one (as the SDK's
                // `_update_challenge`), checked first; CAE `claims` are not supported.
                let renewed = match challenge_of(&answer.1) {
                    Some(c) => {
                        c.verify(&self.vault_url_parsed()?)?;
                        Some(c)
                    }
                    None => None,
                };
                tracing::debug!(vault = %redact_url(&self.vault), "Key Vault refused the token; asking a new one");
                token = self.token(url, Some(&token), renewed).await?;
                continue;
            }
            return Ok(answer);
        }
    }

    /// The error of a failed answer about `what`.
    fn failure(
        &self,
        what: &str,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> SourceError {
        let store = store_error(body);
        let kind = match status.as_u16() {
            404 => ErrorKind::NotFound,
            401 | 403 => ErrorKind::Unauthorized,
            400 => ErrorKind::Config,
            _ => transport::status_kind(status),
        };
        let mut text = format!(
            "Azure Key Vault {} answered HTTP {} for {what}",
            redact_url(&self.vault),
            status.as_u16()
        );
        if let Some(e) = store {
            text.push_str(&format!(": {e}"));
        }
        if status == StatusCode::UNAUTHORIZED {
            text.push_str(&format!(
                " (the {} token was refused twice)",
                self.credential.kind()
            ));
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(after) = headers.get("retry-after").and_then(|v| v.to_str().ok())
        {
            text.push_str(&format!(" (throttled: retry after {} s)", after.trim()));
        }
        SourceError::new(kind).with_message(text)
    }

    /// Reads one secret: its value and version.
    async fn read(&self, target: &Target<'_>) -> Result<(RawValue, Option<String>), SourceError> {
        self.read_polled(target).await.map_err(|(e, _)| e)
    }

    /// [`Self::read`], its error telling whether the vault itself said the secret is gone:
    /// 404 `SecretNotFound` or 403 `SecretDisabled` (a refused token, an unreachable
    /// authority or vault, a throttled read say nothing of the secret).
    async fn read_polled(
        &self,
        target: &Target<'_>,
    ) -> Result<(RawValue, Option<String>), (SourceError, bool)> {
        let url = self.url(&target.segments(), &[]).map_err(|e| (e, false))?;
        let (status, headers, body) = self.get(&url).await.map_err(|e| (e, false))?;
        if !status.is_success() {
            let codes = store_codes(&body);
            let gone = match status.as_u16() {
                404 => codes.iter().any(|c| c == "SecretNotFound"),
                403 => codes.iter().any(|c| c == "SecretDisabled"),
                _ => false,
            };
            return Err((
                self.failure(&target.describe(), status, &headers, &body),
                gone,
            ));
        }
        let bundle: SecretBundle = serde_json::from_slice(&body).map_err(|e| {
            let e = SourceError::new(ErrorKind::Decode).with_message(format!(
                "the answer for {} is not a secret bundle: {}",
                target.describe(),
                transport::json_error(&e)
            ));
            (e, false)
        })?;
        let version = bundle.id.as_deref().and_then(version_of).map(str::to_owned);
        if let (None, Some(v)) = (target.version, &version) {
            let mut read = self
                .state
                .read_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if read.len() >= MAX_REMEMBERED {
                read.clear();
            }
            read.insert(target.name.to_owned(), v.clone());
        }
        match bundle.value {
            Some(v) => Ok((RawValue::Text(v), version)),
            None => Err((
                SourceError::new(ErrorKind::Decode)
                    .with_message(format!("the answer for {} has no value", target.describe())),
                false,
            )),
        }
    }

    /// A token for the first valid request (none: nothing to do).
    async fn authenticate(&self, requests: &[&FetchRequest]) -> Result<(), SourceError> {
        let Some(target) = requests.iter().find_map(|r| Target::of(r).ok()) else {
            return Ok(());
        };
        self.check_valid()?;
        let url = self.url(&target.segments(), &[])?;
        self.token(&url, None, None).await.map(|_| ())
    }

    async fn fetch_one(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let target = Target::of(request)?;
        self.read(&target).await.map(|(v, _)| v)
    }

    /// The preflight row of one request: the versions list (properties, never a value).
    async fn probe(&self, request: &FetchRequest) -> Probe {
        let target = match Target::of(request) {
            Ok(t) => t,
            Err(e) => return Probe::new(Access::Invalid).with_detail(e.to_string()),
        };
        match self.versions(&target).await {
            Ok(p) => p,
            // The vault's own answers are rows already: a refusal here is of the
            // credential (the token endpoint, the challenge).
            Err(e) if e.kind() == ErrorKind::Unauthorized => {
                Probe::new(Access::Unauthenticated).with_detail(e.to_string())
            }
            Err(e) => Probe::from_error(&e),
        }
    }

    async fn versions(&self, target: &Target<'_>) -> Result<Probe, SourceError> {
        let mut url = self.url(
            &["secrets", target.name, "versions"],
            &[("maxresults", "25")],
        )?;
        let origin = url.origin();
        let mut newest: Option<(i64, bool, String)> = None;
        for _ in 0..MAX_VERSION_PAGES {
            let (status, headers, body) = self.get(&url).await?;
            if !status.is_success() {
                let what = format!("the versions of {}", target.describe());
                let e = self.failure(&what, status, &headers, &body);
                return Ok(match status.as_u16() {
                    // Disabled: reading it is refused too.
                    403 if store_codes(&body).iter().any(|c| c == "SecretDisabled") => {
                        Probe::new(Access::Denied).with_detail(e.to_string())
                    }
                    // Listing needs `secrets/list`, reading `secrets/get`: an access
                    // policy may grant the one without the other.
                    403 => Probe::unchecked(format!(
                        "cannot list the versions (needs the secrets/list permission; reading needs secrets/get): {e}"
                    )),
                    401 => Probe::new(Access::Unauthenticated).with_detail(e.to_string()),
                    _ => Probe::from_error(&e),
                });
            }
            let page: VersionPage = serde_json::from_slice(&body).map_err(|e| {
                SourceError::new(ErrorKind::Decode).with_message(format!(
                    "the versions of {} are not a list: {}",
                    target.describe(),
                    transport::json_error(&e)
                ))
            })?;
            for item in page.value {
                let version = item
                    .id
                    .as_deref()
                    .and_then(version_of)
                    .unwrap_or("")
                    .to_owned();
                let enabled = item.attributes.enabled.unwrap_or(true);
                if let Some(want) = target.version {
                    if version == want {
                        return Ok(row(enabled, &version));
                    }
                    continue;
                }
                let created = item.attributes.created.unwrap_or(i64::MIN);
                // Ties (versions made within one second): the one listed last.
                if newest.as_ref().is_none_or(|(c, _, _)| created >= *c) {
                    newest = Some((created, enabled, version));
                }
            }
            match page.next_link.filter(|l| !l.is_empty()) {
                // A next page only on the vault itself: the token goes nowhere else.
                Some(next) => match reqwest::Url::parse(&next) {
                    Ok(n) if n.origin() == origin => url = n,
                    _ => {
                        return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
                            "the versions of {} continue at another origin: not followed",
                            target.describe()
                        )));
                    }
                },
                None => {
                    return Ok(match (&newest, target.version) {
                        (Some((_, enabled, v)), None) => row(*enabled, v),
                        _ => Probe::missing().with_detail(format!(
                            "{} does not exist in the vault",
                            target.describe()
                        )),
                    });
                }
            }
        }
        Ok(match newest {
            Some((_, enabled, v)) if target.version.is_none() => {
                row(enabled, &v).with_detail(format!(
                    "version {v} (of the first {} listed)",
                    MAX_VERSION_PAGES * 25
                ))
            }
            _ => Probe::unchecked(format!(
                "{} not among the first {} versions listed",
                target.describe(),
                MAX_VERSION_PAGES * 25
            )),
        })
    }
}

/// The preflight row of a version found: readable when enabled.
fn row(enabled: bool, version: &str) -> Probe {
    if enabled {
        Probe::readable().with_detail(format!("enabled, version {version}"))
    } else {
        Probe::new(Access::Denied).with_detail(format!(
            "version {version} is disabled: Key Vault answers 403 Forbidden to reading it"
        ))
    }
}

#[async_trait::async_trait]
impl Source for AzureKeyVaultSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_one(request).await
    }

    /// One GET per secret (Key Vault has no batch read), at most `concurrency` at once;
    /// the challenge and the token are asked once for all of them.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        // The challenge and the token first, once: when they fail, every read fails with
        // that error at once (none asks again after the first reads are done).
        if let Err(e) = self.authenticate(requests).await {
            return requests
                .iter()
                .map(|r| Target::of(r).and(Err(e.clone())))
                .collect();
        }
        // One GET per distinct secret: fields taking members of one JSON secret (`field`)
        // share its read, as with the other stores.
        coalesce(requests, |unique| async move {
            let reads: Vec<BoxFuture<'_, Result<RawValue, SourceError>>> =
                unique.iter().map(|r| self.fetch_one(r).boxed()).collect();
            futures::stream::iter(reads)
                .buffered(self.concurrency)
                .collect()
                .await
        })
        .await
    }

    fn location(&self) -> Option<String> {
        Some(redact_url(&self.vault))
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        request.key().map(|k| match request.param("version") {
            Some(v) => ("secret", format!("{k}/{v}")),
            None => ("secret", k.to_owned()),
        })
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// Polls the current version of each watched secret (one GET per distinct secret per
    /// `watch_interval`, else [`AzureKeyVaultSource::with_watch_interval`], default
    /// [`DEFAULT_KEYVAULT_WATCH`]); a new version is a
    /// [`Change::Value`] with the value and the version as its [`Revision`]. Requests
    /// pinned to a `version` never change and are not polled.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let mut secrets: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let Ok(t) = Target::of(r) else { continue };
            if t.version.is_some() {
                continue;
            }
            match secrets.iter_mut().find(|(n, _)| n == t.name) {
                Some((_, covers)) => covers.push(i),
                None => secrets.push((t.name.to_owned(), vec![i])),
            }
        }
        if secrets.is_empty() {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("no secret to watch (every one is pinned to a version)"));
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(self.watch_interval);
        let seen: Vec<Option<String>> = {
            let read = self
                .state
                .read_at
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            secrets.iter().map(|(n, _)| read.get(n).cloned()).collect()
        };
        let state = (self.clone(), secrets, seen, true, Vec::<Change>::new());
        Ok(futures::stream::unfold(
            state,
            move |(source, secrets, mut seen, mut first, mut pending)| async move {
                loop {
                    if !pending.is_empty() {
                        let c = pending.remove(0);
                        return Some((Ok(c), (source, secrets, seen, first, pending)));
                    }
                    if !first {
                        tokio::time::sleep(every).await;
                    }
                    let polls: Vec<BoxFuture<'static, _>> = secrets
                        .iter()
                        .map(|(name, _)| {
                            let (source, name) = (source.clone(), name.clone());
                            async move {
                                let t = Target {
                                    name: &name,
                                    version: None,
                                };
                                source.read_polled(&t).await
                            }
                            .boxed()
                        })
                        .collect();
                    let reads: Vec<_> = futures::stream::iter(polls)
                        .buffered(source.concurrency)
                        .collect()
                        .await;
                    for (i, r) in reads.into_iter().enumerate() {
                        match r {
                            Ok((value, Some(version))) => {
                                // The first poll compares with the version the last fetch
                                // read, when there was one.
                                if (!first || seen[i].is_some())
                                    && seen[i].as_deref() != Some(version.as_str())
                                {
                                    for &index in &secrets[i].1 {
                                        pending.push(Change::Value {
                                            index,
                                            value: value.clone(),
                                            revision: revision_of(&version),
                                        });
                                    }
                                }
                                seen[i] = Some(version);
                            }
                            Ok((_, None)) => {}
                            // Deleted (or its current version disabled) since, in the
                            // vault's own words: the watcher reads it again and finds
                            // what is left. Any other failure (a refused token, an
                            // authority down) is no change: logged, the version kept.
                            Err((_, true)) if seen[i].is_some() => {
                                seen[i] = None;
                                pending.push(Change::Changed(secrets[i].1.clone()));
                            }
                            Err((e, _)) => {
                                tracing::debug!(secret = %secrets[i].0, error = %e, "polling a Key Vault secret failed");
                            }
                        }
                    }
                    first = false;
                }
            },
        )
        .boxed())
    }

    /// Lists the versions of each secret (`GET /secrets/{name}/versions`: properties,
    /// never a value; Key Vault's `list` permission, which "Key Vault Secrets User" has):
    /// the requested version, else the newest, decides — enabled: readable; disabled:
    /// denied; none: missing. A refused token: unauthenticated; a refused listing (a
    /// caller granted `secrets/get` but not `secrets/list`): unchecked, saying so.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            let probes: Vec<BoxFuture<'_, Probe>> =
                requests.iter().map(|r| self.probe(r).boxed()).collect();
            futures::stream::iter(probes)
                .buffered(self.concurrency)
                .collect()
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_versions_and_errors() {
        assert!(valid_name("db-password"));
        assert!(!valid_name("db/password"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(128)));
        assert_eq!(
            version_of("https://v.vault.azure.net/secrets/db/0123abcd"),
            Some("0123abcd")
        );
        assert_eq!(
            revision_of("0a1b").map(|r| r.to_string()).as_deref(),
            Some("0a1b")
        );
        let body = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        assert_eq!(
            store_error(body).as_deref(),
            Some("Forbidden/SecretDisabled: Operation get is not allowed on a disabled secret.")
        );
        assert_eq!(store_error(b"password=1"), None);
    }

    #[test]
    fn failures_carry_the_stores_code_and_the_throttle() {
        let kv = AzureKeyVaultSource::with_env(
            "https://myvault.vault.azure.net",
            &EnvSource::from_map([("X", "1")]),
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        let body = br#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#;
        let e = kv.failure("secret `db`", StatusCode::TOO_MANY_REQUESTS, &headers, body);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let text = e.to_string();
        assert!(
            text.contains("HTTP 429 for secret `db`: Throttled: Request was not processed"),
            "{text}"
        );
        assert!(text.contains("retry after 7 s"), "{text}");
        let e = kv.failure(
            "secret `db`",
            StatusCode::UNAUTHORIZED,
            &Default::default(),
            b"",
        );
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.to_string().contains("refused twice"), "{e}");
        let e = kv.failure(
            "secret `db`",
            StatusCode::BAD_REQUEST,
            &Default::default(),
            br#"{"error":{"code":"BadParameter","message":"x"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn plain_http_vaults_are_refused_off_this_machine() {
        let kv = AzureKeyVaultSource::with_env(
            "http://myvault.vault.azure.net",
            &EnvSource::from_map([("X", "1")]),
        );
        assert!(kv.check_valid().is_err());
        let kv =
            AzureKeyVaultSource::with_env("http://127.0.0.1:1", &EnvSource::from_map([("X", "1")]));
        assert!(kv.check_valid().is_ok());
    }
}
