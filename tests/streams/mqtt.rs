//! `stream_from = "mqtt"` against the machine's Mosquitto (127.0.0.1:1883): retained
//! messages as the start-up value, every publish an update.

use std::time::Duration;

use component_model::{AsyncAssign, ErrorKind, MqttSource, Sources};
use component_model_tests::{skip, unique};
use rumqttc::{AsyncClient, MqttOptions, QoS};

use crate::{applied, eventually, next_update, rejected};

const BROKER: &str = "mqtt://127.0.0.1:1883";

/// A publisher connected to Mosquitto, or `None` (after a skip) when it is down.
async fn publisher() -> Option<(AsyncClient, tokio::task::JoinHandle<()>)> {
    if let Err(e) = tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        skip("Mosquitto at 127.0.0.1:1883", e);
        return None;
    }
    let options = MqttOptions::new(unique("cm_test_pub"), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 64);
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    Some((client, driver))
}

async fn publish(client: &AsyncClient, topic: &str, payload: &[u8], retain: bool) {
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
        .await
        .unwrap();
}

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Device {
    interval: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retained_message_is_the_value_and_each_publish_an_update() {
    let Some((client, driver)) = publisher().await else {
        return;
    };
    let topic = format!("cm/{}/config", unique("device"));
    publish(&client, &topic, br#"{"interval": 10}"#, true).await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "mqtt", topic = "${CM_TOPIC}")]
        device: Device,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register("mqtt", MqttSource::new(BROKER).with_max_message(256));
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().device, Device { interval: 10 });
    let mut updates = live.changes();

    publish(&client, &topic, br#"{"interval": 20}"#, true).await;
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().device.interval, 20);

    publish(&client, &topic, b"not json", false).await;
    let update = next_update(&mut updates, Duration::from_secs(10)).await;
    let reason = rejected(&update);
    assert!(
        reason.contains("App.device") && reason.contains(&topic),
        "{reason}"
    );
    assert_eq!(live.get().device.interval, 20);

    // Over the bound: refused by the client, the update rejected, the connection opened
    // again (the retained value, 20, is read again) and the stream goes on.
    let big = format!(r#"{{"interval": 30, "pad": "{}"}}"#, "x".repeat(1000));
    publish(&client, &topic, big.as_bytes(), false).await;
    let update = next_update(&mut updates, Duration::from_secs(10)).await;
    let reason = rejected(&update);
    assert!(reason.contains("over the limit of 256 bytes"), "{reason}");
    assert_eq!(live.get().device.interval, 20);
    publish(&client, &topic, br#"{"interval": 40}"#, true).await;
    eventually(
        Duration::from_secs(15),
        || live.get().device.interval == 40,
        || {
            format!(
                "no recovery after the oversize message: {:?}",
                live.get().device
            )
        },
    )
    .await;

    live.stop();
    publish(&client, &topic, b"", true).await; // clears the retained message
    driver.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retained_message_or_no_broker_is_a_clear_error() {
    let Some((_client, driver)) = publisher().await else {
        return;
    };
    let topic = format!("cm/{}/empty", unique("device"));
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(stream_from = "mqtt", topic = "${CM_TOPIC}")]
        interval: u32,
        #[component(stream_from = "mqtt", topic = "${CM_TOPIC}/other", fallback = "5")]
        other: u32,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register(
            "mqtt",
            MqttSource::new(BROKER).with_first_message_timeout(Duration::from_millis(300)),
        );
    let errors = App::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.contains("App.interval") && e.contains(&topic) && e.contains("no retained message"),
        "{e}"
    );

    let down = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register(
            "mqtt",
            MqttSource::new("mqtt://user:pw-canary@127.0.0.1:1")
                .with_first_message_timeout(Duration::from_secs(2)),
        );
    let started = std::time::Instant::now();
    let errors = App::fetch_all_components_with(&down).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("App.interval") && all.contains("127.0.0.1:1"),
        "{all}"
    );
    assert!(!all.contains("pw-canary"), "{all}");
    driver.abort();
}
