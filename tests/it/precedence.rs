//! Precedence and profiles (issue 31): overrides above a field's own source, defaults below
//! it, every precedence source asked concurrently; what won and what lost in the report.
//! These cases need no server (env, args, files); the server cases are in
//! `precedence_servers.rs`.

use component_model::{
    AsyncAssign, EnvSource, ErrorKind, FileSource, Outcome, PrecedenceOutcome, Sources,
};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cm-prec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The figment/Spring shape: args over env over the profile's file over the default file.
#[derive(AsyncAssign, Debug, PartialEq)]
#[component(
    env_prefix = "APP_",
    overrides = ["args", "env"],
    defaults = ["file@{@profile}.toml", "file@default.toml"],
    profile_env = "APP_PROFILE"
)]
struct App {
    port: u16,
    host: String,
    #[component(secret)]
    password: String,
    workers: u32,
    #[component(fallback = "info")]
    log_level: String,
    #[component(nested)]
    db: Db,
    #[component(skip)]
    skipped: u8,
}

#[derive(AsyncAssign, Debug, PartialEq, Default)]
#[component(
    overrides = ["args", "env"],
    defaults = ["file@{@profile}.toml", "file@default.toml"]
)]
struct Db {
    url: String,
    pool: u32,
}

fn files(name: &str) -> (std::path::PathBuf, FileSource) {
    let d = dir(name);
    std::fs::write(
        d.join("default.toml"),
        "port = 80\nhost = \"default-host\"\npassword = \"default-pw\"\nworkers = 2\n[db]\nurl = \"pg://default\"\npool = 5\n",
    )
    .unwrap();
    std::fs::write(
        d.join("prod.toml"),
        "host = \"prod-host\"\nworkers = 8\n[db]\npool = 50\n",
    )
    .unwrap();
    let fs = FileSource::new().with_base_dir(&d);
    (d, fs)
}

#[tokio::test]
async fn each_field_takes_the_highest_source_that_has_it() {
    let (_d, fs) = files("highest");
    let sources = Sources::new()
        .register("file", fs)
        .with_env(EnvSource::from_map([
            ("APP_PORT", "8080"),
            ("APP_PROFILE", "prod"),
            ("APP_DB_URL", "pg://env"),
        ]))
        .with_args(["app", "--workers", "16"]);
    let app = App::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(app.port, 8080, "env over the files");
    assert_eq!(
        app.host, "prod-host",
        "the profile's file over the default file"
    );
    assert_eq!(app.workers, 16, "args over everything");
    assert_eq!(app.password, "default-pw");
    assert_eq!(
        app.log_level, "info",
        "absent everywhere: the fallback literal"
    );
    assert_eq!(app.db.url, "pg://env");
    assert_eq!(app.db.pool, 50);
    assert_eq!(app.skipped, 0);
}

#[derive(AsyncAssign, Debug)]
#[component(
    watch,
    overrides = ["file@override.toml"],
    defaults = ["file@default.toml"]
)]
struct Watched {
    level: String,
    port: u16,
}

#[tokio::test]
async fn a_live_struct_reevaluates_precedence_on_every_change() {
    use component_model::ConfigUpdate;
    use futures::StreamExt;
    use std::time::Duration;
    let d = dir("live");
    std::fs::write(d.join("override.toml"), "level = \"debug\"\n").unwrap();
    std::fs::write(d.join("default.toml"), "level = \"info\"\nport = 80\n").unwrap();
    let sources = Sources::new().register("file", FileSource::new().with_base_dir(&d));
    let live = Watched::watch_with(&sources).await.unwrap();
    assert_eq!((live.get().level.as_str(), live.get().port), ("debug", 80));
    let mut updates = live.changes();
    // A change below the winner: the field's value stays, no update.
    std::fs::write(d.join("default.toml"), "level = \"warn\"\nport = 80\n").unwrap();
    let quiet = tokio::time::timeout(Duration::from_millis(1500), updates.next()).await;
    assert!(
        quiet.is_err(),
        "an update for a change below the winner: {quiet:?}"
    );
    assert_eq!(live.version(), 1);
    // The override removed: the next source's value, in one update.
    std::fs::write(d.join("override.toml"), "").unwrap();
    let update = tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update")
        .expect("the stream goes on");
    match update {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields.len(), 1, "{fields:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(live.get().level, "warn");
    let more = tokio::time::timeout(Duration::from_millis(800), updates.next()).await;
    assert!(more.is_err(), "a second update: {more:?}");
    assert_eq!(live.version(), 2);
}

#[derive(Debug, serde::Deserialize)]
struct Port(#[allow(dead_code)] u16);

#[derive(AsyncAssign, Debug)]
#[component(overrides = ["env"], defaults = ["file@default.toml"])]
#[allow(dead_code)] // read through the report
struct Sparse {
    present: u16,
    missing: u16,
    #[component(fetch_from = "file", path = "default.toml", pointer = "/strict")]
    strict: u16,
    no_default: Port,
}

#[tokio::test]
async fn absent_everywhere_is_default_and_each_source_tried_is_in_the_report() {
    let d = dir("sparse");
    std::fs::write(d.join("default.toml"), "present = 7\n").unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("PRESENT", "9")]))
        .register("file", FileSource::new().with_base_dir(&d));
    let report = Sparse::fetch_report_with(&sources).await;
    let missing = &report.fields[1];
    assert_eq!(missing.outcome, Outcome::Default, "{report}");
    let tried: Vec<_> = missing
        .precedence
        .iter()
        .map(|p| p.outcome.clone())
        .collect();
    assert_eq!(
        tried,
        [PrecedenceOutcome::Absent, PrecedenceOutcome::Absent]
    );
    let present = &report.fields[0];
    assert_eq!(present.source, "env");
    assert_eq!(present.key.as_deref(), Some("PRESENT"));
    assert_eq!(
        present.precedence[1].outcome,
        PrecedenceOutcome::Lost {
            value: Some("7".into())
        }
    );
    // The field's own source (its `pointer` finds nothing) is absent like any other.
    assert_eq!(report.fields[2].outcome, Outcome::Default, "{report}");
    assert_eq!(
        report.fields[2].precedence[1].outcome,
        PrecedenceOutcome::Absent
    );
    // A type without `Default`: the error names every source tried.
    let errors = report.result.unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind(), ErrorKind::NotFound);
    let text = errors[0].to_string();
    assert!(
        text.contains("no_default")
            && text.contains("no source has a value")
            && text.contains("env (NO_DEFAULT)"),
        "{text}"
    );
}
