//! Hostile servers: websocket. A raw TCP server that answers the upgrade (or not), then
//! floods control frames, announces a frame of 2^62 bytes, trickles a message one byte a
//! second or never says anything. The first-message deadline is one deadline over the
//! whole read, whatever frames arrive.

use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentError, EnvSource, ErrorKind, Sources, WebSocketSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::common::{
    CANARY, CanaryWatch, CapturedLogs, Measured, SERVER_FOR, assert_case, assert_no_canary,
    busy_during, capture, flood, measure, on_workers, serial, tcp_server, thread_server,
};

#[derive(AsyncAssign, Debug)]
struct Flags {
    #[component(stream_from = "websocket", url = "${WS_URL}")]
    flags: String,
}

/// The first-message deadline of every case.
const LIMIT: Duration = Duration::from_secs(2);

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
        let e = assert_case(
            "pong flood",
            m,
            Some(busy_during(Duration::from_secs(1)).await),
            LIMIT,
            64,
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
        assert_case(
            "ping flood",
            m,
            Some(busy_during(Duration::from_secs(1)).await),
            LIMIT,
            64,
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
    let e = assert_case(
        "huge frame",
        m,
        None,
        LIMIT,
        16,
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
    assert_case(
        "endless fragments",
        m,
        None,
        LIMIT,
        16,
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
    assert_case(
        "slow upgrade",
        m,
        None,
        LIMIT,
        16,
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
    assert_case(
        "slow message",
        m,
        None,
        LIMIT,
        16,
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
    assert_case(
        "silent server",
        m,
        None,
        LIMIT,
        16,
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
