//! Describing and checking a configuration (issue 35) without a server: the config doc of
//! a nested struct with precedence sources, a secret and rules (snapshot); the TOML/YAML/
//! JSON templates read back through the file source give the defaults; the JSON Schema
//! accepts a good file and refuses a bad one; preflight of env and file sources, of a
//! source that never answers (bounded by the struct's timeout), of typed fetchers and
//! referencing fields. The server cases are in `preflight_servers.rs`,
//! `preflight_stores.rs` and `preflight_vault_consul.rs`.

use std::time::{Duration, Instant};

use component_model::{
    Access, AsyncAssign, EnvSource, FetchRequest, FileSource, Preflighting, Probe, RawValue,
    Source, SourceError, SourceRole, Sources, async_trait,
};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cm-doc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The log level, as `tracing` names it.
#[derive(Debug, PartialEq, Clone, Copy, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

/// A service's configuration: env over the profile's file over the defaults file.
#[derive(AsyncAssign, Debug, PartialEq)]
#[component(
    env_prefix = "APP_",
    overrides = ["env"],
    defaults = ["file@{@profile}.toml", "file@app.toml"],
    profile_env = "APP_PROFILE"
)]
struct App {
    /// The port the service listens on.
    #[component(fallback = "8080", validate(range(min = 1, max = 65535)))]
    port: u16,
    /// The host name it announces.
    /// Must be a DNS name.
    #[component(fallback = "localhost", validate(len(min = 1, max = 253)))]
    host: String,
    /// How much it logs.
    #[component(fallback = "info")]
    level: Level,
    /// The API token.
    #[component(secret, fallback = "not-a-real-token")]
    token: String,
    /// Extra tags, if any.
    tags: Option<Vec<String>>,
    #[component(nested)]
    db: Db,
}

/// The database.
#[derive(AsyncAssign, Debug, PartialEq, Default)]
#[component(
    overrides = ["env"],
    defaults = ["file@{@profile}.toml", "file@app.toml"]
)]
struct Db {
    /// Where the database listens.
    #[component(fallback = "postgres://localhost/app", validate(url))]
    url: String,
    /// How many connections the pool keeps.
    #[component(fallback = "10", validate(range(min = 1, max = 500)))]
    pool: u32,
}

fn doc_sources() -> Sources {
    Sources::new()
        .register("file", FileSource::new())
        .with_env(EnvSource::from_map([("APP_PROFILE", "prod")]))
}

#[test]
fn the_doc_of_a_nested_struct_shows_sources_rules_secrets_and_docs() {
    let doc = App::config_doc_with(&doc_sources());
    insta::assert_snapshot!("config_doc_table", doc.to_string());
    insta::assert_snapshot!("config_doc_markdown", doc.to_markdown());

    let port = doc.field("port").unwrap();
    let sources: Vec<(&str, SourceRole, Option<&str>)> = port
        .sources
        .iter()
        .map(|s| (s.source.as_str(), s.role, s.key.as_deref()))
        .collect();
    assert_eq!(
        sources,
        [
            ("env", SourceRole::Override, Some("APP_PORT")),
            (
                "file@{@profile}.toml",
                SourceRole::Default,
                Some("prod.toml#/port")
            ),
            ("file@app.toml", SourceRole::Default, Some("app.toml#/port")),
        ],
        "precedence order, the convention keys resolved, the profile as written"
    );
    assert_eq!(port.rules, ["range 1..=65535"]);
    let db_url = doc.field("db.url").unwrap();
    assert_eq!(db_url.sources[0].key.as_deref(), Some("APP_DB_URL"));
    assert_eq!(db_url.sources[2].pointer.as_deref(), Some("/db/url"));
    let token = doc.field("token").unwrap();
    assert!(token.secret);
    assert_eq!(
        token.fallback, None,
        "a secret's fallback literal is not shown"
    );
    assert!(doc.field("tags").unwrap().optional);
    for text in [
        doc.to_string(),
        doc.to_markdown(),
        doc.toml_template(),
        doc.yaml_template(),
        doc.json_template(),
        doc.json_schema().to_string(),
    ] {
        assert!(
            !text.contains("not-a-real-token"),
            "a secret's literal leaked:\n{text}"
        );
    }
}

/// The template, written where the defaults file is read, gives every default back.
async fn reads_back(file: &str, template: String) {
    let d = dir(file);
    std::fs::write(d.join("app.toml"), "").unwrap();
    std::fs::write(d.join(file), template.clone()).unwrap();
    #[derive(AsyncAssign, Debug, PartialEq)]
    #[component(defaults = ["file@${DOC_TEMPLATE}"])]
    struct Read {
        port: u16,
        host: String,
        level: Level,
        #[component(nested)]
        db: ReadDb,
    }
    #[derive(AsyncAssign, Debug, PartialEq, Default)]
    #[component(defaults = ["file@${DOC_TEMPLATE}"])]
    struct ReadDb {
        url: String,
        pool: u32,
    }
    let sources = Sources::new()
        .register("file", FileSource::new().with_base_dir(&d))
        .with_env(EnvSource::from_map([("DOC_TEMPLATE", file)]));
    let read = Read::fetch_all_components_with(&sources)
        .await
        .unwrap_or_else(|e| panic!("{file} does not read back: {e:?}\n{template}"));
    assert_eq!(
        read,
        Read {
            port: 8080,
            host: "localhost".into(),
            level: Level::Info,
            db: ReadDb {
                url: "postgres://localhost/app".into(),
                pool: 10
            },
        }
    );
    let _ = std::fs::remove_dir_all(d);
}

#[tokio::test]
async fn the_templates_read_back_through_the_file_source_as_the_defaults() {
    let doc = App::config_doc_with(&doc_sources());
    let toml = doc.toml_template();
    insta::assert_snapshot!("toml_template", toml);
    assert!(!toml.contains("token"), "no secret in a template");
    reads_back("t.toml", toml).await;
    reads_back("t.yaml", doc.yaml_template()).await;
    reads_back("t.json", doc.json_template()).await;
}

#[test]
fn the_schema_accepts_a_good_file_and_refuses_a_bad_one() {
    let doc = App::config_doc_with(&doc_sources());
    let schema = doc.json_schema();
    assert_eq!(schema["properties"]["token"]["writeOnly"], true);
    assert_eq!(
        schema["properties"]["port"]["description"],
        "The port the service listens on."
    );
    assert_eq!(
        schema["properties"]["db"]["properties"]["pool"]["maximum"],
        500
    );
    let validator = jsonschema::draft202012::new(&schema).expect("a valid 2020-12 schema");
    let good = serde_json::json!({
        "port": 8443, "host": "api.example.com", "level": "warn", "token": "t",
        "tags": ["a"], "db": {"url": "postgres://db/app", "pool": 20}
    });
    let errors: Vec<String> = validator
        .iter_errors(&good)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "a good file refused: {errors:?}");
    for (bad, why) in [
        (
            serde_json::json!({"port": "eighty"}),
            "a port that is not a number",
        ),
        (serde_json::json!({"port": 70000}), "a port out of range"),
        (
            serde_json::json!({"level": "loud"}),
            "a level the enum (its own JsonSchema) does not have",
        ),
        (
            serde_json::json!({"db": {"pool": 0}}),
            "a pool below the rule's minimum",
        ),
        (serde_json::json!({"prot": 80}), "a typo"),
        (serde_json::json!({"host": ""}), "an empty host (len 1..)"),
    ] {
        assert!(!validator.is_valid(&bad), "{why} accepted: {bad}");
    }
    // The template itself is a good file.
    let from_toml: serde_json::Value =
        serde_json::to_value(toml_like(&doc.json_template())).unwrap();
    assert!(validator.is_valid(&from_toml));
}

fn toml_like(json: &str) -> serde_json::Value {
    serde_json::from_str(json).unwrap()
}

#[tokio::test]
async fn preflight_of_env_and_files_says_what_is_there() {
    let d = dir("pf");
    std::fs::write(d.join("app.toml"), "port = 9000\n[db]\npool = 3\n").unwrap();
    let sources = Sources::new()
        .register("file", FileSource::new().with_base_dir(&d))
        .with_env(EnvSource::from_map([
            ("APP_PROFILE", "prod"),
            ("APP_HOST", "example.com"),
        ]));
    let report = App::preflight_with(&sources).await;
    let access = |path: &str, source: &str| {
        report
            .rows_of(path)
            .find(|r| r.source == source)
            .unwrap_or_else(|| panic!("no row {path} {source}:\n{report}"))
            .access
    };
    assert_eq!(access("host", "env"), Access::Readable);
    assert_eq!(access("port", "env"), Access::Missing);
    assert_eq!(
        access("port", "file@app.toml"),
        Access::Readable,
        "{report}"
    );
    assert_eq!(
        access("db.url", "file@app.toml"),
        Access::Missing,
        "{report}"
    );
    assert_eq!(
        access("port", "file@prod.toml"),
        Access::Missing,
        "no prod.toml: {report}"
    );
    assert!(
        report.is_ok(),
        "every field has a source or a default:\n{report}"
    );
    let text = report.to_string();
    assert!(text.starts_with("App: "), "{text}");
    assert!(text.contains("ACCESS"), "{text}");
    let _ = std::fs::remove_dir_all(d);
}

/// A source that accepts a check and never answers it.
struct Silent;

#[async_trait]
impl Source for Silent {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        futures::future::pending().await
    }
    fn preflight(&self, _: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(futures::future::pending())
    }
}

/// A source that checks without reading: it knows the key `ok`, is denied `secret`.
struct Checked;

#[async_trait]
impl Source for Checked {
    async fn fetch(&self, _: &FetchRequest) -> Result<RawValue, SourceError> {
        panic!("a preflight must not fetch")
    }
    fn preflight(&self, requests: Vec<FetchRequest>) -> Preflighting<'_> {
        Box::pin(async move {
            requests
                .iter()
                .map(|r| match r.key() {
                    Some("ok") => Probe::readable().with_detail("checked"),
                    Some("secret") => Probe::new(Access::Denied).with_detail("policy says no"),
                    _ => Probe::missing(),
                })
                .collect()
        })
    }
}

#[derive(AsyncAssign, Debug, Default)]
#[component(timeout = "300ms")]
#[allow(dead_code)] // only checked
struct Slow {
    #[component(fetch_from = "silent", key = "a")]
    a: String,
    #[component(fetch_from = "checked", key = "ok")]
    b: String,
    #[component(fetch_from = "checked", key = "secret")]
    c: String,
    #[component(fetch_from = "checked", key = "gone")]
    d: String,
    #[component(fetch_from = "checked", key = "gone", fallback = "x")]
    e: String,
    #[component(fetcher = || Ok::<_, std::io::Error>(String::from("f")))]
    f: String,
    #[component(fetch_from = "checked", key = "{b}/child")]
    g: String,
    #[component(fetch_from = "nowhere", key = "z")]
    h: String,
}

#[tokio::test]
async fn preflight_is_bounded_by_the_timeout_and_says_every_row() {
    let sources = Sources::new()
        .register("silent", Silent)
        .register("checked", Checked);
    let started = Instant::now();
    let report = Slow::preflight_with(&sources).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let row = |path: &str| {
        report
            .rows_of(path)
            .next()
            .unwrap_or_else(|| panic!("{path}:\n{report}"))
    };
    assert_eq!(row("a").access, Access::Unreachable, "{report}");
    assert!(
        row("a")
            .detail
            .as_deref()
            .unwrap()
            .contains("no answer within"),
        "{report}"
    );
    assert_eq!(row("b").access, Access::Readable);
    assert_eq!(row("b").detail.as_deref(), Some("checked"));
    assert_eq!(row("c").access, Access::Denied);
    assert_eq!(row("d").access, Access::Missing);
    assert_eq!(row("e").access, Access::Missing);
    assert_eq!(
        row("f").access,
        Access::Unchecked,
        "a typed fetcher is not called"
    );
    assert_eq!(
        row("g").access,
        Access::Unchecked,
        "a key from another field"
    );
    assert_eq!(row("h").access, Access::Invalid, "no source named nowhere");
    let problems: Vec<&str> = report.problems().map(|r| r.path.as_str()).collect();
    assert_eq!(
        problems,
        ["Slow.a", "Slow.c", "Slow.d", "Slow.h"],
        "{report}"
    );
    assert!(!report.is_ok());
    assert_eq!(report.exit_code(), std::process::ExitCode::FAILURE);
}

#[derive(AsyncAssign, Debug, Default)]
#[allow(dead_code)] // only described
struct Templated {
    /// The region.
    #[component(fetch_from = "env", key = "REGION")]
    region: String,
    /// Read at a key that names the region.
    #[component(fetch_from = "env", key = "PORT_{region}")]
    port: u16,
    /// Read at a key a variable names.
    #[component(fetch_from = "env", key = "${DOC_HOST_VAR}")]
    host: String,
    #[component(fetch_from = "env", key = "PLAIN", fallback_to = "backup")]
    plain: String,
}

#[test]
fn references_and_variables_are_shown_as_written_and_fallback_to_is_listed() {
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("DOC_HOST_VAR", "HOST_NAME")]))
        .register("backup", EnvSource::from_map([("PLAIN", "x")]));
    let doc = Templated::config_doc_with(&sources);
    let key = |path: &str| doc.field(path).unwrap().sources[0].key.clone();
    assert_eq!(key("region").as_deref(), Some("REGION"));
    assert_eq!(key("port").as_deref(), Some("PORT_{region}"));
    assert_eq!(key("host").as_deref(), Some("${DOC_HOST_VAR}"));
    let plain = &doc.field("plain").unwrap().sources;
    assert_eq!(plain.len(), 2);
    assert_eq!(
        (plain[1].source.as_str(), plain[1].role),
        ("backup", SourceRole::FallbackTo)
    );
    assert_eq!(plain[1].key.as_deref(), Some("PLAIN"));
    // The doc as a table names each field once, with its doc comment below.
    let text = doc.to_string();
    assert!(
        text.contains("port: Read at a key that names the region."),
        "{text}"
    );
    assert!(text.contains("fallback_to backup PLAIN"), "{text}");
}

/// What a user's review found (issue 35): optional parts, odd literals, secrets in
/// `Debug`, rules on maps and optional sequences.
mod edges {
    use std::collections::HashMap;

    use component_model::{AsyncAssign, EnvSource, FileSource, SecretString, Sources};

    #[derive(AsyncAssign, Debug, PartialEq, Default)]
    #[component(defaults = ["file@${EDGE_FILE}"])]
    pub struct Extra {
        pub z: u16,
    }

    #[derive(AsyncAssign, Debug)]
    #[component(defaults = ["file@${EDGE_FILE}"])]
    #[allow(dead_code)] // only described
    pub struct Edges {
        #[component(fallback = "1")]
        pub a: u16,
        /// Absent, it is `None` whatever its fallback.
        #[component(fallback = "7")]
        pub maybe: Option<u16>,
        #[component(nested)]
        pub extra: Option<Extra>,
        #[component(fallback = "x\u{7f}y\u{2028}z")]
        pub odd: String,
        #[component(secret, fallback = "edge-secret-1")]
        pub token: String,
        #[component(fallback = "edge-secret-2")]
        pub key: SecretString,
        #[component(validate(len(min = 1, max = 3)))]
        pub map: HashMap<String, u16>,
        #[component(validate(non_empty))]
        pub list: Option<Vec<u16>>,
        #[component(validate(one_of = ["a", "b"]))]
        pub pick: Option<String>,
    }

    #[tokio::test]
    async fn optional_parts_odd_literals_and_rules_on_maps() {
        let dir = super::dir("edges");
        let sources = |file: &str| {
            Sources::new()
                .register("file", FileSource::new().with_base_dir(&dir))
                .with_env(EnvSource::from_map([("EDGE_FILE", file.to_owned())]))
        };
        // Without a `file` source registered the template has the same shape.
        let unregistered = Edges::config_doc_with(&Sources::new());
        assert!(
            unregistered.toml_template().contains("\na = 1\n"),
            "{}",
            unregistered.toml_template()
        );
        assert!(
            unregistered
                .to_string()
                .contains("problem: a from file@${EDGE_FILE}"),
            "{unregistered}"
        );

        let doc = Edges::config_doc_with(&sources("t.toml"));
        let toml = doc.toml_template();
        assert!(
            toml.contains("# maybe = 0\n"),
            "an Option's fallback is not a default:\n{toml}"
        );
        assert!(
            toml.contains("# z = 0\n"),
            "a field of an Option<Nested> neither:\n{toml}"
        );
        for (name, text) in [
            ("t.toml", toml),
            ("t.yaml", doc.yaml_template()),
            ("t.json", doc.json_template()),
        ] {
            std::fs::write(dir.join(name), &text).unwrap();
            let back = Back::fetch_all_components_with(&sources(name))
                .await
                .unwrap_or_else(|e| panic!("{name} does not read back: {e:?}\n{text}"));
            assert_eq!(
                back,
                Back {
                    a: 1,
                    maybe: None,
                    extra: None,
                    odd: "x\u{7f}y\u{2028}z".into()
                },
                "{name}:\n{text}"
            );
        }
        let debug = format!("{doc:?}");
        for secret in ["edge-secret-1", "edge-secret-2"] {
            assert!(!debug.contains(secret), "{secret} in the doc's Debug");
            assert!(!doc.to_string().contains(secret));
            assert!(!doc.toml_template().contains(secret));
        }
        let schema = doc.json_schema();
        let v = jsonschema::draft202012::new(&schema).unwrap();
        assert!(
            !v.is_valid(&serde_json::json!({"map": {}})),
            "len 1.. on a map"
        );
        assert!(!v.is_valid(&serde_json::json!({"map": {"a": 1, "b": 2, "c": 3, "d": 4}})));
        assert!(v.is_valid(&serde_json::json!({"map": {"a": 1}})));
        assert!(
            !v.is_valid(&serde_json::json!({"list": []})),
            "non_empty on Option<Vec>"
        );
        assert!(v.is_valid(&serde_json::json!({"pick": null, "list": null})));
        assert!(!v.is_valid(&serde_json::json!({"pick": "c"})));
        assert!(schema["properties"]["maybe"].get("default").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The fields of [`Edges`] a template sets or leaves out, read back.
    #[derive(AsyncAssign, Debug, PartialEq)]
    #[component(defaults = ["file@${EDGE_FILE}"])]
    pub struct Back {
        pub a: u16,
        pub maybe: Option<u16>,
        #[component(nested)]
        pub extra: Option<Extra>,
        pub odd: String,
    }

    #[derive(AsyncAssign, Debug, Default)]
    pub struct Inner {
        #[component(fetch_from = "env", key = "EDGE_MZ")]
        pub z: u16,
    }

    #[derive(AsyncAssign, Debug)]
    pub struct WithOptional {
        #[component(fetch_from = "env", key = "EDGE_A", fallback = "1")]
        pub a: u16,
        #[component(nested)]
        pub maybe: Option<Inner>,
    }

    #[tokio::test]
    async fn a_missing_field_of_an_optional_nested_struct_is_no_problem() {
        let sources = Sources::new().with_env(EnvSource::from_map([("UNRELATED", "1")]));
        let fetched = WithOptional::fetch_all_components_with(&sources)
            .await
            .unwrap();
        assert!(fetched.maybe.is_none());
        let report = WithOptional::preflight_with(&sources).await;
        assert!(
            report.is_ok(),
            "the fetch succeeds, so must the preflight:\n{report}"
        );
        assert_eq!(
            report.rows_of("maybe.z").next().unwrap().access,
            component_model::Access::Missing
        );
    }
}
