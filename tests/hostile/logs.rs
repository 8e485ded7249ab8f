//! Credentials never reach a log line — ours or a client library's. Per backend, a
//! canary password (or token) is handed to the source the way a user would (in the URL, a
//! token builder, a header), a real server (or the API doubles, for Consul and Vault)
//! answers, and everything logged at TRACE for every target — `tracing` and the `log`
//! records of the libraries that use it — is searched for the canary. Each case also
//! prints which targets logged the server's address, and at which level (run with
//! `--nocapture`): the list the closing note of the hardening issue keeps.

use std::collections::BTreeSet;
use std::time::Duration;

use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    AsyncAssign, ConsulSource, DatabaseSource, ErrorsExt, HttpSource, KafkaSource, MqttSource,
    RedisSource, Sources, VaultSource, WebSocketSource,
};
use component_model_tests::{skip, unique};

use crate::common::{CANARY, CapturedLogs, assert_no_canary, capture, serial, tcp_server};

/// The level and target of every captured line that names `address`.
fn who_logs(logs: &str, address: &str) -> BTreeSet<String> {
    logs.lines()
        .filter(|l| l.contains(address))
        .filter_map(|l| {
            // tracing's fmt: `<time>  LEVEL target: …`; the log bridge: `LEVEL target: …`.
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(w))?;
            let target = words.get(at + 1)?.trim_end_matches(':');
            Some(format!("{} {}", words[at], target))
        })
        .collect()
}

/// Asserts no canary in what was logged or shown, and prints who logged `address`.
fn check(backend: &str, logs: &CapturedLogs, shown: &str, address: &str) {
    let text = logs.text();
    assert!(
        !text.is_empty(),
        "{backend}: nothing was logged at TRACE: the capture is not working"
    );
    assert_no_canary(&format!("{backend}'s result or Debug"), shown);
    assert_no_canary(&format!("the TRACE logs of {backend}"), &text);
    println!(
        "address logged by ({backend}, {address}): {:?}",
        who_logs(&text, address)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_credentials_are_in_no_log_line() {
    let _s = serial().await;
    let client = redis::Client::open("redis://127.0.0.1:6379").expect("url");
    let mut admin = match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return skip("redis at 127.0.0.1:6379", e),
        Err(e) => return skip("redis at 127.0.0.1:6379", e),
    };
    let user = unique("cm_logs");
    let key = format!("{user}:port");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(format!(">{CANARY}"))
        .arg("~*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("8080")
        .query_async(&mut admin)
        .await
        .expect("SET");

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(fetch_from = "redis", key = "${CM_KEY}")]
        port: u16,
    }
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let env = component_model::EnvSource::from_map([("CM_KEY", key.as_str())]);
    let sources = Sources::new().with_env(env.clone()).register(
        "redis",
        RedisSource::new(format!("redis://{user}:{CANARY}@127.0.0.1:6379")),
    );
    let got = App::fetch_all_components_with(&sources).await;
    let wrong = Sources::new().with_env(env).register(
        "redis",
        RedisSource::new(format!("redis://{user}:wrong-{CANARY}@127.0.0.1:6379")),
    );
    let refused = App::fetch_all_components_with(&wrong).await;
    drop(g);
    let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(&mut admin).await;
    let _: Result<(), _> = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await;
    let shown = format!(
        "{got:?} {} {sources:?}",
        refused
            .as_ref()
            .map_err(|e| e.display().to_string())
            .err()
            .unwrap_or_default()
    );
    assert_eq!(got.map(|a| a.port).ok(), Some(8080), "{shown}");
    assert!(refused.is_err(), "a wrong password was accepted");
    check("redis", &logs, &shown, "127.0.0.1:6379");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_credentials_are_in_no_log_line() {
    let _s = serial().await;
    // MariaDB: a user of this test's own with the canary as its password, so the real
    // server checks it; PostgreSQL trusts 127.0.0.1 here, so only the URL is checked.
    let root = match sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test").await {
        Ok(p) => p,
        Err(e) => return skip("mariadb at 127.0.0.1:3306", e),
    };
    let user = unique("cm_logs");
    let user = &user[..user.len().min(32)];
    for sql in [
        format!("CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{CANARY}'"),
        format!("CREATE USER '{user}'@'localhost' IDENTIFIED BY '{CANARY}'"),
        format!("GRANT SELECT ON test.* TO '{user}'@'127.0.0.1'"),
        format!("GRANT SELECT ON test.* TO '{user}'@'localhost'"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&root)
            .await
            .expect("CREATE USER");
    }

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(fetch_from = "database", query = "SELECT 7")]
        workers: i64,
    }
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let mysql = Sources::new().register(
        "database",
        DatabaseSource::lazy(&format!("mysql://{user}:{CANARY}@127.0.0.1:3306/test")),
    );
    let from_mysql = App::fetch_all_components_with(&mysql).await;
    let wrong = Sources::new().register(
        "database",
        DatabaseSource::lazy(&format!(
            "mysql://{user}:wrong-{CANARY}@127.0.0.1:3306/test"
        )),
    );
    let refused = App::fetch_all_components_with(&wrong).await;
    let postgres = Sources::new().register(
        "database",
        DatabaseSource::lazy(&format!("postgres://postgres:{CANARY}@127.0.0.1:5432/test")),
    );
    let from_postgres = App::fetch_all_components_with(&postgres).await;
    drop(g);
    for host in ["127.0.0.1", "localhost"] {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP USER '{user}'@'{host}'")))
            .execute(&root)
            .await;
    }
    let shown = format!(
        "{from_mysql:?} {from_postgres:?} {} {mysql:?} {postgres:?}",
        refused
            .as_ref()
            .map_err(|e| e.display().to_string())
            .err()
            .unwrap_or_default()
    );
    assert_eq!(from_mysql.map(|a| a.workers).ok(), Some(7), "{shown}");
    assert_eq!(from_postgres.map(|a| a.workers).ok(), Some(7), "{shown}");
    assert!(refused.is_err(), "a wrong password was accepted");
    check("mysql and postgres", &logs, &shown, "127.0.0.1:3306");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_credentials_are_in_no_log_line() {
    let _s = serial().await;
    if tokio::net::TcpStream::connect("127.0.0.1:1883")
        .await
        .is_err()
    {
        return skip("mosquitto at 127.0.0.1:1883", "connection refused");
    }
    let topic = unique("cm/logs");

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "mqtt", topic = "${CM_TOPIC}", fallback = "3")]
        workers: u32,
    }
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register(
            "mqtt",
            MqttSource::new(format!("mqtt://app:{CANARY}@127.0.0.1:1883"))
                .with_first_message_timeout(Duration::from_millis(500)),
        );
    let got = App::fetch_all_components_with(&sources).await;
    drop(g);
    let shown = format!("{got:?} {sources:?}");
    assert!(got.is_ok(), "{shown}");
    check("mqtt", &logs, &shown, "1883");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_brokers_are_logged_without_secrets() {
    let _s = serial().await;
    if tokio::net::TcpStream::connect("127.0.0.1:9092")
        .await
        .is_err()
    {
        return skip("tansu (kafka) at 127.0.0.1:9092", "connection refused");
    }
    // The Kafka source takes no credentials (no SASL): what must hold is that nothing of
    // the value a record carries as a secret reaches a log line.
    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "kafka", topic = "${CM_TOPIC}", key = "app", secret)]
        token: Option<String>,
    }
    let topic = unique("cm-logs");
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_TOPIC",
            topic.as_str(),
        )]))
        .register("kafka", KafkaSource::new(["127.0.0.1:9092"]));
    let got = App::fetch_all_components_with(&sources).await;
    drop(g);
    let shown = format!("{got:?} {sources:?}");
    check("kafka", &logs, &shown, "127.0.0.1:9092");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_credentials_are_in_no_log_line() {
    let _s = serial().await;
    let port = tcp_server(|socket| async move {
        if let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await {
            use futures::SinkExt;
            let _ = ws
                .send(tokio_tungstenite::tungstenite::Message::text("12"))
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
    .await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(stream_from = "websocket", url = "${CM_WS_URL}")]
        workers: u32,
    }
    let url = format!("ws://app:{CANARY}@127.0.0.1:{port}/flags?token={CANARY}");
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let sources = Sources::new()
        .with_env(component_model::EnvSource::from_map([(
            "CM_WS_URL",
            url.as_str(),
        )]))
        .register(
            "websocket",
            WebSocketSource::new().with_first_message_timeout(Duration::from_secs(3)),
        );
    let got = App::fetch_all_components_with(&sources).await;
    drop(g);
    let shown = format!(
        "{} {sources:?}",
        got.as_ref()
            .map(|a| format!("{a:?}"))
            .unwrap_or_else(|e| e.display().to_string())
    );
    assert_eq!(got.map(|a| a.workers).ok(), Some(12), "{shown}");
    check("websocket", &logs, &shown, &format!("127.0.0.1:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_consul_and_vault_tokens_are_in_no_log_line() {
    let _s = serial().await;
    let consul = ConsulDouble::builder().acl_token(CANARY).start().await;
    consul.put("app/port", "8080");
    let vault = VaultDouble::builder().token(CANARY).start().await;
    vault.put("secret", "app", serde_json::json!({"password": "p"}));
    let api = tcp_server(|mut socket| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut request = vec![0; 4096];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n42",
            )
            .await;
    })
    .await;

    #[derive(AsyncAssign, Debug)]
    struct App {
        #[component(fetch_from = "consul", key = "app/port")]
        port: u16,
        #[component(fetch_from = "vault", secret = "app", field = "password")]
        password: secrecy::SecretString,
        #[component(fetch_from = "http", url = "/limits")]
        limit: u32,
    }
    let logs = CapturedLogs::default();
    let g = capture(&logs);
    let sources = Sources::new()
        .register(
            "consul",
            ConsulSource::new(consul.address()).with_token(CANARY),
        )
        .register("vault", VaultSource::new(vault.url()).with_token(CANARY))
        .register(
            "http",
            HttpSource::new(format!("http://127.0.0.1:{api}")).with_auth_header(CANARY),
        );
    let got = App::fetch_all_components_with(&sources).await;
    drop(g);
    let shown = format!(
        "{} {sources:?}",
        got.as_ref()
            .map(|a| format!("{a:?}"))
            .unwrap_or_else(|e| e.display().to_string())
    );
    assert_eq!(
        got.map(|a| (a.port, a.limit)).ok(),
        Some((8080, 42)),
        "{shown}"
    );
    check("consul, vault and http", &logs, &shown, "127.0.0.1");
}
