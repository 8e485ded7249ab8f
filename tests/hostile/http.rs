//! Hostile servers: the HTTP-based sources (`http`, `consul`, `vault`). A raw TCP server on
//! 127.0.0.1 reads the request and then answers one byte a second (in the head, or in a
//! body it announced), never answers, floods header lines (many, or one without end), or
//! lies about its `Content-Length` (closes early, or stalls). Body sizes are the limits
//! suite's (`tests/limits`); here each case asserts, for the three sources, a typed error
//! naming field, source and key within the field's `timeout`, a bound on resident-memory
//! growth, and the token (the canary) in no error, `Debug` or TRACE log line.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentError, ConsulSource, ErrorKind, HttpSource, SecretString, Sources,
    VaultSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{CANARY, CapturedLogs, MIB, assert_no_canary, capture, measure, serial};

/// The field's `timeout` in every case.
const LIMIT: Duration = Duration::from_secs(2);

/// What a case may take past [`LIMIT`] (a loaded machine, the error's formatting).
const MARGIN: Duration = Duration::from_secs(1);

/// The resident-memory growth no case may reach.
const MEMORY_BOUND: usize = 32 * MIB;

/// How soon after a field failed its connection to the hostile server must be closed.
/// Under the interim-response flood, hyper's connection task notices that its request
/// is gone only between polls, each of which parses (and logs at TRACE) thousands of
/// `100 Continue`s: closed 1.8–2.8 s after the field failed when this was written, 5.0 s
/// on the same kind of VM on 2026-12-06 with the code of then (so 5 s failed, and the
/// connection still being read ran into the next case's memory measurement: +57 MiB).
/// The server floods for [`SERVER_FOR`] (20 s), so a client that never lets go fails.
const CLOSED_WITHIN: Duration = Duration::from_secs(10);

/// How long a hostile server goes on at most.
const SERVER_FOR: Duration = Duration::from_secs(20);

#[derive(AsyncAssign, Debug)]
struct Api {
    #[component(
        fetch_from = "billing",
        path = "/config",
        pointer = "/port",
        timeout = "2s"
    )]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct Kv {
    #[component(fetch_from = "consul", key = "app/port", timeout = "2s")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct Secrets {
    #[component(
        fetch_from = "vault",
        secret = "app/db",
        field = "password",
        timeout = "2s"
    )]
    password: SecretString,
}

#[derive(AsyncAssign, Debug)]
struct ApiUntimed {
    #[component(fetch_from = "billing", path = "/config", pointer = "/port")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct KvUntimed {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct SecretsUntimed {
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
}

/// Whose limit a case holds the fetch to: the field's `timeout`, or the source's
/// `with_timeout` (a field without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Field,
    Source,
}

/// What the server does once it has read a request.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A whole response, one byte a second (the status line never completes in time).
    TrickleHead,
    /// A head announcing a 64-byte body, then the body one byte a second.
    TrickleBody,
    /// Reads the request and never answers nor closes.
    Silent,
    /// A status line, then header lines without end.
    HeaderFlood,
    /// Interim `100 Continue` responses without end (a client skips them).
    EndlessInterim,
    /// A status line, then one header line that never ends.
    EndlessHeaderLine,
    /// Announces 1000 bytes of body, sends 20 and closes.
    ShortBody,
    /// Announces 1000 bytes of body, sends 20 and stalls.
    StalledBody,
}

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"port\": 80}";
const LYING_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"port\": 80, \"x\": \"";

/// Reads one request head (at most 64 KiB), then behaves as `hostile` says, for at most
/// [`SERVER_FOR`] or until the client closes the connection.
async fn serve(mut socket: TcpStream, hostile: Hostile) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let (mut reading, mut writing) = socket.into_split();
    let closed = async move {
        let mut buf = [0u8; 1024];
        while matches!(reading.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        () = behave(&mut writing, hostile) => {}
        () = closed => {}
    }
}

/// What the server writes after the request (see [`Hostile`]).
async fn behave(socket: &mut tokio::net::tcp::OwnedWriteHalf, hostile: Hostile) {
    let until = tokio::time::Instant::now() + SERVER_FOR;
    match hostile {
        Hostile::TrickleHead => trickle(socket, RESPONSE, until).await,
        Hostile::TrickleBody => {
            let head =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n";
            if socket.write_all(head).await.is_ok() {
                trickle(socket, &[b' '; 64], until).await;
            }
        }
        Hostile::Silent => tokio::time::sleep(SERVER_FOR).await,
        Hostile::HeaderFlood | Hostile::EndlessHeaderLine | Hostile::EndlessInterim => {
            let (start, line): (&[u8], &[u8]) = match hostile {
                Hostile::EndlessInterim => (b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
                Hostile::HeaderFlood => (b"HTTP/1.1 200 OK\r\n", b"x-flood: aaaaaaaaaaaaaaaa\r\n"),
                _ => (b"HTTP/1.1 200 OK\r\nx-flood: ", b"aaaaaaaaaaaaaaaa"),
            };
            let chunk = line.repeat(64 * 1024 / line.len());
            if socket.write_all(start).await.is_err() {
                return;
            }
            while tokio::time::Instant::now() < until && socket.write_all(&chunk).await.is_ok() {}
        }
        Hostile::ShortBody => {
            let _ = socket.write_all(LYING_HEAD).await;
            let _ = socket.shutdown().await;
            // Half-closed: the client sees the end of the body early.
            tokio::time::sleep(SERVER_FOR).await;
        }
        Hostile::StalledBody => {
            if socket.write_all(LYING_HEAD).await.is_ok() {
                tokio::time::sleep(SERVER_FOR).await;
            }
        }
    }
}

/// Writes `bytes` one a second, until `until`.
async fn trickle(
    socket: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: &[u8],
    until: tokio::time::Instant,
) {
    for b in bytes {
        if tokio::time::Instant::now() >= until
            || socket.write_all(std::slice::from_ref(b)).await.is_err()
        {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The three sources, each with the canary as its token.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Http,
    Consul,
    Vault,
}

impl Backend {
    const ALL: [Backend; 3] = [Backend::Http, Backend::Consul, Backend::Vault];

    /// The field's path and the source's name, as the error must name them.
    fn names(self, limit: Limit) -> (&'static str, &'static str) {
        match (self, limit) {
            (Backend::Http, Limit::Field) => ("Api.port", "billing"),
            (Backend::Http, Limit::Source) => ("ApiUntimed.port", "billing"),
            (Backend::Consul, Limit::Field) => ("Kv.port", "consul"),
            (Backend::Consul, Limit::Source) => ("KvUntimed.port", "consul"),
            (Backend::Vault, Limit::Field) => ("Secrets.password", "vault"),
            (Backend::Vault, Limit::Source) => ("SecretsUntimed.password", "vault"),
        }
    }

    /// Fetches the backend's struct from the server at `port`, held to `limit`; its
    /// `Debug` when it came.
    async fn fetch(self, port: u16, limit: Limit) -> Result<String, Vec<ComponentError>> {
        let base = format!("http://127.0.0.1:{port}");
        let shown = |c: &dyn std::fmt::Debug| format!("{c:?}");
        let field = limit == Limit::Field;
        match self {
            Backend::Http => {
                let mut source = HttpSource::new(base).with_auth_header(CANARY);
                if !field {
                    source = source.with_timeout(LIMIT);
                }
                let sources = Sources::new().register("billing", source);
                match field {
                    true => Api::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                    false => ApiUntimed::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                }
            }
            Backend::Consul => {
                let mut source = ConsulSource::new(base).with_token(CANARY);
                if !field {
                    source = source.with_timeout(LIMIT);
                }
                let sources = Sources::new().register("consul", source);
                match field {
                    true => Kv::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                    false => KvUntimed::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                }
            }
            Backend::Vault => {
                let mut source = VaultSource::new(base).with_token(CANARY);
                if !field {
                    source = source.with_timeout(LIMIT);
                }
                let sources = Sources::new().register("vault", source);
                match field {
                    true => Secrets::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                    false => SecretsUntimed::fetch_all_components_with(&sources)
                        .await
                        .map(|c| shown(&c)),
                }
            }
        }
    }
}

/// A server on a thread (and runtime) of its own, doing `hostile` to every connection for
/// at most [`SERVER_FOR`]; its port, and how many of its connections are open.
fn thread_server(hostile: Hostile) -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    listener.set_nonblocking(true).expect("non-blocking");
    let open = Arc::new(AtomicUsize::new(0));
    let counting = open.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = tokio::time::timeout(SERVER_FOR, async {
                while let Ok((socket, _)) = listener.accept().await {
                    let open = counting.clone();
                    open.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(async move {
                        serve(socket, hostile).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
            .await;
        });
    });
    (port, open)
}

/// How long until no connection of a server is open (the client closed them all), at
/// most `within`.
async fn closed_within(open: &AtomicUsize, within: Duration) -> Duration {
    let started = std::time::Instant::now();
    while open.load(Ordering::SeqCst) > 0 && started.elapsed() < within {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// Runs `hostile` against each backend, as a service runs: the fetch on a runtime of two
/// workers (every thread of which logs into the case's capture at TRACE), the server on a
/// thread of its own. Asserts one typed error of `kind` naming field, source and key,
/// within the field's timeout, resident memory grown by less than [`MEMORY_BOUND`], no
/// canary in the error, its `Debug` or the logs.
fn case(hostile: Hostile, kind: ErrorKind) {
    case_held_to(hostile, kind, Limit::Field);
}

/// A runtime of two workers, as a service runs, every thread of which logs into `logs`
/// at TRACE.
fn capturing_runtime(logs: &CapturedLogs) -> tokio::runtime::Runtime {
    let for_workers = logs.clone();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        // The guard lives as long as the worker thread (it ends with the runtime).
        .on_thread_start(move || std::mem::forget(capture(&for_workers)))
        .build()
        .expect("a runtime")
}

/// [`case`], the fetch held to `limit`.
fn case_held_to(hostile: Hostile, kind: ErrorKind, limit: Limit) {
    for backend in Backend::ALL {
        let logs = CapturedLogs::default();
        let runtime = capturing_runtime(&logs);
        let _g = capture(&logs);
        let (port, open) = thread_server(hostile);
        let (m, closed) = runtime.block_on(async {
            let _s = serial().await;
            let m = measure(backend.fetch(port, limit)).await;
            // The client lets go of the hostile connection (hyper's connection task stops
            // reading it) before the next case starts.
            (m, closed_within(&open, CLOSED_WITHIN).await)
        });
        drop(runtime);
        let (path, source) = backend.names(limit);
        let errors = m.output.expect_err("a hostile server gives no value");
        let text = format!("{errors:?}");
        assert_eq!(errors.len(), 1, "{hostile:?} {backend:?}: {errors:#?}");
        let e = &errors[0];
        eprintln!(
            "{hostile:?} {backend:?} ({limit:?} timeout): {:?}, +{} MiB, connection closed {closed:?} after: {e}",
            m.elapsed,
            m.peak / MIB
        );
        assert!(
            closed < CLOSED_WITHIN,
            "{hostile:?} {backend:?}: the connection was still open {closed:?} after the field failed"
        );
        assert_eq!(e.kind(), kind, "{hostile:?} {backend:?}: {e}");
        assert!(e.to_string().starts_with(&format!("{path}: ")), "{e}");
        assert_eq!(e.source_name(), Some(source), "{e}");
        assert!(e.key().is_some_and(|k| !k.is_empty()), "{e}");
        assert!(
            m.elapsed < LIMIT + MARGIN,
            "{hostile:?} {backend:?}: took {:?}, over the {limit:?} timeout of {LIMIT:?}",
            m.elapsed
        );
        assert!(
            m.peak < MEMORY_BOUND,
            "{hostile:?} {backend:?}: resident memory grew by {} MiB",
            m.peak / MIB
        );
        assert_no_canary("the error", &e.to_string());
        assert_no_canary("the errors' Debug", &text);
        assert_no_canary("the TRACE logs", &logs.text());
    }
}

#[test]
fn a_response_at_one_byte_a_second_ends_at_the_field_timeout() {
    case(Hostile::TrickleHead, ErrorKind::Timeout);
}

#[test]
fn a_body_at_one_byte_a_second_ends_at_the_field_timeout() {
    case(Hostile::TrickleBody, ErrorKind::Timeout);
}

#[test]
fn a_server_that_never_answers_ends_at_the_field_timeout() {
    case(Hostile::Silent, ErrorKind::Timeout);
}

#[test]
fn endless_header_lines_are_refused_before_they_are_buffered() {
    case(Hostile::HeaderFlood, ErrorKind::Unavailable);
}

#[test]
fn endless_interim_responses_end_at_the_field_timeout() {
    case(Hostile::EndlessInterim, ErrorKind::Timeout);
}

#[test]
fn a_header_line_without_end_is_refused_before_it_is_buffered() {
    case(Hostile::EndlessHeaderLine, ErrorKind::Unavailable);
}

#[test]
fn a_body_shorter_than_its_content_length_is_an_error_not_a_value() {
    case(Hostile::ShortBody, ErrorKind::Unavailable);
}

#[test]
fn a_body_that_stalls_before_its_content_length_ends_at_the_field_timeout() {
    case(Hostile::StalledBody, ErrorKind::Timeout);
}

#[test]
fn the_source_timeout_holds_under_endless_interim_responses() {
    case_held_to(Hostile::EndlessInterim, ErrorKind::Timeout, Limit::Source);
}

#[test]
fn the_source_timeout_holds_against_a_response_at_one_byte_a_second() {
    case_held_to(Hostile::TrickleBody, ErrorKind::Timeout, Limit::Source);
}

/// While a hostile server floods one source with interim responses (hyper parses them for
/// seconds per poll), a healthy Consul next to it answers as usual: the HTTP exchanges run
/// on threads of their own, and one held leaves the other.
#[test]
fn a_flooding_server_does_not_hold_up_a_healthy_neighbour() {
    let logs = CapturedLogs::default();
    let runtime = capturing_runtime(&logs);
    let _g = capture(&logs);
    let (port, open) = thread_server(Hostile::EndlessInterim);
    runtime.block_on(async {
        let _s = serial().await;
        let consul = component_model::test_util::ConsulDouble::start().await;
        consul.put("app/port", "8080");
        let hostile = tokio::spawn(Backend::Consul.fetch(port, Limit::Field));
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
            let got = Kv::fetch_all_components_with(&sources).await;
            let elapsed = started.elapsed();
            eprintln!("healthy neighbour during the flood: {elapsed:?}");
            assert_eq!(got.map(|k| k.port).ok(), Some(8080));
            assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let errors = hostile
            .await
            .expect("the hostile fetch")
            .expect_err("no value from the flood");
        assert_eq!(errors[0].kind(), ErrorKind::Timeout, "{}", errors[0]);
        assert_no_canary("the error", &format!("{} {:?}", errors[0], errors));
        closed_within(&open, CLOSED_WITHIN).await;
    });
    assert_no_canary("the TRACE logs", &logs.text());
}

/// The three sources in one struct, for a preflight held to the struct's timeout.
#[derive(AsyncAssign, Debug)]
#[component(timeout = "2s")]
#[allow(dead_code)] // only preflighted
struct Checked {
    #[component(fetch_from = "billing", path = "/config", pointer = "/port")]
    api: u16,
    #[component(fetch_from = "consul", key = "app/port")]
    kv: u16,
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    password: SecretString,
}

/// A preflight of the three sources against a server doing `hostile` (issue 35): it ends
/// within the struct's timeout, grows the process by less than [`MEMORY_BOUND`], finds no
/// key readable where a body had to be read (`bodies`: Consul's key listing and Vault's
/// capabilities always; the HTTP `HEAD` only when the head itself is hostile), and the
/// token (the canary) is in no row, `Debug` or TRACE log line.
fn preflight_case(hostile: Hostile, head_is_hostile: bool) {
    let logs = CapturedLogs::default();
    let runtime = capturing_runtime(&logs);
    let _g = capture(&logs);
    let (port, open) = thread_server(hostile);
    let base = format!("http://127.0.0.1:{port}");
    let sources = Sources::new()
        .register("billing", HttpSource::new(&base).with_auth_header(CANARY))
        .register("consul", ConsulSource::new(&base).with_token(CANARY))
        .register("vault", VaultSource::new(&base).with_token(CANARY));
    let (m, closed) = runtime.block_on(async {
        let _s = serial().await;
        let m = measure(Checked::preflight_with(&sources)).await;
        (m, closed_within(&open, CLOSED_WITHIN).await)
    });
    drop(runtime);
    let report = m.output;
    eprintln!(
        "preflight {hostile:?}: {:?}, +{} MiB, connections closed {closed:?} after\n{report}",
        m.elapsed,
        m.peak / MIB
    );
    assert!(
        m.elapsed < LIMIT + MARGIN,
        "{hostile:?}: the preflight took {:?}, over the struct's timeout of {LIMIT:?}",
        m.elapsed
    );
    assert!(
        m.peak < MEMORY_BOUND,
        "{hostile:?}: resident memory grew by {} MiB",
        m.peak / MIB
    );
    assert!(
        closed < CLOSED_WITHIN,
        "{hostile:?}: connections still open {closed:?} after"
    );
    assert_eq!(report.rows.len(), 3, "{report}");
    for row in &report.rows {
        let must_fail = row.field != "api" || head_is_hostile;
        if must_fail {
            assert!(
                row.access.is_failure(),
                "{hostile:?}: {} is {} against a hostile server\n{report}",
                row.path,
                row.access
            );
        }
    }
    assert!(!report.is_ok(), "{report}");
    assert_no_canary("the report", &report.to_string());
    assert_no_canary("the report's Debug", &format!("{report:?}"));
    assert_no_canary("the TRACE logs", &logs.text());
}

#[test]
fn a_preflight_against_a_server_at_one_byte_a_second_ends_at_the_struct_timeout() {
    preflight_case(Hostile::TrickleHead, true);
}

#[test]
fn a_preflight_against_a_server_that_never_answers_ends_at_the_struct_timeout() {
    preflight_case(Hostile::Silent, true);
}

#[test]
fn a_preflight_against_floods_of_headers_and_interim_responses_is_bounded() {
    preflight_case(Hostile::HeaderFlood, true);
    preflight_case(Hostile::EndlessHeaderLine, true);
    preflight_case(Hostile::EndlessInterim, true);
}

#[test]
fn a_preflight_against_lying_and_trickling_bodies_is_bounded() {
    preflight_case(Hostile::TrickleBody, false);
    preflight_case(Hostile::ShortBody, false);
    preflight_case(Hostile::StalledBody, false);
}
