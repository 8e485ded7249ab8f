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
//! | `aws_ssm` | `key` (the parameter's name, `name:version` or `name:label` too) or `prefix` (a path starting with `/`: every parameter under it, recursively) with `max_keys` (default 10,000) and the field's `max_size` |
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
//! * region: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the `region` of the profile
//!   (`AWS_PROFILE`, else `default`) in `~/.aws/config` (`AWS_CONFIG_FILE`): on a machine
//!   with such a file both sources are registered even without an `AWS_*` variable;
//! * endpoint: `AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_SSM`, then
//!   `AWS_ENDPOINT_URL` (LocalStack, moto), unless `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`;
//!   else `https://secretsmanager.<region>.amazonaws.com` / `https://ssm.<region>.amazonaws.com`;
//! * credentials: the standard chain (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`, ...), asked per request (the chain caches and refreshes them),
//!   within the source's timeout; the instance metadata service and the ECS/EKS agents
//!   are reached directly, never through `HTTP_PROXY`/`HTTPS_PROXY` (STS and the APIs
//!   use the proxy).
//!
//! ## Batching
//!
//! The requests of one fetch are coalesced: Secrets Manager reads up to 20 secrets with one
//! `BatchGetSecretValue` (its pages followed, all of them together bounded by
//! `with_max_body`), SSM up to 10 parameters with one `GetParameters` (`WithDecryption`);
//! several batches go concurrently, at most 16 requests at once per source. 25 secrets are
//! 2 round trips, 25 parameters 3. One secret alone, a secret pinned to another
//! `version_stage` or a `version_id`, and an ARN whose secret name another key of the fetch
//! also names (a batch answer's `Name` cannot tell two accounts' `prod/db` apart) are one
//! `GetSecretValue` each. When a `BatchGetSecretValue` is refused as a whole
//! (`AccessDeniedException`: a role allowed `GetSecretValue` only; or a
//! `ValidationException`), its secrets are read one `GetSecretValue` each, so every error
//! lands on its own key, and after a denial the source skips the batch call from then on.
//! SSM likewise asks name by name when a whole `GetParameters` is refused, and never puts
//! two keys of one parameter (`/app/port`, `/app/port:3`) in one call. A `prefix` walks
//! `GetParametersByPath`, 10 a page (the API's limit), one page after another: 10,000
//! parameters are about 1,000 calls in a row, at every fetch and every watch poll; the
//! whole walk is bounded by `with_walk_timeout` (default 60 s).
//!
//! ## Errors
//!
//! Each error names the key and carries the service's own code and message
//! (`AWS Secrets Manager (eu-west-1) refused GetSecretValue for secret `prod/db`: HTTP 400
//! AccessDeniedException: ...`). A missing secret (`ResourceNotFoundException`, or one scheduled for deletion)
//! or parameter (`InvalidParameters`) is [`ErrorKind::NotFound`](crate::ErrorKind::NotFound):
//! the field's fallbacks apply. `AccessDeniedException`, `DecryptionFailure` and refused
//! credentials are `Unauthorized`; a KMS key gone or disabled (`KMSNotFoundException`,
//! `KMSInvalidStateException`) `Config`; throttling and 5xx `Unavailable`. Every response body
//! is bounded (`with_max_body`, default 16 MiB: a larger `Content-Length` is refused at
//! once) and every request by the timeout (default 10 s).
//!
//! ## Watch
//!
//! By polling, every `watch_interval` of the watched fields (default 30 s: every call is
//! billed): Secrets Manager `DescribeSecret` per secret, whose stage moving to another
//! `VersionId` is a change (a pinned `version_id` never changes: not watched); SSM
//! `GetParameters` without decryption per 10 names (a new `Version`) and
//! `GetParametersByPath` without decryption per prefix (a digest of the names and versions
//! under it: any update, creation or deletion). When every poll is refused (a role without
//! the action), the watch ends with a `Config` error naming the action, and the engine
//! polls the fields instead; throttling and timeouts pass silently. Fields pinned by
//! `version_id` only are not watched (a stream that never yields: nothing is re-read).
//! Fetch reports carry the `VersionId` / `Version` read (a prefix: its digest) as the
//! field's revision.
//!
//! ## Preflight
//!
//! Without reading a value: `DescribeSecret` per secret (exists, not scheduled for
//! deletion, has the stage or version the field reads: `readable`, detail `AWSCURRENT is
//! version <id> (GetSecretValue not checked)`; a `version_id` no stage points at is
//! `unchecked`: `DescribeSecret` lists staged versions only), SSM `GetParameters` without decryption (`readable` with the type and
//! version; a `SecureString`'s `kms:Decrypt` is not checked) and `GetParametersByPath` for
//! a prefix (counted against `max_keys`). Refused credentials are `unauthenticated`, an
//! `AccessDeniedException` `denied`, no answer `unreachable`.
//!
//! ## Permissions
//!
//! The IAM actions each use needs (on the secrets' and parameters' ARNs unless said):
//!
//! | use | actions |
//! |---|---|
//! | `aws_secrets` fetch | `secretsmanager:GetSecretValue`; for batches also `secretsmanager:BatchGetSecretValue` on `Resource: "*"` (without it: one `GetSecretValue` per secret); `kms:Decrypt` on the secret's key if it is a customer managed one |
//! | `aws_secrets` watch, preflight | `secretsmanager:DescribeSecret` |
//! | `aws_ssm` fetch | `ssm:GetParameters`; `ssm:GetParametersByPath` for a `prefix`; `kms:Decrypt` on the key of a `SecureString` |
//! | `aws_ssm` watch, preflight | the same, without `kms:Decrypt` (nothing is decrypted) |
//!
//! ```json
//! {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
//!  "Resource": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/*"}
//! ```
//!
//! ## Example
//!
// Compiled as a test only when the feature is on (the module is built without it).
#![cfg_attr(feature = "aws", doc = "```no_run")]
#![cfg_attr(not(feature = "aws"), doc = "```ignore")]
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
    hint: "`Sources::from_env()` registers them with cargo feature `aws` when a region is set (`AWS_REGION` / `AWS_DEFAULT_REGION`, or the profile's `region` in ~/.aws/config); or register an `AwsSecretsSource` / `AwsSsmSource`",
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
    // `@kp [<key> <prefix>] <names>`: a parameter or a path, not both.
    (@kp [$k:tt $p:tt] key $($rest:ident)*) => {
        $crate::__component_model_rules_aws_ssm! { @kp [1 $p] $($rest)* }
    };
    (@kp [$k:tt $p:tt] prefix $($rest:ident)*) => {
        $crate::__component_model_rules_aws_ssm! { @kp [$k 1] $($rest)* }
    };
    (@kp $kp:tt $other:ident $($rest:ident)*) => {
        $crate::__component_model_rules_aws_ssm! { @kp $kp $($rest)* }
    };
    (@kp [1 1]) => {
        ::core::compile_error!("the `aws_ssm` source reads either one parameter (`key = \"/app/port\"`) or every parameter under a path (`prefix = \"/app/\"`), not both");
    };
    (@kp $kp:tt) => {};
    ($entry:tt has [$($names:ident)*]) => {
        $crate::__component_model_feature_aws! { $entry }
        $crate::__component_model_rules_aws_ssm! { @kp [0 0] $($names)* }
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
