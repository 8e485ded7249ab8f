//! [`FileSource`]: reading, parsing and watching configuration files.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use notify::Watcher;

use crate::convert::subtree::{self, Subtree};
use crate::error::{ErrorKind, SourceError};
use crate::source::{Access, Change, Changes, FetchRequest, Preflighting, Probe, RawValue, Source};

/// The largest file read by default.
pub const DEFAULT_MAX_FILE: u64 = 16 * 1024 * 1024;

/// Configuration files on disk (see the [module](super)).
///
/// A fetch reads each distinct file once, however many fields read it. A small regular
/// file (up to 64 KiB) is read on the calling thread; any other file (larger, a FIFO, a
/// device) on a blocking thread, so it cannot hold up the runtime. The document of a small
/// file that had not changed for two seconds when it was read is kept, with the file's
/// device, inode, size and modification and status-change times; a later fetch that finds
/// them unchanged (one `stat`) answers with that document instead of reading and parsing
/// the file again, and any write, rename or replacement of the file changes them. Clones
/// of a source share what it keeps; a new source starts with nothing.
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
    /// Documents parsed before, shared by the clones of this source.
    parsed: Arc<Parsed>,
}

/// The documents of small regular files read before, each with the file's [`Stamp`] when
/// it was read: a file whose stamp has not changed since is not read nor parsed again.
#[derive(Default)]
struct Parsed(std::sync::Mutex<HashMap<PathBuf, (Stamp, RawValue)>>);

/// The most documents [`Parsed`] keeps (it forgets them all when full).
const PARSED_MAX: usize = 64;

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The number of documents only: never their content.
        let n = self.0.lock().map_or(0, |m| m.len());
        write!(f, "Parsed(<{n} documents>)")
    }
}

impl Parsed {
    fn get(&self, path: &Path, stamp: &Stamp) -> Option<RawValue> {
        let map = self.0.lock().ok()?;
        let (at, doc) = map.get(path)?;
        (at == stamp).then(|| doc.clone())
    }

    fn put(&self, path: &Path, stamp: Stamp, doc: &RawValue) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= PARSED_MAX && !map.contains_key(path) {
                map.clear();
            }
            map.insert(path.to_path_buf(), (stamp, doc.clone()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }
}

/// What says a file is unchanged: the same file (device, inode), size and modification
/// and status-change times. A stamp is only trusted (see [`Stamp::settled`]) when its
/// status-change time was well before the read, so a later write, which sets that time
/// to a later clock tick, always changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How long before a read a file's last change must be for its document to be kept:
/// far more than a clock tick (a write in the same tick as the one before it leaves the
/// times as they were).
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

impl Stamp {
    #[cfg(unix)]
    fn of(meta: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// No stamp (and so no document kept) where the status-change time is not known.
    #[cfg(not(unix))]
    fn of(_meta: &std::fs::Metadata) -> Option<Stamp> {
        None
    }

    /// Whether a document of `read` bytes, read at `now` from the file this stamp was
    /// taken of, may be kept: the file had settled and held the bytes its size says (not
    /// a `/proc` file of size 0 nor a `/sys` one of size 4096).
    fn keeps(&self, read: u64, now: std::time::SystemTime) -> bool {
        read > 0 && read == self.len && self.settled(now)
    }

    /// Whether the file's last change was at least [`SETTLED`] before `now`.
    fn settled(&self, now: std::time::SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let last = self.mtime.max(self.ctime);
        let Ok(secs) = u64::try_from(last.0) else {
            return false;
        };
        let last = std::time::Duration::new(secs, u32::try_from(last.1).unwrap_or(0));
        now.checked_sub(last).is_some_and(|age| age >= SETTLED)
    }
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

    /// Reads and parses one file (on whatever thread calls it: see [`FileSource::load_inline`]).
    fn load(&self, path: &Path) -> Result<RawValue, SourceError> {
        let limit = self.limit();
        let file = std::fs::File::open(path).map_err(|e| open_error(path, &e))?;
        let bytes = read_bounded(path, file, limit, 0)?;
        if bytes.len() as u64 > limit {
            return Err(too_large(path, limit));
        }
        parse(path, bytes)
    }

    /// Reads and parses one file on the calling thread when that cannot hold it up: a
    /// regular file of at most [`INLINE_MAX`] bytes (a `stat` first, so a FIFO, a device
    /// or a large file is left to [`FileSource::load`] on a blocking thread); `None` when
    /// the file must be read there. A missing file is answered here.
    ///
    /// The document of a file read here is kept with the file's [`Stamp`] when the file
    /// had settled (its last change at least [`SETTLED`] before) and its size was what it
    /// held (not a `/proc` or `/sys` file, whose size says nothing of its content); while
    /// the `stat` shows the same stamp, that document is the answer, without reading or
    /// parsing the file again.
    fn load_inline(&self, path: &Path) -> Option<Result<RawValue, SourceError>> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(Err(open_error(path, &e)));
            }
            Err(_) => return None,
        };
        if !meta.is_file() || meta.len() > INLINE_MAX {
            return None;
        }
        let limit = self.limit();
        let stamp = Stamp::of(&meta);
        if meta.len() <= limit
            && let Some(doc) = stamp.as_ref().and_then(|s| self.parsed.get(path, s))
        {
            return Some(Ok(doc));
        }
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) => return Some(Err(open_error(path, &e))),
        };
        let bytes = match read_bounded(path, file, limit.min(INLINE_MAX), meta.len()) {
            Ok(bytes) => bytes,
            Err(e) => return Some(Err(e)),
        };
        let len = bytes.len() as u64;
        if len > limit {
            return Some(Err(too_large(path, limit)));
        }
        if len > INLINE_MAX {
            // It grew since the `stat`: read it again where a large read belongs.
            return None;
        }
        let doc = parse(path, bytes);
        if let (Ok(doc), Some(stamp)) = (&doc, stamp)
            && stamp.keeps(len, std::time::SystemTime::now())
        {
            self.parsed.put(path, stamp, doc);
        }
        Some(doc)
    }

    fn limit(&self) -> u64 {
        self.max_size.unwrap_or(DEFAULT_MAX_FILE)
    }

    fn path_of(request: &FetchRequest) -> Result<&str, SourceError> {
        request.path().ok_or_else(|| {
            SourceError::new(ErrorKind::Config).with_message("the field names no `path = \"...\"`")
        })
    }
}

impl FileSource {
    /// What a preflight finds of `request`: the file's metadata, that it opens, and for a
    /// request that is not secret and points into the document (`pointer`, `field`,
    /// `prefix`), whether that is there (the file parsed in memory, nothing shown). A
    /// secret request is checked by the file's metadata alone: its document is not parsed.
    fn probe(&self, request: &FetchRequest) -> Probe {
        let path = match Self::path_of(request) {
            Ok(text) => self.resolve(text),
            Err(e) => return Probe::from_error(&e),
        };
        let shown = path.display();
        let failed = |e: &std::io::Error| {
            let access = match e.kind() {
                std::io::ErrorKind::NotFound => Access::Missing,
                std::io::ErrorKind::PermissionDenied => Access::Denied,
                _ => Access::Invalid,
            };
            Probe::new(access).with_detail(format!("{shown}: {e}"))
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Probe::missing().with_detail(format!("no file {shown}"));
            }
            Err(e) => return failed(&e),
        };
        if meta.is_dir() {
            return Probe::new(Access::Invalid)
                .with_detail(format!("{shown} is a directory, not a file"));
        }
        if !meta.is_file() {
            return Probe::unchecked(format!(
                "{shown} is not a regular file (a FIFO or a device): not opened"
            ));
        }
        if meta.len() > self.limit() {
            return Probe::from_error(&too_large(&path, self.limit()));
        }
        if let Err(e) = std::fs::File::open(&path) {
            return failed(&e);
        }
        let size = crate::error::bytes(meta.len());
        let spec = request.spec();
        let (select, pointer) = match request.pointer() {
            Some(p) => (None, Some(p)),
            None => (spec.and_then(|s| s.select), spec.and_then(|s| s.pointer)),
        };
        let tree = Subtree::of(request);
        if select.is_none() && pointer.is_none() && tree.is_none() {
            return Probe::readable().with_detail(format!("{shown}: {size}, opens for reading"));
        }
        if request.is_sensitive() {
            return Probe::readable().with_detail(format!(
                "{shown}: {size}, opens for reading (a secret field: the document was not parsed, the place in it not checked)"
            ));
        }
        let document = match self.load_inline(&path).unwrap_or_else(|| self.load(&path)) {
            Ok(document) => document,
            Err(e) => return Probe::from_error(&e),
        };
        if let Some(tree) = tree {
            return match tree.and_then(|tree| table_of(tree, &document)) {
                Ok(RawValue::Json(serde_json::Value::Object(members))) => Probe::readable()
                    .with_detail(format!(
                        "{shown}: the table holds {} member{}",
                        members.len(),
                        if members.len() == 1 { "" } else { "s" }
                    )),
                Ok(_) => Probe::readable(),
                Err(e) => Probe::from_error(&e),
            };
        }
        let doc = match &document {
            RawValue::Json(v) => v,
            _ => {
                return Probe::new(Access::Invalid).with_detail(format!(
                    "{shown} is text, not a `.toml`, `.json` or `.yaml` document to look up a place in"
                ));
            }
        };
        let at = select.map_or(Some(doc), |name| doc.get(name));
        let found = match pointer {
            Some(p) => at.and_then(|v| v.pointer(p)),
            None => at,
        };
        let place = match (select, pointer) {
            (Some(f), Some(p)) => format!("{f}{p}"),
            (Some(f), None) => f.to_owned(),
            (None, p) => p.unwrap_or_default().to_owned(),
        };
        match found {
            None | Some(serde_json::Value::Null) => {
                Probe::missing().with_detail(format!("nothing at `{place}` in {shown}"))
            }
            Some(_) => Probe::readable().with_detail(format!("`{place}` is in {shown}")),
        }
    }
}

/// The largest file read on the runtime's own thread (see [`FileSource::load_inline`]);
/// a larger one is read on a blocking thread.
const INLINE_MAX: u64 = 64 * 1024;

fn open_error(path: &Path, e: &std::io::Error) -> SourceError {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            SourceError::not_found().with_message(format!("no file {}", path.display()))
        }
        _ => SourceError::new(ErrorKind::Unavailable)
            .with_message(format!("cannot read {}: {e}", path.display())),
    }
}

fn too_large(path: &Path, limit: u64) -> SourceError {
    SourceError::new(ErrorKind::TooLarge).with_message(format!(
        "{} is larger than {}; raise the limit with `FileSource::with_max_size`",
        path.display(),
        crate::error::bytes(limit)
    ))
}

/// At most `cap + 1` bytes of `file`, so a caller sees a file larger than `cap` without
/// reading all of it; `expected` (the size a `stat` gave, or 0) sizes the buffer, so a
/// small file takes one read and the read that finds its end.
fn read_bounded(
    path: &Path,
    file: std::fs::File,
    cap: u64,
    expected: u64,
) -> Result<Vec<u8>, SourceError> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected.min(cap) + 1).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| {
        SourceError::new(ErrorKind::Unavailable)
            .with_message(format!("cannot read {}: {e}", path.display()))
    })?;
    Ok(bytes)
}

/// A file's content as a value, by the file's extension.
fn parse(path: &Path, bytes: Vec<u8>) -> Result<RawValue, SourceError> {
    let shown = path.display();
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
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                SourceError::new(ErrorKind::Decode).with_message(format!("{shown} is not UTF-8"))
            })?;
            RawValue::Json(
                toml::from_str::<serde_json::Value>(text)
                    .map_err(|e| invalid("TOML", &toml_error(&e, text)))?,
            )
        }
        Format::Yaml => RawValue::Json(
            serde_norway::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| invalid("YAML", &e))?,
        ),
    })
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

/// The table a subtree read (`prefix = "features"`) names in a file's document: its
/// members, bounded by `max_keys` and the field's `max_size` (see the module docs).
fn table_of(mut tree: Subtree<'_>, document: &RawValue) -> Result<RawValue, SourceError> {
    let RawValue::Json(document) = document else {
        return Err(SourceError::new(ErrorKind::Decode).with_message(
            "`prefix` reads a table of a `.toml`, `.json` or `.yaml` file; this file is text",
        ));
    };
    subtree::of_document(&mut tree, document)?;
    Ok(tree.finish())
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

/// The file watch's later events as values: the watched requests read again at once
/// (each file once), and each request whose value changed handed on as a
/// [`Change::Value`] with a digest of the value as its revision; a request that cannot
/// be read is named in a [`Change::Changed`] (the fetch then reports why). An event that
/// changed nothing (a touch, a rewrite with the same content) hands on nothing. The first
/// item (`All`, the watch in place) passes as it is.
fn carrying_values(changes: Changes, source: FileSource, requests: Vec<FetchRequest>) -> Changes {
    let last: Vec<Option<RawValue>> = vec![None; requests.len()];
    futures::stream::unfold(
        (changes, source, requests, last, true),
        |(mut changes, source, requests, mut last, first)| async move {
            let item = changes.next().await?;
            let out: Vec<Result<Change, SourceError>> = match item {
                Ok(Change::All) if !first => {
                    let refs: Vec<&FetchRequest> = requests.iter().collect();
                    let answers = source.fetch_many(&refs).await;
                    let mut out = Vec::new();
                    let mut failed = Vec::new();
                    for (index, answer) in answers.into_iter().enumerate() {
                        match answer {
                            Ok(value) if last[index].as_ref() != Some(&value) => {
                                last[index] = Some(value.clone());
                                let revision = Some(crate::Revision::Digest(digest(&value)));
                                out.push(Ok(Change::Value {
                                    index,
                                    value,
                                    revision,
                                }));
                            }
                            Ok(_) => {}
                            Err(_) => {
                                last[index] = None;
                                failed.push(index);
                            }
                        }
                    }
                    if !failed.is_empty() {
                        out.push(Ok(Change::Changed(failed)));
                    }
                    out
                }
                other => vec![other],
            };
            Some((
                futures::stream::iter(out),
                (changes, source, requests, last, false),
            ))
        },
    )
    .flatten()
    .boxed()
}

/// A digest of a value, to tell versions apart (not a cryptographic one).
fn digest(value: &RawValue) -> Vec<u8> {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    match value {
        RawValue::Text(t) => t.hash(&mut h),
        RawValue::Bytes(b) => b.hash(&mut h),
        RawValue::Json(v) => v.to_string().hash(&mut h),
    }
    h.finish().to_be_bytes().to_vec()
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        crate::resilience::one(self.fetch_many(&[request]).await)
    }

    /// Each distinct file once (however many fields read it), parsed once; a small
    /// regular file on the calling thread, any other file on a blocking thread (one hop for
    /// all of them, so a slow disk or a FIFO does not hold up the runtime). The answers of
    /// one file are its one document: moved into the last request reading it, cloned for
    /// the others.
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        // Which distinct file each request reads: by its `path` text first (no allocation
        // for the fields repeating it), then by the resolved path.
        let mut texts: Vec<(&str, usize)> = Vec::new();
        let mut files: Vec<PathBuf> = Vec::new();
        let reads: Vec<Result<usize, SourceError>> = requests
            .iter()
            .map(|r| {
                let text = Self::path_of(r)?;
                if let Some(&(_, i)) = texts.iter().find(|(t, _)| *t == text) {
                    return Ok(i);
                }
                let path = self.resolve(text);
                let i = files.iter().position(|f| *f == path).unwrap_or_else(|| {
                    files.push(path);
                    files.len() - 1
                });
                texts.push((text, i));
                Ok(i)
            })
            .collect();
        let mut loaded: Vec<Option<Result<RawValue, SourceError>>> =
            files.iter().map(|f| self.load_inline(f)).collect();
        let rest: Vec<(usize, PathBuf)> = loaded
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_none())
            .map(|(i, _)| (i, files[i].clone()))
            .collect();
        if !rest.is_empty() {
            let this = self.clone();
            let read = crate::task::blocking(move || {
                rest.into_iter()
                    .map(|(i, path)| (i, this.load(&path)))
                    .collect::<Vec<_>>()
            })
            .await;
            for (i, answer) in read.into_iter().flatten() {
                loaded[i] = Some(answer);
            }
        }
        // The last request of each file takes its answer; earlier ones get a clone.
        let mut remaining = vec![0usize; files.len()];
        for &i in reads.iter().flatten() {
            remaining[i] += 1;
        }
        reads
            .into_iter()
            .map(|read| {
                let i = read?;
                remaining[i] -= 1;
                let answer = if remaining[i] == 0 {
                    loaded[i].take()
                } else {
                    loaded[i].clone()
                };
                answer.unwrap_or_else(|| {
                    Err(SourceError::new(ErrorKind::Unavailable)
                        .with_message("reading the file was interrupted"))
                })
            })
            .zip(requests)
            .map(|(answer, request)| match Subtree::of(request) {
                None => answer,
                Some(tree) => table_of(tree?, &answer?),
            })
            .collect()
    }

    /// The document at the argument (`file@config/default.toml`), the field at the JSON
    /// pointer of its path (`/db/port`); a missing file is absent.
    fn convention(
        &self,
        request: FetchRequest,
        field: &crate::FieldPath<'_>,
    ) -> Result<FetchRequest, String> {
        let path = field
            .argument
            .filter(|a| !a.is_empty())
            .ok_or_else(|| "a file source needs the file: `file@config/default.toml`".to_owned())?;
        Ok(request
            .with_path(path.to_owned())
            .with_pointer(field.pointer()))
    }

    /// The file and the place in it: `/etc/app/app.toml#/server/port` (the path is
    /// absolute already, so no location is added).
    fn native_key(&self, request: &FetchRequest) -> Option<(&'static str, String)> {
        let path = self.resolve(request.path()?).display().to_string();
        if let Some(prefix) = request.param(subtree::PREFIX) {
            return Some(("path", format!("{path}, prefix {prefix}")));
        }
        let spec = request.spec();
        Some((
            "path",
            match (
                spec.and_then(|s| s.select),
                request.pointer().or(spec.and_then(|s| s.pointer)),
            ) {
                (Some(f), Some(p)) => format!("{path}#{f}{p}"),
                (Some(f), None) => format!("{path}#{f}"),
                (None, Some(p)) => format!("{path}#{p}"),
                (None, None) => path,
            },
        ))
    }

    /// Each file's metadata and that it opens; a place in the document of a request that
    /// is not secret (see the [module](super) docs); on a blocking thread.
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            let this = self.clone();
            let n = requests.len();
            crate::task::blocking(move || requests.iter().map(|r| this.probe(r)).collect())
                .await
                .unwrap_or_else(|| vec![Probe::unchecked("the check was interrupted"); n])
        })
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
        let changes = watch_files(files)?;
        Ok(carrying_values(changes, self.clone(), requests))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
