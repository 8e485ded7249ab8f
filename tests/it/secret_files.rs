//! Secrets from files: `secret_file = "..."` and the container convention `X_FILE` for
//! `env` fields — trimming, size bound, errors naming the file, values never shown,
//! permission warnings.

use std::path::{Path, PathBuf};

use component_model::secrecy::ExposeSecret;
use component_model::{AsyncAssign, EnvSource, ErrorKind, SecretFileSource, SecretString, Sources};
use component_model_tests::{CapturedLogs, capture, unique};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("cm_secret_files"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    /// Writes `name` with mode 0600 (or `mode`).
    fn write(&self, name: &str, content: &[u8], mode: u32) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(AsyncAssign, Debug)]
struct FromFiles {
    #[component(secret_file = "api_key")]
    api_key: SecretString,
    /// A plain type: still secret (the attribute implies `secret`).
    #[component(secret_file = "db_password")]
    db_password: String,
    #[component(secret_file = "optional_token")]
    optional_token: Option<String>,
    #[component(secret_file = "worker_count", fallback = "4")]
    workers: u16,
}

#[tokio::test]
async fn secret_file_fields_read_their_files_trimmed_of_one_newline() {
    let dir = TempDir::new();
    dir.write("api_key", b"k-123\n", 0o600);
    dir.write("db_password", b"pw with spaces \r\n", 0o400);
    let sources = Sources::new().register("secret_file", SecretFileSource::in_dir(dir.path()));
    let got = FromFiles::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(got.api_key.expose_secret(), "k-123");
    assert_eq!(got.db_password, "pw with spaces ");
    assert_eq!(
        got.optional_token, None,
        "a missing file is an absent value"
    );
    assert_eq!(got.workers, 4, "a missing file takes the fallback");
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct BadFile {
    #[component(secret_file = "port")]
    port: u16,
}

#[tokio::test]
async fn a_secret_file_that_does_not_convert_is_named_and_never_shown() {
    let dir = TempDir::new();
    let path = dir.write("port", b"CANARY-not-a-port\n", 0o600);
    let sources = Sources::new().register("secret_file", SecretFileSource::in_dir(dir.path()));
    let errors = BadFile::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].kind(), ErrorKind::Decode);
    assert!(text.contains("BadFile.port"), "{text}");
    assert!(text.contains("secret_file"), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!text.contains("CANARY"), "the value leaked: {text}");
    assert!(!format!("{errors:?}").contains("CANARY"));
}

/// Set in the child processes of
/// `a_relative_secret_file_resolves_against_the_credentials_directory_or_in_dir`: which
/// check the test makes there.
const CHILD: &str = "CM_TEST_SECRET_FILES_CHILD";

/// Runs this binary's `test` alone in a child process with `env` set (and
/// `$CREDENTIALS_DIRECTORY` only when given) in `cwd`: the library reads
/// `$CREDENTIALS_DIRECTORY` from the process's environment, which a test may not change
/// while others run. Fails unless the child ran exactly that test, and it passed.
fn in_child(test: &str, mode: &str, credentials: Option<&Path>, cwd: &Path) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, mode)
        .env_remove("CREDENTIALS_DIRECTORY")
        .current_dir(cwd);
    if let Some(dir) = credentials {
        child.env("CREDENTIALS_DIRECTORY", dir);
    }
    let out = child.output().expect("the test binary runs again");
    let shown = format!(
        "{mode}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test result: ok. 1 passed"),
        "the child did not run the test: {shown}"
    );
}

#[tokio::test]
async fn a_relative_secret_file_resolves_against_the_credentials_directory_or_in_dir() {
    match std::env::var(CHILD).as_deref() {
        // In a child: `$CREDENTIALS_DIRECTORY` holds the files; `in_dir` still wins.
        Ok("credentials") => {
            let got = FromFiles::fetch_all_components_with(&Sources::new())
                .await
                .unwrap();
            assert_eq!(got.api_key.expose_secret(), "from-credentials");
            assert_eq!(got.db_password, "pw-credentials");
            let other = TempDir::new();
            other.write("api_key", b"from-dir", 0o600);
            other.write("db_password", b"pw", 0o600);
            let sources =
                Sources::new().register("secret_file", SecretFileSource::in_dir(other.path()));
            let got = FromFiles::fetch_all_components_with(&sources)
                .await
                .unwrap();
            assert_eq!(got.api_key.expose_secret(), "from-dir", "in_dir wins");
            return;
        }
        // In a child without `$CREDENTIALS_DIRECTORY`: relative to the working directory,
        // which holds the files.
        Ok("working_dir") => {
            assert!(std::env::var_os("CREDENTIALS_DIRECTORY").is_none());
            let got = FromFiles::fetch_all_components_with(&Sources::new())
                .await
                .unwrap();
            assert_eq!(got.api_key.expose_secret(), "from-cwd");
            return;
        }
        // In a child without `$CREDENTIALS_DIRECTORY`, in a directory without the files:
        // the fields fail, naming the file they looked for.
        Ok("missing") => {
            assert!(std::env::var_os("CREDENTIALS_DIRECTORY").is_none());
            let errors = FromFiles::fetch_all_components_with(&Sources::new())
                .await
                .unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.kind() == ErrorKind::NotFound && e.to_string().contains("api_key")),
                "{errors:?}"
            );
            return;
        }
        Ok(other) => panic!("{CHILD}={other}: no such check"),
        Err(_) => {}
    }

    let dir = TempDir::new();
    dir.write("api_key", b"from-dir", 0o600);
    dir.write("db_password", b"pw", 0o600);
    let sources = Sources::new().register("secret_file", SecretFileSource::in_dir(dir.path()));
    let got = FromFiles::fetch_all_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(got.api_key.expose_secret(), "from-dir");

    // `SecretFileSource::new()` (the built-in one) reads `$CREDENTIALS_DIRECTORY` at fetch
    // time, else the working directory: checked in child processes.
    let test = format!(
        "{}::a_relative_secret_file_resolves_against_the_credentials_directory_or_in_dir",
        module_path!().split_once("::").map_or("", |(_, m)| m)
    );
    let credentials = TempDir::new();
    credentials.write("api_key", b"from-credentials\n", 0o600);
    credentials.write("db_password", b"pw-credentials", 0o600);
    let cwd = TempDir::new();
    cwd.write("api_key", b"from-cwd", 0o600);
    cwd.write("db_password", b"pw", 0o600);
    let empty = TempDir::new();
    in_child(&test, "credentials", Some(credentials.path()), empty.path());
    in_child(&test, "working_dir", None, cwd.path());
    in_child(&test, "missing", None, empty.path());
}

#[tokio::test]
async fn a_world_readable_secret_file_is_read_with_one_warning_naming_the_file() {
    let dir = TempDir::new();
    let path = dir.write("api_key", b"CANARY-warned", 0o644);
    dir.write("db_password", b"pw", 0o600);
    let logs = CapturedLogs::default();
    let _guard = capture(&logs);
    let sources = Sources::new().register("secret_file", SecretFileSource::in_dir(dir.path()));
    for _ in 0..3 {
        let got = FromFiles::fetch_all_components_with(&sources)
            .await
            .unwrap();
        assert_eq!(got.api_key.expose_secret(), "CANARY-warned");
    }
    let text = logs.text();
    if cfg!(unix) {
        let warnings: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("readable by every user"))
            .collect();
        assert_eq!(warnings.len(), 1, "once per file: {text}");
        assert!(warnings[0].contains(&path.display().to_string()), "{text}");
        assert!(warnings[0].contains("0644"), "{text}");
    }
    assert!(!text.contains("CANARY"), "the value leaked into the logs");
}

#[derive(AsyncAssign, Debug)]
#[component(env_prefix = "APP_")]
struct FromEnv {
    #[component(fetch_from = "env")]
    api_key: String,
    #[component(fetch_from = "env")]
    port: u16,
    #[component(fetch_from = "env")]
    region: Option<String>,
}

#[tokio::test]
async fn an_env_field_reads_the_file_named_by_its_file_variable() {
    let dir = TempDir::new();
    let key = dir.write("api_key", b"from-file\n", 0o600);
    let port = dir.write("port", b"8443\n", 0o600);
    let env = EnvSource::from_map([
        ("APP_API_KEY_FILE", key.display().to_string()),
        ("APP_PORT_FILE", port.display().to_string()),
    ]);
    let got = FromEnv::fetch_all_components_with(&Sources::new().with_env(env))
        .await
        .unwrap();
    assert_eq!((got.api_key.as_str(), got.port), ("from-file", 8443));
    assert_eq!(got.region, None);

    // The variable itself wins over its `_FILE`.
    let env = EnvSource::from_map([
        ("APP_API_KEY", "from-variable".to_owned()),
        ("APP_API_KEY_FILE", key.display().to_string()),
        ("APP_PORT", "80".to_owned()),
    ]);
    let got = FromEnv::fetch_all_components_with(&Sources::new().with_env(env))
        .await
        .unwrap();
    assert_eq!(got.api_key, "from-variable");
}

#[tokio::test]
async fn an_env_file_value_is_concealed_in_errors_and_a_missing_file_is_a_config_error() {
    let dir = TempDir::new();
    let port = dir.write("port", b"CANARY-in-file\n", 0o600);
    let env = EnvSource::from_map([
        (
            "APP_API_KEY_FILE",
            dir.path().join("missing").display().to_string(),
        ),
        ("APP_PORT_FILE", port.display().to_string()),
    ]);
    let errors = FromEnv::fetch_all_components_with(&Sources::new().with_env(env))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let key = errors
        .iter()
        .find(|e| e.to_string().contains("api_key"))
        .unwrap();
    assert_eq!(key.kind(), ErrorKind::Config);
    let text = key.to_string();
    assert!(text.contains("APP_API_KEY_FILE"), "{text}");
    assert!(text.contains("missing"), "{text}");
    let port_err = errors
        .iter()
        .find(|e| e.to_string().contains("port"))
        .unwrap();
    assert_eq!(port_err.kind(), ErrorKind::Decode);
    assert!(!port_err.to_string().contains("CANARY"), "{port_err}");

    // The same bad value from the variable itself is shown: concealment follows the file.
    let env = EnvSource::from_map([("APP_API_KEY", "k"), ("APP_PORT", "CANARY-in-variable")]);
    let errors = FromEnv::fetch_all_components_with(&Sources::new().with_env(env))
        .await
        .unwrap_err();
    assert!(
        errors[0].to_string().contains("CANARY-in-variable"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_huge_secret_file_is_refused_without_being_read() {
    let dir = TempDir::new();
    dir.write("api_key", &vec![b'x'; 2 * 1024 * 1024], 0o600);
    dir.write("db_password", b"pw", 0o600);
    let sources = Sources::new().register("secret_file", SecretFileSource::in_dir(dir.path()));
    let errors = FromFiles::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].kind(), ErrorKind::TooLarge);
    assert!(errors[0].to_string().contains("api_key"), "{}", errors[0]);
}

#[test]
fn sources_list_the_secret_file_source_with_its_file() {
    let sources = Sources::new();
    assert!(sources.contains("secret_file"));
    let listed = FromFiles::component_sources_with(&sources);
    let api = listed.iter().find(|s| s.path.ends_with("api_key")).unwrap();
    assert_eq!(api.spec.source, "secret_file");
    assert_eq!(api.key_label, "file");
    assert!(
        api.key.as_deref().unwrap_or_default().ends_with("api_key"),
        "{api:?}"
    );
}
