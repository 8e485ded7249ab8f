//! Precedence sources (issue 31) against real servers: PostgreSQL, Redis, OpenBao (the
//! Vault API), the Consul API double, files, env and args. Every row of the precedence
//! table; one batch per source however many fields and precedence sources; what won and
//! what lost in the report, with secrets hidden; convention keys of a field's own source;
//! the seed's motivating example verbatim.
//!
//! Without a reachable server a test prints why it skipped and passes, unless
//! `CM_REQUIRE_SERVICES=1` (set by `.ci/run`), where it fails. Tables live in a schema of
//! their own, Redis keys under a prefix of their own, Vault secrets under a path (or a
//! mount) of their own; all are removed at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_model::test_util::{ConsulDouble, VaultDouble};
use component_model::{
    AsyncAssign, ConsulSource, DatabaseSource, EnvSource, ErrorKind, FetchContext, FetchRequest,
    FileSource, Outcome, PrecedenceOutcome, PrecedenceReport, RawValue, RedisSource, SecretString,
    Source, SourceError, Sources, VaultSource, async_trait,
};
use component_model_tests::{required, skip, unique};
use redis::AsyncCommands;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::database::{drop_schema, exec, pg_isolated};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A directory of its own for the test's files.
fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(unique(&format!("cm-prec-srv-{name}")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A PostgreSQL schema of its own (see `pg_isolated`) with the key/value table `config`
/// the database convention reads.
async fn pg_with_config(connections: u32) -> Option<(sqlx::PgPool, String)> {
    let (pool, schema) = pg_isolated(connections).await?;
    exec(
        &pool,
        "CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT)".into(),
    )
    .await;
    Some((pool, schema))
}

/// A Redis connection for the test's own writes and a unique key prefix (`cm_..._:`),
/// every key under which is deleted when the guard drops; `None` (skipped) without Redis.
async fn redis_keys(
    tag: &str,
) -> Option<(
    redis::aio::MultiplexedConnection,
    String,
    crate::redis::Cleanup,
)> {
    crate::redis::setup(tag).await
}

/// A Redis that refuses connections, answering within a short timeout.
fn dead_redis() -> RedisSource {
    RedisSource::new("redis://127.0.0.1:1").with_timeout(Duration::from_millis(500))
}

/// A PostgreSQL that refuses connections, within a short acquire timeout.
fn dead_postgres() -> DatabaseSource {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/test")
        .expect("a lazy pool");
    DatabaseSource::new(pool)
}

/// A Consul that refuses connections.
fn dead_consul() -> ConsulSource {
    ConsulSource::new("127.0.0.1:1").with_timeout(Duration::from_millis(500))
}

/// The report's line of `source` for field `path` (`App.port`).
fn tried<'r, T>(report: &'r component_model::FetchReport<T>, path: &str) -> &'r [PrecedenceReport] {
    let field = report
        .fields
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no field {path} in {:?}", report.fields));
    &field.precedence
}

/// `(source, outcome)` of each precedence source tried, highest first.
fn outcomes(tried: &[PrecedenceReport]) -> Vec<(String, PrecedenceOutcome)> {
    tried
        .iter()
        .map(|p| (p.source.clone(), p.outcome.clone()))
        .collect()
}

fn outcome_of<T>(report: &component_model::FetchReport<T>, path: &str) -> Outcome {
    report
        .fields
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no field {path}"))
        .outcome
        .clone()
}

fn lost(v: &str) -> PrecedenceOutcome {
    PrecedenceOutcome::Lost {
        value: Some(v.to_owned()),
    }
}

const HIDDEN: PrecedenceOutcome = PrecedenceOutcome::Lost { value: None };

/// A source that counts the batches it is handed (`fetch_many`/`fetch_many_in` calls)
/// and the requests in them, waits `delay` per batch (a round trip), and records when
/// each batch ran; everything else is its inner source's.
#[derive(Clone)]
struct Counted {
    inner: Arc<dyn Source>,
    calls: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    delay: Duration,
    spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

impl Counted {
    fn new(inner: impl Source, delay: Duration) -> Self {
        Counted {
            inner: Arc::new(inner),
            calls: Arc::default(),
            requests: Arc::default(),
            delay,
            spans: Arc::default(),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Source for Counted {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        let mut answers = self.fetch_many_in(&FetchContext::new(), &[request]).await;
        answers
            .pop()
            .unwrap_or_else(|| Err(SourceError::new(ErrorKind::Unavailable)))
    }
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.fetch_many_in(&FetchContext::new(), requests).await
    }
    async fn fetch_many_in(
        &self,
        cx: &FetchContext,
        requests: &[&FetchRequest],
    ) -> Vec<Result<RawValue, SourceError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(requests.len(), Ordering::SeqCst);
        let start = Instant::now();
        tokio::time::sleep(self.delay).await;
        let answers = self.inner.fetch_many_in(cx, requests).await;
        self.spans.lock().unwrap().push((start, Instant::now()));
        answers
    }
    component_model::forward_description!(inner);
}

/// A Vault-API server with a KV v2 mount of the test's own: OpenBao when it is reachable
/// (always in CI), else, on a laptop only, the in-process Vault double.
struct Vault {
    /// `Some` for OpenBao: its address, root token and an HTTP client.
    bao: Option<(String, String, reqwest::Client)>,
    double: Option<VaultDouble>,
    mount: String,
}

impl Vault {
    async fn start() -> Vault {
        let mount = unique("cm-prec-kv").replace('_', "-");
        let addr =
            std::env::var("CM_OPENBAO_ADDR").unwrap_or_else(|_| "http://127.0.0.1:8200".into());
        let token = std::env::var("CM_OPENBAO_TOKEN").unwrap_or_else(|_| "cm-openbao-root".into());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let health = http.get(format!("{addr}/v1/sys/health")).send().await;
        match health {
            Ok(r) if r.status().as_u16() == 200 => {
                let vault = Vault {
                    bao: Some((addr, token, http)),
                    double: None,
                    mount,
                };
                vault
                    .call(
                        "POST",
                        &format!("sys/mounts/{}", vault.mount),
                        Some(json!({"type": "kv", "options": {"version": "2"}})),
                    )
                    .await
                    .expect("a KV v2 mount of the test's own");
                vault
            }
            other => {
                let why = match other {
                    Ok(r) => format!("sys/health answered {}", r.status()),
                    Err(e) => e.to_string(),
                };
                assert!(
                    !required(),
                    "OpenBao at {addr} is required (CM_REQUIRE_SERVICES=1) but unreachable: {why}"
                );
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTE {}: OpenBao at {addr} unreachable ({why}); the Vault API double stands in",
                    std::thread::current().name().unwrap_or("test")
                );
                let double = VaultDouble::builder().kv_v2(&mount).start().await;
                Vault {
                    bao: None,
                    double: Some(double),
                    mount,
                }
            }
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (addr, token, http) = self.bao.as_ref().expect("OpenBao");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = http
            .request(method, format!("{addr}/v1/{path}"))
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            r = r
                .header("Content-Type", "application/json")
                .body(serde_json::to_vec(&body).unwrap());
        }
        let response = r.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
        } else {
            Err(format!("{path}: {status} {text}"))
        }
    }

    /// Writes the secret at `path` of the test's mount.
    async fn put(&self, path: &str, data: Value) {
        match &self.double {
            Some(d) => d.put(&self.mount, path, data),
            None => {
                // A new KV v2 mount upgrades itself for a moment before it takes writes.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let r = self
                        .call(
                            "POST",
                            &format!("{}/data/{path}", self.mount),
                            Some(json!({ "data": data })),
                        )
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("writing a secret: {e}"),
                    }
                }
            }
        }
    }

    /// A source reading the test's mount by default.
    fn source(&self) -> VaultSource {
        let token = match &self.bao {
            Some((_, token, _)) => token.clone(),
            None => "root".to_owned(),
        };
        self.source_with_token(&token)
    }

    /// A source reading the test's mount with `token`.
    fn source_with_token(&self, token: &str) -> VaultSource {
        match (&self.bao, &self.double) {
            (Some((addr, _, _)), _) => VaultSource::new(addr).with_token(token),
            (None, Some(d)) => VaultSource::new(d.url()).with_token(token),
            _ => unreachable!(),
        }
        .with_default_mount(&self.mount)
        .with_timeout(Duration::from_secs(5))
    }

    async fn close(self) {
        if self.bao.is_some() {
            let _ = self
                .call("DELETE", &format!("sys/mounts/{}", self.mount), None)
                .await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The rows of the table: present, absent, below; fallback literal, Option, Default
// ---------------------------------------------------------------------------------------

/// Redis overrides a field's own Consul key; the profile's file and the default file are
/// below it.
#[derive(AsyncAssign, Debug)]
#[component(
    key_prefix = "svc/",
    overrides = ["redis@${CM_PS}"],
    defaults = ["file@{@profile}.toml", "file@default.toml"]
)]
struct Rows {
    #[component(fetch_from = "consul")]
    over: u16,
    #[component(fetch_from = "consul")]
    own: u16,
    #[component(fetch_from = "consul")]
    profile: u16,
    #[component(fetch_from = "consul")]
    default_only: u16,
    #[component(fetch_from = "consul", fallback = "5")]
    literal: u16,
    #[component(fetch_from = "consul")]
    maybe: Option<u16>,
    #[component(fetch_from = "consul")]
    nothing: u16,
    /// No `fetch_from`: read from the precedence sources alone.
    unsourced: String,
    /// No precedence sources at all: keeps its `Default`, though every file has it.
    #[component(overrides = [], defaults = [])]
    untouched: u8,
    /// Its own (empty) overrides: Redis's value is not read.
    #[component(fetch_from = "consul", overrides = [])]
    not_overridden: u16,
}

#[tokio::test]
async fn each_row_present_absent_below_fallback_option_and_default_over_redis_consul_and_files() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_rows").await else {
        return;
    };
    // Redis's convention key: `{argument}{key_prefix}{path with :}`.
    let _: () = conn.set(format!("{p}svc/over"), "1").await.unwrap();
    let _: () = conn
        .set(format!("{p}svc/unsourced"), "from-redis")
        .await
        .unwrap();
    let _: () = conn
        .set(format!("{p}svc/not_overridden"), "1")
        .await
        .unwrap();
    let consul = ConsulDouble::start().await;
    for k in ["over", "own", "not_overridden"] {
        consul.put(&format!("svc/{k}"), "2");
    }
    let d = dir("rows");
    write(&d, "prod.toml", "over = 3\nown = 3\nprofile = 3\n");
    write(
        &d,
        "default.toml",
        "over = 4\nown = 4\nprofile = 4\ndefault_only = 4\nunsourced = \"from-file\"\nuntouched = 9\nnot_overridden = 4\n",
    );
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL))
        .register("consul", ConsulSource::new(consul.address()))
        .register("file", FileSource::new().with_base_dir(&d))
        .with_profile("prod");

    let report = Rows::fetch_report_with(&sources).await;
    let shown = report.to_string();
    let rows = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    assert_eq!(rows.over, 1, "the override over everything");
    assert_eq!(rows.own, 2, "the own source over the defaults");
    assert_eq!(rows.profile, 3, "own absent: the profile's file");
    assert_eq!(rows.default_only, 4, "the default file last");
    assert_eq!(rows.literal, 5, "absent everywhere: the fallback literal");
    assert_eq!(rows.maybe, None, "absent everywhere: None");
    assert_eq!(rows.nothing, 0, "absent everywhere: Default");
    assert_eq!(rows.unsourced, "from-redis");
    assert_eq!(rows.untouched, 0, "`overrides = [], defaults = []`: none");
    assert_eq!(rows.not_overridden, 2, "field-level `overrides = []`");

    let r = format!("{p}svc/");
    assert_eq!(
        outcomes(tried(&report, "Rows.over")),
        [
            (format!("redis@{p}"), PrecedenceOutcome::Won),
            ("consul".into(), lost("2")),
            ("file@prod.toml".into(), lost("3")),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    let keys: Vec<Option<String>> = tried(&report, "Rows.over")
        .iter()
        .map(|t| t.key.clone())
        .collect();
    assert_eq!(keys[0].as_deref(), Some(format!("{r}over").as_str()));
    assert_eq!(keys[1].as_deref(), Some("svc/over"));
    assert!(
        keys[2]
            .as_deref()
            .is_some_and(|k| k.ends_with("prod.toml#/over")),
        "{keys:?}"
    );
    assert_eq!(
        outcomes(tried(&report, "Rows.profile")),
        [
            (format!("redis@{p}"), PrecedenceOutcome::Absent),
            ("consul".into(), PrecedenceOutcome::Absent),
            ("file@prod.toml".into(), PrecedenceOutcome::Won),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    assert_eq!(
        outcomes(tried(&report, "Rows.unsourced")),
        [
            (format!("redis@{p}"), PrecedenceOutcome::Won),
            ("file@prod.toml".into(), PrecedenceOutcome::Absent),
            ("file@default.toml".into(), lost("from-file")),
        ]
    );
    assert!(
        report.fields.iter().all(|f| f.path != "Rows.untouched"),
        "a field with no source at all is not fetched"
    );
    assert_eq!(
        outcomes(tried(&report, "Rows.not_overridden")),
        [
            ("consul".into(), PrecedenceOutcome::Won),
            ("file@prod.toml".into(), PrecedenceOutcome::Absent),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    assert_eq!(outcome_of(&report, "Rows.literal"), Outcome::Fallback);
    assert_eq!(outcome_of(&report, "Rows.maybe"), Outcome::Absent);
    assert_eq!(outcome_of(&report, "Rows.nothing"), Outcome::Default);
    assert_eq!(outcome_of(&report, "Rows.over"), Outcome::Fetched);
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// Errors above and below the winner
// ---------------------------------------------------------------------------------------

/// Two overrides (Consul, Redis), the field's own env variable, PostgreSQL below.
#[derive(AsyncAssign, Debug)]
#[component(overrides = ["consul", "redis@${CM_PS}"], defaults = ["database"])]
struct Guarded {
    #[component(fetch_from = "env")]
    port: u16,
}

#[tokio::test]
async fn an_error_above_the_winner_fails_the_field_naming_it_and_below_it_is_only_reported() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_guard").await else {
        return;
    };
    let Some((pool, schema)) = pg_with_config(2).await else {
        return;
    };
    exec(&pool, "INSERT INTO config VALUES ('port', '9')".into()).await;
    // ACLs on, and the source sends no token: every read is refused (HTTP 403).
    let denying = ConsulDouble::builder().acl_token("t").start().await;
    let consul = ConsulDouble::start().await;
    let env = EnvSource::from_map([("CM_PS", p.as_str()), ("PORT", "7")]);
    let base = || {
        Sources::new()
            .with_env(env.clone())
            .register("redis", RedisSource::new(REDIS_URL))
            .register("consul", ConsulSource::new(consul.address()))
            .register("database", DatabaseSource::new(pool.clone()))
    };

    // The first override refuses: the field fails, naming it and its key, though the
    // field's own source and the default have values.
    let sources = base().register("consul", ConsulSource::new(denying.address()));
    let errors = Guarded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{}", errors[0]);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("Guarded.port: consul key `port`"),
        "{shown}"
    );

    // The second override is unreachable: the same, naming Redis (the first is absent).
    let sources = base().register("redis", dead_redis());
    let started = Instant::now();
    let errors = Guarded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{}", errors[0]);
    let shown = errors[0].to_string();
    assert!(shown.contains(&format!("redis@{p}")), "{shown}");
    assert!(shown.contains(&format!("{p}port")), "{shown}");

    // Both overrides absent: the own variable wins; PostgreSQL below it is unreachable,
    // which only the report shows.
    let sources = base().register("database", dead_postgres());
    let report = Guarded::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().map(|g| g.port).ok(),
        Some(7),
        "{report}"
    );
    assert_eq!(
        outcomes(tried(&report, "Guarded.port")),
        [
            ("consul".into(), PrecedenceOutcome::Absent),
            (format!("redis@{p}"), PrecedenceOutcome::Absent),
            ("env".into(), PrecedenceOutcome::Won),
            (
                "database".into(),
                PrecedenceOutcome::Failed(ErrorKind::Unavailable)
            ),
        ]
    );

    // The first override wins: the unreachable Redis below it is only reported.
    consul.put("port", "1");
    let sources = base().register("redis", dead_redis());
    let report = Guarded::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().map(|g| g.port).ok(),
        Some(1),
        "{report}"
    );
    assert_eq!(
        outcomes(tried(&report, "Guarded.port")),
        [
            ("consul".into(), PrecedenceOutcome::Won),
            (
                format!("redis@{p}"),
                PrecedenceOutcome::Failed(ErrorKind::Unavailable)
            ),
            ("env".into(), lost("7")),
            ("database".into(), lost("9")),
        ]
    );
    consul.delete("port");

    // The own source absent too: the default, PostgreSQL's `config` table, answers.
    let sources = base().with_env(EnvSource::from_map([("CM_PS", p.as_str())]));
    let g = Guarded::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(g.port, 9);
    // ... and the Redis override, once it has the value, wins over it.
    let _: () = conn.set(format!("{p}port"), "2").await.unwrap();
    let g = Guarded::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(g.port, 2);
    drop_schema(&pool, &schema).await;
}

/// A malformed file is an error (above the winner it fails the field); a missing one is
/// absent.
#[derive(AsyncAssign, Debug)]
#[component(defaults = ["file@broken.toml", "file@missing.toml", "file@default.toml"])]
struct Files {
    #[component(fetch_from = "redis", key = "${CM_PS}port")]
    port: u16,
}

#[tokio::test]
async fn a_malformed_file_is_an_error_and_a_missing_one_is_absent() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_files").await else {
        return;
    };
    let d = dir("files");
    write(&d, "broken.toml", "port = = 3\n");
    write(&d, "default.toml", "port = 4\n");
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL))
        .register("file", FileSource::new().with_base_dir(&d));

    // Redis absent: the malformed file is the highest source left; it fails the field
    // (the default file below it is not taken).
    let errors = Files::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Decode, "{}", errors[0]);
    let shown = errors[0].to_string();
    assert!(shown.contains("file@broken.toml"), "{shown}");
    assert!(shown.contains("broken.toml#/port"), "{shown}");

    // Redis has it: the malformed file below is only reported; the missing one is absent.
    let _: () = conn.set(format!("{p}port"), "1").await.unwrap();
    let report = Files::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().map(|f| f.port).ok(),
        Some(1),
        "{report}"
    );
    assert_eq!(
        outcomes(tried(&report, "Files.port")),
        [
            ("redis".into(), PrecedenceOutcome::Won),
            (
                "file@broken.toml".into(),
                PrecedenceOutcome::Failed(ErrorKind::Decode)
            ),
            ("file@missing.toml".into(), PrecedenceOutcome::Absent),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// The own source failing, with and without `fallback_to`
// ---------------------------------------------------------------------------------------

#[derive(AsyncAssign, Debug, Default)]
#[component(
    env_prefix = "FB_",
    key_prefix = "${CM_PS}",
    overrides = ["args"],
    defaults = ["file@default.toml"]
)]
struct Own {
    #[component(fetch_from = "consul", fallback_to = "env")]
    with_env: u16,
    #[component(fetch_from = "consul")]
    without: u16,
}

#[tokio::test]
async fn the_own_source_failing_asks_fallback_to_first_and_never_silently_takes_a_default() {
    let d = dir("own");
    write(&d, "default.toml", "with_env = 4\nwithout = 4\n");
    let consul = ConsulDouble::start().await;
    let p = unique("cm_prec_own") + "/";
    let sources = |consul: ConsulSource, env: &[(&str, &str)]| {
        let mut vars = vec![("CM_PS", p.as_str())];
        vars.extend_from_slice(env);
        Sources::new()
            .with_env(EnvSource::from_map(vars))
            .register("consul", consul)
            .register("file", FileSource::new().with_base_dir(&d))
            .with_args(["app"])
    };

    // Consul unreachable; `fallback_to` answers: its value, not the default file's. The
    // field without `fallback_to` fails, naming Consul and its convention key; the
    // default file below is not taken.
    let s = sources(dead_consul(), &[("FB_WITH_ENV", "6")]);
    let report = Own::fetch_report_with(&s).await;
    let errors = report.result.as_ref().unwrap_err();
    assert_eq!(errors.len(), 1, "{report}");
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with(&format!("Own.without: consul key `{p}without`")),
        "{shown}"
    );
    assert_eq!(
        outcome_of(&report, "Own.with_env"),
        Outcome::FallbackTo {
            source: "env",
            age: None
        },
        "{report}"
    );
    let partial = Own::fetch_available_components_with(&s).await.unwrap();
    assert_eq!(
        partial.value.with_env, 6,
        "fallback_to over the default file"
    );
    assert_eq!(
        partial.value.without, 0,
        "failed: Default, not the default file"
    );

    // Consul unreachable and `fallback_to` absent: the field fails with Consul's error and
    // a note; the default file is not taken.
    let errors = Own::fetch_all_components_with(&sources(dead_consul(), &[]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains("consul key"), "{e}");
    }
    let with_env = errors[0].to_string();
    assert!(
        with_env.starts_with("Own.with_env: consul key"),
        "{with_env}"
    );
    assert!(
        with_env.contains("fallback_to `env` failed too"),
        "{with_env}"
    );

    // Consul reachable but absent, `fallback_to` absent: the walk goes on to the default.
    let consul_up = || ConsulSource::new(consul.address());
    let own = Own::fetch_all_components_with(&sources(consul_up(), &[]))
        .await
        .unwrap();
    assert_eq!((own.with_env, own.without), (4, 4));

    // Consul absent, `fallback_to` has it: asked before the defaults.
    let own = Own::fetch_all_components_with(&sources(consul_up(), &[("FB_WITH_ENV", "8")]))
        .await
        .unwrap();
    assert_eq!((own.with_env, own.without), (8, 4));

    // Consul has it: `fallback_to` is not asked.
    consul.put(&format!("{p}with_env"), "2");
    let own = Own::fetch_all_components_with(&sources(consul_up(), &[("FB_WITH_ENV", "8")]))
        .await
        .unwrap();
    assert_eq!((own.with_env, own.without), (2, 4));

    // An override wins over all of it: an unreachable own source below it is reported.
    let s = sources(dead_consul(), &[]).with_args(["app", "--with_env", "1", "--without=1"]);
    let report = Own::fetch_report_with(&s).await;
    let own = report
        .result
        .as_ref()
        .unwrap_or_else(|_| panic!("{report}"));
    assert_eq!((own.with_env, own.without), (1, 1));
    assert_eq!(
        outcomes(tried(&report, "Own.without")),
        [
            ("args".into(), PrecedenceOutcome::Won),
            (
                "consul".into(),
                PrecedenceOutcome::Failed(ErrorKind::Unavailable)
            ),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `fallback_to` reads the fallback source's convention key (issue 31, item 3) when the
/// field names no key.
#[derive(AsyncAssign, Debug)]
#[component(key_prefix = "${CM_PS}", defaults = ["file@default.toml"])]
struct OwnRedis {
    #[component(fetch_from = "consul", fallback_to = "redis")]
    with_redis: u16,
}

#[tokio::test]
async fn fallback_to_reads_the_fallback_sources_convention_key() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_fbredis").await else {
        return;
    };
    let d = dir("own-redis");
    write(&d, "default.toml", "with_redis = 4\n");
    let _: () = conn.set(format!("{p}with_redis"), "6").await.unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p.as_str())]))
        .register("consul", dead_consul())
        .register("redis", RedisSource::new(REDIS_URL))
        .register("file", FileSource::new().with_base_dir(&d));
    let report = OwnRedis::fetch_report_with(&sources).await;
    let shown = report.to_string();
    let own = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    assert_eq!(
        own.with_redis, 6,
        "Redis's `{p}with_redis`, not the default file"
    );
    assert_eq!(
        outcome_of(&report, "OwnRedis.with_redis"),
        Outcome::FallbackTo {
            source: "redis",
            age: None
        }
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// When the field's own source failed and its `fallback_to` answered, the report's
/// precedence rows must not say the own source won.
#[tokio::test]
async fn a_failed_own_source_whose_fallback_to_answered_is_not_reported_as_the_winner() {
    let d = dir("own-report");
    write(&d, "default.toml", "with_env = 4\nwithout = 4\n");
    let sources = Sources::new()
        .with_env(EnvSource::from_map([
            ("CM_PS", "x/"),
            ("FB_WITH_ENV", "6"),
            ("FB_WITHOUT", "6"),
        ]))
        .register("consul", dead_consul())
        .register("file", FileSource::new().with_base_dir(&d))
        .with_args(["app", "--without", "1"]);
    let report = Own::fetch_report_with(&sources).await;
    assert_eq!(report.result.as_ref().map(|o| o.with_env).ok(), Some(6));
    let rows = outcomes(tried(&report, "Own.with_env"));
    assert_eq!(
        rows[1],
        (
            "consul".into(),
            PrecedenceOutcome::Failed(ErrorKind::Unavailable)
        ),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `fallback_to` with a named key: asked with the same key when the own source failed or
/// had nothing; both absent → the defaults; `fallback_to` failing → the field fails.
#[derive(AsyncAssign, Debug)]
#[component(defaults = ["file@default.toml"])]
struct OwnKeyed {
    #[component(fetch_from = "consul", key = "${CM_PS}x", fallback_to = "redis")]
    x: u16,
}

fn keyed_sources(
    p: &str,
    d: &std::path::Path,
    consul: ConsulSource,
    redis: RedisSource,
) -> Sources {
    Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p)]))
        .register("consul", consul)
        .register("redis", redis)
        .register("file", FileSource::new().with_base_dir(d))
}

#[tokio::test]
async fn the_own_source_absent_asks_fallback_to_with_the_same_key_before_the_defaults() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_keyed").await else {
        return;
    };
    let d = dir("keyed");
    write(&d, "default.toml", "x = 4\n");
    let consul = ConsulDouble::start().await;
    let consul_up = || ConsulSource::new(consul.address());

    // Both absent: the default file.
    let sources = keyed_sources(&p, &d, consul_up(), RedisSource::new(REDIS_URL));
    let k = OwnKeyed::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(k.x, 4);

    // Redis has the same key: it answers, before the default file, whether Consul had
    // nothing or was unreachable.
    let _: () = conn.set(format!("{p}x"), "6").await.unwrap();
    for consul in [consul_up(), dead_consul()] {
        let sources = keyed_sources(&p, &d, consul, RedisSource::new(REDIS_URL));
        let report = OwnKeyed::fetch_report_with(&sources).await;
        assert_eq!(
            report.result.as_ref().map(|k| k.x).ok(),
            Some(6),
            "{report}"
        );
        assert_eq!(
            outcome_of(&report, "OwnKeyed.x"),
            Outcome::FallbackTo {
                source: "redis",
                age: None
            }
        );
    }

    // Consul unreachable, Redis unreachable: Consul's error with a note.
    let sources = keyed_sources(&p, &d, dead_consul(), dead_redis());
    let errors = OwnKeyed::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with(&format!("OwnKeyed.x: consul key `{p}x`")),
        "{shown}"
    );
    assert!(
        shown.contains("fallback_to `redis` failed too: unavailable"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Own source absent, `fallback_to` unreachable: the field fails with the `fallback_to`'s
/// error and a note — the default below is not taken (only "both absent" goes on).
#[tokio::test]
async fn the_own_source_absent_and_fallback_to_failing_fails_the_field_with_a_note() {
    let d = dir("keyed-fail");
    write(&d, "default.toml", "x = 4\n");
    let consul = ConsulDouble::start().await;
    let p = unique("cm_prec_keyed_fail") + "/";
    let sources = keyed_sources(&p, &d, ConsulSource::new(consul.address()), dead_redis());
    let result = OwnKeyed::fetch_all_components_with(&sources).await;
    let _ = std::fs::remove_dir_all(&d);
    let errors = result.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    // The failure is the `fallback_to`'s (Redis unreachable), not an absence.
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable, "{:?}", errors[0]);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with(&format!("OwnKeyed.x: redis key `{p}x`")),
        "{shown}"
    );
    assert!(
        shown.contains("`consul` had no value, so its `fallback_to` was asked"),
        "{shown}"
    );
}

/// An unreachable override when every other source is absent: `fallback` covers an
/// unavailable source as it does without precedence; `Option` covers only absence.
#[derive(AsyncAssign, Debug, Default)]
#[component(overrides = ["redis"], defaults = ["file@default.toml"])]
struct DeadOverride {
    #[component(fetch_from = "consul", fallback = "5")]
    literal: u16,
    #[component(fetch_from = "consul")]
    maybe: Option<u16>,
    #[component(fetch_from = "consul")]
    below: u16,
}

#[tokio::test]
async fn an_unreachable_override_over_nothing_takes_the_fallback_literal_but_not_none() {
    let d = dir("dead-override");
    write(&d, "default.toml", "below = 4\n");
    let consul = ConsulDouble::start().await;
    let sources = Sources::new()
        .register("consul", ConsulSource::new(consul.address()))
        .register("redis", dead_redis())
        .register("file", FileSource::new().with_base_dir(&d));
    let report = DeadOverride::fetch_report_with(&sources).await;
    let errors = report.result.as_ref().unwrap_err();
    let failed: Vec<&str> = errors.iter().filter_map(|e| e.field_name()).collect();
    assert_eq!(failed, ["maybe", "below"], "{report}");
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.to_string().contains("redis key"), "{e}");
    }
    assert_eq!(
        outcome_of(&report, "DeadOverride.literal"),
        Outcome::Fallback
    );
    let partial = DeadOverride::fetch_available_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(partial.value.literal, 5);
    assert_eq!(partial.value.below, 0, "failed: not the default file's 4");
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------

#[derive(AsyncAssign, Debug)]
#[component(
    env_prefix = "PR_",
    profile_env = "PR_PROFILE",
    defaults = ["file@{@profile}.toml", "file@default.toml"]
)]
struct Profiled {
    #[component(fetch_from = "database")]
    host: String,
    #[component(fetch_from = "database")]
    workers: u32,
}

#[tokio::test]
async fn the_profile_file_over_the_default_file_with_the_profile_from_code_env_or_dotenv() {
    let Some((pool, schema)) = pg_with_config(2).await else {
        return;
    };
    exec(&pool, "INSERT INTO config VALUES ('workers', '99')".into()).await;
    let d = dir("profiles");
    write(&d, "default.toml", "host = \"default-host\"\nworkers = 1\n");
    write(&d, "prod.toml", "host = \"prod-host\"\nworkers = 2\n");
    write(&d, "staging.toml", "host = \"staging-host\"\n");
    write(&d, ".env", "PR_PROFILE=staging\n");
    let base = |env: &[(&str, &str)]| {
        Sources::new()
            .with_env(EnvSource::from_map(env.iter().copied()))
            .register("database", DatabaseSource::new(pool.clone()))
            .register("file", FileSource::new().with_base_dir(&d))
    };
    let host = |s: Sources| async move {
        let report = Profiled::fetch_report_with(&s).await;
        let shown = report.to_string();
        let p = report
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
        assert_eq!(p.workers, 99, "PostgreSQL (the own source) over every file");
        (p.host.clone(), outcomes(tried(&report, "Profiled.host")))
    };

    // From code.
    let (h, t) = host(base(&[]).with_profile("prod")).await;
    assert_eq!(h, "prod-host");
    assert_eq!(
        t,
        [
            ("database".into(), PrecedenceOutcome::Absent),
            ("file@prod.toml".into(), PrecedenceOutcome::Won),
            ("file@default.toml".into(), lost("default-host")),
        ]
    );
    // From `profile_env`, read through a `.env` file.
    let (h, _) = host(base(&[]).with_dotenv(d.join(".env")).unwrap()).await;
    assert_eq!(h, "staging-host");
    // A real variable wins over the `.env` file.
    let (h, _) = host(
        base(&[("PR_PROFILE", "prod")])
            .with_dotenv(d.join(".env"))
            .unwrap(),
    )
    .await;
    assert_eq!(h, "prod-host");
    // `with_profile` wins over both.
    let (h, _) = host(
        base(&[("PR_PROFILE", "staging")])
            .with_dotenv(d.join(".env"))
            .unwrap()
            .with_profile("prod"),
    )
    .await;
    assert_eq!(h, "prod-host");
    // No profile: `default`.
    let (h, t) = host(base(&[])).await;
    assert_eq!(h, "default-host");
    assert_eq!(t[1].0, "file@default.toml");
    // A profile without a file: that file is absent.
    let (h, t) = host(base(&[("PR_PROFILE", "qa")])).await;
    assert_eq!(h, "default-host");
    assert_eq!(
        t,
        [
            ("database".into(), PrecedenceOutcome::Absent),
            ("file@qa.toml".into(), PrecedenceOutcome::Absent),
            ("file@default.toml".into(), PrecedenceOutcome::Won),
        ]
    );
    drop_schema(&pool, &schema).await;
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// One batch per source: 16 fields over 3 sources (4 precedence sources)
// ---------------------------------------------------------------------------------------

#[derive(AsyncAssign, Debug, PartialEq)]
#[component(
    key_prefix = "${CM_PS}",
    overrides = ["redis"],
    defaults = ["file@prod.toml", "file@default.toml"]
)]
struct Sixteen {
    #[component(fetch_from = "database")]
    f01: u32,
    #[component(fetch_from = "database")]
    f02: u32,
    #[component(fetch_from = "database")]
    f03: u32,
    #[component(fetch_from = "database")]
    f04: u32,
    #[component(fetch_from = "database")]
    f05: u32,
    #[component(fetch_from = "database")]
    f06: u32,
    #[component(fetch_from = "database")]
    f07: u32,
    #[component(fetch_from = "database")]
    f08: u32,
    #[component(fetch_from = "database")]
    f09: u32,
    #[component(fetch_from = "database")]
    f10: u32,
    #[component(fetch_from = "database")]
    f11: u32,
    #[component(fetch_from = "database")]
    f12: u32,
    #[component(fetch_from = "database")]
    f13: u32,
    #[component(fetch_from = "database")]
    f14: u32,
    #[component(fetch_from = "database")]
    f15: u32,
    #[component(fetch_from = "database")]
    f16: u32,
}

#[tokio::test]
async fn sixteen_fields_over_three_sources_take_one_batch_per_source_all_at_once() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_16").await else {
        return;
    };
    let Some((pool, schema)) = pg_with_config(4).await else {
        return;
    };
    let d = dir("sixteen");
    let mut default_toml = String::new();
    let mut prod_toml = String::new();
    for i in 1..=16 {
        let f = format!("f{i:02}");
        default_toml.push_str(&format!("{f} = 4\n"));
        if i <= 12 {
            prod_toml.push_str(&format!("{f} = 3\n"));
        }
        if i <= 8 {
            exec(&pool, format!("INSERT INTO config VALUES ('{p}{f}', '2')")).await;
        }
        if i <= 4 {
            let _: () = conn.set(format!("{p}{f}"), "1").await.unwrap();
        }
    }
    write(&d, "default.toml", &default_toml);
    write(&d, "prod.toml", &prod_toml);

    let delay = Duration::from_millis(300);
    let database = DatabaseSource::new(pool.clone());
    let redis = Counted::new(RedisSource::new(REDIS_URL), delay);
    let db = Counted::new(database.clone(), delay);
    let file = Counted::new(FileSource::new().with_base_dir(&d), delay);
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p.as_str())]))
        .register("redis", redis.clone())
        .register("database", db.clone())
        .register("file", file.clone());
    // Connections made beforehand: the fetch measures round trips, not connecting.
    let _ = Sixteen::fetch_all_components_with(&sources).await;
    let (r0, d0, f0, q0) = (
        redis.calls(),
        db.calls(),
        file.calls(),
        database.queries_run(),
    );
    for c in [&redis, &db, &file] {
        c.spans.lock().unwrap().clear();
    }

    let started = Instant::now();
    let report = Sixteen::fetch_report_with(&sources).await;
    let took = started.elapsed();
    let shown = report.to_string();
    let s = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    let got = [
        s.f01, s.f02, s.f03, s.f04, s.f05, s.f06, s.f07, s.f08, s.f09, s.f10, s.f11, s.f12, s.f13,
        s.f14, s.f15, s.f16,
    ];
    assert_eq!(got, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]);
    // One batch per source; both `file@` sources in the file source's one batch.
    assert_eq!(redis.calls() - r0, 1, "redis batches");
    assert_eq!(db.calls() - d0, 1, "database batches");
    assert_eq!(file.calls() - f0, 1, "file batches (two `file@` sources)");
    assert_eq!(database.queries_run() - q0, 1, "one SQL query");
    assert_eq!(redis.requests(), 32);
    assert_eq!(file.requests(), 64, "16 fields × 2 files, twice");
    // All at once: three 300 ms round trips in about one.
    let spans: Vec<(Instant, Instant)> = [&redis, &db, &file]
        .iter()
        .flat_map(|c| c.spans.lock().unwrap().clone())
        .collect();
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(last_start < first_end, "the three batches overlap");
    assert!(
        took < delay * 2,
        "three sources of {delay:?} each took {took:?}"
    );
    for t in tried(&report, "Sixteen.f16") {
        assert!(t.elapsed >= delay, "{t:?}: each waited for its own batch");
    }
    // A loser's value shown (nothing here is secret).
    assert_eq!(
        outcomes(tried(&report, "Sixteen.f01")),
        [
            ("redis".into(), PrecedenceOutcome::Won),
            ("database".into(), lost("2")),
            ("file@prod.toml".into(), lost("3")),
            ("file@default.toml".into(), lost("4")),
        ]
    );
    drop_schema(&pool, &schema).await;
    let _ = std::fs::remove_dir_all(&d);
}

/// The Consul double's own count: 16 fields whose own source is Consul, with two
/// precedence sources on the file source, are one Consul transaction.
#[derive(AsyncAssign, Debug)]
#[component(
    key_prefix = "c/",
    overrides = ["env"],
    defaults = ["file@a.toml", "file@b.toml"]
)]
struct SixteenConsul {
    #[component(fetch_from = "consul")]
    f01: u8,
    #[component(fetch_from = "consul")]
    f02: u8,
    #[component(fetch_from = "consul")]
    f03: u8,
    #[component(fetch_from = "consul")]
    f04: u8,
    #[component(fetch_from = "consul")]
    f05: u8,
    #[component(fetch_from = "consul")]
    f06: u8,
    #[component(fetch_from = "consul")]
    f07: u8,
    #[component(fetch_from = "consul")]
    f08: u8,
    #[component(fetch_from = "consul")]
    f09: u8,
    #[component(fetch_from = "consul")]
    f10: u8,
    #[component(fetch_from = "consul")]
    f11: u8,
    #[component(fetch_from = "consul")]
    f12: u8,
    #[component(fetch_from = "consul")]
    f13: u8,
    #[component(fetch_from = "consul")]
    f14: u8,
    #[component(fetch_from = "consul")]
    f15: u8,
    #[component(fetch_from = "consul")]
    f16: u8,
}

#[tokio::test]
async fn sixteen_consul_fields_with_env_and_two_files_are_one_transaction_and_one_file_batch() {
    let consul = ConsulDouble::start().await;
    let d = dir("sixteen-consul");
    let mut a = String::new();
    let mut b = String::new();
    for i in 1..=16 {
        consul.put(&format!("c/f{i:02}"), "2");
        a.push_str(&format!("f{i:02} = 3\n"));
        b.push_str(&format!("f{i:02} = 4\n"));
    }
    write(&d, "a.toml", &a);
    write(&d, "b.toml", &b);
    let file = Counted::new(FileSource::new().with_base_dir(&d), Duration::ZERO);
    let env = Counted::new(EnvSource::from_map([("F01", "1")]), Duration::ZERO);
    let sources = Sources::new()
        .register("consul", ConsulSource::new(consul.address()))
        .register("file", file.clone())
        .register("env", env.clone());
    let s = SixteenConsul::fetch_all_components_with(&sources)
        .await
        .unwrap();
    let got = [
        s.f01, s.f02, s.f03, s.f04, s.f05, s.f06, s.f07, s.f08, s.f09, s.f10, s.f11, s.f12, s.f13,
        s.f14, s.f15, s.f16,
    ];
    assert_eq!(got, [1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]);
    assert_eq!(
        consul.requests_to("/v1/txn").len(),
        1,
        "{:?}",
        consul.requests()
    );
    assert_eq!(file.calls(), 1);
    assert_eq!(env.calls(), 1);
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------------------------------
// The report: winners and losers, secrets hidden (OpenBao)
// ---------------------------------------------------------------------------------------

#[derive(AsyncAssign, Debug)]
#[component(
    overrides = ["env"],
    defaults = ["vault@${CM_PS_VAULT}", "secret_file@${CM_PS_DIR}"]
)]
struct Reported {
    /// env wins; Consul's value is shown losing, Vault's and the secret file's are hidden.
    #[component(fetch_from = "consul", key = "r/port")]
    port: u16,
    /// A secret field: no losing value is shown.
    #[component(secret, fetch_from = "consul", key = "r/password")]
    password: String,
    /// A secret type: the same.
    #[component(fetch_from = "consul", key = "r/api")]
    api: SecretString,
    /// Vault wins.
    #[component(fetch_from = "consul", key = "r/token")]
    token: String,
    /// No own source: env absent, Vault wins.
    host: String,
}

#[tokio::test]
async fn the_report_shows_winners_and_losing_values_but_never_a_secret_one() {
    let vault = Vault::start().await;
    let path = unique("cm-prec-report");
    vault
        .put(
            &path,
            json!({
                "port": "8000",
                "password": "vault-pw-canary",
                "api": "vault-api-canary",
                "token": "vault-token-canary",
                "host": "vault-host",
            }),
        )
        .await;
    let consul = ConsulDouble::start().await;
    consul.put("r/port", "80");
    consul.put("r/password", "consul-pw-canary");
    consul.put("r/api", "consul-api-canary");
    let d = dir("report");
    write(&d, "port", "8001");
    let sources = Sources::new()
        .with_env(EnvSource::from_map([
            ("CM_PS_VAULT", path.as_str()),
            ("CM_PS_DIR", d.to_str().unwrap()),
            ("PORT", "8080"),
            ("PASSWORD", "env-pw-canary"),
            ("API", "env-api-canary"),
        ]))
        .register("consul", ConsulSource::new(consul.address()))
        .register("vault", vault.source());
    let report = Reported::fetch_report_with(&sources).await;
    let shown = report.to_string();
    // The report's own rows (the struct's `Debug` is the user's derive).
    let debug = format!("{:?}", report.fields);
    let r = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    assert_eq!(r.port, 8080);
    assert_eq!(r.password, "env-pw-canary");
    assert_eq!(r.token, "vault-token-canary");
    assert_eq!(r.host, "vault-host");
    let v = format!("vault@{path}");
    let sf = format!("secret_file@{}", d.display());
    assert_eq!(
        outcomes(tried(&report, "Reported.port")),
        [
            ("env".into(), PrecedenceOutcome::Won),
            ("consul".into(), lost("80")),
            (v.clone(), HIDDEN),
            (sf.clone(), HIDDEN),
        ]
    );
    for field in ["Reported.password", "Reported.api"] {
        assert_eq!(
            outcomes(tried(&report, field)),
            [
                ("env".into(), PrecedenceOutcome::Won),
                ("consul".into(), HIDDEN),
                (v.clone(), HIDDEN),
                (sf.clone(), PrecedenceOutcome::Absent),
            ],
            "{field}"
        );
    }
    assert_eq!(
        outcomes(tried(&report, "Reported.token")),
        [
            ("env".into(), PrecedenceOutcome::Absent),
            ("consul".into(), PrecedenceOutcome::Absent),
            (v.clone(), PrecedenceOutcome::Won),
            (sf.clone(), PrecedenceOutcome::Absent),
        ]
    );
    assert_eq!(
        outcomes(tried(&report, "Reported.host")),
        [
            ("env".into(), PrecedenceOutcome::Absent),
            (v.clone(), PrecedenceOutcome::Won),
            (sf.clone(), PrecedenceOutcome::Absent),
        ]
    );
    // Display: the winner and what lost, keys included.
    assert!(shown.contains("env [PORT] won"), "{shown}");
    assert!(shown.contains("consul [r/port] lost (\"80\")"), "{shown}");
    assert!(shown.contains(&format!("{v} [")), "{shown}");
    assert!(shown.contains("lost (value hidden)"), "{shown}");
    for canary in [
        "vault-pw-canary",
        "vault-api-canary",
        "vault-token-canary",
        "consul-pw-canary",
        "consul-api-canary",
        "env-pw-canary",
        "env-api-canary",
        "8000",
        "8001",
    ] {
        assert!(!shown.contains(canary), "{canary} in Display:\n{shown}");
        assert!(!debug.contains(canary), "{canary} in Debug:\n{debug}");
    }

    // Vault refusing (a token it does not know) is an error above the winner for the
    // fields env does not answer: they fail naming the Vault precedence source.
    let refused = sources.register("vault", vault.source_with_token("not-a-token"));
    let report = Reported::fetch_report_with(&refused).await;
    let errors = report.result.as_ref().unwrap_err();
    let failed: Vec<String> = errors
        .iter()
        .map(|e| e.field_name().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(failed, ["token", "host"], "{report}");
    for e in errors {
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        assert!(e.to_string().contains(&v), "{e}");
    }
    assert_eq!(
        outcomes(tried(&report, "Reported.port"))[2],
        (
            v.clone(),
            PrecedenceOutcome::Failed(ErrorKind::Unauthorized)
        ),
        "below the winner: only reported"
    );
    vault.close().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"])]
struct Row {
    #[component(fetch_from = "consul", key = "r/port")]
    port: u16,
}

/// The report's table row of a field names the source that won: its location and key
/// must be that source's too, not the field's own source's.
#[tokio::test]
async fn the_reports_row_shows_the_winners_location_and_key() {
    let consul = ConsulDouble::start().await;
    consul.put("r/port", "80");
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("PORT", "8080")]))
        .register("consul", ConsulSource::new(consul.address()));
    let shown = Row::fetch_report_with(&sources).await.to_string();
    let row = shown
        .lines()
        .find(|l| l.trim_start().starts_with("Row.port "))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(row.contains("env"), "{shown}");
    assert!(
        !row.contains("http://"),
        "Consul's location on env's row:\n{shown}"
    );
    assert!(row.contains("PORT") && !row.contains("r/port"), "{shown}");
}

// ---------------------------------------------------------------------------------------
// Convention keys of a field's own source
// ---------------------------------------------------------------------------------------

#[derive(AsyncAssign, Debug, Default)]
struct ConsulInner {
    #[component(fetch_from = "consul")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[component(key_prefix = "svc/")]
struct ConsulConvention {
    #[component(fetch_from = "consul")]
    port: u16,
    #[component(nested)]
    db: ConsulInner,
}

/// The struct's `key_prefix` with `{@profile}`, composed with a `nested` field's.
#[derive(AsyncAssign, Debug)]
#[component(key_prefix = "app/{@profile}/")]
struct ConsulProfiled {
    #[component(fetch_from = "consul")]
    port: u16,
    #[component(nested, key_prefix = "replica/")]
    db: ConsulInner,
}

#[tokio::test]
async fn consul_reads_key_prefix_and_the_path_with_slashes_when_no_key_is_named() {
    let consul = ConsulDouble::start().await;
    consul.put("svc/port", "80");
    consul.put("svc/db/port", "5432");
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let c = ConsulConvention::fetch_all_components_with(&sources)
        .await
        .unwrap_or_else(|e| panic!("{e:?}; requests {:?}", consul.requests()));
    assert_eq!((c.port, c.db.port), (80, 5432));
    assert_eq!(consul.requests_to("/v1/txn").len(), 1);

    consul.put("app/prod/port", "81");
    consul.put("app/prod/replica/db/port", "5433");
    let sources = sources.with_profile("prod");
    let report = ConsulProfiled::fetch_report_with(&sources).await;
    let keys: Vec<Option<String>> = report.fields.iter().map(|f| f.key.clone()).collect();
    let c = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}; keys {keys:?}"));
    assert_eq!((c.port, c.db.port), (81, 5433));
}

#[derive(AsyncAssign, Debug, Default)]
struct RedisInner {
    #[component(fetch_from = "redis")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
#[component(key_prefix = "${CM_PS}")]
struct RedisConvention {
    #[component(fetch_from = "redis")]
    port: u16,
    #[component(nested)]
    db: RedisInner,
}

#[tokio::test]
async fn redis_reads_key_prefix_and_the_path_with_colons_when_no_key_is_named() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_conv").await else {
        return;
    };
    let _: () = conn.set(format!("{p}port"), "80").await.unwrap();
    let _: () = conn.set(format!("{p}db:port"), "5432").await.unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("CM_PS", p.as_str())]))
        .register("redis", RedisSource::new(REDIS_URL));
    let report = RedisConvention::fetch_report_with(&sources).await;
    let shown = report.to_string();
    let c = report
        .result
        .as_ref()
        .unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    assert_eq!((c.port, c.db.port), (80, 5432));
    let keys: Vec<Option<String>> = report.fields.iter().map(|f| f.key.clone()).collect();
    assert_eq!(
        keys,
        [Some(format!("{p}port")), Some(format!("{p}db:port"))],
        "{shown}"
    );
}

#[derive(AsyncAssign, Debug, Default)]
struct DbInner {
    #[component(fetch_from = "database")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct DbConvention {
    #[component(fetch_from = "database")]
    host: String,
    #[component(nested)]
    db: DbInner,
}

#[derive(AsyncAssign, Debug)]
#[component(table = "settings")]
struct DbTable {
    #[component(fetch_from = "database")]
    host: String,
    #[component(fetch_from = "database")]
    missing: Option<String>,
}

/// A table named as a precedence source's argument, over the field's own `config` row.
#[derive(AsyncAssign, Debug)]
#[component(overrides = ["database@settings"])]
struct DbArgument {
    #[component(fetch_from = "database")]
    host: String,
}

#[tokio::test]
async fn a_database_reads_the_config_table_or_the_structs_table_by_the_fields_path() {
    let Some((pool, schema)) = pg_isolated(2).await else {
        return;
    };
    for t in ["config", "settings"] {
        exec(
            &pool,
            format!("CREATE TABLE {t} (key TEXT PRIMARY KEY, value TEXT)"),
        )
        .await;
    }
    exec(
        &pool,
        "INSERT INTO config VALUES ('host', 'db.internal'), ('db.port', '5432')".into(),
    )
    .await;
    exec(
        &pool,
        "INSERT INTO settings VALUES ('host', 'settings.internal')".into(),
    )
    .await;
    let database = DatabaseSource::new(pool.clone());
    let sources = Sources::new().register("database", database.clone());
    let c = DbConvention::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!((c.host.as_str(), c.db.port), ("db.internal", 5432));
    assert_eq!(database.queries_run(), 1, "one query for the table");
    let t = DbTable::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(t.host, "settings.internal");
    assert_eq!(t.missing, None);

    let counted = Counted::new(database.clone(), Duration::ZERO);
    let sources = Sources::new().register("database", counted.clone());
    let report = DbArgument::fetch_report_with(&sources).await;
    assert_eq!(
        report.result.as_ref().map(|a| a.host.as_str()).ok(),
        Some("settings.internal"),
        "{report}"
    );
    assert_eq!(
        outcomes(tried(&report, "DbArgument.host")),
        [
            ("database@settings".into(), PrecedenceOutcome::Won),
            ("database".into(), lost("db.internal")),
        ]
    );
    assert_eq!(counted.calls(), 1, "two tables of one source: one batch");
    drop_schema(&pool, &schema).await;
}

// ---------------------------------------------------------------------------------------
// The seed's motivating example, verbatim
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, PartialEq)]
struct CachedSettings {
    theme: String,
    max_items: u32,
}

#[derive(AsyncAssign)]
struct AppConfig {
    #[component(fetch_from = "database")]
    database_url: String,

    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,

    #[component(fetch_from = "vault", secret = "app/api-key")]
    api_key: String,

    #[component(fetch_from = "redis", ttl = "3600")]
    cached_config: CachedSettings,
}

/// The Redis database (index) the seed's example uses: its key `cached_config` is fixed.
const SEED_REDIS_DB: u8 = 13;

#[tokio::test]
async fn the_seeds_example_verbatim_against_postgres_consul_openbao_and_redis() {
    // PostgreSQL: a schema of its own holds the `config` table the convention reads.
    let Some((pool, schema)) = pg_with_config(2).await else {
        return;
    };
    exec(
        &pool,
        "INSERT INTO config VALUES ('database_url', 'postgres://app@db.internal/app')".into(),
    )
    .await;
    // Redis: the key `cached_config` in a database index of its own.
    let url = format!("{REDIS_URL}/{SEED_REDIS_DB}");
    let Ok(client) = redis::Client::open(url.as_str()) else {
        return;
    };
    let mut conn = match client.get_multiplexed_async_connection().await {
        Ok(c) => c,
        Err(e) => {
            skip("Redis at 127.0.0.1:6379", e);
            return;
        }
    };
    let theme = unique("theme");
    let _: () = conn
        .set(
            "cached_config",
            json!({"theme": theme, "max_items": 25}).to_string(),
        )
        .await
        .unwrap();
    let consul = ConsulDouble::start().await;
    consul.put("app/port", "8080");
    let vault = Vault::start().await;
    vault
        .put("app/api-key", json!({"value": "sk-live-canary"}))
        .await;

    let sources = Sources::new()
        .register("database", DatabaseSource::new(pool.clone()))
        .register("consul", ConsulSource::new(consul.address()))
        .register("vault", vault.source())
        .register("redis", RedisSource::new(&url));
    let result = AppConfig::fetch_all_components_with(&sources).await;
    let _: Result<(), _> = conn.del("cached_config").await;
    vault.close().await;
    drop_schema(&pool, &schema).await;

    let config = result.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(config.database_url, "postgres://app@db.internal/app");
    assert_eq!(config.port, 8080);
    assert_eq!(config.api_key, "sk-live-canary");
    assert_eq!(
        config.cached_config,
        CachedSettings {
            theme,
            max_items: 25
        }
    );
}

/// Below the field's own variable: a Vault secret that does not exist, a table that does
/// not exist, and two Redis prefixes (Spring's `config/app,prod/` then `config/app/`).
#[derive(AsyncAssign, Debug)]
#[component(defaults = [
    "vault@${CM_PS}/nothing",
    "redis@${CM_PS}:prod:",
    "redis@${CM_PS}:",
    "database@no_such_table"
])]
struct Missing {
    #[component(fetch_from = "env")]
    port: u16,
    #[component(fetch_from = "env")]
    host: String,
}

#[tokio::test]
async fn a_missing_secret_is_absent_a_missing_table_an_error_and_two_redis_prefixes_one_batch() {
    let Some((mut conn, p, _cleanup)) = redis_keys("cm_prec_missing").await else {
        return;
    };
    let Some((pool, schema)) = pg_isolated(2).await else {
        return;
    };
    let vault = Vault::start().await;
    let _: () = conn.set(format!("{p}:prod:port"), "2").await.unwrap();
    let _: () = conn.set(format!("{p}:port"), "3").await.unwrap();
    let _: () = conn.set(format!("{p}:host"), "redis-host").await.unwrap();
    let redis = Counted::new(RedisSource::new(REDIS_URL), Duration::ZERO);
    let base = |env: &[(&str, &str)]| {
        let mut vars = vec![("CM_PS", p.as_str())];
        vars.extend_from_slice(env);
        Sources::new()
            .with_env(EnvSource::from_map(vars))
            .register("vault", vault.source())
            .register("redis", redis.clone())
            .register("database", DatabaseSource::new(pool.clone()))
    };

    // The own variables win: the missing table below them is only reported.
    let report = Missing::fetch_report_with(&base(&[("PORT", "1"), ("HOST", "env-host")])).await;
    let m = report
        .result
        .as_ref()
        .unwrap_or_else(|_| panic!("{report}"));
    assert_eq!((m.port, m.host.as_str()), (1, "env-host"));
    let v = format!("vault@{p}/nothing");
    assert_eq!(
        outcomes(tried(&report, "Missing.port")),
        [
            ("env".into(), PrecedenceOutcome::Won),
            (v.clone(), PrecedenceOutcome::Absent),
            (format!("redis@{p}:prod:"), lost("2")),
            (format!("redis@{p}:"), lost("3")),
            (
                "database@no_such_table".into(),
                PrecedenceOutcome::Failed(ErrorKind::Config)
            ),
        ]
    );
    assert_eq!(
        redis.calls(),
        1,
        "both Redis prefixes, both fields: one batch"
    );
    assert_eq!(redis.requests(), 4);

    // Without them: the first Redis prefix that has the value; the missing secret is
    // absent, not an error.
    let m = Missing::fetch_all_components_with(&base(&[]))
        .await
        .unwrap();
    assert_eq!((m.port, m.host.as_str()), (2, "redis-host"));

    // Nothing above the missing table: the field fails, naming it.
    let _: () = conn.del(format!("{p}:host")).await.unwrap();
    let errors = Missing::fetch_all_components_with(&base(&[]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::Config);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("Missing.host: database@no_such_table key `no_such_table.host`"),
        "{shown}"
    );
    drop_schema(&pool, &schema).await;
    vault.close().await;
}
