//! Credentials of the `gcp_secrets` source: a static bearer token, none (an emulator or an
//! API double), a service account's key (a self-signed RS256 JWT exchanged at its
//! `token_uri`), an `authorized_user` refresh token, or the metadata server of the VM or
//! pod; and the cache of the access token they yield (single flight, renewed shortly
//! before it expires, once on a `401`).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use reqwest::header::HeaderValue;
use rustls::SignatureScheme;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::SigningKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::transport::{self, Client};
use crate::source_support::redact_url;

/// The OAuth scope every token is asked for.
pub(super) const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Where an `authorized_user` file's refresh token is exchanged when it names no `token_uri`.
pub(super) const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The metadata server's host unless `GCE_METADATA_HOST` says otherwise.
pub(super) const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
/// How long a request to the metadata server may take (it answers in milliseconds where
/// it exists; off Google Cloud the host does not resolve or does not answer).
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// A token is renewed this long before it expires (Google's libraries: 3m45s).
const EXPIRY_MARGIN: Duration = Duration::from_secs(225);
/// The longest a token is kept, whatever `expires_in` says (Google's last an hour; a
/// server answering `expires_in: 18446744073709551615` must not overflow the clock).
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// The largest credentials file read.
pub(super) const MAX_CREDENTIALS_FILE: u64 = 1024 * 1024;

/// How the source authenticates.
#[derive(Clone)]
pub(super) enum Credentials {
    /// No `Authorization` header (an emulator, an API double).
    Anonymous,
    /// A bearer token given by the caller (never renewed).
    Static(HeaderValue),
    /// A service account key: a JWT signed with `key`, exchanged at `token_uri`.
    ServiceAccount(Arc<ServiceAccount>),
    /// An `authorized_user` file (`gcloud auth application-default login`).
    AuthorizedUser(Arc<AuthorizedUser>),
    /// The metadata server of the instance (GCE, GKE, Cloud Run, Cloud Functions).
    Metadata { host: String },
}

pub(super) struct ServiceAccount {
    pub(super) email: String,
    pub(super) key_id: Option<String>,
    pub(super) key: Arc<dyn SigningKey>,
    pub(super) token_uri: String,
}

pub(super) struct AuthorizedUser {
    pub(super) client_id: String,
    pub(super) client_secret: SecretString,
    pub(super) refresh_token: SecretString,
    pub(super) token_uri: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Static(_) => f.write_str("Static(<redacted>)"),
            Credentials::ServiceAccount(sa) => f
                .debug_struct("ServiceAccount")
                .field("client_email", &sa.email)
                .field("private_key", &"<redacted>")
                .field("token_uri", &redact_url(&sa.token_uri))
                .finish(),
            Credentials::AuthorizedUser(u) => f
                .debug_struct("AuthorizedUser")
                .field("client_id", &u.client_id)
                .field("client_secret", &"<redacted>")
                .field("refresh_token", &"<redacted>")
                .field("token_uri", &redact_url(&u.token_uri))
                .finish(),
            Credentials::Metadata { host } => {
                f.debug_struct("Metadata").field("host", host).finish()
            }
        }
    }
}

impl Credentials {
    /// What kind, for messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Credentials::Anonymous => "no credentials".to_owned(),
            Credentials::Static(_) => "a static token".to_owned(),
            Credentials::ServiceAccount(sa) => format!("service account `{}`", sa.email),
            Credentials::AuthorizedUser(u) => format!("authorized user (client `{}`)", u.client_id),
            Credentials::Metadata { host } => format!("the metadata server at {host}"),
        }
    }

    /// Whether a refused token may be replaced by asking again.
    pub(super) fn renewable(&self) -> bool {
        matches!(
            self,
            Credentials::ServiceAccount(_)
                | Credentials::AuthorizedUser(_)
                | Credentials::Metadata { .. }
        )
    }
}

/// What a credentials file holds, as far as this source reads it.
#[derive(Deserialize)]
struct CredentialsFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    quota_project_id: Option<String>,
    #[serde(default)]
    client_email: Option<String>,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    private_key: Option<SecretString>,
    #[serde(default)]
    token_uri: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<SecretString>,
    #[serde(default)]
    refresh_token: Option<SecretString>,
}

/// A credentials file read: the credentials, the project it names (`project_id`), and
/// the project billed for quota (`quota_project_id`: sent as `x-goog-user-project`, not
/// the secrets' project).
pub(super) struct Parsed {
    pub(super) credentials: Credentials,
    pub(super) project: Option<String>,
    pub(super) quota_project: Option<String>,
}

/// Parses the JSON of a credentials file (`what` names it in errors; never its content).
pub(super) fn parse_credentials(json: &[u8], what: &str) -> Result<Parsed, String> {
    let file: CredentialsFile = serde_json::from_slice(json).map_err(|e| {
        format!(
            "{what} is not a Google credentials file: {}",
            transport::json_error(&e)
        )
    })?;
    let need = |v: Option<String>, name: &str| {
        v.filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("{what} (type `{}`) has no `{name}`", file.kind))
    };
    match file.kind.as_str() {
        "service_account" => {
            let email = need(file.client_email.clone(), "client_email")?;
            let pem = file
                .private_key
                .as_ref()
                .ok_or_else(|| format!("{what} (type `service_account`) has no `private_key`"))?;
            let key = signing_key(pem.expose_secret().as_bytes())
                .map_err(|why| format!("the `private_key` of {what}: {why}"))?;
            let token_uri = file
                .token_uri
                .clone()
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
            Ok(Parsed {
                credentials: Credentials::ServiceAccount(Arc::new(ServiceAccount {
                    email,
                    key_id: file.private_key_id.clone(),
                    key,
                    token_uri,
                })),
                project: file.project_id.clone().filter(|p| !p.is_empty()),
                quota_project: file.quota_project_id.clone().filter(|p| !p.is_empty()),
            })
        }
        "authorized_user" => {
            let client_id = need(file.client_id.clone(), "client_id")?;
            let (Some(client_secret), Some(refresh_token)) =
                (file.client_secret, file.refresh_token)
            else {
                return Err(format!(
                    "{what} (type `authorized_user`) needs `client_secret` and `refresh_token`"
                ));
            };
            Ok(Parsed {
                credentials: Credentials::AuthorizedUser(Arc::new(AuthorizedUser {
                    client_id,
                    client_secret,
                    refresh_token,
                    token_uri: file
                        .token_uri
                        .filter(|u| !u.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
                })),
                project: file.project_id.filter(|p| !p.is_empty()),
                quota_project: file.quota_project_id.filter(|p| !p.is_empty()),
            })
        }
        "external_account" | "external_account_authorized_user" => Err(format!(
            "{what} is of type `{}` (workload identity federation): not supported by the `gcp_secrets` source; use a service account key, `gcloud auth application-default login`, the metadata server, or `with_token`",
            file.kind
        )),
        "impersonated_service_account" => Err(format!(
            "{what} is of type `impersonated_service_account`: service account impersonation is not supported by the `gcp_secrets` source; use the service account's own key, the metadata server, or `with_token`"
        )),
        "" => Err(format!("{what} has no `type`")),
        other => Err(format!(
            "{what} is of type `{other}`, which the `gcp_secrets` source does not know (it reads `service_account` and `authorized_user`)"
        )),
    }
}

/// The RSA key of a PEM `PRIVATE KEY` (PKCS#8, as Google issues them) or `RSA PRIVATE
/// KEY`, able to sign RS256.
pub(super) fn signing_key(pem: &[u8]) -> Result<Arc<dyn SigningKey>, String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| "not a PEM private key".to_owned())?;
    let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|_| "not a private key this source can sign with".to_owned())?;
    if key
        .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
        .is_none()
    {
        return Err("not an RSA key (RS256 needs one)".to_owned());
    }
    Ok(key)
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed JWT a service account exchanges for a token (RFC 7523), valid one hour.
pub(super) fn service_account_jwt(
    sa: &ServiceAccount,
    now: SystemTime,
) -> Result<String, SourceError> {
    let iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &sa.key_id {
        header["kid"] = kid.clone().into();
    }
    let claims = serde_json::json!({
        "iss": sa.email,
        "scope": SCOPE,
        // Google's libraries sign this constant audience, whatever the `token_uri`.
        "aud": DEFAULT_TOKEN_URI,
        "iat": iat,
        "exp": iat + 3600,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let refused = || {
        SourceError::new(ErrorKind::Config).with_message(format!(
            "cannot sign the token request of service account `{}` with its key",
            sa.email
        ))
    };
    let signer = sa
        .key
        .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
        .ok_or_else(refused)?;
    let signature = signer
        .sign(signing_input.as_bytes())
        .map_err(|_| refused())?;
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

/// `pairs` as an `application/x-www-form-urlencoded` body (the WHATWG serializer:
/// `*-._` and alphanumerics kept, space as `+`, every other byte `%XX`).
fn form(pairs: &[(&str, &str)]) -> String {
    fn encode(out: &mut String, text: &str) {
        for &b in text.as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, k);
        out.push('=');
        encode(&mut out, v);
    }
    out
}

/// An access token and when to stop using it.
#[derive(Clone)]
pub(super) struct Token {
    pub(super) header: HeaderValue,
    renew_at: Instant,
}

impl Token {
    fn fresh(&self) -> bool {
        Instant::now() < self.renew_at
    }
}

/// What a token endpoint (or the metadata server) answers.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    access_token: Option<SecretString>,
    /// A number, or a number as a string (some token servers send `"3600"`).
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl TokenResponse {
    /// `expires_in` in seconds (a negative or unreadable one counts as 0; none as 3600).
    fn expires_in(&self) -> u64 {
        match &self.expires_in {
            None | Some(serde_json::Value::Null) => 3600,
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f > 0.0).map(|f| f as u64))
                .unwrap_or(0),
            Some(serde_json::Value::String(s)) => s.trim().parse::<u64>().unwrap_or(0),
            Some(_) => 0,
        }
    }
}

/// A value asked for by one request at a time (single flight), whose failure is shared:
/// the callers that were waiting while an attempt ran get its error rather than sending
/// their own (a silent endpoint costs one timeout, not one per field).
pub(super) struct Flight<T> {
    /// The value, and the last failure with its attempt's number.
    slot: tokio::sync::Mutex<(Option<T>, Option<Failed>)>,
    /// Attempts finished so far.
    finished: std::sync::atomic::AtomicU64,
}

/// A failed attempt: its number (counted from 1) and error.
type Failed = (u64, SourceError);

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            slot: tokio::sync::Mutex::new((None, None)),
            finished: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<T: Clone> Flight<T> {
    /// The value kept when `usable` says so, else the error of an attempt that finished
    /// while this caller waited, else a new attempt with `ask`.
    pub(super) async fn get<F>(
        &self,
        usable: impl Fn(&T) -> bool,
        ask: impl FnOnce() -> F,
    ) -> Result<T, SourceError>
    where
        F: Future<Output = Result<T, SourceError>>,
    {
        use std::sync::atomic::Ordering;
        let queued = self.finished.load(Ordering::SeqCst);
        let mut slot = self.slot.lock().await;
        if let Some(v) = slot.0.as_ref().filter(|v| usable(v)) {
            return Ok(v.clone());
        }
        if let Some((n, e)) = &slot.1
            && *n > queued
        {
            return Err(e.clone());
        }
        let result = ask().await;
        let n = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
        match &result {
            Ok(v) => *slot = (Some(v.clone()), None),
            Err(e) => slot.1 = Some((n, e.clone())),
        }
        result
    }
}

/// The access token of the source's credentials: cached, one request at a time.
#[derive(Default)]
pub(super) struct TokenCache {
    token: Flight<Token>,
}

impl TokenCache {
    /// The current token, asked for when there is none or it is about to expire (by one
    /// request: the others wait for it).
    pub(super) async fn get(
        &self,
        credentials: &Credentials,
        client: &Client,
        metadata: &Client,
    ) -> Result<Option<HeaderValue>, SourceError> {
        match credentials {
            Credentials::Anonymous => return Ok(None),
            Credentials::Static(h) => return Ok(Some(h.clone())),
            _ => {}
        }
        let token = self
            .token
            .get(Token::fresh, || {
                request_token(credentials, client, metadata)
            })
            .await?;
        Ok(Some(token.header))
    }

    /// A new token in place of `stale` (refused with a `401`), unless another request
    /// has already replaced it.
    pub(super) async fn renew(
        &self,
        credentials: &Credentials,
        client: &Client,
        metadata: &Client,
        stale: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>, SourceError> {
        if !credentials.renewable() {
            return self.get(credentials, client, metadata).await;
        }
        let token = self
            .token
            .get(
                |t| Some(&t.header) != stale && t.fresh(),
                || {
                    tracing::debug!(credentials = %credentials.describe(), "Secret Manager refused the access token; asking for a new one");
                    request_token(credentials, client, metadata)
                },
            )
            .await?;
        Ok(Some(token.header))
    }
}

/// One request for a token, bounded by the client's limits.
async fn request_token(
    credentials: &Credentials,
    client: &Client,
    metadata: &Client,
) -> Result<Token, SourceError> {
    let (url, request, limits, who) = match credentials {
        Credentials::ServiceAccount(sa) => {
            let jwt = service_account_jwt(sa, SystemTime::now())?;
            let body = form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &jwt),
            ]);
            let url = parse_url(&sa.token_uri, "the service account's `token_uri`")?;
            let request = client
                .get()
                .await?
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            (url, request, client.limits(), credentials.describe())
        }
        Credentials::AuthorizedUser(u) => {
            let body = form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &u.client_id),
                ("client_secret", u.client_secret.expose_secret()),
                ("refresh_token", u.refresh_token.expose_secret()),
            ]);
            let url = parse_url(&u.token_uri, "the authorized user's `token_uri`")?;
            let request = client
                .get()
                .await?
                .post(url.clone())
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body);
            (url, request, client.limits(), credentials.describe())
        }
        Credentials::Metadata { host } => {
            let url = metadata_url(
                host,
                "computeMetadata/v1/instance/service-accounts/default/token",
            )?;
            let request = metadata
                .get()
                .await?
                .get(url.clone())
                .header("Metadata-Flavor", "Google");
            (url, request, metadata.limits(), credentials.describe())
        }
        Credentials::Anonymous | Credentials::Static(_) => {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("these credentials have no token to ask for"));
        }
    };
    let shown = redact_url(url.as_str());
    let (status, _, body) = transport::send(request, url.as_str(), limits)
        .await
        .map_err(|e| {
            let message = e.message().unwrap_or("").to_owned();
            let hint = if matches!(credentials, Credentials::Metadata { .. }) {
                " (no credentials file: set GOOGLE_APPLICATION_CREDENTIALS off Google Cloud)"
            } else {
                ""
            };
            SourceError::new(e.kind()).with_message(format!(
                "cannot get an access token for {who}: {message}{hint}"
            ))
        })?;
    if !status.is_success() {
        let kind = match status.as_u16() {
            408 | 429 | 500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Unauthorized,
        };
        return Err(SourceError::new(kind).with_message(format!(
            "the token endpoint {shown} refused {who} (HTTP {status}): {}",
            oauth_error(&body)
        )));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "the answer of the token endpoint {shown} for {who} is not a token: {}",
            transport::json_error(&e)
        ))
    })?;
    let expires_in = parsed.expires_in();
    let Some(access) = parsed
        .access_token
        .filter(|t| !t.expose_secret().is_empty())
    else {
        return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
            "the answer of the token endpoint {shown} for {who} has no `access_token`"
        )));
    };
    let header = transport::secret_header(
        "Authorization",
        &format!("Bearer {}", access.expose_secret()),
    )?;
    let lifetime = Duration::from_secs(expires_in).min(MAX_LIFETIME);
    let margin = EXPIRY_MARGIN.min(lifetime / 2);
    tracing::debug!(credentials = %who, expires_in = ?lifetime, "got a Google access token");
    let now = Instant::now();
    Ok(Token {
        header,
        renew_at: now.checked_add(lifetime - margin).unwrap_or(now),
    })
}

fn parse_url(url: &str, what: &str) -> Result<reqwest::Url, SourceError> {
    reqwest::Url::parse(url).map_err(|e| {
        SourceError::new(ErrorKind::Config)
            .with_message(format!("{what} `{}` is not a URL: {e}", redact_url(url)))
    })
}

/// `http://{host}/{path}` of the metadata server (`host` may carry a port or a scheme).
pub(super) fn metadata_url(host: &str, path: &str) -> Result<reqwest::Url, SourceError> {
    transport::join_url(&transport::base_url(host, "http"), &[path], &[])
}

/// The project of the metadata server (`project/project-id`).
pub(super) async fn metadata_project(host: &str, metadata: &Client) -> Result<String, SourceError> {
    let url = metadata_url(host, "computeMetadata/v1/project/project-id")?;
    let request = metadata
        .get()
        .await?
        .get(url.clone())
        .header("Metadata-Flavor", "Google");
    let (status, _, body) = transport::send(request, url.as_str(), metadata.limits()).await?;
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if !status.is_success() || text.is_empty() || text.contains(char::is_whitespace) {
        return Err(
            SourceError::new(transport::status_kind(status)).with_message(format!(
                "the metadata server at {host} answered no project id (HTTP {status})"
            )),
        );
    }
    Ok(text)
}

/// The text of an OAuth error body (`{"error": "invalid_grant", "error_description":
/// "..."}`) or a Google error body, bounded; of anything else its size only (never the
/// body: it may echo the request).
pub(super) fn oauth_error(body: &[u8]) -> String {
    let parsed: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = match (&parsed["error"], &parsed["error_description"]) {
        (serde_json::Value::String(e), serde_json::Value::String(d)) => format!("{e}: {d}"),
        (serde_json::Value::String(e), _) => e.clone(),
        (serde_json::Value::Object(o), _) => format!(
            "{} {}",
            o.get("status").and_then(|s| s.as_str()).unwrap_or(""),
            o.get("message").and_then(|s| s.as_str()).unwrap_or("")
        )
        .trim()
        .to_owned(),
        // Never the body itself: an endpoint echoing the request would put the refresh
        // token, client secret or JWT into the error.
        _ => format!("{} bytes, not an OAuth error", body.len()),
    };
    super::source::bounded(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_are_encoded() {
        assert_eq!(
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("x", "a b/+")
            ]),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&x=a+b%2F%2B"
        );
    }

    #[test]
    fn unsupported_files_say_so() {
        let e = parse_credentials(br#"{"type": "external_account"}"#, "f.json")
            .err()
            .unwrap();
        assert!(e.contains("not supported"), "{e}");
        let e = parse_credentials(br#"{"type": "impersonated_service_account"}"#, "f.json")
            .err()
            .unwrap();
        assert!(e.contains("impersonation is not supported"), "{e}");
        let e = parse_credentials(b"{", "f.json").err().unwrap();
        assert!(e.contains("not a Google credentials file"), "{e}");
    }

    #[test]
    fn oauth_errors() {
        assert_eq!(
            oauth_error(br#"{"error":"invalid_grant","error_description":"Bad Request"}"#),
            "invalid_grant: Bad Request"
        );
        assert_eq!(
            oauth_error(br#"{"error":{"code":401,"message":"m","status":"UNAUTHENTICATED"}}"#),
            "UNAUTHENTICATED m"
        );
        // An echo of the request is not shown.
        assert_eq!(
            oauth_error(b"grant_type=refresh_token&refresh_token=CANARY"),
            "45 bytes, not an OAuth error"
        );
    }
}
