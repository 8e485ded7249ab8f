//! [`ConfigDoc`]: what a configuration is, for the people who run it — per field its type,
//! its sources and keys in precedence order, its fallback, whether it is secret, its rules,
//! its settings and its doc comment — as a table (`Display`), a Markdown page
//! ([`ConfigDoc::to_markdown`]), a defaults file ([`ConfigDoc::toml_template`],
//! [`ConfigDoc::yaml_template`], [`ConfigDoc::json_template`]) and a JSON Schema
//! ([`ConfigDoc::json_schema`]). Built by the derive's `config_doc()` /
//! `config_doc_with(&sources)`; nothing in it is fetched, and no value is in it but the
//! `fallback` literals of fields that are not secret.

mod schema;
mod template;

use std::fmt;
use std::time::Duration;

use crate::source::FieldSpec;

/// The description of a configuration struct, nested structs included.
///
/// ```
/// use component_model_async::{AsyncAssign, Sources};
///
/// #[derive(AsyncAssign, Debug, Default)]
/// #[component(defaults = ["file@app.toml"])]
/// struct App {
///     /// The port the service listens on.
///     #[component(fetch_from = "env", key = "APP_PORT", fallback = "8080", validate(range(min = 1, max = 65535)))]
///     port: u16,
///     /// The database password.
///     #[component(fetch_from = "env", key = "APP_DB_PASSWORD", secret)]
///     db_password: String,
/// }
///
/// let doc = App::config_doc_with(&Sources::new());
/// let port = doc.field("port").unwrap();
/// assert_eq!(port.type_name, "u16");
/// assert_eq!(port.doc, Some("The port the service listens on."));
/// assert_eq!(port.rules, ["range 1..=65535"]);
/// assert_eq!(port.sources[0].source, "env");
/// assert_eq!(port.sources[1].source, "file@app.toml");
/// assert!(doc.field("db_password").unwrap().secret);
///
/// // A defaults file: the fields a `file@` source reads, with their doc comments and
/// // fallbacks; the secret one is left out.
/// let toml = doc.toml_template();
/// assert!(toml.contains("# The port the service listens on.\n# u16; also read from env APP_PORT; range 1..=65535\nport = 8080\n"));
/// assert!(!toml.contains("db_password"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConfigDoc {
    /// The root struct.
    pub owner: &'static str,
    /// Every fetched field, in planning order (a nested struct's fields where it is).
    pub fields: Vec<FieldDoc>,
}

/// One field of a [`ConfigDoc`].
#[derive(Clone)]
#[non_exhaustive]
pub struct FieldDoc {
    /// The path below the root struct: `port`, `database.host`.
    pub path: String,
    /// The type as written: `u16`, `Option<String>`.
    pub type_name: &'static str,
    /// The field's `///` doc comment.
    pub doc: Option<&'static str>,
    /// Whether its value is secret (`secret`, a secret type, or a secret source): no
    /// template holds it; the schema marks it `writeOnly`.
    pub secret: bool,
    /// Where it is read, highest precedence first, then its `fallback_to`.
    pub sources: Vec<SourceDoc>,
    /// The `fallback` literal, as written (`None` for a secret field: a literal secret is
    /// not shown).
    pub fallback: Option<&'static str>,
    /// Whether an absent value is `None` (an `Option` field).
    pub optional: bool,
    /// The `validate(...)` rules, as messages name them: `range 1..=65535`.
    pub rules: Vec<&'static str>,
    /// What `#[component(...)]` says of the field: settings below (`cache_for`,
    /// `retry_attempts`, `watch`, ...).
    pub spec: &'static FieldSpec,
    /// The type's JSON Schema, when it is known (feature `schema` and the type
    /// implements `schemars::JsonSchema`).
    pub type_schema: Option<serde_json::Value>,
}

impl fmt::Debug for FieldDoc {
    /// Every part but the field's spec, which holds its `fallback` literal as written
    /// (a secret one too): the spec is shown by its source's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldDoc")
            .field("path", &self.path)
            .field("type_name", &self.type_name)
            .field("doc", &self.doc)
            .field("secret", &self.secret)
            .field("sources", &self.sources)
            .field("fallback", &self.fallback)
            .field("optional", &self.optional)
            .field("rules", &self.rules)
            .field(
                "spec",
                &format_args!("FieldSpec {{ source: {:?}, .. }}", self.spec.source),
            )
            .field("type_schema", &self.type_schema.is_some())
            .finish()
    }
}

/// One source a field is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceDoc {
    /// As written: `env`, `consul`, `file@config/{@profile}.toml`.
    pub source: String,
    /// Its part: the field's own `fetch_from`, a precedence source, or its `fallback_to`.
    pub role: SourceRole,
    /// What the source calls the key (`variable`, `key`, `secret`, `path`, `query`).
    pub key_label: String,
    /// The key as it is read: the convention resolved (`APP_DATABASE_HOST`,
    /// `config/app.toml#/database/host`); a key with `{@profile}`, `{field}` or `${VAR}`
    /// in it as written.
    pub key: Option<String>,
    /// For a `file` source: the place in the file (`/database/host`).
    pub pointer: Option<String>,
    /// Where the source lives, if it says (never with credentials).
    pub location: Option<String>,
    /// Why the field cannot be read from it with these sources (no source of that name).
    pub problem: Option<String>,
}

/// The part a source plays for a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceRole {
    /// Listed in `overrides`: above the field's own source.
    Override,
    /// The field's own `fetch_from` (or `fetcher`).
    Own,
    /// Listed in `defaults`: below the field's own source.
    Default,
    /// The field's `fallback_to`: asked when its own source fails.
    FallbackTo,
}

impl SourceRole {
    /// `override`, `own`, `default`, `fallback_to`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceRole::Override => "override",
            SourceRole::Own => "own",
            SourceRole::Default => "default",
            SourceRole::FallbackTo => "fallback_to",
        }
    }
}

impl SourceDoc {
    pub(crate) fn new(
        source: String,
        role: SourceRole,
        key_label: String,
        key: Option<String>,
        pointer: Option<String>,
        location: Option<String>,
        problem: Option<String>,
    ) -> Self {
        SourceDoc {
            source,
            role,
            key_label,
            key,
            pointer,
            location,
            problem,
        }
    }

    /// `env APP_PORT`, `file@app.toml /port`, `vault secret app/db`.
    fn short(&self) -> String {
        match (&self.pointer, &self.key) {
            (Some(p), _) => format!("{} {p}", self.source),
            (None, Some(k)) => format!("{} {k}", self.source),
            (None, None) => self.source.clone(),
        }
    }
}

impl FieldDoc {
    pub(crate) fn new(
        path: String,
        spec: &'static FieldSpec,
        secret: bool,
        sources: Vec<SourceDoc>,
        optional: bool,
        rules: Vec<&'static str>,
        type_schema: Option<serde_json::Value>,
    ) -> Self {
        FieldDoc {
            path,
            type_name: spec.type_name,
            doc: spec.doc,
            secret,
            sources,
            fallback: if secret { None } else { spec.fallback },
            optional,
            rules,
            spec,
            type_schema,
        }
    }

    /// The place the field's first `file@` precedence source reads, as segments.
    fn file_place(&self) -> Option<Vec<String>> {
        let pointer = self
            .sources
            .iter()
            .filter(|s| matches!(s.role, SourceRole::Override | SourceRole::Default))
            .filter(|s| s.source.starts_with("file@"))
            .find_map(|s| s.pointer.as_deref())?;
        Some(
            pointer
                .split('/')
                .skip(1)
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect(),
        )
    }

    /// What stands in when no source has the value: `fallback 8080`, `fallback_to
    /// local_cache`, `None`, `-`.
    pub fn default_text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(fb) = self.fallback {
            parts.push(format!("fallback {fb}"));
        }
        if let Some(to) = self.spec.fallback_to {
            parts.push(format!("fallback_to {to}"));
        }
        if self.optional {
            parts.push("None".to_owned());
        }
        if parts.is_empty() {
            "-".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The settings `#[component(...)]` gives the field's fetch: `cache_for 30s`,
    /// `retry 3`, `timeout 2s`, `circuit_breaker`, `watch`, `stream`.
    pub fn settings(&self) -> Vec<String> {
        let s = self.spec;
        let d = |d: Duration| humantime_short(d);
        let mut out = Vec::new();
        if let Some(t) = s.timeout {
            out.push(format!("timeout {}", d(t)));
        }
        if let Some(n) = s.retry_attempts {
            match s.retry_backoff {
                Some(b) => out.push(format!("retry {n} (backoff {})", d(b))),
                None => out.push(format!("retry {n}")),
            }
        }
        if let Some(c) = s.cache_for {
            match s.stale_for {
                Some(st) => out.push(format!("cache_for {} (stale_for {})", d(c), d(st))),
                None => out.push(format!("cache_for {}", d(c))),
            }
        }
        if s.circuit_breaker {
            out.push("circuit_breaker".to_owned());
        }
        if let Some(n) = s.max_concurrency {
            out.push(format!("max_concurrency {n}"));
        }
        if let Some(n) = s.max_size {
            out.push(format!("max_size {n}"));
        }
        if s.streamed {
            out.push("stream".to_owned());
        } else if s.watch {
            match s.watch_interval {
                Some(i) => out.push(format!("watch (every {})", d(i))),
                None => out.push("watch".to_owned()),
            }
        }
        out
    }
}

/// `2s`, `1m 30s`, `250ms`.
fn humantime_short(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) || ms == 0 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

impl ConfigDoc {
    pub(crate) fn new(owner: &'static str, fields: Vec<FieldDoc>) -> Self {
        ConfigDoc { owner, fields }
    }

    /// The field at `path` below the root (`port`, `database.host`).
    pub fn field(&self, path: &str) -> Option<&FieldDoc> {
        self.fields.iter().find(|f| f.path == path)
    }

    /// Whether some field is read from a `file@` precedence source.
    fn has_file_sources(&self) -> bool {
        self.fields.iter().any(|f| f.file_place().is_some())
    }

    /// Where a defaults file holds `field`: the place its first `file@` precedence source
    /// reads (`/database/host` → `["database", "host"]`), or, when no field of the struct
    /// has one, its path; `None` for a field no `file@` source reads.
    pub(crate) fn place_of(&self, field: &FieldDoc) -> Option<Vec<String>> {
        let segments: Vec<String> = if self.has_file_sources() {
            field.file_place()?
        } else {
            field.path.split('.').map(str::to_owned).collect()
        };
        (!segments.is_empty() && segments.iter().all(|s| !s.is_empty())).then_some(segments)
    }

    /// A Markdown page: a table of every field (path, type, sources and keys in precedence
    /// order, default, secret, rules, settings), then each field's doc comment.
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
    /// let md = App::config_doc_with(&Sources::new()).to_markdown();
    /// assert!(md.starts_with("# App\n"));
    /// assert!(md.contains("| `port` | `u16` | env `APP_PORT` | fallback `8080` | no |"));
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.owner);
        out.push_str(
            "| Field | Type | Sources (highest first) | Default | Secret | Rules | Settings |\n",
        );
        out.push_str("|---|---|---|---|---|---|---|\n");
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', "<br>");
        for f in &self.fields {
            let sources: Vec<String> = f
                .sources
                .iter()
                .map(|s| {
                    let key = s.pointer.as_ref().or(s.key.as_ref());
                    let mut text = match key {
                        Some(k) => format!("{} `{}`", cell(&s.source), cell(k)),
                        None => cell(&s.source),
                    };
                    if s.role == SourceRole::FallbackTo {
                        text = format!("fallback_to {text}");
                    }
                    text
                })
                .collect();
            let default = match (f.fallback, f.spec.fallback_to, f.optional) {
                (None, None, false) => "-".to_owned(),
                _ => {
                    let mut parts = Vec::new();
                    if let Some(fb) = f.fallback {
                        parts.push(format!("fallback `{}`", cell(fb).replace('`', "'")));
                    }
                    if let Some(to) = f.spec.fallback_to {
                        parts.push(format!("fallback_to `{to}`"));
                    }
                    if f.optional {
                        parts.push("`None`".to_owned());
                    }
                    parts.join(", ")
                }
            };
            let rules: Vec<String> = f.rules.iter().map(|r| format!("`{}`", cell(r))).collect();
            let settings = f.settings().join(", ");
            out.push_str(&format!(
                "| `{}` | `{}` | {} | {} | {} | {} | {} |\n",
                f.path,
                cell(f.type_name),
                if sources.is_empty() {
                    "-".to_owned()
                } else {
                    sources.join("<br>")
                },
                default,
                if f.secret { "yes" } else { "no" },
                if rules.is_empty() {
                    "-".to_owned()
                } else {
                    rules.join(", ")
                },
                if settings.is_empty() {
                    "-".to_owned()
                } else {
                    cell(&settings)
                },
            ));
        }
        let documented: Vec<&FieldDoc> = self.fields.iter().filter(|f| f.doc.is_some()).collect();
        if !documented.is_empty() {
            out.push('\n');
            for f in documented {
                out.push_str(&format!(
                    "### `{}`\n\n{}\n\n",
                    f.path,
                    f.doc.unwrap_or_default()
                ));
            }
        }
        let problems: Vec<String> = self
            .fields
            .iter()
            .flat_map(|f| {
                f.sources.iter().filter_map(move |s| {
                    s.problem
                        .as_ref()
                        .map(|p| format!("- `{}` from `{}`: {}\n", f.path, s.source, cell(p)))
                })
            })
            .collect();
        if !problems.is_empty() {
            out.push_str("\n**Cannot be read with these sources:**\n\n");
            out.extend(problems);
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }
}

impl fmt::Display for ConfigDoc {
    /// A table: field, type, sources (highest first), default, secret, rules; then each
    /// field's doc comment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.fields.len();
        writeln!(
            f,
            "{}: {n} field{}",
            self.owner,
            if n == 1 { "" } else { "s" }
        )?;
        let rows: Vec<Vec<String>> = self
            .fields
            .iter()
            .map(|d| {
                let sources: Vec<String> = d
                    .sources
                    .iter()
                    .map(|s| match s.role {
                        SourceRole::FallbackTo => format!("fallback_to {}", s.short()),
                        _ => s.short(),
                    })
                    .collect();
                let mut rules = d.rules.join(", ");
                let settings = d.settings().join(", ");
                if !settings.is_empty() {
                    if !rules.is_empty() {
                        rules.push_str("; ");
                    }
                    rules.push_str(&settings);
                }
                vec![
                    d.path.clone(),
                    d.type_name.to_owned(),
                    if sources.is_empty() {
                        "-".to_owned()
                    } else {
                        sources.join(" > ")
                    },
                    d.default_text(),
                    if d.secret { "secret" } else { "" }.to_owned(),
                    if rules.is_empty() {
                        "-".to_owned()
                    } else {
                        rules
                    },
                ]
                .into_iter()
                // One line per field: a literal's line break is shown as `\n`.
                .map(|cell| cell.replace('\n', "\\n"))
                .collect()
            })
            .collect();
        crate::report::write_table(
            f,
            &[
                "FIELD",
                "TYPE",
                "SOURCES (HIGHEST FIRST)",
                "DEFAULT",
                "SECRET",
                "RULES",
            ],
            &rows,
        )?;
        for d in &self.fields {
            if let Some(doc) = d.doc {
                let mut lines = doc.lines();
                writeln!(f, "  {}: {}", d.path, lines.next().unwrap_or_default())?;
                for line in lines {
                    writeln!(f, "    {line}")?;
                }
            }
        }
        // What cannot be read with these sources (an unregistered source's name).
        for d in &self.fields {
            for s in &d.sources {
                if let Some(problem) = &s.problem {
                    writeln!(f, "  problem: {} from {}: {problem}", d.path, s.source)?;
                }
            }
        }
        Ok(())
    }
}
