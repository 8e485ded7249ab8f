//! `stream_from = "redis", topic = "..."`: a Redis stream (XADD) on 127.0.0.1:6379.

use std::time::Duration;

use component_model::{AsyncAssign, ErrorKind, RedisSource, Sources};
use component_model_tests::{skip, unique};
use redis::AsyncCommands;

use crate::{applied, eventually, free_port, next_update, rejected};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

async fn admin() -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(REDIS_URL).unwrap();
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            skip("Redis at 127.0.0.1:6379", e);
            None
        }
        Err(_) => {
            skip("Redis at 127.0.0.1:6379", "no answer within 5s");
            None
        }
    }
}

async fn xadd(conn: &mut redis::aio::MultiplexedConnection, key: &str, members: &[(&str, &str)]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (k, v) in members {
        cmd.arg(*k).arg(*v);
    }
    let _: String = cmd.query_async(conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_entry_is_the_value_and_each_new_entry_an_update() {
    let Some(mut conn) = admin().await else {
        return;
    };
    let key = unique("cm:stream");
    xadd(&mut conn, &key, &[("value", r#"{"port": 1}"#)]).await;
    xadd(&mut conn, &key, &[("value", r#"{"port": 2}"#)]).await;

    #[derive(serde::Deserialize, Debug)]
    struct Server {
        port: u16,
    }
    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "redis", topic = "${CM_STREAM}")]
        server: Server,
        #[component(
            stream_from = "redis",
            topic = "${CM_STREAM}",
            field = "mode",
            fallback = "plain"
        )]
        mode: String,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_STREAM",
            key.as_str(),
        )]))
        .register("redis", RedisSource::new(REDIS_URL));
    let app = App::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((app.server.port, app.mode.as_str()), (2, "plain"));

    #[derive(AsyncAssign, Debug)]
    struct Watched {
        #[component(stream_from = "redis", topic = "${CM_STREAM}")]
        server: Server,
    }
    let live = Watched::watch_with(&sources).await.unwrap();
    let mut updates = live.changes();
    xadd(&mut conn, &key, &[("value", r#"{"port": 3}"#)]).await;
    applied(&next_update(&mut updates, Duration::from_secs(10)).await);
    assert_eq!(live.get().server.port, 3);

    xadd(&mut conn, &key, &[("value", "garbage")]).await;
    let update = next_update(&mut updates, Duration::from_secs(10)).await;
    let reason = rejected(&update);
    assert!(
        reason.contains("Watched.server") && reason.contains(&key),
        "{reason}"
    );
    assert_eq!(live.get().server.port, 3);

    live.stop();
    let _: () = conn.del(&key).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stream_or_a_key_of_another_type_is_a_clear_error() {
    let Some(mut conn) = admin().await else {
        return;
    };
    let plain = unique("cm:not_a_stream");
    let _: () = conn.set(&plain, "1").await.unwrap();
    let missing = unique("cm:no_stream");

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct App {
        #[component(stream_from = "redis", topic = "${CM_PLAIN}")]
        a: u16,
        #[component(stream_from = "redis", topic = "${CM_MISSING}")]
        b: u16,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([
            ("CM_PLAIN", plain.as_str()),
            ("CM_MISSING", missing.as_str()),
        ]))
        .register("redis", RedisSource::new(REDIS_URL));
    let errors = App::fetch_all_components_with(&sources).await.unwrap_err();
    let all = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(errors.len(), 2, "{all}");
    assert!(
        all.contains("App.a") && all.contains("is not a stream"),
        "{all}"
    );
    assert!(
        all.contains("App.b") && all.contains("has no entry"),
        "{all}"
    );
    assert!(
        errors.iter().any(|e| e.kind() == ErrorKind::NotFound),
        "{all}"
    );
    let _: () = conn.del(&plain).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_keeps_the_old_value_and_the_newest_entry_after_it_applies() {
    let port = free_port();
    let start = || {
        tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
    };
    let url = format!("redis://127.0.0.1:{port}");
    async fn connected(url: &str) -> redis::aio::MultiplexedConnection {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(1),
                redis::Client::open(url)
                    .unwrap()
                    .get_multiplexed_async_connection(),
            )
            .await
            {
                return c;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut server = match start() {
        Ok(c) => c,
        Err(e) => {
            skip("the redis-server binary", e);
            return;
        }
    };
    let mut conn = connected(&url).await;
    xadd(&mut conn, "config:app", &[("value", "1")]).await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "redis", topic = "config:app")]
        level: u32,
    }
    let sources = Sources::new().register(
        "redis",
        RedisSource::new(&url).with_timeout(Duration::from_secs(2)),
    );
    let live = App::watch_with(&sources).await.unwrap();
    assert_eq!(live.get().level, 1);

    let _ = server.kill().await;
    let _ = server.wait().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        live.get().level,
        1,
        "the old value stays while the server is down"
    );
    // Back, empty (no persistence); two entries are added: the newest applies.
    let mut server = start().expect("restart redis-server");
    let mut conn = connected(&url).await;
    xadd(&mut conn, "config:app", &[("value", "2")]).await;
    xadd(&mut conn, "config:app", &[("value", "3")]).await;
    eventually(
        Duration::from_secs(30),
        || live.get().level == 3,
        || "no update after the restart".to_owned(),
    )
    .await;
    live.stop();
    let _ = server.kill().await;
}
