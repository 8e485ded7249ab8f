//! Resilience layers around sources: batches stay batches through them, retries ask
//! again only for what failed, and the derive's `timeout`/`retry_attempts` keep fields in
//! their source's batch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_model::resilience::{RetryLayer, SourceExt, TimeoutLayer};
use component_model::test_util::ConsulDouble;
use component_model::{
    AsyncAssign, ConsulSource, ErrorKind, FetchRequest, RawValue, Source, SourceError, Sources,
    async_trait,
};

/// Answers `key` with its name; records each batch; fails `flaky` keys (transiently) the
/// first `fail_times` times they are asked; sleeps `delay` for `slow` keys.
#[derive(Clone, Default)]
struct Scripted {
    batches: Arc<Mutex<Vec<Vec<String>>>>,
    failures: Arc<Mutex<Vec<(String, u32)>>>,
    slow: Option<(String, Duration)>,
}

impl Scripted {
    fn failing(key: &str, times: u32) -> Self {
        let s = Scripted::default();
        s.failures.lock().unwrap().push((key.to_owned(), times));
        s
    }
    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().unwrap().clone()
    }
    fn answer(&self, key: &str) -> Result<RawValue, SourceError> {
        let mut failures = self.failures.lock().unwrap();
        if let Some((_, left)) = failures.iter_mut().find(|(k, n)| k == key && *n > 0) {
            *left -= 1;
            return Err(SourceError::new(ErrorKind::Unavailable).with_message("flaky"));
        }
        if key == "missing" {
            return Err(SourceError::not_found());
        }
        Ok(RawValue::Text(key.len().to_string()))
    }
}

#[async_trait]
impl Source for Scripted {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.fetch_many(&[request]).await.remove(0)
    }
    async fn fetch_many(&self, requests: &[&FetchRequest]) -> Vec<Result<RawValue, SourceError>> {
        let keys: Vec<String> = requests
            .iter()
            .map(|r| r.key().unwrap_or_default().to_owned())
            .collect();
        self.batches.lock().unwrap().push(keys.clone());
        if let Some((slow, delay)) = &self.slow
            && keys.contains(slow)
        {
            tokio::time::sleep(*delay).await;
        }
        keys.iter().map(|k| self.answer(k)).collect()
    }
    fn location(&self) -> Option<String> {
        Some("scripted".into())
    }
}

#[tokio::test]
async fn retry_asks_again_only_for_the_failed_members_in_one_batch() {
    let scripted = Scripted::failing("bb", 2);
    let source = scripted.clone().with_layer(RetryLayer::new(3));
    let requests: Vec<FetchRequest> = ["a", "bb", "ccc"]
        .iter()
        .map(|k| FetchRequest::for_key("s", *k))
        .collect();
    let refs: Vec<&FetchRequest> = requests.iter().collect();
    let answers = source.fetch_many(&refs).await;
    let values: Vec<RawValue> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, ["1", "2", "3"].map(RawValue::from));
    assert_eq!(
        scripted.batches(),
        [vec!["a", "bb", "ccc"], vec!["bb"], vec!["bb"]]
    );
}

#[tokio::test]
async fn retry_never_repeats_not_found_and_gives_up_after_its_attempts() {
    let scripted = Scripted::failing("down", 10);
    let source = scripted.clone().with_layer(RetryLayer::new(2));
    let requests = [
        FetchRequest::for_key("s", "missing"),
        FetchRequest::for_key("s", "down"),
    ];
    let answers = source.fetch_many(&[&requests[0], &requests[1]]).await;
    assert_eq!(answers[0].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        answers[1].as_ref().unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(
        scripted.batches(),
        [vec!["missing", "down"], vec!["down"], vec!["down"]]
    );
}

#[tokio::test]
async fn a_timeout_layer_bounds_each_attempt_and_a_retry_around_it_tries_again() {
    let scripted = Scripted {
        slow: Some(("slow".into(), Duration::from_secs(30))),
        ..Scripted::default()
    };
    let source = scripted
        .clone()
        .with_layer(TimeoutLayer::new(Duration::from_millis(100)))
        .with_layer(RetryLayer::new(1));
    let started = Instant::now();
    let err = source
        .fetch(&FetchRequest::for_key("s", "slow"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("no answer within 100ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(scripted.batches().len(), 2);
    // The description of the source passes through the layers.
    assert_eq!(source.location().as_deref(), Some("scripted"));
}

#[tokio::test]
async fn fields_with_the_same_settings_share_a_batch_whatever_their_layers() {
    let scripted = Scripted::failing("bb", 1);
    #[derive(AsyncAssign, Debug)]
    struct Config {
        #[component(fetch_from = "s", key = "a", retry_attempts = 2, timeout = "5s")]
        a: u8,
        #[component(fetch_from = "s", key = "bb", retry_attempts = 2, timeout = "5s")]
        b: u8,
        #[component(fetch_from = "s", key = "ccc")]
        c: u8,
        #[component(fetch_from = "s", key = "dddd")]
        d: u8,
    }
    let sources = Sources::new().register("s", scripted.clone());
    let config = Config::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((config.a, config.b, config.c, config.d), (1, 2, 3, 4));
    let mut batches = scripted.batches();
    batches.sort();
    // Two settings, two batches; the retry asked for `bb` alone.
    assert_eq!(batches, [vec!["a", "bb"], vec!["bb"], vec!["ccc", "dddd"]]);
}

#[tokio::test]
async fn thirty_two_consul_keys_with_retry_and_timeout_are_one_transaction() {
    let consul = ConsulDouble::start().await;
    let keys: Vec<String> = (0..32).map(|i| format!("layers/k{i:02}")).collect();
    for (i, k) in keys.iter().enumerate() {
        consul.put(k, i.to_string());
    }
    macro_rules! config {
        ($($f:ident = $k:literal),*) => {
            #[derive(AsyncAssign, Debug)]
            #[allow(dead_code)]
            struct Wide { $( #[component(fetch_from = "consul", key = $k, retry_attempts = 3, timeout = "2s")] $f: u32, )* }
        };
    }
    config!(
        k00 = "layers/k00",
        k01 = "layers/k01",
        k02 = "layers/k02",
        k03 = "layers/k03",
        k04 = "layers/k04",
        k05 = "layers/k05",
        k06 = "layers/k06",
        k07 = "layers/k07",
        k08 = "layers/k08",
        k09 = "layers/k09",
        k10 = "layers/k10",
        k11 = "layers/k11",
        k12 = "layers/k12",
        k13 = "layers/k13",
        k14 = "layers/k14",
        k15 = "layers/k15",
        k16 = "layers/k16",
        k17 = "layers/k17",
        k18 = "layers/k18",
        k19 = "layers/k19",
        k20 = "layers/k20",
        k21 = "layers/k21",
        k22 = "layers/k22",
        k23 = "layers/k23",
        k24 = "layers/k24",
        k25 = "layers/k25",
        k26 = "layers/k26",
        k27 = "layers/k27",
        k28 = "layers/k28",
        k29 = "layers/k29",
        k30 = "layers/k30",
        k31 = "layers/k31"
    );
    let sources = Sources::new().register("consul", ConsulSource::new(consul.address()));
    let wide = Wide::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((wide.k00, wide.k17, wide.k31), (0, 17, 31));
    assert_eq!(consul.requests_to("/v1/txn").len(), 1);
    assert_eq!(consul.requests_to("/v1/kv").len(), 0);
}

#[tokio::test]
async fn a_registered_source_can_be_wrapped_and_clones_share_the_layer() {
    let scripted = Scripted::failing("bb", 1);
    let sources = Sources::new()
        .register("s", scripted.clone())
        .layer("s", RetryLayer::new(1))
        .layer("not-registered", RetryLayer::new(1));
    let clone = sources.clone();
    let r = FetchRequest::for_key("s", "bb");
    let got = clone.source("s").unwrap().fetch(&r).await.unwrap();
    assert_eq!(got, RawValue::from("2"));
    assert_eq!(scripted.batches().len(), 2);
}

#[tokio::test]
async fn fallback_to_fields_are_one_batch_of_the_fallback_source() {
    // The primary knows nothing; every field falls back to `s`, in one batch.
    let empty = component_model::EnvSource::from_map([("UNRELATED", "1")]);
    let scripted = Scripted::default();
    #[derive(AsyncAssign, Debug)]
    struct Config {
        #[component(fetch_from = "primary", key = "a", fallback_to = "s")]
        a: u8,
        #[component(fetch_from = "primary", key = "bb", fallback_to = "s")]
        b: u8,
        #[component(fetch_from = "primary", key = "ccc", fallback_to = "s")]
        c: u8,
    }
    let sources = Sources::new()
        .register("primary", empty)
        .register("s", scripted.clone());
    let config = Config::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((config.a, config.b, config.c), (1, 2, 3));
    assert_eq!(scripted.batches(), [vec!["a", "bb", "ccc"]]);
}

/// Fails (with its own error) the first `fail` calls, then answers 8080 after `delay`.
struct Flaky {
    calls: std::sync::atomic::AtomicU32,
    fail: u32,
    delay: Duration,
}

#[async_trait]
impl component_model::ComponentFetcher<u16> for Flaky {
    type Error = std::io::Error;
    async fn fetch_component(&self) -> Result<u16, std::io::Error> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        match n < self.fail {
            true => Err(std::io::Error::other("connection reset by peer")),
            false => Ok(8080),
        }
    }
}

#[derive(AsyncAssign, Debug)]
struct Registry {
    #[component(fetch_from = "registry")]
    port: u16,
}

// On tokio's paused clock: the fetchers' sleeps and the timeout are tokio's, so the
// elapsed times below are exact whatever the machine's load.
#[tokio::test(start_paused = true)]
async fn async_retry_and_with_timeout_wrap_any_fetcher_and_register_as_a_source() {
    use component_model::resilience::{AsyncRetry, WithTimeout};
    let flaky = Flaky {
        calls: 0.into(),
        fail: 2,
        delay: Duration::ZERO,
    };
    let sources = Sources::new().register(
        "registry",
        AsyncRetry::new(flaky, 3, Duration::from_millis(1)),
    );
    assert_eq!(
        Registry::fetch_all_components_with(&sources)
            .await
            .unwrap()
            .port,
        8080
    );

    // Too few attempts: the fetcher's own error, naming the field.
    let sources = Sources::new().register(
        "registry",
        AsyncRetry::new(
            Flaky {
                calls: 0.into(),
                fail: 5,
                delay: Duration::ZERO,
            },
            3,
            Duration::from_millis(1),
        ),
    );
    let e = Registry::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text = e[0].to_string();
    assert!(
        text.contains("gave up after 3 attempts: connection reset by peer"),
        "{text}"
    );
    assert_eq!(
        text.matches("connection reset by peer").count(),
        1,
        "{text}"
    );

    // Each attempt bounded: a slow first attempt times out, the retry answers.
    let slow_then_fast = WithTimeout::new(
        Flaky {
            calls: 0.into(),
            fail: 0,
            delay: Duration::from_millis(300),
        },
        Duration::from_millis(50),
    );
    let started = tokio::time::Instant::now();
    let e =
        Registry::fetch_all_components_with(&Sources::new().register("registry", slow_then_fast))
            .await
            .unwrap_err();
    assert_eq!(e[0].kind(), ErrorKind::Timeout, "{}", e[0]);
    // Ended by the 50 ms timeout, not by the 300 ms fetcher.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_millis(300),
        "{took:?}"
    );
}
