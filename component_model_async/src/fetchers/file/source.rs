//! [`FileSource`]: reading, parsing and watching configuration files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use notify::Watcher;

use crate::error::{ErrorKind, SourceError};
use crate::source::{Change, Changes, FetchRequest, RawValue, Source};

/// The largest file read by default.
pub const DEFAULT_MAX_FILE: u64 = 16 * 1024 * 1024;

/// Configuration files on disk (see the [module](super)).
///
/// ```
/// use component_model_async::{AsyncAssign, FileSource, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct App {
///     #[component(fetch_from = "file", path = "app.toml", pointer = "/server/port")]
///     port: u16,
///     #[component(fetch_from = "file", path = "app.toml", pointer = "/server/hosts")]
///     hosts: Vec<String>,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("cm-file-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("app.toml"), "[server]\nport = 8080\nhosts = [\"a\", \"b\"]\n").unwrap();
/// let sources = Sources::new().register("file", FileSource::new().with_base_dir(&dir));
/// let app = App::fetch_all_components_with(&sources).await.unwrap();
/// assert_eq!((app.port, app.hosts.len()), (8080, 2));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct FileSource {
    base: Option<Arc<PathBuf>>,
    max_size: Option<u64>,
}

/// How a file's content becomes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
    Yaml,
    Text,
}

impl Format {
    fn of(path: &Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("toml") => Format::Toml,
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ => Format::Text,
        }
    }
}

impl FileSource {
    /// Files relative to the working directory.
    pub fn new() -> Self {
        FileSource::default()
    }

    /// Files relative to `dir` (absolute paths stay as they are).
    #[must_use]
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base = Some(Arc::new(dir.into()));
        self
    }

    /// Refuses files larger than `bytes` (default [`DEFAULT_MAX_FILE`]).
    #[must_use]
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The file a request names.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// Reads and parses one file.
    fn load(&self, path: &Path) -> Result<RawValue, SourceError> {
        let shown = path.display();
        let limit = self.max_size.unwrap_or(DEFAULT_MAX_FILE);
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                SourceError::not_found().with_message(format!("no file {shown}"))
            }
            _ => SourceError::new(ErrorKind::Unavailable)
                .with_message(format!("cannot read {shown}: {e}")),
        })?;
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| {
            SourceError::new(ErrorKind::Unavailable)
                .with_message(format!("cannot read {shown}: {e}"))
        })?;
        if bytes.len() as u64 > limit {
            return Err(SourceError::new(ErrorKind::TooLarge).with_message(format!(
                "{shown} is larger than {}; raise the limit with `FileSource::with_max_size`",
                crate::error::bytes(limit)
            )));
        }
        let text = || {
            String::from_utf8(bytes.clone()).map_err(|_| {
                SourceError::new(ErrorKind::Decode).with_message(format!("{shown} is not UTF-8"))
            })
        };
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            SourceError::new(ErrorKind::Decode)
                .with_message(format!("{shown} is not valid {what}: {e}"))
        };
        Ok(match Format::of(path) {
            Format::Text => match String::from_utf8(bytes) {
                Ok(s) => RawValue::Text(s),
                Err(e) => RawValue::Bytes(e.into_bytes()),
            },
            Format::Json => {
                RawValue::Json(serde_json::from_slice(&bytes).map_err(|e| invalid("JSON", &e))?)
            }
            Format::Toml => {
                let text = text()?;
                RawValue::Json(
                    toml::from_str::<serde_json::Value>(&text)
                        .map_err(|e| invalid("TOML", &toml_error(&e, &text)))?,
                )
            }
            Format::Yaml => RawValue::Json(
                serde_norway::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|e| invalid("YAML", &e))?,
            ),
        })
    }

    fn path_of(request: &FetchRequest) -> Result<&str, SourceError> {
        request.path().ok_or_else(|| {
            SourceError::new(ErrorKind::Config).with_message("the field names no `path = \"...\"`")
        })
    }
}

/// A TOML error without the quoted source line (it could hold a secret): the message and
/// where.
fn toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("{message} at line {line}, column {column}")
        }
        None => message.to_owned(),
    }
}

/// Watches the directories of `files` (see the module docs).
fn watch_files(files: Vec<PathBuf>) -> Result<Changes, SourceError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<()>(1);
    let names: Vec<(PathBuf, std::ffi::OsString)> = files
        .iter()
        .filter_map(|f| Some((f.parent()?.to_path_buf(), f.file_name()?.to_owned())))
        .collect();
    let wanted = names.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            let _ = tx.try_send(());
            return;
        };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        // The watched file itself, or a Kubernetes ConfigMap's `..data` swap.
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == "..data" || wanted.iter().any(|(_, name)| name == n))
        });
        if relevant {
            // A full channel already says "read again".
            let _ = tx.try_send(());
        }
    })
    .map_err(|e| {
        SourceError::new(ErrorKind::Config).with_message(format!("cannot watch files: {e}"))
    })?;
    let mut dirs: Vec<&PathBuf> = names.iter().map(|(d, _)| d).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir.as_path()
        };
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .map_err(|e| {
                SourceError::new(ErrorKind::Unavailable)
                    .with_message(format!("cannot watch {}: {e}", dir.display()))
            })?;
    }
    // In place now: read once more what may have changed before. The watcher lives as
    // long as the stream.
    let changes = futures::stream::unfold((rx, watcher), |(mut rx, watcher)| async move {
        rx.recv().await.map(|()| (Ok(Change::All), (rx, watcher)))
    });
    Ok(futures::stream::iter([Ok(Change::All)])
        .chain(changes)
        .boxed())
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        crate::resilience::one(self.fetch_many(&[request]).await)
    }

    /// Each distinct file once, read and parsed on a blocking thread (a slow disk or a
    /// FIFO does not hold up the runtime).
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let paths: Vec<Result<PathBuf, SourceError>> = requests
            .iter()
            .map(|r| Self::path_of(r).map(|p| self.resolve(p)))
            .collect();
        let this = self.clone();
        let read = crate::task::blocking(move || {
            let mut loaded: HashMap<PathBuf, Result<RawValue, SourceError>> = HashMap::new();
            paths
                .into_iter()
                .map(|path| {
                    let path = path?;
                    loaded
                        .entry(path.clone())
                        .or_insert_with(|| this.load(&path))
                        .clone()
                })
                .collect::<Vec<_>>()
        })
        .await;
        read.unwrap_or_else(|| {
            requests
                .iter()
                .map(|_| {
                    Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message("reading the file was interrupted"))
                })
                .collect()
        })
    }

    /// The file and the place in it: `/etc/app/app.toml#/server/port` (the path is
    /// absolute already, so no location is added).
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        let path = self.resolve(request.path()?).display().to_string();
        let spec = request.spec();
        Some((
            "path",
            match (spec.and_then(|s| s.select), spec.and_then(|s| s.pointer)) {
                (Some(f), Some(p)) => format!("{path}#{f}{p}"),
                (Some(f), None) => format!("{path}#{f}"),
                (None, Some(p)) => format!("{path}#{p}"),
                (None, None) => path,
            },
        ))
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        let mut files: Vec<PathBuf> = requests
            .iter()
            .filter_map(|r| r.path().map(|p| self.resolve(p)))
            .collect();
        files.sort();
        files.dedup();
        if files.is_empty() {
            return Err(SourceError::new(ErrorKind::Config).with_message("no file to watch"));
        }
        watch_files(files)
    }
}
