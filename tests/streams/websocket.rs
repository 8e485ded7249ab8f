//! `stream_from = "websocket"` against the in-process websocket server.

use std::time::Duration;

use component_model::test_util::WebSocketServer;
use component_model::{AsyncAssign, ErrorKind, Sources, WebSocketSource};
use serde::Deserialize;

use crate::{applied, eventually, next_update, rejected};

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct FeatureFlags {
    beta: bool,
    max_items: u32,
}

#[derive(AsyncAssign, Debug)]
struct Flags {
    #[component(stream_from = "websocket", url = "ws://config.service/flags")]
    flags: FeatureFlags,
}

fn sources(server: &WebSocketServer, ws: WebSocketSource) -> Sources {
    Sources::new().register("websocket", ws.resolve("config.service", server.address()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_message_is_the_value_and_each_later_one_an_update() {
    let server = WebSocketServer::start().await;
    server.set(r#"{"beta": false, "max_items": 10}"#);
    let sources = sources(&server, WebSocketSource::new());
    let live = Flags::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().flags.max_items, 10);
    let mut updates = live.changes();

    server.set(r#"{"beta": true, "max_items": 20}"#);
    applied(&next_update(&mut updates, Duration::from_secs(5)).await);
    assert_eq!(
        live.get().flags,
        FeatureFlags {
            beta: true,
            max_items: 20
        }
    );
    // One connection for the watch (plus the start-up read's, closed).
    assert_eq!(server.connections(), 1);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversize_messages_are_rejected_and_the_old_value_stays() {
    let server = WebSocketServer::start().await;
    server.set(r#"{"beta": false, "max_items": 1}"#);
    let sources = sources(&server, WebSocketSource::new().with_max_message(256));
    let live = Flags::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();

    server.set("this is not json");
    let update = next_update(&mut updates, Duration::from_secs(5)).await;
    let reason = rejected(&update);
    assert!(reason.contains("Flags.flags"), "{reason}");
    assert!(reason.contains("websocket"), "{reason}");
    assert_eq!(live.get().flags.max_items, 1);

    let big = format!(
        r#"{{"beta": true, "max_items": 2, "pad": "{}"}}"#,
        "x".repeat(1000)
    );
    server.push(big);
    let update = next_update(&mut updates, Duration::from_secs(5)).await;
    let reason = rejected(&update);
    assert!(
        reason.contains("larger than the limit of 256 bytes"),
        "{reason}"
    );
    assert_eq!(live.get().flags.max_items, 1);

    // The connection is opened again; a good message is applied.
    server.set(r#"{"beta": true, "max_items": 3}"#);
    eventually(
        Duration::from_secs(10),
        || live.get().flags.max_items == 3,
        || "never recovered".to_owned(),
    )
    .await;
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_opened_again_and_the_current_value_read() {
    let server = WebSocketServer::start().await;
    server.set(r#"{"beta": false, "max_items": 1}"#);
    let sources = sources(&server, WebSocketSource::new());
    let live = Flags::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();

    // The watch's connection is open (the start-up read's is closed).
    eventually(
        Duration::from_secs(5),
        || server.accepted() >= 2 && server.connections() == 1,
        || "the watch never connected".to_owned(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The value changes and the push is lost; then the connection drops. The watch
    // connects again and reads the current value, the first message after connecting.
    server.set_unannounced(r#"{"beta": true, "max_items": 2}"#);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(live.get().flags.max_items, 1, "nothing was pushed yet");
    server.disconnect_all();
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().flags.max_items, 2);
    assert!(server.accepted() >= 3, "a new connection was opened");
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_first_message_is_a_clear_error_or_the_fallback() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Limits {
        #[component(stream_from = "websocket", url = "ws://config.service/limits")]
        max: u32,
        #[component(
            stream_from = "websocket",
            url = "ws://config.service/other",
            fallback = "7"
        )]
        other: u32,
    }
    let server = WebSocketServer::start().await; // sends nothing
    let sources = sources(
        &server,
        WebSocketSource::new().with_first_message_timeout(Duration::from_millis(300)),
    );
    let errors = Limits::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{e}");
    for part in [
        "Limits.max",
        "websocket",
        "ws://config.service/limits",
        "no message within",
    ] {
        assert!(e.contains(part), "{part:?} missing from: {e}");
    }

    // A server that is not there at all: unavailable, naming the URL.
    let nowhere = Sources::new().register(
        "websocket",
        WebSocketSource::new().resolve("config.service", "127.0.0.1:1".parse().unwrap()),
    );
    let errors = Limits::fetch_all_components_with(&nowhere)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{}", errors[0]);
    assert!(
        errors[0].to_string().contains("cannot connect"),
        "{}",
        errors[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_and_selected_members_convert() {
    #[derive(AsyncAssign, Debug)]
    struct Picked {
        #[component(
            stream_from = "websocket",
            url = "ws://config.service/x",
            field = "beta"
        )]
        beta: bool,
        #[component(
            stream_from = "websocket",
            url = "ws://config.service/x",
            pointer = "/limits/max"
        )]
        max: u16,
    }
    let server = WebSocketServer::start().await;
    server.set_binary(br#"{"beta": true, "limits": {"max": 9}}"#.to_vec());
    let sources = sources(&server, WebSocketSource::new());
    let picked = Picked::fetch_all_components_with(&sources).await.unwrap();
    assert!(picked.beta);
    assert_eq!(picked.max, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_field_does_not_stop_the_other_fields_being_watched() {
    use component_model::ConsulSource;
    use component_model::test_util::ConsulDouble;
    // No field is marked `watch`: all are watched, the stream as well as the Consul key.
    #[derive(AsyncAssign, Debug)]
    struct Mixed {
        #[component(stream_from = "websocket", url = "ws://config.service/flags")]
        flags: FeatureFlags,
        #[component(fetch_from = "consul", key = "app/workers")]
        workers: u32,
    }
    let server = WebSocketServer::start().await;
    server.set(r#"{"beta": false, "max_items": 1}"#);
    let consul = ConsulDouble::start().await;
    consul.put("app/workers", "2");
    let sources = sources(&server, WebSocketSource::new())
        .register("consul", ConsulSource::new(consul.address()));
    let live = Mixed::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();
    consul.put("app/workers", "3");
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().workers, 3);
    server.set(r#"{"beta": true, "max_items": 1}"#);
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert!(live.get().flags.beta);
    live.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_to_a_server_without_tls_is_an_error_not_a_panic() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Secure {
        #[component(stream_from = "websocket", url = "wss://config.service/flags")]
        flags: FeatureFlags,
    }
    let server = WebSocketServer::start().await;
    server.set(r#"{"beta": false, "max_items": 1}"#);
    let sources = sources(
        &server,
        WebSocketSource::new().with_first_message_timeout(Duration::from_secs(2)),
    );
    let errors = Secure::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let e = errors[0].to_string();
    assert!(
        e.contains("Secure.flags") && e.contains("wss://config.service/flags"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_hangs_up_at_once_is_retried_with_a_growing_backoff() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Completes the websocket handshake, then closes without a message.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(tcp).await {
                counting.fetch_add(1, Ordering::SeqCst);
                drop(ws);
            }
        }
    });
    #[derive(AsyncAssign, Debug)]
    struct Hung {
        #[component(
            stream_from = "websocket",
            url = "ws://config.service/x",
            fallback = "1"
        )]
        n: u32,
    }
    let sources = Sources::new().register(
        "websocket",
        WebSocketSource::new()
            .resolve("config.service", addr)
            .with_first_message_timeout(Duration::from_millis(200)),
    );
    let live = Hung::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().n, 1);
    let before = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = accepted.load(Ordering::SeqCst) - before;
    // 500 ms doubling (with jitter): a handful of attempts in 4 s, not one every 500 ms.
    assert!(during <= 5, "{during} connections in 4 s");
    live.stop();
    server.abort();
}
