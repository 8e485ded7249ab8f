//! The AWS credential chain and region, as the AWS SDKs read them (issue 36).
//!
//! The interface both AWS sources use: [`CredentialChain::from_env`],
//! [`CredentialChain::credentials`], [`region_from_env`]. Today: the environment's keys
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); being extended with
//! web identity, profile files, ECS container and EC2 instance credentials.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::SecretString;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;

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

/// Where credentials come from, in the standard order; cloned cheaply (shared state).
#[derive(Clone, Debug)]
pub(crate) struct CredentialChain {
    inner: Arc<Chain>,
}

#[derive(Debug)]
enum Chain {
    /// Given credentials (`with_credentials`, or the environment's keys).
    Fixed(AwsCredentials),
    /// Nothing found: every call fails with this text.
    Missing(String),
}

impl CredentialChain {
    /// The standard chain read from `env`.
    pub(crate) fn from_env(env: &EnvSource) -> Self {
        let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Self::fixed(AwsCredentials {
                access_key_id: id.trim().to_owned(),
                secret_access_key: SecretString::from(secret),
                session_token: get("AWS_SESSION_TOKEN").map(SecretString::from),
                expires_at: None,
            }),
            (Some(_), None) => Self::missing(
                "AWS_ACCESS_KEY_ID is set without AWS_SECRET_ACCESS_KEY".to_owned(),
            ),
            _ => Self::missing(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned(),
            ),
        }
    }

    /// Always these credentials.
    pub(crate) fn fixed(credentials: AwsCredentials) -> Self {
        Self {
            inner: Arc::new(Chain::Fixed(credentials)),
        }
    }

    fn missing(why: String) -> Self {
        Self {
            inner: Arc::new(Chain::Missing(why)),
        }
    }

    /// Credentials to sign a request with now (cached; refreshed before they expire).
    pub(crate) async fn credentials(&self) -> Result<AwsCredentials, SourceError> {
        match &*self.inner {
            Chain::Fixed(c) => Ok(c.clone()),
            Chain::Missing(why) => {
                Err(SourceError::new(ErrorKind::Unauthorized).with_message(why.clone()))
            }
        }
    }
}

/// The region: `AWS_REGION`, then `AWS_DEFAULT_REGION` (then the profile's `region`).
pub(crate) fn region_from_env(env: &EnvSource) -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|name| env.get(name))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty())
}
