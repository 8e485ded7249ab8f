//! Built-in backends, one module per backend, each behind its own cargo feature.
//!
//! | `fetch_from` | module | feature |
//! |---|---|---|
//! | `env` | [`env`](mod@env) | always on |
//! | `args` (registered by `Sources::with_args`) | [`args`](mod@args) | always on |
//! | `secret_file` (also `secret_file = "path"`) | [`secret_file`](mod@secret_file) | always on |
//! | `database`, `database:<name>`, `postgres`, `mysql`, `sqlite` | [`database`](mod@database) | `postgres`, `mysql`, `sqlite` |
//! | `api`, `http`, or a registered `HttpSource` name | [`http`](mod@http) | `http` |
//! | `consul` | [`consul`](mod@consul) | `consul` |
//! | `vault` | [`vault`](mod@vault) | `vault` |
//! | `redis` (keys; a stream with `topic`) | [`redis`](mod@redis) | `redis` |
//! | `file` | [`file`](mod@file) | `file` |
//! | `kafka` (push stream) | [`kafka`](mod@kafka) | `kafka` |
//! | `nats` (push stream) | [`nats`](mod@nats) | `nats` |
//! | `etcd` | [`etcd`](mod@etcd) | `etcd` |
//! | `nats_kv` (a JetStream KV bucket) | [`nats_kv`](mod@nats_kv) | `nats` |
//! | `mqtt` (push stream) | [`mqtt`](mod@mqtt) | `mqtt` |
//! | `websocket` (push stream) | [`websocket`](mod@websocket) | `websocket` |
//! | `aws_secrets`, `aws_ssm` | [`aws`](mod@aws) | `aws` |
//! | `azure_keyvault` | [`azure_keyvault`](mod@azure_keyvault) | `azure` |
//! | `gcp_secrets` | [`gcp_secrets`](mod@gcp_secrets) | `gcp` |
//!
//! A backend module says everything about its backend, in one place: its names, the
//! attribute keys it reads and their rules (checked at compile time by a `macro_rules!`
//! of the module, so the derive crate knows no backend and no backend key by name), its
//! cargo feature, how [`Sources::from_env`](crate::Sources::from_env) builds it, and, on
//! its `Source` implementation, its key label, whether its values are secret and how it
//! coalesces. This file holds only the table of modules below.
//!
//! ## How the derive asks a backend
//!
//! The derive knows its own keys (`fetch_from`, `key`, `secret`, `field`, `pointer`,
//! `fallback`, `cache_for`, `watch`, ...). Any other `name = <literal>` on a field is a
//! parameter of the field's source: it goes into the field's
//! [`FieldSpec::params`](crate::FieldSpec::param) by name and reaches the source's
//! request as [`FetchRequest::param`](crate::FetchRequest::param). For each field with
//! `fetch_from = "<name>"` the derive emits, spanned at `fetch_from`,
//! `__component_model_backend! { "<name>" <entry> has [<names>] }`: the names the field
//! says to its source, `key` first, then `secret` (for `secret = "path"`), `source`, and
//! the parameters as written, so the rules check required keys and the cargo feature;
//! and for each of those names, spanned at its key,
//! `__component_model_backend! { "<name>" <entry> param <name> }`. A backend's rules
//! accept the names it reads and expand any other to
//! `__unknown_backend_key! { <name> "<backend>" [<its keys>] }`, an error at that key
//! that lists the backend's keys and suggests the closest; each key is its own call, so
//! every mistake of a struct is reported in one compile. `<entry>` is `facade` or
//! `direct`: the crate the user depends on, named in feature errors. A name not in the
//! table (a source registered by the user) is not checked at compile time.
//!
//! A new key of one backend is one arm of that backend's rules (and its name in the
//! list the rules give `__unknown_backend_key!`), read in its source with
//! `request.param("<name>")`.

pub mod args;
pub mod aws;
pub mod azure_keyvault;
pub(crate) mod connect;
pub mod consul;
pub mod database;
pub mod env;
pub mod etcd;
pub mod file;
pub mod gcp_secrets;
pub mod http;
pub mod kafka;
pub mod local_cache;
pub mod mqtt;
pub mod nats;
pub mod nats_kv;
pub mod redis;
pub mod secret_file;
#[cfg(any(
    feature = "kafka",
    feature = "nats",
    feature = "mqtt",
    feature = "websocket",
    feature = "redis"
))]
pub(crate) mod stream;
#[cfg(any(
    feature = "http",
    feature = "consul",
    feature = "vault",
    feature = "redis",
    feature = "nats",
    feature = "etcd",
    feature = "aws",
    feature = "azure",
    feature = "gcp"
))]
pub mod tls;
#[cfg(any(
    feature = "http",
    feature = "consul",
    feature = "vault",
    feature = "etcd",
    feature = "aws",
    feature = "azure",
    feature = "gcp"
))]
pub mod transport;
pub mod vault;
pub mod websocket;

use std::sync::Arc;

use crate::fetchers::env::EnvSource;
use crate::source::Source;

/// Each backend's public types, re-exported at the crate root (one line per backend).
#[doc(hidden)]
pub mod exports {
    pub use super::args::ArgsSource;
    #[cfg(feature = "aws")]
    pub use super::aws::{AwsSecretsSource, AwsSsmSource};
    #[cfg(feature = "azure")]
    pub use super::azure_keyvault::AzureKeyVaultSource;
    #[cfg(feature = "consul")]
    pub use super::consul::{ConsulFetcher, ConsulSource};
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    pub use super::database::{DatabaseFetcher, DatabaseSource, DbPool};
    pub use super::env::{EnvFetcher, EnvSource};
    #[cfg(feature = "etcd")]
    pub use super::etcd::EtcdSource;
    #[cfg(feature = "file")]
    pub use super::file::FileSource;
    #[cfg(feature = "gcp")]
    pub use super::gcp_secrets::GcpSecretsSource;
    #[cfg(feature = "http")]
    pub use super::http::{ApiFetcher, HttpSource};
    #[cfg(feature = "kafka")]
    pub use super::kafka::KafkaSource;
    pub use super::local_cache::LocalCacheSource;
    #[cfg(feature = "mqtt")]
    pub use super::mqtt::MqttSource;
    #[cfg(feature = "nats")]
    pub use super::nats::NatsSource;
    #[cfg(feature = "nats")]
    pub use super::nats_kv::NatsKvSource;
    #[cfg(feature = "redis")]
    pub use super::redis::RedisSource;
    pub use super::secret_file::SecretFileSource;
    #[cfg(any(
        feature = "http",
        feature = "consul",
        feature = "vault",
        feature = "redis",
        feature = "nats",
        feature = "etcd",
        feature = "aws",
        feature = "azure",
        feature = "gcp"
    ))]
    pub use super::tls::TlsConfig;
    #[cfg(feature = "vault")]
    pub use super::vault::{VaultFetcher, VaultSource};
    #[cfg(feature = "websocket")]
    pub use super::websocket::WebSocketSource;
}

/// What a built-in backend declares for the runtime.
pub(crate) struct Builtin {
    /// The names `fetch_from` uses for it.
    pub(crate) names: &'static [&'static str],
    /// How to get it registered, for "no source named ..." errors.
    pub(crate) hint: &'static str,
    /// What [`Sources::from_env`](crate::Sources::from_env) registers for it, read from
    /// the environment: names and sources (nothing when its feature is off). The
    /// registry registers them; a backend knows no registry.
    pub(crate) from_env: fn(&EnvSource) -> Registrations,
}

/// What a built-in backend asks to have registered: `(name, source)` pairs.
pub(crate) type Registrations = Vec<(&'static str, Arc<dyn Source>)>;

/// The built-in backends, for the runtime (one entry per module; see also the
/// compile-time table below).
pub(crate) const BUILTINS: &[Builtin] = &[
    env::BUILTIN,
    database::BUILTIN,
    http::BUILTIN,
    consul::BUILTIN,
    vault::BUILTIN,
    redis::BUILTIN,
    file::BUILTIN,
    kafka::BUILTIN,
    nats::BUILTIN,
    nats_kv::BUILTIN,
    etcd::BUILTIN,
    aws::BUILTIN,
    azure_keyvault::BUILTIN,
    gcp_secrets::BUILTIN,
    mqtt::BUILTIN,
    websocket::BUILTIN,
    local_cache::BUILTIN,
    secret_file::BUILTIN,
    args::BUILTIN,
];

/// What every `Sources::new()` registers: `env` (reading `env`), `secret_file` and, with
/// feature `http`, `api` and `http` (an `HttpSource` without a base URL). The registry
/// registers them by these names; it names no backend itself.
pub(crate) fn defaults(env: &EnvSource) -> Registrations {
    let mut registrations: Registrations = vec![
        env::registration(env),
        (
            secret_file::NAME,
            Arc::new(secret_file::SecretFileSource::new()),
        ),
    ];
    registrations.extend(http::defaults());
    registrations
}

/// The built-in backend named `name` (`database:analytics` is `database`).
pub(crate) fn builtin(name: &str) -> Option<&'static Builtin> {
    let base = name.split(':').next().unwrap_or(name);
    BUILTINS.iter().find(|b| b.names.contains(&base))
}

/// The compile-time table: which module's rules check a `fetch_from` name.
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_backend {
    // `stream_from`: a pull backend says only that it is not a push stream; a push
    // backend (or a registered name) runs the checks inside.
    ("env" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "env" } };
    ("database" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "database" } };
    ("postgres" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "postgres" } };
    ("mysql" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "mysql" } };
    ("sqlite" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "sqlite" } };
    ("api" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "api" } };
    ("http" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "http" } };
    ("consul" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "consul" } };
    ("vault" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "vault" } };
    ("etcd" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "etcd" } };
    ("nats_kv" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "nats_kv" } };
    ("aws_secrets" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "aws_secrets" } };
    ("aws_ssm" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "aws_ssm" } };
    ("azure_keyvault" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "azure_keyvault" } };
    ("gcp_secrets" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "gcp_secrets" } };
    ("file" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "file" } };
    ($name:literal $entry:tt streamed { $($checks:tt)* }) => { $($checks)* };
    ("secret_file" $entry:tt streamed $checks:tt) => { $crate::__component_model_not_used! { stream_from "secret_file" } };
    ("env" $($t:tt)*) => { $crate::__component_model_rules_env! { $($t)* } };
    ("secret_file" $($t:tt)*) => { $crate::__component_model_rules_secret_file! { $($t)* } };
    ("database" $($t:tt)*) => { $crate::__component_model_rules_database! { "database" $($t)* } };
    ("postgres" $($t:tt)*) => { $crate::__component_model_rules_database! { "postgres" $($t)* } };
    ("mysql" $($t:tt)*) => { $crate::__component_model_rules_database! { "mysql" $($t)* } };
    ("sqlite" $($t:tt)*) => { $crate::__component_model_rules_database! { "sqlite" $($t)* } };
    ("api" $($t:tt)*) => { $crate::__component_model_rules_http! { "api" $($t)* } };
    ("http" $($t:tt)*) => { $crate::__component_model_rules_http! { "http" $($t)* } };
    ("consul" $($t:tt)*) => { $crate::__component_model_rules_consul! { $($t)* } };
    ("vault" $($t:tt)*) => { $crate::__component_model_rules_vault! { $($t)* } };
    ("redis" $($t:tt)*) => { $crate::__component_model_rules_redis! { $($t)* } };
    ("file" $($t:tt)*) => { $crate::__component_model_rules_file! { $($t)* } };
    ("kafka" $($t:tt)*) => { $crate::__component_model_rules_kafka! { $($t)* } };
    ("nats" $($t:tt)*) => { $crate::__component_model_rules_nats! { $($t)* } };
    ("nats_kv" $($t:tt)*) => { $crate::__component_model_rules_nats_kv! { $($t)* } };
    ("etcd" $($t:tt)*) => { $crate::__component_model_rules_etcd! { $($t)* } };
    ("aws_secrets" $($t:tt)*) => { $crate::__component_model_rules_aws_secrets! { $($t)* } };
    ("aws_ssm" $($t:tt)*) => { $crate::__component_model_rules_aws_ssm! { $($t)* } };
    ("azure_keyvault" $($t:tt)*) => { $crate::__component_model_rules_azure_keyvault! { $($t)* } };
    ("gcp_secrets" $($t:tt)*) => { $crate::__component_model_rules_gcp_secrets! { $($t)* } };
    ("mqtt" $($t:tt)*) => { $crate::__component_model_rules_mqtt! { $($t)* } };
    ("websocket" $($t:tt)*) => { $crate::__component_model_rules_websocket! { $($t)* } };
    // A registered name: checked at run time only.
    ($other:literal $($t:tt)*) => {};
}

/// A key the backend does not read, for the rules of every backend: an error spanned at
/// the key, naming the backend's keys, with a suggestion when the key looks misspelt.
#[doc(hidden)]
pub use component_model_meta::__unknown_backend_key;

/// "the `<name>` source is not a push stream", for the table above.
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_not_used {
    (stream_from $name:tt) => {
        ::core::compile_error!(::core::concat!(
            "the `",
            $name,
            "` source is not a push stream: read it with `fetch_from = \"",
            $name,
            "\"` (add `watch` for live updates); `stream_from` takes `kafka`, `nats`, `mqtt`, `websocket` or `redis`"
        ));
    };
}
