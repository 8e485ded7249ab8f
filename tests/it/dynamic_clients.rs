//! Clients opened from fetched addresses (`connect = "{dsn}"`, GitHub issue 33), the
//! registry side: `Sources::dynamic_source` (reached through its test hook
//! `__dynamic_source`) against the machine's PostgreSQL, MariaDB, Redis, NATS and OpenBao
//! and the Consul double. One client per backend and address, least recently used dropped
//! beyond the bound, one opening for concurrent first requests, openings bounded in time,
//! and the address (a DSN with its password) in no error, `Debug` or log line.
//!
//! Without a reachable server a test prints why it skipped and passes, unless
//! `CM_REQUIRE_SERVICES=1` (set by `.ci/run`), where it fails.

use std::sync::Arc;
use std::time::{Duration, Instant};

use component_model::test_util::ConsulDouble;
use component_model::{EnvSource, ErrorKind, FetchRequest, RawValue, Source, SourceError, Sources};
use component_model_tests::{CapturedLogs, skip, unique};
use sqlx::PgPool;

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL: &str = "mysql://root@127.0.0.1:3306/test";
const REDIS: &str = "redis://127.0.0.1:6379";
const NATS: &str = "nats://127.0.0.1:4222";

/// An admin pool on the machine's PostgreSQL, or `None` after `skip`.
async fn pg_admin() -> Option<PgPool> {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(PG)
        .await
    {
        Ok(p) => Some(p),
        Err(e) => {
            skip("PostgreSQL at 127.0.0.1:5432", e);
            None
        }
    }
}

/// A DSN of the machine's PostgreSQL whose connections carry `app` as their
/// `application_name`, so the server counts them.
fn pg_dsn(app: &str) -> String {
    format!("{PG}?application_name={app}")
}

/// How many connections of `app` the server has.
async fn connections(admin: &PgPool, app: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(app)
        .fetch_one(admin)
        .await
        .expect("pg_stat_activity")
}

/// Waits (up to 5 s) until `app` has `n` connections; the count then.
async fn settles(admin: &PgPool, app: &str, n: i64) -> i64 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = connections(admin, app).await;
        if now == n || Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The error of an opening that must fail (`dyn Source` has no `Debug` for `unwrap_err`).
fn refused(opened: Result<Arc<dyn Source>, SourceError>) -> SourceError {
    match opened {
        Ok(client) => panic!("opened a client at {:?}", client.location()),
        Err(e) => e,
    }
}

fn query(sql: &str) -> FetchRequest {
    FetchRequest::for_source("database").with_param("query", sql.to_owned())
}

async fn reachable(what: &str, addr: &str) -> bool {
    match tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            skip(what, e);
            false
        }
        Err(_) => {
            skip(what, "no answer within 3s");
            false
        }
    }
}

#[tokio::test]
async fn a_database_client_is_opened_from_a_dsn_used_and_kept() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let app = unique("cm_dyn");
    let dsn = pg_dsn(&app);
    let sources = Sources::new();
    let client = sources.__dynamic_source("database", &dsn).await.unwrap();
    assert_eq!(
        client
            .fetch(&query("SELECT 'from pg'::text"))
            .await
            .unwrap(),
        RawValue::from("from pg")
    );
    assert_eq!(
        client.location().as_deref(),
        Some("postgres://127.0.0.1:5432/test")
    );
    // Asked again, by another name of the same backend or by a clone of the sources: the
    // same client, one connection on the server.
    for (backend, sources) in [
        ("database", &sources),
        ("postgres", &sources),
        ("database:analytics", &sources.clone()),
    ] {
        let again = sources.__dynamic_source(backend, &dsn).await.unwrap();
        assert!(Arc::ptr_eq(&client, &again), "{backend}");
    }
    assert_eq!(settles(&admin, &app, 1).await, 1);

    // The DSN's scheme picks the driver; a driver name must match it.
    if reachable("MariaDB at 127.0.0.1:3306", "127.0.0.1:3306").await {
        let maria = sources.__dynamic_source("database", MYSQL).await.unwrap();
        assert_eq!(
            maria.fetch(&query("SELECT 'from maria'")).await.unwrap(),
            RawValue::from("from maria")
        );
        let e = refused(sources.__dynamic_source("postgres", MYSQL).await);
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("was given a mysql URL"), "{e}");
    }
    drop((client, sources));
    assert_eq!(settles(&admin, &app, 0).await, 0, "the pool closed");
}

#[tokio::test]
async fn beyond_the_bound_the_least_recently_used_client_is_dropped_and_its_pool_closed() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let apps: Vec<String> = (0..3).map(|_| unique("cm_lru")).collect();
    let [a, b, c] = [0, 1, 2].map(|i| pg_dsn(&apps[i]));
    let sources = Sources::new().with_max_dynamic_clients(2);
    let first_a = sources.__dynamic_source("database", &a).await.unwrap();
    let first_b = Arc::downgrade(&sources.__dynamic_source("database", &b).await.unwrap());
    // `a` used again: `b` is now the least recently used.
    let again_a = sources.__dynamic_source("database", &a).await.unwrap();
    assert!(Arc::ptr_eq(&first_a, &again_a));
    let _c = sources.__dynamic_source("database", &c).await.unwrap();
    assert!(format!("{sources:?}").contains("DynamicClients { open: 2, max: 2 }"));

    assert!(first_b.upgrade().is_none(), "`b` was dropped");
    assert_eq!(settles(&admin, &apps[1], 0).await, 0, "`b`'s pool closed");
    assert_eq!(connections(&admin, &apps[0]).await, 1);
    assert_eq!(connections(&admin, &apps[2]).await, 1);
    // `b` again: a new client (and `a`, now the least recently used, goes).
    let new_b = sources.__dynamic_source("database", &b).await.unwrap();
    assert!(new_b.fetch(&query("SELECT 1::int4")).await.is_ok());
    drop((first_a, again_a));
    assert_eq!(settles(&admin, &apps[0], 0).await, 0, "`a`'s pool closed");

    // Bound 0: nothing is kept, each request opens its own client.
    let none = Sources::new().with_max_dynamic_clients(0);
    let one = none.__dynamic_source("database", &a).await.unwrap();
    let two = none.__dynamic_source("database", &a).await.unwrap();
    assert!(!Arc::ptr_eq(&one, &two));
    assert!(format!("{none:?}").contains("DynamicClients { open: 0, max: 0 }"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_first_requests_open_one_client() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let app = unique("cm_flight");
    let dsn = pg_dsn(&app);
    let sources = Sources::new();
    let clients = futures::future::join_all((0..10).map(|_| {
        let (sources, dsn) = (sources.clone(), dsn.clone());
        tokio::spawn(async move { sources.__dynamic_source("database", &dsn).await })
    }))
    .await;
    let clients: Vec<Arc<dyn Source>> = clients.into_iter().map(|c| c.unwrap().unwrap()).collect();
    assert!(clients.iter().all(|c| Arc::ptr_eq(c, &clients[0])));
    assert_eq!(
        settles(&admin, &app, 1).await,
        1,
        "one pool, one connection"
    );

    if reachable("Redis at 127.0.0.1:6379", "127.0.0.1:6379").await {
        let redis =
            futures::future::join_all((0..10).map(|_| sources.__dynamic_source("redis", REDIS)))
                .await;
        let first = redis[0].as_ref().unwrap();
        assert!(
            redis
                .iter()
                .all(|c| Arc::ptr_eq(c.as_ref().unwrap(), first))
        );
    }
}

/// A server that accepts connections and never answers.
async fn blackhole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_silent_servers_fail_within_the_bound_and_are_not_kept() {
    let sources = Sources::new();
    // Refused.
    let started = Instant::now();
    let e = refused(
        sources
            .__dynamic_source("database", "postgres://postgres:pw-canary@127.0.0.1:1/test")
            .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "unavailable: could not open a `database` client for the fetched address: "
        ),
        "{text}"
    );
    assert!(!format!("{text} {e:?}").contains("pw-canary"), "{e:?}");
    assert!(format!("{sources:?}").contains("DynamicClients { open: 0, max: 8 }"));

    let e = refused(
        sources
            .__dynamic_source("redis", "redis://:pw-canary@127.0.0.1:1")
            .await,
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!format!("{e} {e:?}").contains("pw-canary"), "{e:?}");

    // Silent: ten callers at once share one opening, which ends within its bound.
    let (addr, server) = blackhole().await;
    for (backend, dsn, within) in [
        ("postgres", format!("postgres://u:pw-canary@{addr}/test"), 8),
        ("redis", format!("redis://:pw-canary@{addr}"), 13),
    ] {
        let started = Instant::now();
        let all =
            futures::future::join_all((0..10).map(|_| sources.__dynamic_source(backend, &dsn)))
                .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(within), "{backend}: {took:?}");
        for e in all {
            let e = e
                .err()
                .unwrap_or_else(|| panic!("{backend} opened a silent server"));
            assert!(
                matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
                "{backend}: {e}"
            );
            assert!(!format!("{e} {e:?}").contains("pw-canary"), "{e:?}");
        }
    }
    server.abort();
    assert!(format!("{sources:?}").contains("DynamicClients { open: 0, max: 8 }"));

    // NATS connects on first use: the opening checks the URL, the fetch is bounded.
    let nats = sources
        .__dynamic_source("nats", "nats://127.0.0.1:1")
        .await
        .unwrap();
    let started = Instant::now();
    let e = nats
        .fetch(&FetchRequest::for_source("nats").with_param("topic", "cm.none"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let e = refused(sources.__dynamic_source("nats", "not a url").await);
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(!e.to_string().contains("not a url"), "{e}");
}

#[tokio::test]
async fn other_backends_are_refused_by_name() {
    let sources = Sources::new();
    for backend in ["kafka", "http", "env", "my_registered_source"] {
        let e = refused(
            sources
                .__dynamic_source(backend, "postgres://u:pw-canary@h/db")
                .await,
        );
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(
            e.message().unwrap(),
            format!(
                "`connect` opens clients of database, postgres, mysql, sqlite, redis, consul, vault and nats; `{backend}` is not one of them"
            )
        );
    }
    let e = refused(
        sources
            .__dynamic_source("database", "pw-canary-without-scheme")
            .await,
    );
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(!e.to_string().contains("pw-canary"), "{e}");
}

#[tokio::test]
async fn consul_and_vault_clients_inherit_the_token_of_the_sources_environment() {
    // Consul: the double with ACLs; the token comes from CONSUL_HTTP_TOKEN of the sources.
    let token = unique("cm-consul-token");
    let consul = ConsulDouble::builder().acl_token(&token).start().await;
    consul.put("app/port", "8080");
    let read = FetchRequest::for_key("consul", "app/port");
    let with = Sources::from_env_source(EnvSource::from_map([("CONSUL_HTTP_TOKEN", &token)]));
    let client = with
        .__dynamic_source("consul", &consul.address())
        .await
        .unwrap();
    assert_eq!(client.fetch(&read).await.unwrap(), RawValue::from("8080"));
    assert!(!format!("{:?} {with:?}", client.location()).contains(&token));
    let without = Sources::from_env_source(EnvSource::from_map([("CONSUL_HTTP_TOKEN", "")]));
    let anonymous = without
        .__dynamic_source("consul", &consul.url())
        .await
        .unwrap();
    assert!(anonymous.fetch(&read).await.is_err());

    // Vault: OpenBao, its root token as VAULT_TOKEN of the sources.
    let Some(bao) = crate::openbao::bao().await else {
        return;
    };
    let root = std::env::var("CM_OPENBAO_TOKEN").unwrap_or_else(|_| "cm-openbao-root".into());
    let path = unique("cm_dyn");
    let (status, body) = bao
        .request(
            "POST",
            &format!("secret/data/{path}"),
            Some(serde_json::json!({ "data": { "password": "from-bao" } })),
            None,
        )
        .await
        .unwrap();
    assert!(status < 300, "{status} {body}");
    let read = FetchRequest::for_source("vault").with_secret_path(path.clone());
    let with = Sources::from_env_source(EnvSource::from_map([("VAULT_TOKEN", root.as_str())]));
    let client = with.__dynamic_source("vault", &bao.addr).await.unwrap();
    let value = client.fetch(&read).await.unwrap();
    assert_eq!(
        value,
        RawValue::Json(serde_json::json!({ "password": "from-bao" }))
    );
    assert!(!format!("{:?} {with:?}", client.location()).contains(&root));
    let without = Sources::from_env_source(EnvSource::from_map([("VAULT_TOKEN", "")]));
    let anonymous = without.__dynamic_source("vault", &bao.addr).await.unwrap();
    let e = anonymous.fetch(&read).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Config),
        "{e}"
    );
}

#[tokio::test]
async fn a_nats_client_is_one_per_url() {
    if !reachable("NATS at 127.0.0.1:4222", "127.0.0.1:4222").await {
        return;
    }
    let sources = Sources::new();
    let one = sources.__dynamic_source("nats", NATS).await.unwrap();
    let two = sources.__dynamic_source("nats", NATS).await.unwrap();
    assert!(Arc::ptr_eq(&one, &two));
    assert_eq!(one.location().as_deref(), Some(NATS));
}

/// `log` records (sqlx, redis and rustls log through `log`) written to the capture while
/// one lives, as an application bridging `log` into `tracing` would see them.
mod log_bridge {
    use component_model_tests::CapturedLogs;

    static SINK: std::sync::Mutex<Option<CapturedLogs>> = std::sync::Mutex::new(None);

    struct Bridge;

    impl log::Log for Bridge {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let sink = SINK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(mut sink) = sink {
                use std::io::Write;
                let _ = writeln!(
                    sink,
                    "{} {}: {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
            }
        }
        fn flush(&self) {}
    }

    /// Captures `log` records into `logs` until the guard drops.
    pub(super) fn capture(logs: &CapturedLogs) -> impl Drop {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if log::set_boxed_logger(Box::new(Bridge)).is_ok() {
                log::set_max_level(log::LevelFilter::Trace);
            }
        });
        *SINK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(logs.clone());
        Guard
    }

    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            *SINK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }
}

#[tokio::test]
async fn a_password_in_the_address_is_in_no_error_debug_location_or_log_line() {
    let canary = format!("canary-{}", unique("pw"));
    let logs = CapturedLogs::default();
    let _tracing = component_model_tests::capture(&logs);
    let _log = log_bridge::capture(&logs);
    let sources = Sources::new();
    let mut shown = Vec::new();

    // PostgreSQL trusts local connections: the password is sent, ignored, and the client
    // works.
    if pg_admin().await.is_some() {
        let dsn = format!("postgres://postgres:{canary}@127.0.0.1:5432/test");
        let client = sources.__dynamic_source("database", &dsn).await.unwrap();
        let value = client.fetch(&query("SELECT 'ok'::text")).await.unwrap();
        assert_eq!(value, RawValue::from("ok"));
        let e = client.fetch(&query("SELECT nope")).await.unwrap_err();
        shown.push(format!("{:?} {e} {e:?}", client.location()));
    }
    // MariaDB refuses the password: the error says so without it.
    if reachable("MariaDB at 127.0.0.1:3306", "127.0.0.1:3306").await {
        let dsn = format!("mysql://root:{canary}@127.0.0.1:3306/test");
        let e = refused(sources.__dynamic_source("mysql", &dsn).await);
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        shown.push(format!("{e} {e:?}"));
    }
    // Redis has no password set: AUTH with one fails, without showing it.
    if reachable("Redis at 127.0.0.1:6379", "127.0.0.1:6379").await {
        let url = format!("redis://:{canary}@127.0.0.1:6379");
        match sources.__dynamic_source("redis", &url).await {
            Ok(client) => shown.push(format!("{:?}", client.location())),
            Err(e) => shown.push(format!("{e} {e:?}")),
        }
    }
    // NATS: the token in the URL.
    if reachable("NATS at 127.0.0.1:4222", "127.0.0.1:4222").await {
        let url = format!("nats://{canary}@127.0.0.1:4222");
        let client = sources.__dynamic_source("nats", &url).await.unwrap();
        let e = client
            .fetch(&FetchRequest::for_source("nats").with_param("topic", "cm.dyn.none"))
            .await;
        shown.push(format!("{:?} {e:?}", client.location()));
    }
    // Unreachable, each backend.
    for (backend, address) in [
        ("database", format!("postgres://u:{canary}@127.0.0.1:1/x")),
        ("database", format!("mysql://u:{canary}@127.0.0.1:1/x")),
        ("redis", format!("redis://u:{canary}@127.0.0.1:1")),
        ("vault", format!("http://u:{canary}@127.0.0.1:1")),
        ("consul", format!("http://u:{canary}@127.0.0.1:1")),
    ] {
        match sources.__dynamic_source(backend, &address).await {
            Ok(client) => {
                let e = client
                    .fetch(&FetchRequest::for_key(backend, "k").with_secret_path("k"))
                    .await;
                shown.push(format!("{:?} {e:?}", client.location()));
            }
            Err(e) => shown.push(format!("{e} {e:?}")),
        }
    }
    shown.push(format!("{sources:?}"));
    let text = logs.text();
    assert!(
        !text.is_empty(),
        "nothing was logged at TRACE: the capture is not working"
    );
    for (what, s) in [("errors and Debug", shown.join("\n")), ("TRACE logs", text)] {
        assert!(
            !s.contains(&canary),
            "{what} show the password:\n{}",
            s.lines()
                .filter(|l| l.contains(&canary))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
