//! What every hostile case shares: one case at a time, the peak resident memory of a
//! future, a canary secret and the TRACE log it must never reach; the servers a case
//! runs (on the test's runtime or a thread of their own), the runtime of two workers a
//! flood case runs on, and the assertions every case ends with.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_model::{ComponentError, ErrorKind};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use component_model_tests::CapturedLogs;

/// The secret every case hands a client; it must appear in no error, `Debug` or log line.
pub const CANARY: &str = "Canary-5ecret-7f3a9";

/// Everything logged while the guard lives, at TRACE for every target: `tracing` events
/// and spans, and the `log` records of client libraries that log through the `log` crate
/// (rumqttc, tungstenite, rustls, sqlx, redis) — what an application that bridges `log`
/// into `tracing` (tracing-subscriber's default) would write.
pub fn capture(logs: &CapturedLogs) -> Capture {
    static BRIDGE: std::sync::Once = std::sync::Once::new();
    BRIDGE.call_once(|| {
        if log::set_boxed_logger(Box::new(LogBridge)).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    *LOG_SINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(logs.clone());
    Capture {
        _tracing: component_model_tests::capture(logs),
    }
}

/// Captures until dropped (see [`capture`]).
pub struct Capture {
    _tracing: tracing::subscriber::DefaultGuard,
}

impl Drop for Capture {
    fn drop(&mut self) {
        *LOG_SINK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

/// Where `log` records go while a [`Capture`] lives.
static LOG_SINK: std::sync::Mutex<Option<CapturedLogs>> = std::sync::Mutex::new(None);

struct LogBridge;

impl log::Log for LogBridge {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let sink = LOG_SINK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(mut sink) = sink {
            use std::io::Write;
            let _ = writeln!(
                sink,
                "{} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Held by every case: resident memory is measured per process.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A line of `/proc/self/status` in bytes (`VmRSS`: resident now, `VmHWM`: its peak).
pub fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What a case measured: its output, how long it took, how far resident memory peaked
/// above where it started (the peak is reset through `/proc/self/clear_refs`).
pub struct Measured<T> {
    pub output: T,
    pub elapsed: Duration,
    pub peak: usize,
}

/// Runs `f` and measures it (see [`Measured`]).
pub async fn measure<F: Future>(f: F) -> Measured<F::Output> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = status_bytes("VmRSS:");
    let started = Instant::now();
    let output = f.await;
    Measured {
        output,
        elapsed: started.elapsed(),
        peak: status_bytes("VmHWM:").saturating_sub(start),
    }
}

/// One MiB.
pub const MIB: usize = 1024 * 1024;

/// Asserts `text` does not contain the canary, saying where it was found.
#[track_caller]
pub fn assert_no_canary(what: &str, text: &str) {
    if let Some(at) = text.find(CANARY) {
        let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
        panic!("the canary secret appears in {what}: {}", &text[from..to]);
    }
}

/// Accepts connections on 127.0.0.1 and hands each to `serve`; returns the port.
pub async fn tcp_server<F, Fut>(serve: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    port
}

/// What a case may take beyond its deadline: scheduling on a machine that is busy
/// building (a flood that starves the timer overshoots by 0.4 s to 3.5 s).
pub const MARGIN: Duration = Duration::from_millis(300);

/// How long a hostile server goes on at most (its loops are bounded in time as well).
pub const SERVER_FOR: Duration = Duration::from_secs(20);

/// Like [`tcp_server`], but on a thread and runtime of its own, for [`SERVER_FOR`]: a
/// flood then keeps the socket full while the client reads, as a remote server would
/// (in the test's runtime, the server would only write while the client waits). Shared
/// by the websocket, Redis, MQTT and Kafka cases.
pub fn thread_server<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tokio::time::timeout(SERVER_FOR, async {
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(serve(socket));
                }
            })
            .await;
        });
    });
    port
}

/// Writes `chunk` again and again until the client goes away or [`SERVER_FOR`] passed.
pub async fn flood(socket: &mut TcpStream, chunk: &[u8]) {
    let until = tokio::time::Instant::now() + SERVER_FOR;
    while tokio::time::Instant::now() < until {
        if socket.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// The TRACE log of a flood case: every line is scanned for the canary as it is written,
/// and only the lines holding it are kept. (A flood logs a line per frame at TRACE, a
/// hundred megabytes in two seconds: kept whole, as [`CapturedLogs`] does, they would be
/// what the case measures.)
#[derive(Clone, Default)]
pub struct CanaryWatch {
    found: Arc<Mutex<String>>,
    lines: Arc<AtomicUsize>,
}

impl CanaryWatch {
    /// The lines that held the canary (none, when all is well), and how many were seen.
    pub fn found(&self) -> (String, usize) {
        let found = self.found.lock().map(|f| f.clone()).unwrap_or_default();
        (found, self.lines.load(Ordering::Relaxed))
    }
}

impl std::io::Write for CanaryWatch {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lines.fetch_add(1, Ordering::Relaxed);
        let line = String::from_utf8_lossy(buf);
        if line.contains(CANARY)
            && let Ok(mut found) = self.found.lock()
        {
            found.push_str(&line);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CanaryWatch {
    type Writer = CanaryWatch;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Makes everything logged on this thread, at TRACE for every target, go through `watch`
/// until the guard drops (as [`capture`] does for [`CapturedLogs`]).
pub fn watched(watch: &CanaryWatch) -> tracing::subscriber::DefaultGuard {
    // The global dispatcher `capture` installs first (see there), once.
    drop(capture(&CapturedLogs::default()));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(watch.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    guard
}

/// Runs `case` on a runtime of two workers, as a service runs, every thread of which
/// (the test's and the workers') logs through `watch` at TRACE. A flood shows there what
/// a single thread hides: a reader whose socket other threads keep readable. Shared by
/// the websocket, Redis, MQTT and Kafka cases.
pub fn on_workers<F: Future>(watch: &CanaryWatch, case: F) -> F::Output {
    let for_workers = watch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        // The guard lives as long as the worker thread (it ends with the runtime).
        .on_thread_start(move || std::mem::forget(watched(&for_workers)))
        .build()
        .expect("a runtime");
    let _g = watched(watch);
    runtime.block_on(case)
}

/// The CPU time this process spends over the next `span` (user and system, from
/// `/proc/self/stat`, in 10 ms ticks) while the caller only waits: after a field failed,
/// nothing of its read may keep a worker busy.
pub async fn busy_during(span: Duration) -> Duration {
    fn ticks() -> u64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        field(14).unwrap_or(0) + field(15).unwrap_or(0)
    }
    let before = ticks();
    tokio::time::sleep(span).await;
    Duration::from_millis(ticks().saturating_sub(before) * 10)
}

/// Asserts that a fetch failed with one error of `kind` naming the field `path`, the
/// source `source` and a key, and that the canary is in no error (text or `Debug`) and
/// not in `logs` (the captured TRACE log, or the lines a [`CanaryWatch`] kept). Shared by the websocket, Redis, MQTT and Kafka cases.
#[track_caller]
pub fn assert_failed<T: std::fmt::Debug>(
    got: Result<T, Vec<ComponentError>>,
    kind: ErrorKind,
    path: &str,
    source: &str,
    logs: &str,
) -> ComponentError {
    let errors = got.expect_err("the fetch must fail");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let e = errors.into_iter().next().expect("one error");
    let text = e.to_string();
    assert_eq!(e.kind(), kind, "{text}");
    assert!(text.starts_with(&format!("{path}: ")), "{text}");
    assert_eq!(e.source_name(), Some(source), "{text}");
    assert!(e.key().is_some_and(|k| !k.is_empty()), "{text}");
    assert_no_canary("the error", &text);
    assert_no_canary("the error's Debug", &format!("{e:?}"));
    assert_no_canary("the logs", logs);
    e
}

/// Asserts the case ended within `limit` (plus [`MARGIN`]) and grew the process by less
/// than `mib` MiB.
#[track_caller]
pub fn assert_bounded<T>(m: &Measured<T>, limit: Duration, mib: usize) {
    assert!(
        m.elapsed < limit + MARGIN,
        "took {:?}, over the deadline of {limit:?}",
        m.elapsed
    );
    assert!(
        m.peak < mib * MIB,
        "resident memory grew by {} MiB, over {mib} MiB",
        m.peak / MIB
    );
}

/// The tail every websocket, Redis, MQTT and Kafka case ends with: prints the figures
/// (`what`: elapsed time, memory growth and, for a flood case, the CPU time `busy` the
/// process spent in the second after the fetch, from [`busy_during`]), asserts them
/// ([`assert_bounded`] to `limit` and `mib` MiB; `busy` under 300 ms), then
/// [`assert_failed`] with `kind`, `path`, `source` and `logs`. Returns the error, for the
/// case's own checks of its text.
#[track_caller]
#[allow(clippy::too_many_arguments)] // one flat call per case, as the assertions it replaces
pub fn assert_case<T: std::fmt::Debug>(
    what: &str,
    m: Measured<Result<T, Vec<ComponentError>>>,
    busy: Option<Duration>,
    limit: Duration,
    mib: usize,
    kind: ErrorKind,
    path: &str,
    source: &str,
    logs: &str,
) -> ComponentError {
    match busy {
        Some(busy) => eprintln!(
            "{what}: {:?}, +{} MiB, then {busy:?} of CPU in 1 s",
            m.elapsed,
            m.peak / MIB
        ),
        None => eprintln!("{what}: {:?}, +{} MiB", m.elapsed, m.peak / MIB),
    }
    assert_bounded(&m, limit, mib);
    if let Some(busy) = busy {
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the fetch failed"
        );
    }
    assert_failed(m.output, kind, path, source, logs)
}
