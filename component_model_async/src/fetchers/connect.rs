//! Clients opened at run time from an address that was itself fetched (`connect = "{dsn}"`
//! on a field): which backends can be opened that way, and how each is opened. The
//! registry (`Sources::dynamic_source`) caches what is opened here; this table only
//! opens.
//!
//! | `fetch_from` | opened with | inherits from the `Sources`' environment |
//! |---|---|---|
//! | `database`, `database:<pool>`, `postgres`, `mysql`, `sqlite` | `DatabaseSource::connect`: connected now, the URL's scheme picks the driver | nothing: the URL carries everything |
//! | `redis` | `RedisSource::new`, connected now (a `PING`) | the `REDIS_*` TLS variables, as `RedisSource::from_env_source` |
//! | `consul` | `ConsulSource::from_env_source` with the address as `CONSUL_HTTP_ADDR` | `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_SSL`, `CONSUL_NAMESPACE`, the TLS variables |
//! | `vault` | `VaultSource::from_env_source` with the address as `VAULT_ADDR` | the credentials (`VAULT_TOKEN`, token file, AppRole, Kubernetes), `VAULT_NAMESPACE`, the TLS variables |
//! | `nats` | `NatsSource::new`: the URL is checked now, the client connects on first use | nothing: the URL carries everything |
//!
//! Opening is bounded by [`OPEN_TIMEOUT`] whatever the backend's own timeouts. The address
//! may be a secret (a DSN with its password): it is never in an error of this module, and
//! a client's `location()` shows it with its credentials masked, as every source does.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;
use crate::source::Source;

/// The longest opening a client may take (connecting, the handshake, a first round trip),
/// whatever the backend's own timeouts: 10 s.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The backends a client can be opened for, from a fetched address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// PostgreSQL, MariaDB/MySQL, SQLite: the URL's scheme picks the driver.
    Database,
    Redis,
    Consul,
    Vault,
    Nats,
}

/// What [`Kind::of`] tells of a `fetch_from` name: the kind of client, and the driver a
/// driver name (`postgres`, `mysql`, `sqlite`) requires of the address.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backend {
    pub(crate) kind: Kind,
    driver: Option<&'static str>,
}

impl Kind {
    /// The kind of client `backend` (a field's `fetch_from`: `database`, `database:<pool>`,
    /// `postgres`, `mysql`, `sqlite`, `redis`, `consul`, `vault`, `nats`) opens; a
    /// configuration error for any other name, or when the backend's cargo feature is off.
    pub(crate) fn of(backend: &str) -> Result<Backend, SourceError> {
        let base = backend.split(':').next().unwrap_or(backend);
        let (kind, driver, enabled, feature) = match base {
            "database" => (
                Kind::Database,
                None,
                cfg!(any(
                    feature = "postgres",
                    feature = "mysql",
                    feature = "sqlite"
                )),
                "`postgres`, `mysql` or `sqlite`",
            ),
            "postgres" => (
                Kind::Database,
                Some("postgres"),
                cfg!(feature = "postgres"),
                "`postgres`",
            ),
            "mysql" => (
                Kind::Database,
                Some("mysql"),
                cfg!(feature = "mysql"),
                "`mysql`",
            ),
            "sqlite" => (
                Kind::Database,
                Some("sqlite"),
                cfg!(feature = "sqlite"),
                "`sqlite`",
            ),
            "redis" => (Kind::Redis, None, cfg!(feature = "redis"), "`redis`"),
            "consul" => (Kind::Consul, None, cfg!(feature = "consul"), "`consul`"),
            "vault" => (Kind::Vault, None, cfg!(feature = "vault"), "`vault`"),
            "nats" => (Kind::Nats, None, cfg!(feature = "nats"), "`nats`"),
            _ => {
                return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "`connect` opens clients of database, postgres, mysql, sqlite, redis, consul, vault and nats; `{backend}` is not one of them"
                )));
            }
        };
        if !enabled {
            return Err(SourceError::new(ErrorKind::Config).with_message(format!(
                "`connect` with backend `{backend}` needs cargo feature {feature} of component_model_async (`component_model` re-exports the same features)"
            )));
        }
        Ok(Backend { kind, driver })
    }

    /// The backend's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Redis => "redis",
            Kind::Consul => "consul",
            Kind::Vault => "vault",
            Kind::Nats => "nats",
        }
    }
}

impl Backend {
    /// Checks what can be checked of `address` without opening anything (a database URL's
    /// scheme, and that it is the driver a driver name asks for). The error never shows
    /// the address.
    pub(crate) fn check(&self, address: &str) -> Result<(), SourceError> {
        if self.kind != Kind::Database {
            return Ok(());
        }
        let scheme = address.trim().split(':').next().unwrap_or("");
        let driver = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => "postgres",
            "mysql" | "mariadb" => "mysql",
            "sqlite" => "sqlite",
            // Not shown: what is before the first `:` of something that is not a URL may
            // be a secret.
            _ => {
                return Err(SourceError::new(ErrorKind::Config).with_message(
                    "the address is not a database URL (postgres://, mysql://, mariadb:// or sqlite:)",
                ));
            }
        };
        match self.driver {
            Some(wanted) if wanted != driver => {
                Err(SourceError::new(ErrorKind::Config).with_message(format!(
                    "the `{wanted}` backend was given a {driver} URL (use `fetch_from = \"database\"` to let the URL pick the driver)"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Opens a client of `backend` (see [`Kind::of`]) at `address`, inheriting from `env` what
/// the backend reads from the environment (see the module's table), within
/// [`OPEN_TIMEOUT`]. The error says which backend could not be opened and why, never
/// the address or its credentials.
pub(crate) async fn open(
    backend: &str,
    kind: Kind,
    address: &str,
    env: &EnvSource,
) -> Result<Arc<dyn Source>, SourceError> {
    let opened = tokio::time::timeout(OPEN_TIMEOUT, open_now(kind, address, env)).await;
    let failed = match opened {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => e,
        Err(_) => SourceError::new(ErrorKind::Timeout).with_message(format!(
            "the server did not answer within {}",
            crate::error::humanize(OPEN_TIMEOUT)
        )),
    };
    Err(opening_error(backend, &failed, address))
}

/// `could not open a <backend> client: <why>`, of the kind of `failed`, with every trace of
/// `address` masked in the reason (the backends' messages already mask credentials; this
/// is the second lock) and no cause chain (a library's error could show more).
fn opening_error(backend: &str, failed: &SourceError, address: &str) -> SourceError {
    let mut why = failed
        .message()
        .map_or_else(|| failed.kind().as_str().to_owned(), str::to_owned);
    let mut cause = failed
        .cause()
        .map(|c| c as &(dyn std::error::Error + 'static));
    while let Some(c) = cause {
        let shown = c.to_string();
        if !why.contains(&shown) {
            why.push_str(": ");
            why.push_str(&shown);
        }
        cause = c.source();
    }
    SourceError::new(failed.kind()).with_message(format!(
        "could not open a `{backend}` client for the fetched address: {}",
        mask(&why, address)
    ))
}

/// `text` with the address, and its password (or token: a user without a password, as in
/// `nats://token@host`), replaced by `***`.
pub(crate) fn mask(text: &str, address: &str) -> String {
    let mut secrets: Vec<String> = vec![address.to_owned(), address.trim().to_owned()];
    for one in address.split(',') {
        if let Ok(url) = url::Url::parse(one.trim()) {
            let user = url.username();
            match url.password() {
                Some(password) => secrets.push(password.to_owned()),
                None if !user.is_empty() => secrets.push(user.to_owned()),
                None => {}
            }
        }
    }
    // Decoded too: a library may show `p@ss` for `p%40ss`.
    let decoded: Vec<String> = secrets
        .iter()
        .filter_map(|s| percent_decode(s).filter(|d| d != s))
        .collect();
    secrets.extend(decoded);
    // Longest first, so a password inside the address is not masked before the address.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// `%XX` sequences decoded, if there are any and they make UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Opens the client, unbounded (see [`open`]).
async fn open_now(
    kind: Kind,
    address: &str,
    env: &EnvSource,
) -> Result<Arc<dyn Source>, SourceError> {
    let _ = (address, env);
    match kind {
        Kind::Database => {
            #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
            return crate::fetchers::database::DatabaseSource::connect(address.trim())
                .await
                .map(|s| Arc::new(s) as Arc<dyn Source>);
        }
        Kind::Redis => {
            #[cfg(feature = "redis")]
            return crate::fetchers::redis::connect::open(address, env)
                .await
                .map(|s| Arc::new(s) as Arc<dyn Source>);
        }
        Kind::Consul => {
            #[cfg(feature = "consul")]
            return crate::fetchers::consul::connect::open(address, env)
                .map(|s| Arc::new(s) as Arc<dyn Source>);
        }
        Kind::Vault => {
            #[cfg(feature = "vault")]
            return crate::fetchers::vault::connect::open(address, env)
                .map(|s| Arc::new(s) as Arc<dyn Source>);
        }
        Kind::Nats => {
            #[cfg(feature = "nats")]
            return nats(address).map(|s| Arc::new(s) as Arc<dyn Source>);
        }
    }
    // A kind whose feature is off (`Kind::of` refuses it before).
    #[allow(unreachable_code)]
    Err(SourceError::new(ErrorKind::Config)
        .with_message(format!("backend `{}` is not built in", kind.name())))
}

/// A NATS client for `url` (comma-separated servers), each server's URL checked now; it
/// connects on first use, within its own 10 s timeout.
#[cfg(feature = "nats")]
fn nats(url: &str) -> Result<crate::NatsSource, SourceError> {
    for one in url.split(',').map(str::trim) {
        let parsed: Result<async_nats::ServerAddr, _> = one.parse();
        if parsed.is_err() {
            return Err(SourceError::new(ErrorKind::Config)
                .with_message("the address is not a NATS URL (nats://host:port, tls://host:port, comma-separated for a cluster)"));
        }
    }
    Ok(crate::NatsSource::new(url.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_features() {
        let err = Kind::of("kafka").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(
            err.message().unwrap(),
            "`connect` opens clients of database, postgres, mysql, sqlite, redis, consul, vault and nats; `kafka` is not one of them"
        );
        for (name, enabled) in [
            ("redis", cfg!(feature = "redis")),
            ("consul", cfg!(feature = "consul")),
            ("vault", cfg!(feature = "vault")),
            ("nats", cfg!(feature = "nats")),
            ("postgres", cfg!(feature = "postgres")),
        ] {
            match Kind::of(name) {
                Ok(b) => assert!(enabled, "{name}: {b:?}"),
                Err(e) => {
                    assert!(!enabled, "{name}: {e}");
                    assert!(e.message().unwrap().contains("needs cargo feature"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_database_address_is_checked_without_being_shown() {
        let any_sql = cfg!(any(
            feature = "postgres",
            feature = "mysql",
            feature = "sqlite"
        ));
        if !any_sql {
            return;
        }
        let database = Kind::of("database:analytics").unwrap();
        let e = database.check("hunter2-canary:not-a-url").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(database.check("mysql://root@127.0.0.1/test").is_ok());
        if cfg!(feature = "postgres") {
            let e = Kind::of("postgres")
                .unwrap()
                .check("mysql://root:pw-canary@127.0.0.1/test")
                .unwrap_err();
            assert!(!e.to_string().contains("pw-canary"), "{e}");
            assert!(e.to_string().contains("mysql URL"), "{e}");
        }
    }

    #[test]
    fn masks_the_address_and_its_password() {
        let address = "postgres://app:p%40ss-canary@db:5432/x";
        let shown = mask(
            &format!("at {address}: bad password p@ss-canary or p%40ss-canary"),
            address,
        );
        assert!(!shown.contains("canary"), "{shown}");
        assert_eq!(
            mask("token tok-canary refused", "nats://tok-canary@h:4222"),
            "token *** refused"
        );
        assert_eq!(mask("no secret here", "redis://h:6379"), "no secret here");
    }

    #[test]
    fn opening_error_names_the_backend_and_masks_causes() {
        let failed = SourceError::new(ErrorKind::Unavailable)
            .with_message("cannot connect")
            .with_cause(std::io::Error::other("refused by pw-canary"));
        let e = opening_error("database", &failed, "postgres://u:pw-canary@h/db");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(
            e.to_string(),
            "unavailable: could not open a `database` client for the fetched address: cannot connect: refused by ***"
        );
        assert!(std::error::Error::source(&e).is_none());
    }
}
