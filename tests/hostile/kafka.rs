//! Hostile servers: kafka. A raw TCP server that answers the client's first request (the
//! `ApiVersions` handshake) with a frame announcing 2 GiB, a frame over the client's bound,
//! a flood of frames for requests never made, one byte a second, or nothing at all.
//! rskafka reads the 4-byte frame length first and refuses a frame over its
//! `max_message_size` (the source sets 4 × the largest message) without buffering it.
//! The source takes no credentials (no SASL in this version): the canary checks of
//! these cases hold as long as nothing else leaks it, and pin that.

use std::time::Duration;

use component_model::{AsyncAssign, ComponentError, ErrorKind, KafkaSource, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{CapturedLogs, MIB, Measured, capture, measure, serial, tcp_server};
use crate::websocket::{
    CanaryWatch, assert_bounded, assert_failed, busy_during, on_workers, thread_server,
};

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(stream_from = "kafka", topic = "config")]
    config: String,
}

/// The time limit of every case (connecting, and each request).
const LIMIT: Duration = Duration::from_secs(2);

/// How long a hostile server goes on at most.
const SERVER_FOR: Duration = Duration::from_secs(20);

/// Reads one request frame (at most 64 KiB); `false` when the client went away.
async fn request(socket: &mut TcpStream) -> bool {
    let Ok(len) = socket.read_u32().await else {
        return false;
    };
    if len > 64 * 1024 {
        return false;
    }
    let mut body = vec![0u8; len as usize];
    socket.read_exact(&mut body).await.is_ok()
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

/// Fetches `App` from the broker at `127.0.0.1:port`, measured.
async fn fetch(port: u16) -> Measured<Result<App, Vec<ComponentError>>> {
    let kafka = KafkaSource::new([format!("127.0.0.1:{port}")]).with_timeout(LIMIT);
    let sources = Sources::new().register("kafka", kafka);
    measure(App::fetch_all_components_with(&sources)).await
}

/// A response announcing 2 GiB (i32::MAX), then silence: nothing is buffered on the
/// server's word; the request's deadline.
#[tokio::test]
async fn a_response_announcing_two_gib_is_not_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if request(&mut s).await && s.write_all(&i32::MAX.to_be_bytes()).await.is_ok() {
            tokio::time::sleep(SERVER_FOR).await;
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!("kafka 2 GiB frame: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::Timeout,
        "App.config",
        "kafka",
        &logs.text(),
    );
}

/// A whole response of 5 MiB, over the client's frame bound (4 MiB): read past in
/// steps, never held, and said to be too large.
#[tokio::test]
async fn a_response_over_the_frame_bound_is_refused() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        let len = 5 * MIB as u32;
        if request(&mut s).await && s.write_all(&len.to_be_bytes()).await.is_ok() {
            let _ = s.write_all(&vec![0u8; len as usize]).await;
            tokio::time::sleep(SERVER_FOR).await;
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!("kafka 5 MiB frame: {:?}, +{} MiB", m.elapsed, m.peak / MIB);
    assert_bounded(&m, LIMIT, 32);
    let e = assert_failed(
        m.output,
        ErrorKind::TooLarge,
        "App.config",
        "kafka",
        &logs.text(),
    );
    assert!(e.to_string().contains("larger than"), "{e}");
}

/// Responses to requests never made (correlation id -1), as fast as the socket takes
/// them: the deadline holds, and nothing reads on once the field failed.
#[test]
fn a_flood_of_unsolicited_responses_does_not_stretch_the_deadline() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if request(&mut s).await {
                let frame = [0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF];
                flood(&mut s, &frame.repeat(8 * 1024)).await;
            }
        });
        let m = fetch(port).await;
        let busy = busy_during(Duration::from_secs(1)).await;
        eprintln!(
            "kafka unsolicited flood: {:?}, +{} MiB, then {busy:?} of CPU in 1 s ({} log lines)",
            m.elapsed,
            m.peak / MIB,
            watch.found().1
        );
        assert_bounded(&m, LIMIT, 64);
        assert!(
            busy < Duration::from_millis(300),
            "busy for {busy:?} after the fetch failed"
        );
        assert_failed(
            m.output,
            ErrorKind::Timeout,
            "App.config",
            "kafka",
            &watch.found().0,
        );
    })
}

/// The response one byte a second: the request's deadline.
#[tokio::test]
async fn a_response_one_byte_a_second_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if request(&mut s).await {
            for b in [0u8, 0, 0, 6, 0, 0, 0, 0, 0, 0] {
                if s.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    eprintln!(
        "kafka slow response: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::Timeout,
        "App.config",
        "kafka",
        &logs.text(),
    );
}

/// A server that accepts the connection and never answers.
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
    eprintln!(
        "kafka silent server: {:?}, +{} MiB",
        m.elapsed,
        m.peak / MIB
    );
    assert_bounded(&m, LIMIT, 16);
    assert_failed(
        m.output,
        ErrorKind::Timeout,
        "App.config",
        "kafka",
        &logs.text(),
    );
}
