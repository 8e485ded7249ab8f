//! Hostile servers: websocket. A raw TCP server that answers the upgrade (or not), then
//! floods control frames, announces a frame of 2^62 bytes, trickles a message one byte a
//! second or never says anything. The first-message deadline is one deadline over the
//! whole read, whatever frames arrive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentError, EnvSource, ErrorKind, Sources, WebSocketSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::common::{
    CANARY, CapturedLogs, MIB, Measured, assert_no_canary, capture, measure, serial, tcp_server,
};

#[derive(AsyncAssign, Debug)]
struct Flags {
    #[component(stream_from = "websocket", url = "${WS_URL}")]
    flags: String,
}

/// The first-message deadline of every case.
const LIMIT: Duration = Duration::from_secs(2);

/// What a case may take beyond its deadline: scheduling on a machine that is busy
/// building (a flood that starves the timer overshoots by 0.4 s to 3.5 s).
const MARGIN: Duration = Duration::from_millis(300);

/// How long a hostile server goes on at most (its loops are bounded in time as well).
const SERVER_FOR: Duration = Duration::from_secs(20);

/// Asserts that a fetch failed with one error of `kind` naming the field `path`, the
/// source `source` and a key, and that the canary is in no error (text or `Debug`) and
/// not in `logs` (the captured TRACE log, or the lines a [`CanaryWatch`] kept). Shared by the websocket, Redis, MQTT and Kafka cases.
#[track_caller]
pub(crate) fn assert_failed<T: std::fmt::Debug>(
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
pub(crate) fn assert_bounded<T>(m: &Measured<T>, limit: Duration, mib: usize) {
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

/// Reads an upgrade request (at most 16 KiB) and accepts it; `false` when the client
/// went away.
async fn upgrade(socket: &mut TcpStream) -> bool {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if request.len() > 16 * 1024 {
            return false;
        }
    }
    let text = String::from_utf8_lossy(&request);
    let Some(key) = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    }) else {
        return false;
    };
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    socket.write_all(answer.as_bytes()).await.is_ok()
}

/// Like [`tcp_server`], but on a thread and runtime of its own, for [`SERVER_FOR`]: a
/// flood then keeps the socket full while the client reads, as a remote server would
/// (in the test's runtime, the server would only write while the client waits). Shared
/// by the websocket, Redis, MQTT and Kafka cases.
pub(crate) fn thread_server<F, Fut>(serve: F) -> u16
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
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

/// The TRACE log of a flood case: every line is scanned for the canary as it is written,
/// and only the lines holding it are kept. (A flood logs a line per frame at TRACE, a
/// hundred megabytes in two seconds: kept whole, as [`CapturedLogs`] does, they would be
/// what the case measures.)
#[derive(Clone, Default)]
pub(crate) struct CanaryWatch {
    found: Arc<Mutex<String>>,
    lines: Arc<AtomicUsize>,
}

impl CanaryWatch {
    /// The lines that held the canary (none, when all is well), and how many were seen.
    pub(crate) fn found(&self) -> (String, usize) {
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
fn watched(watch: &CanaryWatch) -> tracing::subscriber::DefaultGuard {
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
pub(crate) fn on_workers<F: std::future::Future>(watch: &CanaryWatch, case: F) -> F::Output {
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
pub(crate) async fn busy_during(span: Duration) -> Duration {
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

/// Writes `chunk` again and again until the client goes away or [`SERVER_FOR`] passed.
async fn flood(socket: &mut TcpStream, chunk: &[u8]) {
    let until = tokio::time::Instant::now() + SERVER_FOR;
    while tokio::time::Instant::now() < until {
        if socket.write_all(chunk).await.is_err() {
            return;
        }
    }
}

/// Writes `bytes` one a second (bounded by [`SERVER_FOR`]).
async fn trickle(socket: &mut TcpStream, bytes: &[u8]) {
    for b in bytes.iter().take(SERVER_FOR.as_secs() as usize) {
        if socket.write_all(std::slice::from_ref(b)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Fetches `Flags` from `ws://user:CANARY@127.0.0.1:port/flags`, measured and logged.
async fn fetch(port: u16) -> Measured<Result<Flags, Vec<ComponentError>>> {
    let url = format!("ws://user:{CANARY}@127.0.0.1:{port}/flags");
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("WS_URL", url.as_str())]))
        .register(
            "websocket",
            WebSocketSource::new().with_first_message_timeout(LIMIT),
        );
    measure(Flags::fetch_all_components_with(&sources)).await
}

/// Unsolicited pongs (RFC 6455 allows them) as fast as the socket takes them: the
/// first-message deadline still holds (before the fix: 5 s limit, 8.1 s).
#[test]
fn a_pong_flood_does_not_stretch_the_first_message_deadline() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if upgrade(&mut s).await {
                flood(&mut s, &[0x8A, 0x00].repeat(32 * 1024)).await;
            }
        });
        let m = fetch(port).await;
        let busy = busy_during(Duration::from_secs(1)).await;
        eprintln!(
            "pong flood: {:?}, +{} MiB, then {busy:?} of CPU in 1 s",
            m.elapsed,
            m.peak / MIB
        );
        assert_bounded(&m, LIMIT, 64);
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the fetch failed"
        );
        let e = assert_failed(
            m.output,
            ErrorKind::NotFound,
            "Flags.flags",
            "websocket",
            &watch.found().0,
        );
        assert!(e.to_string().contains("no message within"), "{e}");
    })
}

/// Pings with the largest control payload, as fast as the socket takes them (the client
/// answers each; the server never reads them).
#[test]
fn a_ping_flood_does_not_stretch_the_first_message_deadline() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if upgrade(&mut s).await {
                let mut ping = vec![0x89, 125];
                ping.extend_from_slice(&[b'p'; 125]);
                flood(&mut s, &ping.repeat(512)).await;
            }
        });
        let m = fetch(port).await;
        let busy = busy_during(Duration::from_secs(1)).await;
        eprintln!(
            "ping flood: {:?}, +{} MiB, then {busy:?} of CPU in 1 s",
            m.elapsed,
            m.peak / MIB
        );
        assert_bounded(&m, LIMIT, 64);
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the fetch failed"
        );
        assert_failed(
            m.output,
            ErrorKind::NotFound,
            "Flags.flags",
            "websocket",
            &watch.found().0,
        );
    })
}

/// A binary frame announcing 2^62 bytes: refused before anything is buffered.
#[tokio::test]
async fn a_frame_announcing_a_huge_length_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if upgrade(&mut s).await {
            let mut frame = vec![0x82, 0x7F];
            frame.extend_from_slice(&(1u64 << 62).to_be_bytes());
            if s.write_all(&frame).await.is_ok() {
                flood(&mut s, &[0u8; 64 * 1024]).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!("huge frame: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    let e = assert_failed(
        m.output,
        ErrorKind::TooLarge,
        "Flags.flags",
        "websocket",
        &logs.text(),
    );
    assert!(e.to_string().contains("larger than the limit"), "{e}");
}

/// A message in endless continuation frames, each under the frame bound: the message
/// bound refuses it as it grows.
#[tokio::test]
async fn a_message_of_endless_fragments_is_refused_at_the_message_bound() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if upgrade(&mut s).await {
            let mut first = vec![0x02, 0x7E, 0xFF, 0xFF];
            first.extend_from_slice(&[b'x'; 0xFFFF]);
            let mut next = vec![0x00, 0x7E, 0xFF, 0xFF];
            next.extend_from_slice(&[b'x'; 0xFFFF]);
            if s.write_all(&first).await.is_ok() {
                flood(&mut s, &next).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!("endless fragments: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::TooLarge,
        "Flags.flags",
        "websocket",
        &logs.text(),
    );
}

/// The upgrade answered one byte a second: the connection's deadline.
#[tokio::test]
async fn an_upgrade_answered_one_byte_a_second_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        trickle(
            &mut s,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
        )
        .await;
    })
    .await;
    let m = fetch(port).await;
    eprintln!("slow upgrade: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::Timeout,
        "Flags.flags",
        "websocket",
        &logs.text(),
    );
}

/// A text message sent one byte a second after the upgrade: the first-message deadline.
#[tokio::test]
async fn a_message_sent_one_byte_a_second_is_not_waited_for() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if upgrade(&mut s).await {
            let mut frame = vec![0x81, 100];
            frame.extend_from_slice(&[b'v'; 100]);
            trickle(&mut s, &frame).await;
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!("slow message: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::NotFound,
        "Flags.flags",
        "websocket",
        &logs.text(),
    );
}

/// A server that accepts the connection and never answers the upgrade.
#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|s| async move {
        tokio::time::sleep(SERVER_FOR).await;
        drop(s);
    })
    .await;
    let m = fetch(port).await;
    eprintln!("silent server: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::Timeout,
        "Flags.flags",
        "websocket",
        &logs.text(),
    );
}

/// A watched connection flooded with pongs after its first message: once the watch
/// stops, nothing reads on. (A pin: the watch's read loop also polls the watch's own
/// channel, which gives the runtime its turn, so this held before the fix too.)
#[test]
fn a_watch_flooded_with_pongs_ends_when_it_stops() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if upgrade(&mut s).await && s.write_all(&[0x81, 2, b'v', b'1']).await.is_ok() {
                flood(&mut s, &[0x8A, 0x00].repeat(32 * 1024)).await;
            }
        });
        let url = format!("ws://user:{CANARY}@127.0.0.1:{port}/flags");
        let sources = Sources::new()
            .with_env(EnvSource::from_map([("WS_URL", url.as_str())]))
            .register(
                "websocket",
                WebSocketSource::new().with_first_message_timeout(LIMIT),
            );
        let live = Flags::watch_with(&sources).await.expect("watched");
        assert_eq!(live.get().flags, "v1");
        // The watch's own connection is flooded meanwhile.
        tokio::time::sleep(Duration::from_secs(1)).await;
        live.stop();
        drop(live);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let busy = busy_during(Duration::from_secs(1)).await;
        eprintln!("watch under a pong flood: {busy:?} of CPU in the second after it stopped");
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the watch stopped"
        );
        assert_no_canary("the logs", &watch.found().0);
    })
}
