//! Validation on every fetch: field rules, struct rules, async rules run concurrently,
//! every message at once (issue 32).

use std::time::{Duration, Instant};

use component_model::{
    AsyncAssign, ComponentError, EnvSource, ErrorKind, Outcome, SecretString, Sources, Violations,
};

fn env(pairs: &[(&str, &str)]) -> Sources {
    Sources::new().with_env(EnvSource::from_map(pairs.iter().copied()))
}

fn kinds(errors: &[ComponentError]) -> Vec<ErrorKind> {
    errors.iter().map(ComponentError::kind).collect()
}

async fn slow_ok(_: &String) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

async fn not_taken(name: &String) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    if name == "admin" {
        Err(format!("the name `{name}` is taken"))
    } else {
        Ok(())
    }
}

fn even(n: &u32) -> Result<(), &'static str> {
    if n.is_multiple_of(2) {
        Ok(())
    } else {
        Err("must be even")
    }
}

#[derive(AsyncAssign, Debug, Default)]
struct Rules {
    #[component(
        fetch_from = "env",
        key = "V_PORT",
        validate(range(min = 1, max = 65535))
    )]
    port: u32,
    #[component(
        fetch_from = "env",
        key = "V_REGION",
        validate(pattern = "^[a-z]+-[0-9]$")
    )]
    region: String,
    #[component(fetch_from = "env", key = "V_USER", validate(with_async = not_taken))]
    user: String,
    #[component(fetch_from = "env", key = "V_MISSING")]
    missing: String,
}

#[tokio::test]
async fn three_failed_rules_and_a_failed_fetch_in_one_err() {
    let sources = env(&[
        ("V_PORT", "70000"),
        ("V_REGION", "EU_1"),
        ("V_USER", "admin"),
    ]);
    let errors = Rules::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    let mut k = kinds(&errors);
    k.sort_by_key(|k| k.as_str());
    assert_eq!(
        kinds(&errors)
            .iter()
            .filter(|k| **k == ErrorKind::Invalid)
            .count(),
        3,
        "{errors:#?}"
    );
    assert!(k.contains(&ErrorKind::NotFound));
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let port = text.iter().find(|t| t.contains("Rules.port")).unwrap();
    assert!(port.contains("env variable `V_PORT`"), "{port}");
    assert!(port.contains("range 1..=65535"), "{port}");
    assert!(port.contains("70000"), "{port}");
    let port_err = errors
        .iter()
        .find(|e| e.field_name() == Some("port"))
        .unwrap();
    assert_eq!(port_err.rule(), Some("range 1..=65535"));
    let region = text.iter().find(|t| t.contains("Rules.region")).unwrap();
    assert!(region.contains("`EU_1` does not match"), "{region}");
    let user = text.iter().find(|t| t.contains("Rules.user")).unwrap();
    assert!(
        user.contains("with_async not_taken") && user.contains("is taken"),
        "{user}"
    );
}

#[tokio::test]
async fn valid_values_pass_every_rule() {
    let sources = env(&[
        ("V_PORT", "8080"),
        ("V_REGION", "eu-1"),
        ("V_USER", "alice"),
        ("V_MISSING", "x"),
    ]);
    let r = Rules::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!((r.port, r.region.as_str()), (8080, "eu-1"));
    assert_eq!((r.user.as_str(), r.missing.as_str()), ("alice", "x"));
}

#[derive(AsyncAssign, Debug, Default)]
struct Slow {
    #[component(fetch_from = "env", key = "S_A", validate(with_async = slow_ok))]
    a: String,
    #[component(fetch_from = "env", key = "S_B", validate(with_async = slow_ok))]
    b: String,
    #[component(fetch_from = "env", key = "S_C", validate(with_async = slow_ok))]
    c: String,
}

#[tokio::test]
async fn async_rules_run_concurrently() {
    let sources = env(&[("S_A", "a"), ("S_B", "b"), ("S_C", "c")]);
    let started = Instant::now();
    let slow = Slow::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!([slow.a, slow.b, slow.c], ["a", "b", "c"]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(600),
        "three 300 ms rules took {took:?}"
    );
}

async fn hangs(_: &String) -> Result<(), String> {
    std::future::pending().await
}

#[derive(AsyncAssign, Debug, Default)]
struct Hanging {
    #[component(fetch_from = "env", key = "H_A", validate(with_async = hangs, timeout = "200ms"))]
    a: String,
}

#[tokio::test]
async fn a_hanging_rule_times_out_naming_the_rule() {
    let sources = env(&[("H_A", "a")]);
    let started = Instant::now();
    let errors = Hanging::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(kinds(&errors), [ErrorKind::Timeout]);
    assert_eq!(errors[0].rule(), Some("with_async hangs"));
    assert!(errors[0].to_string().contains("200ms"), "{}", errors[0]);
}

#[derive(AsyncAssign, Debug)]
struct Secret {
    #[component(fetch_from = "env", key = "SEC_TOKEN", validate(len(min = 12)))]
    token: SecretString,
    #[component(
        fetch_from = "env",
        key = "SEC_PASS",
        secret,
        validate(pattern = "^[0-9]+$")
    )]
    pass: String,
}

#[tokio::test]
async fn a_secret_failing_a_rule_is_never_shown() {
    let sources = env(&[("SEC_TOKEN", "hunter2!!"), ("SEC_PASS", "Swordfish")]);
    let errors = Secret::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    let all = format!("{errors:?} {}", ComponentError::from(errors.clone()));
    assert!(
        !all.contains("hunter2") && !all.contains("Swordfish"),
        "{all}"
    );
    assert!(
        all.contains("a secret value of 9 bytes (not shown) is shorter than 12"),
        "{all}"
    );
}

#[derive(AsyncAssign, Debug, Default)]
struct Several {
    #[component(
        fetch_from = "env",
        key = "SV_N",
        validate(range(min = 10), with = even),
        validate(one_of = [12, 14, 16])
    )]
    n: u32,
    #[component(fetch_from = "env", key = "SV_TAGS", validate(non_empty))]
    tags: Vec<String>,
    #[component(fetch_from = "env", key = "SV_URL", validate(url))]
    url: Option<String>,
    #[component(fetch_from = "env", key = "SV_ZONE", validate(one_of = ["eu-1", "us-1"]))]
    zone: Option<String>,
}

#[tokio::test]
async fn every_rule_of_a_field_is_checked_and_options_only_when_some() {
    let sources = env(&[("SV_N", "7"), ("SV_TAGS", "[]"), ("SV_URL", "not a url")]);
    let errors = Several::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let rules: Vec<&str> = errors.iter().filter_map(|e| e.rule()).collect();
    assert_eq!(
        rules,
        [
            "range 10..",
            "with even",
            "one_of [12, 14, 16]",
            "non_empty",
            "url"
        ],
        "{errors:#?}"
    );
    // `zone` is absent: `None`, not checked; 18 fails only `one_of`.
    let sources = env(&[("SV_N", "18"), ("SV_TAGS", "[\"a\"]")]);
    let errors = Several::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].rule(), Some("one_of [12, 14, 16]"));
}

#[tokio::test]
async fn a_value_passing_every_rule_is_taken() {
    let ok = env(&[
        ("SV_N", "14"),
        ("SV_TAGS", "[\"a\"]"),
        ("SV_URL", "https://x.example/"),
        ("SV_ZONE", "eu-1"),
    ]);
    let s = Several::fetch_all_components_with(&ok).await.unwrap();
    assert_eq!(s.n, 14);
    assert_eq!(s.tags, ["a"]);
    assert_eq!(s.url.as_deref(), Some("https://x.example/"));
    assert_eq!(s.zone.as_deref(), Some("eu-1"));
}

#[derive(AsyncAssign, Debug, Default)]
struct Fallbacks {
    #[component(
        fetch_from = "env",
        key = "FB_PORT",
        fallback = "8080",
        validate(range(min = 1024))
    )]
    port: u16,
    #[component(
        fetch_from = "env",
        key = "FB_WORKERS",
        validate(range(min = 1, max = 64))
    )]
    workers: u32,
}

#[tokio::test]
async fn available_components_take_fallback_or_default_for_an_invalid_field() {
    let sources = env(&[("FB_PORT", "80"), ("FB_WORKERS", "0")]);
    let partial = Fallbacks::fetch_available_components_with(&sources)
        .await
        .unwrap();
    assert_eq!(partial.value.port, 8080);
    assert_eq!(partial.value.workers, 0);
    assert_eq!(
        kinds(&partial.errors),
        [ErrorKind::Invalid, ErrorKind::Invalid]
    );
}

#[tokio::test]
async fn the_report_says_invalid_and_names_the_rule() {
    let sources = env(&[("FB_PORT", "80"), ("FB_WORKERS", "4")]);
    let report = Fallbacks::fetch_report_with(&sources).await;
    assert!(report.result.is_err());
    let port = report
        .fields
        .iter()
        .find(|f| f.path.ends_with("port"))
        .unwrap();
    assert_eq!(
        port.outcome,
        Outcome::Invalid {
            rule: "range 1024..".to_owned()
        }
    );
    assert!(
        report.to_string().contains("INVALID: range 1024.."),
        "{report}"
    );
}

#[tokio::test]
async fn resilience_returns_every_rule_error() {
    let sources = env(&[("FB_PORT", "80"), ("FB_WORKERS", "100")]);
    let e = Fallbacks::fetch_with_resilience_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(e.errors().len(), 2, "{e}");
    assert!(e.errors().iter().all(|e| e.kind() == ErrorKind::Invalid));
    // One field alone is checked too.
    let e = Fallbacks::fetch_workers_with(&sources).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
}

fn ports_differ(c: &Pair, _: &Sources) -> Result<(), Violations> {
    let mut v = Violations::new();
    if c.a == c.b {
        v.push_at("a", "must differ from `b`");
        v.push_at("b", "must differ from `a`");
    }
    v.into_result()
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with = ports_differ)]
struct Pair {
    #[component(fetch_from = "env", key = "P_A")]
    a: u16,
    #[component(fetch_from = "env", key = "P_B")]
    b: u16,
}

#[tokio::test]
async fn a_struct_rule_names_fields_with_violations_at() {
    let errors = Pair::fetch_all_components_with(&env(&[("P_A", "1"), ("P_B", "1")]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].field_name(), Some("a"));
    assert_eq!(errors[0].key(), Some("P_A"));
    assert_eq!(errors[0].rule(), Some("validate_with ports_differ"));
    assert_eq!(
        errors[1].to_string(),
        "Pair.b: env variable `P_B`: rejected by validation (rule `validate_with ports_differ`): must differ from `a`"
    );
    Pair::fetch_all_components_with(&env(&[("P_A", "1"), ("P_B", "2")]))
        .await
        .unwrap();
}

async fn outer_rule(c: &Outer, _: &Sources) -> Result<(), String> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    if c.inner.size > c.limit {
        Err("inner.size exceeds limit".to_owned())
    } else {
        Ok(())
    }
}

fn inner_rule(c: &Inner, _: &Sources) -> Result<(), Violations> {
    if c.size == 13 {
        Err(Violations::at("size", "13 is unlucky"))
    } else {
        Ok(())
    }
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with = inner_rule)]
struct Inner {
    #[component(fetch_from = "env", key = "IN_SIZE")]
    size: u32,
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with_async = outer_rule)]
struct Outer {
    #[component(fetch_from = "env", key = "OUT_LIMIT")]
    limit: u32,
    #[component(nested)]
    inner: Inner,
}

#[tokio::test]
async fn nested_struct_rules_run_with_paths_below_their_field() {
    let errors = Outer::fetch_all_components_with(&env(&[("OUT_LIMIT", "10"), ("IN_SIZE", "13")]))
        .await
        .unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{text:#?}");
    assert!(
        text.iter().any(
            |t| t.starts_with("Outer.inner.size: env variable `IN_SIZE`")
                && t.contains("13 is unlucky")
        ),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|t| t
            .starts_with("Outer: rejected by validation (rule `validate_with_async outer_rule`)")),
        "{text:#?}"
    );
    // The nested field alone runs its struct's rules.
    let e = Outer::fetch_inner_with(&env(&[("IN_SIZE", "13")]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
}

#[derive(garde::Validate, serde::Deserialize, Debug, Default)]
struct Limits {
    #[garde(range(min = 1, max = 10))]
    workers: u32,
    #[garde(length(min = 3))]
    name: String,
}

#[derive(AsyncAssign, garde::Validate, Debug, Default)]
#[component(validate(garde))]
struct Gardened {
    #[garde(dive)]
    #[component(fetch_from = "env", key = "G_LIMITS", validate(garde))]
    limits: Limits,
    #[garde(length(min = 2))]
    #[component(fetch_from = "env", key = "G_NAME")]
    name: String,
}

#[tokio::test]
async fn garde_validates_a_field_and_the_struct_with_paths() {
    // The field's own `Validate`: each message at its path below the field.
    let sources = env(&[
        ("G_LIMITS", r#"{"workers": 0, "name": "ab"}"#),
        ("G_NAME", "x"),
    ]);
    let errors = Gardened::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    let mut fields: Vec<&str> = errors.iter().filter_map(|e| e.field_name()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["limits.name", "limits.workers"], "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.rule() == Some("garde") && e.kind() == ErrorKind::Invalid)
    );
    assert!(errors.iter().all(|e| e.key() == Some("G_LIMITS")));
    // The struct's: run once every field passed its own rules.
    let sources = env(&[
        ("G_LIMITS", r#"{"workers": 2, "name": "abc"}"#),
        ("G_NAME", "x"),
    ]);
    let errors = Gardened::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].field_name(), Some("name"));
    assert_eq!(
        errors[0].key(),
        Some("G_NAME"),
        "a message at a fetched field names its key"
    );
    let sources = env(&[
        ("G_LIMITS", r#"{"workers": 2, "name": "abc"}"#),
        ("G_NAME", "xy"),
    ]);
    let ok = Gardened::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(
        (ok.limits.workers, ok.limits.name.as_str(), ok.name.as_str()),
        (2, "abc", "xy")
    );
}

#[derive(AsyncAssign, Debug, Default)]
#[component(overrides = ["args"], defaults = ["file@defaults.toml"])]
struct Layered {
    #[component(validate(range(min = 1024)))]
    port: u16,
}

#[tokio::test]
async fn a_precedence_field_names_the_source_that_won() {
    let d = std::env::temp_dir().join(component_model_tests::unique("cm-validate-prec"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("defaults.toml"), "port = 80\n").unwrap();
    let files = component_model::FileSource::new().with_base_dir(&d);
    // Only the defaults file has it: its 80 is refused, naming the file and the member.
    let sources = Sources::new()
        .register("file", files.clone())
        .with_args(["app"]);
    let errors = Layered::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        errors[0].source_name(),
        Some("file@defaults.toml"),
        "{}",
        errors[0]
    );
    assert!(
        errors[0]
            .to_string()
            .contains("80 is below the minimum of 1024"),
        "{}",
        errors[0]
    );
    // The command line wins with a valid value.
    let sources = Sources::new()
        .register("file", files)
        .with_args(["app", "--port", "8443"]);
    let ok = Layered::fetch_all_components_with(&sources).await.unwrap();
    assert_eq!(ok.port, 8443);
    let _ = std::fs::remove_dir_all(&d);
}

#[derive(AsyncAssign, Debug, Default)]
struct Db {
    #[component(
        fetch_from = "env",
        key = "NDB_POOL",
        validate(range(min = 1, max = 100))
    )]
    pool: u32,
}

#[derive(AsyncAssign, Debug, Default)]
struct Tree {
    #[component(nested)]
    db: Db,
    #[component(nested)]
    replica: Option<Db>,
}

#[tokio::test]
async fn rules_of_nested_fields_name_their_path() {
    let errors = Tree::fetch_all_components_with(&env(&[("NDB_POOL", "0")]))
        .await
        .unwrap_err();
    let paths: Vec<&str> = errors.iter().filter_map(|e| e.field_name()).collect();
    assert_eq!(paths, ["db.pool", "replica.pool"], "{errors:#?}");
    let e = Tree::fetch_db_with(&env(&[("NDB_POOL", "0")]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let ok = Tree::fetch_all_components_with(&env(&[("NDB_POOL", "5")]))
        .await
        .unwrap();
    assert_eq!((ok.db.pool, ok.replica.map(|r| r.pool)), (5, Some(5)));
}

#[derive(AsyncAssign, Debug, Default)]
struct FromFile {
    #[component(
        fetch_from = "env",
        key = "FF_PW",
        validate(len(min = 40), pattern = "^x")
    )]
    pw: String,
}

#[tokio::test]
async fn a_value_read_from_a_secret_file_is_never_shown_by_a_rule() {
    let d = std::env::temp_dir().join(component_model_tests::unique("cm-validate-file"));
    std::fs::create_dir_all(&d).unwrap();
    let file = d.join("pw");
    std::fs::write(&file, "hunter2-from-file\n").unwrap();
    let sources = env(&[("FF_PW_FILE", file.to_str().unwrap())]);
    let errors = FromFile::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    let all = format!("{errors:?} {}", ComponentError::from(errors.clone()));
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("(not shown)"), "{all}");
    let _ = std::fs::remove_dir_all(&d);
}

fn never_zero(c: &Guarded, _: &Sources) -> Result<(), Violations> {
    if c.port == 0 {
        return Err(Violations::at("port", "must be set"));
    }
    Ok(())
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with = never_zero)]
struct Guarded {
    #[component(fetch_from = "env", key = "GU_PORT", validate(range(max = 100)))]
    port: u16,
}

#[tokio::test]
async fn struct_rules_do_not_run_on_stand_ins_for_failed_fields() {
    // `port` fails its own rule: available takes `Default` (0) for it, and the struct
    // rule, which would refuse 0, is not asked about a value nobody fetched.
    let partial = Guarded::fetch_available_components_with(&env(&[("GU_PORT", "500")]))
        .await
        .unwrap();
    assert_eq!(partial.value.port, 0);
    assert_eq!(partial.errors.len(), 1, "{:#?}", partial.errors);
    assert_eq!(partial.errors[0].rule(), Some("range ..=100"));
    let errors = Guarded::fetch_all_components_with(&env(&[("GU_PORT", "0")]))
        .await
        .unwrap_err();
    assert_eq!(errors[0].rule(), Some("validate_with never_zero"));
}

#[derive(AsyncAssign, Debug, Default)]
struct BadFallback {
    #[component(
        fetch_from = "env",
        key = "BF_PORT",
        fallback = "0",
        validate(range(min = 1))
    )]
    port: u16,
}

#[tokio::test]
async fn a_fallback_literal_standing_in_is_checked_too() {
    let errors = BadFallback::fetch_all_components_with(&env(&[]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(text.contains("`fallback` literal"), "{text}");
    let ok = BadFallback::fetch_all_components_with(&env(&[("BF_PORT", "5")]))
        .await
        .unwrap();
    assert_eq!(ok.port, 5);
}

fn refuses_silently(_: &Silent, _: &Sources) -> Result<(), Violations> {
    Err(Violations::new())
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with = refuses_silently)]
struct Silent {
    #[component(fetch_from = "env", key = "SI_A", fallback = "1")]
    a: u8,
}

#[tokio::test]
async fn a_refusal_without_a_message_is_still_a_refusal() {
    let errors = Silent::fetch_all_components_with(&env(&[]))
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].to_string().contains("without saying why"),
        "{}",
        errors[0]
    );
}

#[derive(Debug, PartialEq, serde::Deserialize, Default)]
enum Mode {
    #[default]
    Fast,
    Safe,
    Slow,
}

#[derive(AsyncAssign, Debug, Default)]
struct Modes {
    #[component(fetch_from = "env", key = "MO_MODE", validate(one_of = [Mode::Fast, Mode::Safe]))]
    mode: Mode,
}

#[tokio::test]
async fn one_of_compares_any_type_with_eq() {
    let errors = Modes::fetch_all_components_with(&env(&[("MO_MODE", "Slow")]))
        .await
        .unwrap_err();
    assert_eq!(
        errors[0].detail(),
        Some("Slow is not one of `Fast`, `Safe`"),
        "{}",
        errors[0]
    );
    let ok = Modes::fetch_all_components_with(&env(&[("MO_MODE", "Safe")]))
        .await
        .unwrap();
    assert_eq!(ok.mode, Mode::Safe);
}

static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

async fn counted(_: &String) -> Result<(), String> {
    use std::sync::atomic::Ordering::SeqCst;
    let now = IN_FLIGHT.fetch_add(1, SeqCst) + 1;
    MOST.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(30)).await;
    IN_FLIGHT.fetch_sub(1, SeqCst);
    Ok(())
}

#[derive(AsyncAssign, Debug, Default)]
#[component(nested_only)]
struct Three {
    #[component(fetch_from = "env", key = "TH_A", validate(with_async = counted))]
    a: String,
    #[component(fetch_from = "env", key = "TH_B", validate(with_async = counted))]
    b: String,
    #[component(fetch_from = "env", key = "TH_C", validate(with_async = counted))]
    c: String,
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_concurrency = 1)]
struct OneAtATime {
    #[component(nested)]
    three: Three,
}

#[tokio::test]
async fn fetching_a_nested_field_alone_keeps_the_parents_concurrency() {
    let sources = env(&[("TH_A", "a"), ("TH_B", "b"), ("TH_C", "c")]);
    let three = OneAtATime::fetch_three_with(&sources).await.unwrap();
    assert_eq!([three.a, three.b, three.c], ["a", "b", "c"]);
    assert_eq!(MOST.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn odd_pin(n: &u32) -> Result<(), String> {
    if n.is_multiple_of(2) {
        Ok(())
    } else {
        Err(format!("{n} is odd"))
    }
}

async fn reserved(name: &String) -> Result<(), String> {
    Err(format!("`{name}` is reserved"))
}

#[derive(AsyncAssign, Debug, Default)]
struct SecretWith {
    #[component(fetch_from = "env", key = "SW_PIN", secret, validate(with = odd_pin))]
    pin: u32,
    #[component(fetch_from = "env", key = "SW_NAME", secret, validate(with_async = reserved))]
    name: String,
}

#[tokio::test]
async fn a_functions_message_about_a_secret_value_is_not_shown() {
    let sources = env(&[("SW_PIN", "12345"), ("SW_NAME", "swordfish")]);
    let errors = SecretWith::fetch_all_components_with(&sources)
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 2);
    let all = format!("{errors:?} {}", ComponentError::from(errors.clone()));
    assert!(
        !all.contains("12345") && !all.contains("swordfish"),
        "{all}"
    );
    assert!(all.contains("the rule's message is not shown"), "{all}");
}

fn typo(_: &Typo, _: &Sources) -> Result<(), Violations> {
    Err(Violations::at("replica", "must not exceed 8"))
}

#[derive(AsyncAssign, Debug, Default)]
#[component(validate_with = typo)]
struct Typo {
    #[component(fetch_from = "env", key = "TY_REPLICAS", fallback = "3")]
    replicas: u32,
}

#[tokio::test]
async fn a_violation_at_a_misspelt_field_says_which_was_meant() {
    let errors = Typo::fetch_all_components_with(&env(&[]))
        .await
        .unwrap_err();
    let text = errors[0].to_string();
    assert!(
        text.contains("no fetched field is at `replica`; did you mean `replicas`?"),
        "{text}"
    );
}
