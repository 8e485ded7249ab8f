//! What both AWS sources share: one AWS JSON 1.1 service reached over the crate's reqwest
//! transport, its requests signed with SigV4 (`aws-sigv4`), its error bodies read into
//! [`SourceError`]s that carry the service's own code and message.

use std::fmt;
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use serde::Deserialize;

use super::credentials::{AwsCredentials, CredentialChain};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client};
use crate::source::{Access, Probe};
use crate::source_support::redact_url;

/// One AWS service as this crate calls it.
#[derive(Debug)]
pub(super) struct Service {
    /// The name requests are signed for (`secretsmanager`, `ssm`).
    pub(super) signing_name: &'static str,
    /// The `X-Amz-Target` prefix (`secretsmanager`, `AmazonSSM`).
    pub(super) target: &'static str,
    /// What messages call it.
    pub(super) display: &'static str,
    /// The service's own endpoint variable (`AWS_ENDPOINT_URL_SSM`).
    pub(super) endpoint_var: &'static str,
}

pub(super) const SECRETS_MANAGER: Service = Service {
    signing_name: "secretsmanager",
    target: "secretsmanager",
    display: "AWS Secrets Manager",
    endpoint_var: "AWS_ENDPOINT_URL_SECRETS_MANAGER",
};

pub(super) const SSM: Service = Service {
    signing_name: "ssm",
    target: "AmazonSSM",
    display: "AWS SSM Parameter Store",
    endpoint_var: "AWS_ENDPOINT_URL_SSM",
};

/// A service in a region at an endpoint, with credentials and the transport's limits.
#[derive(Clone)]
pub(super) struct AwsClient {
    pub(super) service: &'static Service,
    region: String,
    endpoint: String,
    client: Client,
    credentials: CredentialChain,
    invalid: Option<String>,
    /// Requests in flight at once from this source (and its clones): a fetch of 1,000
    /// pinned secrets sends them [`MAX_IN_FLIGHT`] at a time.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The most requests one source has in flight at once.
pub(super) const MAX_IN_FLIGHT: usize = 16;

impl fmt::Debug for AwsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The chain's Debug shows the access key id only.
        f.debug_struct("AwsClient")
            .field("service", &self.service.signing_name)
            .field("region", &self.region)
            .field("endpoint", &redact_url(&self.endpoint))
            .field("credentials", &self.credentials)
            .field("timeout", &self.client.timeout)
            .field("max_body", &self.client.max_body)
            .finish()
    }
}

/// The AWS error body of the JSON protocols: `{"__type": "...#Code", "message": "..."}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(rename = "__type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(rename = "Message", default)]
    message_upper: Option<String>,
}

/// Error codes that say the credentials themselves were refused (not a key's permission).
const UNAUTHENTICATED: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
];

/// The kind of error an AWS error code (and status) means.
pub(super) fn kind_of(status: u16, code: &str, message: &str) -> ErrorKind {
    match code {
        "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound" => {
            ErrorKind::NotFound
        }
        // A secret scheduled for deletion cannot be read: as good as gone.
        "InvalidRequestException" if message.contains("marked for deletion") => ErrorKind::NotFound,
        "AccessDeniedException"
        | "AccessDenied"
        | "DecryptionFailure"
        | "KMSAccessDeniedException" => ErrorKind::Unauthorized,
        c if UNAUTHENTICATED.contains(&c) => ErrorKind::Unauthorized,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "InternalServiceError"
        | "InternalServerError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "KMSThrottlingException" => ErrorKind::Unavailable,
        // The secret's KMS key is gone, disabled or pending deletion: retrying does not
        // help; the key's owner must act.
        "KMSNotFoundException" | "KMSInvalidStateException" | "KMSDisabledException" => {
            ErrorKind::Config
        }
        "ValidationException"
        | "InvalidParameterException"
        | "InvalidKeyId"
        | "InvalidNextToken"
        | "InvalidNextTokenException"
        | "InvalidFilterKey"
        | "InvalidRequestException"
        | "UnknownOperationException" => ErrorKind::Config,
        _ => transport::status_kind(reqwest::StatusCode::from_u16(status).unwrap_or_default()),
    }
}

/// Whether `e` says the credentials were refused or are missing (a preflight's
/// unauthenticated), rather than a key's permission.
pub(super) fn is_unauthenticated(e: &SourceError) -> bool {
    e.kind() == ErrorKind::Unauthorized
        && e.message().is_some_and(|m| {
            UNAUTHENTICATED
                .iter()
                .any(|c| m.contains(&format!(" {c}:")))
                || m.contains("AWS credentials")
        })
}

/// What an error of a preflight's request means (see [`is_unauthenticated`]).
pub(super) fn probe_of_error(e: &SourceError) -> Probe {
    let mut probe = Probe::from_error(e);
    if is_unauthenticated(e) {
        probe.access = Access::Unauthenticated;
    }
    probe
}

/// `text` cut to at most 300 bytes (a server's message in an error).
pub(super) fn bounded(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_owned();
    }
    let mut cut = 300;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

/// `(code, message)` of an AWS error body (bounded; never the whole body): the JSON
/// protocols' `{"__type", "message"}`, or the XML `<Error><Code>` a front end (an IAM
/// check, a proxy) may answer with.
fn error_of(body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    if text.trim_start().starts_with('<')
        && let Some(code) = xml_text(&text, "Code")
    {
        let message = xml_text(&text, "Message").unwrap_or("");
        return (bounded(code), bounded(message));
    }
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let code = parsed
        .kind
        .as_deref()
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        // Some services append `:http://internal.amazon.com/...` to the type.
        .map(|t| t.split(':').next().unwrap_or(t).trim().to_owned())
        .unwrap_or_default();
    let message = parsed.message.or(parsed.message_upper).unwrap_or_else(|| {
        if code.is_empty() {
            String::from_utf8_lossy(body).trim().to_owned()
        } else {
            String::new()
        }
    });
    (code, bounded(&message))
}

/// The endpoint `env` names for `service`: its own variable, then `AWS_ENDPOINT_URL`
/// (unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` is true), as the AWS SDKs read them.
pub(super) fn endpoint_from_env(env: &EnvSource, service: &Service) -> Option<String> {
    let get = |name: &str| {
        env.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    get(service.endpoint_var).or_else(|| get("AWS_ENDPOINT_URL"))
}

/// The service's public endpoint in `region`.
fn default_endpoint(service: &Service, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{}.{region}.{suffix}", service.signing_name)
}

/// Why `region` cannot be a region name (it goes into a host name and the signature).
fn region_problem(region: &str) -> Option<String> {
    let ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    (!ok).then(|| format!("`{}` is not an AWS region name", region.escape_debug()))
}

impl AwsClient {
    pub(super) fn new(service: &'static Service, region: &str) -> Self {
        let region = region.trim().to_owned();
        let invalid = region_problem(&region);
        let mut c = AwsClient {
            service,
            endpoint: default_endpoint(service, &region),
            region,
            client: Client::new(transport::DEFAULT_REQUEST_TIMEOUT),
            credentials: CredentialChain::from_env(&EnvSource::process()),
            invalid: None,
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        };
        c.invalid = invalid;
        c
    }

    /// From `env`: `None` without a region.
    pub(super) fn from_env(service: &'static Service, env: &EnvSource) -> Option<Self> {
        let region = super::credentials::region_from_env(env)?;
        let mut c = Self::new(service, &region);
        c.credentials = CredentialChain::from_env(env);
        if let Some(endpoint) = endpoint_from_env(env, service) {
            c.set_endpoint(&endpoint);
        }
        Some(c)
    }

    /// Sets the endpoint; a valid one clears what an earlier invalid endpoint left (the
    /// region's problem stays).
    pub(super) fn set_endpoint(&mut self, endpoint: &str) {
        let base = transport::base_url(endpoint, "https");
        self.invalid = region_problem(&self.region);
        match reqwest::Url::parse(&base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                if !url.username().is_empty() || url.password().is_some() {
                    self.invalid = Some(format!(
                        "the endpoint {} has credentials in it: AWS requests are signed instead",
                        redact_url(&base)
                    ));
                }
                self.endpoint = base;
            }
            _ => {
                self.invalid = Some(format!(
                    "the endpoint {} is not an http(s) URL",
                    redact_url(&base)
                ));
            }
        }
    }

    pub(super) fn set_credentials(&mut self, credentials: AwsCredentials) {
        self.credentials = CredentialChain::fixed(credentials);
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) {
        self.client = self.client.with_timeout(timeout);
        // STS and the container endpoint are asked within the same bound (instance
        // metadata keeps its own, shorter one).
        self.credentials = self.credentials.with_timeout(timeout);
    }

    pub(super) fn set_tls(&mut self, tls: crate::TlsConfig) {
        self.client = self.client.with_tls(tls);
    }

    pub(super) fn set_max_body(&mut self, bytes: usize) {
        self.client.max_body = bytes;
    }

    pub(super) fn region(&self) -> &str {
        &self.region
    }

    /// The most bytes one response body may have.
    pub(super) fn max_body(&self) -> usize {
        self.client.max_body
    }

    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `region at endpoint`, and where credentials come from (names and paths, never a key).
    pub(super) fn location(&self) -> String {
        format!(
            "{} {} at {} (credentials: {})",
            self.service.display,
            self.region,
            redact_url(&self.endpoint),
            self.credentials.describe()
        )
    }

    pub(super) fn check_valid(&self) -> Result<(), SourceError> {
        match &self.invalid {
            Some(why) => Err(SourceError::new(ErrorKind::Config).with_message(why.clone())),
            None => Ok(()),
        }
    }

    /// Credentials from the chain, within the timeout.
    async fn credentials(&self) -> Result<AwsCredentials, SourceError> {
        let within = self.client.timeout;
        match tokio::time::timeout(within, self.credentials.credentials()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => {
                // The chain's message names its provider ("AWS credentials from ...").
                let why = e.message().unwrap_or("no AWS credentials").to_owned();
                Err(SourceError::new(e.kind()).with_message(format!(
                    "{why} (no {} request was sent)",
                    self.service.display
                )))
            }
            Err(_) => Err(SourceError::new(ErrorKind::Timeout).with_message(format!(
                "AWS credentials for {} were not found within {}",
                self.service.display,
                crate::error::humanize(within)
            ))),
        }
    }

    /// The headers that sign `POST <endpoint>` of `body` for `operation`: `(name, value,
    /// secret)`. The signature and the session token are secret.
    fn sign(
        &self,
        credentials: AwsCredentials,
        url: &str,
        operation: &str,
        target: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String, bool)>, SourceError> {
        use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
        let identity: aws_smithy_runtime_api::client::identity::Identity =
            aws_credential_types::Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.expose_secret().to_owned(),
                credentials
                    .session_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned()),
                credentials.expires_at,
                "component_model",
            )
            .into();
        let refused = |what: String| {
            SourceError::new(ErrorKind::Config).with_message(format!(
                "cannot sign the {} request {operation}: {what}",
                self.service.display
            ))
        };
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| refused(e.to_string()))?
            .into();
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
        ];
        let signable =
            SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| refused(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| refused(e.to_string()))?
            .into_parts();
        let mut out = Vec::new();
        for (name, value) in instructions.headers() {
            let (name, secret): (&'static str, bool) = match name.to_ascii_lowercase().as_str() {
                "authorization" => ("authorization", true),
                "x-amz-security-token" => ("x-amz-security-token", true),
                "x-amz-date" => ("x-amz-date", false),
                "x-amz-content-sha256" => ("x-amz-content-sha256", false),
                other => return Err(refused(format!("unexpected signing header `{other}`"))),
            };
            out.push((name, value.to_owned(), secret));
        }
        Ok(out)
    }

    /// POSTs `body` as `operation` (`BatchGetSecretValue`); the body of a success, else
    /// an error that names `what` (the key) and carries the service's code and message.
    pub(super) async fn call(
        &self,
        operation: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<Vec<u8>, SourceError> {
        self.check_valid()?;
        // Never closed: acquiring fails only after `close`.
        let _permit = self.in_flight.acquire().await.map_err(|_| {
            SourceError::new(ErrorKind::Unavailable).with_message("the source is shut down")
        })?;
        let credentials = self.credentials().await?;
        let url = reqwest::Url::parse(&self.endpoint).map_err(|e| {
            SourceError::new(ErrorKind::Config).with_message(format!(
                "invalid endpoint {}: {e}",
                redact_url(&self.endpoint)
            ))
        })?;
        let body = serde_json::to_vec(body).unwrap_or_default();
        let target = format!("{}.{operation}", self.service.target);
        let signed = self.sign(credentials, url.as_str(), operation, &target, &body)?;
        let mut request = self
            .client
            .get()
            .await?
            .post(url.clone())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target.as_str());
        for (name, value, secret) in signed {
            let value = if secret {
                transport::secret_header(name, &value)?
            } else {
                reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                    SourceError::new(ErrorKind::Config)
                        .with_message(format!("the signing header `{name}` is not a header value"))
                })?
            };
            request = request.header(name, value);
        }
        let request = request.body(body);
        let (status, _, answer) =
            transport::send(request, url.as_str(), self.client.limits()).await?;
        if status.is_success() {
            return Ok(answer);
        }
        let (code, message) = error_of(&answer);
        let kind = kind_of(status.as_u16(), &code, &message);
        let mut text = format!(
            "{} ({}) refused {operation} for {what}: HTTP {status}",
            self.service.display, self.region
        );
        if !code.is_empty() {
            text.push_str(&format!(" {code}:"));
        }
        if !message.is_empty() {
            text.push_str(&format!(" {message}"));
        }
        Err(SourceError::new(kind).with_message(text))
    }
}

/// When every poll of a watch failed for good (refused, or a request the service
/// rejects), the error the watch ends with: [`ErrorKind::Config`], so the engine polls
/// the fields instead; `None` when one poll succeeded or a failure may pass
/// (throttling, timeouts, 5xx). `needs` names the IAM action watching needs.
pub(super) fn permanent_failure<'a, T: 'a>(
    polled: impl IntoIterator<Item = &'a Result<T, SourceError>>,
    needs: &str,
) -> Option<SourceError> {
    let mut first = None;
    for r in polled {
        match r {
            Err(e) if matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Config) => {
                first.get_or_insert(e);
            }
            _ => return None,
        }
    }
    let e = first?;
    let why = e.message().unwrap_or("refused");
    Some(
        SourceError::new(ErrorKind::Config).with_message(if e.kind() == ErrorKind::Unauthorized {
            format!("watching needs {needs}: {why}")
        } else {
            format!("cannot watch: {why}")
        }),
    )
}

/// Decodes standard base64 (padding optional); `None` when it is not.
pub(super) fn unb64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD_ANY_PADDING.decode(text.trim()).ok()
}

/// An AWS version id (a UUID) as the bytes of its hex digits, else its text's bytes.
pub(super) fn version_digest(id: &str) -> Vec<u8> {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len().is_multiple_of(2) && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
    {
        (0..hex.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect()
    } else {
        id.as_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(unb64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(unb64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(unb64("AAEC/w==").unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(unb64("").unwrap(), Vec::<u8>::new());
        assert!(unb64("a$==").is_none());
        assert!(unb64("aGVsbG8=x").is_none());
    }

    #[test]
    fn error_bodies() {
        let (code, msg) = error_of(
            br#"{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#,
        );
        assert_eq!(code, "ResourceNotFoundException");
        assert_eq!(msg, "Secrets Manager can't find the specified secret.");
        assert_eq!(kind_of(400, &code, &msg), ErrorKind::NotFound);
        let (code, msg) = error_of(br#"{"__type":"AccessDeniedException","Message":"no"}"#);
        assert_eq!(
            (code.as_str(), msg.as_str()),
            ("AccessDeniedException", "no")
        );
        assert_eq!(kind_of(400, &code, &msg), ErrorKind::Unauthorized);
        assert_eq!(
            kind_of(400, "ThrottlingException", ""),
            ErrorKind::Unavailable
        );
        assert_eq!(kind_of(503, "", ""), ErrorKind::Unavailable);
        // A KMS key gone or disabled is not retried.
        assert_eq!(kind_of(400, "KMSNotFoundException", ""), ErrorKind::Config);
        assert_eq!(
            kind_of(400, "KMSInvalidStateException", ""),
            ErrorKind::Config
        );
        assert_eq!(
            kind_of(400, "InvalidNextTokenException", ""),
            ErrorKind::Config
        );
        assert_eq!(
            kind_of(
                400,
                "InvalidRequestException",
                "it was marked for deletion."
            ),
            ErrorKind::NotFound
        );
        let (code, msg) = error_of(
            b"<?xml version=\"1.0\"?><ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>not authorized</Message></Error></Errors></ErrorResponse>",
        );
        assert_eq!(
            (code.as_str(), msg.as_str()),
            ("AccessDenied", "not authorized")
        );
        let (_, long) = error_of(&[b'x'; 1000]);
        assert!(long.len() < 310);
    }

    #[test]
    fn endpoints_and_regions() {
        assert_eq!(
            default_endpoint(&SSM, "eu-west-1"),
            "https://ssm.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            default_endpoint(&SECRETS_MANAGER, "cn-north-1"),
            "https://secretsmanager.cn-north-1.amazonaws.com.cn"
        );
        assert!(region_problem("us-east-1").is_none());
        assert!(region_problem("us east/1").is_some());
        let env = EnvSource::from_map([
            ("AWS_ENDPOINT_URL", "http://a:1"),
            ("AWS_ENDPOINT_URL_SSM", "http://b:2"),
        ]);
        assert_eq!(endpoint_from_env(&env, &SSM).as_deref(), Some("http://b:2"));
        assert_eq!(
            endpoint_from_env(&env, &SECRETS_MANAGER).as_deref(),
            Some("http://a:1")
        );
        let mut c = AwsClient::new(&SSM, "us-east-1");
        c.set_endpoint("ftp://x");
        assert!(c.check_valid().is_err());
        // A later valid endpoint clears it.
        c.set_endpoint("http://127.0.0.1:5000");
        assert!(c.check_valid().is_ok());
        let mut c = AwsClient::new(&SSM, "us east");
        c.set_endpoint("http://127.0.0.1:5000");
        assert!(c.check_valid().is_err(), "the region's problem stays");
    }

    #[test]
    fn version_digests() {
        assert_eq!(
            version_digest("a1b2c3d4-0000-1111-2222-333344445555").len(),
            16
        );
        assert_eq!(version_digest("v1"), b"v1".to_vec());
    }
}
