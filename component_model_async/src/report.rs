//! The fetch report: what a person wants to see at start-up — for each field, where its
//! value came from and how (fetched, from the cache, stale, after retries, from a
//! fallback, from storage), how long it took, or why it failed; for a field with
//! precedence sources, which one won and what the others had. The value a field took is
//! never shown, only keys; a value that lost is shown only when neither its field nor its
//! source is secret, so a report is safe to log.
//!
//! Layers say what they did for a request through the fetch's
//! [`FetchContext`](crate::FetchContext): a no-op unless a report is being collected.

use std::fmt;
use std::time::Duration;

use crate::error::{ComponentError, ErrorKind};
use crate::source::Revision;

/// How one field got its value, or did not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Fetched from its source.
    Fetched,
    /// Answered from the cache (`cache_for`), fresh.
    CacheHit,
    /// The refresh failed and an expired cached value was served; its age.
    Stale {
        /// Time since the value was fetched.
        age: Duration,
    },
    /// Fetched after `retries` failed attempts.
    Retried {
        /// Attempts that failed before the one that answered.
        retries: u32,
    },
    /// The source failed or had nothing; the `fallback` literal was used.
    Fallback,
    /// The source failed; the `fallback_to` source answered.
    FallbackTo {
        /// The `fallback_to` source.
        source: &'static str,
        /// When that source served a stored value (`local_cache`), its age.
        age: Option<Duration>,
    },
    /// Not found, and the field is an `Option`: `None`.
    Absent,
    /// No precedence source had a value: the field's `Default`.
    Default,
    /// Fetched, and refused by a validation rule (see the errors): the rules that
    /// refused it, as `validate(...)` names them (`range 1..=65535`).
    Invalid {
        /// The rules, comma-separated.
        rule: String,
    },
    /// Failed (see the errors).
    Failed(ErrorKind),
}

impl Outcome {
    /// Whether the field has a value (every outcome but [`Outcome::Failed`] and
    /// [`Outcome::Invalid`]).
    pub fn is_ok(&self) -> bool {
        !matches!(self, Outcome::Failed(_) | Outcome::Invalid { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fetched => f.write_str("fetched"),
            Outcome::CacheHit => f.write_str("cache hit"),
            Outcome::Stale { age } => write!(f, "stale ({} old)", Age(*age)),
            Outcome::Retried { retries: 1 } => f.write_str("fetched after 1 retry"),
            Outcome::Retried { retries } => write!(f, "fetched after {retries} retries"),
            Outcome::Fallback => f.write_str("fallback literal"),
            Outcome::FallbackTo { source, age: None } => write!(f, "fallback_to {source}"),
            Outcome::FallbackTo {
                source,
                age: Some(age),
            } => write!(f, "fallback_to {source} (stored {} ago)", Age(*age)),
            Outcome::Absent => f.write_str("absent (None)"),
            Outcome::Default => f.write_str("absent everywhere (Default)"),
            Outcome::Invalid { rule } => write!(f, "INVALID: {rule}"),
            Outcome::Failed(kind) => write!(f, "FAILED: {kind}"),
        }
    }
}

/// Writes `rows` under `header` as aligned columns, each line indented by two spaces: the
/// tables of the fetch report, the config doc and the preflight report.
pub(crate) fn write_table<R: AsRef<[String]>>(
    f: &mut fmt::Formatter<'_>,
    header: &[&str],
    rows: &[R],
) -> fmt::Result {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let lines = std::iter::once(header.as_slice()).chain(rows.iter().map(AsRef::as_ref));
    for row in lines {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(f, "  {}", line.trim_end())?;
    }
    Ok(())
}

/// A duration as a person reads it: `850ms`, `12s`, `3m 5s`, `2h 1m`.
pub(crate) struct Age(pub(crate) Duration);

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let s = self.0.as_secs();
        match () {
            () if ms < 1000 => write!(f, "{ms}ms"),
            () if s < 60 => write!(f, "{s}s"),
            () if s < 3600 => write!(f, "{}m {}s", s / 60, s % 60),
            () => write!(f, "{}h {}m", s / 3600, s % 3600 / 60),
        }
    }
}

/// One field of a [`FetchReport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FieldReport {
    /// `AppConfig.replica.port`.
    pub path: String,
    /// The source named by `fetch_from` (or the fetcher expression).
    pub source: &'static str,
    /// What the key is called at that source (`key`, `secret`, `query`, `url`, `env variable`).
    pub key_label: String,
    /// The key as sent (prefixes and `${VAR}`s applied; never a value).
    pub key: Option<String>,
    /// The key bound into a `query` (its `key`), when there is one.
    pub bound_key: Option<String>,
    /// Where the source lives (an address, a database), when it says.
    pub location: Option<String>,
    /// Time until the field's answer arrived (its batch's time; fallbacks included).
    pub elapsed: Duration,
    /// How the field got its value.
    pub outcome: Outcome,
    /// For a field with precedence sources (`overrides`, `defaults`): each source asked,
    /// highest first, with what it answered. Empty for any other field.
    pub precedence: Vec<PrecedenceReport>,
    /// The fields this one waited for (those its keys reference, `{region}`), as their
    /// [`path`](FieldReport::path)s. Empty for a field that references none.
    pub waited_for: Vec<String>,
    /// The answered value's revision in its backend, when the source says (etcd's
    /// `mod_revision`, a NATS KV sequence, Consul's `ModifyIndex`): shown after the key.
    /// `None` for a value a cache or a fallback answered.
    pub revision: Option<Revision>,
}

/// What one precedence source answered for a field ([`FieldReport::precedence`]).
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, PrecedenceOutcome, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// #[component(overrides = ["env"], defaults = ["args"])]
/// struct App {
///     port: u16,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new()
///     .with_env(EnvSource::from_map([("PORT", "8080")]))
///     .with_args(["app", "--port", "80"]);
/// let report = App::fetch_report_with(&sources).await;
/// let tried = &report.fields[0].precedence;
/// assert_eq!(tried[0].source, "env");
/// assert_eq!(tried[0].outcome, PrecedenceOutcome::Won);
/// assert_eq!(tried[1].outcome, PrecedenceOutcome::Lost { value: Some("80".into()) });
/// println!("{report}"); // the winner, and what lost
/// # });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrecedenceReport {
    /// The precedence source as written, `{@profile}` replaced: `file@config/prod.toml`.
    pub source: String,
    /// The key it was asked for (`variable APP_PORT`'s `APP_PORT`), if it has one.
    pub key: Option<String>,
    /// What it answered.
    pub outcome: PrecedenceOutcome,
    /// Time until its answer arrived.
    pub elapsed: Duration,
}

/// What a precedence source answered for a field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrecedenceOutcome {
    /// Its value is the field's.
    Won,
    /// It had a value, and a source above it won. `value` is that value as text, `None`
    /// when the field or the source is secret (or the value is no text).
    Lost {
        /// The value that lost, when it may be shown.
        value: Option<String>,
    },
    /// It had no value for the field.
    Absent,
    /// It failed (below the winner this is only reported; above it, the field failed).
    Failed(ErrorKind),
}

impl fmt::Display for PrecedenceOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrecedenceOutcome::Won => f.write_str("won"),
            PrecedenceOutcome::Lost { value: Some(v) } => write!(f, "lost ({v:?})"),
            PrecedenceOutcome::Lost { value: None } => f.write_str("lost (value hidden)"),
            PrecedenceOutcome::Absent => f.write_str("absent"),
            PrecedenceOutcome::Failed(kind) => write!(f, "FAILED: {kind}"),
        }
    }
}

/// A fetch's value (or errors) with, per field, where the value came from: the generated
/// `fetch_report()`/`fetch_report_with(&sources)` return it. `Display` prints a table.
///
/// ```
/// use component_model_async::{AsyncAssign, EnvSource, Outcome, Sources};
///
/// #[derive(AsyncAssign, Debug)]
/// struct App {
///     #[component(fetch_from = "env")]
///     port: u16,
///     #[component(fetch_from = "env", fallback = "info")]
///     log_level: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sources = Sources::new().with_env(EnvSource::from_map([("PORT", "8080")]));
/// let report = App::fetch_report_with(&sources).await;
/// assert_eq!(report.fields[0].outcome, Outcome::Fetched);
/// assert_eq!(report.fields[1].outcome, Outcome::Fallback);
/// println!("{report}");
/// let app = report.into_result().unwrap();
/// assert_eq!(app.port, 8080);
/// # });
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct FetchReport<T> {
    /// The struct, or every error (as `fetch_all_components` returns them).
    pub result: Result<T, Vec<ComponentError>>,
    /// One row per fetched field of the tree, in field order.
    pub fields: Vec<FieldReport>,
    /// The struct whose fetch this is.
    pub owner: &'static str,
    /// Time the whole fetch took.
    pub elapsed: Duration,
}

impl<T> FetchReport<T> {
    /// The value, or the errors.
    pub fn into_result(self) -> Result<T, Vec<ComponentError>> {
        self.result
    }

    /// Whether every field has a value.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The chain of fields that took longest, each waiting for the one before it (see
    /// [`FieldReport::waited_for`]): what the fetch cost, since fields that wait for
    /// nothing in common are fetched concurrently. The paths of its fields, first to
    /// last; one field when no field waits for another; empty without fields.
    ///
    /// ```
    /// use component_model_async::{AsyncAssign, EnvSource, Sources};
    ///
    /// #[derive(AsyncAssign, Debug)]
    /// struct App {
    ///     #[component(fetch_from = "env", key = "REGION")]
    ///     region: String,
    ///     #[component(fetch_from = "env", key = "POOL_{region}")]
    ///     pool: u32,
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let sources = Sources::new().with_env(EnvSource::from_map([("REGION", "EU"), ("POOL_EU", "8")]));
    /// let report = App::fetch_report_with(&sources).await;
    /// assert_eq!(report.fields[1].key.as_deref(), Some("POOL_EU"));
    /// assert_eq!(report.fields[1].waited_for, ["App.region"]);
    /// assert_eq!(report.critical_path(), ["App.region", "App.pool"]);
    /// # });
    /// ```
    pub fn critical_path(&self) -> Vec<String> {
        let rows = &self.fields;
        let at = |path: &str| rows.iter().position(|r| r.path == path);
        // When each field's answer came: after the last of its inputs', plus its own time.
        let mut ends: Vec<Option<(Duration, Option<usize>)>> = vec![None; rows.len()];
        fn end(
            i: usize,
            rows: &[FieldReport],
            at: &dyn Fn(&str) -> Option<usize>,
            ends: &mut [Option<(Duration, Option<usize>)>],
            depth: usize,
        ) -> Duration {
            if let Some((t, _)) = ends[i] {
                return t;
            }
            // Being walked: a field waiting for it again (a cycle) starts at zero.
            ends[i] = Some((Duration::ZERO, None));
            let mut start = (Duration::ZERO, None);
            if depth < rows.len() {
                for input in rows[i].waited_for.iter().filter_map(|p| at(p)) {
                    let t = end(input, rows, at, ends, depth + 1);
                    if start.1.is_none() || t > start.0 {
                        start = (t, Some(input));
                    }
                }
            }
            let t = start.0 + rows[i].elapsed;
            ends[i] = Some((t, start.1));
            t
        }
        let mut last: Option<(Duration, usize)> = None;
        for i in 0..rows.len() {
            let t = end(i, rows, &at, &mut ends, 0);
            let longer = match last {
                None => true,
                // Ties go to the longer chain, then to the later field.
                Some((best, _)) => t >= best,
            };
            if longer {
                last = Some((t, i));
            }
        }
        let mut path = Vec::new();
        let mut next = last.map(|(_, i)| i);
        while let Some(i) = next {
            if path.len() > rows.len() {
                break;
            }
            path.push(rows[i].path.clone());
            next = ends[i].and_then(|(_, input)| input);
        }
        path.reverse();
        path
    }
}

impl<T> fmt::Display for FetchReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed = self.fields.iter().filter(|r| !r.outcome.is_ok()).count();
        let n = self.fields.len();
        writeln!(
            f,
            "{}: {n} field{} in {}, {failed} failed",
            self.owner,
            if n == 1 { "" } else { "s" },
            Age(self.elapsed),
        )?;
        let rows: Vec<[String; 5]> = self
            .fields
            .iter()
            .map(|r| {
                let mut key = match (&r.key, &r.bound_key) {
                    (Some(k), Some(b)) => format!("{} {k} [{b}]", r.key_label),
                    (Some(k), None) => format!("{} {k}", r.key_label),
                    (None, _) => String::from("-"),
                };
                if let Some(revision) = &r.revision {
                    key.push_str(&format!(" @{revision}"));
                }
                // A field with precedence sources: the one that won.
                let name = r
                    .precedence
                    .iter()
                    .find(|p| p.outcome == PrecedenceOutcome::Won)
                    .map_or(r.source, |p| p.source.as_str());
                let source = match &r.location {
                    Some(loc) => format!("{name} ({loc})"),
                    None => name.to_owned(),
                };
                [
                    r.path.clone(),
                    source,
                    key,
                    r.outcome.to_string(),
                    Age(r.elapsed).to_string(),
                ]
            })
            .collect();
        write_table(f, &["FIELD", "SOURCE", "KEY", "OUTCOME", "TIME"], &rows)?;
        // Fields that waited for others: the chain that cost the fetch its time.
        if self.fields.iter().any(|r| !r.waited_for.is_empty()) {
            writeln!(f, "  critical path: {}", self.critical_path().join(" → "))?;
        }
        for r in self.fields.iter().filter(|r| !r.precedence.is_empty()) {
            let tried: Vec<String> = r
                .precedence
                .iter()
                .map(|p| match &p.key {
                    Some(key) => format!("{} [{key}] {}", p.source, p.outcome),
                    None => format!("{} {}", p.source, p.outcome),
                })
                .collect();
            writeln!(f, "  {}: {}", r.path, tried.join("; "))?;
        }
        if let Err(errors) = &self.result {
            for e in errors {
                writeln!(f, "  error: {e}")?;
            }
        }
        Ok(())
    }
}
