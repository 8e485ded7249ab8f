//! Credentials served over HTTP by the platform: the ECS/EKS container endpoint
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`) and EC2's instance metadata
//! service (IMDSv2).

use std::path::PathBuf;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{AwsCredentials, scrub};
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::fetchers::transport::{self, Client, secret_header};
use crate::source_support::redact_url;

/// The ECS task metadata host `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` is relative to.
const ECS_HOST: &str = "http://169.254.170.2";

/// The instance metadata service's default address.
pub(super) const IMDS_DEFAULT: &str = "http://169.254.169.254";

/// How long an IMDSv2 session token asked for lives (six hours, as the SDKs ask).
const IMDS_TOKEN_TTL: &str = "21600";

/// The container credentials endpoint and its authorization token.
pub(super) struct Container {
    pub(super) url: String,
    token: Option<ContainerToken>,
}

enum ContainerToken {
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`.
    Value(SecretString),
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, read at every refresh (EKS Pod Identity
    /// rotates it).
    File(PathBuf),
}

/// The container endpoint the environment names: `None` when it names none; an error
/// when `AWS_CONTAINER_CREDENTIALS_FULL_URI` is not one the SDKs accept (plain `http` only
/// to a loopback address or the ECS/EKS agents', so the token is not sent elsewhere).
pub(super) fn container(env: &EnvSource) -> Option<Result<Container, String>> {
    let get = |n: &str| {
        env.get(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let url = if let Some(relative) = get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let sep = if relative.starts_with('/') { "" } else { "/" };
        format!("{ECS_HOST}{sep}{relative}")
    } else {
        let full = get("AWS_CONTAINER_CREDENTIALS_FULL_URI")?;
        if let Err(why) = full_uri_allowed(&full) {
            return Some(Err(why));
        }
        full
    };
    let token = match (
        get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
    ) {
        (Some(file), _) => Some(ContainerToken::File(PathBuf::from(file))),
        (None, Some(value)) => Some(ContainerToken::Value(SecretString::from(value))),
        (None, None) => None,
    };
    Some(Ok(Container { url, token }))
}

fn full_uri_allowed(full: &str) -> Result<(), String> {
    let shown = redact_url(full);
    let url = url::Url::parse(full)
        .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {shown} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let allowed = match url.host() {
                Some(url::Host::Ipv4(ip)) => {
                    ip.is_loopback()
                        || ip == std::net::Ipv4Addr::new(169, 254, 170, 2)
                        || ip == std::net::Ipv4Addr::new(169, 254, 170, 23)
                }
                Some(url::Host::Ipv6(ip)) => {
                    ip.is_loopback()
                        || ip
                            == "fd00:ec2::23"
                                .parse::<std::net::Ipv6Addr>()
                                .expect("literal")
                }
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if allowed {
                Ok(())
            } else {
                Err(format!(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI {shown}: plain http is accepted only to a loopback address or the ECS/EKS agents' (169.254.170.2, 169.254.170.23, fd00:ec2::23); use https"
                ))
            }
        }
        other => Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {shown}: scheme `{other}` is not http or https"
        )),
    }
}

/// The instance metadata service's address: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else
/// the IPv6 one when `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`, else 169.254.169.254.
pub(super) fn imds_endpoint(env: &EnvSource) -> String {
    if let Some(e) = env
        .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .filter(|v| !v.trim().is_empty())
    {
        return e.trim().trim_end_matches('/').to_owned();
    }
    match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE") {
        Some(m) if m.trim().eq_ignore_ascii_case("ipv6") => "http://[fd00:ec2::254]".to_owned(),
        _ => IMDS_DEFAULT.to_owned(),
    }
}

/// Credentials from the container endpoint.
pub(super) async fn container_credentials(
    c: &Container,
    client: &Client,
) -> Result<AwsCredentials, SourceError> {
    let token = match &c.token {
        None => None,
        Some(ContainerToken::Value(v)) => Some(v.clone()),
        Some(ContainerToken::File(path)) => Some(super::read_token_file(
            path,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        )?),
    };
    let mut request = client.get().await?.get(&c.url);
    if let Some(t) = &token {
        request = request.header(
            reqwest::header::AUTHORIZATION,
            secret_header("Authorization", t.expose_secret().trim())?,
        );
    }
    let (status, _, body) = transport::send(request, &c.url, client.limits()).await?;
    let secrets: Vec<&str> = token.iter().map(|t| t.expose_secret()).collect();
    if !status.is_success() {
        return Err(http_refusal(
            status,
            &body,
            &secrets,
            "the container credentials endpoint",
        ));
    }
    json_credentials(&body, "the container credentials endpoint")
}

/// Why an IMDS attempt failed: no metadata service answered (not on EC2: the chain then
/// says nothing was found), or it answered and something was wrong.
pub(super) enum ImdsFailure {
    Unreachable(SourceError),
    Failed(SourceError),
}

/// Credentials of the instance's role from IMDSv2: a session token (`PUT
/// /latest/api/token`), the role's name, then its credentials.
pub(super) async fn imds_credentials(
    endpoint: &str,
    client: &Client,
) -> Result<AwsCredentials, ImdsFailure> {
    let http = client.get().await.map_err(ImdsFailure::Failed)?;
    let token_url = format!("{endpoint}/latest/api/token");
    let request = http
        .put(&token_url)
        .header("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL);
    let (status, _, body) = match transport::send(request, &token_url, client.limits()).await {
        Ok(answer) => answer,
        Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) => {
            return Err(ImdsFailure::Unreachable(e));
        }
        Err(e) => return Err(ImdsFailure::Failed(e)),
    };
    let failed = |e| ImdsFailure::Failed(e);
    if !status.is_success() {
        let why = match status.as_u16() {
            403 => {
                "IMDS is disabled on this instance (PUT /latest/api/token answered 403)".to_owned()
            }
            404 | 405 => format!(
                "PUT /latest/api/token answered {status}: IMDSv2 is not available (IMDSv1 is not used)"
            ),
            _ => format!("PUT /latest/api/token answered {status}"),
        };
        return Err(failed(
            SourceError::new(transport::status_kind(status)).with_message(why),
        ));
    }
    let token = SecretString::from(String::from_utf8_lossy(&body).trim().to_owned());
    let header =
        secret_header("x-aws-ec2-metadata-token", token.expose_secret()).map_err(failed)?;
    let secrets = [token.expose_secret()];

    let list_url = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
    let request = http
        .get(&list_url)
        .header("x-aws-ec2-metadata-token", header.clone());
    let (status, _, body) = transport::send(request, &list_url, client.limits())
        .await
        .map_err(failed)?;
    if status == StatusCode::NOT_FOUND {
        return Err(failed(SourceError::new(ErrorKind::Unauthorized).with_message(
            "the instance has no IAM role (no instance profile attached: /latest/meta-data/iam/security-credentials/ answered 404)",
        )));
    }
    if !status.is_success() {
        return Err(failed(http_refusal(
            status,
            &body,
            &secrets,
            "the instance metadata service",
        )));
    }
    let listing = String::from_utf8_lossy(&body);
    let role = listing
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| {
            failed(
                SourceError::new(ErrorKind::Unauthorized)
                    .with_message("the instance metadata service lists no IAM role"),
            )
        })?;
    if role.contains(['/', '?', '#']) || role.len() > 128 {
        return Err(failed(SourceError::new(ErrorKind::Other).with_message(
            "the instance metadata service answered a role name that is not one",
        )));
    }
    let role_url = format!("{list_url}{role}");
    let request = http
        .get(&role_url)
        .header("x-aws-ec2-metadata-token", header);
    let (status, _, body) = transport::send(request, &role_url, client.limits())
        .await
        .map_err(failed)?;
    if !status.is_success() {
        return Err(failed(http_refusal(
            status,
            &body,
            &secrets,
            "the instance metadata service",
        )));
    }
    json_credentials(&body, "the instance metadata service").map_err(failed)
}

/// The credentials document both endpoints answer: `AccessKeyId`, `SecretAccessKey`,
/// `Token`, `Expiration` (and IMDS's `Code`). No `Debug`: it holds secrets.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<SecretString>,
    token: Option<SecretString>,
    expiration: Option<String>,
}

fn json_credentials(body: &[u8], from: &str) -> Result<AwsCredentials, SourceError> {
    let doc: Document = serde_json::from_slice(body).map_err(|e| {
        SourceError::new(ErrorKind::Decode).with_message(format!(
            "{from} answered a document that is not its credentials JSON: {}",
            transport::json_error(&e)
        ))
    })?;
    if let Some(code) = doc.code.as_deref().filter(|c| *c != "Success") {
        let message = doc
            .message
            .as_deref()
            .map(|m| scrub(m, &[]))
            .unwrap_or_default();
        return Err(
            SourceError::new(ErrorKind::Unauthorized).with_message(format!(
                "{from} answered Code {}: {message}",
                scrub(code, &[])
            )),
        );
    }
    let (Some(id), Some(secret)) = (doc.access_key_id, doc.secret_access_key) else {
        return Err(SourceError::new(ErrorKind::Decode)
            .with_message(format!("{from} answered no AccessKeyId/SecretAccessKey")));
    };
    let expires_at = match doc.expiration {
        Some(e) => Some(super::parse_time(&e).map_err(|why| {
            SourceError::new(ErrorKind::Decode).with_message(format!("{from}: {why}"))
        })?),
        None => None,
    };
    Ok(AwsCredentials {
        access_key_id: id,
        secret_access_key: secret,
        session_token: doc.token,
        expires_at,
    })
}

/// A non-success answer of a credentials endpoint: the status and the `code`/`message`
/// its JSON body carries, if any (scrubbed of the secrets sent, and short).
fn http_refusal(status: StatusCode, body: &[u8], secrets: &[&str], from: &str) -> SourceError {
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .map(|v| {
            let field = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| v.get(*n).and_then(serde_json::Value::as_str))
                    .map(|s| scrub(s, secrets))
            };
            match (field(&["code", "Code"]), field(&["message", "Message"])) {
                (Some(c), Some(m)) => format!(": {c}: {m}"),
                (Some(x), None) | (None, Some(x)) => format!(": {x}"),
                (None, None) => String::new(),
            }
        })
        .unwrap_or_default();
    SourceError::new(transport::status_kind(status))
        .with_message(format!("{from} answered {status}{detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri_rules() {
        assert!(full_uri_allowed("http://127.0.0.1:80/creds").is_ok());
        assert!(full_uri_allowed("http://169.254.170.23/v1/credentials").is_ok());
        assert!(full_uri_allowed("http://[fd00:ec2::23]/v1").is_ok());
        assert!(full_uri_allowed("http://localhost:9/x").is_ok());
        assert!(full_uri_allowed("https://anything.example/x").is_ok());
        let e = full_uri_allowed("http://evil.example/x").unwrap_err();
        assert!(e.contains("use https"), "{e}");
        assert!(full_uri_allowed("ftp://127.0.0.1/x").is_err());
    }

    #[test]
    fn relative_uri_goes_to_the_ecs_agent() {
        let env = EnvSource::from_map([("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds/x")]);
        let c = container(&env).unwrap().unwrap();
        assert_eq!(c.url, "http://169.254.170.2/v2/creds/x");
        assert!(container(&EnvSource::from_map([("X", "y")])).is_none());
    }

    #[test]
    fn imds_endpoints() {
        assert_eq!(
            imds_endpoint(&EnvSource::from_map([("X", "y")])),
            IMDS_DEFAULT
        );
        assert_eq!(
            imds_endpoint(&EnvSource::from_map([(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                "IPv6"
            )])),
            "http://[fd00:ec2::254]"
        );
        assert_eq!(
            imds_endpoint(&EnvSource::from_map([(
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                "http://127.0.0.1:9/"
            )])),
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn documents() {
        let c = json_credentials(
            br#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2030-01-01T00:00:00Z"}"#,
            "x",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert!(c.expires_at.is_some());
        let e = json_credentials(
            br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"nope"}"#,
            "x",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(
            e.to_string().contains("AssumeRoleUnauthorizedAccess: nope"),
            "{e}"
        );
        let e = json_credentials(br#"{"SecretAccessKey":"canary"}"#, "x").unwrap_err();
        assert!(!e.to_string().contains("canary"));
        let e = json_credentials(b"{\"AccessKeyId\": 5, \"SecretAccessKey\": \"canary\"", "x")
            .unwrap_err();
        assert!(!e.to_string().contains("canary"), "{e}");
    }
}
