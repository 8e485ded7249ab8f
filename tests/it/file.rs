//! The `file` source: TOML, JSON, YAML and text files, selected with `pointer`; errors
//! that name the file; and a `Live` that sees edits, atomic renames and Kubernetes
//! ConfigMap `..data` swaps.

use std::path::{Path, PathBuf};
use std::time::Duration;

use component_model::{AsyncAssign, ConfigUpdate, ErrorKind, FileSource, Live, Sources};
use component_model_tests::unique;
use futures::StreamExt;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("cm_files"));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Formats {
    #[component(fetch_from = "file", path = "app.toml", pointer = "/server/port")]
    port: u16,
    #[component(fetch_from = "file", path = "app.toml", pointer = "/server/hosts")]
    hosts: Vec<String>,
    #[component(fetch_from = "file", path = "limits.json", field = "burst")]
    burst: u32,
    #[component(fetch_from = "file", path = "flags.yaml", pointer = "/beta/enabled")]
    beta: bool,
    #[component(fetch_from = "file", path = "motd.txt")]
    motd: String,
}

fn sources(dir: &Path) -> Sources {
    Sources::new().register("file", FileSource::new().with_base_dir(dir))
}

#[tokio::test]
async fn toml_json_yaml_and_text_files_are_read_once_each() {
    let dir = TempDir::new();
    dir.write(
        "app.toml",
        "[server]\nport = 8080\nhosts = [\"a\", \"b\"]\n",
    );
    dir.write("limits.json", r#"{"burst": 50}"#);
    dir.write("flags.yaml", "beta:\n  enabled: true\n");
    dir.write("motd.txt", "hello");
    let f = Formats::fetch_all_components_with(&sources(&dir.0))
        .await
        .unwrap();
    assert_eq!(
        (f.port, f.hosts.len(), f.burst, f.beta, f.motd.as_str()),
        (8080, 2, 50, true, "hello")
    );
}

#[tokio::test]
async fn missing_and_broken_files_are_errors_naming_the_file() {
    let dir = TempDir::new();
    dir.write("app.toml", "[server\nport = 8080\n");
    dir.write("limits.json", r#"{"other": 1}"#);
    dir.write("flags.yaml", "beta: [unclosed\n");
    let errors = Formats::fetch_all_components_with(&sources(&dir.0))
        .await
        .unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 5, "{text:#?}");
    assert_eq!(errors[0].kind(), ErrorKind::Decode);
    assert!(
        text[0].contains("app.toml is not valid TOML"),
        "{}",
        text[0]
    );
    assert!(
        text[0].starts_with("Formats.port: file path `"),
        "{}",
        text[0]
    );
    assert_eq!(errors[2].kind(), ErrorKind::NotFound, "{}", text[2]);
    assert!(
        text[3].contains("flags.yaml is not valid YAML"),
        "{}",
        text[3]
    );
    assert_eq!(errors[4].kind(), ErrorKind::NotFound);
    assert!(text[4].contains("motd.txt"), "{}", text[4]);
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct Watched {
    #[component(fetch_from = "file", path = "live.toml", pointer = "/level")]
    level: String,
}

async fn next(updates: &mut component_model::ConfigUpdates) -> ConfigUpdate {
    tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("an update within 5 s")
        .expect("the stream goes on")
}

#[tokio::test]
async fn a_live_file_sees_edits_and_atomic_renames() {
    let dir = TempDir::new();
    dir.write("live.toml", "level = \"info\"\n");
    let sources = sources(&dir.0);
    let live = Live::<Watched>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(100)).await;

    dir.write("live.toml", "level = \"debug\"\n"); // in place
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().level, "debug");

    // vim / `sed -i`: a new file renamed over the old one.
    dir.write(".live.toml.swp", "level = \"warn\"\n");
    std::fs::rename(dir.0.join(".live.toml.swp"), dir.0.join("live.toml")).unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().level, "warn");
}

#[cfg(unix)]
#[tokio::test]
async fn a_kubernetes_configmap_swap_is_seen() {
    use std::os::unix::fs::symlink;
    // A ConfigMap volume: live.toml -> ..data/live.toml, ..data -> ..2026_v1 (swapped).
    let dir = TempDir::new();
    std::fs::create_dir(dir.0.join("..v1")).unwrap();
    std::fs::write(dir.0.join("..v1/live.toml"), "level = \"info\"\n").unwrap();
    symlink("..v1", dir.0.join("..data")).unwrap();
    symlink("..data/live.toml", dir.0.join("live.toml")).unwrap();
    let sources = sources(&dir.0);
    let live = Live::<Watched>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(100)).await;

    std::fs::create_dir(dir.0.join("..v2")).unwrap();
    std::fs::write(dir.0.join("..v2/live.toml"), "level = \"error\"\n").unwrap();
    symlink("..v2", dir.0.join("..data_tmp")).unwrap();
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
    assert!(matches!(
        next(&mut updates).await,
        ConfigUpdate::Applied { .. }
    ));
    assert_eq!(live.get().level, "error");
}

#[derive(AsyncAssign, Debug)]
#[component(watch)]
#[allow(dead_code)]
struct TwoOfOne {
    #[component(fetch_from = "file", path = "two.json", pointer = "/a")]
    a: u32,
    #[component(fetch_from = "file", path = "two.json", pointer = "/b")]
    b: u32,
}

#[tokio::test]
async fn two_fields_of_one_file_are_diffed_apart() {
    let dir = TempDir::new();
    dir.write("two.json", r#"{"a": 1, "b": 2}"#);
    let sources = sources(&dir.0);
    let live = Live::<TwoOfOne>::builder(&sources)
        .quiescence(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let mut updates = live.changes();
    tokio::time::sleep(Duration::from_millis(100)).await;
    dir.write("two.json", r#"{"a": 1, "b": 3}"#);
    match next(&mut updates).await {
        ConfigUpdate::Applied { fields, .. } => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].field, "TwoOfOne.b");
            assert_eq!(
                (fields[0].old.as_deref(), fields[0].new.as_deref()),
                (Some("2"), Some("3"))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Secrets {
    #[component(
        fetch_from = "file",
        path = "secrets.toml",
        pointer = "/db/password",
        secret
    )]
    password: component_model::SecretString,
}

#[tokio::test]
async fn a_broken_toml_file_is_reported_without_its_content() {
    let dir = TempDir::new();
    dir.write("secrets.toml", "[db]\npassword = \"canary-77 \n");
    let e = Secrets::fetch_all_components_with(&sources(&dir.0))
        .await
        .unwrap_err();
    let text = format!("{} {:?}", e[0], e[0]);
    assert!(text.contains("secrets.toml is not valid TOML"), "{text}");
    assert!(text.contains("line 2"), "{text}");
    assert!(!text.contains("canary"), "{text}");
}
