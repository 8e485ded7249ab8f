//! Defaults files from a [`ConfigDoc`]: every field that is not secret, at the place a
//! `file@` source reads it, under its doc comment; set to its `fallback` literal when it
//! has one, commented out when it has none, so the file parses back to the same defaults.
//!
//! Written by hand, not with the `toml` / YAML crates: those are behind the `file` feature,
//! and the output is a handful of comment lines, keys and scalars (a JSON string literal
//! is a valid TOML basic string and a valid YAML double-quoted scalar; the tests parse
//! every template back through the file source).

use serde_json::Value;

use super::{ConfigDoc, FieldDoc};

/// A field's place in the file, and its value if it has a default.
struct Entry<'d> {
    segments: Vec<String>,
    field: &'d FieldDoc,
    value: Option<Value>,
}

/// A table of the file: its own keys, then its sub-tables, in first-seen order.
#[derive(Default)]
struct Node<'d> {
    leaves: Vec<(String, &'d Entry<'d>)>,
    tables: Vec<(String, Node<'d>)>,
}

impl<'d> Node<'d> {
    fn insert(&mut self, segments: &[String], entry: &'d Entry<'d>) {
        match segments {
            [] => {}
            [last] => self.leaves.push((last.clone(), entry)),
            [first, rest @ ..] => {
                let at = match self.tables.iter().position(|(k, _)| k == first) {
                    Some(at) => at,
                    None => {
                        self.tables.push((first.clone(), Node::default()));
                        self.tables.len() - 1
                    }
                };
                self.tables[at].1.insert(rest, entry);
            }
        }
    }

    fn has_value(&self) -> bool {
        self.leaves.iter().any(|(_, e)| e.value.is_some())
            || self.tables.iter().any(|(_, t)| t.has_value())
    }
}

/// The type inside `Option<...>`.
fn inner_type(type_name: &str) -> &str {
    let t = type_name.trim();
    for prefix in [
        "Option<",
        "std::option::Option<",
        "core::option::Option<",
        "::std::option::Option<",
    ] {
        if let Some(rest) = t.strip_prefix(prefix).and_then(|r| r.strip_suffix('>')) {
            return rest.trim();
        }
    }
    t
}

/// Whether values of `type_name` are text (a number-looking `fallback` stays a string).
pub(super) fn is_text(type_name: &str) -> bool {
    let t = inner_type(type_name);
    let last = t.rsplit("::").next().unwrap_or(t);
    matches!(
        last,
        "String"
            | "str"
            | "&str"
            | "&'static str"
            | "PathBuf"
            | "Url"
            | "SecretString"
            | "IpAddr"
            | "SocketAddr"
            | "Ipv4Addr"
            | "Ipv6Addr"
            | "char"
            | "Duration"
    ) || last.starts_with("Cow<")
        || last.starts_with("SecretBox<")
        || last.starts_with("Box<str")
}

/// A `fallback` literal as the file would hold it: JSON when it reads as a number, bool,
/// array or object and the type is not text; else a string.
/// A field that is `None` when absent (an `Option`, or a field of an `Option<Nested>`
/// struct) has no default to write: absent, it is `None`, whatever its `fallback`.
fn literal_value(field: &FieldDoc) -> Option<Value> {
    if field.optional {
        return None;
    }
    let text = field.fallback?;
    if !is_text(field.type_name)
        && let Ok(v) = serde_json::from_str::<Value>(text.trim())
        && !v.is_null()
    {
        return Some(v);
    }
    Some(Value::String(text.to_owned()))
}

/// The fields a defaults file holds, at their places (see [`ConfigDoc::place_of`]).
fn entries(doc: &ConfigDoc) -> Vec<Entry<'_>> {
    doc.fields
        .iter()
        .filter(|f| !f.secret)
        .filter_map(|f| {
            Some(Entry {
                segments: doc.place_of(f)?,
                field: f,
                value: literal_value(f),
            })
        })
        .collect()
}

fn tree<'d>(entries: &'d [Entry<'d>]) -> Node<'d> {
    let mut root = Node::default();
    for e in entries {
        root.insert(&e.segments, e);
    }
    root
}

/// A key as TOML/YAML writes it: bare when it is `[A-Za-z0-9_-]+`, else quoted.
fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_owned()
    } else {
        json_text(&Value::String(k.to_owned()))
    }
}

/// The comment lines above a key: the doc comment, then the type and where else the
/// value may come from.
fn comments(field: &FieldDoc, indent: &str) -> String {
    let mut out = String::new();
    if let Some(doc) = field.doc {
        for line in doc.lines() {
            out.push_str(format!("{indent}# {line}").trim_end());
            out.push('\n');
        }
    }
    let mut about = format!("{indent}# {}", field.type_name);
    let others: Vec<String> = field
        .sources
        .iter()
        .filter(|s| s.pointer.is_none())
        .map(|s| s.short())
        .collect();
    if !others.is_empty() {
        about.push_str(&format!("; also read from {}", others.join(" > ")));
    }
    if !field.rules.is_empty() {
        about.push_str(&format!("; {}", field.rules.join(", ")));
    }
    out.push_str(&about);
    out.push('\n');
    out
}

/// `v` as JSON text, with the characters a TOML basic string or a YAML double-quoted
/// scalar may not hold raw escaped too (DEL, the C1 controls, U+2028 and U+2029; JSON
/// escapes only those below U+0020). They can only occur inside strings.
fn json_text(v: &Value) -> String {
    let text = v.to_string();
    if !text
        .chars()
        .any(|c| matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}'))
    {
        return text;
    }
    text.chars()
        .map(|c| match c {
            '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' => format!("\\u{:04x}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// A value as TOML writes it (inline).
fn toml_value(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} = {}", key(k), toml_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        other => json_text(other),
    }
}

/// A placeholder for a field without a default: an empty value of its kind, or the type's
/// name for a type it does not know (the line is commented out).
fn placeholder(field: &FieldDoc) -> String {
    let t = inner_type(field.type_name);
    let last = t.rsplit("::").next().unwrap_or(t);
    let numeric = |p: char| {
        last.strip_prefix(p)
            .is_some_and(|bits| matches!(bits, "8" | "16" | "32" | "64" | "128" | "size"))
    };
    let empty = if is_text(field.type_name) {
        "\"\""
    } else if last == "bool" {
        "false"
    } else if numeric('u') || numeric('i') {
        "0"
    } else if last == "f32" || last == "f64" {
        "0.0"
    } else if ["Vec<", "HashSet<", "BTreeSet<", "VecDeque<"]
        .iter()
        .any(|p| last.starts_with(p))
    {
        "[]"
    } else {
        return format!("<{t}>");
    };
    empty.to_owned()
}

impl ConfigDoc {
    /// A commented TOML defaults file: every field that is not secret, at the place a
    /// `file@` source reads it (its doc comment above it), set to its `fallback` when it
    /// has one and commented out when it has none — read back through that source, it
    /// gives the same defaults. With no `file@` source in the struct, every field by its
    /// path.
    pub fn toml_template(&self) -> String {
        let entries = entries(self);
        let root = tree(&entries);
        let mut out = format!("# Defaults of {}.\n", self.owner);
        toml_node(&root, &mut Vec::new(), &mut out);
        out
    }

    /// [`ConfigDoc::toml_template`] as YAML.
    pub fn yaml_template(&self) -> String {
        let entries = entries(self);
        let root = tree(&entries);
        let mut out = format!("# Defaults of {}.\n", self.owner);
        yaml_node(&root, 0, &mut out);
        out
    }

    /// The defaults as a JSON file: the fields that have a `fallback`, at their places
    /// (JSON has no comments: see [`ConfigDoc::toml_template`] for a commented file).
    pub fn json_template(&self) -> String {
        let entries = entries(self);
        let mut root = serde_json::Map::new();
        for e in &entries {
            let Some(v) = &e.value else { continue };
            let mut at = &mut root;
            let (last, parents) = e.segments.split_last().expect("entries have segments");
            for p in parents {
                let slot = at
                    .entry(p.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(serde_json::Map::new());
                }
                at = slot.as_object_mut().expect("just made an object");
            }
            at.insert(last.clone(), v.clone());
        }
        let mut text =
            serde_json::to_string_pretty(&Value::Object(root)).unwrap_or_else(|_| "{}".to_owned());
        text.push('\n');
        text
    }
}

fn toml_node(node: &Node<'_>, path: &mut Vec<String>, out: &mut String) {
    if !path.is_empty() && (!node.leaves.is_empty() || node.tables.is_empty()) {
        out.push_str(&format!(
            "\n[{}]\n",
            path.iter().map(|p| key(p)).collect::<Vec<_>>().join(".")
        ));
    }
    for (k, e) in &node.leaves {
        out.push('\n');
        out.push_str(&comments(e.field, ""));
        match &e.value {
            Some(v) => out.push_str(&format!("{} = {}\n", key(k), toml_value(v))),
            None => out.push_str(&format!("# {} = {}\n", key(k), placeholder(e.field))),
        }
    }
    for (k, t) in &node.tables {
        path.push(k.clone());
        toml_node(t, path, out);
        path.pop();
    }
}

fn yaml_node(node: &Node<'_>, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    for (k, e) in &node.leaves {
        out.push_str(&comments(e.field, &indent));
        match &e.value {
            Some(v) => out.push_str(&format!("{indent}{}: {}\n", key(k), json_text(v))),
            None => out.push_str(&format!("{indent}# {}: {}\n", key(k), placeholder(e.field))),
        }
    }
    for (k, t) in &node.tables {
        // A table with nothing set is commented out too (an empty mapping would read null).
        if t.has_value() {
            out.push_str(&format!("{indent}{}:\n", key(k)));
        } else {
            out.push_str(&format!("{indent}# {}:\n", key(k)));
        }
        yaml_node(t, depth + 1, out);
    }
}
