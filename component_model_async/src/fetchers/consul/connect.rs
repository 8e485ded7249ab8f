//! A `consul` client opened from a fetched address (`connect = "{...}"`; see
//! `fetchers/connect.rs`): configured as [`ConsulSource::from_env_source`] configures the
//! registered one (token, HTTPS, namespace, TLS), at that address.
#![cfg(feature = "consul")]

use super::ConsulSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;

/// What [`ConsulSource::from_env_source`] reads besides `CONSUL_HTTP_ADDR` (the test
/// below keeps the list whole).
const INHERITED: &[&str] = &[
    "CONSUL_HTTP_SSL",
    "CONSUL_HTTP_TOKEN",
    "CONSUL_NAMESPACE",
    "CONSUL_CACERT",
    "CONSUL_CAPATH",
    "CONSUL_CLIENT_CERT",
    "CONSUL_CLIENT_KEY",
    "CONSUL_TLS_SERVER_NAME",
    "CONSUL_HTTP_SSL_VERIFY",
];

/// A [`ConsulSource`] at `address` (`host:port` or a URL) with what `env` says of the
/// registered one. HTTP: nothing is connected until the first fetch (each request is
/// bounded by the source's 10 s timeout).
pub(crate) fn open(address: &str, env: &EnvSource) -> Result<ConsulSource, SourceError> {
    crate::TlsConfig::consul_from_env(env)
        .map_err(|why| SourceError::new(ErrorKind::Config).with_message(why))?;
    let mut vars: Vec<(String, String)> = INHERITED
        .iter()
        .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v)))
        .collect();
    vars.push(("CONSUL_HTTP_ADDR".to_owned(), address.trim().to_owned()));
    let source = ConsulSource::from_env_source(&EnvSource::from_map(vars));
    if url::Url::parse(source.address()).is_err() {
        return Err(SourceError::new(ErrorKind::Config).with_message(
            "the address is not a Consul address (host:port or http(s)://host:port)",
        ));
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    /// Every `CONSUL_…` variable `from_env_source` and the TLS settings read is inherited.
    #[test]
    fn inherits_every_variable_the_registered_source_reads() {
        let text = [include_str!("source.rs"), include_str!("../tls.rs")].concat();
        let re = regex::Regex::new(r#""(CONSUL_[A-Z_]+)""#).unwrap();
        for name in re.captures_iter(&text).map(|c| c[1].to_owned()) {
            assert!(
                name == "CONSUL_HTTP_ADDR" || super::INHERITED.contains(&name.as_str()),
                "{name} is read by ConsulSource::from_env_source but not inherited by a `connect` client"
            );
        }
    }
}
