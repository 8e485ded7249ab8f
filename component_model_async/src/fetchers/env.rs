//! The `env` source: process environment variables, or an injected map for tests.
//!
//! Declares: name `env` (always built in, always registered); attribute key `key` (the
//! variable; defaults to the field name upper-cased with the container's `env_prefix`);
//! key label `variable`; a bare `secret` marks a value secret. When the variable is not
//! set and `<variable>_FILE` is, the file it names is read (see
//! [`secret_file`](super::secret_file)).
//!
//! ## Preflight
//!
//! A variable that is set is [`Access::Readable`](crate::Access) (a `secret` field's empty
//! value counts as not set, as fetch does); one not set is `Missing` — unless
//! `<variable>_FILE` is set: then the file it names is checked by its metadata (exists, a
//! regular file, opens; never read), and a missing file is `Invalid` (fetch fails the
//! field: the variable named it on purpose). No value is shown.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::SourceError;
use crate::fetchers::Builtin;
use crate::source::{Access, FetchRequest, Preflighting, Probe, RawValue, Source};

/// Reads environment variables: the process environment, or a fixed map.
///
/// The derive names the variable after the field (`port` reads `PORT`, or `APP_PORT` with
/// `#[component(env_prefix = "APP_")]`); `key = "..."` overrides it. Tests should inject a
/// map instead of mutating the process environment, which is shared by parallel tests.
///
/// ```
/// use component_model_async::EnvSource;
///
/// let env = EnvSource::from_map([("PORT", "8080")]);
/// assert_eq!(env.get("PORT").as_deref(), Some("8080"));
/// assert_eq!(env.get("HOST"), None);
/// ```
#[derive(Clone)]
pub struct EnvSource {
    vars: Option<Arc<HashMap<String, String>>>,
    /// Variables of a `.env` file, read when the environment has no value of its own.
    under: Option<Arc<HashMap<String, String>>>,
}

/// Alias under the name the specification uses for built-in fetchers.
pub type EnvFetcher = EnvSource;

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vars {
            None => f.write_str("EnvSource(process")?,
            Some(m) => write!(f, "EnvSource(map of {} variables", m.len())?,
        }
        match &self.under {
            Some(u) => write!(f, ", over {} from .env)", u.len()),
            None => f.write_str(")"),
        }
    }
}

impl Default for EnvSource {
    fn default() -> Self {
        Self::process()
    }
}

impl EnvSource {
    /// Reads the process environment at fetch time.
    pub fn process() -> Self {
        EnvSource {
            vars: None,
            under: None,
        }
    }

    /// This environment over `vars` (a `.env` file's): a variable of the environment
    /// wins, a variable only in `vars` is read from there.
    pub(crate) fn over(mut self, vars: HashMap<String, String>) -> Self {
        let mut merged = self.under.as_deref().cloned().unwrap_or_default();
        merged.extend(vars);
        self.under = Some(Arc::new(merged));
        self
    }

    /// Reads only the given variables.
    pub fn from_map<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        EnvSource {
            vars: Some(Arc::new(
                vars.into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            )),
            under: None,
        }
    }

    /// The value of `name` (lossily converted when the process value is not UTF-8).
    pub fn get(&self, name: &str) -> Option<String> {
        let own = match &self.vars {
            Some(m) => m.get(name).cloned(),
            None => std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
        };
        own.or_else(|| self.under.as_ref()?.get(name).cloned())
    }

    fn get_raw(&self, name: &str) -> Option<RawValue> {
        let own = match &self.vars {
            Some(m) => m.get(name).cloned().map(RawValue::Text),
            None => std::env::var_os(name).map(|v| match v.into_string() {
                Ok(s) => RawValue::Text(s),
                Err(os) => RawValue::Bytes(os.into_encoded_bytes()),
            }),
        };
        own.or_else(|| self.under.as_ref()?.get(name).cloned().map(RawValue::Text))
    }
}

impl EnvSource {
    /// The variable a request reads; an empty value of a `secret` field counts as absent
    /// (an empty secret is a deployment mistake, so `fallback` and errors apply).
    fn read(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let name = request.key_or_default().unwrap_or(request.field());
        match self.get_raw(name) {
            Some(v) if request.is_sensitive() && v.is_empty() => Err(SourceError::not_found()
                .with_message("the variable is set but empty, and the field is secret")),
            Some(v) => Ok(v),
            None => {
                let file_var = format!("{name}_FILE");
                match self.get(&file_var).filter(|p| !p.is_empty()) {
                    Some(path) => crate::fetchers::secret_file::env_file(&path, &file_var),
                    None => Err(SourceError::not_found()),
                }
            }
        }
    }

    /// What a preflight finds of `request` (see the module docs).
    fn probe(&self, request: &FetchRequest) -> Probe {
        let name = request.key_or_default().unwrap_or(request.field());
        match self.get_raw(name) {
            Some(v) if request.is_sensitive() && v.is_empty() => Probe::missing().with_detail(
                format!("`{name}` is set but empty, and the field is secret"),
            ),
            Some(_) => Probe::readable().with_detail(format!("`{name}` is set")),
            None => {
                let file_var = format!("{name}_FILE");
                match self.get(&file_var).filter(|p| !p.is_empty()) {
                    Some(path) => {
                        let probe = crate::fetchers::secret_file::probe_secret_file(
                            std::path::Path::new(&path),
                            &file_var,
                        );
                        match probe.access {
                            // Named on purpose: a missing file fails the field.
                            Access::Missing => Probe::new(Access::Invalid)
                                .with_detail(probe.detail.unwrap_or_default()),
                            _ => probe,
                        }
                    }
                    None => Probe::missing().with_detail(format!("`{name}` is not set")),
                }
            }
        }
    }

    /// Whether `request` reads a secret file (`X_FILE` set, `X` not).
    fn reads_file(&self, request: &FetchRequest) -> bool {
        let name = request.key_or_default().unwrap_or(request.field());
        self.get_raw(name).is_none()
            && self
                .get(&format!("{name}_FILE"))
                .is_some_and(|p| !p.is_empty())
    }
}

#[async_trait::async_trait]
impl Source for EnvSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.read(request)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        requests.iter().map(|r| self.read(r)).collect()
    }

    fn location(&self) -> Option<String> {
        None
    }

    /// A field without `key` reads the variable named after it.
    fn keys_by_field_name(&self) -> bool {
        true
    }

    /// Set or not; an `X_FILE` secret file by its metadata (see the module docs).
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            if !requests.iter().any(|r| self.reads_file(r)) {
                return requests.iter().map(|r| self.probe(r)).collect();
            }
            // A file's metadata on a blocking thread.
            let this = self.clone();
            let n = requests.len();
            crate::task::blocking(move || requests.iter().map(|r| this.probe(r)).collect())
                .await
                .unwrap_or_else(|| vec![Probe::unchecked("the check was interrupted"); n])
        })
    }

    /// A value read from an `X_FILE` secret file is never shown.
    fn conceals(&self, request: &FetchRequest) -> bool {
        self.reads_file(request)
    }

    /// The variable [`FieldPath::env_name`](crate::FieldPath) (`env = "..."`, else
    /// `env_prefix` + FIELD); `env@MYAPP_` reads `MYAPP_` + the path upper-cased, `.` as `_`.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        Ok(match field.argument {
            Some(prefix) => {
                request.with_key(format!("{prefix}{}", field.joined('_').to_uppercase()))
            }
            None => request.with_key(field.env_name.clone().into_owned()),
        })
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        Some((
            "variable",
            request
                .key_or_default()
                .unwrap_or(request.field())
                .to_owned(),
        ))
    }
}

/// The name the environment is registered under.
pub(crate) const NAME: &str = "env";

/// `env` reading `env`: what every `Sources` registers, and `Sources::with_env` replaces.
pub(crate) fn registration(env: &EnvSource) -> (&'static str, std::sync::Arc<dyn crate::Source>) {
    (NAME, std::sync::Arc::new(env.clone()))
}

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &[NAME],
    hint: "always registered; replace it with `Sources::with_env`",
    from_env: |_| Vec::new(),
};

/// Compile-time rules of `fetch_from = "env"` (see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_env {
    ($entry:tt has $names:tt) => {};
    ($entry:tt param key) => {};
    ($entry:tt param secret) => {
        ::core::compile_error!("`secret = \"...\"` names a Vault path; to mark an env value as secret write a bare `secret`");
    };
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "env" [key] }
    };
}
