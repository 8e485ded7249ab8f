//! The `api`/`http` source, registered `HttpSource`s and `ApiFetcher`, against real local
//! HTTP servers (wiremock, and raw TCP servers that misbehave on purpose).

use std::time::{Duration, Instant};

use component_model::{
    ApiFetcher, AsyncAssign, ComponentError, ComponentFetcher, EnvSource, ErrorKind, HttpSource,
    Sources,
};
use component_model_tests::{CapturedLogs, capture};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CANARY: &str = "canary-http-5b1e-DO-NOT-LEAK";

/// The specification's test, verbatim.
#[tokio::test]
async fn test_api_fetcher() {
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let mock_server = MockServer::start().await;
    Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/config"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
          "setting": "value"
        })))
        .mount(&mock_server)
        .await;

    let fetcher = ApiFetcher::new(format!("{}/config", mock_server.uri()));
    let result: serde_json::Value = fetcher.fetch_component().await.unwrap();

    assert_eq!(result["setting"], "value");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Limits {
    rps: u32,
    burst: u32,
}

#[derive(AsyncAssign, Debug)]
struct Billing {
    #[component(fetch_from = "billing_api", path = "/settings", pointer = "/port")]
    port: u16,
    #[component(fetch_from = "billing_api", path = "/settings", pointer = "/limits")]
    limits: Limits,
    #[component(fetch_from = "billing_api", path = "/settings", field = "region")]
    region: String,
    #[component(fetch_from = "api", url = "${FLAGS_URL}/flags", pointer = "/beta")]
    beta: bool,
    #[component(fetch_from = "billing_api", path = "/settings", pointer = "/absent")]
    optional: Option<u32>,
}

#[tokio::test]
async fn registered_source_with_base_url_auth_header_pointer_and_one_request_per_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/settings"))
        .and(header("authorization", "Bearer billing-token"))
        .and(header("x-team", "payments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "port": 8443, "limits": {"rps": 100, "burst": 20}, "region": "eu-1"
        })))
        .expect(1) // five fields read this document: one request
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flags"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"beta": "true"})))
        .expect(1)
        .mount(&server)
        .await;

    let sources = Sources::new()
        .with_env(EnvSource::from_map([("FLAGS_URL", server.uri())]))
        .register(
            "billing_api",
            HttpSource::new(format!("{}/v2/", server.uri()))
                .with_auth_header("billing-token")
                .with_header("X-Team", "payments"),
        );
    let b = Billing::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(b.port, 8443);
    assert_eq!(
        b.limits,
        Limits {
            rps: 100,
            burst: 20
        }
    );
    assert_eq!(b.region, "eu-1");
    assert!(b.beta);
    assert_eq!(b.optional, None);
    server.verify().await;
}

#[derive(AsyncAssign, Debug)]
struct One {
    #[component(fetch_from = "api", url = "${URL}")]
    value: u16,
}

async fn fetch_one(url: String) -> ComponentError {
    let sources = Sources::new().with_env(EnvSource::from_map([("URL", url)]));
    let mut errors = One::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors.len(), 1);
    errors.remove(0)
}

#[tokio::test]
async fn status_codes_map_to_kinds_and_name_status_url_and_field() {
    let server = MockServer::start().await;
    for (code, p) in [
        (404, "/missing"),
        (403, "/forbidden"),
        (503, "/down"),
        (400, "/bad"),
    ] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(code).set_body_string("nope"))
            .mount(&server)
            .await;
    }
    let cases = [
        ("/missing", ErrorKind::NotFound, "HTTP 404 Not Found"),
        ("/forbidden", ErrorKind::Unauthorized, "HTTP 403 Forbidden"),
        (
            "/down",
            ErrorKind::Unavailable,
            "HTTP 503 Service Unavailable",
        ),
        ("/bad", ErrorKind::Other, "HTTP 400 Bad Request"),
    ];
    for (p, kind, text) in cases {
        let url = format!("{}{p}", server.uri());
        let e = fetch_one(url.clone()).await;
        assert_eq!(e.kind(), kind, "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("One.value: api url `"), "{shown}");
        assert!(shown.contains(text) && shown.contains(&url), "{shown}");
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_or_is_malformed_is_a_decode_error() {
    let server = MockServer::start().await;
    Mock::given(path("/html"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hello</html>"))
        .mount(&server)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"value\": 80"))
        .mount(&server)
        .await;
    for p in ["/html", "/broken"] {
        let e = fetch_one(format!("{}{p}", server.uri())).await;
        assert_eq!(e.kind(), ErrorKind::Decode, "{e}");
        assert!(e.to_string().contains("is not JSON"), "{e}");
    }
    // JSON of the wrong type names the field type and what was found
    Mock::given(path("/text"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("eighty")))
        .mount(&server)
        .await;
    let e = fetch_one(format!("{}/text", server.uri())).await;
    assert_eq!(e.kind(), ErrorKind::Decode);
    assert!(
        e.to_string().contains("expected `u16`, found \"eighty\""),
        "{e}"
    );
}

#[tokio::test]
async fn api_fetcher_pointer_missing_is_not_found_and_option_is_none() {
    let server = MockServer::start().await;
    Mock::given(path("/doc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"a": {"b": 7}})))
        .mount(&server)
        .await;
    let url = format!("{}/doc", server.uri());
    let b: u8 = ApiFetcher::new(&url)
        .with_pointer("/a/b")
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(b, 7);
    let e = <ApiFetcher as ComponentFetcher<u8>>::fetch_component(
        &ApiFetcher::new(&url).with_pointer("/a/c"),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string()
            .contains("JSON pointer `/a/c` matches nothing"),
        "{e}"
    );
    let none: Option<u8> = ApiFetcher::new(&url)
        .with_pointer("/a/c")
        .fetch_component()
        .await
        .unwrap();
    assert_eq!(none, None);
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
    (format!("http://{addr}/settings"), task)
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (url, task) = silent_server().await;
    let started = Instant::now();
    let e = <ApiFetcher as ComponentFetcher<u16>>::fetch_component(
        &ApiFetcher::new(&url).with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(e.to_string().contains("within 300ms"), "{e}");

    // Through the derive: the field's own `timeout` fires too.
    #[derive(AsyncAssign, Debug)]
    struct Slow {
        #[component(fetch_from = "api", url = "${URL}", timeout = "250ms")]
        value: u16,
    }
    let sources = Sources::new().with_env(EnvSource::from_map([("URL", url)]));
    let started = Instant::now();
    let errors = Slow::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(errors[0].kind(), ErrorKind::Timeout, "{}", errors[0]);
    assert!(started.elapsed() < Duration::from_secs(3));
    task.abort();
}

/// A server that promises 100 bytes of body and sends 12, then closes the connection
/// (`hold = false`) or keeps it open in silence (`hold = true`).
async fn partial_body_server(hold: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"value\": 8")
                .await;
            if hold {
                held.push(socket);
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_unavailable() {
    let (addr, task) = partial_body_server(false).await;
    let e = fetch_one(format!("http://{addr}/settings")).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("broke off"), "{e}");
    task.abort();
}

#[tokio::test]
async fn a_redirect_loop_ends_with_an_error() {
    let server = MockServer::start().await;
    Mock::given(path("/loop"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "/loop"))
        .mount(&server)
        .await;
    let e = fetch_one(format!("{}/loop", server.uri())).await;
    assert!(
        e.to_string().contains("redirected more than 10 times"),
        "{e}"
    );
    let received = server.received_requests().await.unwrap();
    assert!(received.len() <= 11, "{} requests", received.len());
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let e = fetch_one(format!("http://{addr}/x")).await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    // The root cause, not reqwest's "error sending request".
    assert!(e.to_string().contains("cannot connect to http://"), "{e}");
    assert!(
        e.to_string().to_lowercase().contains("connection refused"),
        "{e}"
    );
    assert!(!e.to_string().contains("error sending request"), "{e}");
}

#[tokio::test]
async fn a_body_that_stalls_says_it_did_not_finish_arriving() {
    let (addr, task) = partial_body_server(true).await;
    let e = <ApiFetcher as ComponentFetcher<u16>>::fetch_component(
        &ApiFetcher::new(format!("http://{addr}/settings"))
            .with_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        e.to_string().contains("the response body from http://")
            && e.to_string()
                .contains("did not finish arriving within 300ms"),
        "{e}"
    );
    assert!(!e.to_string().contains("decoding"), "{e}");
    task.abort();
}

#[tokio::test]
async fn the_auth_token_and_url_password_never_appear_in_debug_errors_or_logs() {
    let server = MockServer::start().await;
    Mock::given(path("/v1/settings"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let base = server
        .uri()
        .replace("http://", &format!("http://svc:{CANARY}@"));
    let source = HttpSource::new(format!("{base}/v1")).with_auth_header(CANARY);
    assert!(!format!("{source:?}").contains(CANARY));
    let fetcher = ApiFetcher::new(format!("{base}/v1/settings")).with_auth_header(CANARY);
    assert!(!format!("{fetcher:?}").contains(CANARY));

    #[derive(AsyncAssign, Debug)]
    struct Guarded {
        #[component(fetch_from = "guarded", path = "/settings")]
        value: u16,
    }
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let sources = Sources::new().register("guarded", source);
    let errors = Guarded::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let e2 = <ApiFetcher as ComponentFetcher<u16>>::fetch_component(&fetcher)
        .await
        .unwrap_err();
    drop(_guard);
    for e in [&errors[0], &e2] {
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        assert!(!e.to_string().contains(CANARY), "{e}");
        assert!(!format!("{e:?}").contains(CANARY), "{e:?}");
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            assert!(!c.to_string().contains(CANARY), "cause leaks: {c}");
            cause = c.source();
        }
    }
    assert!(errors[0].to_string().contains("svc:***@"), "{}", errors[0]);
    let logged = logs.text();
    assert!(logged.contains("component_fetch"), "{logged}");
    assert!(!logged.contains(CANARY), "logs leak the canary:\n{logged}");
}

#[tokio::test]
async fn a_503_is_retried_with_retry_attempts_and_then_succeeds() {
    #[derive(AsyncAssign, Debug)]
    struct Retried {
        #[component(
            fetch_from = "api",
            url = "${URL}",
            pointer = "/port",
            retry_attempts = 2
        )]
        port: u16,
    }
    let server = MockServer::start().await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"port": 7000})))
        .with_priority(2)
        .mount(&server)
        .await;
    let sources = Sources::new().with_env(EnvSource::from_map([(
        "URL",
        format!("{}/flaky", server.uri()),
    )]));
    let r = Retried::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(r.port, 7000);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_invalid_header_or_missing_base_url_is_a_config_error_not_a_panic() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)] // only the errors matter here
    struct Configured {
        #[component(fetch_from = "bad_header", path = "/x")]
        a: u16,
        #[component(fetch_from = "no_base", path = "/x")]
        b: u16,
    }
    let sources = Sources::new()
        .register(
            "bad_header",
            HttpSource::new("http://127.0.0.1:9").with_header("bad header", "x"),
        )
        .register("no_base", HttpSource::default());
    let errors = Configured::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    for e in &errors {
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }
    assert!(
        errors[0]
            .to_string()
            .contains("invalid HTTP header `bad header`"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().contains("no base URL"),
        "{}",
        errors[1]
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_so_secret_headers_stay_home() {
    let elsewhere = MockServer::start().await;
    let home = MockServer::start().await;
    Mock::given(path("/settings"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/stolen", elsewhere.uri())),
        )
        .mount(&home)
        .await;
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "svc", path = "/settings")]
        port: u16,
    }
    let sources = Sources::new().register(
        "svc",
        HttpSource::new(home.uri()).with_secret_header("X-Vault-Token", CANARY),
    );
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    let shown = errors[0].to_string();
    assert!(shown.contains("redirected to another origin"), "{shown}");
    assert!(!shown.contains(CANARY), "{shown}");
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}
