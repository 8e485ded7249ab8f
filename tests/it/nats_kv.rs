//! `fetch_from = "nats_kv"` against a real NATS server with JetStream: the machine's
//! (127.0.0.1:4222, `scripts/services.sh`), and private `nats-server` processes for a
//! restart and for credentials. A KV bucket per test, deleted after.
//!
//! The buckets are made, written, deleted and purged through the JetStream API directly
//! (the standard `KV_<bucket>` layout and `KV-Operation` headers, as `nats kv` does):
//! the workspace builds async-nats without its `kv` feature, and async-nats 0.51's
//! `create_key_value` cannot read the account info nats-server 2.9 sends.

use std::time::Duration;

use async_nats::jetstream;
use component_model::{
    AsyncAssign, ConfigUpdate, ConfigUpdates, EnvSource, ErrorKind, ErrorsExt, FetchRequest, Live,
    NatsKvSource, Source, Sources,
};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use futures::StreamExt;

const NATS: &str = "nats://127.0.0.1:4222";

async fn client(url: &str) -> Option<async_nats::Client> {
    match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url)).await {
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

/// A KV bucket, written through its stream.
#[derive(Clone)]
struct Store {
    js: jetstream::Context,
    name: String,
}

impl Store {
    /// Writes `value` at `key`: its revision.
    async fn put(&self, key: &str, value: String) -> Result<u64, String> {
        let ack = self
            .js
            .publish(format!("$KV.{}.{key}", self.name), value.into())
            .await
            .map_err(|e| e.to_string())?;
        Ok(ack.await.map_err(|e| e.to_string())?.sequence)
    }

    async fn marker(
        &self,
        key: &str,
        headers: &[(&'static str, &'static str)],
    ) -> Result<(), String> {
        let mut h = async_nats::HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, *v);
        }
        self.js
            .publish_with_headers(format!("$KV.{}.{key}", self.name), h, "".into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        self.marker(key, &[("KV-Operation", "DEL")]).await
    }

    async fn purge(&self, key: &str) -> Result<(), String> {
        self.marker(key, &[("KV-Operation", "PURGE"), ("Nats-Rollup", "sub")])
            .await
    }
}

/// A bucket `name` made as `nats kv add` makes it (`allow_direct` as asked).
async fn make_bucket(js: &jetstream::Context, name: &str, direct: bool) -> Store {
    js.create_stream(jetstream::stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 5,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: direct,
        discard: jetstream::stream::DiscardPolicy::New,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("the bucket's stream");
    Store {
        js: js.clone(),
        name: name.to_owned(),
    }
}

/// A JetStream context whose bucket is deleted when it is dropped, even when the test
/// fails (on a client and runtime of its own, whatever the test's runtime is).
struct Cleanup {
    js: jetstream::Context,
    url: String,
    name: String,
}

impl std::ops::Deref for Cleanup {
    type Target = jetstream::Context;
    fn deref(&self) -> &jetstream::Context {
        &self.js
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        delete_stream_blocking(self.url.clone(), format!("KV_{}", self.name));
    }
}

/// Deletes the JetStream stream `stream` at `url`, on a thread and runtime of its own (a
/// `Drop` may run inside a runtime, or in a failing test without one), within seconds.
pub(crate) fn delete_stream_blocking(url: String, stream: String) {
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let connected =
                tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url)).await;
            if let Ok(Ok(nc)) = connected {
                let js = jetstream::new(nc);
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), js.delete_stream(stream)).await;
            }
        });
    })
    .join();
}

/// A fresh bucket on the machine's server, or `None` (skipped) when it is unreachable.
async fn bucket(direct: bool) -> Option<(Cleanup, Store, String)> {
    let nc = client(NATS).await?;
    let js = jetstream::new(nc);
    let name = unique("cmkv");
    let kv = make_bucket(&js, &name, direct).await;
    let js = Cleanup {
        js,
        url: NATS.to_owned(),
        name: name.clone(),
    };
    Some((js, kv, name))
}

async fn drop_bucket(js: &jetstream::Context, name: &str) {
    let _ = js.delete_stream(format!("KV_{name}")).await;
}

async fn next(updates: &mut ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(10), updates.next())
        .await
        .expect("an update within 10 s")
        .expect("the live goes on")
}

/// Waits until `done` holds, for at most `limit`.
async fn eventually(limit: Duration, done: impl Fn() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(serde::Deserialize, Debug, PartialEq, Clone)]
struct Limits {
    burst: u32,
    names: Vec<String>,
}

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "app.port")]
    port: u16,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "app.ratio")]
    ratio: f64,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "app.debug")]
    debug: bool,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "app/limits")]
    limits: Limits,
    #[component(
        fetch_from = "nats_kv",
        bucket = "${CM_BUCKET}",
        key = "app.mode",
        fallback = "normal"
    )]
    mode: String,
}

fn sources(bucket: &str, source: NatsKvSource) -> Sources {
    Sources::new()
        .with_env(EnvSource::from_map([("CM_BUCKET", bucket)]))
        .register("nats_kv", source)
}

async fn put(kv: &Store, key: &str, value: &str) -> u64 {
    kv.put(key, value.to_owned()).await.expect("put")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_values_and_json_of_one_bucket_in_one_fetch_and_a_missing_key_falls_back() {
    for direct in [true, false] {
        let Some((js, kv, name)) = bucket(direct).await else {
            return;
        };
        let port_at = put(&kv, "app.port", "8080").await;
        put(&kv, "app.ratio", "0.25").await;
        put(&kv, "app.debug", "true").await;
        put(&kv, "app/limits", r#"{"burst": 7, "names": ["a", "b"]}"#).await;
        // `app.mode` is never written: the fallback.
        let app = App::fetch_all_components_with(&sources(&name, NatsKvSource::new(NATS)))
            .await
            .unwrap_or_else(|e| panic!("direct {direct}: {}", e.display()));
        assert_eq!(
            (app.port, app.ratio, app.debug, app.mode.as_str()),
            (8080, 0.25, true, "normal"),
            "direct {direct}"
        );
        assert_eq!(
            app.limits,
            Limits {
                burst: 7,
                names: vec!["a".into(), "b".into()]
            }
        );
        // The report shows each value's revision (its stream sequence) and `bucket/key`.
        let report = App::fetch_report_with(&sources(&name, NatsKvSource::new(NATS))).await;
        let port = report
            .fields
            .iter()
            .find(|f| f.path.ends_with("port"))
            .expect("port in the report");
        assert_eq!(
            port.revision,
            Some(component_model::Revision::Index(port_at)),
            "{report}"
        );
        let shown = report.to_string();
        assert!(
            shown.contains(&format!("{name}/app.port @{port_at}")),
            "{shown}"
        );
        let mode = report
            .fields
            .iter()
            .find(|f| f.path.ends_with("mode"))
            .expect("mode in the report");
        assert_eq!(mode.revision, None, "a fallback has no revision");
        drop_bucket(&js, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_without_fallback_and_a_missing_bucket_are_clear_errors() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    put(&kv, "present", "1").await;
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Two {
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "absent.key")]
        absent: u32,
        #[component(fetch_from = "nats_kv", bucket = "no_such_bucket_cm", key = "present")]
        elsewhere: u32,
    }
    let errors = Two::fetch_all_components_with(&sources(&name, NatsKvSource::new(NATS)))
        .await
        .unwrap_err();
    let shown = errors.display().to_string();
    assert_eq!(errors.len(), 2, "{shown}");
    assert!(
        errors.iter().all(|e| e.kind() == ErrorKind::NotFound),
        "{shown}"
    );
    assert!(
        shown.contains("absent.key") && shown.contains(&name),
        "the missing key names its key and bucket: {shown}"
    );
    assert!(
        shown.contains("NATS KV bucket `no_such_bucket_cm` does not exist"),
        "{shown}"
    );
    drop_bucket(&js, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_and_purged_keys_are_absent_and_the_fallback_takes_them() {
    for direct in [true, false] {
        let Some((js, kv, name)) = bucket(direct).await else {
            return;
        };
        #[derive(AsyncAssign, Debug)]
        struct Gone {
            #[component(
                fetch_from = "nats_kv",
                bucket = "${CM_BUCKET}",
                key = "deleted",
                fallback = "1"
            )]
            deleted: u32,
            #[component(
                fetch_from = "nats_kv",
                bucket = "${CM_BUCKET}",
                key = "purged",
                fallback = "2"
            )]
            purged: u32,
        }
        put(&kv, "deleted", "10").await;
        put(&kv, "purged", "20").await;
        let s = sources(&name, NatsKvSource::new(NATS));
        let before = Gone::fetch_all_components_with(&s).await.unwrap();
        assert_eq!((before.deleted, before.purged), (10, 20));
        kv.delete("deleted").await.unwrap();
        kv.purge("purged").await.unwrap();
        let after = Gone::fetch_all_components_with(&s).await.unwrap();
        assert_eq!((after.deleted, after.purged), (1, 2), "direct {direct}");
        // And the source says why, by itself.
        let source = NatsKvSource::new(NATS);
        let r = FetchRequest::for_key("nats_kv", "purged").with_param("bucket", name.clone());
        let e = source.fetch(&r).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().unwrap().contains("was purged"), "{e:?}");
        drop_bucket(&js, &name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_keys_of_one_bucket_in_one_fetch_with_their_revisions() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    let mut revisions = Vec::new();
    for i in 0..50 {
        revisions.push(put(&kv, &format!("k{i}"), &format!("v{i}")).await);
    }
    let source = NatsKvSource::new(NATS);
    let requests: Vec<FetchRequest> = (0..50)
        .map(|i| {
            FetchRequest::for_key("nats_kv", format!("k{i}")).with_param("bucket", name.clone())
        })
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(
            a.as_ref().ok(),
            Some(&component_model::RawValue::from(format!("v{i}").as_str())),
            "k{i}: {a:?}"
        );
    }
    assert_eq!(
        source.native_key(&requests[3]),
        Some(("key", format!("{name}/k3")))
    );
    // One later write of k7: a fresh read sees it (nothing is cached).
    let r7 = put(&kv, "k7", "new").await;
    assert!(r7 > revisions[49]);
    assert_eq!(
        source.fetch(&requests[7]).await.unwrap(),
        component_model::RawValue::from("new")
    );
    drop_bucket(&js, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_over_the_bound_is_too_large_naming_its_size_and_key() {
    for direct in [true, false] {
        let Some((js, kv, name)) = bucket(direct).await else {
            return;
        };
        // 150 KiB: over the bound, and within four times the relay's limit even in base64
        // (so the relay reads past it and the connection goes on for the other key).
        put(&kv, "big", &"x".repeat(150 * 1024)).await;
        put(&kv, "small", "ok").await;
        let source = NatsKvSource::new(NATS).with_max_value(1024);
        let big = FetchRequest::for_key("nats_kv", "big").with_param("bucket", name.clone());
        let small = FetchRequest::for_key("nats_kv", "small").with_param("bucket", name.clone());
        let answers = source.fetch_many(&[&big, &small]).await;
        let e = answers[0].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e:?}");
        let m = e.message().unwrap();
        assert!(
            m.contains("`big`") && m.contains(&name) && m.contains("bytes"),
            "direct {direct}: {m}"
        );
        // Refused by the relay before it was read (the announced size is over the bound).
        assert!(m.contains("refused before reading it"), "{m}");
        assert_eq!(
            answers[1].as_ref().ok(),
            Some(&component_model::RawValue::from("ok")),
            "direct {direct}: {:?}",
            answers[1]
        );
        drop_bucket(&js, &name).await;
    }
}

#[derive(AsyncAssign, Debug)]
struct Watched {
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "w.port")]
    port: u16,
    #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "w.port")]
    port_again: u16,
    #[component(
        fetch_from = "nats_kv",
        bucket = "${CM_BUCKET}",
        key = "w.mode",
        fallback = "normal"
    )]
    mode: String,
    #[component(
        fetch_from = "nats_kv",
        bucket = "${CM_BUCKET}",
        key = "w.level",
        fallback = "3"
    )]
    level: u32,
}

fn applied(update: &ConfigUpdate) -> Vec<String> {
    match update {
        ConfigUpdate::Applied { fields, .. } => fields.iter().map(|f| f.field.clone()).collect(),
        other => panic!("expected an applied update, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_follows_puts_and_falls_back_on_delete_and_purge() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    put(&kv, "w.port", "8080").await;
    put(&kv, "w.mode", "fast").await;
    put(&kv, "w.level", "9").await;
    let s = sources(&name, NatsKvSource::new(NATS));
    let live = Live::<Watched>::builder(&s)
        .quiescence(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    assert_eq!(
        (live.get().port, live.get().mode.as_str(), live.get().level),
        (8080, "fast", 9)
    );
    let mut updates = live.changes();
    // The watch is in place, its first records (the current values) handed on: no update.
    tokio::time::sleep(Duration::from_millis(500)).await;

    put(&kv, "w.port", "9090").await;
    let fields = applied(&next(&mut updates).await);
    assert!(fields.iter().any(|f| f.ends_with("port")), "{fields:?}");
    eventually(
        Duration::from_secs(5),
        || live.get().port == 9090 && live.get().port_again == 9090,
        "both fields of the key follow it",
    )
    .await;

    kv.delete("w.mode").await.unwrap();
    eventually(
        Duration::from_secs(10),
        || live.get().mode == "normal",
        "a deleted key falls back",
    )
    .await;
    kv.purge("w.level").await.unwrap();
    eventually(
        Duration::from_secs(10),
        || live.get().level == 3,
        "a purged key falls back",
    )
    .await;
    // Written again: followed again.
    put(&kv, "w.mode", "slow").await;
    eventually(
        Duration::from_secs(10),
        || live.get().mode == "slow",
        "a key written after its delete",
    )
    .await;
    live.stop();
    drop_bucket(&js, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_hands_on_puts_at_their_revisions_and_deletes_as_re_reads() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    let r1 = put(&kv, "a", "1").await;
    let source = NatsKvSource::new(NATS);
    let req =
        |k: &str| FetchRequest::for_key("nats_kv", k.to_owned()).with_param("bucket", name.clone());
    let mut changes = source.watch(vec![req("a"), req("b"), req("a")]).unwrap();
    let mut next_change = async || {
        tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the watch goes on")
            .expect("no error")
    };
    // From the current record: nothing written since the fetch is lost.
    let mut first = [next_change().await, next_change().await];
    first.sort_by_key(|c| format!("{c:?}"));
    for (c, index) in first.iter().zip([0, 2]) {
        assert_eq!(
            *c,
            component_model::Change::Value {
                index,
                value: component_model::RawValue::from("1"),
                revision: Some(component_model::Revision::Index(r1)),
            }
        );
    }
    let r2 = put(&kv, "b", "2").await;
    assert_eq!(
        next_change().await,
        component_model::Change::Value {
            index: 1,
            value: component_model::RawValue::from("2"),
            revision: Some(component_model::Revision::Index(r2)),
        }
    );
    kv.delete("a").await.unwrap();
    assert_eq!(
        next_change().await,
        component_model::Change::Changed(vec![0, 2])
    );
    drop(changes);
    drop_bucket(&js, &name).await;
}

/// A nats-server of the test's own, killed when dropped.
struct Server(tokio::process::Child);

impl Server {
    async fn start(port: u16, store: &std::path::Path, extra: &[&str]) -> Option<Server> {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            skip("the nats-server binary", "not found");
            return None;
        };
        let child = tokio::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(Server(child))
    }

    async fn stop(mut self) {
        let _ = self.0.kill().await;
        let _ = self.0.wait().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_resumes_after_a_server_restart() {
    let port = free_port();
    let store = std::env::temp_dir().join(unique("cm_nats_kv_store"));
    let Some(server) = Server::start(port, &store, &[]).await else {
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let nc = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(nc.clone());
    let kv = make_bucket(&js, "restart", true).await;
    put(&kv, "w.port", "1000").await;
    put(&kv, "w.mode", "a").await;
    let s = sources("restart", NatsKvSource::new(&url));
    let live = Live::<Watched>::builder(&s)
        .quiescence(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    assert_eq!(live.get().port, 1000);
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.stop().await;
    drop((kv, js, nc));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(live.get().port, 1000, "the old value stays meanwhile");
    let server = Server::start(port, &store, &[]).await.unwrap();
    let nc = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(nc);
    let kv = Store {
        js,
        name: "restart".into(),
    };
    put(&kv, "w.port", "2000").await;
    eventually(
        Duration::from_secs(30),
        || live.get().port == 2000,
        "no update after the restart",
    )
    .await;
    kv.delete("w.mode").await.unwrap();
    eventually(
        Duration::from_secs(10),
        || live.get().mode == "normal",
        "a delete after the restart falls back",
    )
    .await;
    live.stop();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&store);
}

const CANARY: &str = "Kv-Canary-5ecret-91b2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_reach_the_server_and_appear_in_no_log_error_or_debug() {
    let port = free_port();
    let store = std::env::temp_dir().join(unique("cm_nats_kv_auth"));
    let Some(server) = Server::start(port, &store, &["--user", "app", "--pass", CANARY]).await
    else {
        return;
    };
    let admin = async_nats::ConnectOptions::new()
        .user_and_password("app".into(), CANARY.into())
        .connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let js = jetstream::new(admin);
    let kv = make_bucket(&js, "secure", true).await;
    put(&kv, "app.port", "7").await;

    let logs = CapturedLogs::default();
    let guard = capture(&logs);
    #[derive(AsyncAssign, Debug)]
    struct One {
        #[component(fetch_from = "nats_kv", bucket = "secure", key = "app.port")]
        port: u32,
    }
    // Credentials that are right: the value.
    let good = Sources::new().register(
        "nats_kv",
        NatsKvSource::new(format!("nats://app:{CANARY}@127.0.0.1:{port}")),
    );
    let got = One::fetch_all_components_with(&good).await;
    let shown_good = format!("{got:?} {good:?}");
    assert_eq!(got.map(|o| o.port).ok(), Some(7), "{shown_good}");
    // A wrong password, and a token: refused, and the error shows neither.
    let wrong = format!("{CANARY}-wrong");
    let mut shown = shown_good;
    for url in [
        format!("nats://app:{wrong}@127.0.0.1:{port}"),
        format!("nats://{CANARY}@127.0.0.1:{port}"),
    ] {
        let bad = Sources::new().register(
            "nats_kv",
            NatsKvSource::new(url).with_timeout(Duration::from_secs(3)),
        );
        let errors = One::fetch_all_components_with(&bad).await.unwrap_err();
        let text = format!("{} {errors:?} {bad:?}", errors.display());
        assert!(
            matches!(
                errors[0].kind(),
                ErrorKind::Unauthorized | ErrorKind::Unavailable
            ),
            "{}",
            text.replace(CANARY, "***")
        );
        shown.push_str(&text);
    }
    drop(guard);
    let logs = logs.text();
    assert!(
        logs.contains("CONNECT") || logs.contains("connect"),
        "TRACE logs were captured"
    );
    for (what, text) in [("an error or Debug", &shown), ("the TRACE logs", &logs)] {
        if let Some(at) = text.find(CANARY) {
            let from = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let to = text[at..].find('\n').map_or(text.len(), |n| at + n);
            panic!("the password appears in {what}: {}", &text[from..to]);
        }
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_from_env_register_nats_kv_from_nats_url() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    put(&kv, "app.port", "4242").await;
    #[derive(AsyncAssign, Debug)]
    struct One {
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "app.port")]
        port: u16,
    }
    let env = EnvSource::from_map([("NATS_URL", NATS), ("CM_BUCKET", name.as_str())]);
    let sources = Sources::from_env_source(env);
    let one = One::fetch_all_components_with(&sources)
        .await
        .unwrap_or_else(|e| panic!("{}", e.display()));
    assert_eq!(one.port, 4242);
    drop_bucket(&js, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_the_relay_is_not_held_by_nagle() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    put(&kv, "k", "1").await;
    let source = NatsKvSource::new(NATS);
    let r = FetchRequest::for_key("nats_kv", "k").with_param("bucket", name.clone());
    source.fetch(&r).await.unwrap(); // connected, the bucket looked up
    let started = std::time::Instant::now();
    for _ in 0..20 {
        source.fetch(&r).await.unwrap();
    }
    // Before the relay set TCP_NODELAY towards the client, each read waited for the
    // client's delayed ACK: ~44 ms, 880 ms for these 20 (0.4 ms each after).
    let took = started.elapsed();
    assert!(took < Duration::from_millis(400), "20 reads took {took:?}");
    drop_bucket(&js, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_value_over_the_bound_is_rejected_and_the_next_one_applies() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    #[derive(AsyncAssign, Debug)]
    struct Small {
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "w.port")]
        port: u16,
    }
    put(&kv, "w.port", "1").await;
    let s = sources(&name, NatsKvSource::new(NATS).with_max_value(1024));
    let live = Live::<Small>::builder(&s)
        .quiescence(Duration::from_millis(20), Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // 2 KiB: through the relay (under its limit), over the source's bound. 100 KiB: over
    // the relay's limit too, stood in for before it is read.
    for size in [2 * 1024, 100 * 1024] {
        put(&kv, "w.port", &"7".repeat(size)).await;
        match next(&mut updates).await {
            ConfigUpdate::Rejected { reason, errors, .. } => {
                assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{reason}");
                assert!(
                    reason.contains("w.port") && reason.contains(&name),
                    "{size}: {reason}"
                );
            }
            other => panic!("{size}: expected a rejected update, got {other}"),
        }
        assert_eq!(live.get().port, 1, "the old value stays");
    }
    put(&kv, "w.port", "2").await;
    applied(&next(&mut updates).await);
    assert_eq!(live.get().port, 2);
    live.stop();
    drop_bucket(&js, &name).await;
}

#[test]
fn each_key_read_is_one_round_trip_and_the_bucket_is_looked_up_once() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Three {
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "a")]
        a: u32,
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "b")]
        b: u32,
        #[component(fetch_from = "nats_kv", bucket = "${CM_BUCKET}", key = "c")]
        c: u32,
    }
    let recorder = DebuggingRecorder::new();
    let ran = metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (js, kv, name) = bucket(true).await?;
            for k in ["a", "b", "c"] {
                put(&kv, k, "1").await;
            }
            let s = sources(&name, NatsKvSource::new(NATS));
            for _ in 0..2 {
                Three::fetch_all_components_with(&s).await.unwrap();
            }
            drop_bucket(&js, &name).await;
            Some(())
        })
    });
    if ran.is_none() {
        return;
    }
    let trips: u64 = recorder
        .snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == "component_model_round_trips_total"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "source" && l.value() == "nats_kv")
        })
        .map(|(.., value)| match value {
            DebugValue::Counter(n) => n,
            _ => 0,
        })
        .sum();
    // The bucket looked up once (STREAM.INFO), then one direct get per key per fetch.
    assert_eq!(trips, 1 + 3 + 3);
}

fn watched(name: &str, key: &str) -> FetchRequest {
    FetchRequest::for_key("nats_kv", key.to_owned()).with_param("bucket", name.to_owned())
}

/// The next change within `limit` (an error is handed on as such).
async fn change_within(
    changes: &mut component_model::Changes,
    limit: Duration,
) -> Result<component_model::Change, component_model::SourceError> {
    tokio::time::timeout(limit, changes.next())
        .await
        .expect("a change in time")
        .expect("the watch goes on")
}

fn value_at(value: &str, revision: u64) -> component_model::Change {
    component_model::Change::Value {
        index: 0,
        value: component_model::RawValue::from(value),
        revision: Some(component_model::Revision::Index(revision)),
    }
}

/// A bucket deleted and made again numbers its records from 1: the watch notices (the
/// stream's creation time changed), says the key changed and follows the new bucket —
/// a put at revision 1 arrives although 3 was handed on before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_follows_a_bucket_deleted_and_made_again() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    for v in ["1", "2"] {
        put(&kv, "a", v).await;
    }
    let r3 = put(&kv, "a", "3").await;
    let source = NatsKvSource::new(NATS).with_timeout(Duration::from_secs(2));
    let mut changes = source.watch(vec![watched(&name, "a")]).unwrap();
    // The key's last record only (its history is not replayed), at its revision.
    assert_eq!(
        change_within(&mut changes, Duration::from_secs(10))
            .await
            .unwrap(),
        value_at("3", r3)
    );
    drop_bucket(&js, &name).await;
    let kv = make_bucket(&js, &name, true).await;
    let r1 = put(&kv, "a", "new").await;
    assert_eq!(r1, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match change_within(&mut changes, left).await {
            Ok(c) if c == value_at("new", r1) => break,
            Ok(component_model::Change::Changed(covers)) => assert_eq!(covers, vec![0]),
            Ok(c) => panic!("an old record or something else: {c:?}"),
            // The consumer's end may be reported while the bucket was away.
            Err(e) => assert_ne!(e.kind(), ErrorKind::Config, "{e}"),
        }
    }
    let r2 = put(&kv, "a", "newer").await;
    assert_eq!(
        change_within(&mut changes, Duration::from_secs(10))
            .await
            .unwrap(),
        value_at("newer", r2)
    );
}

/// A bucket deleted while watched: after a few failed attempts the watch hands on the
/// error (a Live watches again with a backoff of its own) naming the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_of_a_deleted_bucket_reports_it() {
    let Some((js, kv, name)) = bucket(true).await else {
        return;
    };
    let r = put(&kv, "a", "1").await;
    let source = NatsKvSource::new(NATS).with_timeout(Duration::from_secs(2));
    let mut changes = source.watch(vec![watched(&name, "a")]).unwrap();
    assert_eq!(
        change_within(&mut changes, Duration::from_secs(10))
            .await
            .unwrap(),
        value_at("1", r)
    );
    drop_bucket(&js, &name).await;
    let e = change_within(&mut changes, Duration::from_secs(40))
        .await
        .expect_err("the watch reports the missing bucket");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(&name), "{e}");
}

/// async-nats queues few messages per subscription (a flood cannot pile up): a burst
/// of puts overflows it, the ordered consumer makes itself again from the last record
/// it delivered, and the watch still hands on every revision at most once, in order,
/// ending with the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_puts_past_the_subscription_capacity_ends_with_the_last() {
    let Some((_js, kv, name)) = bucket(true).await else {
        return;
    };
    put(&kv, "a", "0").await;
    let source = NatsKvSource::new(NATS);
    let mut changes = source.watch(vec![watched(&name, "a")]).unwrap();
    change_within(&mut changes, Duration::from_secs(10))
        .await
        .unwrap();
    // Published without waiting for each ack: the server delivers them back to back.
    let mut acks = Vec::new();
    for i in 1..=2000 {
        acks.push(
            kv.js
                .publish(format!("$KV.{name}.a"), i.to_string().into())
                .await
                .unwrap(),
        );
    }
    let mut last = 0;
    for ack in acks {
        last = ack.await.unwrap().sequence;
    }
    // Slow to read: the subscription's queue overflows meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut seen = 0;
    while seen < last {
        match change_within(&mut changes, Duration::from_secs(30))
            .await
            .unwrap()
        {
            component_model::Change::Value {
                revision: Some(component_model::Revision::Index(r)),
                value,
                ..
            } => {
                assert!(r > seen, "revision {r} after {seen}");
                seen = r;
                if r == last {
                    assert_eq!(value, component_model::RawValue::from("2000"));
                }
            }
            c => panic!("{c:?}"),
        }
    }
}

/// Two writes while the watching client is cut off (the server stopped, restarted, and
/// written to by another client at once): both arrive, in order, at their revisions,
/// and nothing older after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writes_while_the_watcher_is_cut_off_arrive_in_order_once() {
    let port = free_port();
    let store = std::env::temp_dir().join(unique("cm_nats_kv_two"));
    let Some(server) = Server::start(port, &store, &[]).await else {
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let nc = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(nc.clone());
    let kv = make_bucket(&js, "two", true).await;
    put(&kv, "x", "0").await;
    let r1 = put(&kv, "x", "1").await;
    let source = NatsKvSource::new(&url).with_timeout(Duration::from_secs(2));
    let mut changes = source.watch(vec![watched("two", "x")]).unwrap();
    assert_eq!(
        change_within(&mut changes, Duration::from_secs(10))
            .await
            .unwrap(),
        value_at("1", r1)
    );
    server.stop().await;
    drop((kv, js, nc));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let server = Server::start(port, &store, &[]).await.unwrap();
    let nc = async_nats::connect(&url).await.unwrap();
    let kv = Store {
        js: jetstream::new(nc),
        name: "two".into(),
    };
    let r2 = put(&kv, "x", "2").await;
    let r3 = put(&kv, "x", "3").await;
    let mut seen = Vec::new();
    while seen.last() != Some(&r3) {
        match change_within(&mut changes, Duration::from_secs(30)).await {
            Ok(component_model::Change::Value {
                revision: Some(component_model::Revision::Index(r)),
                value,
                ..
            }) => {
                assert!(seen.last().is_none_or(|&l| r > l), "{r} after {seen:?}");
                assert!(r > r1, "an older record after the restart: {r}");
                assert_eq!(
                    value,
                    component_model::RawValue::from((r - r1 + 1).to_string())
                );
                seen.push(r);
            }
            Ok(c) => panic!("{c:?}"),
            Err(e) => assert_ne!(e.kind(), ErrorKind::Config, "{e}"),
        }
    }
    assert_eq!(seen, vec![r2, r3]);
    drop(changes);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&store);
}
