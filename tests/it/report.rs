//! The fetch report: one row per field of the tree with its outcome, never a value.

use component_model::{AsyncAssign, EnvSource, ErrorKind, Outcome, SecretString, Sources};

#[derive(AsyncAssign, Debug, Default)]
struct Db {
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "env", fallback = "5432")]
    port: u16,
}

#[derive(AsyncAssign, Debug, Default)]
struct Tracing {
    #[component(fetch_from = "env")]
    endpoint: String,
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_")]
#[allow(dead_code)] // only the report is read
struct Reported {
    #[component(fetch_from = "env")]
    name: String,
    #[component(fetch_from = "env")]
    token: SecretString,
    #[component(fetch_from = "env")]
    workers: u8,
    #[component(nested)]
    db: Db,
    #[component(nested)]
    tracing: Option<Tracing>,
}

#[tokio::test]
async fn the_report_names_every_leaf_with_its_outcome_and_never_a_value() {
    let env = EnvSource::from_map([
        ("APP_NAME", "billing"),
        ("APP_TOKEN", "canary-7d1e"),
        ("APP_WORKERS", "many"),
        ("APP_DB_HOST", "db.internal"),
    ]);
    let sources = Sources::new().with_env(env);
    let report = Reported::fetch_report_with(&sources).await;
    let rows: Vec<(&str, Outcome)> = report
        .fields
        .iter()
        .map(|r| (r.path.as_str(), r.outcome.clone()))
        .collect();
    assert_eq!(
        rows,
        [
            ("Reported.name", Outcome::Fetched),
            ("Reported.token", Outcome::Fetched),
            ("Reported.workers", Outcome::Failed(ErrorKind::Decode)),
            ("Reported.db.host", Outcome::Fetched),
            ("Reported.db.port", Outcome::Fallback),
            ("Reported.tracing.endpoint", Outcome::Absent),
        ]
    );
    assert_eq!(report.fields[3].key.as_deref(), Some("APP_DB_HOST"));
    let errors = report.result.as_ref().unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = report.to_string();
    assert!(text.starts_with("Reported: 6 fields in "), "{text}");
    assert!(text.contains("1 failed"), "{text}");
    assert!(text.contains("FAILED: cannot decode"), "{text}");
    assert!(
        text.contains("error: Reported.workers: env variable `APP_WORKERS`"),
        "{text}"
    );
    for value in ["canary-7d1e", "billing", "db.internal"] {
        assert!(!text.contains(value), "the report shows a value: {text}");
        assert!(!format!("{report:?}").contains("canary-7d1e"));
    }
    // Columns line up: every row's outcome starts at the header's OUTCOME column.
    let lines: Vec<&str> = text.lines().skip(1).take(7).collect();
    let at = lines[0].find("OUTCOME").unwrap();
    for line in &lines[1..] {
        assert_ne!(&line[at..at + 1], " ", "misaligned: {line:?}");
        assert_eq!(&line[at - 2..at], "  ", "misaligned: {line:?}");
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Fallen {
    #[component(fetch_from = "slow_down", key = "k", fallback_to = "backup")]
    v: String,
}

/// Waits, then fails (a source that is down after a timeout).
struct SlowDown;

#[component_model::async_trait]
impl component_model::Source for SlowDown {
    async fn fetch(
        &self,
        _: &component_model::FetchRequest,
    ) -> Result<component_model::RawValue, component_model::SourceError> {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        Err(component_model::SourceError::new(ErrorKind::Unavailable))
    }
}

#[tokio::test]
async fn a_fallback_rows_time_includes_the_wait_for_its_own_source() {
    let sources = Sources::new()
        .register("slow_down", SlowDown)
        // An env `fallback_to` reads the field's variable (`V`), not the other source's key.
        .register("backup", EnvSource::from_map([("V", "from backup")]));
    let report = Fallen::fetch_report_with(&sources).await;
    assert_eq!(report.fields.len(), 1);
    assert!(
        report.to_string().starts_with("Fallen: 1 field in "),
        "{report}"
    );
    assert!(
        matches!(
            report.fields[0].outcome,
            Outcome::FallbackTo {
                source: "backup",
                ..
            }
        ),
        "{report}"
    );
    assert!(
        report.fields[0].elapsed >= std::time::Duration::from_millis(150),
        "{:?}",
        report.fields[0].elapsed
    );
}

/// A source that says at which revision each value stands (as etcd and NATS KV do).
struct Versioned;

#[component_model::async_trait]
impl component_model::Source for Versioned {
    async fn fetch(
        &self,
        request: &component_model::FetchRequest,
    ) -> Result<component_model::RawValue, component_model::SourceError> {
        match request.key() {
            Some("port") => Ok("8080".into()),
            _ => Err(component_model::SourceError::not_found()),
        }
    }

    async fn fetch_many_in(
        &self,
        cx: &component_model::FetchContext,
        requests: &[&component_model::FetchRequest],
    ) -> Vec<Result<component_model::RawValue, component_model::SourceError>> {
        let mut answers = Vec::new();
        for r in requests {
            let answer = self.fetch(r).await;
            if answer.is_ok() {
                cx.note_revision(r, component_model::Revision::Index(42));
            }
            answers.push(answer);
        }
        answers
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)] // only the report is read
struct Revisioned {
    #[component(fetch_from = "versioned", key = "port")]
    port: u16,
    #[component(fetch_from = "versioned", key = "host", fallback = "localhost")]
    host: String,
}

#[tokio::test]
async fn the_report_shows_the_revision_a_source_noted_for_the_value_it_answered() {
    let sources = Sources::new().register("versioned", Versioned);
    let report = Revisioned::fetch_report_with(&sources).await;
    assert_eq!(
        report.fields[0].revision,
        Some(component_model::Revision::Index(42))
    );
    // A fallback stood in: no revision of the source.
    assert_eq!(report.fields[1].outcome, Outcome::Fallback);
    assert_eq!(report.fields[1].revision, None);
    let shown = report.to_string();
    assert!(shown.contains("key port @42"), "{shown}");
    // Without a report, the same fetch keeps nothing and works as before.
    let value = Revisioned::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(value.port, 8080);
}
