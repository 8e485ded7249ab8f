//! The `gcp_secrets` source: Google Secret Manager over its REST API (v1), cargo feature
//! `gcp`.
//!
//! * A secret version, `fetch_from = "gcp_secrets"` with `key = "db"` (a secret id; the
//!   project from the field's `project = "..."`, else [`GcpSecretsSource::with_project`] /
//!   `GOOGLE_CLOUD_PROJECT`), or a full name `key = "projects/p/secrets/db"` or
//!   `"projects/p/secrets/db/versions/3"`; `version = "3"` optional (default `latest`,
//!   which Secret Manager resolves to the most recently created version, whatever its
//!   state). The value is the payload as text (bytes when it is not UTF-8); the field's
//!   type says what it is. Every value is secret.
//! * ONE `GET {endpoint}/v1/projects/{p}/secrets/{s}/versions/{v}:access` per distinct
//!   request of a fetch (fields asking the same key with the same attributes share it;
//!   `db` and `projects/p/secrets/db` are two requests; Secret Manager has no batch read), at most
//!   [`GcpSecretsSource::with_concurrency`] (default 16) at once. The payload's base64 is
//!   decoded and its `dataCrc32c` checked: a mismatch is
//!   [`ErrorKind::Decode`](crate::ErrorKind::Decode) naming the secret, never the data.
//!   Response bodies are bounded ([`GcpSecretsSource::with_max_body`], 16 MiB), every
//!   request by the timeout (10 s).
//! * Errors carry Google's `status` and `message`: `NOT_FOUND` is not found (the field's
//!   fallback, default or `None` applies); `PERMISSION_DENIED` and `UNAUTHENTICATED` are
//!   unauthorized; `FAILED_PRECONDITION` (a disabled or destroyed version) and
//!   `INVALID_ARGUMENT` are configuration errors; `RESOURCE_EXHAUSTED`, `UNAVAILABLE`,
//!   `INTERNAL` are unavailable (retried by `retry_attempts`).
//! * Credentials: [`GcpSecretsSource::with_credentials_file`] /
//!   [`with_credentials_json`](GcpSecretsSource::with_credentials_json) — a
//!   `service_account` key (a JWT signed RS256 with its `private_key`, exchanged at its
//!   `token_uri` for a `cloud-platform` token) or an `authorized_user` (`gcloud auth
//!   application-default login`: its refresh token at `https://oauth2.googleapis.com/token`);
//!   `external_account` (workload identity federation) and impersonation are refused with
//!   a clear error. [`from_env`](GcpSecretsSource::from_env) reads the file
//!   `GOOGLE_APPLICATION_CREDENTIALS` names, else gcloud's
//!   `application_default_credentials.json` (in `$CLOUDSDK_CONFIG`, else
//!   `~/.config/gcloud`). Without a file: the metadata server (`GCE_METADATA_HOST`, else
//!   `metadata.google.internal`; 3 s at most; reached directly, never through
//!   `HTTP_PROXY`), which also gives the project when none is named.
//!   [`with_token`](GcpSecretsSource::with_token) sends a token of yours;
//!   [`without_auth`](GcpSecretsSource::without_auth) none (an emulator, the double).
//!   Tokens are cached until shortly before they expire (3m45s, or half a short
//!   lifetime), asked for by one request at a time, and asked again once when Secret
//!   Manager answers `401`. The private key, client secret, refresh token, access token
//!   and JWT appear in no `Debug`, error or log.
//! * The value's version number is noted for the fetch report (a [`Revision::Index`](crate::Revision::Index)).
//!
//! [`Sources::from_env`](crate::Sources::from_env) registers it when
//! `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS` is set, or
//! gcloud's application default credentials file exists (see
//! [`GcpSecretsSource::from_env_source`] for the project's order and `GCP_SECRETS_ENDPOINT`,
//! this crate's own override of the endpoint).
//!
//! Watched (`watch`, for a [`Live`](crate::Live)) by polling each watched version's
//! metadata (`GET .../versions/latest`, no payload) every `watch_interval` (default 60 s:
//! Secret Manager's quota of reads is 600 a minute per project); a new version name or
//! state is a change of the fields reading it. A workload allowed `versions.access` only
//! (`roles/secretmanager.secretAccessor`, the role Google recommends) is refused that
//! `GET`: the watch then polls with `:access` (the version's name and its payload's
//! CRC32C are compared; the payload is dropped). When neither may be read, the watch's
//! stream yields that `PERMISSION_DENIED` error once, and goes on polling.
//!
//! ## Preflight
//!
//! [`Source::preflight`](crate::Source::preflight) reads no payload: a `GET` of each
//! version's metadata. `ENABLED` is readable (detail: its version number), `DISABLED` or
//! `DESTROYED` invalid, `NOT_FOUND` missing, `PERMISSION_DENIED` denied (unless
//! `:access` succeeds: then readable, with the detail that the metadata needs
//! `secretmanager.versions.get`, e.g. `roles/secretmanager.viewer`), credentials
//! refused (the token endpoint, `UNAUTHENTICATED`) unauthenticated, no answer unreachable.
//!
//! ## What this module declares
//!
//! * name `gcp_secrets`, cargo feature `gcp`, registered by
//!   [`Sources::from_env`](crate::Sources::from_env) from `GOOGLE_CLOUD_PROJECT`,
//!   `GCLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS`;
//! * attribute keys: `key` (else the field's path joined with `_`), `version`, `project`;
//! * key label `secret` (the full version name); every value is secret; no coalescing
//!   beyond one request per distinct version.

#[cfg(feature = "gcp")]
mod auth;
#[cfg(feature = "gcp")]
mod source;
#[cfg(feature = "gcp")]
pub use source::*;

use crate::fetchers::Builtin;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["gcp_secrets"],
    hint: "`Sources::from_env()` registers it from `GOOGLE_CLOUD_PROJECT`, `GCLOUD_PROJECT` or `GOOGLE_APPLICATION_CREDENTIALS` with cargo feature `gcp`; or register a `GcpSecretsSource`",
    from_env: |env| {
        #[cfg(feature = "gcp")]
        return GcpSecretsSource::from_env_source(env)
            .map(|s| ("gcp_secrets", std::sync::Arc::new(s) as _))
            .into_iter()
            .collect();
        #[cfg(not(feature = "gcp"))]
        {
            let _ = env;
            Vec::new()
        }
    },
};

/// Compile-time rules of `fetch_from = "gcp_secrets"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_gcp_secrets {
    ($entry:tt has $names:tt) => {
        $crate::__component_model_feature_gcp! { $entry }
    };
    ($entry:tt param key) => {};
    ($entry:tt param version) => {};
    ($entry:tt param project) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "gcp_secrets" [key version project] }
    };
}

#[cfg(feature = "gcp")]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_gcp {
    ($entry:tt) => {};
}
#[cfg(not(feature = "gcp"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_feature_gcp {
    (facade) => {
        ::core::compile_error!("backend `gcp_secrets` needs cargo feature `gcp` of component_model: `component_model = { features = [\"gcp\"] }`");
    };
    (direct) => {
        ::core::compile_error!("backend `gcp_secrets` needs cargo feature `gcp` of component_model_async");
    };
}
