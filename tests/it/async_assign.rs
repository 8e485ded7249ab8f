//! `AsyncAssign`, `FutureAssign` and the builder chain, including the seed's unit test.

use component_model::{AsyncAssign, ComponentError, ErrorKind, FutureAssign};

// The seed's `test_async_assignment`, verbatim apart from the imports.
#[tokio::test]
async fn test_async_assignment() {
    #[derive(AsyncAssign, Default)]
    struct TestConfig {
        value: String,
    }

    let mut config = TestConfig::default();
    config.async_assign("test_value").await.unwrap();

    assert_eq!(config.value, "test_value");
}

#[derive(AsyncAssign, Default, Debug, PartialEq)]
struct AppConfig {
    host: String,
    port: u16,
    tags: Vec<String>,
}

#[tokio::test]
async fn async_impute_returns_the_value_with_the_field_set() {
    let config = AppConfig::default().async_impute(8080u16).await.unwrap();
    assert_eq!(config.port, 8080);
}

#[tokio::test]
async fn future_assign_runs_the_future_and_assigns_its_value() {
    async fn fetch_port() -> Result<u16, std::io::Error> {
        Ok(9000)
    }
    let mut config = AppConfig::default();
    config.future_assign(fetch_port()).await.unwrap();
    assert_eq!(config.port, 9000);
}

#[tokio::test(start_paused = true)]
async fn chained_futures_are_joined_concurrently_at_build() {
    use std::time::Duration;
    async fn slow_port() -> Result<u16, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(8080)
    }
    async fn slow_tags() -> Result<Vec<String>, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(vec!["a".to_owned()])
    }
    let started = tokio::time::Instant::now();
    let config = AppConfig::default()
        .async_assign("localhost")
        .future_assign(slow_port())
        .future_assign(slow_tags())
        .build()
        .await
        .unwrap();
    // Concurrent: about one delay, not two. Measured on the paused clock, so exact.
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(
        config,
        AppConfig {
            host: "localhost".into(),
            port: 8080,
            tags: vec!["a".to_owned()]
        }
    );
}

#[tokio::test(start_paused = true)]
async fn paused_clock_join_takes_one_delay() {
    use std::time::Duration;
    async fn wait(ms: u64) -> Result<u16, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(1)
    }
    let started = tokio::time::Instant::now();
    let mut config = AppConfig::default();
    config.future_assign(wait(300)).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(300));
}

#[tokio::test]
async fn a_failed_future_assigns_nothing_and_reports_every_error() {
    async fn bad_port() -> Result<u16, std::io::Error> {
        Err(std::io::Error::other("port service down"))
    }
    async fn bad_tags() -> Result<Vec<String>, std::io::Error> {
        Err(std::io::Error::other("tag service down"))
    }
    let mut config = AppConfig::default();
    let err = Assignment_chain(&mut config, bad_port(), bad_tags())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Multiple);
    let text = err.to_string();
    assert!(text.contains("AppConfig.port"), "{text}");
    assert!(text.contains("port service down"), "{text}");
    assert!(text.contains("AppConfig.tags"), "{text}");
    // all-or-nothing: the ready step was not applied either
    assert_eq!(config, AppConfig::default());
}

#[allow(non_snake_case)]
async fn Assignment_chain(
    config: &mut AppConfig,
    port: impl std::future::Future<Output = Result<u16, std::io::Error>> + Send + 'static,
    key: impl std::future::Future<Output = Result<Vec<String>, std::io::Error>> + Send + 'static,
) -> Result<(), ComponentError> {
    config
        .async_assign("ignored")
        .future_assign(port)
        .future_assign(key)
        .await
}

#[tokio::test]
async fn two_fields_of_one_type_have_no_ambiguous_async_assign_but_other_types_do() {
    #[derive(AsyncAssign, Default)]
    struct Endpoints {
        primary: String,
        backup: String,
        port: u16,
    }
    let mut e = Endpoints::default();
    e.async_assign(7u16).await.unwrap();
    assert_eq!(e.port, 7);
    e.primary = "a".into();
    e.backup = "b".into();
    assert_eq!((e.primary.as_str(), e.backup.as_str()), ("a", "b"));
}

#[tokio::test]
async fn assignment_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let mut config = AppConfig::default();
    let fut = config.async_assign(1u16);
    is_send(&fut);
    fut.await.unwrap();
    let handle = tokio::spawn(async {
        let c = AppConfig::default().async_impute("h").await.unwrap();
        c.host
    });
    assert_eq!(handle.await.unwrap(), "h");
}
