//! What every hostile case shares: one case at a time, the peak resident memory of a
//! future, a canary secret and the TRACE log it must never reach.

use std::future::Future;
use std::time::{Duration, Instant};

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
