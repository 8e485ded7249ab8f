//! Fields that reference other fields (`key = "{region}/db/pool"`): one fetch, each field
//! as soon as its inputs are converted; failed inputs named by their dependants; the
//! report's `waited_for` and critical path; `fetch_<field>` fetching the inputs too.
//! In-memory sources here; the chain through OpenBao and PostgreSQL is in
//! `dependent_servers.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_model::{
    AsyncAssign, EnvSource, ErrorKind, FetchRequest, RawValue, SecretString, Source, SourceError,
    Sources, async_trait,
};

/// When a batch was asked (since `Store::started`), and its keys.
type Asked = (Duration, Vec<String>);

/// Answers keys from a map after a delay of its own per key (paused clock: virtual time);
/// remembers when each batch was asked and what it held.
#[derive(Clone, Default)]
struct Store {
    values: Arc<Mutex<HashMap<String, String>>>,
    delays: Arc<Mutex<HashMap<String, Duration>>>,
    asked: Arc<Mutex<Vec<Asked>>>,
    start: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl Store {
    fn with(pairs: &[(&str, &str)]) -> Self {
        let s = Store::default();
        for (k, v) in pairs {
            s.set(k, v);
        }
        s
    }
    fn set(&self, key: &str, value: &str) {
        self.values
            .lock()
            .unwrap()
            .insert(key.to_owned(), value.to_owned());
    }
    fn delay(&self, key: &str, d: Duration) {
        self.delays.lock().unwrap().insert(key.to_owned(), d);
    }
    fn started(&self) {
        *self.start.lock().unwrap() = Some(tokio::time::Instant::now());
    }
    /// When (since `started`) each key was asked, and in which batch.
    fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
    fn asked_at(&self, key: &str) -> Option<Duration> {
        self.asked()
            .into_iter()
            .find(|(_, keys)| keys.iter().any(|k| k == key))
            .map(|(at, _)| at)
    }
}

#[async_trait]
impl Source for Store {
    async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
        let mut all = self.fetch_many(std::slice::from_ref(&r)).await;
        all.pop().expect("one answer")
    }

    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let keys: Vec<String> = requests
            .iter()
            .map(|r| r.key().unwrap_or_default().to_owned())
            .collect();
        let since = self
            .start
            .lock()
            .unwrap()
            .map(|s| s.elapsed())
            .unwrap_or_default();
        self.asked.lock().unwrap().push((since, keys.clone()));
        let wait = keys
            .iter()
            .filter_map(|k| self.delays.lock().unwrap().get(k).copied())
            .max()
            .unwrap_or_default();
        tokio::time::sleep(wait).await;
        let values = self.values.lock().unwrap();
        keys.iter()
            .map(|k| match values.get(k) {
                Some(v) if v == "!fail" => Err(SourceError::new(ErrorKind::Unavailable)
                    .with_message("the store is down for this key")),
                Some(v) => Ok(RawValue::Text(v.clone())),
                None => Err(SourceError::new(ErrorKind::NotFound)),
            })
            .collect()
    }
}

#[derive(AsyncAssign, Debug)]
struct Regional {
    #[component(fetch_from = "env", key = "REGION")]
    region: String,
    #[component(fetch_from = "kv", key = "{region}/db/pool")]
    pool: u32,
    #[component(fetch_from = "kv", key = "{region}/db/host")]
    host: String,
    #[component(fetch_from = "kv", key = "shared/name")]
    name: String,
}

fn regional(region: Option<&str>, kv: &Store) -> Sources {
    let env: Vec<(&str, &str)> = region.map(|r| ("REGION", r)).into_iter().collect();
    Sources::new()
        .with_env(EnvSource::from_map(env))
        .register("kv", kv.clone())
}

#[tokio::test]
async fn a_key_made_of_another_fields_value_is_read_after_it_in_one_fetch() {
    let kv = Store::with(&[
        ("eu/db/pool", "8"),
        ("us/db/pool", "32"),
        ("eu/db/host", "db.eu"),
        ("shared/name", "app"),
    ]);
    let c = Regional::fetch_all_components_with(&regional(Some("eu"), &kv))
        .await
        .unwrap();
    assert_eq!(
        (c.region.as_str(), c.pool, c.host.as_str()),
        ("eu", 8, "db.eu")
    );
    assert_eq!(c.name, "app");
    // The two dependants were ready together: one batch.
    let asked = kv.asked();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].1, ["shared/name"]);
    let mut second = asked[1].1.clone();
    second.sort();
    assert_eq!(second, ["eu/db/host", "eu/db/pool"]);
}

#[tokio::test]
async fn a_failed_input_is_named_by_each_dependant_in_one_error() {
    let kv = Store::with(&[("shared/name", "app")]);
    let errors = Regional::fetch_all_components_with(&regional(None, &kv))
        .await
        .unwrap_err();
    // `region`'s own error, then one per dependant: no confusing second failure.
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    for (e, field) in errors[1..].iter().zip(["pool", "host"]) {
        assert_eq!(e.kind(), ErrorKind::NotFetched, "{e}");
        let text = e.to_string();
        assert!(text.contains(&format!("Regional.{field}")), "{text}");
        assert!(
            text.contains("not fetched: needs `region`, which failed"),
            "{text}"
        );
        assert!(text.contains("kv"), "names the source: {text}");
    }
    // Nothing was asked for a key with a hole in it.
    assert!(kv.asked().iter().all(|(_, keys)| keys == &["shared/name"]));
}

#[derive(AsyncAssign, Debug)]
struct MaybeRegional {
    #[component(fetch_from = "env", key = "REGION")]
    region: Option<String>,
    #[component(fetch_from = "kv", key = "{region}/db/pool", fallback = "4")]
    pool: u32,
    #[component(fetch_from = "kv", key = "{region}/db/host")]
    host: String,
}

#[tokio::test]
async fn an_absent_option_leaves_its_dependants_unfetched_and_their_fallback_stands() {
    let kv = Store::with(&[]);
    let errors = MaybeRegional::fetch_all_components_with(&regional(None, &kv))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let text = errors[0].to_string();
    assert!(text.contains("MaybeRegional.host"), "{text}");
    assert!(text.contains("not fetched: `region` is absent"), "{text}");
    let partial = MaybeRegional::fetch_available_components_with(&regional(None, &kv))
        .await
        .unwrap();
    assert_eq!(partial.value.pool, 4, "the `fallback` literal stands in");
    assert!(kv.asked().is_empty());
}

#[tokio::test]
async fn a_failed_source_under_a_dependant_is_its_own_error_with_the_key_as_sent() {
    let kv = Store::with(&[
        ("eu/db/pool", "!fail"),
        ("eu/db/host", "db.eu"),
        ("shared/name", "app"),
    ]);
    let errors = Regional::fetch_all_components_with(&regional(Some("eu"), &kv))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].kind(), ErrorKind::Unavailable);
    let text = errors[0].to_string();
    assert!(
        text.contains("eu/db/pool"),
        "the key as sent, not its template: {text}"
    );
    assert!(!text.contains("{region}"), "{text}");
}

#[tokio::test]
async fn the_report_says_what_each_field_waited_for_and_the_critical_path() {
    let kv = Store::with(&[
        ("eu/db/pool", "8"),
        ("eu/db/host", "db.eu"),
        ("shared/name", "app"),
    ]);
    // The chains through `pool` and `host` (one batch) are the longest by far.
    kv.delay("eu/db/pool", Duration::from_millis(60));
    let report = Regional::fetch_report_with(&regional(Some("eu"), &kv)).await;
    assert!(report.is_ok(), "{report}");
    let pool = report
        .fields
        .iter()
        .find(|r| r.path == "Regional.pool")
        .unwrap();
    assert_eq!(pool.waited_for, ["Regional.region"]);
    assert_eq!(pool.key.as_deref(), Some("eu/db/pool"));
    let name = report
        .fields
        .iter()
        .find(|r| r.path == "Regional.name")
        .unwrap();
    assert!(name.waited_for.is_empty());
    let path = report.critical_path();
    assert_eq!(path.len(), 2, "{path:?}");
    assert_eq!(path[0], "Regional.region");
    assert!(
        path[1] == "Regional.pool" || path[1] == "Regional.host",
        "{path:?}"
    );
    assert!(report.to_string().contains("critical path"), "{report}");
}

#[tokio::test]
async fn fetching_one_field_fetches_its_inputs_too() {
    let kv = Store::with(&[("us/db/pool", "32"), ("shared/name", "app")]);
    let pool = Regional::fetch_pool_with(&regional(Some("us"), &kv))
        .await
        .unwrap();
    assert_eq!(pool, 32);
    // Only what `pool` needs.
    let keys: Vec<String> = kv.asked().into_iter().flat_map(|(_, k)| k).collect();
    assert_eq!(keys, ["us/db/pool"]);
}

#[derive(AsyncAssign, Debug)]
struct Chain {
    #[component(fetch_from = "kv", key = "a")]
    a: String,
    #[component(fetch_from = "kv", key = "b/{a}")]
    b: String,
    #[component(fetch_from = "kv", key = "c/{b}/{a}")]
    c: u16,
    // Another source: a batch answers when its slowest request does.
    #[component(fetch_from = "slow_kv", key = "slow")]
    slow: String,
}

#[tokio::test(start_paused = true)]
async fn a_field_starts_when_its_inputs_are_converted_not_after_a_whole_wave() {
    let kv = Store::with(&[("a", "x"), ("b/x", "y"), ("c/y/x", "7"), ("slow", "s")]);
    kv.delay("a", Duration::from_millis(50));
    kv.delay("b/x", Duration::from_millis(50));
    kv.delay("c/y/x", Duration::from_millis(50));
    kv.delay("slow", Duration::from_millis(400));
    let sources = Sources::new()
        .register("kv", kv.clone())
        .register("slow_kv", kv.clone());
    kv.started();
    let start = tokio::time::Instant::now();
    let c = Chain::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        (c.a.as_str(), c.b.as_str(), c.c, c.slow.as_str()),
        ("x", "y", 7, "s")
    );
    // `b` is asked when `a` answered (50 ms), not when the slow field did (400 ms), and
    // `c` when `b` did: the fetch costs its longest chain.
    let asked = kv.asked();
    assert_eq!(kv.asked_at("a"), Some(Duration::ZERO), "{asked:?}");
    assert_eq!(kv.asked_at("slow"), Some(Duration::ZERO), "{asked:?}");
    assert_eq!(
        kv.asked_at("b/x"),
        Some(Duration::from_millis(50)),
        "{asked:?}"
    );
    assert_eq!(
        kv.asked_at("c/y/x"),
        Some(Duration::from_millis(100)),
        "{asked:?}"
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(400),
        "the slow field is the longest chain"
    );
}

#[derive(AsyncAssign, Debug)]
struct Braces {
    #[component(fetch_from = "kv", key = "tenant")]
    #[allow(dead_code)] // read only through `{tenant}`
    tenant: String,
    #[component(fetch_from = "kv", key = "{{{tenant}}}/limit")]
    limit: u8,
    #[component(fetch_from = "kv", key = "{{literal}}")]
    literal: String,
}

#[tokio::test]
async fn double_braces_are_literal_braces_with_and_without_references() {
    let kv = Store::with(&[
        ("tenant", "acme"),
        ("{acme}/limit", "5"),
        ("{literal}", "ok"),
    ]);
    let sources = Sources::new().register("kv", kv.clone());
    let b = Braces::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((b.limit, b.literal.as_str()), (5, "ok"));
}

#[derive(AsyncAssign, Debug)]
#[component(nested_only)]
struct Database {
    #[component(fetch_from = "kv", key = "db/host")]
    host: String,
    #[component(fetch_from = "kv", key = "db/{host}/port")]
    port: u16,
}

#[derive(AsyncAssign, Debug)]
struct WithNested {
    #[component(nested)]
    database: Database,
    #[component(fetch_from = "kv", key = "pool/{database.host}/{database.port}")]
    pool: u32,
}

#[tokio::test]
async fn a_reference_reaches_into_a_nested_struct_and_a_nested_field_references_its_own() {
    let kv = Store::with(&[
        ("db/host", "pg1"),
        ("db/pg1/port", "5433"),
        ("pool/pg1/5433", "12"),
    ]);
    let sources = Sources::new().register("kv", kv.clone());
    let w = WithNested::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!((w.database.port, w.pool), (5433, 12));
    let report = WithNested::fetch_report_with(&sources).await;
    assert_eq!(
        report.critical_path(),
        [
            "WithNested.database.host",
            "WithNested.database.port",
            "WithNested.pool"
        ]
    );
}

#[derive(AsyncAssign, Debug)]
struct SecretChain {
    #[component(fetch_from = "kv", key = "dsn", secret)]
    dsn: SecretString,
    #[component(fetch_from = "nosuchbackend", connect = "{dsn}", key = "k")]
    value: String,
}

#[tokio::test]
async fn a_secret_address_never_shows_in_the_error_of_a_client_that_cannot_be_opened() {
    let canary = format!("canary-{}", std::process::id());
    let kv = Store::with(&[("dsn", &format!("postgres://u:{canary}@127.0.0.1:1/db"))]);
    let sources = Sources::new().register("kv", kv.clone());
    let errors = SecretChain::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let text = format!("{} {:?}", errors[0], errors[0]);
    assert!(text.contains("SecretChain.value"), "{text}");
    assert!(!text.contains(&canary), "the secret address leaked: {text}");
}

/// A store whose every value is secret (as Vault's are).
#[derive(Clone)]
struct SecretStore(Store);

#[async_trait]
impl Source for SecretStore {
    async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
        self.0.fetch(r).await
    }
    fn is_sensitive(&self) -> bool {
        true
    }
}

#[derive(AsyncAssign, Debug)]
struct FromSecretSource {
    // A `String`, so the derive cannot know: its source is secret.
    #[component(fetch_from = "vaultish", key = "token")]
    token: String,
    #[component(fetch_from = "kv", key = "by-token/{token}")]
    leaked: String,
}

#[tokio::test]
async fn a_value_from_a_secret_source_never_stands_in_a_key() {
    let canary = format!("canary-{}", std::process::id());
    let secrets = Store::with(&[("token", &canary)]);
    let kv = Store::with(&[(&format!("by-token/{canary}"), "x")]);
    let sources = Sources::new()
        .register("vaultish", SecretStore(secrets))
        .register("kv", kv.clone());
    let errors = FromSecretSource::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let text = format!("{} {:?}", errors[0], errors[0]);
    assert!(text.contains("FromSecretSource.leaked"), "{text}");
    assert!(text.contains("whose value is secret"), "{text}");
    assert!(!text.contains(&canary), "{text}");
    assert!(kv.asked().is_empty(), "the secret was sent as a key");
}

#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only)]
struct Replica {
    #[component(fetch_from = "env", key = "REPLICA_REGION")]
    region: String,
    #[component(fetch_from = "env", key = "REPLICA_{region}_POOL")]
    pool: u32,
}

#[derive(AsyncAssign, Debug)]
struct WithOptionalReplica {
    #[component(fetch_from = "env", key = "APP_NAME")]
    name: String,
    #[component(nested)]
    replica: Option<Replica>,
}

#[tokio::test]
async fn an_optional_struct_whose_fields_reference_each_other_is_absent_as_a_whole() {
    let env = |pairs: &[(&'static str, &'static str)]| {
        Sources::new().with_env(EnvSource::from_map(pairs.iter().copied()))
    };
    let none = WithOptionalReplica::fetch_all_components_with(&env(&[("APP_NAME", "a")]))
        .await
        .unwrap();
    assert!(none.replica.is_none());
    let some = WithOptionalReplica::fetch_all_components_with(&env(&[
        ("APP_NAME", "a"),
        ("REPLICA_REGION", "EU"),
        ("REPLICA_EU_POOL", "3"),
    ]))
    .await
    .unwrap();
    assert_eq!(some.replica.map(|r| r.pool), Some(3));
}
