//! README promises about push streams that no other test pinned (issue 37): Kafka records
//! compressed with gzip and snappy are read; the message bound (1 MiB by default for Kafka
//! and NATS, the reply bound — 16 MiB by default — for a Redis stream entry): a message
//! just at the bound is the value, one byte more is `TooLarge` and a rejected update;
//! `KafkaSource::with_lookback`; `KAFKA_BROKERS`, `NATS_URL` and `MQTT_URL` registering
//! `kafka`, `nats` and `mqtt` in `Sources::from_env()` (read from a map with
//! `Sources::from_env_source`, as the README says to for tests).

use std::time::Duration;

use async_nats::jetstream;
use component_model::{
    AsyncAssign, ConfigUpdate, EnvSource, ErrorKind, KafkaSource, NatsSource, RedisSource, Sources,
};
use component_model_tests::{skip, unique};
use rskafka::client::Client;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use crate::kafka::{BROKER, admin, chrono_now, create_topic, drop_topic, produce};
use crate::nats::nats_server_binary;
use crate::{Process, applied, free_port, next_update};

const MIB: usize = 1024 * 1024;

/// The value of a `String` field holding `n` bytes: `n` times `c`.
fn sized(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

/// One record (key `app`) produced with `compression`.
async fn produce_compressed(client: &Client, topic: &str, value: &[u8], compression: Compression) {
    let pc = client
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    pc.produce(
        vec![Record {
            key: Some(b"app".to_vec()),
            value: Some(value.to_vec()),
            headers: Default::default(),
            timestamp: chrono_now(),
        }],
        compression,
    )
    .await
    .unwrap();
}

/// The kind and text of the one error of a failed fetch.
fn only_error<T: std::fmt::Debug>(
    result: Result<T, Vec<component_model::ComponentError>>,
) -> (ErrorKind, String) {
    let errors = result.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    (errors[0].kind(), errors[0].to_string())
}

/// The errors of a rejected update (their kinds and the reason), or a panic.
fn rejected_errors(update: &ConfigUpdate) -> (Vec<ErrorKind>, String) {
    match update {
        ConfigUpdate::Rejected { reason, errors, .. } => {
            (errors.iter().map(|e| e.kind()).collect(), reason.clone())
        }
        other => panic!("expected a rejected update, got {other}"),
    }
}

#[derive(AsyncAssign, Debug)]
struct KafkaText {
    #[component(stream_from = "kafka", topic = "${CM_TOPIC}", key = "app")]
    text: String,
}

fn topic_env(topic: &str) -> EnvSource {
    EnvSource::from_map([("CM_TOPIC", topic)])
}

// ---------------------------------------------------------------------------------------
// 1. gzip and snappy records (README, Push streams, "Per backend": "gzip and snappy records")

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_compressed_with_gzip_and_snappy_are_read_at_start_and_as_updates() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let topic = unique("cm_readme_compressed");
    create_topic(&admin, &topic, 1).await;
    let sources = Sources::new()
        .with_env(topic_env(&topic))
        .register("kafka", KafkaSource::new([BROKER]));

    // At start: the newest record, gzip, then snappy.
    produce_compressed(&admin, &topic, b"from-gzip", Compression::Gzip).await;
    let got = KafkaText::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(got.text, "from-gzip");
    produce_compressed(&admin, &topic, b"from-snappy", Compression::Snappy).await;
    let fresh = Sources::new()
        .with_env(topic_env(&topic))
        .register("kafka", KafkaSource::new([BROKER]));
    let got = KafkaText::fetch_all_components_with(&fresh).await.unwrap();
    assert_eq!(got.text, "from-snappy");

    // Watched: each compressed record is an update.
    let live = KafkaText::watch_with(&fresh).await.unwrap();
    let mut updates = live.changes();
    produce_compressed(&admin, &topic, b"update-gzip", Compression::Gzip).await;
    applied(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(live.get().text, "update-gzip");
    produce_compressed(&admin, &topic, b"update-snappy", Compression::Snappy).await;
    applied(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(live.get().text, "update-snappy");
    live.stop();

    // The broker hands the batches back compressed (so the reads above inflated them):
    // a gzip batch of 6 MiB of zeros (a few KiB on the wire) is refused by the source's
    // relay for what it would inflate to — the README's "a compressed batch that would
    // inflate past four times the bound" — not for its size on the wire.
    let bomb_topic = unique("cm_readme_gzip_bound");
    create_topic(&admin, &bomb_topic, 1).await;
    produce_compressed(&admin, &bomb_topic, &vec![0u8; 6 * MIB], Compression::Gzip).await;
    let small = Sources::new().with_env(topic_env(&bomb_topic)).register(
        "kafka",
        KafkaSource::new([BROKER])
            .with_max_message(1)
            .with_timeout(Duration::from_secs(5)),
    );
    let (kind, text) = only_error(KafkaText::fetch_all_components_with(&small).await);
    assert_eq!(kind, ErrorKind::TooLarge, "{text}");
    assert!(
        text.contains("(gzip,") && text.contains("inflates past"),
        "{text}"
    );

    drop_topic(&admin, &topic).await;
    drop_topic(&admin, &bomb_topic).await;
}

// ---------------------------------------------------------------------------------------
// 2. The message bound: Kafka and NATS 1 MiB (`with_max_message`), a Redis stream entry
//    the Redis source's reply bound, 16 MiB (`with_max_reply`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_message_of_one_mib_is_read_and_one_byte_more_is_too_large() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let topic = unique("cm_readme_kafka_bound");
    create_topic(&admin, &topic, 1).await;
    let sources = || {
        Sources::new()
            .with_env(topic_env(&topic))
            .register("kafka", KafkaSource::new([BROKER]))
    };

    // At the bound: the value.
    let at_bound = sized('a', MIB);
    produce(&admin, &topic, 0, Some("app"), Some(&at_bound)).await;
    let got = KafkaText::fetch_all_components_with(&sources())
        .await
        .unwrap();
    assert_eq!(got.text.len(), MIB);

    // One byte over: `TooLarge`, naming the sizes.
    produce(&admin, &topic, 0, Some("app"), Some(&sized('b', MIB + 1))).await;
    let (kind, text) = only_error(KafkaText::fetch_all_components_with(&sources()).await);
    assert_eq!(kind, ErrorKind::TooLarge, "{text}");
    assert!(
        text.contains("KafkaText.text") && text.contains("over the limit of 1048576 bytes"),
        "{text}"
    );

    // Watched: an oversize message is a rejected update and the old value stays; a
    // message at the bound after it applies.
    produce(&admin, &topic, 0, Some("app"), Some("small")).await;
    let live = KafkaText::watch_with(&sources()).await.unwrap();
    assert_eq!(live.get().text, "small");
    let mut updates = live.changes();
    produce(&admin, &topic, 0, Some("app"), Some(&sized('c', MIB + 1))).await;
    let (kinds, reason) =
        rejected_errors(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(kinds, [ErrorKind::TooLarge], "{reason}");
    assert!(
        reason.contains("over the limit of 1048576 bytes"),
        "{reason}"
    );
    assert_eq!(
        live.get().text,
        "small",
        "the oversize message was not applied"
    );
    produce(&admin, &topic, 0, Some("app"), Some(&sized('d', MIB))).await;
    // A refresh that reads the topic before the new message is visible refuses the
    // oversize one again (seen with tansu on 2026-12-06, with the code of before too):
    // the old value stays, and the message at the bound applies next.
    let mut update = next_update(&mut updates, Duration::from_secs(15)).await;
    for _ in 0..3 {
        if !matches!(update, ConfigUpdate::Rejected { .. }) {
            break;
        }
        let (kinds, reason) = rejected_errors(&update);
        assert_eq!(kinds, [ErrorKind::TooLarge], "{reason}");
        assert_eq!(live.get().text, "small");
        update = next_update(&mut updates, Duration::from_secs(15)).await;
    }
    applied(&update);
    assert_eq!(live.get().text, sized('d', MIB));
    live.stop();
    drop_topic(&admin, &topic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_message_of_one_mib_is_read_and_one_byte_more_is_too_large() {
    // nats-server refuses payloads over 1 MB by default (its own `max_payload`), so a
    // server of the test's own, allowing 4 MiB, shows the source's bound.
    let Some(binary) = nats_server_binary() else {
        skip("the nats-server binary", "not found");
        return;
    };
    let port = free_port();
    let dir = std::env::temp_dir().join(unique("cm_readme_nats"));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("server.conf");
    std::fs::write(
        &conf,
        format!(
            "listen: \"127.0.0.1:{port}\"\nmax_payload: 4194304\njetstream {{\n  store_dir: \"{}\"\n}}\n",
            dir.join("store").display()
        ),
    )
    .unwrap();
    let mut command = tokio::process::Command::new(&binary);
    command.arg("-c").arg(&conf);
    let server = Process::start(&mut command, port).await;
    let url = format!("nats://127.0.0.1:{port}");
    let nc = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(nc.clone());
    js.create_stream(jetstream::stream::Config {
        name: "BOUND".into(),
        subjects: vec!["config.bound".into()],
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let publish = |payload: String| {
        let js = js.clone();
        async move {
            js.publish("config.bound", payload.into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
    };

    #[derive(AsyncAssign, Debug)]
    struct NatsText {
        #[component(stream_from = "nats", topic = "config.bound")]
        text: String,
    }
    let sources = || Sources::new().register("nats", NatsSource::new(&url));

    publish(sized('a', MIB)).await;
    let got = NatsText::fetch_all_components_with(&sources())
        .await
        .unwrap();
    assert_eq!(got.text.len(), MIB);

    publish(sized('b', MIB + 1)).await;
    let (kind, text) = only_error(NatsText::fetch_all_components_with(&sources()).await);
    assert_eq!(kind, ErrorKind::TooLarge, "{text}");
    assert!(
        text.contains("NatsText.text") && text.contains("over the limit of 1048576 bytes"),
        "{text}"
    );

    publish("small".to_owned()).await;
    let live = NatsText::watch_with(&sources()).await.unwrap();
    assert_eq!(live.get().text, "small");
    let mut updates = live.changes();
    publish(sized('c', MIB + 1)).await;
    let (kinds, reason) =
        rejected_errors(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(kinds, [ErrorKind::TooLarge], "{reason}");
    assert_eq!(
        live.get().text,
        "small",
        "the oversize message was not applied"
    );
    publish(sized('d', MIB)).await;
    applied(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(live.get().text, sized('d', MIB));
    live.stop();
    drop(nc);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stream_an_entry_at_the_reply_bound_is_read_and_one_byte_more_is_too_large() {
    const BOUND: usize = 16 * MIB; // RedisSource's default reply bound
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut conn = match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip("Redis at 127.0.0.1:6379", e),
        Err(_) => return skip("Redis at 127.0.0.1:6379", "no answer within 5s"),
    };
    let key = unique("cm:readme:bound");
    let mut xadd = async |value: String| {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("value")
            .arg(value)
            .query_async(&mut conn)
            .await
            .unwrap();
    };

    #[derive(AsyncAssign, Debug)]
    struct RedisText {
        #[component(stream_from = "redis", topic = "${CM_TOPIC}")]
        text: String,
    }
    let sources = || {
        Sources::new()
            .with_env(topic_env(&key))
            .register("redis", RedisSource::new("redis://127.0.0.1:6379"))
    };

    xadd(sized('a', BOUND)).await;
    let got = RedisText::fetch_all_components_with(&sources())
        .await
        .unwrap();
    assert_eq!(got.text.len(), BOUND);

    xadd(sized('b', BOUND + 1)).await;
    let (kind, text) = only_error(RedisText::fetch_all_components_with(&sources()).await);
    assert_eq!(kind, ErrorKind::TooLarge, "{text}");
    assert!(
        text.contains("RedisText.text") && text.contains("with_max_reply"),
        "{text}"
    );

    xadd("small".to_owned()).await;
    let live = RedisText::watch_with(&sources()).await.unwrap();
    assert_eq!(live.get().text, "small");
    let mut updates = live.changes();
    xadd(sized('c', BOUND + 1)).await;
    let (kinds, reason) =
        rejected_errors(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(kinds, [ErrorKind::TooLarge], "{reason}");
    assert_eq!(
        live.get().text,
        "small",
        "the oversize entry was not applied"
    );
    xadd(sized('d', BOUND)).await;
    applied(&next_update(&mut updates, Duration::from_secs(15)).await);
    assert_eq!(live.get().text.len(), BOUND);
    assert!(live.get().text.starts_with('d'));
    live.stop();
    let _: () = redis::AsyncCommands::del(&mut conn, &key).await.unwrap();
}

// ---------------------------------------------------------------------------------------
// 6. `KafkaSource::with_lookback`: how many messages of each partition the start-up read
//    looks at.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_with_lookback_bounds_how_far_back_the_start_up_read_looks_for_the_key() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let topic = unique("cm_readme_lookback");
    create_topic(&admin, &topic, 1).await;
    // Offset 0: the key's only message; offsets 1..=5: other keys.
    produce(&admin, &topic, 0, Some("app"), Some("the-value")).await;
    for i in 0..5 {
        produce(&admin, &topic, 0, Some("other"), Some(&i.to_string())).await;
    }
    let with = |lookback: Option<i64>| {
        let kafka = KafkaSource::new([BROKER]);
        let kafka = match lookback {
            Some(n) => kafka.with_lookback(n),
            None => kafka,
        };
        Sources::new()
            .with_env(topic_env(&topic))
            .register("kafka", kafka)
    };

    // The last 5 messages do not reach offset 0: not found, saying how far it looked.
    let (kind, text) = only_error(KafkaText::fetch_all_components_with(&with(Some(5))).await);
    assert_eq!(kind, ErrorKind::NotFound, "{text}");
    assert!(
        text.contains("no message with key `app` in the last 5 messages"),
        "{text}"
    );
    // The last 6 do; so does the default (500).
    let got = KafkaText::fetch_all_components_with(&with(Some(6)))
        .await
        .unwrap();
    assert_eq!(got.text, "the-value");
    let got = KafkaText::fetch_all_components_with(&with(None))
        .await
        .unwrap();
    assert_eq!(got.text, "the-value");
    drop_topic(&admin, &topic).await;
}

// ---------------------------------------------------------------------------------------
// 5. `KAFKA_BROKERS`, `NATS_URL`, `MQTT_URL` register `kafka`, `nats`, `mqtt` in
//    `Sources::from_env()` (read from a map: `Sources::from_env_source`).

#[test]
fn without_their_variables_from_env_registers_no_kafka_nats_or_mqtt() {
    let sources = Sources::from_env_source(EnvSource::from_map([("UNRELATED", "1")]));
    for name in ["kafka", "nats", "mqtt"] {
        assert!(!sources.contains(name), "{name} in {:?}", sources.names());
    }
    let sources = Sources::from_env_source(EnvSource::from_map([
        ("KAFKA_BROKERS", "127.0.0.1:9092"),
        ("NATS_URL", "nats://127.0.0.1:4222"),
        ("MQTT_URL", "mqtt://127.0.0.1:1883"),
    ]));
    for name in ["kafka", "nats", "mqtt"] {
        assert!(
            sources.contains(name),
            "{name} not in {:?}",
            sources.names()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_brokers_nats_url_and_mqtt_url_register_sources_that_read_from_those_servers() {
    let Some(admin) = admin(BROKER).await else {
        return;
    };
    let Some(nc) = crate::nats::client().await else {
        return;
    };
    if let Err(e) = tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        return skip("Mosquitto at 127.0.0.1:1883", e);
    }

    // One value per broker.
    let topic = unique("cm_readme_from_env");
    create_topic(&admin, &topic, 1).await;
    produce(&admin, &topic, 0, None, Some("11")).await;
    let js = jetstream::new(nc.clone());
    let stream = unique("CM_README_FROM_ENV");
    let subject = format!("cm.readme.{}", unique("env"));
    js.create_stream(jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish(subject.clone(), "22".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mqtt_topic = format!("cm/{}/level", unique("readme"));
    let (mqtt, mut events) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(unique("cm_readme_pub"), "127.0.0.1", 1883),
        16,
    );
    let driver = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    mqtt.publish(&mqtt_topic, rumqttc::QoS::AtLeastOnce, true, "33")
        .await
        .unwrap();

    #[derive(AsyncAssign, Debug)]
    struct FromEnv {
        #[component(stream_from = "kafka", topic = "${CM_KAFKA_TOPIC}")]
        kafka: u32,
        #[component(stream_from = "nats", topic = "${CM_NATS_SUBJECT}")]
        nats: u32,
        #[component(stream_from = "mqtt", topic = "${CM_MQTT_TOPIC}")]
        mqtt: u32,
    }
    let vars = |kafka: &str| {
        EnvSource::from_map([
            // Comma-separated: the first broker is down, the second answers.
            ("KAFKA_BROKERS", kafka.to_owned()),
            ("NATS_URL", crate::nats::NATS.to_owned()),
            ("MQTT_URL", "mqtt://127.0.0.1:1883".to_owned()),
            ("CM_KAFKA_TOPIC", topic.clone()),
            ("CM_NATS_SUBJECT", subject.clone()),
            ("CM_MQTT_TOPIC", mqtt_topic.clone()),
        ])
    };
    let sources = Sources::from_env_source(vars(&format!("127.0.0.1:1, {BROKER}")));
    let got = FromEnv::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((got.kafka, got.nats, got.mqtt), (11, 22, 33));

    // The addresses are the variables' own: a broker list naming only a closed port is
    // what the kafka source tries (and reports).
    let elsewhere = Sources::from_env_source(vars(" 127.0.0.1:1 "));
    let errors = FromEnv::fetch_all_components_with(&elsewhere)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert!(
        e.contains("FromEnv.kafka") && e.contains("127.0.0.1:1"),
        "{e}"
    );

    // Without the variables, the fields name the variable to set.
    let none = Sources::from_env_source(EnvSource::from_map([
        ("CM_KAFKA_TOPIC", topic.as_str()),
        ("CM_NATS_SUBJECT", subject.as_str()),
        ("CM_MQTT_TOPIC", mqtt_topic.as_str()),
    ]));
    let errors = FromEnv::fetch_all_components_with(&none).await.unwrap_err();
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for var in ["KAFKA_BROKERS", "NATS_URL", "MQTT_URL"] {
        assert!(all.contains(var), "{var} not named in:\n{all}");
    }

    mqtt.publish(&mqtt_topic, rumqttc::QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    driver.abort();
    let _ = js.delete_stream(&stream).await;
    drop_topic(&admin, &topic).await;
}
