//! Microsoft Entra ID (Azure AD) tokens for Key Vault: the credentials of azure-identity's
//! `EnvironmentCredential` / `DefaultAzureCredential` chain (client secret, workload
//! identity, managed identity), Key Vault's challenge (`WWW-Authenticate: Bearer
//! authorization=..., resource=...`) and the token cache (single flight, refreshed shortly
//! before expiry).

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client};
use crate::source_support::redact_url;

/// Microsoft Entra ID's public cloud authority, unless `AZURE_AUTHORITY_HOST` says otherwise.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The Azure Instance Metadata Service (managed identity on VMs, AKS nodes, Container
/// Instances), unless `AZURE_POD_IDENTITY_AUTHORITY_HOST` says otherwise.
pub const DEFAULT_IMDS_HOST: &str = "http://169.254.169.254";

/// How long a managed identity endpoint may take (connect included): off Azure, IMDS's
/// link-local address never answers, and a fetch must not wait its whole timeout for it.
pub(super) const IDENTITY_TIMEOUT: Duration = Duration::from_secs(3);

/// A token is asked again this long before it expires (azure-core's margin: 5 minutes),
/// or after half its lifetime when that is shorter.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// How the source gets its tokens.
#[derive(Clone)]
pub(super) enum Credential {
    /// `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`: an app registration's
    /// secret (OAuth2 client credentials).
    ClientSecret {
        tenant: String,
        client_id: String,
        secret: SecretString,
    },
    /// `AZURE_FEDERATED_TOKEN_FILE` (+ client and tenant): Kubernetes workload identity;
    /// the file (a projected service-account token, rotated by the kubelet) is read again
    /// for every token request.
    Workload {
        tenant: String,
        client_id: String,
        token_file: PathBuf,
    },
    /// Managed identity: App Service / Functions / Container Apps (`IDENTITY_ENDPOINT` +
    /// `IDENTITY_HEADER`), else IMDS. `client_id` selects a user-assigned identity.
    Managed {
        client_id: Option<String>,
        app_service: Option<(String, SecretString)>,
        imds: String,
    },
    /// No credential could be made from the environment: every fetch says why.
    Invalid(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClientSecret {
                tenant, client_id, ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant", tenant)
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            Credential::Workload {
                tenant,
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("tenant", tenant)
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
            Credential::Managed {
                client_id,
                app_service,
                imds,
            } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .field(
                    "endpoint",
                    &app_service
                        .as_ref()
                        .map(|(u, _)| redact_url(u))
                        .unwrap_or_else(|| redact_url(imds)),
                )
                .finish(),
            Credential::Invalid(why) => f.debug_tuple("Invalid").field(why).finish(),
        }
    }
}

impl Credential {
    /// The credential the `AZURE_*` variables name, in azure-identity's order:
    /// `EnvironmentCredential` (client secret), `WorkloadIdentityCredential`,
    /// `ManagedIdentityCredential`.
    pub(super) fn from_env(env: &EnvSource) -> Credential {
        let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
        let tenant = get("AZURE_TENANT_ID");
        let client_id = get("AZURE_CLIENT_ID");
        if let Some(secret) = get("AZURE_CLIENT_SECRET") {
            return match (tenant, client_id) {
                (Some(tenant), Some(client_id)) => Credential::ClientSecret {
                    tenant,
                    client_id,
                    secret: SecretString::from(secret),
                },
                _ => Credential::Invalid(
                    "AZURE_CLIENT_SECRET is set without AZURE_TENANT_ID and AZURE_CLIENT_ID".into(),
                ),
            };
        }
        if get("AZURE_CLIENT_CERTIFICATE_PATH").is_some() {
            return Credential::Invalid(
                "AZURE_CLIENT_CERTIFICATE_PATH (a certificate credential) is not supported: use a client secret, workload identity or a managed identity".into(),
            );
        }
        if let Some(file) = get("AZURE_FEDERATED_TOKEN_FILE") {
            return match (tenant, client_id) {
                (Some(tenant), Some(client_id)) => Credential::Workload {
                    tenant,
                    client_id,
                    token_file: PathBuf::from(file),
                },
                _ => Credential::Invalid(
                    "AZURE_FEDERATED_TOKEN_FILE is set without AZURE_TENANT_ID and AZURE_CLIENT_ID"
                        .into(),
                ),
            };
        }
        // Managed identity hosts this source does not speak: said, not silently IMDS.
        if get("IDENTITY_SERVER_THUMBPRINT").is_some() {
            return Credential::Invalid(
                "Service Fabric's managed identity (IDENTITY_SERVER_THUMBPRINT) is not supported: use a client secret or workload identity".into(),
            );
        }
        if get("IDENTITY_ENDPOINT").is_some() && get("IMDS_ENDPOINT").is_some() {
            return Credential::Invalid(
                "Azure Arc's managed identity (IDENTITY_ENDPOINT + IMDS_ENDPOINT) is not supported: use a client secret or workload identity".into(),
            );
        }
        if get("MSI_ENDPOINT").is_some() {
            return Credential::Invalid(
                "the MSI_ENDPOINT managed identity (Cloud Shell, Azure ML) is not supported: use a client secret, workload identity or IDENTITY_ENDPOINT + IDENTITY_HEADER".into(),
            );
        }
        let app_service = match (get("IDENTITY_ENDPOINT"), get("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => Some((endpoint, SecretString::from(header))),
            (Some(_), None) => {
                return Credential::Invalid(
                    "IDENTITY_ENDPOINT is set without IDENTITY_HEADER".into(),
                );
            }
            _ => None,
        };
        Credential::Managed {
            client_id,
            app_service,
            imds: get("AZURE_POD_IDENTITY_AUTHORITY_HOST")
                .unwrap_or_else(|| DEFAULT_IMDS_HOST.to_owned()),
        }
    }

    /// What the report and the logs call it.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Credential::ClientSecret { .. } => "client secret",
            Credential::Workload { .. } => "workload identity",
            Credential::Managed {
                app_service: Some(_),
                ..
            } => "managed identity (App Service)",
            Credential::Managed { .. } => "managed identity (IMDS)",
            Credential::Invalid(_) => "no credential",
        }
    }
}

/// What Key Vault's 401 challenge says: the scope to ask a token for and the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Challenge {
    pub(super) scope: String,
    pub(super) tenant: Option<String>,
}

impl Challenge {
    /// Parses `Bearer authorization="https://login.microsoftonline.com/{tenant}",
    /// resource="https://vault.azure.net"` (or `authorization_uri=`, `scope=`).
    pub(super) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut authorization = None;
        let mut resource = None;
        let mut scope = None;
        for part in params.split(',') {
            let Some((name, value)) = part.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"').to_owned();
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" | "authorization_uri" => authorization = Some(value),
                "resource" => resource = Some(value),
                "scope" => scope = Some(value),
                _ => {}
            }
        }
        let scope = match (scope, resource) {
            (Some(s), _) if !s.is_empty() => s,
            (_, Some(r)) if !r.is_empty() => format!("{}/.default", r.trim_end_matches('/')),
            _ => return None,
        };
        let tenant = authorization.and_then(|a| {
            let url = reqwest::Url::parse(&a).ok()?;
            url.path_segments()?
                .find(|s| !s.is_empty())
                .map(str::to_owned)
        });
        Some(Challenge { scope, tenant })
    }

    /// The resource of the scope (`https://vault.azure.net`), as managed identity asks it.
    pub(super) fn resource(&self) -> &str {
        self.scope
            .strip_suffix("/.default")
            .unwrap_or(&self.scope)
            .trim_end_matches('/')
    }

    /// Checks the scope's host against the vault's, as the SDK's `verify_challenge_resource`
    /// does: the vault's host must be a subdomain of the resource's (`myvault.vault.azure.net`
    /// of `vault.azure.net`), on the same port. A token for another resource is never
    /// asked, so none is ever sent where the challenge pointed.
    pub(super) fn verify(&self, vault: &reqwest::Url) -> Result<(), SourceError> {
        let refuse = |why: &str| {
            SourceError::new(ErrorKind::Unauthorized).with_message(format!(
                "the vault at {} challenged for scope `{}`, which {why}: refused (no token is asked for it)",
                redact_url(vault.as_str()),
                self.scope
            ))
        };
        // The authorities as written (as the SDK's `urlparse(...).netloc`): a URL parser
        // would rewrite `0.0.1` as the IPv4 address `0.0.0.1`.
        let (resource_host, resource_port) =
            authority(&self.scope).ok_or_else(|| refuse("names no host"))?;
        let (vault_host, vault_port) =
            authority(vault.as_str()).ok_or_else(|| refuse("names no host"))?;
        if !vault_host.ends_with(&format!(".{resource_host}")) {
            return Err(refuse(&format!(
                "is not the domain of the vault's host `{vault_host}`"
            )));
        }
        // An explicit port must be the vault's; none means HTTPS's default.
        let default = if vault.scheme() == "http" { 80 } else { 443 };
        if resource_port.unwrap_or(443) != vault_port.unwrap_or(default) {
            return Err(refuse("names another port than the vault's"));
        }
        Ok(())
    }
}

/// The host (lower case) and port of a URL's authority as written: what follows `://` up
/// to the path, without user info.
fn authority(url: &str) -> Option<(String, Option<u16>)> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    let auth = auth.rsplit_once('@').map_or(auth, |(_, a)| a);
    let (host, port) = match auth.rfind(':') {
        Some(i) if !auth[i..].contains(']') => (&auth[..i], Some(auth[i + 1..].parse().ok()?)),
        _ => (auth, None),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// A bearer token and when it should be asked again.
#[derive(Clone)]
pub(super) struct Token {
    pub(super) header: HeaderValue,
    pub(super) refresh_at: Instant,
    /// When it expires: until then, a failed refresh keeps using it.
    pub(super) expires_at: Instant,
}

/// An Entra ID / managed identity token answer (`expires_in` seconds, or `expires_on` a
/// Unix time; numbers or strings).
#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

/// An Entra ID error answer (`{"error": "invalid_client", "error_description": "AADSTS..."}`);
/// managed identity endpoints answer the same shape, or `{"error": {"code", "message"}}`.
#[derive(Deserialize, Default)]
struct TokenError {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Whole seconds of a number or a numeric string (fractions dropped; negative: 0; too
/// large: `u64::MAX`, capped by the caller).
fn seconds(v: &serde_json::Value) -> Option<u64> {
    let float = |f: f64| f.is_finite().then(|| f.max(0.0) as u64);
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(float)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(float))
        }
        _ => None,
    }
}

/// Cuts `text` to 300 bytes at a character boundary.
pub(super) fn clip(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_owned();
    }
    let mut cut = 300;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// The store's words of a failed token request (never the body when it is not the
/// expected error shape: an endpoint echoing the request could hold the secret).
fn token_error_text(body: &[u8]) -> String {
    let parsed: TokenError = serde_json::from_slice(body).unwrap_or_default();
    let code =
        match &parsed.error {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o.get("code").and_then(|c| c.as_str()).map(|c| {
                match o.get("message").and_then(|m| m.as_str()) {
                    Some(m) => format!("{c}: {m}"),
                    None => c.to_owned(),
                }
            }),
            _ => None,
        };
    match (code, parsed.error_description.or(parsed.message)) {
        (Some(c), Some(d)) => clip(&format!("{c}: {d}")),
        (Some(c), None) => clip(&c),
        (None, Some(d)) => clip(&d),
        (None, None) => "no error description in the answer".to_owned(),
    }
}

/// Whether `url` may carry a bearer token or a client secret: HTTPS, or HTTP to this
/// machine (127.0.0.1, ::1, localhost: a local emulator or an identity endpoint).
pub(super) fn may_carry_credentials(url: &reqwest::Url) -> bool {
    url.scheme() == "https"
        || (url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            })
}

/// Asks `credential` for a token for `challenge`'s scope.
pub(super) async fn request_token(
    credential: &Credential,
    challenge: &Challenge,
    authority: &str,
    allowed_tenants: &[String],
    client: &Client,
    identity: &Client,
) -> Result<Token, SourceError> {
    let fail = |kind: ErrorKind, text: String| {
        SourceError::new(kind).with_message(format!(
            "cannot get an Entra ID token ({}) for Key Vault: {text}",
            credential.kind()
        ))
    };
    let started = Instant::now();
    // What must never reach an error: the client secret, the assertion, the header.
    let mut hidden: Vec<SecretString> = Vec::new();
    let (url, limits, request) = match credential {
        Credential::Invalid(why) => {
            return Err(SourceError::new(ErrorKind::Config).with_message(why.clone()));
        }
        Credential::ClientSecret {
            tenant,
            client_id,
            secret,
        } => {
            let tenant = resolve_tenant(tenant, challenge, allowed_tenants)?;
            let url = token_url(authority, &tenant)?;
            hidden.push(secret.clone());
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                ("client_secret", secret.expose_secret()),
                ("scope", challenge.scope.as_str()),
            ];
            let body = form_body(&form);
            let request = client
                .get()
                .await?
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            (url, client.limits(), request)
        }
        Credential::Workload {
            tenant,
            client_id,
            token_file,
        } => {
            let tenant = resolve_tenant(tenant, challenge, allowed_tenants)?;
            let url = token_url(authority, &tenant)?;
            // Read again at each request: the kubelet rotates the projected token. At most
            // MAX_TOKEN_FILE bytes, within the source's timeout (a FIFO never ends).
            let file = token_file.clone();
            let read = tokio::task::spawn_blocking(move || read_token_file(&file));
            let assertion = tokio::time::timeout(client.timeout, read)
                .await
                .map_err(|_| {
                    fail(
                        ErrorKind::Timeout,
                        format!(
                            "reading AZURE_FEDERATED_TOKEN_FILE {} took longer than {:?}",
                            token_file.display(),
                            client.timeout
                        ),
                    )
                })?
                .map_err(|e| {
                    fail(
                        ErrorKind::Other,
                        format!("reading the token file failed: {e}"),
                    )
                })?
                .map_err(|e| {
                    fail(
                        ErrorKind::Config,
                        format!(
                            "cannot read AZURE_FEDERATED_TOKEN_FILE {}: {e}",
                            token_file.display()
                        ),
                    )
                })?;
            hidden.push(assertion.clone());
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", client_id.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.expose_secret()),
                ("scope", challenge.scope.as_str()),
            ];
            let body = form_body(&form);
            let request = client
                .get()
                .await?
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            (url, client.limits(), request)
        }
        Credential::Managed {
            client_id,
            app_service,
            imds,
        } => {
            let resource = challenge.resource();
            let mut query: Vec<(&str, &str)> = Vec::new();
            let (base, api) = match app_service {
                Some((endpoint, _)) => (endpoint.as_str(), "2019-08-01"),
                None => (imds.as_str(), "2018-02-01"),
            };
            query.push(("api-version", api));
            query.push(("resource", resource));
            if let Some(id) = client_id {
                query.push(("client_id", id));
            }
            let url = match app_service {
                Some(_) => reqwest::Url::parse(base).map_err(|e| {
                    fail(
                        ErrorKind::Config,
                        format!("IDENTITY_ENDPOINT {} is not a URL: {e}", redact_url(base)),
                    )
                })?,
                None => transport::join_url(
                    &transport::base_url(base, "http"),
                    &["metadata/identity/oauth2/token"],
                    &[],
                )?,
            };
            let mut url = url;
            url.query_pairs_mut().extend_pairs(query);
            let mut request = identity.get().await?.get(url.clone());
            if let Some((_, header)) = app_service {
                hidden.push(header.clone());
            }
            request = match app_service {
                Some((_, header)) => request.header(
                    "X-IDENTITY-HEADER",
                    transport::secret_header("X-IDENTITY-HEADER", header.expose_secret())?,
                ),
                None => request.header("Metadata", "true"),
            };
            (url, identity.limits(), request)
        }
    };
    if !may_carry_credentials(&url) && !matches!(credential, Credential::Managed { .. }) {
        return Err(fail(
            ErrorKind::Config,
            format!(
                "the authority {} is not HTTPS: the credential is never sent over plain HTTP (except to 127.0.0.1 or localhost)",
                redact_url(url.as_str())
            ),
        ));
    }
    tracing::debug!(credential = credential.kind(), endpoint = %redact_url(url.as_str()), scope = %challenge.scope, "asking for a Key Vault token");
    let (status, _, body) = transport::send(request, url.as_str(), limits)
        .await
        .map_err(|e| {
            let message = e.message().unwrap_or("").to_owned();
            SourceError::new(e.kind()).with_message(format!(
                "cannot get an Entra ID token ({}) for Key Vault: {message}",
                credential.kind()
            ))
        })?;
    if !status.is_success() {
        let kind = match status.as_u16() {
            400 | 401 | 403 => ErrorKind::Unauthorized,
            404 if matches!(credential, Credential::Managed { .. }) => ErrorKind::Unauthorized,
            _ => transport::status_kind(status),
        };
        return Err(fail(
            kind,
            format!(
                "{} answered HTTP {status}: {}",
                redact_url(url.as_str()),
                scrub(
                    token_error_text(&body),
                    &hidden.iter().map(|h| h.expose_secret()).collect::<Vec<_>>()
                )
            ),
        ));
    }
    let parsed: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
        fail(
            ErrorKind::Decode,
            format!(
                "the answer of {} is not a token: {}",
                redact_url(url.as_str()),
                transport::json_error(&e)
            ),
        )
    })?;
    let Some(access) = parsed.access_token.filter(|t| !t.is_empty()) else {
        return Err(fail(
            ErrorKind::Decode,
            format!(
                "the answer of {} has no access_token",
                redact_url(url.as_str())
            ),
        ));
    };
    let now_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let lifetime = lifetime(
        parsed.expires_in.as_ref(),
        parsed.expires_on.as_ref(),
        now_unix,
    );
    let header = transport::secret_header("Authorization", &format!("Bearer {access}"))?;
    Ok(Token::new(header, started, lifetime))
}

impl Token {
    /// A token asked at `started`, valid `lifetime` (at most [`MAX_LIFETIME`]).
    pub(super) fn new(header: HeaderValue, started: Instant, lifetime: Duration) -> Token {
        let lifetime = lifetime.min(MAX_LIFETIME);
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let at = |d: Duration| started.checked_add(d).unwrap_or(started);
        Token {
            header,
            refresh_at: at(lifetime.saturating_sub(margin)),
            expires_at: at(lifetime),
        }
    }
}

/// The longest a token is kept, whatever its answer says (Entra ID issues 1-24 h): a
/// hostile endpoint's `expires_in` of 2^64-1 must not overflow an `Instant`.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A token's lifetime from `expires_in` (seconds) or else `expires_on` (a Unix time):
/// numbers or strings, integral or not (`"3599"`, `1700000000.5`). Neither, or only a
/// date string (`"12/7/2026 9:00:00 AM +00:00"`, old App Service answers): 1 h, the
/// shortest lifetime Entra ID issues. Capped at 24 h.
fn lifetime(
    expires_in: Option<&serde_json::Value>,
    expires_on: Option<&serde_json::Value>,
    now_unix: u64,
) -> Duration {
    let d = match (expires_in.and_then(seconds), expires_on.and_then(seconds)) {
        (Some(s), _) => Duration::from_secs(s),
        (None, Some(at)) => Duration::from_secs(at.saturating_sub(now_unix)),
        (None, None) => Duration::from_secs(3600),
    };
    d.min(MAX_LIFETIME)
}

/// The largest federated token file read (a projected service-account token is ~1 KiB).
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The federated token of `path`, trimmed: at most [`MAX_TOKEN_FILE`] bytes.
fn read_token_file(path: &std::path::Path) -> std::io::Result<SecretString> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TOKEN_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_TOKEN_FILE} bytes: not a federated token"
        )));
    }
    Ok(SecretString::from(text.trim().to_owned()))
}

/// `text` without any of `secrets` (as written or form-encoded, as an endpoint echoing
/// the request would hold them).
fn scrub(text: String, secrets: &[&str]) -> String {
    let mut text = text;
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        for form in [secret.to_string(), encoded] {
            if text.contains(&form) {
                text = text.replace(&form, "<redacted>");
            }
        }
    }
    text
}

/// `{authority}/{tenant}/oauth2/v2.0/token`.
fn token_url(authority: &str, tenant: &str) -> Result<reqwest::Url, SourceError> {
    transport::join_url(
        &transport::base_url(authority, "https"),
        &[tenant, "oauth2/v2.0/token"],
        &[],
    )
}

fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish().into_bytes()
}

/// The tenant a token is asked in, as azure-identity resolves it: the configured one,
/// unless the challenge names another one allowed by `AZURE_ADDITIONALLY_ALLOWED_TENANTS`
/// (`*`: any).
fn resolve_tenant(
    configured: &str,
    challenge: &Challenge,
    allowed: &[String],
) -> Result<String, SourceError> {
    match &challenge.tenant {
        None => Ok(configured.to_owned()),
        Some(t) if t.eq_ignore_ascii_case(configured) => Ok(configured.to_owned()),
        Some(_) if configured.eq_ignore_ascii_case("adfs") => Ok(configured.to_owned()),
        Some(t) if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(t)) => Ok(t.clone()),
        Some(t) => Err(SourceError::new(ErrorKind::Unauthorized).with_message(format!(
            "the vault belongs to tenant `{t}`, the credential to `{configured}`: add it to AZURE_ADDITIONALLY_ALLOWED_TENANTS (or `with_additionally_allowed_tenants`) to ask a token there"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = Challenge::parse(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(c.scope, "https://vault.azure.net/.default");
        assert_eq!(c.tenant.as_deref(), Some("72f988bf-86f1"));
        assert_eq!(c.resource(), "https://vault.azure.net");
        let c = Challenge::parse(
            r#"Bearer authorization_uri="https://login.example/t1/oauth2", scope="https://vault.azure.net/.default""#,
        )
        .unwrap();
        assert_eq!(c.scope, "https://vault.azure.net/.default");
        assert_eq!(c.tenant.as_deref(), Some("t1"));
        assert!(Challenge::parse("Basic realm=x").is_none());
        assert!(Challenge::parse(r#"Bearer authorization="https://l/t""#).is_none());
    }

    #[test]
    fn verifies_the_resource_like_the_sdk() {
        let c = |scope: &str| Challenge {
            scope: scope.into(),
            tenant: None,
        };
        let vault = reqwest::Url::parse("https://myvault.vault.azure.net/").unwrap();
        assert!(c("https://vault.azure.net/.default").verify(&vault).is_ok());
        assert!(c("https://VAULT.azure.net/.default").verify(&vault).is_ok());
        assert!(c("https://evil.example/.default").verify(&vault).is_err());
        assert!(
            c("https://myvault.vault.azure.net/.default")
                .verify(&vault)
                .is_err()
        );
        assert!(
            c("https://vault.azure.net:8443/.default")
                .verify(&vault)
                .is_err()
        );
        let local = reqwest::Url::parse("https://127.0.0.1:8443/").unwrap();
        assert!(c("https://0.0.1:8443/.default").verify(&local).is_ok());
        assert!(c("https://0.0.1/.default").verify(&local).is_err());
    }

    #[test]
    fn tokens_only_over_https_or_to_this_machine() {
        let ok = |u: &str| may_carry_credentials(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://v.vault.azure.net/"));
        assert!(ok("http://127.0.0.1:8200/"));
        assert!(ok("http://localhost:1/"));
        assert!(ok("http://[::1]:1/"));
        assert!(!ok("http://v.vault.azure.net/"));
        assert!(!ok("http://10.0.0.1/"));
    }

    #[test]
    fn tenants_resolve_like_azure_identity() {
        let ch = |t: Option<&str>| Challenge {
            scope: "https://vault.azure.net/.default".into(),
            tenant: t.map(str::to_owned),
        };
        assert_eq!(resolve_tenant("a", &ch(None), &[]).unwrap(), "a");
        assert_eq!(resolve_tenant("a", &ch(Some("A")), &[]).unwrap(), "a");
        assert!(resolve_tenant("a", &ch(Some("b")), &[]).is_err());
        assert_eq!(
            resolve_tenant("a", &ch(Some("b")), &["b".into()]).unwrap(),
            "b"
        );
        assert_eq!(
            resolve_tenant("a", &ch(Some("b")), &["*".into()]).unwrap(),
            "b"
        );
    }

    #[test]
    fn lifetimes_are_capped_and_never_overflow() {
        use serde_json::json;
        let day = Duration::from_secs(86_400);
        let l = |i: Option<serde_json::Value>, o: Option<serde_json::Value>| {
            lifetime(i.as_ref(), o.as_ref(), 1_000)
        };
        assert_eq!(l(Some(json!(u64::MAX)), None), day);
        assert_eq!(l(Some(json!("18446744073709551615")), None), day);
        assert_eq!(l(Some(json!("99999999999999999999")), None), day);
        assert_eq!(l(None, Some(json!("99999999999999999999"))), day);
        assert_eq!(l(Some(json!(3599)), None), Duration::from_secs(3599));
        assert_eq!(l(Some(json!("3599.7")), None), Duration::from_secs(3599));
        assert_eq!(l(None, Some(json!(4_600.5))), Duration::from_secs(3600));
        assert_eq!(
            l(None, Some(json!("12/7/2026 9:00:00 AM +00:00"))),
            Duration::from_secs(3600)
        );
        assert_eq!(l(Some(json!(-5)), None), Duration::ZERO);
        let t = Token::new(HeaderValue::from_static("x"), Instant::now(), Duration::MAX);
        assert!(t.refresh_at < t.expires_at);
    }

    #[test]
    fn unsupported_managed_identities_are_said() {
        let kind = |vars: &[(&str, &str)]| {
            let c = Credential::from_env(&EnvSource::from_map(vars.iter().copied()));
            format!("{c:?}")
        };
        assert!(
            kind(&[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("IDENTITY_HEADER", "h"),
                ("IDENTITY_SERVER_THUMBPRINT", "t")
            ])
            .contains("Service Fabric")
        );
        assert!(
            kind(&[
                ("IDENTITY_ENDPOINT", "http://x"),
                ("IMDS_ENDPOINT", "http://y")
            ])
            .contains("Azure Arc")
        );
        assert!(
            kind(&[("MSI_ENDPOINT", "http://x"), ("MSI_SECRET", "s")]).contains("MSI_ENDPOINT")
        );
        assert!(kind(&[("IDENTITY_ENDPOINT", "http://x")]).contains("without IDENTITY_HEADER"));
        assert!(
            kind(&[("IDENTITY_ENDPOINT", "http://x"), ("IDENTITY_HEADER", "h")])
                .contains("ManagedIdentity")
        );
        assert!(kind(&[]).contains("ManagedIdentity"));
    }

    #[test]
    fn echoed_secrets_are_scrubbed() {
        let text = scrub(
            "invalid_client: got client_secret=a%2Bb%3D%3Dc and s3cret-x".into(),
            &["a+b==c", "s3cret-x"],
        );
        assert_eq!(
            text,
            "invalid_client: got client_secret=<redacted> and <redacted>"
        );
    }

    #[test]
    fn token_errors_say_what_entra_said() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        assert_eq!(
            token_error_text(body),
            "invalid_client: AADSTS7000215: Invalid client secret provided."
        );
        assert_eq!(
            token_error_text(b"client_secret=hunter2"),
            "no error description in the answer"
        );
    }
}
