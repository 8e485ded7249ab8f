//! Secrets from files: `secret_file = "..."` on a field, and the container convention
//! `X_FILE=/run/secrets/x` for every `env` field.
//!
//! Orchestrators hand secrets to a process as files rather than environment variables
//! (Docker and Swarm secrets under `/run/secrets`, Kubernetes secret volumes, systemd's
//! `LoadCredential=` under `$CREDENTIALS_DIRECTORY`): a variable's value can leak through
//! `/proc/<pid>/environ`, child processes and crash reports; a file readable by one user
//! does not. Both ways of naming such a file read it the same way:
//!
//! * the whole file, at most [`MAX_SECRET_FILE`] bytes (a larger one fails the field with
//!   [`ErrorKind::TooLarge`] without being read);
//! * one trailing newline (`\n` or `\r\n`) removed — what `echo secret > file` and most
//!   editors add — and nothing else;
//! * a file that other users may read (mode `o+r` on Unix) is read, with a warning once
//!   per file and process naming the file (never the value) and the fix (`chmod 600`);
//! * a file that cannot be read fails the field with [`ErrorKind::Unavailable`], naming
//!   the file and the reason; a missing one named by `secret_file` with
//!   [`ErrorKind::NotFound`] (so `fallback` and `Option` apply as for any missing key), a
//!   missing one named by an `X_FILE` variable with [`ErrorKind::Config`] (the variable
//!   was set on purpose).
//!
//! ## `secret_file = "path"`
//!
//! Reads the field from the file: `fetch_from = "secret_file", key = "path", secret` in
//! short (the source named `secret_file`, always registered, [`SecretFileSource`]). Every
//! value is secret. A relative path is resolved against `$CREDENTIALS_DIRECTORY` when
//! systemd set it, else against the working directory. `${VAR}` placeholders work as in
//! any key. A nested struct's `key_prefix` does not apply to file paths.
//!
//! ## `X_FILE` for `env` fields
//!
//! When an `env` field's variable (say `APP_API_KEY`) is not set and `APP_API_KEY_FILE`
//! is, the file it names is read instead (the convention of the official Docker images).
//! When both are set the variable wins (a variable such as `CONFIG_FILE` often means
//! something else). A value read this way is never shown in errors, whatever the field's
//! type.
//!
//! ## What this module declares
//!
//! * name `secret_file`, always built in and registered;
//! * attribute: `secret_file = "path"` (the derive turns it into `key`); with
//!   `fetch_from = "secret_file"` the key `key` is required and no other backend key is read;
//! * key label `file`; every value is secret; one read per distinct file in a fetch.
//!
//! ## Preflight
//!
//! [`Source::preflight`] never reads a secret file: its metadata says whether it exists
//! ([`Access::Missing`] if not), is a regular file (a directory is [`Access::Invalid`];
//! a FIFO or a device is not opened, [`Access::Unchecked`]) within [`MAX_SECRET_FILE`];
//! it is then opened and closed, unread ([`Access::Denied`] when the process may not).
//! An `env` field's `X_FILE` is checked the same way.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::Builtin;
use crate::source::{Access, FetchRequest, Preflighting, Probe, RawValue, Source};

/// The largest secret file read: 1 MiB (secrets are keys, passwords and certificates).
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// The directory systemd's `LoadCredential=` puts a service's credentials in.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The name `secret_file = "..."` fields read from.
pub(crate) const NAME: &str = "secret_file";

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &[NAME],
    hint: "always registered; replace it with `Sources::register(\"secret_file\", SecretFileSource::in_dir(..))`",
    from_env: |_| Vec::new(),
};

/// Reads a secret file as the [module](self) says: bounded, one trailing newline removed,
/// a warning when other users may read it. `what` says who named the file, for messages
/// (`"secret file"`, `"API_KEY_FILE"`).
pub(crate) fn read_secret_file(path: &Path, what: &str) -> Result<RawValue, SourceError> {
    let shown = path.display();
    let unreadable = |e: std::io::Error| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Unavailable
        };
        SourceError::new(kind).with_message(format!("{what} {shown} cannot be read: {e}"))
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if meta.is_dir() {
        return Err(SourceError::new(ErrorKind::Config)
            .with_message(format!("{what} {shown} is a directory, not a file")));
    }
    warn_if_shared(path, &meta, what);
    let too_large = || {
        SourceError::new(ErrorKind::TooLarge).with_message(format!(
            "{what} {shown} is larger than {} (a secret file holds a key or a password)",
            crate::error::bytes(MAX_SECRET_FILE)
        ))
    };
    if meta.len() > MAX_SECRET_FILE {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(too_large());
    }
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => RawValue::Text(s),
        Err(e) => RawValue::Bytes(e.into_bytes()),
    })
}

/// What a preflight finds of a secret file without reading it: its metadata (it exists,
/// is a regular file within [`MAX_SECRET_FILE`]) and that it opens for reading (opened and
/// closed, nothing read). `what` says who named the file, for the detail. A missing file
/// is [`Access::Missing`]; a file the process may not open [`Access::Denied`]; a
/// directory or a file too large [`Access::Invalid`]; anything but a regular file (a FIFO,
/// a device) is not opened, [`Access::Unchecked`].
pub(crate) fn probe_secret_file(path: &Path, what: &str) -> Probe {
    let shown = path.display();
    let failed = |e: &std::io::Error| {
        let access = match e.kind() {
            std::io::ErrorKind::NotFound => Access::Missing,
            std::io::ErrorKind::PermissionDenied => Access::Denied,
            _ => Access::Invalid,
        };
        Probe::new(access).with_detail(format!("{what} {shown} cannot be read: {e}"))
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return failed(&e),
    };
    if meta.is_dir() {
        return Probe::new(Access::Invalid)
            .with_detail(format!("{what} {shown} is a directory, not a file"));
    }
    if !meta.is_file() {
        return Probe::unchecked(format!(
            "{what} {shown} is not a regular file (a FIFO or a device): not opened"
        ));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Probe::new(Access::Invalid).with_detail(format!(
            "{what} {shown} is larger than {} (a secret file holds a key or a password)",
            crate::error::bytes(MAX_SECRET_FILE)
        ));
    }
    match std::fs::File::open(path) {
        Ok(_) => Probe::readable().with_detail(format!(
            "{what} {shown}: a file of {}, opens for reading (not read)",
            crate::error::bytes(meta.len())
        )),
        Err(e) => failed(&e),
    }
}

/// Warns once per file and process when users other than the owner's group may read it.
#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &std::fs::Metadata, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    static WARNED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 == 0 {
        return;
    }
    let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
    if warned
        .get_or_insert_with(HashSet::new)
        .insert(path.to_owned())
    {
        tracing::warn!(
            file = %path.display(),
            named_by = what,
            mode = format_args!("{mode:04o}"),
            "a secret file is readable by every user of the machine; restrict it to the service's user (chmod 600)"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &std::fs::Metadata, _: &str) {}

/// The `secret_file` source: each field's value is the content of the file its key names
/// (see the [module](self)). Always registered; every value is secret.
///
/// ```
/// use component_model_async::{AsyncAssign, SecretString, Sources};
/// use component_model_async::secrecy::ExposeSecret;
///
/// #[derive(AsyncAssign, Debug)]
/// struct Secrets {
///     #[component(secret_file = "api_key")]
///     api_key: SecretString,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("cm-secret-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("api_key"), "s3cret\n").unwrap();
/// # #[cfg(unix)] { use std::os::unix::fs::PermissionsExt;
/// # std::fs::set_permissions(dir.join("api_key"), std::fs::Permissions::from_mode(0o600)).unwrap(); }
///
/// let sources = Sources::new().register("secret_file", component_model_async::SecretFileSource::in_dir(&dir));
/// let secrets = Secrets::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!(secrets.api_key.expose_secret(), "s3cret"); // the newline is gone
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone, Default)]
pub struct SecretFileSource {
    dir: Option<PathBuf>,
}

impl fmt::Debug for SecretFileSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFileSource")
            .field("dir", &self.dir)
            .finish()
    }
}

impl SecretFileSource {
    /// Resolves relative paths against `$CREDENTIALS_DIRECTORY` when set (at fetch time),
    /// else against the working directory.
    pub fn new() -> Self {
        SecretFileSource { dir: None }
    }

    /// Resolves relative paths against `dir` (e.g. `/run/secrets`).
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        SecretFileSource {
            dir: Some(dir.as_ref().to_owned()),
        }
    }

    /// The file a request names.
    fn file(&self, request: &FetchRequest) -> Result<PathBuf, SourceError> {
        let key = request.key().filter(|k| !k.is_empty()).ok_or_else(|| {
            SourceError::new(ErrorKind::Config)
                .with_message("the `secret_file` source needs the file's path as the key")
        })?;
        let path = Path::new(key);
        if path.is_absolute() {
            return Ok(path.to_owned());
        }
        let dir = self.dir.clone().or_else(|| {
            std::env::var_os(CREDENTIALS_DIRECTORY)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        });
        Ok(match dir {
            Some(dir) => dir.join(path),
            None => path.to_owned(),
        })
    }

    fn read(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        read_secret_file(&self.file(request)?, "secret file")
    }
}

#[async_trait::async_trait]
impl Source for SecretFileSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.read(request)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        crate::source::coalesce(requests, |unique| async move {
            unique.iter().map(|r| self.read(r)).collect()
        })
        .await
    }

    fn is_sensitive(&self) -> bool {
        true
    }

    /// Each file's metadata, and that it opens: never its content (see the
    /// [module](self) docs).
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            let this = self.clone();
            let n = requests.len();
            crate::task::blocking(move || {
                requests
                    .iter()
                    .map(|r| match this.file(r) {
                        Ok(path) => probe_secret_file(&path, "secret file"),
                        Err(e) => Probe::from_error(&e),
                    })
                    .collect()
            })
            .await
            .unwrap_or_else(|| vec![Probe::unchecked("the check was interrupted"); n])
        })
    }

    fn takes_key_prefix(&self) -> bool {
        false
    }

    /// The file named by the field's path (`db.password` → `db.password`), in the
    /// directory of the argument (`secret_file@/run/secrets`), else the source's own.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        Ok(match field.argument.filter(|a| !a.is_empty()) {
            Some(dir) => request.with_key(format!("{}/{}", dir.trim_end_matches('/'), field.path)),
            None => request.with_key(field.path.to_owned()),
        })
    }

    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        let file = self.file(request).ok()?;
        Some(("file", file.display().to_string()))
    }
}

/// `X_FILE` for `env` fields: the file at `path`, which the variable `file_var`
/// (`<variable>_FILE`) names while the variable itself is not set.
pub(crate) fn env_file(path: &str, file_var: &str) -> Result<RawValue, SourceError> {
    // The variable names the file on purpose: a missing file is a deployment mistake,
    // not an absent value.
    read_secret_file(Path::new(path), file_var).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            SourceError::new(ErrorKind::Config)
                .with_message(e.message().unwrap_or_default().to_owned())
        } else {
            e
        }
    })
}

/// Compile-time rules of `fetch_from = "secret_file"` (and of `secret_file = "..."`, which
/// the derive turns into it; see `fetchers/mod.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! __component_model_rules_secret_file {
    ($entry:tt has [key $($rest:ident)*]) => {};
    ($entry:tt has $names:tt) => {
        ::core::compile_error!("the `secret_file` source needs the file's path: write `secret_file = \"/run/secrets/name\"`");
    };
    ($entry:tt param key) => {};
    ($entry:tt param $other:ident) => {
        $crate::fetchers::__unknown_backend_key! { $other "secret_file" [] }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, content: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cm-sf-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn trims_exactly_one_trailing_newline() {
        for (content, expected) in [
            (&b"pw\n"[..], "pw"),
            (b"pw\r\n", "pw"),
            (b"pw\n\n", "pw\n"),
            (b"pw", "pw"),
            (b" pw \n", " pw "),
        ] {
            let path = temp("trim", content);
            assert_eq!(
                read_secret_file(&path, "test").unwrap(),
                RawValue::Text(expected.to_owned())
            );
        }
    }

    #[test]
    fn refuses_a_file_over_the_limit_and_names_missing_files() {
        let path = temp("big", &vec![b'x'; MAX_SECRET_FILE as usize + 1]);
        let err = read_secret_file(&path, "API_KEY_FILE").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(err.to_string().contains("API_KEY_FILE"), "{err}");
        let err =
            read_secret_file(Path::new("/nonexistent/cm/secret"), "API_KEY_FILE").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("/nonexistent/cm/secret"), "{err}");
    }
}
