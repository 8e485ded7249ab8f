//! Subtree reads, `prefix = "..."`: every key under a prefix as ONE value (a JSON object of
//! the keys relative to the prefix) on Consul (the in-process API double, which counts
//! requests), Redis (127.0.0.1:6379; commands counted with `MONITOR`), PostgreSQL, MariaDB
//! and SQLite (queries counted by `DatabaseSource::queries_run`, one per statement the
//! source sends), files, and a Vault secret's map (the double, and OpenBao when it is up).
//!
//! Every test writes keys, tables or files of its own and removes them; a server that is
//! not reachable skips its test (fails under `CM_REQUIRE_SERVICES=1`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use component_model::test_util::ConsulDouble;
use component_model::{
    AsyncAssign, ConfigUpdate, ConsulSource, DatabaseSource, EnvSource, ErrorKind, FileSource,
    Live, RedisSource, SecretString, Sources,
};
use component_model_tests::unique;
use futures::StreamExt;
use redis::AsyncCommands;
use secrecy::ExposeSecret;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Deserialize, PartialEq)]
struct Ports {
    http: u16,
    admin: u16,
}

// ---------------------------------------------------------------------------------------
// Consul

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulTree {
    #[component(fetch_from = "consul", prefix = "st/features/")]
    flags: HashMap<String, String>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulMixed {
    #[component(fetch_from = "consul", prefix = "st/features/")]
    flags: BTreeMap<String, String>,
    #[component(fetch_from = "consul", prefix = "st/ports/")]
    ports: Ports,
    #[component(fetch_from = "consul", prefix = "st/ports/")]
    port_map: HashMap<String, u16>,
    #[component(fetch_from = "consul", key = "st/name")]
    name: String,
    #[component(fetch_from = "consul", prefix = "st/nothing/")]
    nothing: HashMap<String, String>,
}

fn seeded_consul(consul: &ConsulDouble) {
    consul.put("st/features/", ""); // a folder
    consul.put("st/features/dark", "true");
    consul.put("st/features/beta", "8080");
    consul.put("st/features/deep/x", "{\"a\":1}");
    consul.put("st/featuresque", "not under the folder");
    consul.put("st/ports/http", "8080");
    consul.put("st/ports/admin", "9090");
    consul.put("st/name", "billing");
}

#[tokio::test]
async fn consul_a_prefix_alone_is_one_recurse_read_with_relative_keys() {
    let consul = ConsulDouble::start().await;
    seeded_consul(&consul);
    let sources = Sources::new().register("consul", ConsulSource::new(consul.url()));
    consul.clear_requests();
    let tree = ConsulTree::fetch_all_components_with(&sources)
        .await
        .unwrap();
    let mut keys: Vec<&str> = tree.flags.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["beta", "dark", "deep/x"], "folders left out");
    // Text stays text for a `HashMap<String, String>`: "8080" is not made a number.
    assert_eq!(tree.flags["beta"], "8080");
    assert_eq!(tree.flags["deep/x"], "{\"a\":1}");
    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/kv/st/features/");
    assert!(requests[0].query_param("recurse").is_some());
}

#[tokio::test]
async fn consul_prefixes_and_keys_of_one_struct_share_one_transaction() {
    let consul = ConsulDouble::start().await;
    seeded_consul(&consul);
    let sources = Sources::new().register("consul", ConsulSource::new(consul.url()));
    consul.clear_requests();
    let m = ConsulMixed::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(
        m.ports,
        Ports {
            http: 8080,
            admin: 9090
        }
    );
    assert_eq!(m.port_map["admin"], 9090);
    assert_eq!(m.flags.len(), 3);
    assert_eq!(m.name, "billing");
    assert!(m.nothing.is_empty(), "nothing under a prefix: an empty map");
    // ONE request in all: a `/v1/txn` of one `get` and three `get-tree`s (the two fields
    // reading `st/ports/` make one request).
    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/txn");
    let ops: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    let verbs: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["KV"]["Verb"].as_str().unwrap())
        .collect();
    let trees = verbs.iter().filter(|v| **v == "get-tree").count();
    assert_eq!((verbs.len(), trees), (4, 3), "{verbs:?}");
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulBounded {
    #[component(fetch_from = "consul", prefix = "st/features/", max_keys = 2)]
    few: HashMap<String, String>,
    #[component(fetch_from = "consul", prefix = "st/ports/", max_size = 6)]
    small: HashMap<String, String>,
    #[component(fetch_from = "consul", key = "st/name")]
    name: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ConsulFew {
    #[component(fetch_from = "consul", prefix = "st/features/", max_keys = 2)]
    few: HashMap<String, String>,
}

#[tokio::test]
async fn consul_over_max_keys_or_max_size_is_too_large_naming_field_source_and_prefix() {
    let consul = ConsulDouble::start().await;
    seeded_consul(&consul);
    let sources = Sources::new().register("consul", ConsulSource::new(consul.url()));
    // In one transaction.
    let errors = ConsulBounded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    }
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|s| s.contains("ConsulBounded.few")
            && s.contains("consul prefix `st/features/`")
            && s.contains("more than 2 keys under prefix `st/features/`")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("ConsulBounded.small") && s.contains("`max_size` of 6 bytes")),
        "{shown:?}"
    );
    // Alone: the `?recurse` read stops at its bound too.
    let errors = ConsulFew::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{}", errors[0]);
    assert!(
        errors[0].to_string().contains("more than 2 keys"),
        "{}",
        errors[0]
    );
}

/// A fake Consul agent that answers every request with `200` and `body` (a JSON list of
/// `entries` tiny entries, written as it goes), or announces `announced` bytes.
async fn hostile_consul(entries: usize, announced: Option<u64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                // A transaction's results wrap each entry; a `?recurse` read lists them.
                let txn = buf[..n].starts_with(b"PUT");
                let mut body = String::from(if txn { "{\"Results\":[" } else { "[" });
                for i in 0..entries {
                    if i > 0 {
                        body.push(',');
                    }
                    let entry = format!("{{\"Key\":\"h/k{i}\",\"Value\":\"MQ==\"}}");
                    match txn {
                        true => body.push_str(&format!("{{\"KV\":{entry}}}")),
                        false => body.push_str(&entry),
                    }
                }
                body.push_str(if txn { "],\"Errors\":null}" } else { "]" });
                let length = announced.unwrap_or(body.len() as u64);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-consul-index: 5\r\ncontent-length: {length}\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct HostileTree {
    #[component(fetch_from = "consul", prefix = "h/")]
    all: HashMap<String, u8>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct HostileTxn {
    #[component(fetch_from = "consul", prefix = "h/")]
    all: HashMap<String, u8>,
    #[component(fetch_from = "consul", key = "h/k0")]
    one: u8,
}

#[tokio::test]
async fn consul_a_hostile_agent_cannot_flood_a_prefix_read() {
    // 20 000 entries (under the body bound): the read stops past the default 10 000.
    let url = hostile_consul(20_000, None).await;
    let sources = Sources::new().register("consul", ConsulSource::new(&url));
    let errors = HostileTree::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{}", errors[0]);
    assert!(
        errors[0].to_string().contains("more than 10000 keys"),
        "{}",
        errors[0]
    );
    // Ten gigabytes announced: refused before reading.
    let url = hostile_consul(3, Some(10 * 1024 * 1024 * 1024)).await;
    let sources = Sources::new().register("consul", ConsulSource::new(&url));
    let started = Instant::now();
    let errors = HostileTree::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{}", errors[0]);
    // In a transaction: the prefix is too large, read no further than its bound; the key
    // read with it is read again without it (as after a rollback) and answered.
    let url = hostile_consul(20_000, None).await;
    let sources = Sources::new().register("consul", ConsulSource::new(&url));
    let errors = HostileTxn::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field_name(), Some("all"));
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{}", errors[0]);
    assert!(
        errors[0]
            .to_string()
            .contains("more than 10000 keys under prefix `h/`"),
        "{}",
        errors[0]
    );
    // Within its bounds, the same agent is read.
    let url = hostile_consul(3, None).await;
    let sources = Sources::new().register("consul", ConsulSource::new(&url));
    let ok = HostileTree::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(ok.all.len(), 3);
    assert_eq!(ok.all["k0"], 1);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct WatchedTree {
    #[component(fetch_from = "consul", prefix = "wt/flags/")]
    flags: BTreeMap<String, bool>,
}

async fn next(updates: &mut component_model::ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update within 5 s")
        .expect("the stream goes on")
}

#[tokio::test]
async fn consul_a_watched_prefix_sees_keys_added_changed_and_removed() {
    let consul = ConsulDouble::start().await;
    consul.put("wt/flags/a", "true");
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let live = Live::<WatchedTree>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(300)).await; // the watch is in place
    assert_eq!(live.get().flags.len(), 1);

    consul.put("wt/flags/b", "false");
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(
        live.get().flags,
        BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)])
    );

    consul.delete("wt/flags/a");
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().flags, BTreeMap::from([("b".to_owned(), false)]));
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Inner {
    #[component(fetch_from = "consul", prefix = "ports/", max_size = 40)]
    ports: Ports,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Outer {
    #[component(nested, key_prefix = "st/")]
    inner: Inner,
}

#[tokio::test]
async fn consul_a_nested_prefix_sits_under_its_key_prefix_and_fits_its_max_size() {
    let consul = ConsulDouble::start().await;
    seeded_consul(&consul);
    let sources = Sources::new().register("consul", ConsulSource::new(consul.url()));
    consul.clear_requests();
    // `{"admin":"9090","http":"8080"}`: 30 bytes, within 40.
    let outer = Outer::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        outer.inner.ports,
        Ports {
            http: 8080,
            admin: 9090
        }
    );
    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/kv/st/ports/");
}

// ---------------------------------------------------------------------------------------
// Redis

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct RedisTree {
    #[component(fetch_from = "redis", prefix = "${P}ports:")]
    ports: Ports,
    #[component(fetch_from = "redis", prefix = "${P}ports:")]
    port_map: HashMap<String, u16>,
    #[component(fetch_from = "redis", prefix = "${P}g*:")]
    globbed: BTreeMap<String, String>,
    #[component(fetch_from = "redis", key = "${P}db", field = "*")]
    db: HashMap<String, String>,
    #[component(fetch_from = "redis", prefix = "${P}none:")]
    none: HashMap<String, String>,
}

#[tokio::test]
async fn redis_a_prefix_is_a_bounded_scan_then_one_mget_and_a_hash_reads_whole() {
    let Some((mut conn, p, _cleanup)) = crate::redis::setup("cm_subtree").await else {
        return;
    };
    let _: () = conn.set(format!("{p}ports:http"), "8080").await.unwrap();
    let _: () = conn.set(format!("{p}ports:admin"), "9090").await.unwrap();
    let _: () = conn.set(format!("{p}g*:a"), "star").await.unwrap();
    let _: () = conn.set(format!("{p}gX:b"), "no").await.unwrap();
    let _: () = conn
        .hset_multiple(
            format!("{p}db"),
            &[("host", "db.internal"), ("port", "5432")],
        )
        .await
        .unwrap();
    let sources = Sources::new()
        .register("redis", RedisSource::new("redis://127.0.0.1:6379"))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let (t, seen) =
        crate::redis::monitored(&p, RedisTree::fetch_all_components_with(&sources)).await;
    let t = t.unwrap();
    assert_eq!(
        t.ports,
        Ports {
            http: 8080,
            admin: 9090
        }
    );
    assert_eq!(t.port_map["http"], 8080);
    // `*` in the prefix is a character, not a glob: `gX:b` is not under `g*:`.
    assert_eq!(
        t.globbed,
        BTreeMap::from([("a".to_owned(), "star".to_owned())])
    );
    assert_eq!(t.db["host"], "db.internal");
    assert!(t.none.is_empty());
    let commands: Vec<String> = seen.iter().map(|l| crate::redis::command(l)).collect();
    let count = |c: &str| commands.iter().filter(|x| *x == c).count();
    // Three distinct prefixes: one SCAN step each (a small database) and one MGET each
    // with keys found; the hash: HLEN then HGETALL.
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    if keys <= 500 {
        assert_eq!(count("SCAN"), 3, "{seen:?}");
    } else {
        // A large database takes several scan steps per prefix (each `COUNT 1000`).
        assert!(count("SCAN") >= 3, "{seen:?}");
    }
    assert_eq!(count("MGET"), 2, "{seen:?}");
    assert_eq!((count("HLEN"), count("HGETALL")), (1, 1), "{seen:?}");
    assert_eq!(count("GET"), 0, "{seen:?}");
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct RedisBounded {
    #[component(fetch_from = "redis", prefix = "${P}many:", max_keys = 3)]
    many: HashMap<String, String>,
    #[component(fetch_from = "redis", key = "${P}bighash", field = "*", max_keys = 3)]
    hash: HashMap<String, String>,
    #[component(fetch_from = "redis", prefix = "${P}big:", max_size = 10)]
    big: HashMap<String, String>,
}

#[tokio::test]
async fn redis_over_max_keys_or_max_size_is_too_large_and_reads_no_more() {
    let Some((mut conn, p, _cleanup)) = crate::redis::setup("cm_subtree_bound").await else {
        return;
    };
    for i in 0..5 {
        let _: () = conn.set(format!("{p}many:{i}"), i).await.unwrap();
        let _: () = conn.hset(format!("{p}bighash"), i, i).await.unwrap();
    }
    let _: () = conn.set(format!("{p}big:a"), "0123456789").await.unwrap();
    let _: () = conn.set(format!("{p}big:b"), "x").await.unwrap();
    let sources = Sources::new()
        .register("redis", RedisSource::new("redis://127.0.0.1:6379"))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let (errors, seen) =
        crate::redis::monitored(&p, RedisBounded::fetch_all_components_with(&sources)).await;
    let errors = errors.unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    }
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        shown.iter().any(|s| s.contains("RedisBounded.many")
            && s.contains(&format!("redis prefix `{p}many:`"))
            && s.contains("more than 3 keys")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("RedisBounded.hash") && s.contains("in hash")),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|s| s.contains("RedisBounded.big") && s.contains("`max_size` of 10 bytes")),
        "{shown:?}"
    );
    let commands: Vec<String> = seen.iter().map(|l| crate::redis::command(l)).collect();
    // Too many keys: no MGET for them; too many members: no HGETALL.
    assert!(!commands.iter().any(|c| c == "HGETALL"), "{seen:?}");
    assert_eq!(
        commands.iter().filter(|c| *c == "MGET").count(),
        1,
        "only `big:` reads values: {seen:?}"
    );
}

/// A server that speaks just enough RESP for the handshake, then answers a SCAN with a
/// key list announcing ten million keys (and nothing after it).
async fn hostile_redis() -> u16 {
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
                    if text.contains("SCAN") {
                        let _ = socket.write_all(b"*2\r\n$1\r\n7\r\n*10000000\r\n").await;
                        // Then silence: the client must not wait for the keys.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
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

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct RedisHostile {
    #[component(fetch_from = "redis", prefix = "app:")]
    all: HashMap<String, String>,
}

#[tokio::test]
async fn redis_a_hostile_server_announcing_ten_million_keys_is_refused_at_once() {
    let port = hostile_redis().await;
    let sources = Sources::new().register(
        "redis",
        RedisSource::new(format!("redis://127.0.0.1:{port}")).with_timeout(Duration::from_secs(5)),
    );
    let started = Instant::now();
    let errors = RedisHostile::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge, "{}", errors[0]);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct RedisWatchedTree {
    #[component(fetch_from = "redis", prefix = "${P}flags:")]
    flags: BTreeMap<String, bool>,
}

#[tokio::test]
async fn redis_a_watched_prefix_sees_keys_added_and_removed() {
    let Some((mut conn, p, _cleanup)) = crate::redis::setup("cm_subtree_live").await else {
        return;
    };
    let _: () = conn.set(format!("{p}flags:a"), "true").await.unwrap();
    let sources = Sources::new()
        .register("redis", RedisSource::new("redis://127.0.0.1:6379"))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let live = Live::<RedisWatchedTree>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(300)).await; // PSUBSCRIBE is in place
    let _: () = conn.set(format!("{p}flags:b"), "false").await.unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(
        live.get().flags,
        BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)])
    );
    let _: () = conn.del(format!("{p}flags:a")).await.unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().flags, BTreeMap::from([("b".to_owned(), false)]));
}

// ---------------------------------------------------------------------------------------
// SQL

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct SqlTree {
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "app.")]
    app: HashMap<String, u16>,
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "app.")]
    ports: Ports,
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "a%")]
    percent: BTreeMap<String, String>,
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "a_")]
    underscore: BTreeMap<String, String>,
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "a\\")]
    backslash: BTreeMap<String, String>,
    #[component(fetch_from = "database", table = "cm_subtree", prefix = "")]
    whole: HashMap<String, String>,
    #[component(fetch_from = "database", table = "cm_subtree", key = "name")]
    name: String,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct SqlBounded {
    #[component(
        fetch_from = "database",
        table = "cm_subtree",
        prefix = "",
        max_keys = 3
    )]
    few: HashMap<String, String>,
    #[component(
        fetch_from = "database",
        table = "cm_subtree",
        prefix = "app.",
        max_size = 4
    )]
    small: HashMap<String, String>,
}

const SQL_ROWS: &[(&str, &str)] = &[
    ("app.http", "8080"),
    ("app.admin", "9090"),
    ("a%c", "percent"),
    ("a_b", "underscore"),
    ("aXb", "plain"),
    ("a\\d", "backslash"),
    ("name", "billing"),
];

/// Creates `cm_subtree` (columns `key`, `value`; quoted with `quote`) in `$pool` and
/// inserts [`SQL_ROWS`], bound with the placeholders `$p1`, `$p2`.
macro_rules! seed_sql {
    ($pool:expr, $quote:literal, $p1:literal, $p2:literal) => {{
        let create = format!(
            "CREATE TABLE cm_subtree ({q}key{q} VARCHAR(100) NOT NULL, {q}value{q} TEXT)",
            q = $quote
        );
        crate::database::exec($pool, create).await;
        for (k, v) in SQL_ROWS {
            let insert = format!("INSERT INTO cm_subtree VALUES ({}, {})", $p1, $p2);
            sqlx::query(sqlx::AssertSqlSafe(insert))
                .bind(*k)
                .bind(*v)
                .execute($pool)
                .await
                .expect("seed");
        }
    }};
}

async fn check_sql(db: DatabaseSource) {
    let sources = Sources::new().register("database", db.clone());
    let before = db.queries_run();
    let t = SqlTree::fetch_all_components_with(&sources).await.unwrap();
    // One statement per distinct prefix (5: the two `app.` fields share one), one for the
    // table's key.
    assert_eq!(db.queries_run() - before, 6);
    assert_eq!(t.app["http"], 8080);
    assert_eq!(
        t.ports,
        Ports {
            http: 8080,
            admin: 9090
        }
    );
    // `%`, `_` and `\` of a prefix are characters, never wildcards.
    assert_eq!(
        t.percent,
        BTreeMap::from([("c".to_owned(), "percent".to_owned())])
    );
    assert_eq!(
        t.underscore,
        BTreeMap::from([("b".to_owned(), "underscore".to_owned())])
    );
    assert_eq!(
        t.backslash,
        BTreeMap::from([("d".to_owned(), "backslash".to_owned())])
    );
    assert_eq!(t.whole.len(), SQL_ROWS.len(), "{:?}", t.whole);
    assert_eq!(t.whole["a_b"], "underscore");
    assert_eq!(t.name, "billing");

    let errors = SqlBounded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::TooLarge, "{e}");
    }
    assert!(
        shown.iter().any(|s| s.contains("SqlBounded.few")
            && s.contains("prefix `cm_subtree.*`")
            && s.contains("more than 3 keys")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|s| s.contains("SqlBounded.small")
            && s.contains("prefix `cm_subtree.app.*`")
            && s.contains("`max_size` of 4 bytes")),
        "{shown:?}"
    );
}

#[tokio::test]
async fn sql_postgres_prefix_is_one_like_query_with_the_prefix_bound_and_escaped() {
    let Some((pool, schema)) = crate::database::pg_isolated(2).await else {
        return;
    };
    seed_sql!(&pool, "\"", "$1", "$2");
    check_sql(DatabaseSource::new(pool.clone())).await;
    crate::database::drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn sql_mariadb_prefix_is_one_like_query_with_the_prefix_bound_and_escaped() {
    let admin = match sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect("mysql://root@127.0.0.1:3306/test")
        .await
    {
        Ok(p) => p,
        Err(e) => return component_model_tests::skip("MariaDB at 127.0.0.1:3306", e),
    };
    let name = unique("cm_subtree_db");
    crate::database::exec(&admin, format!("CREATE DATABASE {name}")).await;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&format!("mysql://root@127.0.0.1:3306/{name}"))
        .await
        .expect("isolated pool");
    seed_sql!(&pool, "`", "?", "?");
    check_sql(DatabaseSource::new(pool.clone())).await;
    crate::database::exec(&admin, format!("DROP DATABASE {name}")).await;
}

#[tokio::test]
async fn sql_sqlite_prefix_is_one_like_query_with_the_prefix_bound_and_escaped() {
    // A file: a read stopped at its bound closes its connection, and an in-memory
    // database would go with it.
    let file = std::env::temp_dir().join(format!("{}.db", unique("cm_subtree")));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    seed_sql!(&pool, "\"", "?", "?");
    check_sql(DatabaseSource::new(pool.clone())).await;
    pool.close().await;
    let _ = std::fs::remove_file(&file);
}

// ---------------------------------------------------------------------------------------
// Files

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct FileTree {
    #[component(fetch_from = "file", path = "app.toml", prefix = "features")]
    features: HashMap<String, bool>,
    #[component(fetch_from = "file", path = "app.toml", prefix = "server.ports")]
    ports: Ports,
    #[component(fetch_from = "file", path = "app.toml", prefix = "server.ports")]
    port_map: BTreeMap<String, String>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct FileBad {
    #[component(
        fetch_from = "file",
        path = "app.toml",
        prefix = "features",
        max_keys = 1
    )]
    few: HashMap<String, bool>,
    #[component(fetch_from = "file", path = "app.toml", prefix = "nope")]
    missing: HashMap<String, bool>,
    #[component(fetch_from = "file", path = "app.toml", prefix = "")]
    whole: HashMap<String, serde_json::Value>,
}

#[tokio::test]
async fn file_a_table_read_whole_with_relative_keys_and_bounds() {
    let dir = std::env::temp_dir().join(unique("cm_subtree_file"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.toml"),
        "[features]\ndark = true\nbeta = false\n\n[server.ports]\nhttp = 8080\nadmin = \"9090\"\n",
    )
    .unwrap();
    let sources = Sources::new().register("file", FileSource::new().with_base_dir(&dir));
    let t = FileTree::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        t.features,
        HashMap::from([("dark".to_owned(), true), ("beta".to_owned(), false)])
    );
    assert_eq!(
        t.ports,
        Ports {
            http: 8080,
            admin: 9090
        }
    );
    assert_eq!(t.port_map["http"], "8080");
    let errors = FileBad::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let kinds: Vec<(String, ErrorKind)> = errors
        .iter()
        .map(|e| (e.field_name().unwrap_or_default().to_owned(), e.kind()))
        .collect();
    assert!(
        kinds.contains(&("few".to_owned(), ErrorKind::TooLarge)),
        "{errors:?}"
    );
    assert!(
        kinds.contains(&("missing".to_owned(), ErrorKind::NotFound)),
        "{errors:?}"
    );
    assert_eq!(errors.len(), 2, "the whole document reads: {errors:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct FileWatchedTree {
    #[component(fetch_from = "file", path = "live.toml", prefix = "flags")]
    flags: BTreeMap<String, bool>,
}

#[tokio::test]
async fn file_a_watched_table_sees_members_added_and_removed() {
    let dir = std::env::temp_dir().join(unique("cm_subtree_live"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("live.toml"), "[flags]\na = true\n").unwrap();
    let sources = Sources::new().register("file", FileSource::new().with_base_dir(&dir));
    let live = Live::<FileWatchedTree>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::write(dir.join("live.toml"), "[flags]\na = true\nb = false\n").unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(
        live.get().flags,
        BTreeMap::from([("a".to_owned(), true), ("b".to_owned(), false)])
    );
    std::fs::write(dir.join("live.toml"), "[flags]\nb = false\n").unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().flags, BTreeMap::from([("b".to_owned(), false)]));
    drop(live);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// Vault: a secret's map

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct SecretMap {
    #[component(fetch_from = "vault", secret = "${S}")]
    creds: HashMap<String, SecretString>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct SecretMapWrong {
    #[component(fetch_from = "vault", secret = "${S}")]
    creds: HashMap<String, u16>,
}

const CANARY: &str = "canary-7f3a9d-never-shown";

fn check_secret_map(
    ok: Result<SecretMap, Vec<component_model::ComponentError>>,
    wrong: Result<SecretMapWrong, Vec<component_model::ComponentError>>,
) {
    let map = ok.unwrap();
    assert_eq!(map.creds["password"].expose_secret(), CANARY);
    assert_eq!(map.creds["user"].expose_secret(), "svc");
    assert!(!format!("{map:?}").contains(CANARY), "{map:?}");
    let errors = wrong.unwrap_err();
    let shown = format!("{} {:?}", errors[0], errors);
    assert_eq!(errors[0].kind(), ErrorKind::Decode, "{shown}");
    assert!(!shown.contains(CANARY), "{shown}");
}

#[tokio::test]
async fn vault_a_secrets_map_is_a_map_of_secrets_never_shown() {
    let vault = component_model::test_util::VaultDouble::start().await;
    vault.put(
        "secret",
        "st/db",
        serde_json::json!({"user": "svc", "password": CANARY}),
    );
    let sources = Sources::new()
        .register(
            "vault",
            component_model::VaultSource::new(vault.url())
                .with_token("root")
                .with_kv_version("secret", 2),
        )
        .with_env(EnvSource::from_map([("S", "st/db")]));
    check_secret_map(
        SecretMap::fetch_all_components_with(&sources).await,
        SecretMapWrong::fetch_all_components_with(&sources).await,
    );
}

#[tokio::test]
async fn openbao_a_secrets_map_is_a_map_of_secrets_never_shown() {
    let Some(bao) = crate::openbao::bao().await else {
        return;
    };
    let path = unique("cm_subtree_secret");
    bao.ok(
        "POST",
        &format!("secret/data/{path}"),
        Some(serde_json::json!({"data": {"user": "svc", "password": CANARY}})),
    )
    .await;
    let sources = Sources::new()
        .register(
            "vault",
            component_model::VaultSource::new(&bao.addr).with_token(
                std::env::var("CM_OPENBAO_TOKEN").unwrap_or_else(|_| "cm-openbao-root".into()),
            ),
        )
        .with_env(EnvSource::from_map([("S", path.as_str())]));
    check_secret_map(
        SecretMap::fetch_all_components_with(&sources).await,
        SecretMapWrong::fetch_all_components_with(&sources).await,
    );
    bao.ok("DELETE", &format!("secret/metadata/{path}"), None)
        .await;
}
