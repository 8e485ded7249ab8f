//! The database source and `DatabaseFetcher` against real PostgreSQL, MariaDB and SQLite.
//!
//! Each test makes its own uniquely named table and drops it. Without a reachable server a
//! test prints why it skipped and passes, unless `CM_REQUIRE_SERVICES=1` (set by `.ci/run`),
//! where it fails.

use std::time::{Duration, Instant};

use component_model::fetchers::database::Row;
use component_model::{
    AsyncAssign, ComponentFetcher, DatabaseFetcher, DatabaseSource, ErrorKind, Sources,
};
use component_model_tests::{skip, unique};
use serde::Deserialize;
use sqlx::{MySqlPool, PgPool, SqlitePool};

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A PostgreSQL pool whose connections use a schema of their own (dropped by the test), so
/// tables named by attributes (which must be literals) are unique to this run.
pub(crate) async fn pg_isolated(max: u32) -> Option<(PgPool, String)> {
    let admin = pg(1).await?;
    let schema = unique("cm_schema");
    exec(&admin, format!("CREATE SCHEMA {schema}")).await;
    let options: sqlx::postgres::PgConnectOptions = PG_URL.parse().expect("url");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .expect("isolated pool");
    Some((pool, schema))
}

pub(crate) async fn drop_schema(pool: &PgPool, schema: &str) {
    exec(pool, format!("DROP SCHEMA {schema} CASCADE")).await;
}

/// A MariaDB pool on a database of its own (dropped by the test).
async fn mysql_isolated() -> Option<(MySqlPool, String)> {
    let admin = mysql().await?;
    let db = unique("cm_db");
    exec(&admin, format!("CREATE DATABASE {db}")).await;
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(5)
        .connect(&format!("mysql://root@127.0.0.1:3306/{db}"))
        .await
        .expect("isolated pool");
    Some((pool, db))
}

async fn pg(max: u32) -> Option<PgPool> {
    match sqlx::postgres::PgPoolOptions::new()
        .max_connections(max)
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

async fn mysql() -> Option<MySqlPool> {
    match sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(5)
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

async fn sqlite_memory() -> SqlitePool {
    // One connection: an in-memory SQLite database lives in its connection.
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory sqlite")
}

pub(crate) async fn exec<'e, E>(db: E, sql: String)
where
    E: sqlx::Executor<'e>,
{
    db.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("setup SQL");
}

// The seed's integration test, with the table made unique and the URL of this machine.
#[tokio::test]
async fn test_database_fetcher() {
    let Some(pool) = pg(2).await else { return };
    let config = unique("config");
    exec(
        &pool,
        format!("CREATE TABLE {config} (key TEXT PRIMARY KEY, value TEXT)"),
    )
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {config} (key, value) VALUES ('test_key', 'test_value')"
    )))
    .execute(&pool)
    .await
    .unwrap();

    let fetcher = DatabaseFetcher::new(
        pool.clone(),
        format!("SELECT value FROM {config} WHERE key = 'test_key'"),
    );
    let result: String = fetcher.fetch_component().await.unwrap();

    assert_eq!(result, "test_value");
    exec(&pool, format!("DROP TABLE {config}")).await;
}

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    name: String,
    max_conn: i32,
}

/// What `#[derive(sqlx::FromRow)]` generates: one impl for every driver's row.
impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for Limits
where
    &'r str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Limits {
            name: row.try_get("name")?,
            max_conn: row.try_get("max_conn")?,
        })
    }
}

#[tokio::test]
async fn postgres_types_map_to_rust_types() {
    let Some(pool) = pg(2).await else { return };
    let t = unique("types");
    exec(
        &pool,
        format!(
            "CREATE TABLE {t} (t TEXT, vc VARCHAR(20), i2 INT2, i4 INT4, i8 INT8, f8 FLOAT8, b BOOL, j JSON, jb JSONB, by BYTEA, n INT4, num NUMERIC, iv INTERVAL)"
        ),
    )
    .await;
    exec(
        &pool,
        format!(
            r#"INSERT INTO {t} VALUES ('text', 'varchar', 2, 4, 8000000000, 0.5, true, '{{"name":"a","max_conn":3}}', '[1,2]', '\x6869', NULL, 1.5, '1 day')"#
        ),
    )
    .await;
    let q = |col: &str| DatabaseFetcher::new(pool.clone(), format!("SELECT {col} FROM {t}"));
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&q("t"))
            .await
            .unwrap(),
        "text"
    );
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&q("vc"))
            .await
            .unwrap(),
        "varchar"
    );
    assert_eq!(
        ComponentFetcher::<i16>::fetch_component(&q("i2"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ComponentFetcher::<u16>::fetch_component(&q("i4"))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        ComponentFetcher::<i64>::fetch_component(&q("i8"))
            .await
            .unwrap(),
        8_000_000_000
    );
    assert_eq!(
        ComponentFetcher::<f64>::fetch_component(&q("f8"))
            .await
            .unwrap(),
        0.5
    );
    assert!(
        ComponentFetcher::<bool>::fetch_component(&q("b"))
            .await
            .unwrap()
    );
    assert_eq!(
        ComponentFetcher::<Limits>::fetch_component(&q("j"))
            .await
            .unwrap(),
        Limits {
            name: "a".into(),
            max_conn: 3
        }
    );
    assert_eq!(
        ComponentFetcher::<Vec<u8>>::fetch_component(&q("jb"))
            .await
            .unwrap(),
        [1, 2]
    );
    assert_eq!(
        ComponentFetcher::<Vec<u8>>::fetch_component(&q("by"))
            .await
            .unwrap(),
        b"hi"
    );
    // NULL is `None` for an Option, and an error naming the query otherwise.
    assert_eq!(
        ComponentFetcher::<Option<i32>>::fetch_component(&q("n"))
            .await
            .unwrap(),
        None
    );
    let err = ComponentFetcher::<i32>::fetch_component(&q("n"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    // A type we don't read says how to cast it.
    let err = ComponentFetcher::<String>::fetch_component(&q("iv"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("INTERVAL") && err.to_string().contains("::text"),
        "{err}"
    );
    assert_eq!(
        ComponentFetcher::<f64>::fetch_component(&q("num::text"))
            .await
            .unwrap(),
        1.5
    );
    // A multi-column row deserializes into a struct (serde), or via sqlx::FromRow.
    let row = DatabaseFetcher::new(
        pool.clone(),
        format!("SELECT vc AS name, i4 AS max_conn FROM {t}"),
    );
    assert_eq!(
        ComponentFetcher::<Limits>::fetch_component(&row)
            .await
            .unwrap(),
        Limits {
            name: "varchar".into(),
            max_conn: 4
        }
    );
    let Row(limits): Row<Limits> = row.fetch_component().await.unwrap();
    assert_eq!(limits.max_conn, 4);
    exec(&pool, format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn mariadb_types_map_to_rust_types() {
    let Some(pool) = mysql().await else { return };
    let t = unique("types");
    exec(
        &pool,
        format!(
            "CREATE TABLE {t} (t TEXT, vc VARCHAR(20), b BOOLEAN, i INT, u BIGINT UNSIGNED, d DOUBLE, j JSON, bl BLOB, n INT, dec1 DECIMAL(5,2), y YEAR)"
        ),
    )
    .await;
    exec(
        &pool,
        format!(r#"INSERT INTO {t} VALUES ('text', 'varchar', TRUE, -4, 18000000000000000000, 0.25, '{{"name":"m","max_conn":7}}', 'hi', NULL, 1.50, 2024)"#),
    )
    .await;
    let q = |col: &str| DatabaseFetcher::new(pool.clone(), format!("SELECT {col} FROM {t}"));
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&q("t"))
            .await
            .unwrap(),
        "text"
    );
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&q("vc"))
            .await
            .unwrap(),
        "varchar"
    );
    assert!(
        ComponentFetcher::<bool>::fetch_component(&q("b"))
            .await
            .unwrap()
    );
    assert_eq!(
        ComponentFetcher::<i32>::fetch_component(&q("i"))
            .await
            .unwrap(),
        -4
    );
    assert_eq!(
        ComponentFetcher::<u64>::fetch_component(&q("u"))
            .await
            .unwrap(),
        18_000_000_000_000_000_000
    );
    assert_eq!(
        ComponentFetcher::<f64>::fetch_component(&q("d"))
            .await
            .unwrap(),
        0.25
    );
    assert_eq!(
        ComponentFetcher::<Limits>::fetch_component(&q("j"))
            .await
            .unwrap(),
        Limits {
            name: "m".into(),
            max_conn: 7
        }
    );
    assert_eq!(
        ComponentFetcher::<Vec<u8>>::fetch_component(&q("bl"))
            .await
            .unwrap(),
        b"hi"
    );
    assert_eq!(
        ComponentFetcher::<Option<i32>>::fetch_component(&q("n"))
            .await
            .unwrap(),
        None
    );
    let err = ComponentFetcher::<u16>::fetch_component(&q("y"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("YEAR") && err.to_string().contains("CAST"),
        "{err}"
    );
    assert_eq!(
        ComponentFetcher::<f64>::fetch_component(&q("CAST(dec1 AS CHAR)"))
            .await
            .unwrap(),
        1.5
    );
    let Row(limits): Row<Limits> = DatabaseFetcher::new(
        pool.clone(),
        format!("SELECT vc AS name, i AS max_conn FROM {t}"),
    )
    .fetch_component()
    .await
    .unwrap();
    assert_eq!(
        limits,
        Limits {
            name: "varchar".into(),
            max_conn: -4
        }
    );
    exec(&pool, format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn sqlite_in_memory_and_in_a_file() {
    let mem = sqlite_memory().await;
    exec(
        &mem,
        "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT, n INTEGER, r REAL, bl BLOB)".into(),
    )
    .await;
    exec(&mem, "INSERT INTO config VALUES ('port', '8080', 3, 0.5, x'6869'), ('none', NULL, NULL, NULL, NULL)".into()).await;
    let f = |sql: &str| DatabaseFetcher::new(mem.clone(), sql.to_owned());
    assert_eq!(
        ComponentFetcher::<u16>::fetch_component(&f("SELECT value FROM config WHERE key = 'port'"))
            .await
            .unwrap(),
        8080
    );
    assert_eq!(
        ComponentFetcher::<i64>::fetch_component(&f("SELECT n FROM config WHERE key = 'port'"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        ComponentFetcher::<f32>::fetch_component(&f("SELECT r FROM config WHERE key = 'port'"))
            .await
            .unwrap(),
        0.5
    );
    assert_eq!(
        ComponentFetcher::<Vec<u8>>::fetch_component(&f(
            "SELECT bl FROM config WHERE key = 'port'"
        ))
        .await
        .unwrap(),
        b"hi"
    );
    assert_eq!(
        ComponentFetcher::<Option<String>>::fetch_component(&f(
            "SELECT value FROM config WHERE key = 'none'"
        ))
        .await
        .unwrap(),
        None
    );

    let dir = std::env::temp_dir().join(unique("cm_sqlite"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("config.db").display());
    let file = DatabaseSource::connect(&url).await.unwrap();
    let Some(component_model::DbPool::Sqlite(pool)) = file.pool().cloned() else {
        panic!("sqlite pool")
    };
    exec(
        &pool,
        "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT)".into(),
    )
    .await;
    exec(&pool, "INSERT INTO config VALUES ('workers', '4')".into()).await;
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "database", table = "config", key = "workers")]
        workers: u8,
    }
    let c = C::fetch_all_components_with(&Sources::new().register("database", file))
        .await
        .unwrap();
    assert_eq!(c.workers, 4);
    pool.close().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn zero_rows_is_not_found_and_two_rows_is_an_error() {
    let mem = sqlite_memory().await;
    exec(&mem, "CREATE TABLE t (v TEXT)".into()).await;
    let none = DatabaseFetcher::new(mem.clone(), "SELECT v FROM t");
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&none)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    exec(&mem, "INSERT INTO t VALUES ('a'), ('b')".into()).await;
    let err = ComponentFetcher::<String>::fetch_component(&none)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("more than one row"), "{err}");
}

/// A struct reading four keys of one table, a query, the same query again, and a missing key.
macro_rules! coalesced_config {
    ($name:ident, $table:literal, $query:literal) => {
        #[derive(AsyncAssign, Debug)]
        #[allow(dead_code)]
        struct $name {
            #[component(fetch_from = "database", table = $table, key = "host")]
            host: String,
            #[component(fetch_from = "database", table = $table, key = "port")]
            port: u16,
            #[component(fetch_from = "database", table = $table, key = "debug")]
            debug: bool,
            #[component(fetch_from = "database", table = $table, key = "limits")]
            limits: serde_json::Value,
            #[component(fetch_from = "database", query = $query, key = "port")]
            port_again: u32,
            #[component(fetch_from = "database", query = $query, key = "port")]
            port_once_more: u64,
        }
    };
}

coalesced_config!(
    PgConfig,
    "cm_coalesce_pg",
    "SELECT value FROM cm_coalesce_pg WHERE key = $1"
);
coalesced_config!(
    MyConfig,
    "cm_coalesce_my",
    "SELECT value FROM cm_coalesce_my WHERE `key` = ?"
);

async fn seed_kv<'e, E: sqlx::Executor<'e> + Copy>(db: E, table: &str, key_col: &str) {
    exec(
        db,
        format!("CREATE TABLE {table} ({key_col} VARCHAR(200) PRIMARY KEY, value TEXT)"),
    )
    .await;
    exec(
        db,
        format!(
            r#"INSERT INTO {table} ({key_col}, value) VALUES ('host', 'db.internal'), ('port', '5432'), ('debug', 'true'), ('limits', '{{"max": 5}}')"#
        ),
    )
    .await;
}

#[tokio::test]
async fn postgres_fields_of_one_table_share_one_query_and_identical_queries_run_once() {
    let Some((pool, schema)) = pg_isolated(2).await else {
        return;
    };
    seed_kv(&pool, "cm_coalesce_pg", "key").await;
    let db = DatabaseSource::new(pool.clone());
    let sources = Sources::new().register("database", db.clone());
    let before = db.queries_run();
    let c = PgConfig::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        db.queries_run() - before,
        2,
        "one IN (...) query for the table, one for the repeated query"
    );
    assert_eq!(
        (
            c.host.as_str(),
            c.port,
            c.debug,
            c.port_again,
            c.port_once_more
        ),
        ("db.internal", 5432, true, 5432, 5432)
    );
    assert_eq!(c.limits["max"], 5);

    // A missing key errors only its own field.
    exec(
        &pool,
        "DELETE FROM cm_coalesce_pg WHERE key = 'debug'".into(),
    )
    .await;
    let errors = PgConfig::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    assert_eq!(errors[0].field_name(), Some("debug"));
    assert!(
        errors[0]
            .to_string()
            .contains("database key `cm_coalesce_pg.debug` at postgres: not found"),
        "{}",
        errors[0]
    );
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn mariadb_fields_of_one_table_share_one_query() {
    let Some((pool, db_name)) = mysql_isolated().await else {
        return;
    };
    seed_kv(&pool, "cm_coalesce_my", "`key`").await;
    let db = DatabaseSource::new(pool.clone());
    let sources = Sources::new().register("database", db.clone());
    let before = db.queries_run();
    let c = MyConfig::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(db.queries_run() - before, 2);
    assert_eq!(
        (c.host.as_str(), c.port, c.debug),
        ("db.internal", 5432, true)
    );

    // A hostile key is bound, never interpolated, and reads back verbatim.
    let hostile = "'; DROP TABLE cm_coalesce_my; --";
    sqlx::query("INSERT INTO cm_coalesce_my (`key`, value) VALUES (?, ?)")
        .bind(hostile)
        .bind(hostile)
        .execute(&pool)
        .await
        .unwrap();
    let f = DatabaseFetcher::new(
        pool.clone(),
        "SELECT value FROM cm_coalesce_my WHERE `key` = ?",
    )
    .with_key(hostile);
    assert_eq!(
        ComponentFetcher::<String>::fetch_component(&f)
            .await
            .unwrap(),
        hostile
    );

    // A wrong type is a decode error naming field, source and key.
    exec(
        &pool,
        "UPDATE cm_coalesce_my SET value = 'abc' WHERE `key` = 'port'".into(),
    )
    .await;
    let errors = MyConfig::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        texts.iter().any(|t| t.starts_with(
            "MyConfig.port: database key `cm_coalesce_my.port` at mysql: cannot decode: expected `u16`, found \"abc\""
        )),
        "{texts:#?}"
    );
    exec(&pool, format!("DROP DATABASE {db_name}")).await;
}

#[tokio::test]
async fn hostile_keys_are_bound_never_interpolated() {
    let Some(pool) = pg(2).await else { return };
    let hostile = "'; DROP TABLE config; --";
    let t = unique("hostile");
    exec(
        &pool,
        format!("CREATE TABLE {t} (key TEXT PRIMARY KEY, value TEXT)"),
    )
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {t} VALUES ($1, $2)"
    )))
    .bind(hostile)
    .bind(hostile)
    .execute(&pool)
    .await
    .unwrap();
    let f = DatabaseFetcher::new(
        pool.clone(),
        format!("SELECT value FROM {t} WHERE key = $1"),
    )
    .with_key(hostile);
    let v: String = f.fetch_component().await.unwrap();
    assert_eq!(v, hostile, "read back verbatim");
    let still_there: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(still_there, 1);
    exec(&pool, format!("DROP TABLE {t}")).await;
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct WrongType {
    #[component(fetch_from = "database", table = "cm_wrong_type", key = "port")]
    port: u16,
}

#[tokio::test]
async fn a_wrong_type_is_a_decode_error_naming_field_source_and_key() {
    let Some((pool, schema)) = pg_isolated(2).await else {
        return;
    };
    exec(
        &pool,
        "CREATE TABLE cm_wrong_type (key TEXT PRIMARY KEY, value TEXT)".into(),
    )
    .await;
    exec(
        &pool,
        "INSERT INTO cm_wrong_type VALUES ('port', 'abc')".into(),
    )
    .await;
    let sources = Sources::new().register("database", DatabaseSource::new(pool.clone()));
    let errors = WrongType::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Decode);
    assert!(
        text.starts_with(
            "WrongType.port: database key `cm_wrong_type.port` at postgres: cannot decode: expected `u16`, found \"abc\""
        ),
        "{text}"
    );
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_timeout_and_hides_the_password() {
    let started = Instant::now();
    let err = DatabaseSource::connect("postgres://postgres:hunter2-canary@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");

    // Through the derive: a lazily connected pool to a closed port fails the field, fast.
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "database", query = "SELECT 1")]
        one: i32,
    }
    let sources = Sources::new().register(
        "database",
        DatabaseSource::lazy("mysql://root:hunter2-canary@127.0.0.1:1/test"),
    );
    let started = Instant::now();
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(7));
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{text}");
    assert!(
        text.contains("C.one: database query `SELECT 1` at mysql://127.0.0.1:1/test: unavailable"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized() {
    if mysql().await.is_some() {
        let err = DatabaseSource::connect("mysql://root:wrong-password@127.0.0.1:3306/test")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(!err.to_string().contains("wrong-password"));
    }
    if pg(1).await.is_some() {
        let err = DatabaseSource::connect("postgres://no_such_role_cm@127.0.0.1:5432/test")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Pooled {
    #[component(fetch_from = "database", query = "SELECT 1::int4")]
    a: i32,
    #[component(fetch_from = "database", query = "SELECT 'x'::text")]
    b: String,
    #[component(fetch_from = "database:analytics", query = "SELECT 2::int4")]
    c: i32,
    #[component(fetch_from = "database", source = "analytics", query = "SELECT true")]
    d: bool,
}

#[tokio::test]
async fn five_hundred_concurrent_fetches_stay_within_a_pool_of_five() {
    let Some(pool) = pg(5).await else { return };
    let sources = Sources::new()
        .register("database", DatabaseSource::new(pool.clone()))
        .register("database:analytics", DatabaseSource::new(pool.clone()));
    let runs = (0..500).map(|_| Pooled::fetch_all_components_with(&sources));
    let results = futures::future::join_all(runs).await;
    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    let p = results.into_iter().next().unwrap().unwrap();
    assert_eq!((p.a, p.b.as_str(), p.c, p.d), (1, "x", 2, true));
    assert!(pool.size() <= 5, "pool grew to {}", pool.size());
}

/// What the common SQL types read into: exact decimal text, RFC 3339 dates and times,
/// hyphenated UUIDs and JSON arrays, so `String`, number types, chrono/time types (with
/// serde) and `Vec<_>` all work.
#[derive(AsyncAssign, Debug)]
struct Typed {
    #[component(fetch_from = "database", query = "SELECT num FROM typed")]
    num_text: String,
    #[component(fetch_from = "database", query = "SELECT num FROM typed")]
    num_f64: f64,
    #[component(fetch_from = "database", query = "SELECT whole FROM typed")]
    whole: i64,
    #[component(fetch_from = "database", query = "SELECT missing FROM typed")]
    missing: Option<i32>,
    #[component(fetch_from = "database", query = "SELECT d FROM typed")]
    date: String,
    #[component(fetch_from = "database", query = "SELECT ts FROM typed")]
    timestamp: String,
    #[component(fetch_from = "database", query = "SELECT tm FROM typed")]
    time: String,
}

#[derive(AsyncAssign, Debug)]
struct PgOnly {
    #[component(fetch_from = "database", query = "SELECT tstz FROM typed")]
    timestamptz: String,
    #[component(fetch_from = "database", query = "SELECT id FROM typed")]
    id: String,
    #[component(fetch_from = "database", query = "SELECT tags FROM typed")]
    tags: Vec<String>,
    #[component(fetch_from = "database", query = "SELECT ports FROM typed")]
    ports: Vec<u16>,
    #[component(fetch_from = "database", query = "SELECT grid FROM typed")]
    grid: Vec<Vec<i64>>,
    #[component(fetch_from = "database", query = "SELECT weights FROM typed")]
    weights: Vec<f64>,
}

fn assert_typed(t: &Typed) {
    assert_eq!(t.num_text, "12345678901234567890.125");
    assert_eq!(t.num_f64, 12345678901234567890.125);
    assert_eq!(t.whole, 42);
    assert_eq!(t.missing, None);
    assert_eq!(t.date, "2024-03-01");
    assert_eq!(t.timestamp, "2024-03-01T13:14:15.250000");
    assert_eq!(t.time, "13:14:15");
}

#[tokio::test]
async fn postgres_numeric_dates_uuid_and_arrays_decode() {
    let Some((pool, schema)) = pg_isolated(2).await else {
        return;
    };
    exec(&pool, "CREATE TABLE typed (num NUMERIC, whole NUMERIC(10,0), missing NUMERIC, d DATE, ts TIMESTAMP, tm TIME, tstz TIMESTAMPTZ, id UUID, tags TEXT[], ports INT4[], grid INT8[][], weights NUMERIC[])".to_owned()).await;
    exec(&pool, "INSERT INTO typed VALUES (12345678901234567890.125, 42, NULL, '2024-03-01', '2024-03-01 13:14:15.25', '13:14:15', '2024-03-01 13:14:15+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', ARRAY['a', 'b c'], ARRAY[80, 443], ARRAY[[1,2],[3,4]], ARRAY[0.5, 2])".to_owned()).await;
    let sources = Sources::new().register("database", DatabaseSource::new(pool.clone()));
    let typed = Typed::fetch_all_components_with(&sources).await;
    let pg = PgOnly::fetch_all_components_with(&sources).await;
    drop_schema(&pool, &schema).await;
    assert_typed(&typed.unwrap());
    let pg = pg.unwrap();
    assert_eq!(pg.timestamptz, "2024-03-01T11:14:15Z");
    assert_eq!(pg.id, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(pg.tags, ["a", "b c"]);
    assert_eq!(pg.ports, [80, 443]);
    assert_eq!(pg.grid, [[1, 2], [3, 4]]);
    assert_eq!(pg.weights, [0.5, 2.0]);
}

#[tokio::test]
async fn mariadb_decimal_and_dates_decode() {
    let Some((pool, db)) = mysql_isolated().await else {
        return;
    };
    exec(&pool, "CREATE TABLE typed (num DECIMAL(24,3), whole DECIMAL(10,0), missing DECIMAL(5,2), d DATE, ts DATETIME(3), tm TIME, stamp TIMESTAMP NULL, id UUID, span TIME)".to_owned()).await;
    exec(&pool, "INSERT INTO typed VALUES (12345678901234567890.125, 42, NULL, '2024-03-01', '2024-03-01 13:14:15.250', '13:14:15', '2024-03-01 13:14:15', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '-26:03:04')".to_owned()).await;
    #[derive(AsyncAssign, Debug)]
    struct MariaOnly {
        #[component(fetch_from = "database", query = "SELECT stamp FROM typed")]
        stamp: String,
        #[component(fetch_from = "database", query = "SELECT id FROM typed")]
        id: String,
        #[component(fetch_from = "database", query = "SELECT span FROM typed")]
        span: String,
    }
    let sources = Sources::new().register("database", DatabaseSource::new(pool.clone()));
    let typed = Typed::fetch_all_components_with(&sources).await;
    let maria = MariaOnly::fetch_all_components_with(&sources).await;
    exec(&pool, format!("DROP DATABASE {db}")).await;
    assert_typed(&typed.unwrap());
    let maria = maria.unwrap();
    assert_eq!(maria.stamp, "2024-03-01T13:14:15");
    assert_eq!(maria.id, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(maria.span, "-26:03:04");
}

#[tokio::test]
async fn sqlite_dates_and_numbers_decode() {
    let pool = sqlite_memory().await;
    exec(&pool, "CREATE TABLE typed (num TEXT, whole NUMERIC, missing NUMERIC, d DATE, ts DATETIME, tm TIME)".to_owned()).await;
    exec(&pool, "INSERT INTO typed VALUES ('12345678901234567890.125', 42, NULL, '2024-03-01', '2024-03-01T13:14:15.250000', '13:14:15')".to_owned()).await;
    let sources = Sources::new().register("database", DatabaseSource::new(pool.clone()));
    assert_typed(&Typed::fetch_all_components_with(&sources).await.unwrap());
}

#[tokio::test]
async fn a_bad_database_url_is_one_misconfiguration_and_debug_keeps_the_bound_key_apart() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(
            fetch_from = "database",
            query = "SELECT v FROM t WHERE k = $1",
            key = "checkout"
        )]
        v: String,
    }
    let sources = Sources::new().register(
        "database",
        DatabaseSource::lazy("oracle://scott:tiger@db/x"),
    );
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    let shown = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Config);
    assert_eq!(shown.matches("misconfigured").count(), 1, "{shown}");
    assert!(
        shown.contains("unsupported database URL scheme `oracle`"),
        "{shown}"
    );
    assert!(
        shown.contains("query `SELECT v FROM t WHERE k = $1` with key `checkout`"),
        "{shown}"
    );
    assert!(!shown.contains("tiger"), "{shown}");
    let debug = format!("{:?}", errors[0]);
    assert!(
        debug.contains(r#"key: Some("SELECT v FROM t WHERE k = $1")"#),
        "{debug}"
    );
    assert!(debug.contains(r#"bound_key: Some("checkout")"#), "{debug}");
}

#[tokio::test]
async fn a_database_that_is_down_is_one_grouped_line_naming_its_fields() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Strict {
        #[component(fetch_from = "database", query = "SELECT pool_size FROM settings")]
        pool_size: u32,
        #[component(fetch_from = "database", query = "SELECT timeout_ms FROM settings")]
        timeout_ms: u64,
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://app:pw-canary@127.0.0.1:{port}/test");
    let sources = Sources::new().register("database", DatabaseSource::lazy(&url));
    let errors = Strict::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    let shown = component_model::ErrorsExt::display(&errors[..]).to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    assert!(
        lines[1].starts_with("  - database at postgres://127.0.0.1:"),
        "{shown}"
    );
    assert!(
        lines[1].ends_with(" — fields: Strict.pool_size, Strict.timeout_ms"),
        "{shown}"
    );
    assert!(!shown.contains("pw-canary"));
}
