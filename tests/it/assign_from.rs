//! `AssignFrom`: assignment by handing over a fetcher, the fetcher choosing the field by the
//! source it serves and the type it fetches (issue 31, item 9), against real PostgreSQL
//! with `DatabaseFetcher` and with fetchers that need no server.
//!
//! Each database test works in a schema of its own, dropped at its end. Without a reachable
//! server a test prints why it skipped and passes, unless `CM_REQUIRE_SERVICES=1` (set by
//! `.ci/run`), where it fails.

use component_model::{
    AssignFrom, AsyncAssign, ComponentError, ComponentFetcher, DatabaseFetcher, EnvSource,
    ErrorKind, FetchRequest, SecretString, SourceFetcher, async_trait, serves_source,
};
use secrecy::ExposeSecret;

use crate::database::{drop_schema, exec, pg_isolated};

/// The seed's struct: each field names its source; the fetcher handed over picks it.
#[derive(AsyncAssign, Default, Debug)]
struct AppConfig {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'database_url'"
    )]
    database_url: String,
    #[component(
        fetch_from = "database",
        query = "SELECT value::int4 FROM config WHERE key = 'pool_size'"
    )]
    pool_size: u16,
    #[component(fetch_from = "env", key = "APP_PORT")]
    port: u16,
}

/// A PostgreSQL pool on a schema of its own with a `config (key, value)` table.
async fn config_table() -> Option<(sqlx::PgPool, String)> {
    let (pool, schema) = pg_isolated(2).await?;
    exec(
        &pool,
        "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL)".to_owned(),
    )
    .await;
    exec(
        &pool,
        "INSERT INTO config VALUES ('database_url', 'postgres://db.internal/app'), ('pool_size', '12'), ('password', 'hunter2-canary')".to_owned(),
    )
    .await;
    Some((pool, schema))
}

#[tokio::test]
async fn a_database_fetcher_sets_the_database_field_of_its_type() {
    let Some((pool, schema)) = config_table().await else {
        return;
    };
    let mut config = AppConfig {
        port: 80,
        ..AppConfig::default()
    };
    // Two `database` fields: the type picks one (`DatabaseFetcher` fetches any type).
    config
        .assign_from::<String, _>(DatabaseFetcher::new(
            pool.clone(),
            "SELECT value FROM config WHERE key = 'database_url'",
        ))
        .await
        .expect("database_url");
    config
        .assign_from::<u16, _>(DatabaseFetcher::new(
            pool.clone(),
            "SELECT value::int4 FROM config WHERE key = 'pool_size'",
        ))
        .await
        .expect("pool_size");
    assert_eq!(config.database_url, "postgres://db.internal/app");
    assert_eq!(config.pool_size, 12);
    assert_eq!(config.port, 80, "a field of another source is untouched");
    drop_schema(&pool, &schema).await;
}

/// One `database` field: no turbofish, the source alone picks it (the seed's line).
#[derive(AsyncAssign, Default, Debug)]
struct Seed {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'database_url'"
    )]
    database_url: String,
    #[component(fetch_from = "env", key = "APP_PORT")]
    port: u16,
}

#[tokio::test]
async fn the_seeds_assignment_by_fetcher_as_written() {
    let Some((pool, schema)) = config_table().await else {
        return;
    };
    let q = "SELECT value FROM config WHERE key = 'database_url'";
    let mut config = Seed::default();
    config
        .assign_from(DatabaseFetcher::new(pool.clone(), q))
        .await
        .expect("assign_from");
    assert_eq!(config.database_url, "postgres://db.internal/app");

    // Chained with other assignments, all applied together.
    let env = EnvSource::from_map([("APP_PORT", "8443")]);
    let mut chained = Seed::default();
    chained
        .assign_from(DatabaseFetcher::new(pool.clone(), q))
        .future_assign(async { Ok::<_, std::io::Error>(8080_u16) })
        .await
        .expect("chained");
    assert_eq!(
        (chained.database_url.as_str(), chained.port),
        ("postgres://db.internal/app", 8080)
    );
    // A `SourceFetcher` over a built-in source serves that source's fields.
    chained
        .assign_from(SourceFetcher::new(
            env,
            FetchRequest::for_key("env", "APP_PORT"),
        ))
        .await
        .expect("env");
    assert_eq!(chained.port, 8443);
    drop_schema(&pool, &schema).await;
}

#[tokio::test]
async fn a_failed_fetch_names_field_source_and_query_and_sets_nothing() {
    let Some((pool, schema)) = config_table().await else {
        return;
    };
    let mut config = Seed {
        database_url: "kept".to_owned(),
        ..Seed::default()
    };
    let q = "SELECT value FROM config WHERE key = 'missing'";
    let err = config
        .assign_from(DatabaseFetcher::new(pool.clone(), q))
        .await
        .expect_err("no row");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.field_name(), Some("database_url"));
    assert_eq!(err.source_name(), Some("database"));
    assert_eq!(err.key(), Some(q));
    let text = err.to_string();
    assert!(
        text.starts_with(
            "Seed.database_url: database query `SELECT value FROM config WHERE key = 'missing'`"
        ),
        "{text}"
    );
    // The fetcher's detail, said once, after where it came from.
    assert!(
        text.ends_with("not found: via `assign_from`: the query returned no rows"),
        "{text}"
    );
    assert_eq!(config.database_url, "kept");
    drop_schema(&pool, &schema).await;
}

#[derive(AsyncAssign, Default)]
struct Secrets {
    #[component(
        fetch_from = "database",
        query = "SELECT value FROM config WHERE key = 'password'",
        secret
    )]
    password: String,
    #[component(
        fetch_from = "database:vault_db",
        query = "SELECT value FROM config WHERE key = 'password'"
    )]
    token: SecretString,
}

#[tokio::test]
async fn a_secret_fields_error_never_shows_the_fetchers_message() {
    let Some((pool, schema)) = config_table().await else {
        return;
    };
    // The server's own message quotes the value it could not convert.
    let leaks = "SELECT CAST(value AS INT) FROM config WHERE key = 'password'";
    let plain = DatabaseFetcher::new(pool.clone(), leaks);
    let shown = ComponentFetcher::<String>::fetch_component(&plain)
        .await
        .expect_err("not an int");
    assert!(
        format!("{shown} {shown:?}").contains("hunter2-canary"),
        "the fetcher alone shows it (else this test proves nothing): {shown}"
    );

    let mut secrets = Secrets::default();
    // Marked `secret`.
    let err = secrets
        .assign_from::<String, _>(DatabaseFetcher::new(pool.clone(), leaks))
        .await
        .expect_err("not an int");
    check_hidden(&err, "password");
    // Secret by its type.
    let err = secrets
        .assign_from::<SecretString, _>(DatabaseFetcher::new(pool.clone(), leaks))
        .await
        .expect_err("not an int");
    check_hidden(&err, "token");

    // And a success sets a secret field like any other.
    secrets
        .assign_from::<SecretString, _>(DatabaseFetcher::new(
            pool.clone(),
            "SELECT value FROM config WHERE key = 'password'",
        ))
        .await
        .expect("token");
    assert_eq!(secrets.token.expose_secret(), "hunter2-canary");
    drop_schema(&pool, &schema).await;
}

fn check_hidden(err: &ComponentError, field: &str) {
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(err.field_name(), Some(field));
    assert!(err.to_string().contains("via `assign_from`"), "{err}");
    assert!(
        err.to_string()
            .contains("hidden because the field is secret"),
        "{err}"
    );
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        assert!(!c.to_string().contains("hunter2"), "{c}");
        cause = c.source();
    }
}

/// A fetcher of the user's own source: fetches one type, so it needs no turbofish.
struct Flags {
    beta: &'static str,
}
serves_source!(Flags => "flags");

#[async_trait]
impl ComponentFetcher<bool> for Flags {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<bool, std::io::Error> {
        match self.beta {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(std::io::Error::other(format!("`{other}` is not on/off"))),
        }
    }
}

#[derive(AsyncAssign, Default)]
struct Features {
    #[component(fetch_from = "flags", key = "beta")]
    beta: bool,
    #[component(fetch_from = "flags", key = "name")]
    name: String,
}

#[tokio::test]
async fn a_user_fetcher_sets_the_field_of_its_source_and_type() {
    let mut features = Features::default();
    features
        .assign_from(Flags { beta: "on" })
        .await
        .expect("beta");
    assert!(features.beta);
    assert_eq!(features.name, "");

    let err = features
        .assign_from(Flags { beta: "maybe" })
        .await
        .expect_err("not on/off");
    assert_eq!(err.field_name(), Some("beta"));
    assert_eq!(err.source_name(), Some("flags"));
    assert_eq!(
        err.to_string(),
        "Features.beta: flags: failed: via `assign_from`: `maybe` is not on/off"
    );
    assert!(features.beta, "unchanged after a failure");
}
