//! `stream_from = "nats"` against the machine's NATS with JetStream (127.0.0.1:4222).

use std::time::Duration;

use async_nats::jetstream;
use component_model::{AsyncAssign, ErrorKind, NatsSource, Sources};
use component_model_tests::{skip, unique};

use crate::{Process, applied, eventually, free_port, next_update, rejected};

pub const NATS: &str = "nats://127.0.0.1:4222";

pub async fn client() -> Option<async_nats::Client> {
    match tokio::time::timeout(Duration::from_secs(5), async_nats::connect(NATS)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            skip("NATS at 127.0.0.1:4222", e);
            None
        }
        Err(_) => {
            skip("NATS at 127.0.0.1:4222", "no answer within 5s");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_subject_starts_from_its_last_message_and_follows_every_new_one() {
    let Some(nc) = client().await else { return };
    let js = jetstream::new(nc.clone());
    let name = unique("CM_STREAM");
    let subject = format!("cm.config.{}", unique("app"));
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
    drop(stream);
    js.publish(subject.clone(), "1".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish(subject.clone(), "2".into())
        .await
        .unwrap()
        .await
        .unwrap();

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "nats", topic = "${CM_SUBJECT}")]
        workers: u32,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_SUBJECT",
            subject.as_str(),
        )]))
        .register("nats", NatsSource::new(NATS));
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(
        live.get().workers,
        2,
        "the stream's last message on the subject"
    );
    let mut updates = live.changes();

    js.publish(subject.clone(), "3".into())
        .await
        .unwrap()
        .await
        .unwrap();
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().workers, 3);

    js.publish(subject.clone(), "many".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let update = next_update(&mut updates, Duration::from_secs(10)).await;
    let reason = rejected(&update);
    assert!(
        reason.contains("App.workers") && reason.contains(&subject),
        "{reason}"
    );
    assert_eq!(live.get().workers, 3);

    live.stop();
    let _ = js.delete_stream(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_subject_waits_for_a_first_message_else_the_fallback_or_a_clear_error() {
    let Some(nc) = client().await else { return };
    let subject = format!("cm.core.{}", unique("flags"));

    #[derive(AsyncAssign, Debug)]
    struct Plain {
        #[component(stream_from = "nats", topic = "${CM_SUBJECT}")]
        level: u8,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_SUBJECT",
            subject.as_str(),
        )]))
        .register(
            "nats",
            NatsSource::new(NATS).with_first_message_timeout(Duration::from_millis(300)),
        );
    let errors = Plain::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let e = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::NotFound, "{e}");
    assert!(
        e.contains("Plain.level")
            && e.contains(&subject)
            && e.contains("no JetStream stream keeps"),
        "{e}"
    );

    #[derive(AsyncAssign, Debug)]
    struct WithFallback {
        #[component(stream_from = "nats", topic = "${CM_SUBJECT}", fallback = "1")]
        level: u8,
    }
    let live = WithFallback::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().level, 1);
    let mut updates = live.changes();
    // The subscription is in place once the watch runs; publish until it is seen. The
    // update shows the fallback literal as the old value.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let update = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the published value never arrived"
        );
        nc.publish(subject.clone(), "5".into()).await.unwrap();
        if let Ok(u) = tokio::time::timeout(
            Duration::from_millis(300),
            next_update(&mut updates, Duration::from_secs(10)),
        )
        .await
        {
            break u;
        }
    };
    assert_eq!(live.get().level, 5);
    match update {
        component_model::ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields[0].old.as_deref(), Some("1"), "{fields:?}");
            assert_eq!(fields[0].new.as_deref(), Some("5"), "{fields:?}");
        }
        other => panic!("expected an applied update, got {other}"),
    }
    live.stop();
}

pub(crate) fn nats_server_binary() -> Option<String> {
    [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_owned)
}

/// A nats-server of our own with JetStream (file storage in `store`), to restart.
async fn nats_server(binary: &str, port: u16, store: &std::path::Path) -> Process {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store);
    Process::start(&mut command, port).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_keeps_the_old_value_and_the_subject_is_followed_after_it() {
    let Some(binary) = nats_server_binary() else {
        skip("the nats-server binary", "not found");
        return;
    };
    let port = free_port();
    let store = std::env::temp_dir().join(unique("cm_nats_store"));
    let server = nats_server(&binary, port, &store).await;
    let url = format!("nats://127.0.0.1:{port}");
    let publisher = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(publisher.clone());
    js.create_stream(jetstream::stream::Config {
        name: "CONFIG".into(),
        subjects: vec!["config.app".into()],
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("config.app", "1".into())
        .await
        .unwrap()
        .await
        .unwrap();

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "nats", topic = "config.app")]
        level: u32,
    }
    let sources = Sources::new().register("nats", NatsSource::new(&url));
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().level, 1);

    server.stop().await;
    drop(publisher);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        live.get().level,
        1,
        "the old value stays while the server is down"
    );
    let server = nats_server(&binary, port, &store).await;
    let publisher = async_nats::connect(&url).await.unwrap();
    let js = jetstream::new(publisher);
    js.publish("config.app", "2".into())
        .await
        .unwrap()
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        || live.get().level == 2,
        || "no update after the restart".to_owned(),
    )
    .await;
    live.stop();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&store);
}
