//! Preflight of etcd, NATS JetStream KV and the brokers (NATS subjects, Kafka, MQTT,
//! WebSocket) against real servers: the machine's etcd (127.0.0.1:2379), NATS with
//! JetStream (127.0.0.1:4222), Mosquitto (127.0.0.1:1883) and tansu (127.0.0.1:9092) of
//! `scripts/services.sh`, a private etcd with authentication on (started here with
//! `/usr/bin/etcd`, `CM_ETCD_BIN` overrides it), and websocket servers of the test's own.
//!
//! Each case checks [`Source::preflight`] — one probe per request, in order, no value
//! read — and how long it takes. An unreachable server skips the case (fails under
//! `CM_REQUIRE_SERVICES=1`). Keys, buckets, topics and streams are unique per case and
//! removed after it.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use std::collections::HashMap;

use component_model::{
    Access, AsyncAssign, EnvSource, EtcdSource, FetchRequest, KafkaSource, MqttSource,
    NatsKvSource, NatsSource, Probe, Source, Sources, WebSocketSource,
};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::etcd::{Etcd, SHARED as ETCD, b64};

/// A value no probe, detail or log line may hold.
const CANARY: &str = "CANARY-preflight-value-7f3a";

/// A local port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The accesses of `probes`, for one assertion.
fn accesses(probes: &[Probe]) -> Vec<Access> {
    probes.iter().map(|p| p.access).collect()
}

/// Runs a preflight, printing how long it took (the figures of the report).
async fn timed(what: &str, source: &dyn Source, requests: Vec<FetchRequest>) -> Vec<Probe> {
    let n = requests.len();
    let started = Instant::now();
    let probes = source.preflight(requests).await;
    eprintln!(
        "preflight {what}: {n} request(s) in {:?}: {:?}",
        started.elapsed(),
        probes
            .iter()
            .map(|p| format!("{} ({})", p.access, p.detail.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
    );
    assert_eq!(probes.len(), n, "one probe per request");
    for p in &probes {
        assert!(
            !p.detail.as_deref().unwrap_or("").contains(CANARY),
            "{what}: {p:?}"
        );
    }
    probes
}

/// Asserts that a TRACE log of a preflight was captured and holds no value.
fn assert_no_value(what: &str, logs: &CapturedLogs) {
    let text = logs.text();
    assert!(
        !text.contains(CANARY),
        "{what}: the log holds a value:\n{text}"
    );
}

// ---------------------------------------------------------------------------------------
// etcd

/// Deletes every key under a prefix when dropped (a failing case too).
struct EtcdCleanup(String);

impl Drop for EtcdCleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(Etcd::new(ETCD).delete_prefix(&prefix));
        })
        .join();
    }
}

#[tokio::test]
async fn etcd_preflight_tells_present_missing_and_prefixes_without_reading_a_value() {
    let Some(etcd) = Etcd::shared().await else {
        return;
    };
    let p = format!("/{}/", unique("cm_preflight"));
    let _cleanup = EtcdCleanup(p.clone());
    etcd.put(&format!("{p}port"), CANARY).await;
    etcd.put(&format!("{p}tree/a"), CANARY).await;
    etcd.put(&format!("{p}tree/b"), CANARY).await;
    let tree = |max: Option<&'static str>| {
        let r = FetchRequest::for_source("etcd").with_param("prefix", format!("{p}tree/"));
        match max {
            Some(m) => r.with_param("max_keys", m),
            None => r,
        }
    };
    let requests = vec![
        FetchRequest::for_key("etcd", format!("{p}port")),
        FetchRequest::for_key("etcd", format!("{p}never")),
        tree(None),
        tree(Some("1")),
        FetchRequest::for_source("etcd").with_param("prefix", format!("{p}empty/")),
    ];
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        timed("etcd", &EtcdSource::new(ETCD), requests).await
    };
    assert_eq!(
        accesses(&probes),
        [
            Access::Readable,
            Access::Missing,
            Access::Readable,
            Access::Invalid,
            Access::Readable
        ],
        "{probes:?}"
    );
    assert!(
        probes[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("mod_revision ")),
        "{probes:?}"
    );
    assert_eq!(probes[2].detail.as_deref(), Some("2 keys under the prefix"));
    assert!(
        probes[3]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("over `max_keys` 1")),
        "{probes:?}"
    );
    assert_eq!(probes[4].detail.as_deref(), Some("0 keys under the prefix"));
    assert_no_value("etcd", &logs);
}

#[tokio::test]
async fn etcd_preflight_of_an_unreachable_cluster_is_unreachable_within_the_timeout() {
    let source = EtcdSource::endpoints([
        format!("http://127.0.0.1:{}", free_port()),
        format!("http://127.0.0.1:{}", free_port()),
    ])
    .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let probes = timed(
        "etcd unreachable",
        &source,
        vec![
            FetchRequest::for_key("etcd", "/a"),
            FetchRequest::for_source("etcd").with_param("prefix", "/b/"),
        ],
    )
    .await;
    assert_eq!(
        accesses(&probes),
        [Access::Unreachable, Access::Unreachable]
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A private etcd process on free ports (authentication is turned on by the case).
struct PrivateEtcd {
    child: std::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivateEtcd {
    async fn start() -> Option<PrivateEtcd> {
        let bin = std::env::var("CM_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_owned());
        let (port, peer) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(unique("cm_preflight_etcd"));
        let url = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let child = std::process::Command::new(&bin)
            .args(["--name", "cm-preflight", "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--initial-cluster")
            .arg(format!("cm-preflight={peer}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                skip("a private etcd process", format!("cannot start {bin}: {e}"));
                return None;
            }
        };
        let etcd = PrivateEtcd { child, dir, port };
        let http = Etcd::new(&etcd.url()).http;
        for _ in 0..100 {
            let health = http.get(format!("{}/health", etcd.url())).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Some(etcd);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        skip("a private etcd process", "it did not answer within 10 s");
        None
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn etcd_preflight_tells_rbac_denied_keys_from_refused_credentials() {
    let Some(server) = PrivateEtcd::start().await else {
        return;
    };
    let admin = Etcd::new(&server.url());
    admin.put("/a/x", CANARY).await;
    admin.put("/b", CANARY).await;
    let call = |path: &'static str, body: serde_json::Value| {
        let admin = admin.clone();
        async move { admin.call(path, body).await.unwrap() }
    };
    call(
        "/v3/auth/user/add",
        serde_json::json!({"name": "app", "password": "apw"}),
    )
    .await;
    call("/v3/auth/role/add", serde_json::json!({"name": "app"})).await;
    // Read access to `/a/x` only.
    call(
        "/v3/auth/role/grant",
        serde_json::json!({"name": "app", "perm": {"permType": "READ", "key": b64(b"/a/x")}}),
    )
    .await;
    call(
        "/v3/auth/user/grant",
        serde_json::json!({"user": "app", "role": "app"}),
    )
    .await;
    call(
        "/v3/auth/user/add",
        serde_json::json!({"name": "root", "password": "rpw"}),
    )
    .await;
    call("/v3/auth/role/add", serde_json::json!({"name": "root"})).await;
    call(
        "/v3/auth/user/grant",
        serde_json::json!({"user": "root", "role": "root"}),
    )
    .await;
    call("/v3/auth/enable", serde_json::json!({})).await;

    let requests = || {
        vec![
            FetchRequest::for_key("etcd", "/a/x"),
            FetchRequest::for_key("etcd", "/b"),
            FetchRequest::for_source("etcd").with_param("prefix", "/a/"),
        ]
    };
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let app = EtcdSource::new(server.url()).with_auth("app", "apw");
    let probes = timed("etcd rbac", &app, requests()).await;
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Denied, Access::Denied],
        "{probes:?}"
    );
    let wrong = EtcdSource::new(server.url()).with_auth("app", "not-the-password");
    let probes = timed("etcd wrong password", &wrong, requests()).await;
    assert_eq!(
        accesses(&probes),
        [Access::Unauthenticated; 3],
        "{probes:?}"
    );
    let anonymous = EtcdSource::new(server.url());
    let probes = timed("etcd no credentials", &anonymous, requests()).await;
    assert_eq!(
        accesses(&probes),
        [Access::Unauthenticated; 3],
        "{probes:?}"
    );
    drop(_guard);
    assert_no_value("etcd rbac", &logs);
    let text = logs.text();
    assert!(
        !text.contains("apw") && !text.contains("not-the-password"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// NATS JetStream KV

const NATS: &str = "nats://127.0.0.1:4222";

async fn nats_client() -> Option<async_nats::Client> {
    match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(NATS)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            skip("nats", e);
            None
        }
        Err(_) => {
            skip("nats", "no answer within 5 s");
            None
        }
    }
}

/// Deletes a JetStream stream when dropped (a failing case too).
struct StreamCleanup(String);

impl Drop for StreamCleanup {
    fn drop(&mut self) {
        super::nats_kv::delete_stream_blocking(NATS.to_owned(), self.0.clone());
    }
}

/// Publishes on a KV subject (a value, or a marker with headers), acknowledged.
async fn kv_publish(
    js: &jetstream::Context,
    subject: String,
    headers: &[(&'static str, &'static str)],
    payload: &str,
) {
    let mut h = async_nats::HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, *v);
    }
    js.publish_with_headers(subject, h, payload.to_owned().into())
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn nats_kv_preflight_tells_present_never_written_deleted_and_missing_buckets() {
    let Some(nc) = nats_client().await else {
        return;
    };
    let js = jetstream::new(nc);
    let bucket = unique("cmpf");
    let _cleanup = StreamCleanup(format!("KV_{bucket}"));
    js.create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 5,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let subject = |key: &str| format!("$KV.{bucket}.{key}");
    kv_publish(&js, subject("app.port"), &[], CANARY).await;
    kv_publish(&js, subject("app.gone"), &[], CANARY).await;
    kv_publish(&js, subject("app.gone"), &[("KV-Operation", "DEL")], "").await;
    kv_publish(&js, subject("app.purged"), &[], CANARY).await;
    kv_publish(
        &js,
        subject("app.purged"),
        &[("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")],
        "",
    )
    .await;
    let key = |bucket: &str, key: &str| {
        FetchRequest::for_key("nats_kv", key.to_owned()).with_param("bucket", bucket.to_owned())
    };
    let requests = vec![
        key(&bucket, "app.port"),
        key(&bucket, "app.never"),
        key(&bucket, "app.gone"),
        key(&bucket, "app.purged"),
        key(&unique("cmpf_none"), "app.port"),
        key(&bucket, "app.>"),
    ];
    let source = NatsKvSource::new(NATS).with_timeout(Duration::from_secs(5));
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        timed("nats_kv", &source, requests).await
    };
    assert_eq!(
        accesses(&probes),
        [
            Access::Readable,
            Access::Missing,
            Access::Missing,
            Access::Missing,
            Access::Invalid,
            Access::Invalid
        ],
        "{probes:?}"
    );
    assert_eq!(probes[0].detail.as_deref(), Some("revision 1"));
    assert_eq!(probes[1].detail.as_deref(), Some("never written"));
    assert_eq!(probes[2].detail.as_deref(), Some("deleted (revision 3)"));
    assert!(
        probes[3]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("purged")),
        "{probes:?}"
    );
    assert!(
        probes[4]
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("no bucket")),
        "{probes:?}"
    );
    assert_no_value("nats_kv", &logs);
    // The consumers it made are gone.
    let mut stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
    let consumers = stream.info().await.unwrap().state.consumer_count;
    assert_eq!(consumers, 0, "the preflight's consumers were deleted");
}

#[tokio::test]
async fn nats_kv_preflight_of_an_unreachable_server_is_unreachable_within_the_timeout() {
    let source = NatsKvSource::new(format!("nats://127.0.0.1:{}", free_port()))
        .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let probes = timed(
        "nats_kv unreachable",
        &source,
        vec![FetchRequest::for_key("nats_kv", "a").with_param("bucket", "b")],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Unreachable], "{probes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A nats-server of the case's own with JetStream and users (`admin`, all permissions;
/// `app`, allowed only the API subjects of bucket `ok`), killed when dropped.
struct PrivateNats {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivateNats {
    async fn start() -> Option<PrivateNats> {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            skip("the nats-server binary", "not found");
            return None;
        };
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("cm_preflight_nats"));
        std::fs::create_dir_all(&dir).unwrap();
        let allowed = [
            "$JS.API.STREAM.INFO.KV_ok",
            "$JS.API.DIRECT.GET.KV_ok",
            "$JS.API.CONSUMER.CREATE.KV_ok",
            "$JS.API.CONSUMER.MSG.NEXT.KV_ok.*",
            "$JS.API.CONSUMER.DELETE.KV_ok.*",
        ]
        .map(|s| format!("\"{s}\""))
        .join(", ");
        let config = format!(
            r#"listen: "127.0.0.1:{port}"
jetstream {{ store_dir: "{store}" }}
authorization {{
  users = [
    {{ user: admin, password: apw }}
    {{ user: app, password: bpw, permissions: {{ publish: {{ allow: [{allowed}] }}, subscribe: {{ allow: ["_INBOX.>"] }} }} }}
  ]
}}
"#,
            store = dir.join("js").display()
        );
        let file = dir.join("nats.conf");
        std::fs::write(&file, config).unwrap();
        let child = tokio::process::Command::new(binary)
            .arg("-c")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        let server = PrivateNats { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(server)
    }

    fn url(&self, user: &str, password: &str) -> String {
        format!("nats://{user}:{password}@127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn nats_kv_preflight_tells_permissions_from_refused_credentials() {
    let Some(server) = PrivateNats::start().await else {
        return;
    };
    let nc = async_nats::ConnectOptions::with_user_and_password("admin".into(), "apw".into())
        .connect(format!("127.0.0.1:{}", server.port))
        .await
        .unwrap();
    let js = jetstream::new(nc);
    for bucket in ["ok", "secret"] {
        js.create_stream(jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            ..Default::default()
        })
        .await
        .unwrap();
        kv_publish(&js, format!("$KV.{bucket}.app.port"), &[], CANARY).await;
    }
    let requests = || {
        ["ok", "secret"]
            .map(|b| FetchRequest::for_key("nats_kv", "app.port").with_param("bucket", b))
            .to_vec()
    };
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let app = NatsKvSource::new(server.url("app", "bpw")).with_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let probes = timed("nats_kv permissions", &app, requests()).await;
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Denied],
        "{probes:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a refused request is told from the server's violation, not a timeout: {:?}",
        started.elapsed()
    );
    let wrong =
        NatsKvSource::new(server.url("app", "wrong-pw")).with_timeout(Duration::from_secs(5));
    let probes = timed("nats_kv wrong password", &wrong, requests()).await;
    assert_eq!(
        accesses(&probes),
        [Access::Unauthenticated, Access::Unauthenticated],
        "{probes:?}"
    );
    drop(_guard);
    assert_no_value("nats_kv permissions", &logs);
    let text = logs.text();
    assert!(
        !text.contains("bpw") && !text.contains("wrong-pw"),
        "{text}"
    );
}

#[tokio::test]
async fn nats_preflight_of_a_user_refused_jetstream_lookups_is_denied_at_once() {
    let Some(server) = PrivateNats::start().await else {
        return;
    };
    let source = NatsSource::new(server.url("app", "bpw")).with_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let probes = timed(
        "nats permissions",
        &source,
        vec![FetchRequest::for_source("nats").with_topic("app.config")],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Denied], "{probes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let wrong = NatsSource::new(server.url("app", "nope")).with_timeout(Duration::from_secs(5));
    let probes = timed(
        "nats wrong password",
        &wrong,
        vec![FetchRequest::for_source("nats").with_topic("app.config")],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Unauthenticated], "{probes:?}");
}

// ---------------------------------------------------------------------------------------
// NATS subjects

#[tokio::test]
async fn nats_preflight_connects_and_looks_jetstream_subjects_up() {
    let Some(nc) = nats_client().await else {
        return;
    };
    let js = jetstream::new(nc);
    let name = unique("cmpf_stream");
    let _cleanup = StreamCleanup(name.clone());
    let kept = format!("{name}.kept");
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish(format!("{kept}.full"), CANARY.into())
        .await
        .unwrap()
        .await
        .unwrap();
    let topic = |t: String| FetchRequest::for_source("nats").with_topic(t);
    let requests = vec![
        topic(format!("{}.core", unique("cmpf"))),
        topic(format!("{kept}.full")),
        topic(format!("{kept}.empty")),
    ];
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        timed(
            "nats",
            &NatsSource::new(NATS).with_timeout(Duration::from_secs(5)),
            requests,
        )
        .await
    };
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Readable, Access::Missing],
        "{probes:?}"
    );
    assert_eq!(
        probes[0].detail.as_deref(),
        Some("connected; core subject, nothing to look up")
    );
    assert_no_value("nats", &logs);

    let source = NatsSource::new(format!("nats://127.0.0.1:{}", free_port()))
        .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let probes = timed("nats unreachable", &source, vec![topic("a.b".to_owned())]).await;
    assert_eq!(accesses(&probes), [Access::Unreachable], "{probes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// Kafka (tansu)

const KAFKA: &str = "127.0.0.1:9092";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_preflight_tells_existing_topics_from_missing_ones() {
    let built = tokio::time::timeout(
        Duration::from_secs(5),
        rskafka::client::ClientBuilder::new(vec![KAFKA.to_owned()]).build(),
    )
    .await;
    let admin = match built {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip("tansu (Kafka)", e),
        Err(_) => return skip("tansu (Kafka)", "no answer within 5 s"),
    };
    let topic = unique("cm_preflight");
    let controller = admin.controller_client().unwrap();
    controller.create_topic(&topic, 2, 1, 5_000).await.unwrap();
    let requests = vec![
        FetchRequest::for_source("kafka").with_topic(topic.clone()),
        FetchRequest::for_source("kafka").with_topic(unique("cm_preflight_none")),
    ];
    let source = KafkaSource::new([KAFKA]).with_timeout(Duration::from_secs(5));
    let probes = timed("kafka", &source, requests).await;
    let _ = controller.delete_topic(&topic, 5_000).await;
    assert_eq!(
        accesses(&probes),
        [Access::Readable, Access::Missing],
        "{probes:?}"
    );
    assert_eq!(probes[0].detail.as_deref(), Some("topic with 2 partitions"));

    let source = KafkaSource::new([format!("127.0.0.1:{}", free_port())])
        .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let probes = timed(
        "kafka unreachable",
        &source,
        vec![FetchRequest::for_source("kafka").with_topic("t")],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Unreachable], "{probes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// MQTT (Mosquitto)

#[tokio::test]
async fn mqtt_preflight_connects_without_subscribing() {
    if let Err(e) = tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        return skip("mosquitto", e);
    }
    let topic = format!("cm/{}/config", unique("preflight"));
    let source = MqttSource::new("mqtt://127.0.0.1:1883").with_timeout(Duration::from_secs(5));
    let probes = timed(
        "mqtt",
        &source,
        vec![FetchRequest::for_source("mqtt").with_topic(topic)],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Readable], "{probes:?}");
    assert_eq!(
        probes[0].detail.as_deref(),
        Some("connected; MQTT cannot look up a topic")
    );

    let source = MqttSource::new(format!("mqtt://127.0.0.1:{}", free_port()))
        .with_timeout(Duration::from_secs(1));
    let started = Instant::now();
    let probes = timed(
        "mqtt unreachable",
        &source,
        vec![FetchRequest::for_source("mqtt").with_topic("a/b")],
    )
    .await;
    assert_eq!(accesses(&probes), [Access::Unreachable], "{probes:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// A Mosquitto of the case's own that admits only user `app` (password `apw`), killed
/// when dropped.
struct PrivateMosquitto {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl PrivateMosquitto {
    async fn start() -> Option<PrivateMosquitto> {
        let (Some(broker), Some(passwd)) = (
            ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists()),
            ["/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists()),
        ) else {
            skip("the mosquitto binaries", "not found");
            return None;
        };
        let port = free_port();
        let dir = std::env::temp_dir().join(unique("cm_preflight_mqtt"));
        std::fs::create_dir_all(&dir).unwrap();
        let passwords = dir.join("passwords");
        let made = std::process::Command::new(passwd)
            .args(["-b", "-c"])
            .arg(&passwords)
            .args(["app", "apw"])
            .status();
        if !made.is_ok_and(|s| s.success()) {
            skip("mosquitto_passwd", "it could not write the password file");
            return None;
        }
        let config = dir.join("mosquitto.conf");
        // `user root`: started as root, Mosquitto would switch to user `mosquitto`, who
        // may not read the case's files (not root, it switches to no one).
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nuser root\n",
            passwords.display()
        );
        std::fs::write(&config, text).unwrap();
        let child = tokio::process::Command::new(broker)
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto starts");
        let server = PrivateMosquitto { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                skip("a private mosquitto", "it did not listen within 10 s");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(server)
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn mqtt_preflight_tells_refused_credentials() {
    let Some(broker) = PrivateMosquitto::start().await else {
        return;
    };
    let request = || vec![FetchRequest::for_source("mqtt").with_topic("app/config")];
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let ok = MqttSource::new(format!("mqtt://app:apw@127.0.0.1:{}", broker.port))
        .with_timeout(Duration::from_secs(5));
    let probes = timed("mqtt credentials", &ok, request()).await;
    assert_eq!(accesses(&probes), [Access::Readable], "{probes:?}");
    for url in [
        format!("mqtt://app:wrong-pw@127.0.0.1:{}", broker.port),
        format!("mqtt://127.0.0.1:{}", broker.port),
    ] {
        let refused = MqttSource::new(url).with_timeout(Duration::from_secs(5));
        let probes = timed("mqtt refused", &refused, request()).await;
        assert_eq!(accesses(&probes), [Access::Unauthenticated], "{probes:?}");
    }
    drop(_guard);
    let text = logs.text();
    assert!(
        !text.contains("apw") && !text.contains("wrong-pw"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// WebSocket

/// A websocket server that sends `CANARY` to every client, or answers the upgrade with
/// `status` when it is not 101.
async fn ws_server(status: u16) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/config", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                if status != 101 {
                    let mut head = [0u8; 2048];
                    let _ = tcp.read(&mut head).await;
                    let _ = tcp
                        .write_all(
                            format!("HTTP/1.1 {status} No\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                    return;
                }
                use futures::SinkExt;
                if let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await {
                    let _ = ws
                        .send(tokio_tungstenite::tungstenite::Message::Text(CANARY.into()))
                        .await;
                    let _ = futures::StreamExt::next(&mut ws).await;
                }
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn websocket_preflight_opens_the_handshake_and_closes() {
    let (ok, a) = ws_server(101).await;
    let (unauthenticated, b) = ws_server(401).await;
    let (denied, c) = ws_server(403).await;
    let unreachable = format!("ws://127.0.0.1:{}/x", free_port());
    let url = |u: &str| FetchRequest::for_source("websocket").with_url(u.to_owned());
    let source = WebSocketSource::new().with_first_message_timeout(Duration::from_secs(2));
    let logs = CapturedLogs::default();
    let probes = {
        let _guard = capture(&logs);
        timed(
            "websocket",
            &source,
            vec![
                url(&ok),
                url(&unauthenticated),
                url(&denied),
                url(&unreachable),
            ],
        )
        .await
    };
    for t in [a, b, c] {
        t.abort();
    }
    assert_eq!(
        accesses(&probes),
        [
            Access::Readable,
            Access::Unauthenticated,
            Access::Denied,
            Access::Unreachable
        ],
        "{probes:?}"
    );
    assert_no_value("websocket", &logs);
}

// ---------------------------------------------------------------------------------------
// End to end: `preflight_with` of a derived struct reading etcd and NATS KV.

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Stores {
    #[component(fetch_from = "etcd", key = "${P}port")]
    port: u16,
    #[component(fetch_from = "etcd", key = "${P}mode", fallback = "normal")]
    mode: String,
    #[component(fetch_from = "etcd", prefix = "${P}features/")]
    features: HashMap<String, String>,
    #[component(fetch_from = "nats_kv", bucket = "${B}", key = "app.token")]
    token: String,
    #[component(
        fetch_from = "nats_kv",
        bucket = "${B}",
        key = "app.gone",
        fallback = "x"
    )]
    gone: String,
}

#[tokio::test]
async fn preflight_with_reports_etcd_and_nats_kv_fields_without_their_values() {
    let Some(etcd) = Etcd::shared().await else {
        return;
    };
    let Some(nc) = nats_client().await else {
        return;
    };
    let p = format!("/{}/", unique("cm_preflight_e2e"));
    let _etcd_cleanup = EtcdCleanup(p.clone());
    etcd.put(&format!("{p}port"), "8080").await;
    etcd.put(&format!("{p}features/dark"), CANARY).await;
    let js = jetstream::new(nc);
    let bucket = unique("cmpf_e2e");
    let _cleanup = StreamCleanup(format!("KV_{bucket}"));
    js.create_stream(jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .unwrap();
    kv_publish(&js, format!("$KV.{bucket}.app.token"), &[], CANARY).await;
    kv_publish(&js, format!("$KV.{bucket}.app.gone"), &[], CANARY).await;
    kv_publish(
        &js,
        format!("$KV.{bucket}.app.gone"),
        &[("KV-Operation", "DEL")],
        "",
    )
    .await;
    let env = EnvSource::from_map([("P", p.as_str()), ("B", bucket.as_str())]);
    let sources = Sources::new()
        .register("etcd", EtcdSource::new(ETCD))
        .register("nats_kv", NatsKvSource::new(NATS))
        .with_env(env.clone());
    let logs = CapturedLogs::default();
    let started = Instant::now();
    let report = {
        let _guard = capture(&logs);
        Stores::preflight_with(&sources).await
    };
    eprintln!(
        "preflight_with etcd + nats_kv in {:?}:\n{report}",
        started.elapsed()
    );
    assert!(report.is_ok(), "{report}");
    let row = |field: &str| {
        report
            .rows_of(field)
            .next()
            .unwrap_or_else(|| panic!("a row of {field}: {report}"))
    };
    let port = row("port");
    assert_eq!(port.access, Access::Readable, "{report}");
    assert_eq!(port.source, "etcd");
    assert_eq!(port.key.as_deref(), Some(format!("{p}port").as_str()));
    assert_eq!(port.location.as_deref(), Some(ETCD));
    assert!(
        port.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("mod_revision")),
        "{report}"
    );
    assert_eq!(row("mode").access, Access::Missing, "{report}");
    assert_eq!(row("features").access, Access::Readable, "{report}");
    assert_eq!(
        row("features").detail.as_deref(),
        Some("1 key under the prefix")
    );
    let token = row("token");
    assert_eq!(token.access, Access::Readable, "{report}");
    assert_eq!(token.source, "nats_kv");
    assert_eq!(token.detail.as_deref(), Some("revision 1"));
    assert_eq!(row("gone").access, Access::Missing, "{report}");
    assert_eq!(row("gone").detail.as_deref(), Some("deleted (revision 3)"));
    let shown = format!("{report} {report:?}");
    assert!(!shown.contains(CANARY), "{shown}");
    assert_no_value("preflight_with", &logs);

    // The same struct with both servers out of reach: not ok, every row in the way.
    let sources = Sources::new()
        .register(
            "etcd",
            EtcdSource::new(format!("http://127.0.0.1:{}", free_port()))
                .with_timeout(Duration::from_secs(1)),
        )
        .register(
            "nats_kv",
            NatsKvSource::new(format!("nats://127.0.0.1:{}", free_port()))
                .with_timeout(Duration::from_secs(1)),
        )
        .with_env(env);
    let started = Instant::now();
    let report = Stores::preflight_with(&sources).await;
    eprintln!(
        "preflight_with unreachable in {:?}:\n{report}",
        started.elapsed()
    );
    assert!(!report.is_ok(), "{report}");
    assert!(
        report.rows.iter().all(|r| r.access == Access::Unreachable),
        "{report}"
    );
    assert_eq!(report.problems().count(), 5, "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// End to end: `preflight_with` of a derived struct following the brokers.

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Streams {
    #[component(stream_from = "kafka", topic = "${T}")]
    kafka: String,
    #[component(stream_from = "kafka", topic = "${T}_none")]
    kafka_missing: String,
    #[component(stream_from = "nats", topic = "${T}.core")]
    nats: String,
    #[component(stream_from = "mqtt", topic = "cm/${T}")]
    mqtt: String,
    #[component(stream_from = "websocket", url = "${WS}")]
    websocket: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_with_reports_broker_fields_without_reading_a_message() {
    let built = tokio::time::timeout(
        Duration::from_secs(5),
        rskafka::client::ClientBuilder::new(vec![KAFKA.to_owned()]).build(),
    )
    .await;
    let admin = match built {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip("tansu (Kafka)", e),
        Err(_) => return skip("tansu (Kafka)", "no answer within 5 s"),
    };
    if nats_client().await.is_none() {
        return;
    }
    if let Err(e) = tokio::net::TcpStream::connect("127.0.0.1:1883").await {
        return skip("mosquitto", e);
    }
    let topic = unique("cm_preflight_e2e");
    let controller = admin.controller_client().unwrap();
    controller.create_topic(&topic, 1, 1, 5_000).await.unwrap();
    let (ws, server) = ws_server(101).await;
    let sources = Sources::new()
        .register(
            "kafka",
            KafkaSource::new([KAFKA]).with_timeout(Duration::from_secs(5)),
        )
        .register(
            "nats",
            NatsSource::new(NATS).with_timeout(Duration::from_secs(5)),
        )
        .register(
            "mqtt",
            MqttSource::new("mqtt://127.0.0.1:1883").with_timeout(Duration::from_secs(5)),
        )
        .register("websocket", WebSocketSource::new())
        .with_env(EnvSource::from_map([
            ("T", topic.as_str()),
            ("WS", ws.as_str()),
        ]));
    let started = Instant::now();
    let report = Streams::preflight_with(&sources).await;
    eprintln!(
        "preflight_with brokers in {:?}:\n{report}",
        started.elapsed()
    );
    server.abort();
    let _ = controller.delete_topic(&topic, 5_000).await;
    let access = |field: &str| {
        report
            .rows_of(field)
            .next()
            .unwrap_or_else(|| panic!("a row of {field}: {report}"))
            .access
    };
    assert_eq!(access("kafka"), Access::Readable, "{report}");
    assert_eq!(access("kafka_missing"), Access::Missing, "{report}");
    assert_eq!(access("nats"), Access::Readable, "{report}");
    assert_eq!(access("mqtt"), Access::Readable, "{report}");
    assert_eq!(access("websocket"), Access::Readable, "{report}");
    // A topic that does not exist, and nothing to stand in: the one problem.
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    assert!(!format!("{report}").contains(CANARY), "{report}");
}
