//! [`FieldPath`]: a field as a source reads it by convention, when nothing names its key —
//! a precedence source (`overrides = ["env"]`, `defaults = ["file@config/default.toml"]`)
//! or a `fetch_from` field that names no key. Each source turns it into a request
//! ([`Source::convention`](crate::Source::convention)).

use std::borrow::Cow;

/// A field's place, as a source's convention reads it: its path below the struct
/// fetched, the variable the environment names it by, the struct's key prefix and table,
/// and the precedence source's `@argument`.
///
/// | source | convention |
/// |---|---|
/// | `env` | the variable [`FieldPath::env_name`] (`env_prefix` + FIELD, or `env = "..."`) |
/// | `args` | `--<path>` (`--db.port`) |
/// | `consul`, `etcd`, others | the key `{argument}{key_prefix}{path with /}` |
/// | `redis` | the key `{argument}{key_prefix}{path with :}` |
/// | `file`, `http` | the document at `argument`, pointer `/{path with /}` |
/// | `vault` | the secret at `argument`, its member at pointer `/{path with /}` |
/// | `database` | the row `key = path` of the table `argument`, else the struct's `table` (default `config`) |
///
/// ```
/// use component_model_async::FieldPath;
///
/// let f = FieldPath::new("db.port").with_key_prefix("app/").with_argument(Some("prod/"));
/// assert_eq!(f.key('/'), "prod/app/db/port");
/// assert_eq!(f.pointer(), "/db/port");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FieldPath<'a> {
    /// The field's path below the struct fetched, dot-separated: `db.port`.
    pub path: &'a str,
    /// The variable an environment names the field by: `env = "..."`, else the struct's
    /// `env_prefix` and the path upper-cased (`APP_DB_PORT`).
    pub env_name: Cow<'a, str>,
    /// The struct's `key_prefix` with those of the `nested` fields above the field.
    pub key_prefix: Cow<'a, str>,
    /// The key/value table a database reads: the struct's `table`, default `config`.
    pub table: &'a str,
    /// The precedence source's `@argument`, `{@profile}` replaced (`None` without one).
    pub argument: Option<&'a str>,
}

impl<'a> FieldPath<'a> {
    /// The field at `path`, with the default variable name (the path upper-cased, `.`
    /// as `_`), no key prefix, table `config` and no argument.
    pub fn new(path: &'a str) -> Self {
        FieldPath {
            path,
            env_name: Cow::Owned(path.replace('.', "_").to_uppercase()),
            key_prefix: Cow::Borrowed(""),
            table: "config",
            argument: None,
        }
    }

    /// Sets the variable name.
    #[must_use]
    pub fn with_env_name(mut self, name: impl Into<Cow<'a, str>>) -> Self {
        self.env_name = name.into();
        self
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<Cow<'a, str>>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the table.
    #[must_use]
    pub fn with_table(mut self, table: &'a str) -> Self {
        self.table = table;
        self
    }

    /// Sets the argument.
    #[must_use]
    pub fn with_argument(mut self, argument: Option<&'a str>) -> Self {
        self.argument = argument;
        self
    }

    /// The path with `sep` between its segments: `db/port`.
    pub fn joined(&self, sep: char) -> String {
        self.path.replace('.', sep.encode_utf8(&mut [0; 4]))
    }

    /// `{argument}{key_prefix}{path with sep}`: a key-value store's key.
    pub fn key(&self, sep: char) -> String {
        format!(
            "{}{}{}",
            self.argument.unwrap_or_default(),
            self.key_prefix,
            self.joined(sep)
        )
    }

    /// The path as a JSON pointer into a document: `/db/port` (`~` and `/` inside a
    /// segment escaped as the pointer syntax says).
    pub fn pointer(&self) -> String {
        self.path
            .split('.')
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect()
    }
}
