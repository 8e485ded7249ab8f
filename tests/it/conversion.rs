//! Converting text, bytes and JSON values into field types.

use std::collections::BTreeMap;

use component_model::{AsyncAssign, EnvSource, ErrorKind, Sources};
use serde::Deserialize;

fn env(vars: &[(&str, &str)]) -> Sources {
    Sources::new().with_env(EnvSource::from_map(
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    ))
}

#[derive(Debug, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Fast,
    Safe,
}

#[derive(AsyncAssign, Debug)]
struct Shapes {
    #[component(fetch_from = "env")]
    port: u16,
    #[component(fetch_from = "env")]
    negative: i64,
    #[component(fetch_from = "env")]
    ratio: f32,
    #[component(fetch_from = "env")]
    enabled: bool,
    #[component(fetch_from = "env")]
    initial: char,
    #[component(fetch_from = "env")]
    numeric_text: String,
    #[component(fetch_from = "env")]
    hosts: Vec<String>,
    #[component(fetch_from = "env")]
    ports: Vec<u16>,
    #[component(fetch_from = "env")]
    json_ports: Vec<u16>,
    #[component(fetch_from = "env")]
    mode: Mode,
    #[component(fetch_from = "env")]
    labels: BTreeMap<String, u8>,
    #[component(fetch_from = "env")]
    empty_is_none: Option<u16>,
    #[component(fetch_from = "env")]
    anything: serde_json::Value,
}

#[tokio::test]
async fn text_values_convert_as_the_field_type_asks() {
    let s = Shapes::fetch_all_components_with(&env(&[
        ("PORT", " 8080 "),
        ("NEGATIVE", "-5"),
        ("RATIO", "0.25"),
        ("ENABLED", "TRUE"),
        ("INITIAL", "x"),
        ("NUMERIC_TEXT", "0042"),
        ("HOSTS", "a.example, b.example"),
        ("PORTS", "80,443"),
        ("JSON_PORTS", "[1, 2]"),
        ("MODE", "safe"),
        ("LABELS", r#"{"a": 1}"#),
        ("EMPTY_IS_NONE", ""),
        ("ANYTHING", "12"),
    ]))
    .await
    .unwrap();
    assert_eq!(
        (s.port, s.negative, s.ratio, s.enabled, s.initial),
        (8080, -5, 0.25, true, 'x')
    );
    assert_eq!(
        s.numeric_text, "0042",
        "text stays text, leading zeros included"
    );
    assert_eq!(s.hosts, ["a.example", "b.example"]);
    assert_eq!((s.ports, s.json_ports), (vec![80, 443], vec![1, 2]));
    assert_eq!(s.mode, Mode::Safe);
    assert_eq!(s.labels.get("a"), Some(&1));
    assert_eq!(s.empty_is_none, None);
    assert_eq!(s.anything, serde_json::json!(12));
}

#[tokio::test]
async fn out_of_range_and_malformed_values_are_decode_errors_naming_the_type() {
    #[derive(AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct Bad {
        #[component(fetch_from = "env")]
        small: u8,
        #[component(fetch_from = "env")]
        doc: BTreeMap<String, u8>,
        #[component(fetch_from = "env")]
        flag: bool,
    }
    let errors = Bad::fetch_all_components_with(&env(&[
        ("SMALL", "300"),
        ("DOC", "{not json"),
        ("FLAG", "maybe"),
    ]))
    .await
    .unwrap_err();
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Decode));
    assert!(
        errors[0].to_string().contains(
            "expected `u8`, found \"300\" (number too large to fit in target type (expected u8))"
        ),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .to_string()
            .contains("expected `BTreeMap<String, u8>`"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].to_string().contains("expected `true` or `false`"),
        "{}",
        errors[2]
    );
}

#[tokio::test]
async fn a_decode_error_inside_a_nested_value_names_its_path_but_never_a_secrets_content() {
    #[derive(serde::Deserialize, Debug, Default)]
    #[allow(dead_code)]
    struct Meta {
        owner: String,
    }
    #[derive(serde::Deserialize, Debug, Default)]
    #[allow(dead_code)]
    struct Feature {
        name: String,
        meta: Meta,
        tags: Vec<u8>,
    }
    #[derive(component_model::AsyncAssign, Debug)]
    #[allow(dead_code)]
    struct C {
        #[component(fetch_from = "env", key = "FEATURE")]
        feature: Feature,
        #[component(fetch_from = "env", key = "TAGS_FEATURE")]
        tagged: Feature,
        #[component(fetch_from = "env", key = "SECRET_FEATURE", secret)]
        secret: Feature,
    }
    let canary = "canary-nested-owner";
    let sources = component_model::Sources::new().with_env(component_model::EnvSource::from_map([
        (
            "FEATURE",
            r#"{"name":"beta","meta":{"owner":5},"tags":[]}"#.to_owned(),
        ),
        (
            "TAGS_FEATURE",
            r#"{"name":"beta","meta":{"owner":"o"},"tags":[1,"x"]}"#.to_owned(),
        ),
        (
            "SECRET_FEATURE",
            format!(r#"{{"name":"{canary}","meta":{{"owner":5}},"tags":[]}}"#),
        ),
    ]));
    let errors = C::fetch_all_components_with(&sources).await.unwrap_err();
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown[0].contains("(meta.owner: invalid type: integer `5`, expected a string"),
        "{}",
        shown[0]
    );
    assert!(shown[1].contains("(tags[1]: "), "{}", shown[1]);
    assert!(
        shown[2].contains("that does not fit at `meta.owner`"),
        "{}",
        shown[2]
    );
    assert!(!shown[2].contains(canary) && !format!("{:?}", errors[2]).contains(canary));
}
