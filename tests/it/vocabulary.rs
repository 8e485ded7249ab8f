//! The open attribute vocabulary: a `name = <literal>` the derive does not know is a
//! parameter of the field's source, kept by name in its `FieldSpec` and handed to the
//! source's request (`FetchRequest::param`), `${VAR}` resolved.

use std::sync::{Arc, Mutex};

use component_model::{
    AsyncAssign, EnvSource, FetchRequest, FieldSpec, RawValue, Source, SourceError, Sources,
    async_trait,
};

/// A registered source (no compile-time rules: any key reaches it) that answers with the
/// parameters it was asked for, and keeps every request.
#[derive(Default, Clone)]
struct Echo {
    seen: Arc<Mutex<Vec<FetchRequest>>>,
}

#[async_trait]
impl Source for Echo {
    async fn fetch(&self, request: &FetchRequest) -> Result<RawValue, SourceError> {
        self.seen.lock().unwrap().push(request.clone());
        let bucket = request.param("bucket").unwrap_or("-");
        let revision = request.param("revision").unwrap_or("-");
        Ok(RawValue::Text(format!("{bucket}@{revision}")))
    }
}

#[derive(AsyncAssign, Debug)]
struct Flags {
    #[component(
        fetch_from = "kv",
        key = "flags",
        bucket = "${TEAM:-core}-config",
        revision = 7
    )]
    flags: String,
    #[component(fetch_from = "kv", key = "flags", bucket = "other")]
    other: String,
    // A keyword is a key like any other (a backend could read `type`).
    #[component(fetch_from = "kv", key = "flags", type = "json", revision = 2)]
    typed: String,
    #[component(
        fetch_from = "kv",
        key = "flags",
        bucket = "other",
        dc = "eu1",
        live = true
    )]
    with_dc: String,
}

#[tokio::test]
async fn unknown_keys_reach_the_request_by_name_with_placeholders_resolved() {
    let echo = Echo::default();
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("TEAM", "payments")]))
        .register("kv", echo.clone());
    let flags = Flags::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(flags.flags, "payments-config@7");
    assert_eq!(flags.other, "other@-");
    assert_eq!(flags.with_dc, "other@-");
    assert_eq!(flags.typed, "-@2");

    let seen = echo.seen.lock().unwrap();
    let with_dc = seen
        .iter()
        .find(|r| r.field() == "with_dc")
        .expect("with_dc was asked for");
    // A parameter with an accessor of its own reads the same either way; a boolean
    // reads as its text; `dc` keeps its text (never resolved).
    assert_eq!(with_dc.dc(), Some("eu1"));
    assert_eq!(with_dc.param("dc"), Some("eu1"));
    assert_eq!(with_dc.param("live"), Some("true"));
    assert_eq!(with_dc.param("key"), Some("flags"));
    let typed = seen.iter().find(|r| r.field() == "typed").unwrap();
    assert_eq!(typed.param("type"), Some("json"));
    // Parameters are the request's identity: `other` and `with_dc` differ only by theirs.
    let other = seen.iter().find(|r| r.field() == "other").unwrap();
    assert_ne!(other, with_dc);
    assert_eq!(
        other,
        &FetchRequest::for_key("kv", "flags").with_param("bucket", "other")
    );
}

#[test]
#[allow(deprecated)] // the fields kept for readers of `component_sources()`
fn component_sources_show_parameters_by_name_and_in_the_old_fields() {
    let specs: &[&FieldSpec] = Flags::component_sources();
    let with_dc = specs.iter().find(|s| s.field == "with_dc").unwrap();
    assert_eq!(
        with_dc.params,
        &[("bucket", "other"), ("dc", "eu1"), ("live", "true")]
    );
    assert_eq!(with_dc.param("bucket"), Some("other"));
    assert_eq!(with_dc.param("dc"), Some("eu1"));
    assert_eq!(with_dc.dc, Some("eu1"), "the deprecated field is still set");
    assert_eq!(with_dc.param("key"), Some("flags"));
    assert_eq!(with_dc.param("absent"), None);
    let flags = specs.iter().find(|s| s.field == "flags").unwrap();
    assert_eq!(flags.param("revision"), Some("7"));
    assert_eq!(
        flags.param("bucket"),
        Some("${TEAM:-core}-config"),
        "as written"
    );
}

#[derive(AsyncAssign, Debug)]
#[allow(dead_code)]
struct Legacy {
    #[component(fetch_from = "vault", secret = "app/db", mount = "kv", kv_version = 1)]
    password: String,
    #[component(fetch_from = "database", table = "settings", key = "port")]
    port: u16,
}

#[test]
#[allow(deprecated)]
fn the_first_backends_keys_are_parameters_too() {
    let specs = Legacy::component_sources();
    let (password, port) = (specs[0], specs[1]);
    assert_eq!(password.param("secret"), Some("app/db"));
    assert_eq!(password.param("mount"), Some("kv"));
    assert_eq!(password.param("kv_version"), Some("1"));
    assert_eq!(
        (password.secret_path, password.mount, password.kv_version),
        (Some("app/db"), Some("kv"), Some(1))
    );
    assert!(
        password.sensitive,
        "`secret = \"path\"` still marks the value secret"
    );
    assert_eq!(
        (port.param("table"), port.table),
        (Some("settings"), Some("settings"))
    );

    let request = FetchRequest::new(password);
    assert_eq!(request.secret_path(), Some("app/db"));
    assert_eq!(request.mount(), Some("kv"));
    assert_eq!(request.kv_version(), Some(1));
    assert_eq!(request.param("kv_version"), Some("1"));
    // Built in code with the old methods, it is the same request.
    assert_eq!(
        request,
        FetchRequest::for_source("vault")
            .with_secret_path("app/db")
            .with_mount("kv")
            .with_kv_version(1)
    );
}

/// One new key end to end: `version = N` on a `vault` field reads that version of a KV v2
/// secret (the backend declares the key in its rules and reads `request.param("version")`).
#[derive(AsyncAssign, Debug)]
struct Pinned {
    #[component(
        fetch_from = "vault",
        secret = "app/db",
        field = "password",
        version = 1
    )]
    first: String,
    #[component(
        fetch_from = "vault",
        secret = "app/db",
        field = "password",
        version = "${DB_VERSION}"
    )]
    second: String,
    #[component(fetch_from = "vault", secret = "app/db", field = "password")]
    current: String,
}

#[tokio::test]
async fn vault_reads_the_version_a_field_names() {
    use component_model::VaultSource;
    use component_model::test_util::VaultDouble;

    let vault = VaultDouble::start().await;
    for pw in ["pw-1", "pw-2", "pw-3"] {
        vault.put("secret", "app/db", serde_json::json!({ "password": pw }));
    }
    let sources = Sources::new()
        .with_env(EnvSource::from_map([("DB_VERSION", "2")]))
        .register("vault", VaultSource::new(vault.url()).with_token("root"));
    let pinned = Pinned::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        (
            pinned.first.as_str(),
            pinned.second.as_str(),
            pinned.current.as_str()
        ),
        ("pw-1", "pw-2", "pw-3")
    );
    // One read per version, each with its `?version=`; the current one without.
    let mut versions: Vec<Option<String>> = vault
        .requests_to("/v1/secret/data/app/db")
        .into_iter()
        .map(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "version")
                .map(|(_, v)| v.clone())
        })
        .collect();
    versions.sort();
    assert_eq!(versions, [None, Some("1".to_owned()), Some("2".to_owned())]);

    // A version that does not exist is not found (with its version in the message); a
    // version on a KV v1 mount is a configuration error.
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Missing {
        #[component(
            fetch_from = "vault",
            secret = "app/db",
            field = "password",
            version = 9
        )]
        ninth: String,
    }
    let err = Missing::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(err.len(), 1);
    assert_eq!(
        err[0].kind(),
        component_model::ErrorKind::NotFound,
        "{}",
        err[0]
    );
    assert!(err[0].to_string().contains("version=9"), "{}", err[0]);

    let v1 = VaultDouble::builder().kv_v1("kv").start().await;
    v1.put("kv", "app/db", serde_json::json!({ "password": "old" }));
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct OnV1 {
        #[component(
            fetch_from = "vault",
            secret = "app/db",
            mount = "kv",
            kv_version = 1,
            version = 1
        )]
        password: String,
    }
    let sources = Sources::new().register("vault", VaultSource::new(v1.url()).with_token("root"));
    let err = OnV1::fetch_all_components_with(&sources).await.unwrap_err();
    assert_eq!(
        err[0].kind(),
        component_model::ErrorKind::Config,
        "{}",
        err[0]
    );
    assert!(err[0].to_string().contains("KV v1"), "{}", err[0]);
}
