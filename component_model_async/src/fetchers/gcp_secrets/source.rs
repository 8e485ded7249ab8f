//! [`GcpSecretsSource`]: Google Secret Manager over its REST API (v1).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;

use super::auth::{self, Credentials, TokenCache};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client};
use crate::source::{
    Access, Change, Changes, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Revision,
    Source,
};
use crate::source_support::{coalesce, redact_url};

/// Google's endpoint of Secret Manager.
pub const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";

/// How many requests one fetch has in flight at once unless
/// [`GcpSecretsSource::with_concurrency`] says otherwise (Secret Manager has no batch read).
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How often a watch reads the watched versions' metadata when the fields name no
/// `watch_interval`: Secret Manager's quota of reads (`get`, `list`) is 600 a minute per
/// project, far below its quota of accesses.
pub const DEFAULT_GCP_WATCH: Duration = Duration::from_secs(60);

/// Google Secret Manager: `fetch_from = "gcp_secrets", key = "db"` (with a project) or
/// `key = "projects/p/secrets/db/versions/latest"`. See the [module](super) for what it
/// reads and how it authenticates.
///
/// ```
/// use component_model_async::{GcpSecretsSource, Source};
///
/// let gcp = GcpSecretsSource::new().with_project("my-project");
/// assert_eq!(
///     gcp.location().as_deref(),
///     Some("https://secretmanager.googleapis.com (project my-project)")
/// );
/// // A static token is never shown.
/// let gcp = gcp.with_token("ya29.s3cret");
/// assert!(!format!("{gcp:?}").contains("s3cret"));
/// ```
///
/// Against the API double of `test_util` (feature `test-util`):
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use component_model_async::test_util::GcpSecretsDouble;
/// use component_model_async::{AsyncAssign, GcpSecretsSource, SecretString, Sources};
/// use component_model_async::secrecy::ExposeSecret;
///
/// #[derive(AsyncAssign, Debug)]
/// struct Secrets {
///     #[component(fetch_from = "gcp_secrets", key = "db-password")]
///     password: SecretString,
///     #[component(fetch_from = "gcp_secrets", key = "projects/other/secrets/api-key/versions/1")]
///     api_key: String,
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let gcp = GcpSecretsDouble::start().await; // no authentication
/// gcp.add_version("demo", "db-password", b"pw");
/// gcp.add_version("other", "api-key", b"k-1");
/// let source = GcpSecretsSource::new()
///     .with_endpoint(gcp.url())
///     .with_project("demo")
///     .without_auth();
/// let sources = Sources::new().register("gcp_secrets", source);
/// let s = Secrets::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((s.password.expose_secret(), s.api_key.as_str()), ("pw", "k-1"));
/// assert_eq!(gcp.access_requests(), 2); // one GET per secret
/// # });
/// # }
/// ```
#[derive(Clone)]
pub struct GcpSecretsSource {
    endpoint: String,
    /// The project named (`with_project`, `GOOGLE_CLOUD_PROJECT`).
    project: Option<String>,
    /// The credentials file's `project_id` (used when none is named).
    file_project: Option<String>,
    /// The project billed for quota (`x-goog-user-project`): named, else the file's.
    quota_project: Option<String>,
    file_quota_project: Option<String>,
    credentials: Credentials,
    client: Client,
    metadata: Client,
    concurrency: usize,
    watch_every: Duration,
    invalid: Option<String>,
    state: Arc<State>,
}

/// What the clones of a source share.
#[derive(Default)]
struct State {
    tokens: TokenCache,
    /// The metadata server's project, once asked.
    metadata_project: auth::Flight<String>,
    /// A watch was refused the versions' metadata: it polls with `:access`.
    metadata_denied: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for GcpSecretsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpSecretsSource")
            .field("endpoint", &redact_url(&self.endpoint))
            .field("project", &self.project())
            .field("quota_project", &self.quota_project())
            .field("credentials", &self.credentials)
            .field("timeout", &self.client.timeout)
            .field("max_body", &self.client.max_body)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Default for GcpSecretsSource {
    fn default() -> Self {
        Self::new()
    }
}

/// A secret version's full name, as resolved for one request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Name {
    project: String,
    secret: String,
    version: String,
}

impl Name {
    fn resource(&self) -> String {
        format!(
            "projects/{}/secrets/{}/versions/{}",
            self.project, self.secret, self.version
        )
    }

    fn what(&self) -> String {
        format!("secret `{}`", self.resource())
    }

    fn segments(&self, suffix: &str) -> [String; 7] {
        [
            "v1".to_owned(),
            "projects".to_owned(),
            self.project.clone(),
            "secrets".to_owned(),
            self.secret.clone(),
            "versions".to_owned(),
            format!("{}{suffix}", self.version),
        ]
    }
}

/// What a key names before the project is known: `(project, secret, version)`.
fn parse_key(request: &FetchRequest) -> Result<(Option<String>, String, String), SourceError> {
    let config = |m: String| SourceError::new(ErrorKind::Config).with_message(m);
    let key = request
        .key()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            config("the field names no `key` (a secret id or a full secret name)".to_owned())
        })?;
    let param_version = request
        .param("version")
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let (project, secret, version) = if let Some(rest) = key.strip_prefix("projects/") {
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [p, "secrets", s] => (Some((*p).to_owned()), *s, None),
            [p, "secrets", s, "versions", v] => (Some((*p).to_owned()), *s, Some(*v)),
            [_, "locations", ..] => {
                return Err(config(format!(
                    "key `{key}` names a regional secret: the `gcp_secrets` source reads global secrets (`projects/P/secrets/S[/versions/V]`)"
                )));
            }
            _ => {
                return Err(config(format!(
                    "key `{key}` is not a secret name: write `projects/P/secrets/S`, `projects/P/secrets/S/versions/V`, or the secret id alone with a project"
                )));
            }
        }
    } else if key.contains('/') {
        return Err(config(format!(
            "key `{key}` is not a secret id (letters, digits, `-` and `_`) nor a full name `projects/P/secrets/S[/versions/V]`"
        )));
    } else {
        (None, key, None)
    };
    let version = match (version, param_version) {
        (Some(a), Some(b)) if a != b => {
            return Err(config(format!(
                "key `{key}` names version `{a}` and the field's `version` says `{b}`: name it once"
            )));
        }
        (Some(v), _) | (None, Some(v)) => v,
        (None, None) => "latest",
    };
    if secret.is_empty()
        || secret.len() > 255
        || !secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(config(format!(
            "key `{key}`: `{secret}` is not a secret id (1 to 255 letters, digits, `-` and `_`)"
        )));
    }
    if version != "latest" && (version.is_empty() || !version.chars().all(|c| c.is_ascii_digit())) {
        return Err(config(format!(
            "key `{key}`: version `{version}` is neither `latest` nor a version number"
        )));
    }
    let project = project.or_else(|| request.param("project").map(|p| p.trim().to_owned()));
    if let Some(p) = &project
        && (p.is_empty() || p.contains(['/', ' ', '?', '#']))
    {
        return Err(config(format!("key `{key}`: `{p}` is not a project id")));
    }
    Ok((project, secret.to_owned(), version.to_owned()))
}

/// An int64 of the JSON API: a string (`"42"`) or a number.
#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "I64Repr")]
struct I64(i64);

#[derive(Deserialize)]
#[serde(untagged)]
enum I64Repr {
    Text(String),
    Number(i64),
}

impl TryFrom<I64Repr> for I64 {
    type Error = String;

    fn try_from(r: I64Repr) -> Result<Self, String> {
        match r {
            I64Repr::Text(s) => s
                .parse::<i64>()
                .map(I64)
                .map_err(|_| "`dataCrc32c` is not an int64".to_owned()),
            I64Repr::Number(n) => Ok(I64(n)),
        }
    }
}

#[derive(Deserialize)]
struct AccessResponse {
    #[serde(default)]
    name: String,
    #[serde(default)]
    payload: Option<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    data: Option<String>,
    #[serde(default, rename = "dataCrc32c")]
    data_crc32c: Option<I64>,
}

#[derive(Deserialize)]
struct VersionResponse {
    #[serde(default)]
    name: String,
    #[serde(default)]
    state: Option<serde_json::Value>,
}

impl VersionResponse {
    /// `ENABLED`, `DISABLED`, `DESTROYED` (the API answers enums as text, or as numbers
    /// when asked `enum-encoding=int`).
    fn state(&self) -> String {
        match &self.state {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => match n.as_u64() {
                Some(1) => "ENABLED".to_owned(),
                Some(2) => "DISABLED".to_owned(),
                Some(3) => "DESTROYED".to_owned(),
                _ => "STATE_UNSPECIFIED".to_owned(),
            },
            _ => "STATE_UNSPECIFIED".to_owned(),
        }
    }
}

/// The version number at the end of a version's name (`.../versions/3`).
fn version_number(name: &str) -> Option<u64> {
    name.rsplit('/').next()?.parse().ok()
}

/// `text` cut to 300 bytes (an error body may be anything).
pub(super) fn bounded(text: String) -> String {
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &text[..cut])
    } else {
        text
    }
}

/// Google's error body: `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}`:
/// its status and message.
fn google_error(body: &[u8]) -> (Option<String>, String) {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let error = &parsed["error"];
    let status = error["status"].as_str().map(str::to_owned);
    let message = match error["message"].as_str() {
        Some(m) => m.to_owned(),
        None if status.is_some() => String::new(),
        None => String::from_utf8_lossy(body).trim().to_owned(),
    };
    (status, bounded(message))
}

/// The error of a failed call: its kind from Google's status (else the HTTP status), the
/// message naming `what` with the status and Google's message.
fn api_error(status: StatusCode, body: &[u8], what: &str) -> SourceError {
    let (google, message) = google_error(body);
    let kind = match google.as_deref() {
        Some("NOT_FOUND") => ErrorKind::NotFound,
        Some("PERMISSION_DENIED" | "UNAUTHENTICATED") => ErrorKind::Unauthorized,
        Some("FAILED_PRECONDITION" | "INVALID_ARGUMENT" | "OUT_OF_RANGE") => ErrorKind::Config,
        Some(
            "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED" | "ABORTED",
        ) => ErrorKind::Unavailable,
        _ => transport::status_kind(status),
    };
    let mut text = format!("Secret Manager answered HTTP {}", status.as_u16());
    if let Some(g) = &google {
        text.push_str(&format!(" {g}"));
    }
    text.push_str(&format!(" for {what}"));
    if !message.is_empty() {
        text.push_str(&format!(": {message}"));
    }
    if google.as_deref() == Some("FAILED_PRECONDITION") {
        text.push_str(
            " (a disabled or destroyed version cannot be read: enable it, or name another version)",
        );
    }
    SourceError::new(kind).with_message(text)
}

/// A failed call: its error, and whether Secret Manager answered `PERMISSION_DENIED`
/// (carried as a flag: the message names the secret, and may say anything).
pub(super) struct Failure {
    error: SourceError,
    permission_denied: bool,
}

impl From<SourceError> for Failure {
    fn from(error: SourceError) -> Self {
        Failure {
            error,
            permission_denied: false,
        }
    }
}

impl From<Failure> for SourceError {
    fn from(f: Failure) -> Self {
        f.error
    }
}

/// A payload's `data`: base64, standard or URL-safe alphabet, padded or not.
fn decode_payload(text: &str) -> Option<Vec<u8>> {
    use base64::engine::{
        DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig, general_purpose,
    };
    let any = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, any)
        .decode(text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, any).decode(text))
        .ok()
        .or_else(|| general_purpose::STANDARD.decode(text).ok())
}

/// The crc32c of the payload, as the API's `dataCrc32c` (an int64) carries it.
fn crc(data: &[u8]) -> i64 {
    i64::from(crc32c::crc32c(data))
}

impl GcpSecretsSource {
    /// Secret Manager at [`DEFAULT_ENDPOINT`], with the metadata server's credentials
    /// (`GCE_METADATA_HOST` is read by [`GcpSecretsSource::from_env`], not here); name a
    /// project with [`GcpSecretsSource::with_project`] unless every key is a full name
    /// (else the metadata server's project is used).
    pub fn new() -> Self {
        GcpSecretsSource {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            project: None,
            file_project: None,
            quota_project: None,
            file_quota_project: None,
            credentials: Credentials::Metadata {
                host: auth::DEFAULT_METADATA_HOST.to_owned(),
            },
            client: Client::new(transport::DEFAULT_REQUEST_TIMEOUT),
            // Straight to the metadata server, never through a proxy (`Client::direct`).
            metadata: Client::new(auth::METADATA_TIMEOUT).direct(),
            concurrency: DEFAULT_CONCURRENCY,
            watch_every: DEFAULT_GCP_WATCH,
            invalid: None,
            state: Arc::default(),
        }
    }

    /// The source the process environment describes (see
    /// [`GcpSecretsSource::from_env_source`]).
    pub fn from_env() -> Option<Self> {
        Self::from_env_source(&EnvSource::process())
    }

    /// The source `env` describes, `None` when it names none of `GOOGLE_CLOUD_PROJECT`,
    /// `GCLOUD_PROJECT` and `GOOGLE_APPLICATION_CREDENTIALS` and gcloud's application
    /// default credentials file does not exist:
    ///
    /// * credentials: the JSON file `GOOGLE_APPLICATION_CREDENTIALS` names (a
    ///   `service_account` key or an `authorized_user`), else gcloud's file
    ///   (`gcloud auth application-default login`):
    ///   `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
    ///   `$HOME/.config/gcloud/...` (`%APPDATA%\gcloud\...` on Windows), else the metadata server
    ///   (`GCE_METADATA_HOST` overrides `metadata.google.internal`); a file that cannot
    ///   be read or used fails every fetch with the reason;
    /// * project (for keys that are a secret id): `GOOGLE_CLOUD_PROJECT`, else
    ///   `GCLOUD_PROJECT`, else the file's `project_id`, else the metadata server's (when
    ///   it gives the credentials);
    /// * quota project (`x-goog-user-project`): `GOOGLE_CLOUD_QUOTA_PROJECT`, else the
    ///   file's `quota_project_id`;
    /// * endpoint: `GCP_SECRETS_ENDPOINT` (this crate's own variable, for a local
    ///   double or a private endpoint), else [`DEFAULT_ENDPOINT`].
    ///
    /// ```
    /// use component_model_async::{EnvSource, GcpSecretsSource, Source};
    ///
    /// let env = EnvSource::from_map([("GOOGLE_CLOUD_PROJECT", "shop")]);
    /// let gcp = GcpSecretsSource::from_env_source(&env).unwrap();
    /// assert_eq!(gcp.location().as_deref(), Some("https://secretmanager.googleapis.com (project shop)"));
    /// assert!(GcpSecretsSource::from_env_source(&EnvSource::from_map([("X", "1")])).is_none());
    /// ```
    pub fn from_env_source(env: &EnvSource) -> Option<Self> {
        let get = |name: &str| {
            env.get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        // google-auth's order: the variable, then gcloud's application default
        // credentials file (`gcloud auth application-default login`), then metadata.
        let file = get("GOOGLE_APPLICATION_CREDENTIALS").or_else(|| {
            let config = get("CLOUDSDK_CONFIG")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    if cfg!(windows) {
                        get("APPDATA").map(|a| Path::new(&a).join("gcloud"))
                    } else {
                        get("HOME").map(|h| Path::new(&h).join(".config").join("gcloud"))
                    }
                })?;
            let adc = config.join("application_default_credentials.json");
            adc.is_file().then(|| adc.to_string_lossy().into_owned())
        });
        let env_project = get("GOOGLE_CLOUD_PROJECT").or_else(|| get("GCLOUD_PROJECT"));
        if file.is_none() && env_project.is_none() {
            return None;
        }
        let mut source = GcpSecretsSource::new();
        if let Some(host) = get("GCE_METADATA_HOST") {
            source = source.with_metadata_host(host);
        }
        if let Some(endpoint) = get("GCP_SECRETS_ENDPOINT") {
            source = source.with_endpoint(endpoint);
        }
        if let Some(path) = file {
            source = source.with_credentials_file(path);
        }
        if let Some(project) = env_project {
            source.project = Some(project);
        }
        if let Some(quota) = get("GOOGLE_CLOUD_QUOTA_PROJECT") {
            source.quota_project = Some(quota);
        }
        Some(source)
    }

    /// Talks to Secret Manager at `url` (a private endpoint, an emulator, the
    /// [`GcpSecretsDouble`](crate::test_util::GcpSecretsDouble)); `host:port` is https.
    #[must_use]
    pub fn with_endpoint(mut self, url: impl AsRef<str>) -> Self {
        self.endpoint = transport::base_url(url.as_ref(), "https");
        self
    }

    /// The project of keys that are a secret id (a field's `project = "..."` wins).
    #[must_use]
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sends `x-goog-user-project: {project}` with every Secret Manager request: the
    /// project billed for quota and charged for the API (`GOOGLE_CLOUD_QUOTA_PROJECT`, a
    /// credentials file's `quota_project_id`); not the secrets' project.
    ///
    /// ```
    /// use component_model_async::GcpSecretsSource;
    ///
    /// let gcp = GcpSecretsSource::new().with_project("app").with_quota_project("billing");
    /// assert!(format!("{gcp:?}").contains("billing"));
    /// ```
    #[must_use]
    pub fn with_quota_project(mut self, project: impl Into<String>) -> Self {
        self.quota_project = Some(project.into());
        self
    }

    /// Authenticates with the JSON of a credentials file (`service_account` or
    /// `authorized_user`); its `project_id` is used when no project is named, its
    /// `quota_project_id` is sent as `x-goog-user-project` (the project billed for quota,
    /// as Google's libraries do) unless [`GcpSecretsSource::with_quota_project`] says. Kept secret; a file
    /// that cannot be used fails every fetch with the reason (never its content).
    #[must_use]
    pub fn with_credentials_json(mut self, json: impl AsRef<[u8]>) -> Self {
        self.set_credentials(auth::parse_credentials(
            json.as_ref(),
            "the credentials JSON",
        ));
        self
    }

    /// Authenticates with the credentials file at `path` (read now, at most 1 MiB).
    #[must_use]
    pub fn with_credentials_file(mut self, path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let what = format!("the credentials file {}", path.display());
        let read = std::fs::File::open(path)
            .and_then(|f| {
                use std::io::Read;
                let mut bytes = Vec::new();
                f.take(auth::MAX_CREDENTIALS_FILE + 1)
                    .read_to_end(&mut bytes)?;
                Ok(bytes)
            })
            .map_err(|e| format!("cannot read {what}: {e}"))
            .and_then(|bytes| {
                if bytes.len() as u64 > auth::MAX_CREDENTIALS_FILE {
                    Err(format!("{what} is larger than 1 MiB"))
                } else {
                    auth::parse_credentials(&bytes, &what)
                }
            });
        self.set_credentials(read);
        self
    }

    fn set_credentials(&mut self, parsed: Result<auth::Parsed, String>) {
        match parsed {
            Ok(p) => {
                self.credentials = p.credentials;
                self.file_project = p.project;
                self.file_quota_project = p.quota_project;
                self.invalid = None;
            }
            Err(why) => self.invalid = Some(why),
        }
        self.state = Arc::default();
    }

    /// Sends this OAuth access token (kept secret) as `Authorization: Bearer`; it is
    /// never renewed (a `401` fails the fetch).
    #[must_use]
    pub fn with_token(mut self, token: impl Into<SecretString>) -> Self {
        use secrecy::ExposeSecret;
        let token: SecretString = token.into();
        match transport::secret_header(
            "Authorization",
            &format!("Bearer {}", token.expose_secret()),
        ) {
            Ok(h) => {
                self.credentials = Credentials::Static(h);
                self.invalid = None;
            }
            Err(e) => self.invalid = e.message().map(str::to_owned),
        }
        self.file_project = None;
        self.file_quota_project = None;
        self.state = Arc::default();
        self
    }

    /// Sends no credentials (an emulator, an API double).
    #[must_use]
    pub fn without_auth(mut self) -> Self {
        self.credentials = Credentials::Anonymous;
        self.invalid = None;
        self.file_project = None;
        self.file_quota_project = None;
        self.state = Arc::default();
        self
    }

    /// Asks the metadata server at `host` (`GCE_METADATA_HOST`: `host:port`, or a URL)
    /// for tokens and the project; it is also what the source uses when no credentials
    /// were given. Ignored once other credentials are set (a file, a token,
    /// `without_auth`): call it before them, or not at all.
    #[must_use]
    pub fn with_metadata_host(mut self, host: impl Into<String>) -> Self {
        let host = host.into();
        if let Credentials::Metadata { .. } = self.credentials {
            self.credentials = Credentials::Metadata { host };
            self.state = Arc::default();
        }
        self
    }

    /// Limits each request (to Secret Manager and to token endpoints) to `timeout`
    /// (default 10 s). The metadata server gets at most 3 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.with_timeout(timeout);
        self.metadata = self
            .metadata
            .with_timeout(timeout.min(auth::METADATA_TIMEOUT));
        self
    }

    /// Reads response bodies of at most `bytes` (default 16 MiB; a secret holds at most
    /// 64 KiB): a larger one fails with [`ErrorKind::TooLarge`].
    #[must_use]
    pub fn with_max_body(mut self, bytes: usize) -> Self {
        self.client.max_body = bytes;
        self.metadata.max_body = bytes;
        self
    }

    /// Connects to the endpoint and token endpoints with these TLS settings.
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsConfig) -> Self {
        self.client = self.client.with_tls(tls);
        self
    }

    /// Has at most `n` requests in flight per fetch (default [`DEFAULT_CONCURRENCY`];
    /// `0` counts as 1).
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How often a watch reads the versions' metadata when the watched fields name no
    /// `watch_interval` (default [`DEFAULT_GCP_WATCH`], 60 s).
    #[must_use]
    pub fn with_watch_interval(mut self, every: Duration) -> Self {
        self.watch_every = every;
        self
    }

    /// The endpoint's base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The project of keys that are a secret id: named, else the credentials file's.
    fn project(&self) -> Option<&String> {
        self.project.as_ref().or(self.file_project.as_ref())
    }

    /// The project billed for quota: named, else the credentials file's.
    fn quota_project(&self) -> Option<&String> {
        self.quota_project
            .as_ref()
            .or(self.file_quota_project.as_ref())
    }

    fn check_valid(&self) -> Result<(), SourceError> {
        match &self.invalid {
            Some(why) => Err(SourceError::new(ErrorKind::Config).with_message(why.clone())),
            None => Ok(()),
        }
    }

    /// The full version name `request` reads.
    async fn resolve(&self, request: &FetchRequest) -> Result<Name, SourceError> {
        let (project, secret, version) = parse_key(request)?;
        let project = match project.or_else(|| self.project().cloned()) {
            Some(p) => p,
            None => match &self.credentials {
                Credentials::Metadata { host } => self
                    .state
                    .metadata_project
                    .get(|_| true, || auth::metadata_project(host, &self.metadata))
                    .await
                    .map_err(|e| {
                        SourceError::new(ErrorKind::Config).with_message(format!(
                            "secret `{secret}` names no project, and {} (set GOOGLE_CLOUD_PROJECT, `project = \"...\"` or `with_project`)",
                            e.message().unwrap_or("the metadata server gave none")
                        ))
                    })?
                    .clone(),
                _ => {
                    return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                        "secret `{secret}` names no project: write `projects/P/secrets/{secret}`, `project = \"...\"`, or set GOOGLE_CLOUD_PROJECT (or `with_project`)"
                    )));
                }
            },
        };
        Ok(Name {
            project,
            secret,
            version,
        })
    }

    /// `GET url` with the access token; asked again once when Secret Manager answers
    /// `401`. The body of a success, else the error naming `what`.
    async fn get(&self, url: &reqwest::Url, what: &str) -> Result<Vec<u8>, Failure> {
        self.check_valid()?;
        let tokens = &self.state.tokens;
        let mut token = tokens
            .get(&self.credentials, &self.client, &self.metadata)
            .await?;
        let mut renewed = false;
        loop {
            let client = self.client.get().await?;
            let mut request = client.get(url.clone());
            if let Some(t) = &token {
                request = request.header("Authorization", t.clone());
            }
            if let Some(q) = self.quota_project() {
                let value = reqwest::header::HeaderValue::from_str(q).map_err(|_| {
                    SourceError::new(ErrorKind::Config)
                        .with_message(format!("the quota project `{q}` is not a project id"))
                })?;
                request = request.header("x-goog-user-project", value);
            }
            let (status, _, body) =
                transport::send(request, url.as_str(), self.client.limits()).await?;
            if status.is_success() {
                return Ok(body);
            }
            if status == StatusCode::UNAUTHORIZED && !renewed && self.credentials.renewable() {
                renewed = true;
                token = tokens
                    .renew(
                        &self.credentials,
                        &self.client,
                        &self.metadata,
                        token.as_ref(),
                    )
                    .await?;
                continue;
            }
            let permission_denied = status == StatusCode::FORBIDDEN
                && google_error(&body).0.as_deref() == Some("PERMISSION_DENIED");
            return Err(Failure {
                error: api_error(status, &body, what),
                permission_denied,
            });
        }
    }

    /// `:access` of one version: its payload (CRC32C checked), the version's full name,
    /// and the payload's CRC32C.
    async fn access(&self, name: &Name) -> Result<(RawValue, String, i64), Failure> {
        let what = name.what();
        let segments = name.segments(":access");
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let url = transport::join_url(&self.endpoint, &refs, &[])?;
        let body = self.get(&url, &what).await?;
        let parsed: AccessResponse = serde_json::from_slice(&body).map_err(|e| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "Secret Manager's answer for {what} is not an AccessSecretVersionResponse: {}",
                transport::json_error(&e)
            ))
        })?;
        let payload = parsed.payload.ok_or_else(|| {
            SourceError::new(ErrorKind::Decode).with_message(format!(
                "Secret Manager's answer for {what} has no `payload`"
            ))
        })?;
        let text = payload.data.unwrap_or_default();
        let data = decode_payload(&text).ok_or_else(|| {
            SourceError::new(ErrorKind::Decode)
                .with_message(format!("the payload of {what} is not valid base64"))
        })?;
        if let Some(expected) = payload.data_crc32c {
            let actual = crc(&data);
            if actual != expected.0 {
                return Err(Failure::from(SourceError::new(ErrorKind::Decode).with_message(format!(
                    "the payload of {what} failed its CRC32C check (Secret Manager says {}, the bytes received give {actual}): corrupted in transit or storage",
                    expected.0
                ))));
            }
        }
        let sum = crc(&data);
        Ok((RawValue::text_or_bytes(data), parsed.name, sum))
    }

    /// The metadata of one version (`GET` of the version: no payload).
    async fn version(&self, name: &Name) -> Result<VersionResponse, Failure> {
        let what = name.what();
        let segments = name.segments("");
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let url = transport::join_url(&self.endpoint, &refs, &[])?;
        let body = self.get(&url, &what).await?;
        serde_json::from_slice(&body).map_err(|e| {
            Failure::from(SourceError::new(ErrorKind::Decode).with_message(format!(
                "Secret Manager's answer for the metadata of {what} is not a SecretVersion: {}",
                transport::json_error(&e)
            )))
        })
    }

    async fn read_one(
        &self,
        request: &FetchRequest,
    ) -> (Result<RawValue, SourceError>, Option<u64>) {
        // A broken credentials file says so before the project is looked for.
        if let Err(e) = self.check_valid() {
            return (Err(e), None);
        }
        match self.resolve(request).await {
            Ok(name) => match self.access(&name).await {
                Ok((value, version, _)) => (Ok(value), version_number(&version)),
                Err(e) => (Err(e.error), None),
            },
            Err(e) => (Err(e), None),
        }
    }

    /// The name and state of the version `request` reads: from its metadata (`GET`),
    /// else, once that is refused `PERMISSION_DENIED` (a workload with
    /// `roles/secretmanager.secretAccessor` only), from `:access` (the name and the
    /// payload's CRC32C; the payload dropped). `Ok(None)` when it cannot be read now.
    async fn poll(&self, request: &FetchRequest) -> Result<Option<(String, String)>, SourceError> {
        use std::sync::atomic::Ordering;
        let Ok(name) = self.resolve(request).await else {
            return Ok(None);
        };
        if !self.state.metadata_denied.load(Ordering::Relaxed) {
            match self.version(&name).await {
                Ok(v) => return Ok(Some((v.name.clone(), v.state()))),
                Err(f) if f.permission_denied => {
                    tracing::debug!(error = %f.error, "the version's metadata is not visible; the watch polls with `:access` instead");
                    self.state.metadata_denied.store(true, Ordering::Relaxed);
                }
                Err(f) => {
                    tracing::debug!(error = %f.error, "reading a secret version's metadata failed");
                    return Ok(None);
                }
            }
        }
        match self.access(&name).await {
            Ok((_, version, sum)) => Ok(Some((version, format!("crc32c {sum}")))),
            Err(f) if f.permission_denied => Err(f.error),
            Err(f) if f.error.kind() == ErrorKind::Config => {
                // FAILED_PRECONDITION: the version is disabled or destroyed.
                Ok(Some((name.resource(), "not readable".to_owned())))
            }
            Err(f) => {
                tracing::debug!(error = %f.error, "polling a secret version failed");
                Ok(None)
            }
        }
    }

    async fn probe(&self, request: &FetchRequest) -> Probe {
        if let Err(e) = self.check_valid() {
            return Probe::from_error(&e);
        }
        let name = match self.resolve(request).await {
            Ok(n) => n,
            Err(e) => return Probe::from_error(&e),
        };
        match self.version(&name).await {
            Ok(v) => {
                let number = version_number(&v.name)
                    .map(|n| format!("version {n}"))
                    .unwrap_or_else(|| "the version".to_owned());
                match v.state().as_str() {
                    "ENABLED" => Probe::readable().with_detail(format!("{number} enabled")),
                    state => Probe::new(Access::Invalid).with_detail(format!(
                        "{number} of {} is {state}: it cannot be read",
                        name.what()
                    )),
                }
            }
            Err(f) if f.permission_denied => match self.access(&name).await {
                Ok((_, version, _)) => Probe::readable().with_detail(format!(
                    "{} readable; its metadata is not visible (needs secretmanager.versions.get, e.g. roles/secretmanager.viewer)",
                    version_number(&version)
                        .map(|n| format!("version {n}"))
                        .unwrap_or_else(|| "the version".to_owned())
                )),
                Err(f) => probe_of_error(&f),
            },
            Err(f) => probe_of_error(&f),
        }
    }
}

/// A preflight's error: Google's `PERMISSION_DENIED` is denied, any other refusal (a
/// token endpoint refusing the credentials, `UNAUTHENTICATED`) unauthenticated, the rest
/// as [`Probe::from_error`] says.
fn probe_of_error(f: &Failure) -> Probe {
    let mut probe = Probe::from_error(&f.error);
    if f.error.kind() == ErrorKind::Unauthorized && !f.permission_denied {
        probe.access = Access::Unauthenticated;
    }
    probe
}

#[async_trait::async_trait]
impl Source for GcpSecretsSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request])
            .await
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }

    /// One `GET ...:access` per distinct secret version, at most `concurrency` at once.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// As [`Source::fetch_many`], noting each value's version number for the fetch report.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let revisions: Mutex<Vec<(FetchRequest, u64)>> = Mutex::new(Vec::new());
        let answers = coalesce(requests, |unique| {
            let revisions = &revisions;
            async move {
                let reads: Vec<_> = unique.iter().map(|r| self.read_one(r)).collect();
                let read: Vec<_> = futures::stream::iter(reads)
                    .buffered(self.concurrency)
                    .collect()
                    .await;
                let mut noted = revisions.lock().unwrap_or_else(PoisonError::into_inner);
                read.into_iter()
                    .zip(unique.iter())
                    .map(|((answer, version), r)| {
                        if let (Ok(_), Some(v)) = (&answer, version) {
                            noted.push(((*r).clone(), v));
                        }
                        answer
                    })
                    .collect()
            }
        })
        .await;
        for (request, revision) in revisions
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
        {
            cx.note_revision(&request, Revision::Index(revision));
        }
        answers
    }

    /// The endpoint, and the project when one is set.
    fn location(&self) -> Option<String> {
        Some(match self.project() {
            Some(p) => format!("{} (project {p})", redact_url(&self.endpoint)),
            None => redact_url(&self.endpoint),
        })
    }

    /// `secret projects/P/secrets/S/versions/V` when the project is known without asking
    /// the metadata server, else the key as written.
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        match parse_key(request) {
            Ok((project, secret, version)) => match project.or_else(|| self.project().cloned()) {
                Some(project) => Some((
                    "secret",
                    Name {
                        project,
                        secret,
                        version,
                    }
                    .resource(),
                )),
                None => request.key().map(|k| ("secret", k.to_owned())),
            },
            Err(_) => request.native_key(),
        }
    }

    /// Every value is secret.
    fn is_sensitive(&self) -> bool {
        true
    }

    /// A field without `key` reads the secret named after it: its path joined with `_`
    /// (a secret id has no `/`).
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        Ok(request.with_key(field.key('_')))
    }

    /// `GET` of each version (its metadata, never its payload): `ENABLED` is readable,
    /// `DISABLED` or `DESTROYED` invalid, `404` missing, `PERMISSION_DENIED` denied (but
    /// readable when `:access` succeeds: an accessor-only role, said in the detail),
    /// credentials refused unauthenticated, no answer unreachable.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            let probes: Vec<_> = requests.iter().map(|r| self.probe(r)).collect();
            futures::stream::iter(probes)
                .buffered(self.concurrency)
                .collect()
                .await
        })
    }

    /// Polls the metadata of each watched version (`GET .../versions/latest`: its name
    /// says the newest version number) every `watch_interval` of the fields (default
    /// [`GcpSecretsSource::with_watch_interval`]); a new name or state is a change of the requests reading it.
    /// Refused that `GET` (`PERMISSION_DENIED`), it polls with `:access` (name and CRC32C
    /// compared, payload dropped); refused both, the stream yields the error once.
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        self.check_valid()?;
        if requests.is_empty() {
            return Err(SourceError::new(ErrorKind::Config).with_message("no secret to watch"));
        }
        let every = requests
            .iter()
            .filter_map(|r| r.spec().and_then(|s| s.watch_interval))
            .min()
            .unwrap_or(self.watch_every);
        let state = (
            self.clone(),
            requests,
            None::<Vec<Option<(String, String)>>>,
            false,
        );
        Ok(futures::stream::unfold(
            state,
            move |(source, requests, mut seen, mut told)| async move {
                loop {
                    if seen.is_some() {
                        tokio::time::sleep(every).await;
                    }
                    let polls: Vec<_> = requests.iter().map(|r| source.poll(r)).collect();
                    let polled: Vec<Result<Option<(String, String)>, SourceError>> =
                        futures::stream::iter(polls)
                            .buffered(source.concurrency)
                            .collect()
                            .await;
                    let mut refused = None;
                    let now: Vec<Option<(String, String)>> = polled
                        .into_iter()
                        .map(|p| {
                            p.unwrap_or_else(|e| {
                                refused.get_or_insert(e);
                                None
                            })
                        })
                        .collect();
                    if let Some(e) = refused.filter(|_| !told) {
                        // Polling is impossible (neither the metadata nor the payload
                        // may be read): said once; the polls go on.
                        told = true;
                        let seen = seen.or(Some(now));
                        return Some((Err(e), (source, requests, seen, told)));
                    }
                    let Some(before) = seen.take() else {
                        seen = Some(now);
                        continue;
                    };
                    let changed: Vec<usize> = now
                        .iter()
                        .enumerate()
                        .filter(|(i, v)| v.is_some() && before.get(*i).cloned().flatten() != **v)
                        .map(|(i, _)| i)
                        .collect();
                    // A version that could not be read keeps the last one seen.
                    seen = Some(
                        now.into_iter()
                            .enumerate()
                            .map(|(i, v)| v.or_else(|| before.get(i).cloned().flatten()))
                            .collect(),
                    );
                    if !changed.is_empty() {
                        return Some((
                            Ok(Change::Changed(changed)),
                            (source, requests, seen, told),
                        ));
                    }
                }
            },
        )
        .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str) -> FetchRequest {
        FetchRequest::for_key("gcp_secrets", key.to_owned())
    }

    #[test]
    fn keys() {
        let (p, s, v) = parse_key(&req("projects/p1/secrets/db/versions/3")).unwrap();
        assert_eq!(
            (p.as_deref(), s.as_str(), v.as_str()),
            (Some("p1"), "db", "3")
        );
        let (p, s, v) = parse_key(&req("projects/p1/secrets/db")).unwrap();
        assert_eq!(
            (p.as_deref(), s.as_str(), v.as_str()),
            (Some("p1"), "db", "latest")
        );
        let (p, _, v) = parse_key(
            &req("db")
                .with_param("version", "2")
                .with_param("project", "x"),
        )
        .unwrap();
        assert_eq!((p.as_deref(), v.as_str()), (Some("x"), "2"));
        for bad in [
            "a/b",
            "projects/p/secrets",
            "projects/p/locations/l/secrets/s",
            "db!",
            "projects/p/secrets/s/versions/x",
        ] {
            let e = parse_key(&req(bad)).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::Config, "{bad}");
            assert!(e.message().unwrap().contains(bad), "{bad}: {e}");
        }
        let e = parse_key(&req("projects/p/secrets/s/versions/1").with_param("version", "2"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("name it once"), "{e}");
    }

    #[test]
    fn google_errors() {
        let body = br#"{"error":{"code":404,"message":"Secret [projects/1/secrets/x] not found or has no versions.","status":"NOT_FOUND"}}"#;
        let e = api_error(StatusCode::NOT_FOUND, body, "secret `x`");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(
            e.message().unwrap(),
            "Secret Manager answered HTTP 404 NOT_FOUND for secret `x`: Secret [projects/1/secrets/x] not found or has no versions."
        );
        let e = api_error(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"code":429,"message":"Quota","status":"RESOURCE_EXHAUSTED"}}"#,
            "s",
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = api_error(StatusCode::BAD_REQUEST, br#"{"error":{"code":400,"message":"is in DISABLED state","status":"FAILED_PRECONDITION"}}"#, "s");
        assert_eq!(e.kind(), ErrorKind::Config);
    }

    #[test]
    fn payloads_padded_or_not() {
        assert_eq!(decode_payload("aHVudGVyMg==").unwrap(), b"hunter2");
        assert_eq!(decode_payload("aHVudGVyMg").unwrap(), b"hunter2");
        assert_eq!(decode_payload("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_payload("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(decode_payload("a!").is_none());
    }

    #[test]
    fn crc32c_as_google_computes_it() {
        // RFC 3720's check value of "123456789".
        assert_eq!(crc(b"123456789"), 0xE306_9283);
    }
}
