//! TLS settings of the HTTP-based sources (`consul`, `vault`, `http`): a CA bundle or
//! directory, a client certificate, the name the server's certificate must carry, and —
//! for emergencies only — no verification at all.
//!
//! [`Sources::from_env`](crate::Sources::from_env) reads them from the variables the
//! HashiCorp CLIs read:
//!
//! | setting | Consul | Vault |
//! |---|---|---|
//! | CA bundle (PEM file), replaces the system roots | `CONSUL_CACERT` | `VAULT_CACERT` |
//! | directory of PEM CA files, replaces the system roots | `CONSUL_CAPATH` | `VAULT_CAPATH` |
//! | client certificate and key (PEM files, mutual TLS) | `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY` | `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY` |
//! | name to verify the server's certificate against | `CONSUL_TLS_SERVER_NAME` | `VAULT_TLS_SERVER_NAME` |
//! | skip verification (logged as a warning) | `CONSUL_HTTP_SSL_VERIFY=false` | `VAULT_SKIP_VERIFY=true` |
//!
//! Booleans are read as Go's `strconv.ParseBool` reads them (`1`, `t`, `true`, `TRUE`,
//! `0`, `f`, `false`, ...); another value is a configuration error. Files are read when the
//! source first connects; a missing or malformed one fails every field of the source with
//! [`ErrorKind::Config`](crate::ErrorKind::Config) naming the variable's file. A failed
//! handshake fails the field with [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable)
//! and says which check failed: unknown issuer, wrong name, expired, or a client
//! certificate the server refused.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::fetchers::env::EnvSource;

/// The largest certificate or key file read (a CA bundle of a few hundred roots fits).
const MAX_PEM_FILE: u64 = 4 * 1024 * 1024;

/// TLS settings of an HTTP-based source (see the [module](self)).
///
// Compiled as a test only with `vault` (the type is built with any HTTP backend).
#[cfg_attr(feature = "vault", doc = "```")]
#[cfg_attr(not(feature = "vault"), doc = "```ignore")]
/// use component_model_async::{EnvSource, TlsConfig, VaultSource};
///
/// let tls = TlsConfig::new()
///     .with_ca_cert("/etc/vault/ca.pem")
///     .with_client_cert("/etc/vault/client.pem", "/etc/vault/client-key.pem")
///     .with_server_name("vault.internal");
/// let vault = VaultSource::new("https://10.0.0.5:8200").with_tls(tls);
///
/// // The same from the variables the `vault` CLI reads:
/// let env = EnvSource::from_map([
///     ("VAULT_ADDR", "https://10.0.0.5:8200"),
///     ("VAULT_CACERT", "/etc/vault/ca.pem"),
///     ("VAULT_TLS_SERVER_NAME", "vault.internal"),
/// ]);
/// let tls = TlsConfig::vault_from_env(&env).unwrap().unwrap();
/// assert_eq!(tls.server_name(), Some("vault.internal"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    ca_cert: Option<(PathBuf, &'static str)>,
    ca_path: Option<(PathBuf, &'static str)>,
    client: Option<ClientFiles>,
    server_name: Option<String>,
    skip_verify: bool,
}

#[derive(Clone, PartialEq, Eq)]
struct ClientFiles {
    cert: PathBuf,
    key: PathBuf,
    /// The variables they came from, for messages.
    names: (&'static str, &'static str),
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_cert", &self.ca_cert.as_ref().map(|c| &c.0))
            .field("ca_path", &self.ca_path.as_ref().map(|c| &c.0))
            .field("client_cert", &self.client.as_ref().map(|c| &c.cert))
            .field("server_name", &self.server_name)
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl TlsConfig {
    /// The system's roots, no client certificate, the URL's host as the expected name.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts only the CA certificates of this PEM file (a bundle of one or more).
    #[must_use]
    pub fn with_ca_cert(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_cert = Some((path.as_ref().to_owned(), "CA certificate"));
        self
    }

    /// Trusts only the CA certificates of the PEM files (`*.pem`, `*.crt`) in `dir`.
    #[must_use]
    pub fn with_ca_path(mut self, dir: impl AsRef<Path>) -> Self {
        self.ca_path = Some((dir.as_ref().to_owned(), "CA directory"));
        self
    }

    /// Presents this certificate (PEM, with its chain) and key (PEM: PKCS#8, PKCS#1 or
    /// SEC1) to a server that asks for one (mutual TLS).
    #[must_use]
    pub fn with_client_cert(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.client = Some(ClientFiles {
            cert: cert.as_ref().to_owned(),
            key: key.as_ref().to_owned(),
            names: ("client certificate", "client key"),
        });
        self
    }

    /// Verifies the server's certificate against `name` instead of the URL's host (for
    /// a server reached by IP address or through a tunnel).
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Accepts any server certificate: the connection is encrypted but the server is not
    /// authenticated, so anyone on the path can read the token and the secrets. Every
    /// client built with it logs a warning.
    #[must_use]
    pub fn danger_skip_verify(mut self, skip: bool) -> Self {
        self.skip_verify = skip;
        self
    }

    /// The name the server's certificate is verified against, when not the URL's host.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether verification is off.
    pub fn skips_verify(&self) -> bool {
        self.skip_verify
    }

    /// The Consul CLI's variables (see the [module](self)); `Ok(None)` when none is set.
    ///
    /// # Errors
    /// A variable with a value it cannot take (a boolean that is not one, a client
    /// certificate without its key), naming the variable.
    pub fn consul_from_env(env: &EnvSource) -> Result<Option<Self>, String> {
        Self::from_vars(
            env,
            Vars {
                ca_cert: "CONSUL_CACERT",
                ca_path: Some("CONSUL_CAPATH"),
                client_cert: "CONSUL_CLIENT_CERT",
                client_key: "CONSUL_CLIENT_KEY",
                server_name: Some("CONSUL_TLS_SERVER_NAME"),
                verify: ("CONSUL_HTTP_SSL_VERIFY", false),
            },
        )
    }

    /// The Vault CLI's variables (see the [module](self)); `Ok(None)` when none is set.
    ///
    /// # Errors
    /// As [`TlsConfig::consul_from_env`].
    pub fn vault_from_env(env: &EnvSource) -> Result<Option<Self>, String> {
        Self::from_vars(
            env,
            Vars {
                ca_cert: "VAULT_CACERT",
                ca_path: Some("VAULT_CAPATH"),
                client_cert: "VAULT_CLIENT_CERT",
                client_key: "VAULT_CLIENT_KEY",
                server_name: Some("VAULT_TLS_SERVER_NAME"),
                verify: ("VAULT_SKIP_VERIFY", true),
            },
        )
    }

    /// For `redis` (no CLI convention exists; the Vault names with `REDIS_`):
    /// `REDIS_CACERT`, `REDIS_CAPATH`, `REDIS_CLIENT_CERT`, `REDIS_CLIENT_KEY`,
    /// `REDIS_TLS_SERVER_NAME`, `REDIS_SKIP_VERIFY`. They apply to a `rediss://` URL (and
    /// make a `redis://` one TLS too).
    ///
    /// # Errors
    /// As [`TlsConfig::consul_from_env`].
    pub fn redis_from_env(env: &EnvSource) -> Result<Option<Self>, String> {
        Self::from_vars(
            env,
            Vars {
                ca_cert: "REDIS_CACERT",
                ca_path: Some("REDIS_CAPATH"),
                client_cert: "REDIS_CLIENT_CERT",
                client_key: "REDIS_CLIENT_KEY",
                server_name: Some("REDIS_TLS_SERVER_NAME"),
                verify: ("REDIS_SKIP_VERIFY", true),
            },
        )
    }

    /// `etcdctl`'s variables: `ETCDCTL_CACERT`, `ETCDCTL_CERT` and `ETCDCTL_KEY` (the
    /// client certificate and its key), `ETCDCTL_INSECURE_SKIP_TLS_VERIFY`; `Ok(None)`
    /// when none is set.
    ///
    /// ```
    /// use component_model_async::{EnvSource, TlsConfig};
    ///
    /// let env = EnvSource::from_map([("ETCDCTL_CACERT", "/etc/etcd/ca.pem")]);
    /// assert!(TlsConfig::etcd_from_env(&env).unwrap().is_some());
    /// let half = EnvSource::from_map([("ETCDCTL_CERT", "/etc/etcd/client.pem")]);
    /// assert!(TlsConfig::etcd_from_env(&half).unwrap_err().contains("ETCDCTL_KEY"));
    /// ```
    ///
    /// # Errors
    /// As [`TlsConfig::consul_from_env`].
    pub fn etcd_from_env(env: &EnvSource) -> Result<Option<Self>, String> {
        Self::from_vars(
            env,
            Vars {
                ca_cert: "ETCDCTL_CACERT",
                ca_path: None,
                client_cert: "ETCDCTL_CERT",
                client_key: "ETCDCTL_KEY",
                server_name: None,
                verify: ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", true),
            },
        )
    }

    fn from_vars(env: &EnvSource, v: Vars) -> Result<Option<Self>, String> {
        let get = |name: &str| env.get(name).filter(|s| !s.trim().is_empty());
        let mut tls = TlsConfig::new();
        let mut any = false;
        if let Some(p) = get(v.ca_cert) {
            tls.ca_cert = Some((p.into(), v.ca_cert));
            any = true;
        }
        if let Some((p, var)) = v.ca_path.and_then(|var| Some((get(var)?, var))) {
            tls.ca_path = Some((p.into(), var));
            any = true;
        }
        match (get(v.client_cert), get(v.client_key)) {
            (Some(cert), Some(key)) => {
                tls.client = Some(ClientFiles {
                    cert: cert.into(),
                    key: key.into(),
                    names: (v.client_cert, v.client_key),
                });
                any = true;
            }
            (Some(_), None) => {
                return Err(format!(
                    "{} is set but {} is not: a client certificate needs its key",
                    v.client_cert, v.client_key
                ));
            }
            (None, Some(_)) => {
                return Err(format!(
                    "{} is set but {} is not: a client key needs its certificate",
                    v.client_key, v.client_cert
                ));
            }
            (None, None) => {}
        }
        if let Some(name) = v.server_name.and_then(get) {
            tls.server_name = Some(name);
            any = true;
        }
        let (var, set_means_skip) = v.verify;
        if let Some(value) = get(var) {
            let b = parse_bool(&value).ok_or_else(|| {
                format!("{var} must be a boolean (true/false, 1/0), found `{value}`")
            })?;
            tls.skip_verify = b == set_means_skip;
            any = true;
        }
        Ok(any.then_some(tls))
    }

    /// The rustls configuration these settings make: files read now.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.skip_verify {
            Arc::new(NoVerification(provider))
        } else {
            let roots = Arc::new(self.roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS setup failed: {e}"))?;
            match &self.server_name {
                Some(name) => {
                    let name = ServerName::try_from(name.clone()).map_err(|_| {
                        format!(
                            "the TLS server name `{name}` is not a valid DNS name or IP address"
                        )
                    })?;
                    Arc::new(ExpectedName {
                        inner: webpki,
                        name,
                    })
                }
                None => webpki,
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.client {
            Some(files) => {
                let certs = certificates(&files.cert, files.names.0)?;
                let key = read_bounded(&files.key, files.names.1, true)?;
                let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
                    format!(
                        "{} {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}",
                        files.names.1,
                        files.key.display()
                    )
                })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| {
                    format!(
                        "{} {} and {} {} do not make a usable client identity: {e}",
                        files.names.0,
                        files.cert.display(),
                        files.names.1,
                        files.key.display()
                    )
                })?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }

    /// The trusted roots: the configured CA files only, else the system's.
    fn roots(&self) -> Result<rustls::RootCertStore, String> {
        let mut roots = rustls::RootCertStore::empty();
        let mut configured = false;
        if let Some((path, what)) = &self.ca_cert {
            for cert in certificates(path, what)? {
                add_root(&mut roots, cert, path, what)?;
            }
            configured = true;
        }
        if let Some((dir, what)) = &self.ca_path {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("{what} {} cannot be read: {e}", dir.display()))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| x == "pem" || x == "crt" || x == "cer")
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{what} {} holds no .pem/.crt/.cer file",
                    dir.display()
                ));
            }
            // Files without a certificate (keys, notes) are passed over, as long as the
            // directory yields one CA at least.
            let before = roots.len();
            for file in files {
                for cert in certificates(&file, what).unwrap_or_default() {
                    add_root(&mut roots, cert, &file, what)?;
                }
            }
            if roots.len() == before {
                return Err(format!("{what} {} holds no PEM certificate", dir.display()));
            }
            configured = true;
        }
        if !configured {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no CA certificates found on this system; name one (VAULT_CACERT / CONSUL_CACERT, or `TlsConfig::with_ca_cert`)".to_owned());
            }
        }
        Ok(roots)
    }
}

/// The cryptography every TLS client of this crate uses: the one the application installed
/// as the process default (`CryptoProvider::install_default`, e.g. a FIPS build), else
/// rustls' recommended provider, aws-lc-rs, whose default key exchange includes the
/// post-quantum hybrid `X25519MLKEM768` (preferred, with the `prefer-post-quantum`
/// feature). *ring*'s provider offers no post-quantum key exchange and is deprecated by
/// the newest rustls.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    static AWS_LC_RS: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    AWS_LC_RS
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

struct Vars {
    ca_cert: &'static str,
    ca_path: Option<&'static str>,
    client_cert: &'static str,
    client_key: &'static str,
    server_name: Option<&'static str>,
    /// The variable, and which value of it means "skip verification".
    verify: (&'static str, bool),
}

/// Go's `strconv.ParseBool`, which the HashiCorp CLIs use.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn add_root(
    roots: &mut rustls::RootCertStore,
    cert: CertificateDer<'static>,
    path: &Path,
    what: &str,
) -> Result<(), String> {
    roots.add(cert).map_err(|e| {
        format!(
            "{what} {}: not a usable CA certificate: {e}",
            path.display()
        )
    })
}

/// Every certificate of a PEM file; an error when it holds none.
fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_bounded(path, what, false)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: malformed PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A certificate or key file, at most [`MAX_PEM_FILE`] bytes; a key file readable by every
/// user is read with the secret-file warning.
fn read_bounded(path: &Path, what: &str, secret: bool) -> Result<Vec<u8>, String> {
    if secret {
        return match crate::fetchers::secret_file::read_secret_file(path, what) {
            Ok(crate::RawValue::Text(s)) => Ok(s.into_bytes()),
            Ok(crate::RawValue::Bytes(b)) => Ok(b),
            Ok(crate::RawValue::Json(_)) => Ok(Vec::new()),
            Err(e) => Err(e.message().unwrap_or("cannot be read").to_owned()),
        };
    }
    let file = std::fs::File::open(path)
        .map_err(|e| format!("{what} {} cannot be read: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what} {} cannot be read: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(format!(
            "{what} {} is larger than {}",
            path.display(),
            crate::error::bytes(MAX_PEM_FILE)
        ));
    }
    Ok(bytes)
}

/// Verifies the chain as webpki does, against a configured name instead of the URL's host.
#[derive(Debug)]
struct ExpectedName {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for ExpectedName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (`VAULT_SKIP_VERIFY`); handshake signatures are still checked,
/// so the peer must hold the key of the certificate it shows.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a failed handshake means, when `e`'s chain holds a rustls error: the check that
/// failed, in words, with rustls' own text.
pub(crate) fn explain(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(r) = rustls_error(err) {
            return Some(describe(r));
        }
        current = err.source();
    }
    None
}

/// `e` as a rustls error, looking inside `io::Error`s (whose `source()` skips the error
/// they wrap, and which transports nest).
fn rustls_error<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut current = e;
    for _ in 0..8 {
        if let Some(r) = current.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}

fn describe(e: &rustls::Error) -> String {
    use rustls::{AlertDescription, CertificateError};
    let check = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "the server's certificate is not signed by a CA this client trusts (name the CA: VAULT_CACERT / CONSUL_CACERT / `TlsConfig::with_ca_cert`)"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the name this client expects (the URL's host, or VAULT_TLS_SERVER_NAME / CONSUL_TLS_SERVER_NAME)"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)"
            }
            CertificateError::Revoked => "the server's certificate is revoked",
            CertificateError::BadSignature => "the server's certificate has a bad signature",
            _ => "the server's certificate was refused",
        },
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired | AlertDescription::BadCertificate,
        ) => {
            "the server requires a client certificate, or refused the one sent (VAULT_CLIENT_CERT / CONSUL_CLIENT_CERT)"
        }
        rustls::Error::AlertReceived(AlertDescription::UnknownCA) => {
            "the server does not trust the CA of the client certificate"
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not speak TLS (an http:// server behind an https:// address?)"
        }
        _ => "the TLS handshake failed",
    };
    format!("TLS: {check} ({e})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_hashicorp_variables() {
        let env = EnvSource::from_map([
            ("CONSUL_CACERT", "/ca.pem"),
            ("CONSUL_HTTP_SSL_VERIFY", "false"),
        ]);
        let tls = TlsConfig::consul_from_env(&env).unwrap().unwrap();
        assert!(tls.skips_verify());
        let env = EnvSource::from_map([("VAULT_SKIP_VERIFY", "0")]);
        assert!(
            !TlsConfig::vault_from_env(&env)
                .unwrap()
                .unwrap()
                .skips_verify()
        );
        assert_eq!(
            TlsConfig::vault_from_env(&EnvSource::from_map([("X", "1")])).unwrap(),
            None
        );
        let err = TlsConfig::vault_from_env(&EnvSource::from_map([("VAULT_SKIP_VERIFY", "yes")]))
            .unwrap_err();
        assert!(err.contains("VAULT_SKIP_VERIFY"), "{err}");
        let err =
            TlsConfig::vault_from_env(&EnvSource::from_map([("VAULT_CLIENT_CERT", "/c.pem")]))
                .unwrap_err();
        assert!(err.contains("VAULT_CLIENT_KEY"), "{err}");
    }

    #[test]
    fn tls_uses_aws_lc_rs_preferring_the_post_quantum_key_exchange() {
        assert!(
            CryptoProvider::get_default().is_none(),
            "no test installs a process default"
        );
        let provider = provider();
        let first = provider.kx_groups.first().map(|g| g.name());
        assert_eq!(first, Some(rustls::NamedGroup::X25519MLKEM768));
        // Built with it: a client configuration of these settings takes it.
        let config = TlsConfig::new().danger_skip_verify(true).client_config();
        assert!(config.is_ok(), "{config:?}");
    }

    #[test]
    fn names_the_variable_of_a_missing_file() {
        let env = EnvSource::from_map([("VAULT_CACERT", "/nonexistent/ca.pem")]);
        let tls = TlsConfig::vault_from_env(&env).unwrap().unwrap();
        let err = tls.client_config().unwrap_err();
        assert!(err.contains("VAULT_CACERT /nonexistent/ca.pem"), "{err}");
    }
}
