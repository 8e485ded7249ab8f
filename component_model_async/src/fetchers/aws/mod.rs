//! The AWS backends (cargo feature `aws`): **Secrets Manager** (`fetch_from =
//! "aws_secrets"`, [`AwsSecretsSource`]) and **SSM Parameter Store** (`fetch_from =
//! "aws_ssm"`, [`AwsSsmSource`]). Every value of both is secret: errors, `Debug` and logs
//! never show one.
//!
//! Both speak the services' AWS JSON 1.1 protocol (`POST /`, `X-Amz-Target`) over this
//! crate's HTTP transport, each request signed with SigV4 (`aws-sigv4`); no AWS SDK crate
//! is built (they would add minutes to a clean build).
//!
//! ## Attribute keys
//!
//! | `fetch_from` | keys |
//! |---|---|
//! | `aws_secrets` | `key` (the secret's name or ARN), `version_stage` (default `AWSCURRENT`), `version_id`; `field = "..."` selects a member of a JSON secret |
//! | `aws_ssm` | `key` (the parameter's name, `name:version` or `name:label` too) or `prefix` (a path: every parameter under it, recursively) with `max_keys` (default 10,000) and the field's `max_size` |
//!
//! A `SecretBinary` reads as its bytes (text when they are UTF-8); a `SecureString` is
//! decrypted; a `StringList` is its text (`a,b,c`: a `Vec<String>` field splits it as it
//! splits any list text). Under a `prefix`, member names are the parameter names relative
//! to it (`/app/db/host` under `/app/` is `db/host`); more than `max_keys` parameters or
//! `max_size` bytes is [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge), never a
//! truncated map.
//!
//! ## Environment
//!
//! [`Sources::from_env`](crate::Sources::from_env) registers both when a region is set:
//!
//! * region: `AWS_REGION`, then `AWS_DEFAULT_REGION`;
//! * endpoint: `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`, then
//!   `AWS_ENDPOINT_URL` (LocalStack, moto), unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`;
//!   else `https://secretsmanager.<region>.amazonaws.com` / `https://ssm.<region>.amazonaws.com`;
//! * credentials: the standard chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, ...), asked per request (the chain caches and refreshes them),
//!   within the source's timeout.
//!
//! ## Batching
//!
//! The requests of one fetch are coalesced: Secrets Manager reads up to 20 secrets with one
//! `BatchGetSecretValue` (its pages followed), SSM up to 10 parameters with one
//! `GetParameters` (`WithDecryption`); several batches go concurrently. 25 secrets are 2
//! round trips, 25 parameters 3. A secret pinned to another `version_stage` or a
//! `version_id` is one `GetSecretValue` (the batch call takes no stage); a `prefix` walks
//! `GetParametersByPath` (10 a page, the API's limit).
//!
//! ## Errors
//!
//! Each error names the key and carries the service's own code and message
//! (`AWS Secrets Manager (eu-west-1) refused secret `prod/db`: AccessDeniedException:
//! ...`). A missing secret (`ResourceNotFoundException`, or one scheduled for deletion)
//! or parameter (`InvalidParameters`) is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound):
//! the field's fallbacks apply. `AccessDeniedException`, `DecryptionFailure` and refused
//! credentials are `Unauthorized`; throttling and 5xx `Unavailable`. Every response body
//! is bounded (`with_max_body`, default 16 MiB: a larger `Content-Length` is refused at
//! once) and every request by the timeout (default 10 s).
//!
//! ## Watch
//!
//! By polling, every `watch_interval` of the watched fields (default 30 s: every call is
//! billed): Secrets Manager `DescribeSecret` per secret, whose stage moving to another
//! `VersionId` is a change (a pinned `version_id` never changes: not watched); SSM
//! `GetParameters` without decryption per 10 names (a new `Version`) and
//! `GetParametersByPath` without decryption per prefix (a newer version or another count).
//! Fetch reports carry the `VersionId` / `Version` read as the field's revision.
//!
//! ## Preflight
//!
//! Without reading a value: `DescribeSecret` per secret (exists, not scheduled for
//! deletion, has the stage or version the field reads: `readable`, detail `AWSCURRENT is
//! version <id>`), SSM `GetParameters` without decryption (`readable` with the type and
//! version; a `SecureString`'s `kms:Decrypt` is not checked) and `GetParametersByPath` for
//! a prefix (counted against `max_keys`). Refused credentials are `unauthenticated`, an
//! `AccessDeniedException` `denied`, no answer `unreachable`.
//!
//! ## Example
//!
//! ```no_run
//! use std::collections::HashMap;
//! use component_model_async::{AsyncAssign, AwsSecretsSource, AwsSsmSource, Sources};
//!
//! #[derive(AsyncAssign, Debug)]
//! struct Settings {
//!     #[component(fetch_from = "aws_secrets", key = "prod/db", field = "password")]
//!     db_password: String,
//!     #[component(fetch_from = "aws_ssm", key = "/app/port")]
//!     port: u16,
//!     #[component(fetch_from = "aws_ssm", prefix = "/app/features/", max_keys = 100)]
//!     features: HashMap<String, bool>,
//! }
//!
//! # async fn run() -> Result<(), component_model_async::ComponentError> {
//! // Or `Sources::from_env()` with AWS_REGION (and AWS_ENDPOINT_URL) set.
//! let sources = Sources::new()
//!     .register("aws_secrets", AwsSecretsSource::new("eu-west-1"))
//!     .register("aws_ssm", AwsSsmSource::new("eu-west-1"));
//! let settings = Settings::fetch_all_components_with(&sources).await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "aws")]
mod client;
#[cfg(feature = "aws")]
pub(crate) mod credentials;
#[cfg(feature = "aws")]
mod secrets;
#[cfg(feature = "aws")]
pub use secrets::AwsSecretsSource;
#[cfg(feature = "aws")]
mod ssm;
#[cfg(feature = "aws")]
pub use ssm::AwsSsmSource;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["aws_secrets", "aws_ssm"],
    hint: "`Sources::from_env()` registers them with cargo feature `aws` when a region is set (`AWS_REGION` / `AWS_DEFAULT_REGION`); or register an `AwsSecretsSource` / `AwsSsmSource`",
    from_env: |env| {
        #[cfg(feature = "aws")]
        {
            let mut found: crate::fetchers::Registrations = Vec::new();
            if let Some(s) = AwsSecretsSource::from_env_source(env) {
                found.push(("aws_secrets", std::sync::Arc::new(s) as _));
            }
            if let Some(s) = AwsSsmSource::from_env_source(env) {
                found.push(("aws_ssm", std::sync::Arc::new(s) as _));
            }
            found
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "aws_secrets"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_aws_secrets {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_aws! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param version_stage) => {};
    ($entry:tt param version_id) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "aws_secrets" [key version_stage version_id] }
    };
}

/// Compile-time rules of `fetch_from = "aws_ssm"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_aws_ssm {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_aws! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param prefix) => {};
    ($entry:tt param max_keys) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "aws_ssm" [key prefix max_keys] }
    };
}

#[cfg(feature = "aws")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_aws {
    ($entry:tt) => {};
}
#[cfg(not(feature = "aws"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_aws {
    (facade) => {
        ::core::compile_error!("backends `aws_secrets` and `aws_ssm` needs cargo feature `aws` of component_model: `component_model = { features = [\"aws\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backends `aws_secrets` and `aws_ssm` needs cargo feature `aws` of component_model_async");
    };
}
