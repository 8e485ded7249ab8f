//! A fleet in one process: 50 instances of a service, each its own `Sources` (and memory
//! cache), sharing the real Redis tier (127.0.0.1:6379, a key prefix per test, deleted
//! after), in front of the Consul double behind a [`FaultProxy`] switched to failing
//! (refusing, or hanging).
//!
//! Upstream attempts are counted at the proxy: the instances' HTTP client keeps no idle
//! connection, so every request the source sends (and any retry of the HTTP client) is a
//! connection the proxy accepts.

use std::time::Duration;

use component_model::resilience::CacheTier;
use component_model::test_util::{ConsulDouble, Fault, FaultProxy};
use component_model::{AsyncAssign, ConsulSource, ErrorKind, Outcome, RedisSource, Sources};

#[derive(AsyncAssign, Debug)]
struct Service {
    #[component(
        fetch_from = "consul",
        key = "fleet/port",
        cache_for = "1s",
        stale_for = "10m"
    )]
    port: u32,
}

/// One instance: its own `Sources` on the proxy, sharing the tier under `prefix`.
fn instance(proxy: &FaultProxy, client: &reqwest::Client, prefix: &str) -> Sources {
    Sources::new()
        .register(
            "consul",
            ConsulSource::new(proxy.address().to_string()).with_client(client.clone()),
        )
        .with_shared_cache(RedisSource::new("redis://127.0.0.1:6379").namespaced(prefix.to_owned()))
}

/// A client that opens a connection for every request (none kept idle), so the proxy
/// counts attempts.
fn unpooled() -> reqwest::Client {
    unpooled_for(Duration::from_secs(5))
}

/// [`unpooled`], its requests timing out after `timeout`.
fn unpooled_for(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .expect("reqwest client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_after_the_shared_entries_expired_costs_the_upstream_at_most_two_attempts() {
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_fleet_outage").await else {
        return;
    };
    let consul = ConsulDouble::start().await;
    consul.put("fleet/port", "8080");
    let proxy = FaultProxy::start(consul.address().parse().expect("address"))
        .await
        .expect("proxy");
    let client = unpooled();
    let fleet: Vec<Sources> = (0..50)
        .map(|_| instance(&proxy, &client, &prefix))
        .collect();

    // The fleet starts: one upstream read between 50 instances.
    let started =
        futures::future::join_all(fleet.iter().map(Service::fetch_all_components_with)).await;
    assert!(started.iter().all(|r| matches!(r, Ok(s) if s.port == 8080)));
    assert_eq!(consul.requests().len(), 1, "one read for the fleet");
    assert_eq!(proxy.accepted(), 1);

    // The values expire (memory and tier: `cache_for = "1s"`), and the upstream fails.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    proxy.set(Fault::Reset);
    let before = proxy.accepted();
    let reports = futures::future::join_all(fleet.iter().map(Service::fetch_report_with)).await;
    let attempts = proxy.accepted() - before;
    eprintln!("upstream attempts of 50 instances during the outage: {attempts}");
    for report in &reports {
        assert!(report.is_ok(), "{report}");
        assert!(
            matches!(report.fields[0].outcome, Outcome::Stale { .. }),
            "{report}"
        );
    }
    assert!(
        attempts <= 2,
        "50 instances asked the failing upstream {attempts} times"
    );

    // An instance starting during the outage (empty memory) is served the fleet's value,
    // stale, from the tier.
    let newcomer = instance(&proxy, &client, &prefix);
    let report = Service::fetch_report_with(&newcomer).await;
    let attempts = proxy.accepted() - before;
    eprintln!("{report}");
    assert!(report.is_ok(), "{report}");
    assert!(
        matches!(report.fields[0].outcome, Outcome::Stale { age } if age >= Duration::from_secs(1)),
        "{report}"
    );
    assert_eq!(report.into_result().expect("value").port, 8080);
    assert!(attempts <= 2, "with the newcomer: {attempts} attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_without_a_stale_value_fails_fast_while_the_upstream_is_marked_failing() {
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_fleet_fail_fast").await else {
        return;
    };
    let consul = ConsulDouble::start().await;
    consul.put("fleet/port", "8080");
    let proxy = FaultProxy::start(consul.address().parse().expect("address"))
        .await
        .expect("proxy");
    let client = unpooled();
    // Nothing was ever fetched: no value in the tier, the upstream down.
    proxy.set(Fault::Reset);
    let first = instance(&proxy, &client, &prefix);
    let err = Service::fetch_all_components_with(&first)
        .await
        .expect_err("the upstream is down");
    assert_eq!(err[0].kind(), ErrorKind::Unavailable, "{err:?}");
    let after_first = proxy.accepted();
    assert!(after_first >= 1);

    // Ten more instances start while the failure is marked: none asks the upstream, each
    // fails at once with an error saying the fleet saw it fail, naming field, source, key.
    let others: Vec<Sources> = (0..10)
        .map(|_| instance(&proxy, &client, &prefix))
        .collect();
    let started = std::time::Instant::now();
    let results =
        futures::future::join_all(others.iter().map(Service::fetch_all_components_with)).await;
    let elapsed = started.elapsed();
    assert_eq!(
        proxy.accepted(),
        after_first,
        "an instance asked the marked upstream"
    );
    for r in results {
        let errors = r.expect_err("no value anywhere");
        let e = &errors[0];
        eprintln!("{e}");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        let text = e.to_string();
        for part in ["port", "consul", "fleet/port", "failing"] {
            assert!(text.contains(part), "`{part}` missing from: {text}");
        }
    }
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");

    // The mark ends: the next instance asks the upstream again (one attempt), which is
    // back, and the fleet shares its value.
    proxy.set(Fault::Pass);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let late = instance(&proxy, &client, &prefix);
    let value = Service::fetch_all_components_with(&late)
        .await
        .expect("the upstream is back");
    assert_eq!(value.port, 8080);
}

/// The upstream hangs (accepts, never answers) longer than the shared tier's lock lasts
/// unrenewed ([`TIER_LOCK_FOR`], 5 s): the holder keeps its lock while its request is
/// out, the instances waiting for it answer Timeout at the end of their wait (serving
/// their stale value) and those starting meanwhile wait too; none sends a request of its
/// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_upstream_gets_one_request_from_the_fleet_not_one_per_instance() {
    use component_model::resilience::cache::TIER_LOCK_FOR;
    let Some((_conn, prefix, _cleanup)) = crate::redis::setup("cm_fleet_blackhole").await else {
        return;
    };
    let consul = ConsulDouble::start().await;
    consul.put("fleet/port", "8080");
    let proxy = FaultProxy::start(consul.address().parse().expect("address"))
        .await
        .expect("proxy");
    // The source gives up after 6 s: past the lock's unrenewed life.
    let source_timeout = TIER_LOCK_FOR + Duration::from_secs(1);
    let client = unpooled_for(source_timeout);
    let fleet: Vec<Sources> = (0..50)
        .map(|_| instance(&proxy, &client, &prefix))
        .collect();
    let started =
        futures::future::join_all(fleet.iter().map(Service::fetch_all_components_with)).await;
    assert!(started.iter().all(|r| matches!(r, Ok(s) if s.port == 8080)));
    assert_eq!(proxy.accepted(), 1);

    tokio::time::sleep(Duration::from_millis(1_300)).await;
    proxy.set(Fault::Blackhole);
    let before = proxy.accepted();
    let clock = std::time::Instant::now();
    // The fleet refreshes; half a second after the lock would have ended unrenewed, ten
    // instances start (nothing in memory).
    let newcomers: Vec<Sources> = (0..10)
        .map(|_| instance(&proxy, &client, &prefix))
        .collect();
    let late_start = TIER_LOCK_FOR + Duration::from_millis(500);
    let (reports, late) = futures::future::join(
        futures::future::join_all(fleet.iter().map(Service::fetch_report_with)),
        async {
            tokio::time::sleep(late_start).await;
            futures::future::join_all(newcomers.iter().map(Service::fetch_report_with)).await
        },
    )
    .await;
    let elapsed = clock.elapsed();
    let attempts = proxy.accepted() - before;
    eprintln!(
        "upstream attempts of 60 instances while it hangs: {attempts}, all answered in {elapsed:?}"
    );
    for report in reports.iter().chain(&late) {
        assert!(report.is_ok(), "{report}");
        assert!(
            matches!(report.fields[0].outcome, Outcome::Stale { .. }),
            "{report}"
        );
    }
    assert!(
        attempts <= 2,
        "60 instances asked the hanging upstream {attempts} times"
    );
    // Each waited at most its wait or the holder's request.
    assert!(
        elapsed < late_start + TIER_LOCK_FOR + Duration::from_secs(2),
        "{elapsed:?}"
    );
}
