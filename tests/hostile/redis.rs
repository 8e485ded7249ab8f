//! Hostile servers: redis. A raw TCP server that speaks just enough RESP for the
//! handshake (`+OK` to each command; the password is the canary), then answers the read
//! with an array of 16 million integers, a value announcing a terabyte, a flood of
//! out-of-band pushes, one byte a second, or nothing at all.

use std::time::Duration;

use component_model::{AsyncAssign, ComponentError, ErrorKind, RedisSource, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CanaryWatch, CapturedLogs, Measured, SERVER_FOR, assert_case, busy_during, capture,
    measure, on_workers, serial, tcp_server, thread_server,
};

#[derive(AsyncAssign, Debug)]
struct Config {
    #[component(fetch_from = "redis", key = "app:port")]
    port: u16,
}

/// The time limit of every case (connecting, and each round trip).
const LIMIT: Duration = Duration::from_secs(2);

/// What the server does once the read (`GET`/`MGET`) arrives.
#[derive(Clone, Copy)]
enum Then {
    /// Writes these bytes, then `tail` again and again (bounded in time).
    Answer(&'static [u8], &'static [u8]),
    /// Writes these bytes one a second.
    Trickle(&'static [u8]),
}

/// Answers the handshake with one `+OK` per command, then does `then` on the read.
async fn serve(mut socket: TcpStream, then: Then) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
        if text.contains("GET") {
            break;
        }
        let commands = text.matches("\r\n*").count() + usize::from(text.starts_with('*'));
        for _ in 0..commands.max(1) {
            if socket.write_all(b"+OK\r\n").await.is_err() {
                return;
            }
        }
    }
    let until = tokio::time::Instant::now() + SERVER_FOR;
    match then {
        Then::Answer(head, tail) => {
            if socket.write_all(head).await.is_err() || tail.is_empty() {
                return;
            }
            let chunk = tail.repeat((64 * 1024 / tail.len()).max(1));
            while tokio::time::Instant::now() < until && socket.write_all(&chunk).await.is_ok() {}
        }
        Then::Trickle(bytes) => {
            for b in bytes.iter().take(SERVER_FOR.as_secs() as usize) {
                if socket.write_all(std::slice::from_ref(b)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The sources of every case: `redis` at `redis://:CANARY@127.0.0.1:port`.
fn sources(port: u16) -> Sources {
    let redis = RedisSource::new(format!("redis://:{CANARY}@127.0.0.1:{port}")).with_timeout(LIMIT);
    Sources::new().register("redis", redis)
}

/// Fetches `Config` from `redis://:CANARY@127.0.0.1:port`, measured.
async fn fetch(port: u16) -> Measured<Result<Config, Vec<ComponentError>>> {
    measure(Config::fetch_all_components_with(&sources(port))).await
}

/// Item 4 of issue 29: an array just under the old element bound (16 million elements
/// at the 16 MiB default) of the smallest element there is. 64 MB on the wire, about a
/// gigabyte once parsed; before the fix the process grew by ~200 MB before the timeout.
/// Now refused at its first line: every element is counted at what it costs in memory.
#[test]
fn an_array_of_sixteen_million_integers_is_refused_at_its_header() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|s| serve(s, Then::Answer(b"*16000000\r\n", b":0\r\n")));
        let m = fetch(port).await;
        let e = assert_case(
            "redis *16000000",
            m,
            Some(busy_during(Duration::from_secs(1)).await),
            LIMIT,
            16,
            ErrorKind::TooLarge,
            "Config.port",
            "redis",
            &watch.found().0,
        );
        assert!(e.to_string().contains("reply larger than 16 MiB"), "{e}");
        assert!(
            e.to_string().contains("a reply of 16000000 elements"),
            "{e}"
        );
        assert!(e.to_string().contains("bytes in memory"), "{e}");
    })
}

/// Nested arrays, each just under what one reply may hold: the budget is one per reply,
/// not one per aggregate.
#[test]
fn nested_arrays_share_one_budget() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        // 100 000 arrays of 100 elements: 10 million integers in all.
        let tail: &'static [u8] = format!("*100\r\n{}", ":0\r\n".repeat(100))
            .into_bytes()
            .leak();
        let port = thread_server(move |s| serve(s, Then::Answer(b"*100000\r\n", tail)));
        let m = fetch(port).await;
        assert_case(
            "redis nested arrays",
            m,
            None,
            LIMIT,
            32,
            ErrorKind::TooLarge,
            "Config.port",
            "redis",
            &watch.found().0,
        );
    })
}

/// A value announcing a terabyte, then bytes without end: refused at its header.
#[tokio::test]
async fn a_value_announcing_a_terabyte_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|s| serve(s, Then::Answer(b"$1099511627776\r\n", b"x"))).await;
    let m = fetch(port).await;
    assert_case(
        "redis $2^40",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::TooLarge,
        "Config.port",
        "redis",
        &logs.text(),
    );
}

/// Out-of-band pushes (RESP3 `>`), as fast as the socket takes them, instead of the
/// answer: the round trip's deadline holds and nothing piles up.
#[test]
fn a_flood_of_pushes_does_not_stretch_the_deadline() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|s| {
            serve(
                s,
                Then::Answer(b"", b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"),
            )
        });
        // The sources outlive the fetch, as in a service: their connection must not.
        let sources = sources(port);
        let m = measure(Config::fetch_all_components_with(&sources)).await;
        assert_case(
            "redis push flood",
            m,
            Some(busy_during(Duration::from_secs(1)).await),
            LIMIT,
            64,
            ErrorKind::Timeout,
            "Config.port",
            "redis",
            &watch.found().0,
        );
    })
}

/// The answer one byte a second: the round trip's deadline.
#[tokio::test]
async fn an_answer_one_byte_a_second_times_out() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|s| serve(s, Then::Trickle(b"*1\r\n$4\r\n8080\r\n"))).await;
    let m = fetch(port).await;
    assert_case(
        "redis slow answer",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "Config.port",
        "redis",
        &logs.text(),
    );
}

/// A server that accepts the connection and never answers the handshake.
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
    assert_case(
        "redis silent server",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "Config.port",
        "redis",
        &logs.text(),
    );
}
