//! Preflight (issue 35) of the SQL, Redis, HTTP, file, env, args, secret-file and
//! local-cache sources against real servers: PostgreSQL (127.0.0.1:5432), MariaDB
//! (127.0.0.1:3306), SQLite in memory, Redis (127.0.0.1:6379) and local HTTP servers of
//! the test's own (one answering by path, one refusing `HEAD` whose `GET` body never ends,
//! one that never answers, a closed port).
//!
//! Each test makes its own uniquely named tables, roles, users and keys, and removes them
//! through a drop guard (also when it panics). Without a reachable server a test prints
//! why it skipped and passes, unless `CM_REQUIRE_SERVICES=1` (set by `.ci/run`), where it
//! fails.
//!
//! The PostgreSQL of this machine trusts local connections (`trust` auth): a wrong
//! password is accepted there, so the refused-credentials case uses a role that does not
//! exist (SQLSTATE 28000, the same class as a wrong password's 28P01). MariaDB checks
//! passwords: its case uses a user of its own with a wrong one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_model::{
    Access, ArgsSource, DatabaseSource, EnvSource, FetchRequest, FileSource, HttpSource,
    LocalCacheSource, Probe, RedisSource, SecretFileSource, Source,
};
use component_model_tests::{CapturedLogs, capture, skip, unique};
use redis::AsyncCommands;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A value that must never appear in a probe's detail or a log.
const CANARY: &str = "cm-preflight-canary-5f1e";

/// The probes of `requests`, one each, in order.
async fn probes(source: &dyn Source, requests: Vec<FetchRequest>) -> Vec<Probe> {
    let n = requests.len();
    let probes = source.preflight(requests).await;
    assert_eq!(probes.len(), n, "one probe per request: {probes:?}");
    for p in &probes {
        assert!(
            !p.detail.as_deref().unwrap_or("").contains(CANARY),
            "a value in a probe: {p:?}"
        );
    }
    probes
}

/// Asserts `probe` is `access` and its detail contains each of `words`.
#[track_caller]
fn expect(probe: &Probe, access: Access, words: &[&str]) {
    assert_eq!(probe.access, access, "{probe:?}");
    let detail = probe.detail.as_deref().unwrap_or("");
    for w in words {
        assert!(detail.contains(w), "`{w}` not in {probe:?}");
    }
}

// ---------------------------------------------------------------------------------------
// SQL

/// Statements run on drop, on a connection of their own (the test's runtime may be gone):
/// the test's tables, roles and users are removed also when it panics.
struct SqlCleanup {
    url: &'static str,
    statements: Vec<String>,
}

impl Drop for SqlCleanup {
    fn drop(&mut self) {
        let (url, statements) = (self.url, std::mem::take(&mut self.statements));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                use sqlx::{Connection, Executor};
                if url.starts_with("postgres") {
                    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
                        return;
                    };
                    for s in statements {
                        let _ = conn.execute(sqlx::AssertSqlSafe(s)).await;
                    }
                } else {
                    let Ok(mut conn) = sqlx::MySqlConnection::connect(url).await else {
                        return;
                    };
                    for s in statements {
                        let _ = conn.execute(sqlx::AssertSqlSafe(s)).await;
                    }
                }
            });
        })
        .join();
    }
}

async fn exec<'e, E: sqlx::Executor<'e>>(db: E, sql: String) {
    db.execute(sqlx::AssertSqlSafe(sql.clone()))
        .await
        .unwrap_or_else(|e| panic!("setup SQL `{sql}`: {e}"));
}

async fn pg_admin() -> Option<sqlx::PgPool> {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(PG_URL)
        .await
    {
        Ok(p) => Some(p),
        Err(e) => {
            skip("PostgreSQL at 127.0.0.1:5432", e);
            None
        }
    }
}

async fn mysql_admin() -> Option<sqlx::MySqlPool> {
    match sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(MYSQL_URL)
        .await
    {
        Ok(p) => Some(p),
        Err(e) => {
            skip("MariaDB at 127.0.0.1:3306", e);
            None
        }
    }
}

/// A key/value table `table` with the keys `present` and `secret` (whose value is the
/// canary) and two rows under the prefix `pre.`.
async fn seed<'e, E: sqlx::Executor<'e> + Copy>(db: E, table: &str) {
    exec(
        db,
        format!("CREATE TABLE {table} (key VARCHAR(64) PRIMARY KEY, value TEXT)"),
    )
    .await;
    exec(
        db,
        format!(
            "INSERT INTO {table} (key, value) VALUES ('present', 'v1'), ('secret', '{CANARY}'), ('pre.a', '1'), ('pre.b', '2')"
        ),
    )
    .await;
}

fn query(sql: String, key: &str) -> FetchRequest {
    FetchRequest::for_source("database")
        .with_query(sql)
        .with_key(key.to_owned())
}

fn row(table: &str, key: &str) -> FetchRequest {
    FetchRequest::for_source("database")
        .with_table(table.to_owned())
        .with_key(key.to_owned())
}

/// The requests every SQL test checks against a table seeded by [`seed`], with the
/// placeholder `p` of the dialect, and what each must find.
fn sql_cases(table: &str, p: &str) -> Vec<(FetchRequest, Access, Vec<String>)> {
    let missing_table = format!("{table}_nope");
    vec![
        (
            query(
                format!("SELECT value FROM {table} WHERE key = {p}"),
                "present",
            ),
            Access::Readable,
            vec![],
        ),
        (
            query(
                format!("SELECT value FROM {table} WHERE key = {p}"),
                "absent",
            ),
            Access::Missing,
            vec!["no row".into()],
        ),
        (
            query(
                format!("SELECT value FROM {missing_table} WHERE key = {p};"),
                "present",
            ),
            Access::Invalid,
            vec![missing_table.clone()],
        ),
        (
            query(
                format!("SELEC value FROM {table} WHERE key = {p}"),
                "present",
            ),
            Access::Invalid,
            vec!["syntax".into()],
        ),
        (
            FetchRequest::for_source("database").with_query(format!("SELECT value FROM {table}")),
            Access::Invalid,
            vec!["more than one row".into()],
        ),
        (row(table, "present"), Access::Readable, vec![]),
        (
            row(table, "secret").sensitive(true),
            Access::Readable,
            vec![],
        ),
        (row(table, "absent"), Access::Missing, vec!["absent".into()]),
        (
            row(&missing_table, "present"),
            Access::Invalid,
            vec![missing_table.clone()],
        ),
        (
            FetchRequest::for_source("database")
                .with_table(table.to_owned())
                .with_param("prefix", "pre."),
            Access::Readable,
            vec!["2 rows".into()],
        ),
    ]
}

/// Runs [`sql_cases`] through `source` in one preflight.
async fn check_sql_cases(source: &DatabaseSource, table: &str, p: &str, driver: &str) {
    let cases = sql_cases(table, p);
    let requests: Vec<FetchRequest> = cases.iter().map(|(r, _, _)| r.clone()).collect();
    let started = Instant::now();
    let found = probes(source, requests).await;
    println!(
        "{driver}: preflight of {} requests in {:?}",
        found.len(),
        started.elapsed()
    );
    for ((request, access, words), probe) in cases.iter().zip(&found) {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(probe.access, *access, "{request:?}: {probe:?}");
        expect(probe, *access, &words);
    }
}

/// How long a preflight of `n` keys of one table and `n` bound-key queries takes.
async fn sql_figures(source: &DatabaseSource, table: &str, p: &str, driver: &str, n: usize) {
    let keys: Vec<FetchRequest> = (0..n).map(|i| row(table, &format!("k{i}"))).collect();
    let started = Instant::now();
    let found = probes(source, keys).await;
    let table_time = started.elapsed();
    assert!(
        found.iter().all(|p| p.access == Access::Missing),
        "{found:?}"
    );
    let queries: Vec<FetchRequest> = (0..n)
        .map(|i| {
            query(
                format!("SELECT value FROM {table} WHERE key = {p}"),
                &format!("k{i}"),
            )
        })
        .collect();
    let started = Instant::now();
    let found = probes(source, queries).await;
    assert!(
        found.iter().all(|p| p.access == Access::Missing),
        "{found:?}"
    );
    println!(
        "{driver}: preflight of {n} table keys in {table_time:?}, of {n} distinct bound-key queries in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn postgres_queries_tables_and_prefixes() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let table = unique("cm_pf_pg");
    let _cleanup = SqlCleanup {
        url: PG_URL,
        statements: vec![format!("DROP TABLE IF EXISTS {table}")],
    };
    seed(&admin, &table).await;
    let source = DatabaseSource::connect(PG_URL).await.expect("source");
    check_sql_cases(&source, &table, "$1", "postgres").await;
    // A missing table is named with the database's words.
    let found = probes(
        &source,
        vec![query(
            format!("SELECT value FROM {table}_gone WHERE key = $1"),
            "k",
        )],
    )
    .await;
    expect(
        &found[0],
        Access::Invalid,
        &[
            &format!("relation \"{table}_gone\" does not exist"),
            "42P01",
        ],
    );
    // A statement that prepares but cannot be a subquery: whether it returns a row is
    // not known.
    let found = probes(
        &source,
        vec![FetchRequest::for_source("database").with_query("SHOW search_path")],
    )
    .await;
    expect(&found[0], Access::Unchecked, &["prepares", "42601"]);
    sql_figures(&source, &table, "$1", "postgres", 50).await;
}

#[tokio::test]
async fn postgres_a_role_without_select_is_denied_and_an_unknown_role_unauthenticated() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let table = unique("cm_pf_pgd");
    let role = unique("cm_pf_role");
    let _cleanup = SqlCleanup {
        url: PG_URL,
        statements: vec![
            format!("DROP TABLE IF EXISTS {table}"),
            format!("DROP ROLE IF EXISTS {role}"),
        ],
    };
    seed(&admin, &table).await;
    exec(&admin, format!("CREATE ROLE {role} LOGIN")).await;
    let url = format!("postgres://{role}@127.0.0.1:5432/test");
    let source = DatabaseSource::connect(&url).await.expect("source");
    let found = probes(
        &source,
        vec![
            query(
                format!("SELECT value FROM {table} WHERE key = $1"),
                "present",
            ),
            row(&table, "present"),
        ],
    )
    .await;
    for probe in &found {
        expect(probe, Access::Denied, &["permission denied", "42501"]);
    }
    if let Some(component_model::fetchers::database::DbPool::Postgres(pool)) = source.pool() {
        pool.close().await;
    }

    // Refused credentials: a role that does not exist (this server trusts passwords).
    let nobody = unique("cm_pf_nobody");
    let source = DatabaseSource::lazy(&format!("postgres://{nobody}:pw@127.0.0.1:5432/test"));
    let found = probes(&source, vec![row(&table, "present")]).await;
    expect(&found[0], Access::Unauthenticated, &["28000"]);
    assert!(
        !found[0].detail.as_deref().unwrap_or("").contains(":pw@"),
        "{found:?}"
    );

    // A closed port: unreachable, within the pool's acquire timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let source = DatabaseSource::lazy(&format!("postgres://postgres@127.0.0.1:{port}/test"));
    let started = Instant::now();
    let found = probes(&source, vec![row(&table, "present")]).await;
    expect(&found[0], Access::Unreachable, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mariadb_queries_tables_users_and_privileges() {
    let Some(admin) = mysql_admin().await else {
        return;
    };
    let table = unique("cm_pf_my");
    let other = unique("cm_pf_myo");
    let user = unique("cm_pf_u");
    let _cleanup = SqlCleanup {
        url: MYSQL_URL,
        statements: vec![
            format!("DROP TABLE IF EXISTS {table}"),
            format!("DROP TABLE IF EXISTS {other}"),
            format!("DROP USER IF EXISTS '{user}'@'%'"),
        ],
    };
    // `key` is a reserved word in MariaDB: the table's columns are quoted as fetch does.
    exec(
        &admin,
        format!("CREATE TABLE {table} (`key` VARCHAR(64) PRIMARY KEY, `value` TEXT)"),
    )
    .await;
    exec(
        &admin,
        format!(
            "INSERT INTO {table} (`key`, `value`) VALUES ('present', 'v1'), ('secret', '{CANARY}'), ('pre.a', '1'), ('pre.b', '2')"
        ),
    )
    .await;
    let source = DatabaseSource::connect(MYSQL_URL).await.expect("source");
    // The cases' queries name the columns as MariaDB reads them.
    let cases = sql_cases(&table, "?");
    let requests: Vec<FetchRequest> = cases
        .iter()
        .map(|(r, _, _)| match r.query() {
            Some(q) => {
                let q = q
                    .replace("key =", "`key` =")
                    .replace("value FROM", "`value` FROM");
                let r2 = FetchRequest::for_source("database").with_query(q);
                match r.key() {
                    Some(k) => r2.with_key(k.to_owned()),
                    None => r2,
                }
            }
            None => r.clone(),
        })
        .collect();
    let started = Instant::now();
    let found = probes(&source, requests.clone()).await;
    println!(
        "mysql: preflight of {} requests in {:?}",
        found.len(),
        started.elapsed()
    );
    for ((request, (_, access, words)), probe) in requests.iter().zip(&cases).zip(&found) {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(probe.access, *access, "{request:?}: {probe:?}");
        expect(probe, *access, &words);
    }
    sql_figures_mysql(&source, &table, 50).await;

    // A user of its own: a wrong password is refused; with the right one, a table it may
    // not read is denied (it may read another, so it may use the database).
    exec(&admin, format!("CREATE TABLE {other} (x INT)")).await;
    exec(
        &admin,
        format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'right-pw'"),
    )
    .await;
    exec(
        &admin,
        format!("GRANT SELECT ON test.{other} TO '{user}'@'%'"),
    )
    .await;
    let wrong = DatabaseSource::lazy(&format!("mysql://{user}:wrong-pw@127.0.0.1:3306/test"));
    let found = probes(&wrong, vec![row(&table, "present")]).await;
    expect(&found[0], Access::Unauthenticated, &["1045"]);
    assert!(
        !found[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("wrong-pw"),
        "{found:?}"
    );
    let limited = DatabaseSource::connect(&format!("mysql://{user}:right-pw@127.0.0.1:3306/test"))
        .await
        .expect("limited source");
    let found = probes(
        &limited,
        vec![
            row(&table, "present"),
            query(
                format!("SELECT `value` FROM {table} WHERE `key` = ?"),
                "present",
            ),
        ],
    )
    .await;
    for probe in &found {
        expect(probe, Access::Denied, &["1142"]);
    }
}

async fn sql_figures_mysql(source: &DatabaseSource, table: &str, n: usize) {
    let keys: Vec<FetchRequest> = (0..n).map(|i| row(table, &format!("k{i}"))).collect();
    let started = Instant::now();
    let found = probes(source, keys).await;
    let table_time = started.elapsed();
    assert!(
        found.iter().all(|p| p.access == Access::Missing),
        "{found:?}"
    );
    let queries: Vec<FetchRequest> = (0..n)
        .map(|i| {
            query(
                format!("SELECT `value` FROM {table} WHERE `key` = ?"),
                &format!("k{i}"),
            )
        })
        .collect();
    let started = Instant::now();
    let found = probes(source, queries).await;
    assert!(
        found.iter().all(|p| p.access == Access::Missing),
        "{found:?}"
    );
    println!(
        "mysql: preflight of {n} table keys in {table_time:?}, of {n} distinct bound-key queries in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sqlite_queries_and_tables() {
    // One connection: an in-memory SQLite database lives in its connection.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory sqlite");
    seed(&pool, "config").await;
    let source = DatabaseSource::new(pool);
    check_sql_cases(&source, "config", "?", "sqlite").await;
    let found = probes(
        &source,
        vec![query("SELECT value FROM gone WHERE key = ?".into(), "k")],
    )
    .await;
    expect(&found[0], Access::Invalid, &["no such table: gone"]);
    sql_figures(&source, "config", "?", "sqlite", 50).await;
}

// ---------------------------------------------------------------------------------------
// Redis

/// Deletes every key under a prefix, and ACL users, when dropped.
struct RedisCleanup {
    prefix: String,
    users: Vec<String>,
}

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let users = std::mem::take(&mut self.users);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let Ok(client) = redis::Client::open(REDIS_URL) else {
                    return;
                };
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                    return;
                };
                let keys: Vec<String> = conn.keys(&pattern).await.unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = conn.del(keys).await;
                }
                for user in users {
                    let _: Result<(), _> = redis::cmd("ACL")
                        .arg("DELUSER")
                        .arg(&user)
                        .query_async(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

async fn redis_admin(
    tag: &str,
) -> Option<(redis::aio::MultiplexedConnection, String, RedisCleanup)> {
    let client = redis::Client::open(REDIS_URL).expect("url");
    let conn = match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            skip("Redis at 127.0.0.1:6379", e);
            return None;
        }
        Err(_) => {
            skip("Redis at 127.0.0.1:6379", "no answer within 5s");
            return None;
        }
    };
    let prefix = format!("{}:", unique(tag));
    let cleanup = RedisCleanup {
        prefix: prefix.clone(),
        users: Vec::new(),
    };
    Some((conn, prefix, cleanup))
}

fn key(k: String) -> FetchRequest {
    FetchRequest::for_key("redis", k)
}

#[tokio::test]
async fn redis_strings_hashes_streams_and_prefixes() {
    let Some((mut conn, p, _cleanup)) = redis_admin("cm_pf_redis").await else {
        return;
    };
    let _: () = conn.set(format!("{p}str"), CANARY).await.unwrap();
    let _: () = conn.rpush(format!("{p}list"), "a").await.unwrap();
    let _: () = conn.hset(format!("{p}hash"), "f", CANARY).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(format!("{p}stream"))
        .arg("*")
        .arg("value")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let source = RedisSource::new(REDIS_URL);
    let cases: Vec<(FetchRequest, Access, &str)> = vec![
        (key(format!("{p}str")).sensitive(true), Access::Readable, ""),
        (key(format!("{p}absent")), Access::Missing, "no key"),
        (
            key(format!("{p}list")),
            Access::Invalid,
            "is a list, the field reads a string",
        ),
        (
            key(format!("{p}hash")).with_select("f"),
            Access::Readable,
            "",
        ),
        (
            key(format!("{p}hash")).with_select("g"),
            Access::Missing,
            "no member `g`",
        ),
        (
            key(format!("{p}str")).with_select("f"),
            Access::Invalid,
            "is a string",
        ),
        (
            key(format!("{p}hash")).with_select("*"),
            Access::Readable,
            "1 member",
        ),
        (
            key(format!("{p}gone")).with_select("*"),
            Access::Missing,
            "no key",
        ),
        (
            FetchRequest::for_source("redis").with_topic(format!("{p}stream")),
            Access::Readable,
            "",
        ),
        (
            FetchRequest::for_source("redis").with_topic(format!("{p}nostream")),
            Access::Missing,
            "",
        ),
        (
            FetchRequest::for_source("redis").with_topic(format!("{p}str")),
            Access::Invalid,
            "is a string, the field reads a stream",
        ),
        (
            FetchRequest::for_source("redis").with_param("prefix", p.clone()),
            Access::Readable,
            "4 keys",
        ),
    ];
    let requests: Vec<FetchRequest> = cases.iter().map(|(r, _, _)| r.clone()).collect();
    let started = Instant::now();
    let found = probes(&source, requests).await;
    println!(
        "redis: preflight of {} requests in {:?}",
        found.len(),
        started.elapsed()
    );
    for ((request, access, word), probe) in cases.iter().zip(&found) {
        assert_eq!(probe.access, *access, "{request:?}: {probe:?}");
        expect(probe, *access, &[word]);
    }

    // Figures: 200 string keys in one pipeline.
    let n = 200;
    let many: Vec<FetchRequest> = (0..n).map(|i| key(format!("{p}k{i}"))).collect();
    let started = Instant::now();
    let found = probes(&source, many).await;
    assert!(found.iter().all(|p| p.access == Access::Missing));
    println!("redis: preflight of {n} keys in {:?}", started.elapsed());
}

#[tokio::test]
async fn redis_credentials_acl_and_an_unreachable_server() {
    let Some((mut conn, p, mut cleanup)) = redis_admin("cm_pf_redacl").await else {
        return;
    };
    let _: () = conn.set(format!("{p}allowed"), "1").await.unwrap();
    let _: () = conn.set(format!("{p}other"), "1").await.unwrap();

    // A user that does not exist: the credentials are refused.
    let nobody = unique("cm_pf_nobody");
    let source = RedisSource::new(format!("redis://{nobody}:some-pw@127.0.0.1:6379"));
    let found = probes(&source, vec![key(format!("{p}allowed"))]).await;
    expect(&found[0], Access::Unauthenticated, &[]);
    assert!(
        !found[0].detail.as_deref().unwrap_or("").contains("some-pw"),
        "{found:?}"
    );

    // A user whose ACL allows the keys `<p>allowed*` only: another key is denied.
    let user = unique("cm_pf_acl");
    cleanup.users.push(user.clone());
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">acl-pw")
        .arg(format!("~{p}allowed*"))
        .arg("+@all")
        .query_async(&mut conn)
        .await
        .unwrap();
    let source = RedisSource::new(format!("redis://{user}:acl-pw@127.0.0.1:6379"));
    let found = probes(
        &source,
        vec![key(format!("{p}allowed")), key(format!("{p}other"))],
    )
    .await;
    expect(&found[0], Access::Readable, &[]);
    expect(&found[1], Access::Denied, &["NOPERM"]);

    // A user allowed GET only: TYPE is refused, so nothing could be checked.
    let getter = unique("cm_pf_get");
    cleanup.users.push(getter.clone());
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&getter)
        .arg("on")
        .arg(">get-pw")
        .arg("~*")
        .arg("+get")
        .arg("+hello")
        .arg("+client")
        .arg("+select")
        .arg("+ping")
        .arg("+auth")
        .query_async(&mut conn)
        .await
        .unwrap();
    let source = RedisSource::new(format!("redis://{getter}:get-pw@127.0.0.1:6379"));
    let found = probes(&source, vec![key(format!("{p}allowed"))]).await;
    expect(&found[0], Access::Unchecked, &["TYPE"]);

    // A closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let source = RedisSource::new(format!("redis://127.0.0.1:{port}"));
    let found = probes(&source, vec![key(format!("{p}allowed"))]).await;
    expect(&found[0], Access::Unreachable, &[]);
}

// ---------------------------------------------------------------------------------------
// HTTP

/// A local HTTP/1.1 server answering by path (one request per connection): `/ok` 200,
/// `/missing` 404, `/auth` 401 without `Authorization: Bearer <CANARY>` (200 with it),
/// `/forbidden` 403, `/broken` 503, `/nohead` 405 to `HEAD` and, to `GET`, a 200 whose
/// chunked body never ends. Every request line is recorded.
async fn http_server() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut lines = head.lines();
                let first = lines.next().unwrap_or_default().to_owned();
                let mut parts = first.split(' ');
                let method = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default().to_owned();
                let authorized = lines.any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:")
                        && l.ends_with(&format!("Bearer {CANARY}"))
                });
                log.lock().unwrap().push(format!("{method} {path}"));
                let status = match (method.as_str(), path.as_str()) {
                    (_, "/ok") => "200 OK",
                    (_, "/missing") => "404 Not Found",
                    (_, "/auth") if authorized => "200 OK",
                    (_, "/auth") => "401 Unauthorized",
                    (_, "/forbidden") => "403 Forbidden",
                    (_, "/broken") => "503 Service Unavailable",
                    ("HEAD", "/nohead") => "405 Method Not Allowed",
                    ("GET", "/nohead") => {
                        let _ = socket
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n[\r\n",
                            )
                            .await;
                        // The body never ends: one byte a second.
                        loop {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            if socket.write_all(b"1\r\n1\r\n").await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => "404 Not Found",
                };
                let body = if method == "HEAD" {
                    ""
                } else {
                    "{\"port\":8080}"
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: 13\r\nconnection: close\r\n\r\n{body}"
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), seen, task)
}

/// A server that accepts connections and never answers.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

fn path(p: &str) -> FetchRequest {
    FetchRequest::for_source("settings").with_path(p.to_owned())
}

#[tokio::test]
async fn http_statuses_head_refused_and_unreachable_servers() {
    let (base, seen, task) = http_server().await;
    let source = HttpSource::new(&base).with_timeout(Duration::from_secs(2));
    let found = probes(
        &source,
        vec![
            path("/ok").with_pointer("/port"),
            path("/missing"),
            path("/auth"),
            path("/forbidden"),
            path("/broken"),
        ],
    )
    .await;
    expect(&found[0], Access::Readable, &["HEAD", "200", "/port"]);
    expect(&found[1], Access::Missing, &["404"]);
    expect(&found[2], Access::Unauthenticated, &["401"]);
    expect(&found[3], Access::Denied, &["403"]);
    expect(&found[4], Access::Unreachable, &["503"]);
    // Only HEADs went out.
    assert!(
        seen.lock().unwrap().iter().all(|l| l.starts_with("HEAD ")),
        "{:?}",
        seen.lock().unwrap()
    );

    // The auth header goes along, as fetch sends it; its token is never shown.
    let authed = HttpSource::new(&base).with_auth_header(CANARY);
    let found = probes(&authed, vec![path("/auth")]).await;
    expect(&found[0], Access::Readable, &["200"]);

    // A server refusing HEAD: the GET's head answers, its endless body is not read.
    seen.lock().unwrap().clear();
    let started = Instant::now();
    let found = probes(&source, vec![path("/nohead")]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the body: {:?}",
        started.elapsed()
    );
    expect(&found[0], Access::Readable, &["HEAD refused (405)", "200"]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["HEAD /nohead".to_owned(), "GET /nohead".to_owned()]
    );
    task.abort();

    // A closed port: unreachable at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let found = probes(
        &HttpSource::new(format!("http://{addr}")),
        vec![path("/ok")],
    )
    .await;
    expect(&found[0], Access::Unreachable, &["cannot connect"]);

    // A server that never answers: unreachable within the source's timeout.
    let (silent, held) = silent_server().await;
    let timeout = Duration::from_millis(500);
    let source = HttpSource::new(&silent).with_timeout(timeout);
    let started = Instant::now();
    let found = probes(&source, vec![path("/a"), path("/b")]).await;
    let elapsed = started.elapsed();
    assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    for probe in &found {
        expect(probe, Access::Unreachable, &["within 500ms"]);
    }
    held.abort();
    println!("http: two unanswered URLs given up after {elapsed:?} (timeout {timeout:?})");
}

#[tokio::test]
async fn http_figures() {
    let (base, _seen, task) = http_server().await;
    let source = HttpSource::new(&base);
    let n = 50;
    let requests: Vec<FetchRequest> = (0..n).map(|i| path(&format!("/ok?i={i}"))).collect();
    let started = Instant::now();
    let found = probes(&source, requests).await;
    assert!(
        found.iter().all(|p| p.access == Access::Readable),
        "{found:?}"
    );
    println!(
        "http: preflight of {n} distinct URLs in {:?}",
        started.elapsed()
    );
    task.abort();
}

// ---------------------------------------------------------------------------------------
// Files, env, args, secret files, the local cache

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique(&format!("cm-pf-{name}")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Removes a directory when dropped.
struct DirCleanup(std::path::PathBuf);

impl Drop for DirCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn files_env_args_secret_files_and_the_local_cache() {
    let dir = temp_dir("files");
    let _cleanup = DirCleanup(dir.clone());
    std::fs::write(
        dir.join("app.toml"),
        format!("[server]\nport = 8080\ntoken = \"{CANARY}\"\n[features]\na = true\n"),
    )
    .unwrap();
    std::fs::write(dir.join("broken.toml"), "[server\nport = ").unwrap();
    std::fs::write(dir.join("api_key"), format!("{CANARY}\n")).unwrap();
    std::fs::create_dir(dir.join("a_dir")).unwrap();

    let file = FileSource::new().with_base_dir(&dir);
    let f = |p: &str| FetchRequest::for_source("file").with_path(p.to_owned());
    let found = probes(
        &file,
        vec![
            f("app.toml"),
            f("app.toml").with_pointer("/server/port"),
            f("app.toml").with_pointer("/server/host"),
            f("app.toml").with_pointer("/server/token").sensitive(true),
            f("app.toml").with_param("prefix", "features"),
            f("app.toml").with_param("prefix", "nothing"),
            f("absent.toml"),
            f("broken.toml").with_pointer("/server/port"),
            f("a_dir"),
        ],
    )
    .await;
    expect(&found[0], Access::Readable, &["opens"]);
    expect(&found[1], Access::Readable, &["/server/port"]);
    expect(&found[2], Access::Missing, &["/server/host"]);
    expect(&found[3], Access::Readable, &["not parsed"]);
    expect(&found[4], Access::Readable, &["1 member"]);
    expect(&found[5], Access::Missing, &[]);
    expect(&found[6], Access::Missing, &["absent.toml"]);
    expect(&found[7], Access::Invalid, &["line"]);
    expect(&found[8], Access::Invalid, &["directory"]);

    let env = EnvSource::from_map([
        ("APP_PORT", "8080".to_owned()),
        ("APP_EMPTY", String::new()),
        ("APP_KEY_FILE", dir.join("api_key").display().to_string()),
        ("APP_GONE_FILE", dir.join("gone").display().to_string()),
        ("APP_SECRET", CANARY.to_owned()),
    ]);
    let e = |k: &str| FetchRequest::for_key("env", k.to_owned());
    let found = probes(
        &env,
        vec![
            e("APP_PORT"),
            e("APP_SECRET").sensitive(true),
            e("APP_HOST"),
            e("APP_EMPTY").sensitive(true),
            e("APP_KEY").sensitive(true),
            e("APP_GONE").sensitive(true),
        ],
    )
    .await;
    expect(&found[0], Access::Readable, &["APP_PORT"]);
    expect(&found[1], Access::Readable, &["APP_SECRET"]);
    expect(&found[2], Access::Missing, &["not set"]);
    expect(&found[3], Access::Missing, &["empty"]);
    expect(&found[4], Access::Readable, &["APP_KEY_FILE", "not read"]);
    expect(&found[5], Access::Invalid, &["APP_GONE_FILE"]);

    let args = ArgsSource::new(["app", "--db.port", "5432", "--set", "log.level=debug"]);
    let a = |k: &str| FetchRequest::for_key("args", k.to_owned());
    let found = probes(&args, vec![a("db.port"), a("log.level"), a("db.host")]).await;
    expect(&found[0], Access::Readable, &["--db.port"]);
    expect(&found[1], Access::Readable, &[]);
    expect(&found[2], Access::Missing, &["--db.host"]);

    let secrets = SecretFileSource::in_dir(&dir);
    let s = |k: &str| FetchRequest::for_key("secret_file", k.to_owned()).sensitive(true);
    let found = probes(&secrets, vec![s("api_key"), s("nope"), s("a_dir")]).await;
    expect(&found[0], Access::Readable, &["api_key", "not read"]);
    expect(&found[1], Access::Missing, &["nope"]);
    expect(&found[2], Access::Invalid, &["directory"]);

    // The local cache: a stored value is there (its age shown), a field never stored not.
    let cache = LocalCacheSource::new(dir.join("cache"));
    let stored = FetchRequest::for_key("env", "APP_PORT").in_field("App", "port");
    if let Some(storing) = cache.remember(vec![(stored.clone(), "8080".into())]) {
        storing.await;
    }
    let found = probes(
        &cache,
        vec![
            stored,
            FetchRequest::for_key("env", "APP_HOST").in_field("App", "host"),
            FetchRequest::for_key("env", "X").in_field("Other", "x"),
        ],
    )
    .await;
    expect(&found[0], Access::Readable, &["stored"]);
    expect(&found[1], Access::Missing, &[]);
    expect(&found[2], Access::Missing, &["nothing stored"]);
}

/// A preflight of secret fields of every kind here, under a TRACE subscriber: the secret
/// values (a PostgreSQL value, a Redis value, a file's, an env variable's, a secret
/// file's, an HTTP token) appear in no log line and no probe.
#[tokio::test]
async fn no_secret_value_in_a_trace_log_of_a_preflight() {
    // The secrets are written before the capture starts (sqlx logs the test's own INSERT).
    let dir = temp_dir("trace");
    let _cleanup = DirCleanup(dir.clone());
    std::fs::write(dir.join("app.json"), format!("{{\"token\":\"{CANARY}\"}}")).unwrap();
    std::fs::write(dir.join("key"), CANARY).unwrap();
    let pg = match pg_admin().await {
        Some(admin) => {
            let table = unique("cm_pf_pgt");
            let cleanup = SqlCleanup {
                url: PG_URL,
                statements: vec![format!("DROP TABLE IF EXISTS {table}")],
            };
            seed(&admin, &table).await;
            Some((table, cleanup))
        }
        None => None,
    };
    let redis = match redis_admin("cm_pf_trace").await {
        Some((mut conn, p, cleanup)) => {
            let _: () = conn.set(format!("{p}secret"), CANARY).await.unwrap();
            let _: () = conn.hset(format!("{p}h"), "pw", CANARY).await.unwrap();
            Some((p, cleanup))
        }
        None => None,
    };
    let (base, _seen, server) = http_server().await;

    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let file = FileSource::new().with_base_dir(&dir);
    probes(
        &file,
        vec![
            FetchRequest::for_source("file")
                .with_path("app.json")
                .with_pointer("/token")
                .sensitive(true),
        ],
    )
    .await;
    probes(
        &EnvSource::from_map([("TOKEN", CANARY)]),
        vec![FetchRequest::for_key("env", "TOKEN").sensitive(true)],
    )
    .await;
    probes(
        &SecretFileSource::in_dir(&dir),
        vec![FetchRequest::for_key("secret_file", "key").sensitive(true)],
    )
    .await;
    let http = HttpSource::new(&base).with_auth_header(CANARY);
    let found = probes(&http, vec![path("/auth").sensitive(true)]).await;
    expect(&found[0], Access::Readable, &[]);
    server.abort();

    if let Some((table, _cleanup)) = &pg {
        let source = DatabaseSource::connect(PG_URL).await.expect("source");
        let found = probes(
            &source,
            vec![
                row(table, "secret").sensitive(true),
                query(
                    format!("SELECT value FROM {table} WHERE key = $1"),
                    "secret",
                )
                .sensitive(true),
                // A data error raised while the check runs would quote the value: its
                // message is not shown.
                query(
                    format!(
                        "SELECT value::int + 1 AS n FROM {table} WHERE key = $1 AND value::int > 0"
                    ),
                    "secret",
                )
                .sensitive(true),
            ],
        )
        .await;
        expect(&found[0], Access::Readable, &[]);
        expect(&found[1], Access::Readable, &[]);
        expect(&found[2], Access::Invalid, &["22P02", "not shown"]);
    }
    if let Some((p, _cleanup)) = &redis {
        let found = probes(
            &RedisSource::new(REDIS_URL),
            vec![
                key(format!("{p}secret")).sensitive(true),
                key(format!("{p}h")).with_select("pw").sensitive(true),
            ],
        )
        .await;
        expect(&found[0], Access::Readable, &[]);
        expect(&found[1], Access::Readable, &[]);
    }
    tracing::trace!("preflight-trace-end");
    let text = logs.text();
    assert!(
        text.contains("preflight-trace-end"),
        "the capture is not working"
    );
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains(CANARY))
        .map(|l| l.replace(CANARY, "<the secret value>"))
        .collect();
    assert!(
        lines.is_empty(),
        "a secret value in the TRACE log: {lines:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// End to end: `preflight_with` of derived structs, one per backend.

use component_model::{AsyncAssign, PreflightReport, SecretString, Sources};
use std::collections::HashMap;

/// The one row of `field` in `report`.
#[track_caller]
fn row_of<'r>(report: &'r PreflightReport, field: &str) -> &'r component_model::PreflightRow {
    report
        .rows_of(field)
        .next()
        .unwrap_or_else(|| panic!("no row of {field}: {report}"))
}

/// Neither the report (shown or debugged) nor the TRACE log holds the canary.
#[track_caller]
fn assert_no_canary(report: &PreflightReport, logs: &CapturedLogs) {
    let shown = format!("{report} {report:?}");
    assert!(!shown.contains(CANARY), "a value in the report: {shown}");
    let lines: Vec<String> = logs
        .text()
        .lines()
        .filter(|l| l.contains(CANARY))
        .map(|l| l.replace(CANARY, "<the secret value>"))
        .collect();
    assert!(
        lines.is_empty(),
        "a secret value in the TRACE log: {lines:#?}"
    );
}

/// The key/value table `config` (in the connection's own schema or database) of the
/// end-to-end SQL cases: `port`, `password` (the canary) and two features.
async fn seed_config<'e, E: sqlx::Executor<'e> + Copy>(db: E, quote: char) {
    let (k, v) = (format!("{quote}key{quote}"), format!("{quote}value{quote}"));
    exec(
        db,
        format!("CREATE TABLE config ({k} VARCHAR(64) PRIMARY KEY, {v} TEXT)"),
    )
    .await;
    exec(
        db,
        format!(
            "INSERT INTO config ({k}, {v}) VALUES ('port', '5432'), ('password', '{CANARY}'), ('features.dark', 'true'), ('features.beta', 'false')"
        ),
    )
    .await;
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct PgApp {
    #[component(fetch_from = "postgres", table = "config", key = "port")]
    port: u16,
    #[component(
        fetch_from = "postgres",
        table = "config",
        key = "mode",
        fallback = "normal"
    )]
    mode: String,
    #[component(
        fetch_from = "postgres",
        query = "SELECT value FROM config WHERE key = $1",
        key = "password"
    )]
    password: SecretString,
    #[component(fetch_from = "postgres", table = "config", prefix = "features.")]
    features: HashMap<String, bool>,
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct PgBroken {
    #[component(
        fetch_from = "postgres",
        query = "SELECT value FROM no_such_table WHERE key = $1",
        key = "x"
    )]
    x: String,
    #[component(fetch_from = "postgres", table = "config", key = "absent")]
    absent: u16,
}

#[tokio::test]
async fn preflight_with_a_postgres_struct() {
    let Some(admin) = pg_admin().await else {
        return;
    };
    let schema = unique("cm_pf_schema");
    let _cleanup = SqlCleanup {
        url: PG_URL,
        statements: vec![format!("DROP SCHEMA IF EXISTS {schema} CASCADE")],
    };
    exec(&admin, format!("CREATE SCHEMA {schema}")).await;
    // A pool whose connections use the schema, so the literal `config` is this test's.
    let options: sqlx::postgres::PgConnectOptions = PG_URL.parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("pool");
    seed_config(&pool, '"').await;
    let sources = Sources::new().register("postgres", DatabaseSource::new(pool.clone()));
    let logs = CapturedLogs::default();
    let started = Instant::now();
    let report = {
        let _guard = capture(&logs);
        PgApp::preflight_with(&sources).await
    };
    println!(
        "preflight_with postgres in {:?}:\n{report}",
        started.elapsed()
    );
    assert!(report.is_ok(), "{report}");
    let port = row_of(&report, "port");
    assert_eq!(port.access, Access::Readable, "{report}");
    assert_eq!(port.source, "postgres");
    assert_eq!(port.path, "PgApp.port");
    assert_eq!(row_of(&report, "mode").access, Access::Missing, "{report}");
    let password = row_of(&report, "password");
    assert_eq!(password.access, Access::Readable, "{report}");
    assert_eq!(password.key_label, "query");
    let features = row_of(&report, "features");
    assert_eq!(features.access, Access::Readable, "{report}");
    assert!(
        features
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("2 rows")),
        "{report}"
    );
    assert_no_canary(&report, &logs);

    let report = PgBroken::preflight_with(&sources).await;
    assert!(!report.is_ok(), "{report}");
    let x = row_of(&report, "x");
    assert_eq!(x.access, Access::Invalid, "{report}");
    assert!(
        x.detail
            .as_deref()
            .is_some_and(|d| d.contains("relation \"no_such_table\" does not exist")),
        "{report}"
    );
    assert_eq!(
        row_of(&report, "absent").access,
        Access::Missing,
        "{report}"
    );
    assert_eq!(report.problems().count(), 2, "{report}");
    pool.close().await;
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct MyApp {
    #[component(fetch_from = "mysql", table = "config", key = "port")]
    port: u16,
    #[component(
        fetch_from = "mysql",
        table = "config",
        key = "mode",
        fallback = "normal"
    )]
    mode: String,
    #[component(
        fetch_from = "mysql",
        query = "SELECT `value` FROM config WHERE `key` = ?",
        key = "password"
    )]
    password: SecretString,
    #[component(
        fetch_from = "mysql",
        query = "SELEC `value` FROM config",
        fallback = "x"
    )]
    bad: String,
}

#[tokio::test]
async fn preflight_with_a_mariadb_struct() {
    let Some(admin) = mysql_admin().await else {
        return;
    };
    let db = unique("cm_pf_db");
    let _cleanup = SqlCleanup {
        url: MYSQL_URL,
        statements: vec![format!("DROP DATABASE IF EXISTS {db}")],
    };
    exec(&admin, format!("CREATE DATABASE {db}")).await;
    let url = format!("mysql://root@127.0.0.1:3306/{db}");
    let source = DatabaseSource::connect(&url).await.expect("source");
    {
        let pool = sqlx::MySqlPool::connect(&url).await.expect("pool");
        seed_config(&pool, '`').await;
        pool.close().await;
    }
    let sources = Sources::new().register("mysql", source);
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        MyApp::preflight_with(&sources).await
    };
    println!("preflight_with mariadb:\n{report}");
    assert_eq!(row_of(&report, "port").access, Access::Readable, "{report}");
    assert_eq!(row_of(&report, "mode").access, Access::Missing, "{report}");
    assert_eq!(
        row_of(&report, "password").access,
        Access::Readable,
        "{report}"
    );
    let bad = row_of(&report, "bad");
    assert_eq!(bad.access, Access::Invalid, "{report}");
    assert!(
        bad.detail.as_deref().is_some_and(|d| d.contains("1064")),
        "{report}"
    );
    // An invalid query is in the way, whatever the fallback.
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    assert_no_canary(&report, &logs);
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct LiteApp {
    #[component(fetch_from = "sqlite", table = "config", key = "port")]
    port: u16,
    #[component(
        fetch_from = "sqlite",
        query = "SELECT value FROM config WHERE key = ?",
        key = "password"
    )]
    password: SecretString,
    #[component(
        fetch_from = "sqlite",
        table = "settings",
        key = "port",
        fallback = "1"
    )]
    gone: u16,
}

#[tokio::test]
async fn preflight_with_a_sqlite_struct() {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory sqlite");
    seed_config(&pool, '"').await;
    let sources = Sources::new().register("sqlite", DatabaseSource::new(pool));
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        LiteApp::preflight_with(&sources).await
    };
    println!("preflight_with sqlite:\n{report}");
    assert_eq!(row_of(&report, "port").access, Access::Readable, "{report}");
    assert_eq!(
        row_of(&report, "password").access,
        Access::Readable,
        "{report}"
    );
    let gone = row_of(&report, "gone");
    assert_eq!(gone.access, Access::Invalid, "{report}");
    assert!(
        gone.detail
            .as_deref()
            .is_some_and(|d| d.contains("no such table: settings")),
        "{report}"
    );
    assert!(!report.is_ok(), "{report}");
    assert_no_canary(&report, &logs);
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct RedisApp {
    #[component(fetch_from = "redis", key = "${P}port")]
    port: u16,
    #[component(fetch_from = "redis", key = "${P}db", field = "password")]
    password: SecretString,
    #[component(fetch_from = "redis", key = "${P}mode", fallback = "normal")]
    mode: String,
    #[component(fetch_from = "redis", prefix = "${P}features:")]
    features: HashMap<String, bool>,
    #[component(fetch_from = "redis", key = "${P}queue", fallback = "x")]
    queue: String,
}

#[tokio::test]
async fn preflight_with_a_redis_struct() {
    let Some((mut conn, p, _cleanup)) = redis_admin("cm_pf_e2e").await else {
        return;
    };
    let _: () = conn.set(format!("{p}port"), "6379").await.unwrap();
    let _: () = conn
        .hset(format!("{p}db"), "password", CANARY)
        .await
        .unwrap();
    let _: () = conn.set(format!("{p}features:dark"), "true").await.unwrap();
    let _: () = conn.rpush(format!("{p}queue"), "a").await.unwrap();
    let sources = Sources::new()
        .register("redis", RedisSource::new(REDIS_URL))
        .with_env(EnvSource::from_map([("P", p.as_str())]));
    let logs = CapturedLogs::default();
    let started = Instant::now();
    let report = {
        let _guard = capture(&logs);
        RedisApp::preflight_with(&sources).await
    };
    println!("preflight_with redis in {:?}:\n{report}", started.elapsed());
    let port = row_of(&report, "port");
    assert_eq!(port.access, Access::Readable, "{report}");
    assert_eq!(port.key.as_deref(), Some(format!("{p}port").as_str()));
    assert_eq!(
        row_of(&report, "password").access,
        Access::Readable,
        "{report}"
    );
    assert_eq!(row_of(&report, "mode").access, Access::Missing, "{report}");
    let features = row_of(&report, "features");
    assert_eq!(features.access, Access::Readable, "{report}");
    let queue = row_of(&report, "queue");
    assert_eq!(queue.access, Access::Invalid, "{report}");
    assert!(
        queue
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("is a list, the field reads a string")),
        "{report}"
    );
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    assert_no_canary(&report, &logs);
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct HttpApp {
    #[component(fetch_from = "settings", path = "/ok", pointer = "/port")]
    port: u16,
    #[component(fetch_from = "settings", path = "/missing", fallback = "normal")]
    mode: String,
    #[component(fetch_from = "settings", path = "/auth", pointer = "/port")]
    guarded: u16,
    #[component(fetch_from = "settings", path = "/forbidden", fallback = "1")]
    forbidden: u16,
}

#[tokio::test]
async fn preflight_with_an_http_struct() {
    let (base, seen, task) = http_server().await;
    let sources = Sources::new().register(
        "settings",
        HttpSource::new(&base)
            .with_auth_header(CANARY)
            .with_timeout(Duration::from_secs(2)),
    );
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        HttpApp::preflight_with(&sources).await
    };
    println!("preflight_with http:\n{report}");
    let port = row_of(&report, "port");
    assert_eq!(port.access, Access::Readable, "{report}");
    assert_eq!(port.source, "settings");
    assert_eq!(row_of(&report, "mode").access, Access::Missing, "{report}");
    // The source's auth header went along.
    assert_eq!(
        row_of(&report, "guarded").access,
        Access::Readable,
        "{report}"
    );
    assert_eq!(
        row_of(&report, "forbidden").access,
        Access::Denied,
        "{report}"
    );
    assert!(!report.is_ok(), "{report}");
    assert_eq!(report.problems().count(), 1, "{report}");
    assert!(
        seen.lock().unwrap().iter().all(|l| l.starts_with("HEAD ")),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_no_canary(&report, &logs);
    task.abort();
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct LocalApp {
    #[component(fetch_from = "file", path = "app.toml", pointer = "/server/port")]
    port: u16,
    #[component(
        fetch_from = "file",
        path = "app.toml",
        pointer = "/server/host",
        fallback = "localhost"
    )]
    host: String,
    #[component(fetch_from = "env", key = "APP_TOKEN")]
    token: SecretString,
    #[component(fetch_from = "env", key = "APP_KEY")]
    key: SecretString,
    #[component(fetch_from = "args", key = "log.level", fallback = "info")]
    log_level: String,
    #[component(fetch_from = "args", key = "workers")]
    workers: u8,
    #[component(secret_file = "api_key")]
    api_key: SecretString,
    #[component(fetch_from = "env", key = "APP_REGION", fallback_to = "local_cache")]
    region: String,
}

#[tokio::test]
async fn preflight_with_a_file_env_args_and_secret_file_struct() {
    let dir = temp_dir("e2e");
    let _cleanup = DirCleanup(dir.clone());
    std::fs::write(
        dir.join("app.toml"),
        format!("[server]\nport = 8080\ntoken = \"{CANARY}\"\n"),
    )
    .unwrap();
    std::fs::write(dir.join("api_key"), CANARY).unwrap();
    std::fs::write(dir.join("key"), CANARY).unwrap();
    let env = EnvSource::from_map([
        ("APP_TOKEN", CANARY.to_owned()),
        ("APP_KEY_FILE", dir.join("key").display().to_string()),
        ("APP_REGION", "eu".to_owned()),
    ]);
    let sources = Sources::new()
        .with_env(env)
        .register("file", FileSource::new().with_base_dir(&dir))
        .register("secret_file", SecretFileSource::in_dir(&dir))
        .with_args(["app", "--workers", "4"])
        .with_local_cache(dir.join("cache"));
    let logs = CapturedLogs::default();
    let report = {
        let _guard = capture(&logs);
        LocalApp::preflight_with(&sources).await
    };
    println!("preflight_with file/env/args/secret_file:\n{report}");
    assert!(report.is_ok(), "{report}");
    assert_eq!(row_of(&report, "port").access, Access::Readable, "{report}");
    assert_eq!(row_of(&report, "host").access, Access::Missing, "{report}");
    assert_eq!(
        row_of(&report, "token").access,
        Access::Readable,
        "{report}"
    );
    let key = row_of(&report, "key");
    assert_eq!(key.access, Access::Readable, "{report}");
    assert!(
        key.detail
            .as_deref()
            .is_some_and(|d| d.contains("APP_KEY_FILE")),
        "{report}"
    );
    assert_eq!(
        row_of(&report, "log_level").access,
        Access::Missing,
        "{report}"
    );
    assert_eq!(
        row_of(&report, "workers").access,
        Access::Readable,
        "{report}"
    );
    assert_eq!(
        row_of(&report, "api_key").access,
        Access::Readable,
        "{report}"
    );
    // The field's own source, then its local cache, where nothing is stored yet.
    let region: Vec<_> = report.rows_of("region").collect();
    assert_eq!(region.len(), 2, "{report}");
    assert_eq!(region[0].access, Access::Readable, "{report}");
    assert_eq!(region[1].source, "local_cache", "{report}");
    assert_eq!(region[1].access, Access::Missing, "{report}");
    assert_no_canary(&report, &logs);

    // Without the file and the args: the fields that need them are in the way.
    std::fs::remove_file(dir.join("app.toml")).unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("APP_TOKEN", CANARY)]))
        .register("file", FileSource::new().with_base_dir(&dir))
        .register("secret_file", SecretFileSource::in_dir(&dir))
        .with_args(["app"])
        .with_local_cache(dir.join("cache"));
    let report = LocalApp::preflight_with(&sources).await;
    let mut problems: Vec<&str> = report.problems().map(|r| r.field.as_str()).collect();
    problems.dedup();
    assert_eq!(problems, ["port", "key", "workers", "region"], "{report}");
}
