//! Helpers shared by the workspace's integration tests and examples.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub mod tls;

/// Whether service-backed tests must fail instead of skipping (`CM_REQUIRE_SERVICES=1`,
/// set by `.ci/run`).
pub fn required() -> bool {
    std::env::var("CM_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Reports that `what` is unreachable: a failure under `CM_REQUIRE_SERVICES=1`, else a
/// visible `SKIPPED` line on stderr (the caller then returns).
pub fn skip(what: &str, e: impl std::fmt::Display) {
    assert!(
        !required(),
        "{what} is required (CM_REQUIRE_SERVICES=1) but unreachable: {e}"
    );
    // Straight to stderr: libtest captures `eprintln!` of passing tests, and a skip must show.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: {what} unreachable ({e}); start it with scripts/services.sh",
        std::thread::current().name().unwrap_or("test")
    );
}

/// A name no other test (of this or a parallel run) uses: `prefix_<pid>_<n>_<nanos>`.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `tracing` writer that keeps everything logged, so tests can search it (e.g. for a
/// secret canary that must never appear).
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber that records every span and event at TRACE level into `logs`.
pub fn capturing_subscriber(logs: &CapturedLogs) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish()
}

/// Makes a [`capturing_subscriber`] the current thread's default until the guard drops.
///
/// First installs a global `NoSubscriber`: with a single registered dispatcher, tracing-core
/// computes a callsite's interest from the default of whichever thread registers the
/// callsite first, so a span first reached by another test's thread (no subscriber: "never")
/// would stay disabled for this one. With two or more dispatchers it asks all of them.
pub fn capture(logs: &CapturedLogs) -> tracing::subscriber::DefaultGuard {
    static GLOBAL: std::sync::Once = std::sync::Once::new();
    GLOBAL.call_once(|| {
        let _ =
            tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    });
    let guard = tracing::subscriber::set_default(capturing_subscriber(logs));
    tracing::callsite::rebuild_interest_cache();
    guard
}
