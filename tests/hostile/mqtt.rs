//! Hostile servers: mqtt. A raw TCP server speaking just enough MQTT 3.1.1 (CONNACK to
//! the CONNECT, SUBACK to the SUBSCRIBE) to announce the largest remaining length MQTT
//! can encode (256 MiB), flood `PINGRESP`s, answer one byte a second or never answer.
//! rumqttc refuses a packet over its incoming bound (`set_max_packet_size`) from its fixed
//! header, before buffering it: these cases pin that.

use std::time::Duration;

use component_model::{AsyncAssign, ComponentError, ErrorKind, MqttSource, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{
    CANARY, CanaryWatch, CapturedLogs, Measured, SERVER_FOR, assert_case, busy_during, capture,
    flood, measure, on_workers, serial, tcp_server, thread_server,
};

#[derive(AsyncAssign, Debug)]
struct Device {
    #[component(stream_from = "mqtt", topic = "devices/42/config")]
    config: String,
}

/// The first-message deadline of every case.
const LIMIT: Duration = Duration::from_secs(2);

/// The largest remaining length MQTT encodes (268 435 455 bytes).
const HUGE: [u8; 4] = [0xFF, 0xFF, 0xFF, 0x7F];

/// Reads one packet (at most 64 KiB): its type byte and body; `None` when the client
/// went away or sent more.
async fn packet(socket: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let kind = socket.read_u8().await.ok()?;
    let mut len = 0usize;
    for shift in 0..4 {
        let b = socket.read_u8().await.ok()?;
        len |= usize::from(b & 0x7F) << (7 * shift);
        if b & 0x80 == 0 {
            break;
        }
    }
    if len > 64 * 1024 {
        return None;
    }
    let mut body = vec![0u8; len];
    socket.read_exact(&mut body).await.ok()?;
    Some((kind, body))
}

/// Accepts the CONNECT (CONNACK) and the SUBSCRIBE (SUBACK, QoS 1 granted); `false` when
/// the client went away.
async fn handshake(socket: &mut TcpStream) -> bool {
    let Some((0x10, _)) = packet(socket).await else {
        return false;
    };
    if socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.is_err() {
        return false;
    }
    let Some((0x82, body)) = packet(socket).await else {
        return false;
    };
    let ack = [0x90, 0x03, body[0], body[1], 0x01];
    socket.write_all(&ack).await.is_ok()
}

/// Fetches `Device` from `mqtt://user:CANARY@127.0.0.1:port`, measured.
async fn fetch(port: u16) -> Measured<Result<Device, Vec<ComponentError>>> {
    let mqtt = MqttSource::new(format!("mqtt://user:{CANARY}@127.0.0.1:{port}"))
        .with_first_message_timeout(LIMIT)
        .with_timeout(LIMIT);
    let sources = Sources::new().register("mqtt", mqtt);
    measure(Device::fetch_all_components_with(&sources)).await
}

/// A PUBLISH announcing 256 MiB, then bytes without end: refused from its fixed header.
#[tokio::test]
async fn a_publish_announcing_256_mib_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if handshake(&mut s).await {
            let mut header = vec![0x30];
            header.extend_from_slice(&HUGE);
            if s.write_all(&header).await.is_ok() {
                flood(&mut s, &[0u8; 64 * 1024]).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    let e = assert_case(
        "mqtt huge PUBLISH",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::TooLarge,
        "Device.config",
        "mqtt",
        &logs.text(),
    );
    assert!(e.to_string().contains("268435455 bytes"), "{e}");
}

/// The CONNACK itself announcing 256 MiB: refused the same way.
#[tokio::test]
async fn a_connack_announcing_256_mib_is_refused_before_it_is_buffered() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if packet(&mut s).await.is_some() {
            let mut header = vec![0x20];
            header.extend_from_slice(&HUGE);
            if s.write_all(&header).await.is_ok() {
                flood(&mut s, &[0u8; 64 * 1024]).await;
            }
        }
    })
    .await;
    let m = fetch(port).await;
    assert_case(
        "mqtt huge CONNACK",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::TooLarge,
        "Device.config",
        "mqtt",
        &logs.text(),
    );
}

/// `PINGRESP`s as fast as the socket takes them after the SUBACK: the first-message
/// deadline holds, and nothing keeps a worker busy once the field failed.
#[test]
fn a_pingresp_flood_does_not_stretch_the_first_message_deadline() {
    let watch = CanaryWatch::default();
    on_workers(&watch, async {
        let _s = serial().await;
        let port = thread_server(|mut s| async move {
            if handshake(&mut s).await {
                flood(&mut s, &[0xD0, 0x00].repeat(32 * 1024)).await;
            }
        });
        let m = fetch(port).await;
        assert_case(
            "mqtt PINGRESP flood",
            m,
            Some(busy_during(Duration::from_secs(1)).await),
            LIMIT,
            64,
            ErrorKind::NotFound,
            "Device.config",
            "mqtt",
            &watch.found().0,
        );
    })
}

/// The CONNACK one byte a second: a timeout naming the broker's silence, not a topic
/// without a retained message (before: `not found`, and the field's fallback applied).
#[tokio::test]
async fn a_connack_one_byte_a_second_is_a_timeout() {
    let _s = serial().await;
    let logs = CapturedLogs::default();
    let _g = capture(&logs);
    let port = tcp_server(|mut s| async move {
        if packet(&mut s).await.is_some() {
            for b in [0x20, 0x02, 0x00, 0x00] {
                if s.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tokio::time::sleep(SERVER_FOR).await;
        }
    })
    .await;
    let m = fetch(port).await;
    let e = assert_case(
        "mqtt slow CONNACK",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "Device.config",
        "mqtt",
        &logs.text(),
    );
    assert!(e.to_string().contains("no CONNACK"), "{e}");
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
    assert_case(
        "mqtt silent server",
        m,
        None,
        LIMIT,
        16,
        ErrorKind::Timeout,
        "Device.config",
        "mqtt",
        &logs.text(),
    );
}

/// A watch whose broker never accepts the connection says so once the first message is
/// due — a timeout, not a topic without a retained message (before: `not found`).
#[tokio::test]
async fn a_watch_whose_broker_sends_no_connack_is_a_timeout() {
    use component_model::{FetchRequest, Source};
    let _s = serial().await;
    let port = tcp_server(|mut s| async move {
        // Reads the CONNECT and says nothing, for at most 20 s.
        let mut sink = vec![0; 4096];
        let _ = tokio::time::timeout(SERVER_FOR, async {
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    return;
                }
            }
        })
        .await;
    })
    .await;
    let source = MqttSource::new(format!("mqtt://127.0.0.1:{port}"))
        .with_first_message_timeout(Duration::from_millis(500));
    let request = FetchRequest::for_source("mqtt").with_topic("devices/42/config");
    let changes = source.watch(vec![request.clone()]).expect("watch");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let e = source.fetch(&request).await.unwrap_err();
    drop(changes);
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("no CONNACK"), "{e}");
}
