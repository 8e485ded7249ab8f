//! `.env` files under the environment and values from the command line (issue 31, item 6).

use component_model::{AsyncAssign, EnvSource, ErrorKind, Sources};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cm-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "DOT_")]
struct FromEnv {
    #[component(fetch_from = "env")]
    port: u16,
    #[component(fetch_from = "env")]
    host: String,
    #[component(fetch_from = "env", secret)]
    password: String,
}

#[tokio::test]
async fn a_dotenv_file_fills_what_the_environment_lacks_and_a_real_variable_wins() {
    let d = dir("dotenv");
    let file = d.join(".env");
    std::fs::write(
        &file,
        "# comment\nDOT_PORT=8080\nDOT_HOST=from-file\nexport DOT_PASSWORD=\"s3cret\"\n",
    )
    .unwrap();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("DOT_HOST", "from-env")]))
        .with_dotenv(&file)
        .unwrap();
    let cfg = FromEnv::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(cfg.port, 8080);
    assert_eq!(cfg.host, "from-env");
    assert_eq!(cfg.password, "s3cret");
    // The file's values feed `${VAR}` placeholders too.
    assert_eq!(sources.env().get("DOT_PORT").as_deref(), Some("8080"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn a_missing_dotenv_is_nothing_and_a_malformed_line_names_file_and_line_not_its_text() {
    let d = dir("dotenv-bad");
    assert!(Sources::new().with_dotenv(d.join("absent.env")).is_ok());
    let file = d.join(".env");
    std::fs::write(&file, "GOOD=1\n\nBAD LINE s3cret-canary\n").unwrap();
    let e = Sources::new().with_dotenv(&file).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let text = e.to_string();
    assert!(text.contains(".env"), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(
        !text.contains("s3cret-canary"),
        "the line's text shown: {text}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only)]
struct Db {
    #[component(fetch_from = "args")]
    port: u16,
    #[component(fetch_from = "args", fallback = "localhost")]
    host: String,
}

#[derive(AsyncAssign, Debug)]
struct Cli {
    #[component(nested)]
    db: Db,
    #[component(fetch_from = "args", key = "log.level")]
    log_level: String,
    #[component(fetch_from = "args")]
    workers: Option<u8>,
}

#[tokio::test]
async fn arguments_are_read_by_field_path_or_key_in_all_three_forms() {
    let sources = Sources::new().with_args([
        "prog",
        "--db.port",
        "5432",
        "--set",
        "log.level=debug",
        "--verbose",
        "--ignored=1",
    ]);
    let cli = Cli::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((cli.db.port, cli.db.host.as_str()), (5432, "localhost"));
    assert_eq!(cli.log_level, "debug");
    assert_eq!(cli.workers, None);
    // A missing argument names itself.
    let e = Cli::fetch_all_components_with(&Sources::new().with_args(["prog"]))
        .await
        .unwrap_err();
    let text = e
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("argument `--db.port`"), "{text}");
}
