//! `fetch_all_components` and friends: sources, env, conversion, concurrency, fallbacks,
//! resilience layers, degraded mode and the process-wide default.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use component_model::{
    AsyncAssign, ComponentError, ComponentFetcher, EnvSource, ErrorKind, FetchRequest, RawValue,
    SecretString, Source, SourceError, Sources, async_trait,
};
use secrecy_reexport::ExposeSecret;
use serde::Deserialize;

mod secrecy_reexport {
    pub use component_model::secrecy::ExposeSecret;
}

struct MockApi;

#[async_trait]
impl ComponentFetcher<String> for MockApi {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<String, Self::Error> {
        Ok("api_result".to_owned())
    }
}

struct MockDb;

#[async_trait]
impl ComponentFetcher<i32> for MockDb {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<i32, Self::Error> {
        Ok(42)
    }
}

// The seed's `test_concurrent_fetching`, as written apart from passing the `Sources`.
#[tokio::test]
async fn test_concurrent_fetching() {
    #[derive(AsyncAssign)]
    struct TestConfig {
        #[component(fetch_from = "mock_api")]
        api_value: String,

        #[component(fetch_from = "mock_db")]
        db_value: i32,
    }

    let sources = Sources::new()
        .register("mock_api", MockApi)
        .register("mock_db", MockDb);
    // Mock fetchers return predictable values
    let config = TestConfig::fetch_all_components_with(&sources)
        .await
        .unwrap();

    assert_eq!(config.api_value, "api_result");
    assert_eq!(config.db_value, 42);
}

fn env(vars: &[(&str, &str)]) -> Sources {
    Sources::new().with_env(EnvSource::from_map(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    ))
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_")]
struct EnvConfig {
    #[component(fetch_from = "env", fallback = "localhost")]
    host: String,
    #[component(fetch_from = "env")]
    port: u16,
    #[component(fetch_from = "env", key = "FEATURE_X")]
    feature_x: bool,
    #[component(fetch_from = "env")]
    ratio: Option<f64>,
    untouched: Vec<String>,
}

#[tokio::test]
async fn env_names_default_to_prefixed_upper_case_field_names_and_key_overrides() {
    let config = EnvConfig::fetch_all_components_with(&env(&[
        ("APP_HOST", "db.internal"),
        ("APP_PORT", "8080"),
        ("FEATURE_X", "true"),
        ("APP_RATIO", "0.5"),
    ]))
    .await
    .unwrap();
    assert_eq!(config.host, "db.internal");
    assert_eq!(config.port, 8080);
    assert!(config.feature_x);
    assert_eq!(config.ratio, Some(0.5));
    assert!(config.untouched.is_empty());
}

#[tokio::test]
async fn absent_optional_is_none_and_absent_with_fallback_uses_it() {
    let config =
        EnvConfig::fetch_all_components_with(&env(&[("APP_PORT", "1"), ("FEATURE_X", "false")]))
            .await
            .unwrap();
    assert_eq!(config.host, "localhost");
    assert_eq!(config.ratio, None);
}

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    max_conn: u32,
    burst: Option<u32>,
}

#[tokio::test]
async fn json_text_converts_into_structs_and_collections() {
    #[derive(AsyncAssign, Debug)]
    struct J {
        #[component(fetch_from = "env")]
        limits: Limits,
        #[component(fetch_from = "env")]
        hosts: Vec<String>,
        #[component(fetch_from = "env", pointer = "/db/port")]
        db_port: u16,
        #[component(fetch_from = "env", key = "CREDS", field = "user")]
        user: String,
    }
    let sources = env(&[
        ("LIMITS", r#"{"max_conn": 10}"#),
        ("HOSTS", r#"["a","b"]"#),
        ("DB_PORT", r#"{"db":{"port":"5432"}}"#),
        ("CREDS", r#"{"user":"svc","password":"x"}"#),
    ]);
    let j = J::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        j.limits,
        Limits {
            max_conn: 10,
            burst: None
        }
    );
    assert_eq!(j.hosts, ["a", "b"]);
    assert_eq!(j.db_port, 5432);
    assert_eq!(j.user, "svc");
}

/// A source with a fixed latency that counts its calls and batches.
struct Slow {
    delay: Duration,
    calls: AtomicUsize,
    batches: AtomicUsize,
}

impl Slow {
    fn new(ms: u64) -> Arc<Self> {
        Arc::new(Slow {
            delay: Duration::from_millis(ms),
            calls: AtomicUsize::new(0),
            batches: AtomicUsize::new(0),
        })
    }
}

struct SlowRef(Arc<Slow>);

#[async_trait]
impl Source for SlowRef {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.0.delay).await;
        match request.key() {
            Some("missing") => Err(SourceError::not_found()),
            Some("down") => {
                Err(SourceError::new(ErrorKind::Unavailable).with_message("connection refused"))
            }
            Some(k) => Ok(RawValue::from(k.trim_start_matches("v="))),
            None => Ok(RawValue::from("7")),
        }
    }
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        self.0.batches.fetch_add(1, Ordering::SeqCst);
        futures::future::join_all(requests.iter().map(|r| self.fetch(r))).await
    }
}

#[derive(AsyncAssign, Debug)]
struct FourSlow {
    #[component(fetch_from = "a", key = "v=1")]
    a: u8,
    #[component(fetch_from = "a", key = "v=2")]
    b: u8,
    #[component(fetch_from = "b", key = "v=3")]
    c: u8,
    #[component(fetch_from = "c", key = "v=4")]
    d: u8,
}

#[tokio::test(start_paused = true)]
async fn fields_are_fetched_concurrently_and_each_source_gets_one_batch() {
    let (a, b, c) = (Slow::new(100), Slow::new(300), Slow::new(200));
    let sources = Sources::new()
        .register("a", SlowRef(a.clone()))
        .register("b", SlowRef(b.clone()))
        .register("c", SlowRef(c.clone()));
    let started = tokio::time::Instant::now();
    let cfg = FourSlow::fetch_all_components_with(&sources).await.unwrap();
    // Wall time is the slowest source (300 ms), not the sum (700 ms).
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!((cfg.a, cfg.b, cfg.c, cfg.d), (1, 2, 3, 4));
    assert_eq!(
        a.batches.load(Ordering::SeqCst),
        1,
        "two fields of source a share one batch"
    );
    assert_eq!(a.calls.load(Ordering::SeqCst), 2);
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct ThreeFailing {
    #[component(fetch_from = "s", key = "missing")]
    missing: u16,
    #[component(fetch_from = "s", key = "down")]
    down: String,
    #[component(fetch_from = "s", key = "v=abc")]
    wrong_type: u16,
    #[component(fetch_from = "s", key = "v=fine")]
    fine: String,
}

#[tokio::test(start_paused = true)]
async fn every_failure_is_reported_with_field_source_and_key() {
    let sources = Sources::new().register("s", SlowRef(Slow::new(10)));
    let errors = ThreeFailing::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    let kinds: Vec<ErrorKind> = errors.iter().map(ComponentError::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::NotFound,
            ErrorKind::Unavailable,
            ErrorKind::Decode
        ]
    );
    let names: Vec<_> = errors
        .iter()
        .map(|e| {
            (
                e.field_name().unwrap(),
                e.source_name().unwrap(),
                e.key().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("missing", "s", "missing"),
            ("down", "s", "down"),
            ("wrong_type", "s", "v=abc")
        ]
    );
    assert_eq!(
        errors[0].to_string(),
        "ThreeFailing.missing: s key `missing`: not found"
    );
    assert_eq!(
        errors[1].to_string(),
        "ThreeFailing.down: s key `down`: unavailable: connection refused"
    );
    assert!(
        errors[2].to_string().starts_with(
            "ThreeFailing.wrong_type: s key `v=abc`: cannot decode: expected `u16`, found \"abc\""
        ),
        "{}",
        errors[2]
    );
}

#[tokio::test(start_paused = true)]
async fn fetch_with_resilience_maps_several_errors_to_multiple() {
    let sources = Sources::new().register("s", SlowRef(Slow::new(10)));
    let err = ThreeFailing::fetch_with_resilience_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Multiple);
    assert_eq!(err.errors().len(), 3);
    let text = err.to_string();
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(text.starts_with("3 components failed:"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn fetch_with_resilience_times_out_with_the_container_timeout() {
    #[derive(AsyncAssign, Debug)]
    #[component(timeout = "2s")]
    struct Stuck {
        #[component(fetch_from = "slow", key = "v=1")]
        v: u8,
    }
    let sources = Sources::new().register("slow", SlowRef(Slow::new(60_000)));
    let started = tokio::time::Instant::now();
    let err = Stuck::fetch_with_resilience_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert!(matches!(err, ComponentError::Timeout { .. }));
    assert_eq!(err.to_string(), "fetching Stuck timed out after 2s");
}

#[tokio::test(start_paused = true)]
async fn default_container_timeout_is_thirty_seconds() {
    #[derive(AsyncAssign, Debug)]
    struct Stuck {
        #[component(fetch_from = "slow", key = "v=1")]
        v: u8,
    }
    let sources = Sources::new().register("slow", SlowRef(Slow::new(600_000)));
    let started = tokio::time::Instant::now();
    let err = Stuck::fetch_with_resilience_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn field_timeout_and_retries_apply_per_attempt() {
    struct Flaky(AtomicUsize);
    #[async_trait]
    impl Source for Flaky {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                // first two attempts hang past the field timeout
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            Ok(RawValue::from("5"))
        }
    }
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "flaky", timeout = "100ms", retry_attempts = 3)]
        v: u8,
    }
    let flaky = Arc::new(Flaky(AtomicUsize::new(0)));
    struct Shared(Arc<Flaky>);
    #[async_trait]
    impl Source for Shared {
        async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
            self.0.fetch(r).await
        }
    }
    let sources = Sources::new().register("flaky", Shared(flaky.clone()));
    let c = C::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(c.v, 5);
    assert_eq!(flaky.0.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn field_timeout_without_retries_reports_timeout() {
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "slow", key = "v=1", timeout = "250ms")]
        v: u8,
    }
    let sources = Sources::new().register("slow", SlowRef(Slow::new(5_000)));
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Timeout);
    assert!(
        errors[0].to_string().contains("no answer within 250ms"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn retries_are_not_spent_on_permanent_errors() {
    struct Counting(Arc<AtomicUsize>);
    #[async_trait]
    impl Source for Counting {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(SourceError::new(ErrorKind::Unauthorized))
        }
    }
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "s", key = "k", retry_attempts = 5)]
        v: u8,
    }
    let n = Arc::new(AtomicUsize::new(0));
    let errors = C::fetch_all_components_with(&Sources::new().register("s", Counting(n.clone())))
        .await
        .unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized);
    assert_eq!(n.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn fallback_to_asks_another_source_when_the_first_fails() {
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "remote", key = "down", fallback_to = "local_cache")]
        setting: String,
        #[component(fetch_from = "remote", key = "missing", fallback_to = "nowhere")]
        other: String,
    }
    struct Local;
    #[async_trait]
    impl ComponentFetcher<String> for Local {
        type Error = std::io::Error;
        async fn fetch_component(&self) -> Result<String, Self::Error> {
            Ok("cached".into())
        }
    }
    let sources = Sources::new()
        .register("remote", SlowRef(Slow::new(1)))
        .register("local_cache", Local);
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field_name(), Some("other"));
    assert!(
        errors[0]
            .to_string()
            .contains("fallback_to `other` failed too")
            || errors[0].to_string().contains("no source named `nowhere`"),
        "{}",
        errors[0]
    );
    let partial = C::fetch_available_components_with(&sources).await.unwrap();
    assert_eq!(partial.value.setting, "cached");
    assert_eq!(partial.value.other, "");
}

#[tokio::test]
async fn fetcher_attribute_accepts_async_and_sync_functions_and_fetcher_values() {
    async fn load_port() -> Result<u16, std::io::Error> {
        Ok(8443)
    }
    fn load_host() -> Result<&'static str, std::io::Error> {
        Ok("example.org")
    }
    struct NotSerde(u8);
    #[derive(AsyncAssign)]
    struct C {
        #[component(fetcher = load_port)]
        port: u16,
        #[component(fetcher = load_host)]
        host: String,
        #[component(fetcher = MockDb)]
        answer: i32,
        #[component(fetcher = || async { Ok::<_, std::io::Error>(NotSerde(3)) })]
        opaque: NotSerde,
    }
    let c = C::fetch_all_components_with(&Sources::new()).await.unwrap();
    assert_eq!(
        (c.port, c.host.as_str(), c.answer, c.opaque.0),
        (8443, "example.org", 42, 3)
    );
}

#[tokio::test]
async fn a_users_fetcher_error_becomes_the_cause_of_a_field_error() {
    #[derive(Debug)]
    struct MyError;
    impl std::fmt::Display for MyError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("quota service said no")
        }
    }
    impl std::error::Error for MyError {}
    async fn quota() -> Result<u32, MyError> {
        Err(MyError)
    }
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetcher = quota)]
        quota: u32,
    }
    let errors = C::fetch_all_components_with(&Sources::new())
        .await
        .unwrap_err();
    let e = &errors[0];
    assert_eq!(e.kind(), ErrorKind::Other);
    assert_eq!(
        e.to_string(),
        "C.quota: fetcher `quota`: failed: quota service said no"
    );
    // The cause's text is in the message once; `cause()` gives the error itself.
    let cause = e.cause().expect("the cause is kept");
    assert!(cause.to_string().contains("quota service said no"));
}

#[tokio::test]
async fn unknown_source_and_wrong_fetcher_type_are_config_errors() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "nobody")]
        a: String,
        #[component(fetch_from = "mock_db")]
        b: String,
    }
    let errors = C::fetch_all_components_with(&Sources::new().register("mock_db", MockDb))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Config));
    assert!(
        errors[0]
            .to_string()
            .contains("no source named `nobody` is registered"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .to_string()
            .contains("is a fetcher of `i32`, but the field is `String`"),
        "{}",
        errors[1]
    );
}

#[tokio::test]
async fn placeholders_resolve_from_the_sources_environment() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "s", key = "v=${REGION}")]
        region: String,
        #[component(fetch_from = "s", key = "v=${ZONE:-z1}")]
        zone: String,
        #[component(fetch_from = "s", key = "v=${MISSING_VAR}")]
        broken: String,
    }
    let sources = env(&[("REGION", "eu")]).register("s", SlowRef(Slow::new(0)));
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field_name(), Some("broken"));
    assert!(
        errors[0]
            .to_string()
            .contains("environment variable `MISSING_VAR` is not set"),
        "{}",
        errors[0]
    );
    let partial = C::fetch_available_components_with(&sources).await.unwrap();
    assert_eq!(
        (partial.value.region.as_str(), partial.value.zone.as_str()),
        ("eu", "z1")
    );
}

#[tokio::test]
async fn degraded_fetch_fails_only_when_a_failed_field_has_no_default() {
    struct NoDefault(#[allow(dead_code)] u8);
    impl<'de> Deserialize<'de> for NoDefault {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u8::deserialize(d).map(NoDefault)
        }
    }
    #[derive(AsyncAssign)]
    struct C {
        #[component(fetch_from = "env")]
        must: NoDefault,
    }
    let errors = C::fetch_available_components_with(&env(&[]))
        .await
        .err()
        .unwrap();
    assert_eq!(errors.len(), 1);
    let ok = C::fetch_available_components_with(&env(&[("MUST", "3")]))
        .await
        .unwrap();
    assert!(ok.is_complete());
}

#[tokio::test]
async fn per_field_fetch_methods_reach_each_field() {
    let sources = env(&[("APP_PORT", "81"), ("FEATURE_X", "true")]);
    assert_eq!(EnvConfig::fetch_port_with(&sources).await.unwrap(), 81);
    assert_eq!(
        EnvConfig::fetch_host_with(&sources).await.unwrap(),
        "localhost"
    );
    let err = EnvConfig::fetch_port_with(&env(&[])).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "EnvConfig.port: env variable `APP_PORT`: not found"
    );
}

/// Answers every request with its key, prefixed by its name: which source answered.
struct Echo(&'static str);

#[async_trait]
impl Source for Echo {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        Ok(RawValue::from(format!(
            "{}:{}",
            self.0,
            request.key().unwrap_or_default()
        )))
    }
}

#[tokio::test]
async fn a_struct_planned_once_per_sources_still_sees_placeholders_and_new_registrations() {
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "echo", key = "fixed")]
        fixed: String,
        #[component(fetch_from = "echo", key = "${CM_PLAN_CACHE_TEST_KEY}/x")]
        placed: String,
    }
    #[derive(AsyncAssign, Debug)]
    struct Plain {
        #[component(fetch_from = "echo", key = "fixed")]
        fixed: String,
    }
    // A `${VAR}` read while planning: planned again on every fetch.
    let var = "CM_PLAN_CACHE_TEST_KEY";
    let sources = |v: &str| {
        Sources::new()
            .with_env(EnvSource::from_map([(var, v)]))
            .register("echo", Echo("one"))
    };
    let first = sources("a");
    let c = C::fetch_all_components_with(&first).await.unwrap();
    assert_eq!(
        (c.fixed.as_str(), c.placed.as_str()),
        ("one:fixed", "one:a/x")
    );
    let c = C::fetch_all_components_with(&first).await.unwrap();
    assert_eq!(c.placed, "one:a/x");
    // The same struct type from another `Sources`, and a clone with a new registration:
    // neither answers from the plan of the first.
    let c = C::fetch_all_components_with(&sources("b")).await.unwrap();
    assert_eq!(c.placed, "one:b/x");
    async fn fixed(sources: &Sources) -> String {
        Plain::fetch_all_components_with(sources)
            .await
            .unwrap()
            .fixed
    }
    let plain = Sources::new().register("echo", Echo("one"));
    // The second fetch runs the plan the first one kept.
    assert_eq!(fixed(&plain).await, "one:fixed");
    assert_eq!(fixed(&plain).await, "one:fixed");
    let replaced = plain.clone().register("echo", Echo("two"));
    assert_eq!(fixed(&replaced).await, "two:fixed");
    let partial = Plain::fetch_available_components_with(&replaced).await;
    assert_eq!(partial.unwrap().into_result().unwrap().fixed, "two:fixed");
    assert_eq!(fixed(&plain).await, "one:fixed");
    // Changing a `Sources` that has planned the struct (not a clone) plans it again.
    let plain = plain.register("echo", Echo("three"));
    assert_eq!(fixed(&plain).await, "three:fixed");
}

#[tokio::test]
async fn a_per_field_fetch_runs_only_its_own_fetcher_and_source() {
    // `fetch_<field>` plans the struct for one field: every other field's fetcher
    // expression is not even evaluated, and other sources are not asked.
    static MADE: AtomicUsize = AtomicUsize::new(0);
    fn counted() -> MockDb {
        MADE.fetch_add(1, Ordering::SeqCst);
        MockDb
    }
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetcher = counted())]
        answer: i32,
        #[component(fetch_from = "env", fallback = "7")]
        port: u16,
        #[component(fetch_from = "nowhere")]
        broken: String,
    }
    let sources = env(&[("PORT", "81")]);
    assert_eq!(C::fetch_port_with(&sources).await.unwrap(), 81);
    assert_eq!(MADE.load(Ordering::SeqCst), 0);
    assert_eq!(C::fetch_port_with(&env(&[])).await.unwrap(), 7);
    assert_eq!(C::fetch_answer_with(&sources).await.unwrap(), 42);
    assert_eq!(MADE.load(Ordering::SeqCst), 1);
    let err = C::fetch_broken_with(&sources).await.unwrap_err();
    assert!(
        err.to_string().starts_with("C.broken: "),
        "names the field: {err}"
    );
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn secret_string_fields_deserialize_and_never_print() {
    #[derive(AsyncAssign, Debug)]
    struct C {
        #[component(fetch_from = "env")]
        token: SecretString,
    }
    let c = C::fetch_all_components_with(&env(&[("TOKEN", "hunter2-canary")]))
        .await
        .unwrap();
    assert_eq!(c.token.expose_secret(), "hunter2-canary");
    assert!(!format!("{c:?}").contains("hunter2-canary"));
}

#[tokio::test]
async fn the_global_default_is_set_once() {
    // The only test in this binary that touches the process-wide default.
    #[derive(AsyncAssign, Debug)]
    struct G {
        #[component(fetch_from = "mock_api")]
        v: String,
    }
    let set = Sources::set_global(Sources::new().register("mock_api", MockApi));
    assert!(set.is_ok());
    assert!(
        Sources::set_global(Sources::new()).is_err(),
        "a second call fails"
    );
    assert_eq!(G::fetch_all_components().await.unwrap().v, "api_result");
    assert_eq!(G::fetch_v().await.unwrap(), "api_result");
}

#[tokio::test]
async fn generated_fetch_futures_are_send_and_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let sources = env(&[("APP_PORT", "1"), ("FEATURE_X", "true")]);
    let fut = EnvConfig::fetch_all_components_with(&sources);
    assert_send(&fut);
    drop(fut);
    let owned = sources.clone();
    let handle = tokio::spawn(async move {
        (
            EnvConfig::fetch_with_resilience_with(&owned)
                .await
                .map(|c| c.port),
            EnvConfig::fetch_available_components_with(&owned)
                .await
                .map(|p| p.value.port),
            EnvConfig::fetch_port_with(&owned).await,
        )
    });
    let (a, b, c) = handle.await.unwrap();
    assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 1, 1));
}

#[tokio::test]
async fn a_misspelled_source_name_gets_the_closest_registered_or_built_in_name() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "setings", key = "a")]
        a: u8,
        #[component(fetch_from = "databse", key = "b")]
        b: u8,
        #[component(fetch_from = "zzz", key = "c")]
        c: u8,
    }
    let sources = Sources::new().register(
        "settings",
        component_model::EnvSource::from_map([("a", "1")]),
    );
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown[0].contains("no source named `setings` is registered; did you mean `settings`?"),
        "{}",
        shown[0]
    );
    assert!(
        shown[1].contains("no source named `databse` is registered; did you mean `database`?"),
        "{}",
        shown[1]
    );
    assert!(!shown[2].contains("did you mean"), "{}", shown[2]);
}
