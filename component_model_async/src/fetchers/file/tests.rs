//! How [`FileSource::fetch_many`] reads: each file once, small regular files on the
//! calling thread, large files and FIFOs on a blocking thread, within the size bound.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{FileSource, INLINE_MAX};
use crate::error::ErrorKind;
use crate::source::{FetchRequest, RawValue, Source};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("cm-file-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file(path: &str) -> FetchRequest {
    FetchRequest::for_source("file").with_path(path.to_owned())
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

fn json(answer: &Result<RawValue, crate::SourceError>) -> &serde_json::Value {
    match answer {
        Ok(RawValue::Json(v)) => v,
        other => panic!("expected a JSON document, got {other:?}"),
    }
}

/// Every request of a file gets the whole document (conversion selects after), whether
/// the runtime reads inline or on a blocking thread; a request without a path and a
/// missing file are errors of their own, in place.
#[test]
fn every_request_of_a_file_gets_its_one_document() {
    let dir = TempDir::new("doc");
    dir.write("a.toml", "[server]\nport = 8080\nname = \"a\"\n");
    dir.write("b.json", r#"{"burst": 50}"#);
    let source = FileSource::new().with_base_dir(&dir.0);
    let requests = [
        file("a.toml"),
        file("b.json"),
        FetchRequest::for_source("file"),
        file("a.toml"),
        file("missing.toml"),
        file("a.toml"),
    ];
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let a = serde_json::json!({"server": {"port": 8080, "name": "a"}});
    for rt in [
        multi_thread(1),
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap(),
    ] {
        let answers = rt.block_on(source.fetch_many(&refs));
        assert_eq!(answers.len(), 6);
        assert_eq!(json(&answers[0]), &a);
        assert_eq!(json(&answers[1]), &serde_json::json!({"burst": 50}));
        assert_eq!(
            answers[2].as_ref().unwrap_err().kind(),
            ErrorKind::Config,
            "no path"
        );
        assert_eq!(json(&answers[3]), &a);
        let missing = answers[4].as_ref().unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        assert!(missing.to_string().contains("missing.toml"), "{missing}");
        assert_eq!(json(&answers[5]), &a);
    }
}

/// Files larger than [`INLINE_MAX`] are read (on a blocking thread) like small ones; the
/// size bound holds on both paths.
#[test]
fn large_files_are_read_and_the_bound_holds_on_both_paths() {
    let dir = TempDir::new("large");
    let big = "x".repeat(INLINE_MAX as usize + 10);
    dir.write("big.txt", &big);
    dir.write("small.txt", "0123456789abcdef");
    let rt = multi_thread(1);
    let source = FileSource::new().with_base_dir(&dir.0);
    match rt.block_on(source.fetch(&file("big.txt"))) {
        Ok(RawValue::Text(t)) => assert_eq!(t.len(), big.len()),
        other => panic!("expected the large file's text, got {other:?}"),
    }
    let bounded = FileSource::new().with_base_dir(&dir.0).with_max_size(8);
    for name in ["big.txt", "small.txt"] {
        let e = rt.block_on(bounded.fetch(&file(name))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    let exact = FileSource::new().with_base_dir(&dir.0).with_max_size(16);
    assert!(matches!(
        rt.block_on(exact.fetch(&file("small.txt"))),
        Ok(RawValue::Text(t)) if t == "0123456789abcdef"
    ));
}

/// A FIFO is not a regular file: it is read on a blocking thread, so the runtime's only
/// worker stays free while the FIFO waits for its writer.
#[cfg(unix)]
#[test]
fn a_fifo_does_not_hold_up_the_runtime() {
    let dir = TempDir::new("fifo");
    let fifo = dir.0.join("fifo.toml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success(), "mkfifo failed");
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::write(&fifo, "level = 3\n").unwrap();
        })
    };
    let rt = multi_thread(1);
    let source = FileSource::new();
    let path = fifo.display().to_string();
    let reading = rt.spawn(async move { source.fetch(&file(&path)).await });
    // A task on the one worker runs at once only if the FIFO's read is not holding it
    // (timed with std: a held worker drives no tokio timer either).
    std::thread::sleep(Duration::from_millis(100));
    let asked = std::time::Instant::now();
    rt.block_on(rt.spawn(async {})).unwrap();
    let waited = asked.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "the worker was held {waited:?} while the FIFO waited for a writer"
    );
    let answer = rt.block_on(reading).unwrap();
    assert_eq!(json(&answer), &serde_json::json!({"level": 3}));
    writer.join().unwrap();
}

#[test]
fn inline_reads_only_small_regular_files() {
    let dir = TempDir::new("inline");
    dir.write("small.toml", "a = 1\n");
    dir.write("big.txt", &"x".repeat(INLINE_MAX as usize + 1));
    let source = FileSource::new();
    let at = |name: &str| -> PathBuf { dir.0.join(name) };
    assert!(matches!(source.load_inline(&at("small.toml")), Some(Ok(_))));
    assert!(source.load_inline(&at("big.txt")).is_none());
    assert!(
        source.load_inline(Path::new(&dir.0)).is_none(),
        "a directory"
    );
    assert!(matches!(
        source.load_inline(&at("nothing.toml")),
        Some(Err(e)) if e.kind() == ErrorKind::NotFound
    ));
}

/// A settled file's document is kept and answered again while the file's stamp holds; an
/// edit of the same size changes the stamp and is read; a file changed within
/// [`super::SETTLED`] is not kept.
#[cfg(unix)]
#[test]
fn a_settled_file_is_parsed_once_and_an_edit_is_still_seen() {
    let dir = TempDir::new("settled");
    dir.write("a.toml", "level = 1\n");
    dir.write("fresh.toml", "level = 5\n");
    std::thread::sleep(super::SETTLED + Duration::from_millis(200));
    dir.write("fresh.toml", "level = 6\n");
    let rt = multi_thread(1);
    let source = FileSource::new().with_base_dir(&dir.0);
    let level = |name: &str| json(&rt.block_on(source.fetch(&file(name)))).clone();
    assert_eq!(level("a.toml"), serde_json::json!({"level": 1}));
    assert_eq!(source.parsed.len(), 1, "the settled file is kept");
    assert_eq!(level("a.toml"), serde_json::json!({"level": 1}));
    assert_eq!(level("fresh.toml"), serde_json::json!({"level": 6}));
    assert_eq!(
        source.parsed.len(),
        1,
        "a file changed just now is not kept"
    );
    // In place, the same size, right after the read.
    dir.write("a.toml", "level = 2\n");
    assert_eq!(level("a.toml"), serde_json::json!({"level": 2}));
    // Replaced by a rename (a new inode), the same size.
    dir.write(".a.toml.new", "level = 3\n");
    std::fs::rename(dir.0.join(".a.toml.new"), dir.0.join("a.toml")).unwrap();
    assert_eq!(level("a.toml"), serde_json::json!({"level": 3}));
    // A smaller bound is checked before a kept document is used.
    let bounded = source.clone().with_max_size(4);
    let e = rt.block_on(bounded.fetch(&file("a.toml"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    // The source's Debug shows no document.
    assert!(!format!("{source:?}").contains("level"), "{source:?}");
}

/// A file whose size says nothing of its content (`/proc`: 0, `/sys`: 4096) is read
/// every time.
#[cfg(target_os = "linux")]
#[test]
fn proc_and_sys_files_are_never_kept() {
    let rt = multi_thread(1);
    let source = FileSource::new();
    for path in ["/proc/meminfo", "/sys/devices/system/cpu/online"] {
        if std::fs::metadata(path).is_err() {
            continue; // not mounted here
        }
        for _ in 0..2 {
            match rt.block_on(source.fetch(&file(path))) {
                Ok(RawValue::Text(t)) => assert!(!t.is_empty(), "{path}"),
                other => panic!("expected {path} as text, got {other:?}"),
            }
        }
    }
    assert_eq!(source.parsed.len(), 0);
}

#[test]
fn a_document_is_kept_only_from_a_settled_file_read_whole() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let stamp = |len: u64, changed: u64| super::Stamp {
        dev: 1,
        ino: 2,
        len,
        mtime: (changed as i64, 0),
        ctime: (changed as i64, 500),
    };
    assert!(stamp(10, 999_990).keeps(10, now));
    assert!(!stamp(10, 999_990).keeps(4, now), "size and content differ");
    assert!(!stamp(0, 999_990).keeps(0, now), "size 0 (/proc)");
    assert!(!stamp(10, 999_999).keeps(10, now), "changed a second ago");
    assert!(
        !stamp(10, 1_000_005).keeps(10, now),
        "changed in the future"
    );
    assert!(
        !stamp(10, 999_990).keeps(10, SystemTime::UNIX_EPOCH),
        "clock before"
    );
    let mut late_ctime = stamp(10, 999_990);
    late_ctime.ctime = (999_999, 0);
    assert!(
        !late_ctime.keeps(10, now),
        "the later of the two times counts"
    );
}

#[tokio::test]
async fn a_watch_hands_on_a_changed_value_with_a_digest_and_nothing_for_a_touch() {
    use futures::StreamExt;

    use crate::source::Change;

    let dir = TempDir::new("watch-values");
    let file = dir.0.join("app.json");
    std::fs::write(&file, r#"{"port": 8080}"#).unwrap();
    let source = FileSource::new();
    let request = FetchRequest::for_source("file").with_path(file.display().to_string());
    let mut changes = source.watch(vec![request]).unwrap();
    async fn next(
        changes: &mut crate::Changes,
    ) -> Result<Option<Result<Change, crate::SourceError>>, tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(3), changes.next()).await
    }
    assert_eq!(
        next(&mut changes).await.unwrap().unwrap().unwrap(),
        Change::All
    );
    std::fs::write(&file, r#"{"port": 9090}"#).unwrap();
    let mut seen = None;
    while let Ok(Some(Ok(change))) = next(&mut changes).await {
        if let Change::Value {
            index,
            value,
            revision,
        } = change
        {
            assert_eq!(index, 0);
            assert!(matches!(revision, Some(crate::Revision::Digest(ref d)) if d.len() == 8));
            seen = Some(value);
            if seen == Some(RawValue::Json(serde_json::json!({"port": 9090}))) {
                break;
            }
        }
    }
    assert_eq!(
        seen,
        Some(RawValue::Json(serde_json::json!({"port": 9090})))
    );
    // The same content written again: an event, but no value changed.
    std::fs::write(&file, r#"{"port": 9090}"#).unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(700), changes.next()).await;
    assert!(
        quiet.is_err(),
        "a rewrite with the same content was handed on: {quiet:?}"
    );
}
