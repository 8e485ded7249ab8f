//! Async components: fetch every field of a configuration struct concurrently from where
//! it lives, convert each value to its Rust type, and get every failure at once.
//!
//! ```
//! use component_model_async::{async_trait, AsyncAssign, ComponentFetcher, EnvSource, Sources};
//!
//! #[derive(AsyncAssign, Debug)]
//! #[component(env_prefix = "APP_")]
//! struct AppConfig {
//!     #[component(fetch_from = "env", fallback = "localhost")]
//!     host: String,
//!     #[component(fetch_from = "env")]
//!     port: u16,
//!     #[component(fetch_from = "flags")]
//!     beta: bool,
//!     retries: u8, // no source: stays at Default
//! }
//!
//! struct Flags;
//! #[async_trait]
//! impl ComponentFetcher<bool> for Flags {
//!     type Error = std::io::Error;
//!     async fn fetch_component(&self) -> Result<bool, Self::Error> { Ok(true) }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sources = Sources::new()
//!     .with_env(EnvSource::from_map([("APP_PORT", "8080")]))
//!     .register("flags", Flags);
//! let config = AppConfig::fetch_all_components_with(&sources).await.unwrap();
//! assert_eq!((config.host.as_str(), config.port, config.beta, config.retries), ("localhost", 8080, true, 0));
//! # });
//! ```
//!
//! When fields fail, every failure is returned, each naming its field, source and key:
//!
//! ```
//! # use component_model_async::{AsyncAssign, EnvSource, Sources};
//! #[derive(AsyncAssign, Debug)]
//! struct Broken {
//!     #[component(fetch_from = "env")]
//!     port: u16,
//!     #[component(fetch_from = "env")]
//!     workers: u8,
//! }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sources = Sources::new().with_env(EnvSource::from_map([("PORT", "eighty")]));
//! let errors = Broken::fetch_all_components_with(&sources).await.unwrap_err();
//! assert_eq!(errors.len(), 2);
//! assert!(errors[0].to_string().starts_with("Broken.port: env variable `PORT`: cannot decode: expected `u16`"));
//! assert_eq!(errors[1].to_string(), "Broken.workers: env variable `WORKERS`: not found");
//! # });
//! ```
//!
//! See the `component_model` crate's README for the attribute reference.
//!
//! # Cargo features
//!
//! Nothing is on by default: the environment (`env`), the command line (`args`), `.env`
//! files, secret files, `local_cache`, every resilience layer, `Live` and the validation
//! rules are always built in. Each backend is one feature:
//!
//! | feature | enables | pulls in |
//! |---|---|---|
//! | `postgres` | `DatabaseSource`, `DatabaseFetcher` for PostgreSQL (`fetch_from = "database"`) | `sqlx` (PostgreSQL, rustls) |
//! | `mysql` | the same for MySQL and MariaDB | `sqlx` (MySQL) |
//! | `sqlite` | the same for SQLite (bundled) | `sqlx` (SQLite, a bundled `libsqlite3`) |
//! | `http` | `HttpSource`, `ApiFetcher` (`fetch_from = "api"`), `TlsConfig` | `reqwest`, `rustls` |
//! | `consul` | `ConsulSource`, `ConsulFetcher` | `reqwest`, `rustls`, `base64` |
//! | `vault` | `VaultSource`, `VaultFetcher` (OpenBao too) | `reqwest`, `rustls` |
//! | `redis` | `RedisSource` (keys, hashes, `stream_from = "redis"`) | `redis`, `rustls`, `tokio-rustls` |
//! | `etcd` | `EtcdSource` (`fetch_from = "etcd"`, its v3 JSON gateway; watched) | `reqwest`, `rustls`, `base64` |
//! | `aws` | `AwsSecretsSource` (`fetch_from = "aws_secrets"`), `AwsSsmSource` (`fetch_from = "aws_ssm"`) | `reqwest`, `rustls`, `aws-sigv4` |
//! | `azure` | `AzureKeyVaultSource` (`fetch_from = "azure_keyvault"`) | `reqwest`, `rustls` |
//! | `gcp` | `GcpSecretsSource` (`fetch_from = "gcp_secrets"`) | `reqwest`, `rustls`, `base64`, `crc32c` |
//! | `file` | `FileSource` (TOML, YAML, JSON; watched) | `toml`, `serde_norway`, `notify` |
//! | `kafka` | `KafkaSource` (`stream_from = "kafka"`) | `rskafka`, `flate2` |
//! | `nats` | `NatsSource` (`stream_from = "nats"`), `NatsKvSource` (`fetch_from = "nats_kv"`, JetStream KV; watched) | `async-nats`, `rustls` |
//! | `mqtt` | `MqttSource` (`stream_from = "mqtt"`) | `rumqttc` |
//! | `websocket` | `WebSocketSource` (`stream_from = "websocket"`) | `tokio-tungstenite`, `rustls` |
//! | `metrics` | per-source counters and histograms ([`metrics`](mod@crate::metrics)) | `metrics` |
//! | `garde` | `validate(garde)` on a field or a struct | `garde` |
//! | `schema` | `ConfigDoc::json_schema` takes each field type's schema from `schemars::JsonSchema` when it implements it | `schemars` |
//! | `test-util` | `test_util`: the Consul and Vault API doubles, a fault proxy, a websocket server | `axum`, and `consul`, `vault`, `websocket` |
//!
//! On docs.rs every item says which feature it needs.
//!
//!
//! # How the crate is laid out
//!
//! Imports point down this list, never up, and no two modules import each other
//! (`scripts/layers.py` checks both in CI):
//!
//! | layer | modules | what they do |
//! |---|---|---|
//! | seam | `source` ([`Source`], [`FieldSpec`], [`FetchRequest`], [`RawValue`], [`Change`], [`FetchContext`]), `error`, `placeholder`, `fetcher` ([`ComponentFetcher`]), `secret`, `partial`, `violations` ([`Violations`]) | what a backend implements and speaks |
//! | support | `convert` (raw value → type), [`rules`] (the field rules of `validate(...)`), `report` rows, `metrics`, `task`, `standalone` ([`SourceFetcher`]), `fetchers::{transport, tls, env, secret_file}` | what every backend may use |
//! | backends and layers | `fetchers::<backend>` (each declares its names, keys and rules, feature, and how the environment configures it), `fetchers::stream`, [`resilience`]`::<layer>` (timeout, retry, cache, breaker, limit), `test_util` | one store or one concern each |
//! | catalog | [`fetchers`] | the table of built-in backends: the only place that lists them |
//! | registry | `sources` ([`Sources`]) | named sources and their layers; knows no engine |
//! | engine | `engine`: `plan` → `resolve` → `choose` → `fetch` → `convert` → `validate` → `assemble`, a run's `state`, `view`s for `live` | one struct's fetch as a pipeline of stages |
//! | api | `api` (what the generated `fetch_*` methods call), [`live`], `assign`, `__private` | entry points |
//!
//! One fetch: the derive's `plan` builds one slot per field (cached per [`Sources`]);
//! `resolve` orders fields into waves when some wait for others; in each wave `choose`
//! asks every field's own source, then `fallback_to` for what failed in a way another
//! source may mend; `fetch` sends each round's requests as one `fetch_many_in` per source
//! and layer settings, through the layers; `convert` turns values into field types,
//! `validate` runs the field rules (synchronous ones at once, async ones concurrently,
//! bounded), and `assemble` builds the struct, keeping every error; the struct rules run
//! on the assembled struct. The [`FetchContext`] of the fetch (report notes, a fresh
//! read past caches, the deadline) travels with it through every stage and layer.

#![forbid(unsafe_code)]
// On docs.rs (`--cfg docsrs`, nightly): each feature-gated item shows its feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod assign;
mod assign_from;
mod config_doc;
mod convert;
mod engine;
mod error;
mod fetcher;
pub mod fetchers;
pub mod live;
pub mod metrics;
mod partial;
pub mod placeholder;
mod preflight;
mod report;
pub mod resilience;
pub mod rules;
mod secret;
mod source;
mod sources;
mod standalone;
mod task;
mod violations;

/// Helpers for writing a [`Source`].
pub mod source_support {
    pub use crate::source::{coalesce, redact_url};
}

#[doc(hidden)]
pub mod __private;

pub use assign::{Assignment, AsyncAssign, FutureAssign};
pub use assign_from::{AssignFrom, ServesSource};
pub use async_trait::async_trait;
pub use component_model_meta::AsyncAssignDirect as AsyncAssign;
pub use error::{
    BoxError, ComponentError, DisplayErrors, ErrorKind, ErrorsExt, FieldError, FieldErrorBuilder,
    MergeErrors, Provenance, SourceError,
};
pub use fetcher::{AsyncFnFetcher, ComponentFetcher, IntoFetcher, SyncFnFetcher, marker};
pub use fetchers::exports::*;
#[cfg(feature = "test-util")]
pub mod test_util;
pub use api::FetchFuture;
pub use config_doc::{ConfigDoc, FieldDoc, SourceDoc, SourceRole};
pub use engine::ComponentSource;
pub use live::{
    ConfigUpdate, ConfigUpdates, FieldChange, Live, LiveBuilder, UnknownVersion, Version,
};
pub use partial::Partial;
pub use preflight::{PreflightReport, PreflightRow};
pub use report::{FetchReport, FieldReport, Outcome, PrecedenceOutcome, PrecedenceReport};
pub use secret::SecretValue;
pub use source::{
    Access, Change, Changes, FetchContext, FetchRequest, FieldPath, FieldSpec, Preflighting, Probe,
    RawValue, Remembering, Revision, Source,
};
pub use sources::{IntoEntry, Sources, register};
pub use standalone::SourceFetcher;
pub use violations::{Violation, Violations};

/// Secret types whose values never appear in `Debug` output (re-exported `secrecy`).
pub use secrecy;
/// A `String` that prints as `[REDACTED]`; use it for secret fields.
pub use secrecy::SecretString;
