//! The pipeline, end to end, on in-memory sources.

use std::sync::atomic::{AtomicU32, Ordering};

use futures::StreamExt;

use super::*;
use crate::resilience::{RetryLayer, SourceExt};
use crate::source::{FetchRequest, FieldSpec, RawValue, Source};
use crate::sources::Sources;
use crate::{Change, Changes, SourceError, Violations};

/// Counts fetches; its watch says once that everything changed.
struct Counter(AtomicU32);

#[async_trait::async_trait]
impl Source for Counter {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Ok(RawValue::Text(
            self.0.fetch_add(1, Ordering::SeqCst).to_string(),
        ))
    }
    fn watch(&self, requests: Vec<FetchRequest>) -> Result<Changes, SourceError> {
        assert_eq!(requests.len(), 1);
        Ok(futures::stream::iter([Ok(Change::All)]).boxed())
    }
}

static SPEC: FieldSpec = FieldSpec::new("C", "n", "u32", "counter").key("n");

#[tokio::test]
async fn a_plan_runs_again_with_the_same_slots_and_sees_new_values() {
    let sources = Sources::new().register("counter", Counter(AtomicU32::new(0)));
    let mut plan = Plan::new(&sources);
    let n = plan.add::<u32>(&SPEC, false);
    assert_eq!(plan.run().await.take(n).unwrap(), 0);
    assert_eq!(plan.run().await.take(n).unwrap(), 1);
}

#[tokio::test]
async fn a_watch_passes_through_layers() {
    let source = Counter(AtomicU32::new(0)).with_layer(RetryLayer::new(1));
    let mut changes = source.watch(vec![FetchRequest::new(&SPEC)]).unwrap();
    assert_eq!(changes.next().await.unwrap().unwrap(), Change::All);
    assert!(changes.next().await.is_none());
}

/// Answers every key with its own name; counts what it was asked.
struct Echo(std::sync::Arc<AtomicU32>);

#[async_trait::async_trait]
impl Source for Echo {
    async fn fetch(&self, r: &FetchRequest) -> Result<RawValue, SourceError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(RawValue::Text(r.key().unwrap_or_default().to_owned()))
    }
}

static PORT: FieldSpec = FieldSpec::new("C", "port", "u16", "echo").key("8080");
static NAME: FieldSpec = FieldSpec::new("C", "name", "String", "echo").key("web");
static LOW: FieldSpec = FieldSpec::new("C", "low", "u16", "echo").key("80");

fn below_1024(port: &u16, _: bool) -> futures::future::BoxFuture<'_, Result<(), Violations>> {
    Box::pin(async move {
        tokio::task::yield_now().await; // a check may await
        match *port < 1024 {
            true => Err(format!("{port} is a privileged port").into()),
            false => Ok(()),
        }
    })
}

fn even(port: &u16, _: bool) -> Result<(), Violations> {
    match port % 2 {
        0 => Ok(()),
        _ => Err("odd".into()),
    }
}

#[tokio::test]
async fn the_validate_stage_checks_converted_values_and_keeps_every_message() {
    let sources = Sources::new().register("echo", Echo(Default::default()));
    let mut plan = Plan::new(&sources);
    let port = plan.add::<u16>(&PORT, false);
    let name = plan.add::<String>(&NAME, false);
    let low = plan.add::<u16>(&LOW, false);
    plan.rule_async(port, "with_async below_1024", None, below_1024);
    plan.rule_async(low, "with_async below_1024", None, below_1024);
    plan.rule(low, "with taken", |p: &u16, _| {
        Err(format!("{p} is taken").into())
    });
    plan.rule(port, "with even", even);
    let mut out = plan.run().await;
    assert_eq!(out.take(port).unwrap(), 8080);
    assert_eq!(out.take(name).unwrap(), "web");
    // One error per failed rule, in the order the rules were planned.
    let e = out.take(low).unwrap_err();
    let errors = e.errors();
    assert_eq!(errors.len(), 2, "{e}");
    assert!(errors.iter().all(|e| e.kind() == crate::ErrorKind::Invalid));
    let text = errors[0].to_string();
    assert!(text.starts_with("C.low: echo key `80`"), "{text}");
    assert!(
        text.ends_with("(rule `with_async below_1024`): 80 is a privileged port"),
        "{text}"
    );
    assert_eq!(errors[1].rule(), Some("with taken"));
    assert_eq!(errors[1].detail(), Some("80 is taken"));
}

#[tokio::test]
async fn a_given_value_is_taken_without_asking_its_source() {
    let asked = std::sync::Arc::new(AtomicU32::new(0));
    let sources = Sources::new().register("echo", Echo(asked.clone()));
    let mut plan = Plan::new(&sources);
    let port = plan.add::<u16>(&PORT, false);
    let name = plan.add::<String>(&NAME, false);
    let out = plan.run().await;
    let mut given = out.given();
    drop(out);
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert!(given.has(0) && given.has(1));
    given.set(0, RawValue::from("9090"));
    let mut out = plan
        .run_given(crate::FetchContext::new(), Some(&given))
        .await;
    assert_eq!(out.take(port).unwrap(), 9090);
    assert_eq!(out.take(name).unwrap(), "web");
    assert_eq!(asked.load(Ordering::SeqCst), 2, "a given field was fetched");
    given.forget(1);
    let mut out = plan
        .run_given(crate::FetchContext::new(), Some(&given))
        .await;
    assert_eq!(out.take(name).unwrap(), "web");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        3,
        "only the forgotten field is fetched"
    );
}

/// Answers in the order it is asked: "1", "2", ...
struct Order(AtomicU32);

#[async_trait::async_trait]
impl Source for Order {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        Ok(RawValue::Text(
            (self.0.fetch_add(1, Ordering::SeqCst) + 1).to_string(),
        ))
    }
}

#[tokio::test]
async fn a_field_that_waits_for_another_is_fetched_in_a_later_wave() {
    static A: FieldSpec = FieldSpec::new("W", "a", "u32", "order").key("a");
    static B: FieldSpec = FieldSpec::new("W", "b", "u32", "order").key("b");
    let sources = Sources::new().register("order", Order(AtomicU32::new(0)));
    let mut plan = Plan::new(&sources);
    let a = plan.add::<u32>(&A, false);
    let b = plan.add::<u32>(&B, false);
    plan.after(a, b); // `a` reads `b`
    let mut out = plan.run().await;
    assert_eq!((out.take(b).unwrap(), out.take(a).unwrap()), (1, 2));
    // Each waits for the other: neither is fetched, both say why.
    let mut plan = Plan::new(&sources);
    let a = plan.add::<u32>(&A, false);
    let b = plan.add::<u32>(&B, false);
    plan.after(a, b);
    plan.after(b, a);
    let mut out = plan.run().await;
    let e = out.take(a).unwrap_err();
    assert!(e.to_string().contains("a cycle of references"), "{e}");
    assert!(out.take(b).is_err());
}

#[tokio::test]
async fn the_context_reaches_the_layers_a_report_and_a_fresh_read_through_the_cache() {
    static CACHED: FieldSpec = FieldSpec::new("K", "n", "u32", "counter")
        .key("n")
        .cache_for(std::time::Duration::from_secs(60));
    let sources = Sources::new().register("counter", Counter(AtomicU32::new(0)));
    let mut plan = Plan::new(&sources);
    let n = plan.add::<u32>(&CACHED, false);
    assert_eq!(plan.run().await.take(n).unwrap(), 0);
    // From the cache, and the report says so.
    let notes = std::sync::Arc::new(crate::source::Notes::default());
    let mut out = plan
        .run_in(crate::FetchContext::new().collecting(notes))
        .await;
    assert_eq!(out.take(n).unwrap(), 0);
    assert_eq!(out.report()[0].outcome, crate::Outcome::CacheHit);
    // A fresh read passes the cache.
    let mut out = plan
        .run_in(crate::FetchContext::new().fresh_read(true))
        .await;
    assert_eq!(out.take(n).unwrap(), 1);
}

/// Found reviewing the pipeline: given values, checked fields in `Option` groups.
mod regressions {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;
    use crate::source::{FetchRequest, FieldSpec, RawValue, Source};
    use crate::sources::Sources;
    use crate::{ErrorKind, SourceError};

    /// Answers every key with a counter.
    struct Counter(AtomicU32);
    #[async_trait::async_trait]
    impl Source for Counter {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::Text(
                self.0.fetch_add(1, Ordering::SeqCst).to_string(),
            ))
        }
    }

    /// Says "not found" for every key.
    struct Nothing;
    #[async_trait::async_trait]
    impl Source for Nothing {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Err(SourceError::not_found())
        }
    }

    /// Fails (unavailable) while `down`, else answers "1".
    struct Flaky(Arc<AtomicBool>);
    #[async_trait::async_trait]
    impl Source for Flaky {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            match self.0.load(Ordering::SeqCst) {
                true => Err(SourceError::new(ErrorKind::Unavailable)),
                false => Ok(RawValue::from("1")),
            }
        }
    }

    /// Answers "2".
    struct Two;
    #[async_trait::async_trait]
    impl Source for Two {
        async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
            Ok(RawValue::from("2"))
        }
    }

    fn ok(_: &u16, _: bool) -> Result<(), crate::Violations> {
        Ok(())
    }

    static IA: FieldSpec = FieldSpec::new("Inner", "a", "u16", "nothing").key("a");
    static IB: FieldSpec = FieldSpec::new("Inner", "b", "u16", "nothing").key("b");

    #[allow(dead_code)]
    struct Inner {
        a: u16,
        b: u16,
    }

    /// `Inner` with a check on `a` (as a derive with validation would plan it).
    impl Nested for Inner {
        fn plan(plan: &mut Plan<'_>) {
            let a = plan.add::<u16>(&IA, false);
            let _ = plan.add::<u16>(&IB, false);
            plan.rule(a, "with ok", ok);
        }
        fn take(out: &mut Outcomes<'_>, available: bool) -> Option<Self> {
            let a = out.field::<u16>(available, None);
            let b = out.field::<u16>(available, None);
            Some(Inner { a: a?, b: b? })
        }
    }

    #[tokio::test]
    async fn an_absent_option_group_with_a_checked_field_is_none() {
        let sources = Sources::new().register("nothing", Nothing);
        let mut plan = Plan::new(&sources);
        plan.optional::<Inner>();
        let mut out = plan.run().await;
        let got = out.optional::<Inner>(false);
        let errors = out.into_result(got);
        assert!(
            matches!(errors, Ok(None)),
            "an Option<Inner> whose fields are all absent: {:?}",
            errors
                .err()
                .map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>())
        );
    }

    #[tokio::test]
    async fn a_given_value_of_a_cached_field_reaches_the_cache() {
        static CACHED: FieldSpec = FieldSpec::new("K", "n", "u32", "counter")
            .key("n")
            .cache_for(std::time::Duration::from_secs(60));
        let sources = Sources::new().register("counter", Counter(AtomicU32::new(0)));
        let mut plan = Plan::new(&sources);
        let n = plan.add::<u32>(&CACHED, false);
        let out = plan.run().await;
        let mut given = out.given();
        drop(out);
        // A watch said the new value is 99 (Change::Value), applied by Live without a fetch.
        given.set(0, RawValue::from("99"));
        let mut out = plan
            .run_given(crate::FetchContext::new().fresh_read(true), Some(&given))
            .await;
        // A cached field is read fresh rather than taken from the watch (the counter
        // stands for the store: its next answer is the new value), so its cache holds it.
        let live = out.take(n).unwrap();
        assert_ne!(live, 0, "the cached old value was served");
        // A plain fetch from the same Sources right after (old engine: the live refresh
        // read fresh and stored the new value in the cache).
        assert_eq!(
            plan.run().await.take(n).unwrap(),
            live,
            "the cache still holds the old value"
        );
    }

    #[tokio::test]
    async fn a_field_answered_by_fallback_to_is_asked_its_own_source_again() {
        static F: FieldSpec = FieldSpec::new("F", "x", "u16", "flaky")
            .key("x")
            .fallback_to("two");
        let down = Arc::new(AtomicBool::new(true));
        let sources = Sources::new()
            .register("flaky", Flaky(down.clone()))
            .register("two", Two);
        let mut plan = Plan::new(&sources);
        let x = plan.add::<u16>(&F, false);
        let out = plan.run().await;
        let given = out.given();
        drop(out);
        down.store(false, Ordering::SeqCst); // the own source is back
        // Live refreshes for a change of another field: `given` is what the last run read.
        let mut out = plan
            .run_given(crate::FetchContext::new().fresh_read(true), Some(&given))
            .await;
        assert_eq!(out.take(x).unwrap(), 1, "still the fallback_to value");
    }
}

#[tokio::test]
async fn profile_placeholders_are_replaced_and_an_unknown_one_is_a_config_error_naming_it() {
    static BY_PROFILE: FieldSpec = FieldSpec::new("P", "name", "String", "echo")
        .key("app/{@profile}/name")
        .fallback_to("echo");
    static UNKNOWN: FieldSpec = FieldSpec::new("P", "other", "String", "echo").key("{@region}/x");
    let sources = Sources::new()
        .register("echo", Echo(Default::default()))
        .with_profile("staging");
    let mut plan = Plan::new(&sources);
    let name = plan.add::<String>(&BY_PROFILE, false);
    let other = plan.add::<String>(&UNKNOWN, false);
    let mut out = plan.run().await;
    assert_eq!(out.take(name).unwrap(), "app/staging/name");
    let e = out.take(other).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Config);
    assert!(
        e.to_string().contains("unknown placeholder `{@region}`"),
        "{e}"
    );
    assert_eq!(Sources::new().profile(), "default");
}
