//! Push streams: how fast a published message reaches `Live::changes()`, against the bare
//! client's receive latency measured in the same run.
//!
//! 200 messages each, p50/p99 (publish → item), for MQTT (Mosquitto at 127.0.0.1:1883,
//! retained publishes; the bare client is a rumqttc subscription), Kafka (tansu at 127.0.0.1:9092, with
//! the default 500 ms long poll and with 50 ms: tansu holds a poll for the whole wait),
//! the in-process websocket server, NATS (a core subject at 127.0.0.1:4222) and a Redis
//! stream (127.0.0.1:6379). The baseline is the same message received by a bare client of
//! the same crate (an rskafka long-poll loop, a tokio-tungstenite client, an async-nats
//! subscription, an `XREAD BLOCK` loop), with nothing after it. The goal: p99 ≤ the bare
//! p99 + the quiescence window + 5 ms.
//!
//! A broker that is not up is skipped with a message. Run:
//! `cargo bench -p component_model_benches --bench streams`.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use component_model::test_util::WebSocketServer;
use component_model::{
    AsyncAssign, EnvSource, KafkaSource, Live, MqttSource, NatsSource, RedisSource, Sources,
    WebSocketSource,
};
use futures::StreamExt;

use component_model_benches::propagation::{CHANGES as MESSAGES, QUIET, report};

#[derive(AsyncAssign, Debug)]
struct FromKafka {
    #[component(stream_from = "kafka", topic = "${CM_BENCH_TOPIC}")]
    n: u64,
}

#[derive(AsyncAssign, Debug)]
struct FromWebSocket {
    #[component(stream_from = "websocket", url = "ws://config.service/n")]
    n: u64,
}

#[derive(AsyncAssign, Debug)]
struct FromNats {
    #[component(stream_from = "nats", topic = "${CM_BENCH_TOPIC}", fallback = "0")]
    n: u64,
}

#[derive(AsyncAssign, Debug)]
struct FromMqtt {
    #[component(stream_from = "mqtt", topic = "${CM_BENCH_TOPIC}")]
    n: u64,
}

#[derive(AsyncAssign, Debug)]
struct FromRedis {
    #[component(stream_from = "redis", topic = "${CM_BENCH_TOPIC}")]
    n: u64,
}

fn sources_for(topic: &str) -> Sources {
    Sources::new().with_env(EnvSource::from_map([("CM_BENCH_TOPIC", topic)]))
}

/// Publish → `changes()` item for each of the messages.
async fn live_latency<T: Send + Sync + 'static>(
    live: &Live<T>,
    publish: impl FnMut(u64),
) -> Vec<Duration> {
    component_model_benches::propagation::live_latency(live, Duration::from_millis(300), publish)
        .await
}

/// Bare receive latency: `publish`, then wait for `received` to say it arrived.
async fn bare_latency(
    mut publish: impl FnMut(u64),
    received: &mut tokio::sync::mpsc::Receiver<()>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES as u64 {
        let started = Instant::now();
        publish(1_000 + i);
        tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("the bare client received nothing")
            .expect("receiver open");
        out.push(started.elapsed());
    }
    out
}

async fn kafka_rows(wait: Duration) {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;
    let Ok(Ok(client)) = tokio::time::timeout(
        Duration::from_secs(5),
        rskafka::client::ClientBuilder::new(vec!["127.0.0.1:9092".into()]).build(),
    )
    .await
    else {
        println!("kafka      skipped: tansu at 127.0.0.1:9092 is not up");
        return;
    };
    let topic = format!(
        "cm_bench_stream_{}_{}",
        std::process::id(),
        wait.as_millis()
    );
    client
        .controller_client()
        .expect("controller")
        .create_topic(&topic, 1, 1, 5_000)
        .await
        .expect("create topic");
    let pc = Arc::new(
        client
            .partition_client(&topic, 0, UnknownTopicHandling::Retry)
            .await
            .expect("partition"),
    );
    let publish = {
        let pc = pc.clone();
        move |n: u64| {
            let pc = pc.clone();
            tokio::spawn(async move {
                let record = Record {
                    key: None,
                    value: Some(n.to_string().into_bytes()),
                    headers: Default::default(),
                    timestamp: rskafka::chrono::DateTime::from_timestamp_millis(0).expect("ts"),
                };
                pc.produce(vec![record], Compression::NoCompression)
                    .await
                    .expect("produce");
            });
        }
    };
    publish(0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Bare: a long-poll loop from the next offset.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let consumer = {
        let pc = pc.clone();
        tokio::spawn(async move {
            let mut next = 1;
            loop {
                let (records, _) = pc
                    .fetch_records(next, 1..1_000_000, wait.as_millis() as i32)
                    .await
                    .expect("fetch");
                for r in records {
                    next = r.offset + 1;
                    let _ = tx.send(()).await;
                }
            }
        })
    };
    let bare = bare_latency(&publish, &mut rx).await;
    consumer.abort();
    let sources = sources_for(&topic).register(
        "kafka",
        KafkaSource::new(["127.0.0.1:9092"]).with_long_poll(wait),
    );
    let live = Live::<FromKafka>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, publish).await;
    report(
        &format!("kafka {}ms", wait.as_millis()),
        "bare",
        bare,
        samples,
    );
    drop(live);
    let _ = client
        .controller_client()
        .expect("controller")
        .delete_topic(&topic, 5_000)
        .await;
}

async fn websocket_rows() {
    let server = Arc::new(WebSocketServer::start().await);
    server.set("0");
    let publish = {
        let server = server.clone();
        move |n: u64| server.set(n.to_string())
    };
    // Bare: a tokio-tungstenite client.
    let (mut socket, _) = tokio_tungstenite::connect_async(server.url("/n"))
        .await
        .expect("connect");
    let _first = socket.next().await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        while let Some(Ok(_)) = socket.next().await {
            let _ = tx.send(()).await;
        }
    });
    let bare = bare_latency(&publish, &mut rx).await;
    reader.abort();
    let sources = Sources::new().register(
        "websocket",
        WebSocketSource::new().resolve("config.service", server.address()),
    );
    let live = Live::<FromWebSocket>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, publish).await;
    report("websocket", "bare", bare, samples);
}

async fn nats_rows() {
    let Ok(Ok(client)) = tokio::time::timeout(
        Duration::from_secs(5),
        async_nats::connect("nats://127.0.0.1:4222"),
    )
    .await
    else {
        println!("nats       skipped: NATS at 127.0.0.1:4222 is not up");
        return;
    };
    let subject = format!("cm.bench.{}", std::process::id());
    let publish = {
        let client = client.clone();
        let subject = subject.clone();
        move |n: u64| {
            let client = client.clone();
            let subject = subject.clone();
            tokio::spawn(async move {
                client
                    .publish(subject, n.to_string().into())
                    .await
                    .expect("publish");
                client.flush().await.expect("flush");
            });
        }
    };
    let mut sub = client.subscribe(subject.clone()).await.expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        while sub.next().await.is_some() {
            let _ = tx.send(()).await;
        }
    });
    let bare = bare_latency(&publish, &mut rx).await;
    reader.abort();
    let sources = sources_for(&subject).register(
        "nats",
        NatsSource::new("nats://127.0.0.1:4222")
            .with_first_message_timeout(Duration::from_millis(100)),
    );
    let live = Live::<FromNats>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, publish).await;
    report("nats", "bare", bare, samples);
}

async fn mqtt_rows() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    if tokio::net::TcpStream::connect("127.0.0.1:1883")
        .await
        .is_err()
    {
        println!("mqtt         skipped: Mosquitto at 127.0.0.1:1883 is not up");
        return;
    }
    let topic = format!("cm/bench/{}", std::process::id());
    let (client, mut events) = AsyncClient::new(
        MqttOptions::new(
            format!("cm-bench-pub-{}", std::process::id()),
            "127.0.0.1",
            1883,
        ),
        64,
    );
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let publish = {
        let client = client.clone();
        let topic = topic.clone();
        move |n: u64| {
            let client = client.clone();
            let topic = topic.clone();
            tokio::spawn(async move {
                client
                    .publish(topic, QoS::AtLeastOnce, true, n.to_string())
                    .await
                    .expect("publish");
            });
        }
    };
    publish(0);
    // Bare: a rumqttc subscription.
    let (sub, mut sub_events) = AsyncClient::new(
        MqttOptions::new(
            format!("cm-bench-sub-{}", std::process::id()),
            "127.0.0.1",
            1883,
        ),
        64,
    );
    sub.subscribe(&topic, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::spawn(async move {
        let mut first = true;
        while let Ok(event) = sub_events.poll().await {
            if let Event::Incoming(Packet::Publish(_)) = event {
                // The retained message on subscribing is not one of the 200.
                if !std::mem::take(&mut first) {
                    let _ = tx.send(()).await;
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bare = bare_latency(&publish, &mut rx).await;
    reader.abort();
    let sources = sources_for(&topic).register("mqtt", MqttSource::new("mqtt://127.0.0.1:1883"));
    let live = Live::<FromMqtt>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, publish).await;
    report("mqtt", "bare", bare, samples);
    drop(live);
    let _ = client
        .publish(&topic, QoS::AtLeastOnce, true, Vec::new())
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn redis_rows() {
    let Ok(client) = redis::Client::open("redis://127.0.0.1:6379") else {
        return;
    };
    let Ok(conn) = client.get_multiplexed_async_connection().await else {
        println!("redis      skipped: Redis at 127.0.0.1:6379 is not up");
        return;
    };
    let key = format!("cm_bench_stream_{}", std::process::id());
    let publish = {
        let conn = conn.clone();
        let key = key.clone();
        move |n: u64| {
            let mut conn = conn.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let _: String = redis::cmd("XADD")
                    .arg(&key)
                    .arg("*")
                    .arg("value")
                    .arg(n)
                    .query_async(&mut conn)
                    .await
                    .expect("XADD");
            });
        }
    };
    publish(0);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Bare: an XREAD BLOCK loop on a connection of its own.
    let mut own = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let reader = {
        let key = key.clone();
        tokio::spawn(async move {
            let mut last = "$".to_owned();
            loop {
                let reply: redis::Value = redis::cmd("XREAD")
                    .arg("BLOCK")
                    .arg(1000)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(&last)
                    .query_async(&mut own)
                    .await
                    .expect("XREAD");
                if let Some(id) = last_id(&reply) {
                    last = id;
                    let _ = tx.send(()).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bare = bare_latency(&publish, &mut rx).await;
    reader.abort();
    let sources = sources_for(&key).register("redis", RedisSource::new("redis://127.0.0.1:6379"));
    let live = Live::<FromRedis>::builder(&sources)
        .quiescence(QUIET, QUIET * 4)
        .start()
        .await
        .expect("live");
    let samples = live_latency(&live, publish).await;
    report("redis", "bare", bare, samples);
    drop(live);
    let mut conn = conn;
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

/// The last entry ID of an `XREAD` reply.
fn last_id(reply: &redis::Value) -> Option<String> {
    use redis::Value;
    let entries = match reply {
        Value::Array(streams) => match streams.first()? {
            Value::Array(pair) => pair.get(1)?,
            _ => return None,
        },
        Value::Map(pairs) => &pairs.first()?.1,
        _ => return None,
    };
    let Value::Array(entries) = entries else {
        return None;
    };
    match entries.last()? {
        Value::Array(entry) => match entry.first()? {
            Value::BulkString(id) => Some(String::from_utf8_lossy(id).into_owned()),
            _ => None,
        },
        _ => None,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        println!("propagation, {MESSAGES} messages each, quiescence {QUIET:?}:");
        kafka_rows(Duration::from_millis(500)).await;
        kafka_rows(Duration::from_millis(50)).await;
        websocket_rows().await;
        nats_rows().await;
        mqtt_rows().await;
        redis_rows().await;
    });
}
