//! AWS STS: `AssumeRoleWithWebIdentity` (unsigned: the web identity token is the proof)
//! and `AssumeRole` (signed with SigV4 by the source credentials), over the crate's HTTP
//! transport, form-encoded POSTs of the query protocol (`Version=2011-06-15`).
//!
//! STS answers XML. Its documents have a fixed shape (`<...Response><...Result>
//! <Credentials><AccessKeyId>...`, errors `<ErrorResponse><Error><Code>...`): the few
//! leaf elements read here are found by name inside their parent element and their
//! text's entities decoded, rather than adding an XML crate to the build for four fields.
//! STS's documents carry no CDATA, comments or attributes in the elements read.

use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

use super::{AwsCredentials, RoleSource, WebIdentity, scrub};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client, secret_header};
use crate::source_support::redact_url;

/// Where STS is and the region requests are signed for.
#[derive(Debug, Clone)]
pub(super) struct Sts {
    pub(super) endpoint: String,
    region: String,
}

impl Sts {
    /// `AWS_ENDPOINT_URL_STS`, then `AWS_ENDPOINT_URL`, else the regional endpoint of
    /// `region` (`https://sts.{region}.amazonaws.com`, `.amazonaws.com.cn` in China), else
    /// the global `https://sts.amazonaws.com`.
    pub(super) fn from_env(env: &EnvSource, region: Option<&str>) -> Self {
        let configured = ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
            .iter()
            .filter_map(|n| env.get(n))
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .find(|v| !v.is_empty());
        let endpoint = match (configured, region) {
            (Some(e), _) => e,
            (None, Some(r)) if r.starts_with("cn-") => format!("https://sts.{r}.amazonaws.com.cn"),
            (None, Some(r)) => format!("https://sts.{r}.amazonaws.com"),
            (None, None) => "https://sts.amazonaws.com".to_owned(),
        };
        Sts {
            endpoint,
            region: region.unwrap_or("us-east-1").to_owned(),
        }
    }
}

/// A role session's name: the configured one, else `component-model-<unix seconds>`.
fn session_name(configured: Option<&str>) -> String {
    configured.map(str::to_owned).unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("component-model-{secs}")
    })
}

/// `AssumeRoleWithWebIdentity` with the token read from the file now (tokens rotate).
pub(super) async fn web_identity(
    w: &WebIdentity,
    sts: &Sts,
    client: &Client,
) -> Result<AwsCredentials, SourceError> {
    let token = super::read_token_file(&w.token_file, "the web identity token file")?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &w.role_arn)
        .append_pair("RoleSessionName", &session_name(w.session_name.as_deref()))
        .append_pair("WebIdentityToken", token.expose_secret())
        .finish();
    let body = SecretString::from(body);
    let request = client
        .get()
        .await?
        .post(&sts.endpoint)
        .header(reqwest::header::CONTENT_TYPE, FORM)
        .body(body.expose_secret().to_owned());
    call(
        request,
        sts,
        client,
        "AssumeRoleWithWebIdentity",
        &[token.expose_secret()],
    )
    .await
}

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// `AssumeRole` signed with `source`'s credentials.
pub(super) async fn assume_role(
    r: &RoleSource,
    source: &AwsCredentials,
    sts: &Sts,
    client: &Client,
) -> Result<AwsCredentials, SourceError> {
    let body = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &r.role_arn)
            .append_pair("RoleSessionName", &session_name(r.session_name.as_deref()));
        if let Some(x) = &r.external_id {
            form.append_pair("ExternalId", x);
        }
        if let Some(d) = &r.duration_seconds {
            form.append_pair("DurationSeconds", d);
        }
        form.finish()
    };
    let mut request = client
        .get()
        .await?
        .post(&sts.endpoint)
        .header(reqwest::header::CONTENT_TYPE, FORM);
    for (name, value, sensitive) in sign(&sts.endpoint, &sts.region, &body, source)? {
        let value = if sensitive || name.eq_ignore_ascii_case("authorization") {
            secret_header(&name, &value)?
        } else {
            reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                SourceError::new(ErrorKind::Other).with_message(format!(
                    "the signature's header `{name}` is not a header value"
                ))
            })?
        };
        request = request.header(name, value);
    }
    let request = request.body(body);
    let secret = source.secret_access_key.expose_secret();
    let token = source.session_token.as_ref().map(|t| t.expose_secret());
    let secrets: Vec<&str> = std::iter::once(secret).chain(token).collect();
    call(request, sts, client, "AssumeRole", &secrets).await
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`...) for a POST of
/// `body` to `url` by `creds`, service `sts`.
fn sign(
    url: &str,
    region: &str,
    body: &str,
    creds: &AwsCredentials,
) -> Result<Vec<(String, String, bool)>, SourceError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        SourceError::new(ErrorKind::Config)
            .with_message(format!("cannot sign the STS request ({what}): {e}"))
    };
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            creds.expires_at,
            "component_model",
        )
        .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed("parameters", &e))?
        .into();
    let headers = [("content-type", FORM)];
    let signable = SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|e| failed("request", &e))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| failed("signature", &e))?
        .into_parts();
    let (headers, _) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name().to_owned(), h.value().to_owned(), h.sensitive()))
        .collect())
}

/// Sends an STS request and reads its answer: the credentials, or STS's own error code
/// and message (scrubbed of `secrets`: whatever was sent that a hostile endpoint could
/// echo).
async fn call(
    request: reqwest::RequestBuilder,
    sts: &Sts,
    client: &Client,
    action: &str,
    secrets: &[&str],
) -> Result<AwsCredentials, SourceError> {
    let (status, _, body) = transport::send(request, &sts.endpoint, client.limits()).await?;
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        return Err(refusal(status, &text, action, sts, secrets));
    }
    let creds = element(&text, "Credentials").ok_or_else(|| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "STS {action} at {} answered {status} without <Credentials>",
            redact_url(&sts.endpoint)
        ))
    })?;
    let field = |name: &str| element(creds, name).map(unescape);
    let (Some(id), Some(secret)) = (field("AccessKeyId"), field("SecretAccessKey")) else {
        return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
            "STS {action} answered <Credentials> without AccessKeyId/SecretAccessKey"
        )));
    };
    let expires_at = match field("Expiration") {
        Some(e) => Some(super::parse_time(&e).map_err(|why| {
            SourceError::new(ErrorKind::Decode).with_message(format!("STS {action}: {why}"))
        })?),
        None => None,
    };
    Ok(AwsCredentials {
        access_key_id: id,
        secret_access_key: SecretString::from(secret),
        session_token: field("SessionToken").map(SecretString::from),
        expires_at,
    })
}

/// STS's refusal: `<Error><Code>` and `<Message>`, the kind from the code.
fn refusal(
    status: reqwest::StatusCode,
    text: &str,
    action: &str,
    sts: &Sts,
    secrets: &[&str],
) -> SourceError {
    let error = element(text, "Error");
    let code = error.and_then(|e| element(e, "Code")).map(unescape);
    let message = error.and_then(|e| element(e, "Message")).map(unescape);
    let kind = match code.as_deref() {
        Some(
            "IDPCommunicationError" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded",
        ) => ErrorKind::Unavailable,
        Some(
            "ValidationError"
            | "MalformedPolicyDocument"
            | "PackedPolicyTooLarge"
            | "RegionDisabledException"
            | "InvalidParameterValue",
        ) => ErrorKind::Config,
        _ if status.is_server_error() => ErrorKind::Unavailable,
        _ if status.is_client_error() => ErrorKind::Unauthorized,
        _ => ErrorKind::Other,
    };
    let said = match (code, message) {
        (Some(c), Some(m)) => format!(": {}: {}", scrub(&c, secrets), scrub(&m, secrets)),
        (Some(c), None) => format!(": {}", scrub(&c, secrets)),
        (None, _) => " (no STS error document)".to_owned(),
    };
    SourceError::new(kind).with_message(format!(
        "STS {action} at {} refused ({status}){said}",
        redact_url(&sts.endpoint)
    ))
}

/// The text inside the first `<name>...</name>` (or `<name attr="...">`) of `xml`;
/// `Some("")` for `<name/>`.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = xml[from..].find('<').map(|i| from + i) {
        let rest = &xml[at + 1..];
        from = at + 1;
        let Some(after) = rest.strip_prefix(name) else {
            continue;
        };
        match after.chars().next() {
            Some('>') => {
                let start = at + 1 + name.len() + 1;
                let close = format!("</{name}>");
                return xml[start..]
                    .find(&close)
                    .map(|end| &xml[start..start + end]);
            }
            Some('/') if after.starts_with("/>") => return Some(""),
            Some(c) if c.is_whitespace() => {
                let open_end = after.find('>')?;
                if after[..open_end].ends_with('/') {
                    return Some("");
                }
                let start = at + 1 + name.len() + open_end + 1;
                let close = format!("</{name}>");
                return xml[start..]
                    .find(&close)
                    .map(|end| &xml[start..start + end]);
            }
            _ => continue,
        }
    }
    None
}

/// XML text with its five named entities and numeric character references decoded.
fn unescape(text: &str) -> String {
    let text = text.trim();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>a+b/c&amp;d</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2026-12-07T07:51:59.578050Z</Expiration></Credentials><AssumedRoleUser><Arn>arn</Arn></AssumedRoleUser></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn reads_elements() {
        let creds = element(OK, "Credentials").unwrap();
        assert_eq!(element(creds, "AccessKeyId"), Some("ASIA1"));
        assert_eq!(
            unescape(element(creds, "SecretAccessKey").unwrap()),
            "a+b/c&d"
        );
        assert!(super::super::parse_time(element(creds, "Expiration").unwrap()).is_ok());
        assert_eq!(
            element(OK, "AssumeRoleWithWebIdentityResult").map(|s| s.len() > 10),
            Some(true)
        );
        assert_eq!(element("<a><Code/></a>", "Code"), Some(""));
        assert_eq!(element("<a><Code x=\"1\">v</Code></a>", "Code"), Some("v"));
        assert_eq!(element("<a><CodeX>1</CodeX></a>", "Code"), None);
        assert_eq!(element("<a><Code>unclosed", "Code"), None);
    }

    #[test]
    fn unescapes() {
        assert_eq!(
            unescape("a&lt;b&gt;&quot;&apos;&#65;&#x42;&bogus;&"),
            "a<b>\"'AB&bogus;&"
        );
    }

    #[test]
    fn refusals_carry_the_code_and_scrub_what_was_sent() {
        let sts = Sts::from_env(&EnvSource::from_map([("X", "y")]), Some("eu-west-1"));
        assert_eq!(sts.endpoint, "https://sts.eu-west-1.amazonaws.com");
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token SECRETTOKEN is bad &amp; old</Message></Error></ErrorResponse>";
        let e = refusal(
            reqwest::StatusCode::BAD_REQUEST,
            body,
            "AssumeRoleWithWebIdentity",
            &sts,
            &["SECRETTOKEN"],
        );
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        let text = e.to_string();
        assert!(
            text.contains("InvalidIdentityToken: token [REDACTED] is bad & old"),
            "{text}"
        );
        let e = refusal(
            reqwest::StatusCode::BAD_REQUEST,
            "<ErrorResponse><Error><Code>IDPCommunicationError</Code></Error></ErrorResponse>",
            "A",
            &sts,
            &[],
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let e = refusal(reqwest::StatusCode::BAD_GATEWAY, "<html>", "A", &sts, &[]);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("no STS error document"));
    }

    #[test]
    fn endpoints() {
        let env = EnvSource::from_map([("AWS_ENDPOINT_URL", "http://127.0.0.1:5000/")]);
        assert_eq!(Sts::from_env(&env, None).endpoint, "http://127.0.0.1:5000");
        let env = EnvSource::from_map([
            ("AWS_ENDPOINT_URL", "http://a"),
            ("AWS_ENDPOINT_URL_STS", "http://b"),
        ]);
        assert_eq!(Sts::from_env(&env, None).endpoint, "http://b");
        let none = EnvSource::from_map([("X", "y")]);
        assert_eq!(
            Sts::from_env(&none, None).endpoint,
            "https://sts.amazonaws.com"
        );
        assert_eq!(
            Sts::from_env(&none, Some("cn-north-1")).endpoint,
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
    }
}
