//! Watches that say what changed: a `Change::Value` is applied by a `Live` without
//! fetching (that field or any other), a `Change::Changed` fetches only the fields of the
//! requests it names, a `Change::All` fetches everything; Consul's blocking queries hand
//! on the changed entries with their `ModifyIndex`, NATS JetStream messages their stream
//! sequence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::{
    AsyncAssign, Change, Changes, ConfigUpdate, ConsulSource, FetchRequest, Live, NatsSource,
    RawValue, Revision, Source, SourceError, Sources, async_trait,
};
use futures::StreamExt;

/// A store whose watch says exactly what the test sends, and which records every key
/// it is asked for.
#[derive(Clone)]
struct Scripted {
    values: Arc<Mutex<HashMap<String, String>>>,
    fetched: Arc<Mutex<Vec<String>>>,
    watched: Arc<Mutex<Vec<FetchRequest>>>,
    say: tokio::sync::broadcast::Sender<Change>,
}

impl Scripted {
    fn new(pairs: &[(&str, &str)]) -> Self {
        Scripted {
            values: Arc::new(Mutex::new(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            )),
            fetched: Arc::default(),
            watched: Arc::default(),
            say: tokio::sync::broadcast::channel(64).0,
        }
    }

    /// The position of `key`'s request in the watched list.
    fn index_of(&self, key: &str) -> usize {
        self.watched
            .lock()
            .unwrap()
            .iter()
            .position(|r| r.key() == Some(key))
            .unwrap_or_else(|| panic!("`{key}` is watched"))
    }

    /// The keys fetched since the last call.
    fn take_fetched(&self) -> Vec<String> {
        let mut keys = std::mem::take(&mut *self.fetched.lock().unwrap());
        keys.sort();
        keys.dedup();
        keys
    }
}

#[async_trait]
impl Source for Scripted {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let key = request.key().unwrap_or_default().to_owned();
        self.fetched.lock().unwrap().push(key.clone());
        match self.values.lock().unwrap().get(&key) {
            Some(v) => Ok(RawValue::from(v.as_str())),
            None => Err(SourceError::not_found()),
        }
    }

    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        *self.watched.lock().unwrap() = requests;
        let rx = self.say.subscribe();
        Ok(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.ok().map(|c| (Ok(c), rx))
        })
        .boxed())
    }
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct Three {
    #[component(fetch_from = "scripted", key = "a")]
    a: u32,
    #[component(fetch_from = "scripted", key = "b")]
    b: String,
    #[component(fetch_from = "scripted", key = "b")]
    b_again: String,
    #[component(fetch_from = "scripted", key = "c")]
    c: u32,
}

async fn next(updates: &mut component_model::ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update within 5 s")
        .expect("the stream goes on")
}

fn applied_fields(update: &ConfigUpdate) -> Vec<&str> {
    match update {
        ConfigUpdate::Applied { fields, .. } => fields.iter().map(|f| f.field.as_str()).collect(),
        other => panic!("not applied: {other:?}"),
    }
}

#[tokio::test]
async fn a_value_is_applied_without_a_fetch_and_changed_fetches_only_its_fields() {
    let store = Scripted::new(&[("a", "1"), ("b", "x"), ("c", "3")]);
    let sources = Sources::new().register("scripted", store.clone());
    let live = Live::<Three>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    // The watch is in place and its first read (everything, once) is done.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.take_fetched(),
        ["a", "b", "c"],
        "the watch's first read"
    );

    // A value: applied, nothing fetched.
    store
        .say
        .send(Change::Value {
            index: store.index_of("a"),
            value: RawValue::from("7"),
            revision: Some(Revision::Index(42)),
        })
        .unwrap();
    let update = next(&mut updates).await;
    assert_eq!(applied_fields(&update), ["Three.a"]);
    // The revision the watch said is the change's.
    match &update {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields[0].revision, Some(Revision::Index(42)))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().a, 7);
    assert_eq!(live.version(), 2);
    assert_eq!(
        store.take_fetched(),
        Vec::<String>::new(),
        "no fetch at all"
    );

    // Changed: only the fields of that request are fetched (both read `b`).
    store
        .values
        .lock()
        .unwrap()
        .insert("b".to_owned(), "y".to_owned());
    store
        .say
        .send(Change::Changed(vec![store.index_of("b")]))
        .unwrap();
    let update = next(&mut updates).await;
    assert_eq!(applied_fields(&update), ["Three.b", "Three.b_again"]);
    // Read again: no revision was said.
    match &update {
        ConfigUpdate::Applied { fields, .. } => {
            assert!(fields.iter().all(|f| f.revision.is_none()))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((live.get().b.as_str(), live.get().a), ("y", 7));
    assert_eq!(store.take_fetched(), ["b"]);

    // A value that does not convert is rejected like a fetched one; the old value stays.
    store
        .say
        .send(Change::Value {
            index: store.index_of("c"),
            value: RawValue::from("many"),
            revision: None,
        })
        .unwrap();
    match next(&mut updates).await {
        ConfigUpdate::Rejected { fields, .. } => assert_eq!(fields, ["Three.c"]),
        other => panic!("{other:?}"),
    }
    assert_eq!((live.get().c, live.version()), (3, 3));
    assert_eq!(store.take_fetched(), Vec::<String>::new());

    // Values arriving within one quiescence window are one update.
    store
        .say
        .send(Change::Value {
            index: store.index_of("c"),
            value: RawValue::from("4"),
            revision: None,
        })
        .unwrap();
    store
        .say
        .send(Change::Value {
            index: store.index_of("c"),
            value: RawValue::from("5"),
            revision: None,
        })
        .unwrap();
    let update = next(&mut updates).await;
    assert_eq!(applied_fields(&update), ["Three.c"]);
    assert_eq!((live.get().c, live.version()), (5, 4));
    assert_eq!(store.take_fetched(), Vec::<String>::new());

    // All: every field is fetched; `a` is back to what the store holds.
    store.say.send(Change::All).unwrap();
    let update = next(&mut updates).await;
    assert_eq!(applied_fields(&update), ["Three.a", "Three.c"]);
    assert_eq!((live.get().a, live.get().c), (1, 3));
    assert_eq!(store.take_fetched(), ["a", "b", "c"]);

    // A position the watch does not have (a source's mistake) reads everything.
    store.say.send(Change::Changed(vec![99])).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.take_fetched(), ["a", "b", "c"]);
    assert_eq!(live.version(), 5, "nothing changed: nothing applied");
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct FromConsul {
    #[component(fetch_from = "consul", key = "wv/app/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "wv/app/name")]
    name: String,
    #[component(fetch_from = "consul", key = "wv/app/mode")]
    mode: String,
}

/// The Consul requests that read values (not blocking queries).
fn reads(consul: &component_model::test_util::ConsulDouble) -> Vec<String> {
    consul
        .requests()
        .into_iter()
        .filter(|r| r.query_param("index").is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_consul_change_is_applied_from_the_blocking_query_without_reading_the_keys() {
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put("wv/app/port", "8080");
    consul.put("wv/app/name", "billing");
    consul.put("wv/app/mode", "a");
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let live = Live::<FromConsul>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(300)).await; // the watch is in place
    consul.clear_requests();

    consul.put("wv/app/port", "9090");
    let update = next(&mut updates).await;
    assert_eq!(applied_fields(&update), ["FromConsul.port"]);
    assert_eq!(live.get().port, 9090);
    // Only blocking queries: the value came with the answer.
    assert_eq!(reads(&consul), Vec::<String>::new());

    // A deleted key names no value: that key alone is read (and found missing).
    consul.delete("wv/app/mode");
    match next(&mut updates).await {
        ConfigUpdate::Rejected { fields, .. } => assert_eq!(fields, ["FromConsul.mode"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(reads(&consul), ["GET /v1/kv/wv/app/mode"]);
    assert_eq!(live.get().mode, "a");
}

#[tokio::test]
async fn a_consul_watch_hands_on_the_new_value_at_its_modify_index() {
    let consul = component_model::test_util::ConsulDouble::start().await;
    consul.put("wv/a", "1");
    consul.put("wv/b", "2");
    let source = ConsulSource::new(consul.address());
    let mut changes = source
        .watch(vec![
            FetchRequest::for_key("consul", "wv/a"),
            FetchRequest::for_key("consul", "wv/b"),
        ])
        .unwrap();
    let mut next_change = async || {
        tokio::time::timeout(Duration::from_secs(5), changes.next())
            .await
            .expect("a change within 5 s")
            .expect("the watch goes on")
            .expect("no error")
    };
    // The watch in place: every key, with its value.
    let mut first = [next_change().await, next_change().await];
    first.sort_by_key(|c| c.indices().map(<[usize]>::to_vec));
    let values: Vec<_> = first
        .iter()
        .map(|c| match c {
            Change::Value { index, value, .. } => (*index, value.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(values, [(0, RawValue::from("1")), (1, RawValue::from("2"))]);

    consul.put("wv/b", "3");
    let at = consul.index();
    assert_eq!(
        next_change().await,
        Change::Value {
            index: 1,
            value: RawValue::from("3"),
            revision: Some(Revision::Index(at)),
        }
    );
    consul.delete("wv/a");
    assert_eq!(next_change().await, Change::Changed(vec![0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_message_is_a_value_with_its_jetstream_sequence_or_none_on_a_core_subject() {
    use async_nats::jetstream;
    const NATS: &str = "nats://127.0.0.1:4222";
    let nc = match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(NATS)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return component_model_tests::skip("NATS at 127.0.0.1:4222", e),
        Err(_) => return component_model_tests::skip("NATS at 127.0.0.1:4222", "no answer"),
    };
    let js = jetstream::new(nc.clone());
    let name = component_model_tests::unique("CM_WV");
    let subject = format!("cm.wv.{}", component_model_tests::unique("app"));
    js.create_stream(jetstream::stream::Config {
        name: name.clone(),
        subjects: vec![subject.clone()],
        storage: jetstream::stream::StorageType::Memory,
        ..Default::default()
    })
    .await
    .unwrap();
    let first = js.publish(subject.clone(), "1".into()).await.unwrap();
    let first = first.await.unwrap().sequence;

    let source = NatsSource::new(NATS);
    let core = format!("cm.wv.core.{}", component_model_tests::unique("flags"));
    let mut changes = source
        .watch(vec![
            FetchRequest::for_source("nats").with_topic(subject.clone()),
            FetchRequest::for_source("nats").with_topic(core.clone()),
        ])
        .unwrap();
    let mut next_change = async || {
        tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("a change within 10 s")
            .expect("the watch goes on")
            .expect("no error")
    };
    // The stream's last message on the subject, at its sequence.
    assert_eq!(
        next_change().await,
        Change::Value {
            index: 0,
            value: RawValue::from("1"),
            revision: Some(Revision::Index(first)),
        }
    );
    let second = js.publish(subject.clone(), "2".into()).await.unwrap();
    let second = second.await.unwrap().sequence;
    assert!(second > first);
    assert_eq!(
        next_change().await,
        Change::Value {
            index: 0,
            value: RawValue::from("2"),
            revision: Some(Revision::Index(second)),
        }
    );
    // A core subject: the message, no revision. (Published until the subscription,
    // which starts on its own task, hears one.)
    let heard = async {
        loop {
            nc.publish(core.clone(), "on".into()).await.unwrap();
            nc.flush().await.unwrap();
            match tokio::time::timeout(Duration::from_millis(300), changes.next()).await {
                Ok(Some(Ok(change))) => return change,
                Ok(other) => panic!("{other:?}"),
                Err(_) => continue,
            }
        }
    };
    let change = tokio::time::timeout(Duration::from_secs(10), heard)
        .await
        .expect("a core message within 10 s");
    assert_eq!(
        change,
        Change::Value {
            index: 1,
            value: RawValue::from("on"),
            revision: None,
        }
    );
    drop(changes);
    let _ = js.delete_stream(&name).await;
}
