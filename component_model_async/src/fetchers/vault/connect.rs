//! A `vault` client opened from a fetched address (`connect = "{...}"`; see
//! `fetchers/connect.rs`): configured as [`VaultSource::from_env_source`] configures the
//! registered one (its credentials, namespace, TLS), at that address.
#![cfg(feature = "vault")]

use super::VaultSource;
use crate::error::{ErrorKind, SourceError};
use crate::fetchers::env::EnvSource;

/// What [`VaultSource::from_env_source`] reads besides `VAULT_ADDR` (the test below keeps
/// the list whole).
const INHERITED: &[&str] = &[
    "VAULT_TOKEN",
    "VAULT_TOKEN_FILE",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "VAULT_SECRET_ID_FILE",
    "VAULT_K8S_ROLE",
    "VAULT_K8S_JWT_PATH",
    "VAULT_AUTH_MOUNT",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
    "VAULT_TLS_SERVER_NAME",
    "VAULT_SKIP_VERIFY",
];

/// A [`VaultSource`] at `address` (a URL; `host:port` means https) with the credentials
/// and settings `env` gives the registered one. A token file, AppRole or Kubernetes login
/// is the client's own (it logs in on first use). HTTP: nothing is connected until the
/// first fetch (each request is bounded by the source's 10 s timeout).
pub(crate) fn open(address: &str, env: &EnvSource) -> Result<VaultSource, SourceError> {
    crate::TlsConfig::vault_from_env(env)
        .map_err(|why| SourceError::new(ErrorKind::Config).with_message(why))?;
    let mut vars: Vec<(String, String)> = INHERITED
        .iter()
        .filter_map(|name| env.get(name).map(|v| ((*name).to_owned(), v)))
        .collect();
    vars.push(("VAULT_ADDR".to_owned(), address.trim().to_owned()));
    let source = VaultSource::from_env_source(&EnvSource::from_map(vars));
    if url::Url::parse(source.address()).is_err() {
        return Err(SourceError::new(ErrorKind::Config)
            .with_message("the address is not a Vault address (https://host:port, or host:port)"));
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    /// Every `VAULT_…` variable `from_env_source` and the TLS settings read is inherited.
    #[test]
    fn inherits_every_variable_the_registered_source_reads() {
        let text = [include_str!("source.rs"), include_str!("../tls.rs")].concat();
        let re = regex::Regex::new(r#""(VAULT_[A-Z0-9_]+)""#).unwrap();
        for name in re.captures_iter(&text).map(|c| c[1].to_owned()) {
            assert!(
                name == "VAULT_ADDR" || super::INHERITED.contains(&name.as_str()),
                "{name} is read by VaultSource::from_env_source but not inherited by a `connect` client"
            );
        }
    }
}
