//! The Redis source against the machine's real Redis (127.0.0.1:6379), a second
//! password-protected `redis-server` started by the test, and hostile in-process servers.
//!
//! Every test writes keys under a prefix of its own and deletes them. Round trips are
//! counted with `MONITOR`, filtered by that prefix (parallel tests send their own commands).

use std::time::{Duration, Instant};

use component_model::{AsyncAssign, ErrorKind, RedisSource, SecretString, Sources};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A connection for the test's own writes, or `None` (skipped) without a server.
async fn admin() -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(REDIS_URL).expect("url");
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

/// Deletes every key under `prefix` when dropped.
pub(crate) struct Cleanup {
    conn: redis::aio::MultiplexedConnection,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.prefix);
        // A fresh runtime: the test's own may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let keys: Vec<String> = conn.keys(&pattern).await.unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = conn.del(keys).await;
                }
            });
        })
        .join();
    }
}

pub(crate) async fn setup(
    tag: &str,
) -> Option<(redis::aio::MultiplexedConnection, String, Cleanup)> {
    let conn = admin().await?;
    let prefix = format!("{}:", unique(tag));
    let cleanup = Cleanup {
        conn: redis::Client::open(REDIS_URL)
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("cleanup connection"),
        prefix: prefix.clone(),
    };
    Some((conn, prefix, cleanup))
}

/// Every command `MONITOR` saw mentioning `prefix` while `during` ran.
pub(crate) async fn monitored<F: std::future::Future>(
    prefix: &str,
    during: F,
) -> (F::Output, Vec<String>) {
    let mut stream = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .expect("monitor connection");
    stream.write_all(b"MONITOR\r\n").await.expect("MONITOR");
    let mut reader = BufReader::new(stream);
    let mut ok = String::new();
    reader.read_line(&mut ok).await.expect("+OK");
    assert_eq!(ok.trim(), "+OK");
    let out = during.await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(300);
    loop {
        let mut line = String::new();
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => {
                if line.contains(prefix) {
                    seen.push(line.trim().to_owned());
                }
            }
            _ => break,
        }
    }
    (out, seen)
}

/// The command name of a MONITOR line: `123.4 [0 127.0.0.1:5] "MGET" "k"` → `MGET`.
pub(crate) fn command(line: &str) -> String {
    line.split('"').nth(1).unwrap_or("").to_ascii_uppercase()
}

#[derive(Debug, Deserialize, PartialEq, Default)]
struct Limits {
    max_connections: u32,
    burst: Vec<u16>,
}

#[tokio::test]
async fn typed_values_json_and_hash_members_in_one_round_trip() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_types").await else {
        return;
    };
    let _: () = conn.set(format!("{p}port"), "8080").await.unwrap();
    let _: () = conn.set(format!("{p}debug"), "true").await.unwrap();
    let _: () = conn.set(format!("{p}name"), "checkout").await.unwrap();
    let _: () = conn
        .set(
            format!("{p}limits"),
            r#"{"max_connections":64,"burst":[1,2,3]}"#,
        )
        .await
        .unwrap();
    let _: () = conn
        .hset_multiple(
            format!("{p}db"),
            &[("host", "db.internal"), ("port", "5432"), ("user", "app")],
        )
        .await
        .unwrap();

    #[derive(AsyncAssign, Debug, Default)]
    struct Config {
        #[component(fetch_from = "redis", key = "${P}port")]
        port: u16,
        #[component(fetch_from = "redis", key = "${P}debug")]
        debug: bool,
        #[component(fetch_from = "redis", key = "${P}name")]
        name: String,
        #[component(fetch_from = "redis", key = "${P}limits")]
        limits: Limits,
        #[component(fetch_from = "redis", key = "${P}db", field = "host")]
        db_host: String,
        #[component(fetch_from = "redis", key = "${P}db", field = "port")]
        db_port: u16,
        #[component(fetch_from = "redis", key = "${P}port")]
        port_again: u32,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([("P", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL));
    let (config, seen) = monitored(&p, Config::fetch_all_components_with(&sources)).await;
    let config = config.expect("fetched");
    assert_eq!(config.port, 8080);
    assert!(config.debug);
    assert_eq!(config.name, "checkout");
    assert_eq!(
        config.limits,
        Limits {
            max_connections: 64,
            burst: vec![1, 2, 3]
        }
    );
    assert_eq!(
        (config.db_host.as_str(), config.db_port),
        ("db.internal", 5432)
    );
    assert_eq!(config.port_again, 8080);
    let commands: Vec<String> = seen.iter().map(|l| command(l)).collect();
    assert_eq!(commands, ["MGET", "HMGET"], "{seen:#?}");
    // Identical keys once: `port` is read by two fields.
    assert_eq!(
        seen[0].matches(&format!("{p}port")).count(),
        1,
        "{}",
        seen[0]
    );
}

#[tokio::test]
async fn twenty_keys_cost_one_mget() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_mget").await else {
        return;
    };
    let source = RedisSource::new(REDIS_URL);
    let mut requests = Vec::new();
    for i in 0..20 {
        let _: () = conn.set(format!("{p}k{i}"), i).await.unwrap();
        requests.push(component_model::FetchRequest::for_key(
            "redis",
            format!("{p}k{i}"),
        ));
    }
    let refs: Vec<&component_model::FetchRequest> = requests.iter().collect();
    let (answers, seen) = monitored(&p, component_model::Source::fetch_many(&source, &refs)).await;
    for (i, a) in answers.into_iter().enumerate() {
        assert_eq!(
            a.expect("value"),
            component_model::RawValue::Text(i.to_string())
        );
    }
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(command(&seen[0]), "MGET");
    assert_eq!(seen[0].matches(&p).count(), 20);
}

#[tokio::test]
async fn missing_keys_are_not_found_none_or_fallback() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_missing").await else {
        return;
    };
    let _: () = conn.hset(format!("{p}h"), "a", "1").await.unwrap();

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Config {
        #[component(fetch_from = "redis", key = "${P}nope")]
        required: u16,
        #[component(fetch_from = "redis", key = "${P}nope2")]
        optional: Option<u16>,
        #[component(fetch_from = "redis", key = "${P}nope3", fallback = "7")]
        with_fallback: u16,
        #[component(fetch_from = "redis", key = "${P}h", field = "b")]
        member: u16,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([("P", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL));
    let errors = Config::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    assert_eq!(
        errors[0].to_string(),
        format!("Config.required: redis key `{p}nope` at redis://127.0.0.1:6379: not found")
    );
    assert_eq!(errors[1].kind(), ErrorKind::NotFound);
    assert_eq!(errors[1].field_name(), Some("member"));
    assert!(
        errors[1]
            .to_string()
            .contains(&format!("no member `b` in hash `{p}h`")),
        "{}",
        errors[1]
    );

    #[derive(AsyncAssign, Debug)]
    struct Lenient {
        #[component(fetch_from = "redis", key = "${P}nope2")]
        optional: Option<u16>,
        #[component(fetch_from = "redis", key = "${P}nope3", fallback = "7")]
        with_fallback: u16,
    }
    let ok = Lenient::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((ok.optional, ok.with_fallback), (None, 7));
}

#[tokio::test]
async fn a_key_of_another_type_is_a_decode_error_naming_it() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_wrongtype").await else {
        return;
    };
    let _: () = conn.hset(format!("{p}hash"), "a", "1").await.unwrap();
    let _: () = conn.set(format!("{p}string"), "x").await.unwrap();
    let _: () = conn.set(format!("{p}ok"), "5").await.unwrap();

    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Config {
        #[component(fetch_from = "redis", key = "${P}hash")]
        hash_as_string: String,
        #[component(fetch_from = "redis", key = "${P}string", field = "a")]
        string_as_hash: String,
        #[component(fetch_from = "redis", key = "${P}ok")]
        fine: u8,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([("P", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL));
    let errors = Config::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert_eq!(e.source_name(), Some("redis"));
    }
    assert!(
        errors[0].to_string().contains("holds a hash"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().contains("another type"),
        "{}",
        errors[1]
    );

    // Alone, a string read of a hash is a GET answered with WRONGTYPE.
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Alone {
        #[component(fetch_from = "redis", key = "${P}hash")]
        hash_as_string: String,
    }
    let errors = Alone::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Decode, "{}", errors[0]);
    assert!(errors[0].to_string().contains(&format!("key `{p}hash`")));
}

#[tokio::test]
async fn the_database_index_of_the_url_is_used() {
    let Some((_, p, _cleanup)) = setup("cm_redis_db").await else {
        return;
    };
    let mut db3 = redis::Client::open(format!("{REDIS_URL}/3"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{p}in_db3");
    let _: () = db3.set(&key, "three").await.unwrap();
    let env = component_model::EnvSource::from_map([("REDIS_URL", format!("{REDIS_URL}/3"))]);
    let source = RedisSource::from_env_source(&env).expect("REDIS_URL");
    let request = component_model::FetchRequest::for_key("redis", key.clone());
    let got = component_model::Source::fetch(&source, &request).await;
    let _: Result<(), _> = db3.del(&key).await;
    assert_eq!(
        got.unwrap(),
        component_model::RawValue::Text("three".into())
    );
    // Database 0 does not have it.
    let zero = RedisSource::new(REDIS_URL);
    let err = component_model::Source::fetch(&zero, &request)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_closed_port_is_unavailable_naming_the_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Config {
        #[component(fetch_from = "redis", key = "app:port")]
        port: u16,
    }
    let url = format!("redis://:pw-canary@127.0.0.1:{port}");
    let sources = Sources::new().register("redis", RedisSource::new(&url));
    let started = Instant::now();
    let errors = Config::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = &errors[0];
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let shown = e.to_string();
    assert!(shown.starts_with(&format!(
        "Config.port: redis key `app:port` at redis://:***@127.0.0.1:{port}: unavailable: cannot connect"
    )), "{shown}");
    assert!(!format!("{shown}{e:?}").contains("pw-canary"));
}

/// A `redis-server` of its own on a free port, with `requirepass`; killed on drop.
struct ProtectedServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for ProtectedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn protected_server(password: &str) -> Option<ProtectedServer> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            skip("the redis-server binary", e);
            return None;
        }
    };
    let server = ProtectedServer { child, port };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    skip(
        "a redis-server started by the test",
        "it did not listen within 5s",
    );
    None
}

#[tokio::test]
async fn a_password_protected_server_needs_the_password_and_never_shows_it() {
    let canary = "pw-canary-7f3a91";
    let Some(server) = protected_server(canary).await else {
        return;
    };
    let port = server.port;
    let mut conn = redis::Client::open(format!("redis://:{canary}@127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("authenticated admin connection");
    let _: () = conn.set("app:token", "tok-123").await.unwrap();

    #[derive(AsyncAssign, Debug)]
    struct Config {
        #[component(fetch_from = "redis", key = "app:token")]
        token: SecretString,
    }
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let good = Sources::new().register(
        "redis",
        RedisSource::new(format!("redis://:{canary}@127.0.0.1:{port}")),
    );
    let config = Config::fetch_all_components_with(&good)
        .await
        .expect("authenticated");
    assert_eq!(config.token.expose_secret(), "tok-123");

    for (url, why) in [
        (
            format!("redis://:wrong-{canary}@127.0.0.1:{port}"),
            "WRONGPASS",
        ),
        (format!("redis://127.0.0.1:{port}"), "NOAUTH"),
    ] {
        let sources = Sources::new().register("redis", RedisSource::new(&url));
        let errors = Config::fetch_all_components_with(&sources)
            .await
            .unwrap_err();
        let e = &errors[0];
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{why}: {e}");
        assert_eq!(e.field_name(), Some("token"));
        assert_eq!(e.key(), Some("app:token"));
        let all = format!("{e} {e:?} {:?}", std::error::Error::source(e));
        assert!(all.contains(why), "{all}");
        assert!(!all.contains(canary), "password leaked: {all}");
    }
    drop(_guard);
    assert!(!logs.text().contains(canary), "password in logs");
    assert!(!logs.text().contains("tok-123"), "secret value in logs");
}

#[tokio::test]
async fn values_over_the_reply_limit_are_errors_and_the_connection_recovers() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_cap").await else {
        return;
    };
    let _: () = conn.set(format!("{p}at"), "a".repeat(64)).await.unwrap();
    let _: () = conn.set(format!("{p}over"), "b".repeat(65)).await.unwrap();
    let source = RedisSource::new(REDIS_URL).with_max_reply(64);
    let at = component_model::FetchRequest::for_key("redis", format!("{p}at"));
    let over = component_model::FetchRequest::for_key("redis", format!("{p}over"));
    let got = component_model::Source::fetch(&source, &at)
        .await
        .expect("at the limit");
    assert_eq!(got, component_model::RawValue::Text("a".repeat(64)));
    let err = component_model::Source::fetch(&source, &over)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(
        err.to_string()
            .contains("reply larger than 64 bytes from redis at redis://127.0.0.1:6379"),
        "{err}"
    );
    // The broken connection is replaced on the next fetch.
    let again = component_model::Source::fetch(&source, &at)
        .await
        .expect("reconnected");
    assert_eq!(again, component_model::RawValue::Text("a".repeat(64)));
}

/// A server that speaks just enough RESP for the handshake (`+OK` to anything), then
/// answers the first GET/MGET with `reply`, streaming `tail` forever after it.
async fn hostile_server(reply: &'static [u8], endless: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                    if text.contains("GET") {
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                        let chunk = vec![b'x'; 64 * 1024];
                        while endless && socket.write_all(&chunk).await.is_ok() {}
                        return;
                    }
                    // One `+OK` per command of the handshake pipeline.
                    let commands =
                        text.matches("\r\n*").count() + usize::from(text.starts_with('*'));
                    for _ in 0..commands.max(1) {
                        if socket.write_all(b"+OK\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_hostile_server_cannot_make_the_client_allocate() {
    // A terabyte announced, and a gigabyte announced then streamed without end.
    for (reply, endless) in [
        (&b"$1099511627776\r\n"[..], false),
        (&b"$1073741824\r\n"[..], true),
    ] {
        let port = hostile_server(reply, endless).await;
        let source = RedisSource::new(format!("redis://127.0.0.1:{port}"))
            .with_timeout(Duration::from_secs(5));
        let request = component_model::FetchRequest::for_key("redis", "app:port");
        let started = Instant::now();
        let err = component_model::Source::fetch(&source, &request)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
        assert!(
            err.to_string()
                .contains("reply larger than 16 MiB from redis at"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn redis_as_a_fallback_reads_a_hash_member_as_redis_does() {
    let Some((mut conn, p, _cleanup)) = setup("cm_redis_fallback").await else {
        return;
    };
    let _: () = conn.hset(format!("{p}db"), "port", "5432").await.unwrap();
    #[derive(AsyncAssign, Debug)]
    struct Config {
        // Not in the environment: the Redis hash member answers, converted as Redis says.
        #[component(
            fetch_from = "env",
            key = "${P}db",
            field = "port",
            fallback_to = "redis"
        )]
        port: u16,
    }
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([("P", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL));
    let config = Config::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(config.port, 5432);
}
