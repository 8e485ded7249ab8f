//! [`PreflightReport`]: whether a configuration can be read, found before it is — per field
//! and per source it reads, reachable, authenticated, allowed to read the key, the key
//! there — without reading a secret value. Built by the derive's `preflight()` /
//! `preflight_with(&sources)`; each source checks its keys with
//! [`Source::preflight`](crate::Source::preflight).

use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use crate::config_doc::SourceRole;
use crate::report::{Age, write_table};
use crate::source::Access;

/// One source of one field, as a preflight found it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreflightRow {
    /// `App.database.password`.
    pub path: String,
    /// The path below the root struct: `database.password`.
    pub field: String,
    /// The source as the field names it: `vault`, `env`, `file@app.toml`.
    pub source: String,
    /// Its part for the field: own, override, default, fallback_to.
    pub role: SourceRole,
    /// What the source calls the key (`variable`, `secret`, `query`, `url`).
    pub key_label: String,
    /// The key checked.
    pub key: Option<String>,
    /// Where the source lives (never with credentials).
    pub location: Option<String>,
    /// What the check found.
    pub access: Access,
    /// What was checked or why it failed (never a value).
    pub detail: Option<String>,
    /// How long the source took to answer the checks of its batch.
    pub elapsed: Duration,
    /// Whether the field has something to stand in when no source has its value (a
    /// `fallback`, `None` for an `Option`, `Default` for a field with precedence
    /// sources): its rows may all be missing.
    pub has_default: bool,
}

impl PreflightRow {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        owner: &str,
        field: String,
        source: String,
        role: SourceRole,
        key_label: String,
        key: Option<String>,
        location: Option<String>,
        has_default: bool,
    ) -> Self {
        PreflightRow {
            path: format!("{owner}.{field}"),
            field,
            source,
            role,
            key_label,
            key,
            location,
            access: Access::Unchecked,
            detail: None,
            elapsed: Duration::ZERO,
            has_default,
        }
    }
}

impl PreflightRow {
    /// Whether the source answered (everything but [`Access::Unreachable`]).
    pub fn reachable(&self) -> bool {
        self.access != Access::Unreachable
    }

    /// Whether the source took the credentials (not unreachable nor unauthenticated).
    pub fn authenticated(&self) -> bool {
        !matches!(self.access, Access::Unreachable | Access::Unauthenticated)
    }

    /// Whether the key may be read (readable, missing or unchecked: not refused).
    pub fn allowed(&self) -> bool {
        matches!(
            self.access,
            Access::Readable | Access::Missing | Access::Unchecked
        )
    }

    /// Whether the key exists: `Some(true)` readable, `Some(false)` missing, `None` when
    /// the check could not say.
    pub fn exists(&self) -> Option<bool> {
        match self.access {
            Access::Readable => Some(true),
            Access::Missing => Some(false),
            _ => None,
        }
    }
}

/// What `preflight()` found: one row per field and source, and whether a fetch can be
/// expected to succeed.
///
/// ```
/// use component_model_async::{Access, AsyncAssign, EnvSource, Sources};
///
/// #[derive(AsyncAssign, Debug, Default)]
/// struct App {
///     #[component(fetch_from = "env", key = "APP_PORT")]
///     port: u16,
///     #[component(fetch_from = "env", key = "APP_HOST", fallback = "localhost")]
///     host: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([("APP_PORT", "8080")]));
/// let report = App::preflight_with(&sources).await;
/// assert!(report.is_ok()); // `host` is missing, and has its fallback
/// assert_eq!(report.rows_of("port").next().unwrap().access, Access::Readable);
/// assert_eq!(report.rows_of("host").next().unwrap().access, Access::Missing);
///
/// let sources = Sources::new().with_env(EnvSource::from_map([("APP_HOST", "db")]));
/// let report = App::preflight_with(&sources).await;
/// assert!(!report.is_ok()); // nothing can give `port` a value
/// assert_eq!(report.problems().count(), 1);
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PreflightReport {
    /// The root struct.
    pub owner: &'static str,
    /// One row per field and source, in planning order.
    pub rows: Vec<PreflightRow>,
    /// How long the whole preflight took.
    pub elapsed: Duration,
}

impl PreflightReport {
    pub(crate) fn new(owner: &'static str, rows: Vec<PreflightRow>, elapsed: Duration) -> Self {
        PreflightReport {
            owner,
            rows,
            elapsed,
        }
    }

    /// The rows of the field at `path` below the root (`port`, `database.host`), or with
    /// the root's name (`App.port`).
    pub fn rows_of<'r, 'p>(
        &'r self,
        path: &'p str,
    ) -> impl Iterator<Item = &'r PreflightRow> + use<'r, 'p> {
        self.rows
            .iter()
            .filter(move |r| r.field == path || r.path == path)
    }

    /// The rows in the way of a fetch: a source that failed its check (unreachable,
    /// refused, denied, invalid), and the rows of a field no source has a value for and
    /// nothing stands in for.
    pub fn problems(&self) -> impl Iterator<Item = &PreflightRow> {
        self.rows.iter().filter(move |r| {
            (r.access.is_failure() && !self.rescued(r))
                || (r.access == Access::Missing && self.unserved(&r.path))
        })
    }

    /// A failure of a field's own source whose `fallback_to` has the key: a fetch takes
    /// the value from there (the row still says what failed).
    fn rescued(&self, row: &PreflightRow) -> bool {
        row.role == SourceRole::Own
            && self.rows.iter().any(|r| {
                r.path == row.path && r.role == SourceRole::FallbackTo && r.access.is_readable()
            })
    }

    /// Whether no source is in the way and every field has a source with its key or
    /// something to stand in: a fetch can be expected to succeed.
    pub fn is_ok(&self) -> bool {
        self.problems().next().is_none()
    }

    /// `ExitCode::SUCCESS` when [`PreflightReport::is_ok`], else `FAILURE`: return it from
    /// `main` (`--preflight`).
    pub fn exit_code(&self) -> ExitCode {
        if self.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// A field none of whose sources has its key, with nothing to stand in.
    fn unserved(&self, path: &str) -> bool {
        let mut rows = self.rows.iter().filter(|r| r.path == path).peekable();
        let has_default = rows.peek().is_some_and(|r| r.has_default);
        !has_default && rows.all(|r| !r.access.is_readable())
    }
}

impl fmt::Display for PreflightReport {
    /// A header (`App: 4 checks in 35ms, 1 problem`), then a table: field, source, key,
    /// access, time, detail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems = self.problems().count();
        let n = self.rows.len();
        writeln!(
            f,
            "{}: {n} check{} in {}, {}",
            self.owner,
            if n == 1 { "" } else { "s" },
            Age(self.elapsed),
            match problems {
                0 => "ok".to_owned(),
                1 => "1 problem".to_owned(),
                p => format!("{p} problems"),
            }
        )?;
        let rows: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                let source = match (r.role, &r.location) {
                    (SourceRole::FallbackTo, Some(loc)) => {
                        format!("fallback_to {} ({loc})", r.source)
                    }
                    (SourceRole::FallbackTo, None) => format!("fallback_to {}", r.source),
                    (_, Some(loc)) => format!("{} ({loc})", r.source),
                    (_, None) => r.source.clone(),
                };
                let key = match &r.key {
                    Some(k) => format!("{} {k}", r.key_label),
                    None => "-".to_owned(),
                };
                [
                    r.path.clone(),
                    source,
                    key,
                    r.access.to_string(),
                    Age(r.elapsed).to_string(),
                    r.detail.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_table(
            f,
            &["FIELD", "SOURCE", "KEY", "ACCESS", "TIME", "DETAIL"],
            &rows,
        )
    }
}
