//! The `consul` source and `ConsulFetcher` against the in-process Consul API double
//! (`component_model::test_util::ConsulDouble`), and the double's own HTTP behaviour.

use component_model::test_util::ConsulDouble;
use component_model::{
    AsyncAssign, ComponentFetcher, ConsulFetcher, ConsulSource, EnvSource, ErrorKind, FetchRequest,
    FieldSpec, Source, Sources,
};
use serde::Deserialize;

#[derive(Debug, Deserialize, PartialEq)]
struct Pool {
    min: u32,
    max: u32,
}

#[derive(AsyncAssign, Debug)]
struct App {
    #[component(fetch_from = "consul", key = "app/port")]
    port: u16,
    #[component(fetch_from = "consul", key = "app/name")]
    name: String,
    #[component(fetch_from = "consul", key = "app/debug")]
    debug: bool,
    #[component(fetch_from = "consul", key = "app/pool")]
    pool: Pool,
    #[component(fetch_from = "consul", key = "${APP:-app}/empty")]
    empty: String,
    #[component(fetch_from = "consul", key = "app/blob")]
    blob: Vec<u8>,
}

fn sources_for(consul: &ConsulDouble) -> Sources {
    Sources::new().register("consul", ConsulSource::new(consul.address()))
}

#[tokio::test]
async fn several_keys_are_read_with_one_transaction_and_base64_values_decode() {
    let consul = ConsulDouble::start().await;
    consul.put("app/port", "8080");
    consul.put("app/name", "billing");
    consul.put("app/debug", "true");
    consul.put("app/pool", r#"{"min": 2, "max": 16}"#);
    consul.put("app/empty", ""); // stored empty: Consul returns `"Value": null`
    consul.put("app/blob", [0u8, 159, 146, 150]); // not UTF-8
    let app = App::fetch_all_components_with(&sources_for(&consul))
        .await
        .unwrap();
    assert_eq!(app.port, 8080);
    assert_eq!(app.name, "billing");
    assert!(app.debug);
    assert_eq!(app.pool, Pool { min: 2, max: 16 });
    assert_eq!(app.empty, "");
    assert_eq!(app.blob, vec![0u8, 159, 146, 150]);

    let requests = consul.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("PUT", "/v1/txn")
    );
    let ops: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(ops.as_array().unwrap().len(), 6);
    assert_eq!(
        ops[0],
        serde_json::json!({"KV": {"Verb": "get", "Key": "app/port"}})
    );
}

#[tokio::test]
async fn a_missing_key_fails_only_its_field_after_consul_rolls_the_transaction_back() {
    #[derive(AsyncAssign, Debug)]
    struct Keys {
        #[component(fetch_from = "consul", key = "p/present")]
        present: u16,
        #[component(fetch_from = "consul", key = "p/missing")]
        missing: u16,
        #[component(fetch_from = "consul", key = "p/optional")]
        optional: Option<u16>,
        #[component(fetch_from = "consul", key = "p/fallback", fallback = "7")]
        with_fallback: u16,
    }
    let consul = ConsulDouble::start().await;
    consul.put("p/present", "1");
    let errors = Keys::fetch_all_components_with(&sources_for(&consul))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    let shown = errors[0].to_string();
    assert!(
        shown.starts_with("Keys.missing: consul key `p/missing` at http://127.0.0.1:"),
        "{shown}"
    );
    assert!(shown.contains("key \"p/missing\" doesn't exist"), "{shown}");
    // first transaction: 409 naming the 3 missing keys; second: the present one
    let txns = consul.requests_to("/v1/txn");
    assert_eq!(txns.len(), 2, "{txns:?}");

    consul.put("p/missing", "2");
    let p = Keys::fetch_available_components_with(&sources_for(&consul))
        .await
        .unwrap()
        .into_result()
        .unwrap();
    assert_eq!(
        (p.present, p.missing, p.optional, p.with_fallback),
        (1, 2, None, 7)
    );
}

#[tokio::test]
async fn more_than_64_keys_are_split_into_transactions_of_at_most_64() {
    let consul = ConsulDouble::start().await;
    let keys: Vec<String> = (0..150).map(|i| format!("many/k{i:03}")).collect();
    for (i, k) in keys.iter().enumerate() {
        consul.put(k, i.to_string());
    }
    let source = ConsulSource::new(consul.address());
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let values = source.get_many(&refs, None).await;
    assert_eq!(values.len(), 150);
    for (i, v) in values.into_iter().enumerate() {
        assert_eq!(v.unwrap(), component_model::RawValue::Text(i.to_string()));
    }
    let mut sizes: Vec<usize> = consul
        .requests_to("/v1/txn")
        .iter()
        .map(|r| {
            serde_json::from_slice::<Vec<serde_json::Value>>(&r.body)
                .unwrap()
                .len()
        })
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [22, 64, 64]);
}

#[tokio::test]
async fn the_token_is_sent_as_x_consul_token_and_refusals_are_unauthorized() {
    let consul = ConsulDouble::builder()
        .acl_token("consul-token")
        .deny_prefix("secret/")
        .start()
        .await;
    consul.put("app/port", "8080");
    consul.put("app/name", "x");
    consul.put("secret/key", "hidden");

    // right token
    let good = ConsulSource::new(consul.address()).with_token("consul-token");
    let port: u16 = ConsulFetcher::with_source(good.clone(), "app/port")
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(port, 8080);
    assert_eq!(
        consul.requests()[0].header("x-consul-token"),
        Some("consul-token")
    );

    // no token: the anonymous token may read nothing
    let e = <ConsulFetcher as ComponentFetcher<u16>>::fetch_component(&ConsulFetcher::with_source(
        ConsulSource::new(consul.address()),
        "app/port",
    ))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("HTTP 403 Forbidden"), "{e}");
    assert!(e.to_string().contains("set CONSUL_HTTP_TOKEN"), "{e}");

    // wrong token
    let e = <ConsulFetcher as ComponentFetcher<u16>>::fetch_component(&ConsulFetcher::with_source(
        ConsulSource::new(consul.address()).with_token("wrong"),
        "app/port",
    ))
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.to_string().contains("ACL not found"), "{e}");

    // in a transaction, a key the token may not read is left out of the results by
    // Consul: only that field fails
    #[derive(AsyncAssign, Debug)]
    struct Mixed {
        #[component(fetch_from = "consul", key = "app/port")]
        port: u16,
        #[component(fetch_from = "consul", key = "secret/key")]
        hidden: String,
        #[component(fetch_from = "consul", key = "app/name")]
        name: String,
    }
    let sources = Sources::new().register("consul", good);
    let partial = Mixed::fetch_available_components_with(&sources)
        .await
        .unwrap();
    let m = &partial.value;
    assert_eq!(
        (m.port, m.hidden.as_str(), m.name.as_str()),
        (8080, "", "x")
    );
    let errors = partial.errors;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field_name(), Some("hidden"));
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn datacenter_from_the_field_or_the_source_is_sent_as_dc() {
    #[derive(AsyncAssign, Debug)]
    struct Regional {
        #[component(fetch_from = "consul", key = "app/region", dc = "eu-1")]
        eu: String,
        #[component(fetch_from = "consul", key = "app/region")]
        home: String,
    }
    let consul = ConsulDouble::builder().datacenter("eu-1").start().await;
    consul.put("app/region", "home");
    consul.put_in("eu-1", "app/region", "europe");
    let r = Regional::fetch_all_components_with(&sources_for(&consul))
        .await
        .unwrap();
    assert_eq!((r.eu.as_str(), r.home.as_str()), ("europe", "home"));
    let dcs: Vec<Option<String>> = consul
        .requests()
        .iter()
        .map(|r| r.query_param("dc").map(str::to_owned))
        .collect();
    assert!(dcs.contains(&Some("eu-1".to_owned())), "{dcs:?}");

    // an unknown datacenter: Consul answers 500 "No path to datacenter"
    let e =
        <ConsulFetcher as ComponentFetcher<String>>::fetch_component(&ConsulFetcher::with_source(
            ConsulSource::new(consul.address()).with_datacenter("mars"),
            "app/region",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("No path to datacenter"), "{e}");
}

#[tokio::test]
async fn single_reads_missing_keys_raw_values_and_invalid_base64() {
    let consul = ConsulDouble::start().await;
    consul.put("cfg/json", r#"{"a": 1}"#);
    consul.put_raw_value("cfg/corrupt", "%%%not-base64%%%");
    let source = ConsulSource::new(consul.address());

    // 404 → not found; an Option is None
    let e = <ConsulFetcher as ComponentFetcher<String>>::fetch_component(
        &ConsulFetcher::with_source(source.clone(), "cfg/none"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        e.to_string(),
        format!(
            "consul key `cfg/none` at http://{}: not found",
            consul.address()
        )
    );
    let none: Option<String> = ConsulFetcher::with_source(source.clone(), "cfg/none")
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(none, None);

    // ?raw: the body is the value
    let v: serde_json::Value = ConsulFetcher::with_source(source.clone(), "cfg/json")
        .raw()
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(v["a"], 1);
    let raw_request = consul.requests().pop().unwrap();
    assert_eq!(raw_request.query_param("raw"), Some(""));

    // invalid base64 in `Value`: a decode error naming the key, in a GET and in a txn
    let e = <ConsulFetcher as ComponentFetcher<String>>::fetch_component(
        &ConsulFetcher::with_source(source.clone(), "cfg/corrupt"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(
        e.to_string().contains("`cfg/corrupt` is not valid base64"),
        "{e}"
    );

    #[derive(AsyncAssign, Debug)]
    struct Two {
        #[component(fetch_from = "consul", key = "cfg/json")]
        json: serde_json::Value,
        #[component(fetch_from = "consul", key = "cfg/corrupt")]
        corrupt: String,
    }
    let errors = Two::fetch_all_components_with(&Sources::new().register("consul", source))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field_name(), Some("corrupt"));
    assert_eq!(errors[0].kind(), ErrorKind::Decode);
}

#[tokio::test]
async fn address_token_and_namespace_come_from_the_conventional_variables() {
    let consul = ConsulDouble::builder().acl_token("env-token").start().await;
    consul.put("app/port", "9000");
    let env = EnvSource::from_map([
        ("CONSUL_HTTP_ADDR", consul.address()),
        ("CONSUL_HTTP_TOKEN", "env-token".to_owned()),
        ("CONSUL_NAMESPACE", "team-a".to_owned()),
    ]);
    let source = ConsulSource::from_env_source(&env);
    static SPEC: FieldSpec = FieldSpec::new("T", "port", "u16", "consul").key("app/port");
    let value = source.fetch(&FetchRequest::new(&SPEC)).await.unwrap();
    assert_eq!(value, component_model::RawValue::Text("9000".into()));
    let r = &consul.requests()[0];
    assert_eq!(r.header("x-consul-token"), Some("env-token"));
    assert_eq!(r.query_param("ns"), Some("team-a"));
}

#[tokio::test]
async fn the_double_answers_like_consul_recurse_keys_index_and_blocking_queries() {
    let consul = ConsulDouble::start().await;
    consul.put("web/a", "1");
    consul.put("web/b/c", "2");
    consul.put("webx", "3");
    let http = reqwest::Client::new();
    let base = consul.url();

    let r = http
        .get(format!("{base}/v1/kv/web/?keys&separator=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let keys: Vec<String> = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(keys, ["web/a", "web/b/"]);

    let r = http
        .get(format!("{base}/v1/kv/web/?recurse"))
        .send()
        .await
        .unwrap();
    let entries: Vec<serde_json::Value> =
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(entries.len(), 2);
    for field in [
        "LockIndex",
        "Key",
        "Flags",
        "Value",
        "CreateIndex",
        "ModifyIndex",
    ] {
        assert!(entries[0].get(field).is_some(), "{field} in {}", entries[0]);
    }
    assert_eq!(entries[0]["Value"], "MQ=="); // base64 of "1"

    let r = http
        .get(format!("{base}/v1/kv/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-consul-index"));

    // a blocking query returns when the key changes
    let r = http
        .get(format!("{base}/v1/kv/web/a"))
        .send()
        .await
        .unwrap();
    let index: u64 = r.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let waiting = tokio::spawn({
        let http = http.clone();
        let url = format!("{base}/v1/kv/web/a?index={index}&wait=5s");
        async move { http.get(url).send().await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "a blocking query waits for a change"
    );
    consul.put("web/a", "changed");
    let r = tokio::time::timeout(std::time::Duration::from_secs(3), waiting)
        .await
        .unwrap()
        .unwrap();
    let new_index: u64 = r.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(new_index > index);

    // ... and after `wait` with the same index when nothing changes
    let started = std::time::Instant::now();
    let r = http
        .get(format!("{base}/v1/kv/web/a?index={new_index}&wait=200ms"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));

    // more than 128 operations (the documented limit): 413
    let ops: Vec<serde_json::Value> = (0..129)
        .map(|i| serde_json::json!({"KV": {"Verb": "get", "Key": format!("k{i}")}}))
        .collect();
    let r = http
        .put(format!("{base}/v1/txn"))
        .body(serde_json::to_vec(&ops).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn values_written_through_the_http_api_are_read_back_and_cas_is_checked() {
    let consul = ConsulDouble::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/kv/svc/limit", consul.url());
    let r = http.put(&url).body("42").send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    let limit: u32 = ConsulFetcher::with_source(ConsulSource::new(consul.address()), "svc/limit")
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(limit, 42);
    // a check-and-set against a stale index is refused
    let r = http
        .put(format!("{url}?cas=1"))
        .body("43")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "false");
    let r = http.delete(&url).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "true");
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_secret_consul_value_never_appears_in_errors() {
    const CANARY: &str = "canary-consul-2d7e-DO-NOT-LEAK";
    #[derive(AsyncAssign, Debug)]
    struct Guarded {
        #[component(fetch_from = "consul", key = "app/token", secret)]
        token_as_number: u64,
        #[component(fetch_from = "consul", key = "app/port")]
        port: u16,
    }
    let consul = ConsulDouble::start().await;
    consul.put("app/token", CANARY);
    consul.put("app/port", "80");
    let errors = Guarded::fetch_all_components_with(&sources_for(&consul))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    let shown = errors[0].to_string();
    assert!(!shown.contains(CANARY) && !format!("{:?}", errors[0]).contains(CANARY));
    assert!(
        shown.contains("found a secret value of 30 bytes (not shown)"),
        "{shown}"
    );
}

#[tokio::test]
async fn an_unreachable_agent_is_unavailable_for_every_field_with_its_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let sources = Sources::new().register("consul", ConsulSource::new(&addr));
    let errors = App::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 6);
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert!(e.to_string().contains(&format!("at http://{addr}")), "{e}");
        assert!(e.to_string().contains("cannot connect"), "{e}");
    }
}
