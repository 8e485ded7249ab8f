//! `local_cache`: last-known-good values on disk, for `fallback_to = "local_cache"`.
//!
//! When a field's own source answers, its value is stored (one JSON file per struct, written
//! atomically: temporary file, fsync, rename; mode 0600); when that source later fails, the
//! stored value answers, with a warning naming the field and the value's age. Secret
//! values are never stored (the engine withholds them, with a warning). The directory is
//! the one given to [`Sources::with_local_cache`](crate::Sources::with_local_cache), else
//! `COMPONENT_MODEL_CACHE_DIR`, else the platform's cache directory
//! (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS,
//! `%LOCALAPPDATA%` on Windows) with `component_model` appended.
//!
//! Preflight: whether a value is stored for the field and its request
//! ([`Access::Readable`], with its age) or not ([`Access::Missing`]: nothing to fall back
//! to); the struct's file is parsed with every stored value skipped, never decoded. A file
//! that is corrupt or over its size limit is [`Access::Invalid`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, SourceError};
use crate::fetchers::Builtin;
use crate::source::{
    Access, FetchContext, FetchRequest, Preflighting, Probe, RawValue, Remembering, Source,
    StoredValue,
};

/// The variable naming the directory when none is given in code.
pub const DIR_VARIABLE: &str = "COMPONENT_MODEL_CACHE_DIR";

/// An unchanged value is written again (its age reset) after this many seconds.
const REWRITE_AFTER_S: u64 = 60;

/// A stored file larger than this is refused (a cache of configuration values).
const MAX_FILE: u64 = 16 * 1024 * 1024;

pub(crate) const BUILTIN: Builtin = Builtin {
    names: &["local_cache"],
    hint: "`Sources::from_env()` registers it (directory from COMPONENT_MODEL_CACHE_DIR, else the platform cache directory); or `Sources::with_local_cache(dir)`",
    from_env: |env| {
        LocalCacheSource::dir_from_env(env)
            .map(|dir| {
                (
                    "local_cache",
                    std::sync::Arc::new(LocalCacheSource::new(dir)) as _,
                )
            })
            .into_iter()
            .collect()
    },
};

/// Last-known-good values on disk (see the [module](self)); register it as `local_cache`
/// and name it in `fallback_to`.
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct App {
///     #[component(fetch_from = "env", fallback_to = "local_cache")]
///     port: u16,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("cm-doc-{}", std::process::id()));
/// let up = Sources::new()
///     .with_env(EnvSource::from_map([("PORT", "8080")]))
///     .with_local_cache(&dir);
/// assert_eq!(App::fetch_all_components_with(&up).await.unwrap().port, 8080); // stored
///
/// let down = Sources::new()
///     .with_env(EnvSource::from_map([("HOST", "x")])) // PORT is gone
///     .with_local_cache(&dir);
/// assert_eq!(App::fetch_all_components_with(&down).await.unwrap().port, 8080); // from disk
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct LocalCacheSource {
    dir: Arc<PathBuf>,
    /// Writers of this source take turns (a file is read, merged and replaced).
    writing: Arc<Mutex<()>>,
}

impl std::fmt::Debug for LocalCacheSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCacheSource")
            .field("dir", &self.dir)
            .finish()
    }
}

/// One struct's file.
#[derive(Serialize, Deserialize, Default)]
struct Stored {
    version: u32,
    /// By field path (`port`, `replica.port`).
    fields: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The request the value answered (`consul key app/port`): a field whose key changed
    /// does not get the old key's value.
    request: String,
    /// Seconds since the Unix epoch.
    stored_at: u64,
    value: StoredValue,
}

/// One struct's file as a preflight reads it: each entry's request and age, its value
/// skipped (never decoded).
#[derive(Deserialize, Default)]
struct Index {
    fields: BTreeMap<String, IndexEntry>,
}

#[derive(Deserialize)]
struct IndexEntry {
    request: String,
    stored_at: u64,
}

/// What identifies a request in a stored entry: its key as the source names it.
fn identity(request: &FetchRequest) -> String {
    let (label, key) = request.native_key().unwrap_or(("key", String::new()));
    match request.bound_key() {
        Some(bound) => format!("{label} {key} [{bound}]"),
        None => format!("{label} {key}"),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LocalCacheSource {
    /// Stores values under `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalCacheSource {
            dir: Arc::new(dir.into()),
            writing: Arc::default(),
        }
    }

    /// The directory from `COMPONENT_MODEL_CACHE_DIR` in `env`, else the platform's cache
    /// directory with `component_model` appended; `None` when neither is known.
    pub fn dir_from_env(env: &crate::EnvSource) -> Option<PathBuf> {
        if let Some(dir) = env.get(DIR_VARIABLE).filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir));
        }
        let home = || env.get("HOME").filter(|h| !h.is_empty()).map(PathBuf::from);
        let base = if cfg!(target_os = "windows") {
            env.get("LOCALAPPDATA").map(PathBuf::from)
        } else if cfg!(target_os = "macos") {
            home().map(|h| h.join("Library/Caches"))
        } else {
            env.get("XDG_CACHE_HOME")
                .filter(|d| d.starts_with('/'))
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".cache")))
        };
        base.map(|b| b.join("component_model"))
    }

    /// The directory values are stored under.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one struct.
    pub fn file_for(&self, owner: &str) -> PathBuf {
        let name: String = owner
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        let name = if name.is_empty() { "_" } else { &name };
        self.dir.join(format!("{name}.json"))
    }

    fn read(path: &Path) -> Result<Option<Stored>, SourceError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            SourceError::new(ErrorKind::Config)
                .with_message(format!("the local cache file {} {e}", path.display()))
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unreadable(&format_args!("cannot be read: {e}"))),
        };
        let len = file
            .metadata()
            .map_err(|e| unreadable(&format_args!("cannot be read: {e}")))?
            .len();
        if len > MAX_FILE {
            return Err(unreadable(&format_args!(
                "is {len} bytes, over the {MAX_FILE}-byte limit"
            )));
        }
        let stored: Stored = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| unreadable(&format_args!("is corrupt: {e}")))?;
        warn_if_readable_by_others(path);
        Ok(Some(stored))
    }

    /// What a preflight finds stored for `requests` of one struct (see the module docs).
    fn probe(&self, owner: &str, requests: &[&FetchRequest]) -> Vec<Probe> {
        let path = self.file_for(owner);
        let shown = path.display();
        let index = (|| -> Result<Option<Index>, String> {
            let file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("the local cache file {shown} cannot be read: {e}")),
            };
            let len = file
                .metadata()
                .map_err(|e| format!("the local cache file {shown} cannot be read: {e}"))?
                .len();
            if len > MAX_FILE {
                return Err(format!(
                    "the local cache file {shown} is {len} bytes, over the {MAX_FILE}-byte limit"
                ));
            }
            serde_json::from_reader(std::io::BufReader::new(file))
                .map(Some)
                .map_err(|e| format!("the local cache file {shown} is corrupt: {e}"))
        })();
        let now = now();
        requests
            .iter()
            .map(|request| match &index {
                Err(why) => Probe::new(Access::Invalid).with_detail(why.clone()),
                Ok(None) => Probe::missing().with_detail(format!("nothing stored yet ({shown})")),
                Ok(Some(index)) => match index.fields.get(request.field()) {
                    Some(e) if e.request == identity(request) => {
                        let age = Duration::from_secs(now.saturating_sub(e.stored_at));
                        Probe::readable().with_detail(format!(
                            "a value stored {} ago",
                            crate::error::humanize(age)
                        ))
                    }
                    Some(_) => Probe::missing()
                        .with_detail("the value stored for this field answered another request"),
                    None => Probe::missing().with_detail("no value stored for this field"),
                },
            })
            .collect()
    }

    /// Answers from one struct's file.
    fn lookup(
        &self,
        cx: &FetchContext,
        owner: &str,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let path = self.file_for(owner);
        let mut stored = match Self::read(&path) {
            Ok(Some(s)) => s,
            Ok(None) => {
                return requests
                    .iter()
                    .map(|_| Err(SourceError::not_found()))
                    .collect();
            }
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let now = now();
        requests
            .iter()
            .map(|request| {
                let field = request.field();
                let entry = match stored.fields.get(field) {
                    Some(e) if e.request == identity(request) => e,
                    _ => return Err(SourceError::not_found()),
                };
                let age = Duration::from_secs(now.saturating_sub(entry.stored_at));
                tracing::warn!(
                    field = format_args!("{owner}.{field}"),
                    age_s = age.as_secs(),
                    file = %path.display(),
                    "using the last-known-good value stored on disk"
                );
                cx.note(request, |n| n.stored = Some(age));
                // Several requests may name one field only if they are the same request.
                let value = stored
                    .fields
                    .get_mut(field)
                    .map(|e| std::mem::replace(&mut e.value, StoredValue::Text(String::new())));
                match value {
                    Some(v) => Ok(RawValue::from(v)),
                    None => Err(SourceError::not_found()),
                }
            })
            .collect()
    }

    /// Merges `answers` into the files of their structs.
    fn store(&self, answers: Vec<(FetchRequest, RawValue)>) {
        let _turn = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let mut by_owner: BTreeMap<String, Vec<(FetchRequest, RawValue)>> = BTreeMap::new();
        for (request, value) in answers {
            by_owner
                .entry(request.owner().to_owned())
                .or_default()
                .push((request, value));
        }
        let stored_at = now();
        for (owner, answers) in by_owner {
            let path = self.file_for(&owner);
            let mut stored = match Self::read(&path) {
                Ok(s) => s.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %e, "replacing the unreadable local cache file");
                    Stored::default()
                }
            };
            stored.version = 1;
            // Values confirmed less than a minute ago are not written again (a cached
            // field would otherwise rewrite its file on every fetch).
            let unchanged = answers.iter().all(|(request, value)| {
                stored.fields.get(request.field()).is_some_and(|e| {
                    e.request == identity(request)
                        && stored_at.saturating_sub(e.stored_at) < REWRITE_AFTER_S
                        && RawValue::from(e.value.clone()) == *value
                })
            });
            if unchanged {
                continue;
            }
            for (request, value) in answers {
                stored.fields.insert(
                    request.field().to_owned(),
                    Entry {
                        request: identity(&request),
                        stored_at,
                        value: value.into(),
                    },
                );
            }
            if let Err(e) = write_atomically(&path, &stored) {
                tracing::warn!(
                    file = %path.display(),
                    error = %e,
                    "could not store last-known-good values"
                );
            }
        }
    }
}

/// Writes `stored` to a temporary file beside `path` (mode 0600), syncs it, renames it
/// over `path` and syncs the directory.
fn write_atomically(path: &Path, stored: &Stored) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        let mut file = options.open(&tmp)?;
        let bytes = serde_json::to_vec(stored).map_err(std::io::Error::other)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            file = %path.display(),
            mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
            "the local cache file is readable by other users; expected 0600"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[async_trait::async_trait]
impl Source for LocalCacheSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        crate::resilience::one(self.fetch_many(&[request]).await)
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }

    /// The fetch's context says where the report notes a value's age on disk.
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        let mut owners: Vec<&str> = requests.iter().map(|r| r.owner()).collect();
        owners.sort_unstable();
        owners.dedup();
        let mut answers: Vec<Option<Result<RawValue, SourceError>>> = vec![None; requests.len()];
        for owner in owners {
            let (at, mine): (Vec<usize>, Vec<&FetchRequest>) = requests
                .iter()
                .enumerate()
                .filter(|(_, r)| r.owner() == owner)
                .map(|(i, r)| (i, *r))
                .unzip();
            for (i, answer) in at.into_iter().zip(self.lookup(cx, owner, &mine)) {
                answers[i] = Some(answer);
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(SourceError::not_found())))
            .collect()
    }

    fn location(&self) -> Option<String> {
        Some(self.dir.display().to_string())
    }

    /// A value stored for each request or not, the values never decoded (see the module
    /// docs); on a blocking thread.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            let this = self.clone();
            let n = requests.len();
            crate::task::blocking(move || {
                let mut owners: Vec<&str> = requests.iter().map(|r| r.owner()).collect();
                owners.sort_unstable();
                owners.dedup();
                let mut probes: Vec<Option<Probe>> = vec![None; requests.len()];
                for owner in owners {
                    let (at, mine): (Vec<usize>, Vec<&FetchRequest>) = requests
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.owner() == owner)
                        .unzip();
                    for (i, probe) in at.into_iter().zip(this.probe(owner, &mine)) {
                        probes[i] = Some(probe);
                    }
                }
                probes
                    .into_iter()
                    .map(|p| p.unwrap_or_else(|| Probe::unchecked("not checked")))
                    .collect()
            })
            .await
            .unwrap_or_else(|| vec![Probe::unchecked("the check was interrupted"); n])
        })
    }

    fn keeps_answers(&self) -> bool {
        true
    }

    fn remember(&self, answers: Vec<(FetchRequest, RawValue)>) -> Option<Remembering> {
        let this = self.clone();
        Some(Box::pin(async move {
            crate::task::blocking(move || this.store(answers)).await;
        }))
    }
}
