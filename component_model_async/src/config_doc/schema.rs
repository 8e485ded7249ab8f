//! A JSON Schema (2020-12) of the file a `file@` source reads, from a [`ConfigDoc`]: an
//! object per table, a property per field with its type's schema (from `schemars` when the
//! feature `schema` is on and the type implements `JsonSchema`; else from the type's name),
//! its doc comment as `description`, its `fallback` as `default`, `writeOnly` for a
//! secret, and its `range`/`len`/`pattern`/`one_of` rules where JSON Schema can say them.

use serde_json::{Map, Value, json};

use super::{ConfigDoc, FieldDoc, template};

/// `Vec<u16>` → `u16`, for the item type of a sequence.
fn generic_arg<'t>(t: &'t str, outer: &str) -> Option<&'t str> {
    let rest = t
        .strip_prefix(outer)?
        .strip_prefix('<')?
        .strip_suffix('>')?;
    Some(rest.trim())
}

/// The last path segment of a type: `std::path::PathBuf` → `PathBuf`.
fn last_segment(t: &str) -> &str {
    match t.find('<') {
        Some(at) => {
            let head = &t[..at];
            let start = head.rfind("::").map_or(0, |i| i + 2);
            &t[start..]
        }
        None => t.rsplit("::").next().unwrap_or(t),
    }
}

/// The schema of a type by its name, for types without a known `JsonSchema`: integers
/// with their bounds, floats, booleans, text, sequences, maps and `Option`; anything else
/// accepts any value.
pub(super) fn by_name(type_name: &str) -> Value {
    let t = type_name.trim();
    let last = last_segment(t);
    let int = |min: i128, max: i128| json!({"type": "integer", "minimum": min, "maximum": max});
    match last {
        "u8" => int(0, u8::MAX.into()),
        "u16" => int(0, u16::MAX.into()),
        "u32" => int(0, u32::MAX.into()),
        "u64" | "usize" => json!({"type": "integer", "minimum": 0}),
        "i8" => int(i8::MIN.into(), i8::MAX.into()),
        "i16" => int(i16::MIN.into(), i16::MAX.into()),
        "i32" => int(i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" | "i128" => json!({"type": "integer"}),
        "u128" => json!({"type": "integer", "minimum": 0}),
        "f32" | "f64" => json!({"type": "number"}),
        "bool" => json!({"type": "boolean"}),
        "char" => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        _ if last.starts_with("Option<") => {
            let inner = generic_arg(last, "Option").unwrap_or("");
            let mut s = by_name(inner);
            if let Some(Value::String(ty)) = s.get("type").cloned() {
                s["type"] = json!([ty, "null"]);
            }
            s
        }
        _ if ["Vec", "VecDeque", "HashSet", "BTreeSet"]
            .iter()
            .any(|o| generic_arg(last, o).is_some()) =>
        {
            let inner = ["Vec", "VecDeque", "HashSet", "BTreeSet"]
                .iter()
                .find_map(|o| generic_arg(last, o))
                .unwrap_or("");
            json!({"type": "array", "items": by_name(inner)})
        }
        _ if ["HashMap", "BTreeMap"]
            .iter()
            .any(|o| generic_arg(last, o).is_some()) =>
        {
            let args = ["HashMap", "BTreeMap"]
                .iter()
                .find_map(|o| generic_arg(last, o))
                .unwrap_or("");
            let value = args.split_once(',').map_or("", |(_, v)| v.trim());
            json!({"type": "object", "additionalProperties": by_name(value)})
        }
        _ if template::is_text(t) => json!({"type": "string"}),
        _ => json!({}),
    }
}

/// What a rule says in JSON Schema: `range 1..=65535` → `minimum`/`maximum`,
/// `len 1..=64` → `minLength`/`maxLength` (or items), `pattern = ".."`, `one_of = [..]`.
fn apply_rule(schema: &mut Map<String, Value>, rule: &str) {
    let number = |s: &str| {
        s.trim().replace('_', "").parse::<f64>().ok().map(|n| {
            if n.fract() == 0.0 && n.abs() < 9e15 {
                json!(n as i64)
            } else {
                json!(n)
            }
        })
    };
    let bounds = |spec: &str| -> (Option<Value>, Option<Value>, bool) {
        let (lo, hi, inclusive) = match spec.split_once("..=") {
            Some((lo, hi)) => (lo, hi, true),
            None => match spec.split_once("..") {
                Some((lo, hi)) => (lo, hi, false),
                None => (spec, spec, true),
            },
        };
        (number(lo), number(hi), inclusive)
    };
    let is_array = has_type(schema, "array");
    let is_object = has_type(schema, "object");
    if let Some(spec) = rule.strip_prefix("range ") {
        let (lo, hi, inclusive) = bounds(spec);
        if let Some(lo) = lo {
            schema.insert("minimum".into(), lo);
        }
        if let Some(hi) = hi {
            schema.insert(
                if inclusive {
                    "maximum"
                } else {
                    "exclusiveMaximum"
                }
                .into(),
                hi,
            );
        }
    } else if let Some(spec) = rule.strip_prefix("len ") {
        let (lo, hi, inclusive) = bounds(spec);
        let (min, max) = if is_array {
            ("minItems", "maxItems")
        } else if is_object {
            ("minProperties", "maxProperties")
        } else {
            ("minLength", "maxLength")
        };
        if let Some(lo) = lo {
            schema.insert(min.into(), lo);
        }
        if let Some(Value::Number(hi)) = hi {
            let hi = hi.as_i64().unwrap_or_default() - i64::from(!inclusive);
            schema.insert(max.into(), json!(hi));
        }
    } else if rule == "non_empty" {
        let min = if is_array {
            "minItems"
        } else if is_object {
            "minProperties"
        } else {
            "minLength"
        };
        schema.insert(min.into(), json!(1));
    } else if let Some(p) = rule.strip_prefix("pattern ")
        && ecma_compatible(p.trim())
    {
        schema.insert("pattern".into(), json!(p.trim()));
    } else if rule == "url" {
        schema.insert("format".into(), json!("uri"));
    }
}

/// Whether a `regex` pattern means the same in ECMA-262, JSON Schema's dialect: not when
/// it uses inline flags (`(?i)`, `(?-u)`), `(?P<name>` groups, `\A`/`\z`/`\Z`, POSIX
/// classes (`[[:alpha:]]`) or Unicode classes (`\p{L}`, read by ECMA only with its `u`
/// flag). Such a rule is left out of the schema (the fetch still checks it) rather than
/// written as a pattern editors refuse or read differently. `(?:...)` is the same in both.
fn ecma_compatible(pattern: &str) -> bool {
    let flags = [
        "(?i", "(?m", "(?s", "(?x", "(?U", "(?u", "(?R", "(?-", "(?P<",
    ];
    let escapes = ["\\A", "\\z", "\\Z", "[[:", "\\p{", "\\P{", "\\pL", "\\pN"];
    !flags.iter().chain(&escapes).any(|s| pattern.contains(s))
}

/// Whether `schema`'s `type` is `kind` or a list holding it (`["array", "null"]`).
fn has_type(schema: &Map<String, Value>, kind: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == kind,
        Some(Value::Array(ts)) => ts.iter().any(|t| t.as_str() == Some(kind)),
        _ => false,
    }
}

/// The schema of one field's property.
fn property(field: &FieldDoc) -> Value {
    let mut schema = match &field.type_schema {
        Some(Value::Object(s)) => s.clone(),
        _ => match by_name(field.type_name) {
            Value::Object(s) => s,
            _ => Map::new(),
        },
    };
    // The type's own `$schema`/title are not wanted on a property.
    schema.remove("$schema");
    schema.remove("title");
    for rule in &field.rules {
        apply_rule(&mut schema, rule);
    }
    for rule in field.rules.iter().filter_map(|r| r.strip_prefix("one_of ")) {
        if let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(rule.trim()) {
            // An `Option` field may be null: the rule applies to a value.
            if field.optional || has_type(&schema, "null") {
                items.push(Value::Null);
            }
            schema.insert("enum".into(), Value::Array(items));
        }
    }
    if let Some(doc) = field.doc {
        schema.insert("description".into(), json!(doc));
    }
    if field.secret {
        schema.insert("writeOnly".into(), json!(true));
    } else if let Some(fb) = field.fallback.filter(|_| !field.optional) {
        let v = match template::is_text(field.type_name) {
            true => Value::String(fb.to_owned()),
            false => {
                serde_json::from_str(fb.trim()).unwrap_or_else(|_| Value::String(fb.to_owned()))
            }
        };
        schema.insert("default".into(), v);
    }
    Value::Object(schema)
}

impl ConfigDoc {
    /// A JSON Schema (2020-12) of the file a `file@` source reads: its fields at their
    /// places (every field by its path when no field has a `file` source), secrets
    /// included and marked `writeOnly`, with `description` from the doc comments and
    /// `default` from the `fallback` literals. Unknown keys are refused
    /// (`additionalProperties: false`): a typo in the file is an error in the editor. No
    /// property is `required`: a precedence file may leave any field to another source.
    ///
    /// Each field's type schema comes from `schemars` (feature `schema`) when the type
    /// implements `JsonSchema`; otherwise from its name (integers with their bounds,
    /// `bool`, text, `Vec`, maps, `Option`), and any value for a type it does not know.
    ///
    /// ```
    /// use component_model_async::{AsyncAssign, Sources};
    ///
    /// #[derive(AsyncAssign, Debug, Default)]
    /// struct App {
    ///     /// Where the service listens.
    ///     #[component(fetch_from = "env", key = "APP_PORT", fallback = "8080")]
    ///     port: u16,
    /// }
    ///
    /// let schema = App::config_doc_with(&Sources::new()).json_schema();
    /// assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
    /// assert_eq!(schema["properties"]["port"]["type"], "integer");
    /// assert_eq!(schema["properties"]["port"]["maximum"], 65535);
    /// assert_eq!(schema["properties"]["port"]["description"], "Where the service listens.");
    /// ```
    pub fn json_schema(&self) -> Value {
        let mut root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.owner,
            "type": "object",
            "properties": {},
            "additionalProperties": false,
        });
        for field in &self.fields {
            let Some(segments) = self.place_of(field) else {
                continue;
            };
            let Some((last, parents)) = segments.split_last() else {
                continue;
            };
            let mut at = &mut root;
            for p in parents {
                let props = at["properties"]
                    .as_object_mut()
                    .expect("objects have properties");
                at = props.entry(p.clone()).or_insert_with(
                    || json!({"type": "object", "properties": {}, "additionalProperties": false}),
                );
                if at.get("properties").is_none() {
                    // A field and a table at one place: the table wins in the schema.
                    *at =
                        json!({"type": "object", "properties": {}, "additionalProperties": false});
                }
            }
            at["properties"]
                .as_object_mut()
                .expect("objects have properties")
                .insert(last.clone(), property(field));
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::ecma_compatible;

    #[test]
    fn patterns_ecma_reads_alike_are_kept() {
        assert!(ecma_compatible("^[a-z][a-z0-9-]{0,62}$"));
        assert!(ecma_compatible("^(?:eu|us)-[0-9]+$"));
        assert!(!ecma_compatible("(?i)^[a-z]+$"));
        assert!(!ecma_compatible("^[a-z]+\\z"));
        assert!(!ecma_compatible("^\\p{L}+$"));
        assert!(!ecma_compatible("^(?P<region>[a-z]+)$"));
    }
}
