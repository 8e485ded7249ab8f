//! The AWS credential chain and region, as the AWS SDKs read them (issue 36).
//!
//! The interface both AWS sources use: [`CredentialChain::from_env`],
//! [`CredentialChain::credentials`], [`region_from_env`]. The chain is decided once, from
//! the environment given (an [`EnvSource`], never the process's directly), in the SDKs'
//! order; the first provider configured answers:
//!
//! 1. the environment's keys: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//!    (+ `AWS_SESSION_TOKEN`);
//! 2. web identity (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`
//!    (+ `AWS_ROLE_SESSION_NAME`): STS `AssumeRoleWithWebIdentity`, the token file read
//!    at every refresh;
//! 3. the profile (`AWS_PROFILE`, default `default`) of the shared files
//!    (`AWS_SHARED_CREDENTIALS_FILE` default `~/.aws/credentials`, `AWS_CONFIG_FILE`
//!    default `~/.aws/config`): static keys; `role_arn` + `web_identity_token_file`;
//!    `role_arn` + `source_profile` (STS `AssumeRole`, signed with the source profile's
//!    keys) or `credential_source` (`Environment`, `Ec2InstanceMetadata`,
//!    `EcsContainer`). `credential_process` and SSO profiles are refused with a message
//!    that says so;
//! 4. the ECS/EKS container endpoint: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI` (+ `AWS_CONTAINER_AUTHORIZATION_TOKEN` or
//!    `_TOKEN_FILE`);
//! 5. EC2 instance metadata (IMDSv2, 1 s per request so a machine without it fails
//!    fast), unless `AWS_EC2_METADATA_DISABLED=true`; `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
//!
//! STS is at `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the region's endpoint.
//! Temporary credentials are cached and refreshed five minutes before their
//! `Expiration`, by one caller at a time (the others wait for its answer); a failed
//! refresh is not kept (the next call tries again), and credentials not yet expired are
//! used while a refresh fails. Errors name the provider and carry STS's or the
//! endpoint's own code and message, never a key, token or the token file's content.

mod http;
mod profile;
mod sts;

use std::fmt;
use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use secrecy::SecretString;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{Client, DEFAULT_REQUEST_TIMEOUT};
use crate::source_support::redact_url;

/// Temporary credentials are refreshed this long before they expire.
const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);

/// Each request to the instance metadata service may take this long (connect included):
/// a machine that is not an EC2 instance fails fast, as with the SDKs.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest answer read from STS or a credentials endpoint (they answer a few KiB).
const MAX_CREDENTIALS_BODY: usize = 256 * 1024;

/// The largest token file read (a web identity JWT is a few KiB).
const MAX_TOKEN_FILE: u64 = 256 * 1024;

/// One set of AWS credentials. `Debug` shows the access key id only.
#[derive(Clone)]
pub(crate) struct AwsCredentials {
    /// `AKIA...` / `ASIA...`: not secret (it is printed in AWS's own errors).
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: SecretString,
    pub(crate) session_token: Option<SecretString>,
    /// When temporary credentials expire (`None`: long-term keys).
    pub(crate) expires_at: Option<SystemTime>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[REDACTED]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where credentials come from, in the standard order; cloned cheaply (shared state:
/// the clones share one cache and one refresh at a time).
#[derive(Clone, Debug)]
pub(crate) struct CredentialChain {
    inner: Arc<Inner>,
}

/// A web identity to exchange for credentials.
pub(super) struct WebIdentity {
    token_file: PathBuf,
    role_arn: String,
    session_name: Option<String>,
}

/// A role to assume with the credentials of `source`.
pub(super) struct RoleSource {
    role_arn: String,
    session_name: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<String>,
    source: Box<Provider>,
}

/// The provider the chain settled on.
enum Provider {
    /// Given keys (the environment's, a profile's, `fixed`).
    Static {
        credentials: AwsCredentials,
        from: String,
    },
    WebIdentity(WebIdentity),
    AssumeRole(RoleSource),
    Container(http::Container),
    /// The instance metadata service at this address.
    Imds(String),
    /// A provider is configured and unusable, or none is: every call fails with this.
    Missing(SourceError),
}

impl Provider {
    fn describe(&self) -> String {
        match self {
            Provider::Static { from, .. } => from.clone(),
            Provider::WebIdentity(w) => format!(
                "web identity (role {}, token file {})",
                w.role_arn,
                w.token_file.display()
            ),
            Provider::AssumeRole(r) => {
                format!("role {} assumed with {}", r.role_arn, r.source.describe())
            }
            Provider::Container(c) => {
                format!("the container credentials endpoint {}", redact_url(&c.url))
            }
            Provider::Imds(endpoint) => format!("EC2 instance metadata at {endpoint}"),
            Provider::Missing(_) => "no provider".to_owned(),
        }
    }
}

struct Inner {
    provider: Provider,
    /// The providers looked for before the instance metadata service (its last resort):
    /// named when it does not answer either.
    looked_for: Vec<String>,
    sts: sts::Sts,
    /// For STS (through the environment's proxy, if any).
    http: Client,
    /// For the ECS/EKS agents' endpoints: straight there, never through a proxy
    /// ([`Client::direct`]).
    container: Client,
    /// For the instance metadata service: straight there as well.
    imds: Client,
    /// The credentials in use and when to refresh them.
    cache: StdMutex<Option<Cached>>,
    /// Held by the one caller refreshing; the last failure and when it happened (callers
    /// that waited through it share it instead of each trying again).
    refresh: tokio::sync::Mutex<Option<(Instant, SourceError)>>,
    /// What built this chain, to build it again with other limits.
    env: Option<EnvSource>,
}

struct Cached {
    credentials: AwsCredentials,
    refresh_at: SystemTime,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("provider", &self.provider.describe())
            .field("timeout", &self.http.timeout)
            .finish_non_exhaustive()
    }
}

impl CredentialChain {
    /// The standard chain read from `env`.
    pub(crate) fn from_env(env: &EnvSource) -> Self {
        Self::build(env, DEFAULT_REQUEST_TIMEOUT)
    }

    fn build(env: &EnvSource, timeout: Duration) -> Self {
        let (provider, looked_for) = decide(env);
        let region = region_from_env(env);
        Self::with_provider(provider, looked_for, env, region.as_deref(), timeout)
    }

    fn with_provider(
        provider: Provider,
        looked_for: Vec<String>,
        env: &EnvSource,
        region: Option<&str>,
        timeout: Duration,
    ) -> Self {
        let mut http = Client::new(timeout);
        http.max_body = MAX_CREDENTIALS_BODY;
        let mut imds = Client::new(IMDS_TIMEOUT.min(timeout));
        imds.max_body = MAX_CREDENTIALS_BODY;
        let imds = imds.direct();
        let container = http.direct();
        CredentialChain {
            inner: Arc::new(Inner {
                provider,
                looked_for,
                sts: sts::Sts::from_env(env, region),
                http,
                container,
                imds,
                cache: StdMutex::new(None),
                refresh: tokio::sync::Mutex::new(None),
                env: Some(env.clone()),
            }),
        }
    }

    /// Always these credentials.
    pub(crate) fn fixed(credentials: AwsCredentials) -> Self {
        let env = EnvSource::from_map(std::iter::empty::<(String, String)>());
        let mut chain = Self::with_provider(
            Provider::Static {
                credentials,
                from: "the credentials given".to_owned(),
            },
            Vec::new(),
            &env,
            None,
            DEFAULT_REQUEST_TIMEOUT,
        );
        if let Some(inner) = Arc::get_mut(&mut chain.inner) {
            inner.env = None;
        }
        chain
    }

    /// The same chain with another timeout for each request to STS or a credentials
    /// endpoint (the instance metadata service's stays at most 1 s). A new cache.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> Self {
        match &self.inner.env {
            Some(env) => Self::build(env, timeout),
            None => self.clone(),
        }
    }

    /// Which provider answers ("the environment (AWS_ACCESS_KEY_ID)", "web identity (role
    /// arn:..., token file ...)", "profile `dev` of ~/.aws/credentials", "EC2 instance
    /// metadata at ..."): for a source's `location()` and preflight. Names, paths and
    /// role ARNs only.
    pub(crate) fn describe(&self) -> String {
        self.inner.provider.describe()
    }

    /// Credentials to sign a request with now (cached; refreshed before they expire).
    pub(crate) async fn credentials(&self) -> Result<AwsCredentials, SourceError> {
        let inner = &*self.inner;
        match &inner.provider {
            Provider::Static { credentials, .. } => return Ok(credentials.clone()),
            Provider::Missing(e) => return Err(e.clone()),
            _ => {}
        }
        if let Some(c) = inner.cached(|c, now| now < c.refresh_at) {
            return Ok(c);
        }
        let asked = Instant::now();
        let mut last_failure = inner.refresh.lock().await;
        // Another caller may have refreshed while this one waited.
        if let Some(c) = inner.cached(|c, now| now < c.refresh_at) {
            return Ok(c);
        }
        if let Some((at, e)) = &*last_failure
            && *at >= asked
        {
            return inner.unexpired().ok_or_else(|| e.clone());
        }
        match inner.load(&inner.provider, true).await {
            Ok(credentials) => {
                *last_failure = None;
                let now = SystemTime::now();
                let refresh_at = credentials
                    .expires_at
                    .map_or(SystemTime::UNIX_EPOCH, |e| refresh_at(e, now));
                tracing::debug!(
                    provider = %inner.provider.describe(),
                    access_key_id = %credentials.access_key_id,
                    "AWS credentials loaded"
                );
                if credentials.expires_at.is_some() {
                    *inner.cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
                        credentials: credentials.clone(),
                        refresh_at,
                    });
                }
                Ok(credentials)
            }
            Err(e) => {
                *last_failure = Some((Instant::now(), e.clone()));
                match inner.unexpired() {
                    Some(old) => {
                        tracing::warn!(
                            "refreshing AWS credentials failed; the current ones, not yet expired, are used: {e}"
                        );
                        Ok(old)
                    }
                    None => Err(e),
                }
            }
        }
    }
}

/// When to refresh credentials expiring at `expires`: [`REFRESH_AHEAD`] before; for
/// credentials that arrive already inside that window, halfway to their expiry (not at
/// every call).
fn refresh_at(expires: SystemTime, now: SystemTime) -> SystemTime {
    match expires.checked_sub(REFRESH_AHEAD) {
        Some(t) if t > now => t,
        _ => now + expires.duration_since(now).unwrap_or_default() / 2,
    }
}

impl Inner {
    fn cached(&self, ok: impl Fn(&Cached, SystemTime) -> bool) -> Option<AwsCredentials> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()
            .filter(|c| ok(c, SystemTime::now()))
            .map(|c| c.credentials.clone())
    }

    /// The cached credentials while they have not expired (ten seconds' margin).
    fn unexpired(&self) -> Option<AwsCredentials> {
        self.cached(|c, now| {
            c.credentials
                .expires_at
                .is_some_and(|e| now + Duration::from_secs(10) < e)
        })
    }

    /// Credentials from `provider` now; errors say which provider failed.
    fn load<'a>(
        &'a self,
        provider: &'a Provider,
        top: bool,
    ) -> Pin<Box<dyn Future<Output = Result<AwsCredentials, SourceError>> + Send + 'a>> {
        Box::pin(async move {
            let from = |e: SourceError| {
                let mut said = e.message().unwrap_or(e.kind().as_str()).to_owned();
                if e.kind() == ErrorKind::TooLarge {
                    // The source's `with_max_body` does not apply here: credentials
                    // documents have a fixed bound.
                    said = said.replace("; raise the limit with `with_max_body`", "");
                }
                let what = provider.describe();
                e.with_message(format!("AWS credentials from {what}: {said}"))
            };
            match provider {
                Provider::Static { credentials, .. } => Ok(credentials.clone()),
                Provider::Missing(e) => Err(e.clone()),
                Provider::WebIdentity(w) => sts::web_identity(w, &self.sts, &self.http)
                    .await
                    .map_err(from),
                Provider::AssumeRole(r) => {
                    let source = self.load(&r.source, false).await?;
                    sts::assume_role(r, &source, &self.sts, &self.http)
                        .await
                        .map_err(from)
                }
                Provider::Container(c) => http::container_credentials(c, &self.container)
                    .await
                    .map_err(from),
                Provider::Imds(endpoint) => {
                    match http::imds_credentials(endpoint, &self.imds).await {
                        Ok(c) => Ok(c),
                        Err(http::ImdsFailure::Unreachable(e)) if top => {
                            // The last resort did not answer: nothing was found.
                            let said = e.message().unwrap_or(e.kind().as_str()).to_owned();
                            Err(SourceError::new(ErrorKind::Unauthorized)
                                .with_message(format!(
                                    "no AWS credentials found: looked for {}, and EC2 instance metadata at {endpoint} (no answer: {said})",
                                    self.looked_for.join(", ")
                                ))
                                .with_cause(e))
                        }
                        Err(http::ImdsFailure::Unreachable(e) | http::ImdsFailure::Failed(e)) => {
                            Err(from(e))
                        }
                    }
                }
            }
        })
    }
}

/// The environment's keys: `None` when `AWS_ACCESS_KEY_ID` is not set; an error when it
/// is without `AWS_SECRET_ACCESS_KEY`.
fn env_keys(env: &EnvSource) -> Result<Option<AwsCredentials>, String> {
    let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: SecretString::from(secret.trim().to_owned()),
            session_token: get("AWS_SESSION_TOKEN")
                .map(|t| SecretString::from(t.trim().to_owned())),
            expires_at: None,
        })),
        (Some(_), None) => Err("AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY".to_owned()),
        (None, Some(_)) => Err("AWS_SECRET_ACCESS_KEY is set without AWS_ACCESS_KEY_ID".to_owned()),
        (None, None) => Ok(None),
    }
}

/// The provider the environment configures, and what was looked for before the instance
/// metadata service.
fn decide(env: &EnvSource) -> (Provider, Vec<String>) {
    let get = |name: &str| {
        env.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let missing = |kind: ErrorKind, why: String| {
        Provider::Missing(SourceError::new(kind).with_message(format!("AWS credentials: {why}")))
    };
    let mut looked = Vec::new();
    // 1. The environment's keys.
    match env_keys(env) {
        Ok(Some(credentials)) => {
            let from = "the environment (AWS_ACCESS_KEY_ID)".to_owned();
            return (Provider::Static { credentials, from }, looked);
        }
        Ok(None) => looked.push("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_owned()),
        Err(why) => return (missing(ErrorKind::Config, why), looked),
    }
    // 2. Web identity.
    match (get("AWS_WEB_IDENTITY_TOKEN_FILE"), get("AWS_ROLE_ARN")) {
        (Some(file), Some(role_arn)) => {
            let w = WebIdentity {
                token_file: PathBuf::from(file),
                role_arn,
                session_name: get("AWS_ROLE_SESSION_NAME"),
            };
            return (Provider::WebIdentity(w), looked);
        }
        (Some(_), None) => {
            let why = "AWS_WEB_IDENTITY_TOKEN_FILE is set without AWS_ROLE_ARN".to_owned();
            return (missing(ErrorKind::Config, why), looked);
        }
        _ => looked.push("AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN".to_owned()),
    }
    // 3. The profile.
    let profiles = profile::Profiles::load(env);
    let (name, named) = profile::profile_name(env);
    match profiles.provider(&name, env) {
        Ok(Some(p)) => return (p, looked),
        Err(why) => return (missing(ErrorKind::Config, why), looked),
        Ok(None) if named && !profiles.has(&name) => {
            let files = if profiles.files.is_empty() {
                "no AWS config or credentials file exists".to_owned()
            } else {
                format!("not in {}", profiles.files.join(", "))
            };
            let why = format!("profile `{name}` (AWS_PROFILE) not found: {files}");
            return (missing(ErrorKind::Config, why), looked);
        }
        Ok(None) => {
            let mut files = profiles.files.clone();
            files.extend(
                profiles
                    .unreadable
                    .iter()
                    .map(|u| format!("unreadable {u}")),
            );
            let files = if files.is_empty() {
                "no config or credentials file".to_owned()
            } else {
                files.join(", ")
            };
            looked.push(format!("profile `{name}` ({files})"));
        }
    }
    // 4. The container endpoint.
    match http::container(env) {
        Some(Ok(c)) => return (Provider::Container(c), looked),
        Some(Err(why)) => return (missing(ErrorKind::Config, why), looked),
        None => looked.push(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/AWS_CONTAINER_CREDENTIALS_FULL_URI".to_owned(),
        ),
    }
    // 5. The instance metadata service.
    if get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let why = format!(
            "no AWS credentials found: looked for {} (EC2 instance metadata disabled by AWS_EC2_METADATA_DISABLED)",
            looked.join(", ")
        );
        return (
            Provider::Missing(SourceError::new(ErrorKind::Unauthorized).with_message(why)),
            looked,
        );
    }
    (Provider::Imds(http::imds_endpoint(env)), looked)
}

/// The region: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the profile's `region`.
pub(crate) fn region_from_env(env: &EnvSource) -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|name| env.get(name))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
        .or_else(|| {
            let profiles = profile::Profiles::load(env);
            let (name, _) = profile::profile_name(env);
            profiles.get(&name, "region").map(str::to_owned)
        })
}

/// A token file's content, read now (at most [`MAX_TOKEN_FILE`]); errors name `what`
/// and the path, never any content.
fn read_token_file(path: &Path, what: &str) -> Result<SecretString, SourceError> {
    let shown = path.display();
    let fail = |why: String| {
        SourceError::new(ErrorKind::Unauthorized)
            .with_message(format!("cannot read {what} {shown}: {why}"))
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(fail(format!(
            "larger than {}",
            crate::error::bytes(MAX_TOKEN_FILE)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8".to_owned()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(fail("it is empty".to_owned()));
    }
    Ok(SecretString::from(token.to_owned()))
}

/// An `Expiration` time (RFC 3339, UTC: `2026-01-01T00:00:00Z`, fractions allowed).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    let utc = text
        .strip_suffix("+00:00")
        .map_or_else(|| text.to_owned(), |t| format!("{t}Z"));
    humantime::parse_rfc3339_weak(&utc).map_err(|_| {
        let shown: String = text.chars().take(40).filter(|c| !c.is_control()).collect();
        format!("Expiration `{shown}` is not an RFC 3339 UTC time")
    })
}

/// Text from a server for a message: each of `secrets` (what was sent to it, which a
/// hostile server could echo) replaced, control characters dropped, at most 300 chars.
fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[REDACTED]");
    }
    let mut short: String = out.chars().filter(|c| !c.is_control()).take(300).collect();
    if out.chars().count() > 300 {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests;
