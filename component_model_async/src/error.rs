//! The error model: [`ComponentError`] with provenance (field, source, native key) and a
//! [`ErrorKind`] a caller can act on; [`SourceError`] is what a [`Source`](crate::Source)
//! returns before the field is known.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// A boxed error from a user's fetcher or a backend driver.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source answered, and the key does not exist there.
    NotFound,
    /// The source could not be reached or failed (I/O error, connection refused, 5xx).
    Unavailable,
    /// The source refused the credentials (401/403, bad token, bad password).
    Unauthorized,
    /// A value arrived but could not be converted into the field's type.
    Decode,
    /// The fetch took longer than its timeout.
    Timeout,
    /// A circuit breaker is open for this source.
    CircuitOpen,
    /// A response or value was larger than its size limit (`with_max_body`, `max_size`).
    TooLarge,
    /// The configuration of the fetch itself is wrong (unknown source, missing `${VAR}`, ...).
    Config,
    /// Several errors; see [`ComponentError::errors`].
    Multiple,
    /// A user's fetcher failed with its own error (see `source()`).
    Other,
    /// The value was fetched, and a validator refused it (a [`Live`](crate::Live)'s).
    Invalid,
    /// The field was not fetched: a field its keys reference (`{region}`) failed or is
    /// absent.
    NotFetched,
}

impl ErrorKind {
    /// A short phrase used in messages ("not found", "unavailable", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Decode => "cannot decode",
            ErrorKind::Timeout => "timed out",
            ErrorKind::CircuitOpen => "circuit open",
            ErrorKind::TooLarge => "too large",
            ErrorKind::Config => "misconfigured",
            ErrorKind::Multiple => "several errors",
            ErrorKind::Other => "failed",
            ErrorKind::Invalid => "rejected by validation",
            ErrorKind::NotFetched => "not fetched",
        }
    }

    /// Whether trying again may help (used by `retry_attempts`).
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a [`Source`](crate::Source), before it is tied to a field.
///
/// Sources never put a fetched value into a `SourceError`; the message is about the
/// request (status code, driver error), so it is safe to show. The engine adds the field,
/// source and key when it turns this into a [`ComponentError`].
///
/// It is cheap to clone (the cause is shared), so one failed round trip can answer every
/// request that waited on it.
///
/// ```
/// use component_model_async::{ErrorKind, SourceError};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let e = SourceError::unavailable(io).with_message("consul at 127.0.0.1:8500");
/// assert_eq!(e.kind(), ErrorKind::Unavailable);
/// assert_eq!(e.to_string(), "unavailable: consul at 127.0.0.1:8500");
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug, Clone)]
pub struct SourceError {
    kind: ErrorKind,
    message: Option<String>,
    cause: Option<SharedError>,
}

/// An underlying error shared by the clones of a [`SourceError`].
pub type SharedError = std::sync::Arc<dyn StdError + Send + Sync + 'static>;

impl SourceError {
    /// A new error of `kind` with no message.
    pub fn new(kind: ErrorKind) -> Self {
        SourceError {
            kind,
            message: None,
            cause: None,
        }
    }

    /// The key does not exist in the source.
    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound)
    }

    /// The source could not be reached or failed; `cause` is kept as `source()`.
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Unavailable).with_cause(cause)
    }

    /// Adds a human-readable detail ("HTTP 503 from ...").
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Adds the underlying error.
    pub fn with_cause(mut self, cause: impl Into<BoxError>) -> Self {
        self.cause = Some(SharedError::from(cause.into()));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail message, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The underlying error, if any.
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    /// This error as the error of a field: the message becomes the detail and the
    /// underlying cause (not this error again) the `source()`.
    pub(crate) fn into_field_error(self, builder: FieldErrorBuilder) -> ComponentError {
        let builder = match self.message {
            Some(m) => builder.detail(m),
            None => builder,
        };
        match self.cause {
            Some(c) => builder.cause(c).build(),
            None => builder.build(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl StdError for SourceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause.as_deref().map(|e| e as _)
    }
}

/// Where a failing value was supposed to come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The struct the field belongs to, e.g. `AppConfig`.
    pub owner: Option<Cow<'static, str>>,
    /// The field name, e.g. `port`.
    pub field: Option<Cow<'static, str>>,
    /// The source name from `fetch_from`, e.g. `consul`.
    pub source: Option<Cow<'static, str>>,
    /// What the key is called in that source: "variable", "key", "secret", "query", "url".
    pub key_label: Cow<'static, str>,
    /// The native key: env var, Consul key, Vault path, SQL query or URL.
    pub key: Option<String>,
    /// The key bound into a query (`query = "... $1", key = "checkout"`), shown after it.
    pub bound_key: Option<String>,
    /// Where the source lives ("http://127.0.0.1:8500"), without credentials.
    pub location: Option<String>,
}

/// The error of one field; see [`ComponentError`].
///
/// Cheap to clone: the cause is shared. Two errors are equal when they say the same thing
/// (kind, provenance, rule, detail, and the cause's text).
#[derive(Debug, Clone)]
pub struct FieldError {
    kind: ErrorKind,
    provenance: Provenance,
    /// The validation rule that refused the value (`range 1..=65535`).
    rule: Option<Cow<'static, str>>,
    detail: Option<String>,
    cause: Option<SharedError>,
}

impl PartialEq for FieldError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.provenance == other.provenance
            && self.rule == other.rule
            && self.detail == other.detail
            && self.cause.as_ref().map(ToString::to_string)
                == other.cause.as_ref().map(ToString::to_string)
    }
}

impl Eq for FieldError {}

/// An error fetching or converting components.
///
/// Every error of one field says which field, which source and which native key it
/// concerns; a secret value never appears in it (decode errors of secret fields say only
/// how long the value was).
///
/// ```
/// use component_model_async::{ComponentError, ErrorKind};
///
/// let err = ComponentError::field(ErrorKind::NotFound)
///     .in_field("AppConfig", "port")
///     .from_source("consul", "key", "app/port")
///     .build();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "AppConfig.port: consul key `app/port`: not found");
/// ```
#[derive(thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentError {
    /// One field could not be fetched or converted.
    #[error(transparent)]
    Field(Box<FieldError>),
    /// The whole fetch did not finish within its timeout.
    #[error("fetching {target} timed out after {}", humanize(*.after))]
    Timeout {
        /// The struct being fetched.
        target: Cow<'static, str>,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// Several errors, one per field (display prints one per line).
    #[error("{}", display_many(.0))]
    Multiple(Vec<ComponentError>),
    /// The whole value was fetched, and a validator refused it.
    #[error("{target}: rejected by validation: {reason}")]
    Invalid {
        /// The struct.
        target: Cow<'static, str>,
        /// The validator's message.
        reason: String,
    },
}

impl fmt::Debug for ComponentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentError::Field(e) => fmt::Debug::fmt(e, f),
            ComponentError::Timeout { target, after } => f
                .debug_struct("Timeout")
                .field("target", target)
                .field("after", after)
                .finish(),
            ComponentError::Multiple(v) => f.debug_tuple("Multiple").field(v).finish(),
            ComponentError::Invalid { target, reason } => f
                .debug_struct("Invalid")
                .field("target", target)
                .field("reason", reason)
                .finish(),
        }
    }
}

/// `16 MiB`, `64 KiB`, `300 bytes`: a size for messages.
pub(crate) fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    match n {
        n if n >= GIB && n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

pub(crate) fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Every error, one per line; errors of several fields with one source-wide cause (the
/// same source, location, kind and message: a server down, a missing registration) share
/// one line that lists the fields.
fn display_many(errors: &[ComponentError]) -> String {
    let mut s = format!("{} components failed:", errors.len());
    let mut shown = vec![false; errors.len()];
    for (i, e) in errors.iter().enumerate() {
        if shown[i] {
            continue;
        }
        let line = match e.shared_cause() {
            Some(cause) => {
                let mut fields = Vec::new();
                for (j, other) in errors.iter().enumerate().skip(i) {
                    if !shown[j] && other.shared_cause().as_ref() == Some(&cause) {
                        shown[j] = true;
                        fields.push(other.field_path());
                    }
                }
                if fields.len() > 1 {
                    format!("{cause} — fields: {}", fields.join(", "))
                } else {
                    e.to_string()
                }
            }
            None => e.to_string(),
        };
        shown[i] = true;
        for (k, part) in line.lines().enumerate() {
            s.push_str(if k == 0 { "\n  - " } else { "\n    " });
            s.push_str(part);
        }
    }
    s
}

impl ComponentError {
    /// For an error of a kind that concerns a whole source (unavailable, timed out,
    /// misconfigured, circuit open) with a message: the part of
    /// its text that other fields failing the same way share (no field, no key).
    fn shared_cause(&self) -> Option<String> {
        let ComponentError::Field(e) = self else {
            return None;
        };
        // Kinds that can concern a whole source; `too large` and `unauthorized` are often
        // per key (a `max_size`, a key the token may not read), so their keys stay shown.
        let source_wide = matches!(
            e.kind,
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::Config
                | ErrorKind::CircuitOpen
        );
        if !source_wide || (e.detail.is_none() && e.cause.is_none()) {
            return None;
        }
        let p = &e.provenance;
        let mut s = String::new();
        if let Some(src) = &p.source {
            s.push_str(src);
            if let Some(loc) = &p.location {
                s.push_str(&format!(" at {loc}"));
            }
            s.push_str(": ");
        }
        s.push_str(e.kind.as_str());
        if let Some(d) = &e.detail {
            s.push_str(&format!(": {d}"));
        }
        if let Some(c) = e
            .cause
            .as_ref()
            .map(|c| c.to_string())
            .filter(|c| !c.is_empty())
        {
            s.push_str(&format!(": {c}"));
        }
        Some(s)
    }

    /// `Owner.field`, for lists of fields.
    fn field_path(&self) -> String {
        match self.provenance() {
            Some(Provenance {
                owner: Some(o),
                field: Some(f),
                ..
            }) => format!("{o}.{f}"),
            Some(Provenance { field: Some(f), .. }) => f.to_string(),
            _ => "?".to_owned(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.provenance;
        match (&p.owner, &p.field) {
            (Some(o), Some(fl)) => write!(f, "{o}.{fl}: ")?,
            (None, Some(fl)) => write!(f, "{fl}: ")?,
            (Some(o), None) => write!(f, "{o}: ")?,
            _ => {}
        }
        if let Some(src) = &p.source {
            f.write_str(src)?;
            if let Some(key) = &p.key {
                write!(f, " {} `{key}`", p.key_label)?;
            }
            if let Some(bound) = &p.bound_key {
                write!(f, " with key `{bound}`")?;
            }
            if let Some(loc) = &p.location {
                write!(f, " at {loc}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(self.kind.as_str())?;
        if let Some(rule) = &self.rule {
            write!(f, " (rule `{rule}`)")?;
        }
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if let Some(c) = &self.cause {
            // A cause whose text is already in the detail displays as nothing.
            let text = c.to_string();
            if !text.is_empty() {
                write!(f, ": {text}")?;
            }
        }
        Ok(())
    }
}

/// Builds a [`ComponentError::Field`]; see [`ComponentError::field`].
#[derive(Debug)]
#[must_use]
pub struct FieldErrorBuilder(FieldError);

impl FieldErrorBuilder {
    /// Names the struct and the field.
    pub fn in_field(
        mut self,
        owner: impl Into<Cow<'static, str>>,
        field: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.0.provenance.owner = Some(owner.into());
        self.0.provenance.field = Some(field.into());
        self
    }

    /// Names the source, what its keys are called, and the key.
    pub fn from_source(
        mut self,
        source: impl Into<Cow<'static, str>>,
        key_label: impl Into<Cow<'static, str>>,
        key: impl Into<String>,
    ) -> Self {
        self.0.provenance.source = Some(source.into());
        self.0.provenance.key_label = key_label.into();
        self.0.provenance.key = Some(key.into());
        self
    }

    /// Sets the whole provenance at once.
    pub fn provenance(mut self, provenance: Provenance) -> Self {
        self.0.provenance = provenance;
        self
    }

    /// Adds a detail message (never a secret value).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Adds the underlying error, reachable through `source()`.
    pub fn cause(mut self, cause: impl Into<BoxError>) -> Self {
        self.0.cause = Some(SharedError::from(cause.into()));
        self
    }

    /// Names the validation rule that refused the value (`range 1..=65535`).
    pub fn rule(mut self, rule: impl Into<Cow<'static, str>>) -> Self {
        self.0.rule = Some(rule.into());
        self
    }

    /// Finishes the error.
    pub fn build(self) -> ComponentError {
        ComponentError::Field(Box::new(self.0))
    }
}

impl ComponentError {
    /// Starts an error of one field.
    pub fn field(kind: ErrorKind) -> FieldErrorBuilder {
        FieldErrorBuilder(FieldError {
            kind,
            provenance: Provenance {
                key_label: Cow::Borrowed("key"),
                ..Provenance::default()
            },
            rule: None,
            detail: None,
            cause: None,
        })
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ComponentError::Field(e) => e.kind,
            ComponentError::Timeout { .. } => ErrorKind::Timeout,
            ComponentError::Multiple(_) => ErrorKind::Multiple,
            ComponentError::Invalid { .. } => ErrorKind::Invalid,
        }
    }

    /// The provenance of a field error (`None` for `Timeout` and `Multiple`).
    pub fn provenance(&self) -> Option<&Provenance> {
        match self {
            ComponentError::Field(e) => Some(&e.provenance),
            _ => None,
        }
    }

    /// The field this error concerns, if it concerns one.
    pub fn field_name(&self) -> Option<&str> {
        self.provenance().and_then(|p| p.field.as_deref())
    }

    /// The source name (`fetch_from`) this error concerns.
    pub fn source_name(&self) -> Option<&str> {
        self.provenance().and_then(|p| p.source.as_deref())
    }

    /// The native key (env var, Consul key, Vault path, query, URL) this error concerns.
    pub fn key(&self) -> Option<&str> {
        self.provenance().and_then(|p| p.key.as_deref())
    }

    /// The errors inside `Multiple`, or this error alone.
    pub fn errors(&self) -> &[ComponentError] {
        match self {
            ComponentError::Multiple(v) => v,
            other => std::slice::from_ref(other),
        }
    }

    /// The validation rule that refused the value of a field (`range 1..=65535`,
    /// `with_async check_unique`), for an error of kind [`ErrorKind::Invalid`] (or a rule
    /// that timed out).
    ///
    /// ```
    /// use component_model_async::{ComponentError, ErrorKind};
    ///
    /// let err = ComponentError::field(ErrorKind::Invalid)
    ///     .in_field("App", "port")
    ///     .from_source("env", "variable", "APP_PORT")
    ///     .rule("range 1..=65535")
    ///     .detail("70000 is above the maximum of 65535, outside 1..=65535")
    ///     .build();
    /// assert_eq!(err.rule(), Some("range 1..=65535"));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "App.port: env variable `APP_PORT`: rejected by validation (rule `range 1..=65535`): 70000 is above the maximum of 65535, outside 1..=65535"
    /// );
    /// ```
    pub fn rule(&self) -> Option<&str> {
        match self {
            ComponentError::Field(e) => e.rule.as_deref(),
            _ => None,
        }
    }

    /// The detail of a field error (what the source or the conversion said), without the
    /// field, source and key around it.
    pub fn detail(&self) -> Option<&str> {
        match self {
            ComponentError::Field(e) => e.detail.as_deref(),
            _ => None,
        }
    }

    /// The underlying error of a field error. Its text is already part of this error's
    /// message, so `source()` returns the cause's own source, not the cause again.
    pub fn cause(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            ComponentError::Field(e) => e.cause.as_deref(),
            _ => None,
        }
    }
}

impl ComponentError {
    /// Adds a note to a field error's detail (other variants are returned unchanged).
    pub(crate) fn with_note(self, note: String) -> Self {
        match self {
            ComponentError::Field(mut f) => {
                f.detail = Some(match f.detail.take() {
                    Some(d) => format!("{d}; {note}"),
                    None => note,
                });
                ComponentError::Field(f)
            }
            other => other,
        }
    }
}

/// The cause's text is part of the message, so `source()` starts one level below it: a
/// chain printer shows each underlying error once.
impl StdError for FieldError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause.as_deref().and_then(|c| c.source())
    }
}

impl FieldError {
    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where the value was supposed to come from.
    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }
}

/// `Multiple` from several errors, the error itself from one.
impl From<Vec<ComponentError>> for ComponentError {
    fn from(mut errors: Vec<ComponentError>) -> Self {
        if errors.len() == 1 {
            errors.remove(0)
        } else {
            ComponentError::Multiple(errors)
        }
    }
}

/// Combines the errors of several concurrent steps into one value of the error type.
///
/// [`Assignment`](crate::Assignment) uses it when more than one pending step fails.
///
/// ```
/// use component_model_async::{ComponentError, ErrorKind, MergeErrors};
///
/// let one = || ComponentError::field(ErrorKind::NotFound).in_field("C", "a").build();
/// assert_eq!(ComponentError::merge(vec![one()]).kind(), ErrorKind::NotFound);
/// assert_eq!(ComponentError::merge(vec![one(), one()]).kind(), ErrorKind::Multiple);
/// ```
pub trait MergeErrors: Sized {
    /// Combines `errors` (never empty) into one error.
    fn merge(errors: Vec<Self>) -> Self;
}

impl MergeErrors for ComponentError {
    fn merge(errors: Vec<Self>) -> Self {
        errors.into()
    }
}

impl MergeErrors for BoxError {
    fn merge(mut errors: Vec<Self>) -> Self {
        if errors.len() == 1 {
            return errors.remove(0);
        }
        let text = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        text.into()
    }
}

/// Displays a list of errors one per line, as `ComponentError::Multiple` does.
///
/// `Vec<ComponentError>` (what `fetch_all_components` returns) cannot implement `Display`
/// itself; call `.display()` on it, or convert it with `ComponentError::from(errors)`.
///
/// ```
/// use component_model_async::{ComponentError, ErrorKind, ErrorsExt};
///
/// let errors = vec![
///     ComponentError::field(ErrorKind::NotFound).in_field("C", "a").from_source("env", "variable", "A").build(),
///     ComponentError::field(ErrorKind::NotFound).in_field("C", "b").from_source("env", "variable", "B").build(),
/// ];
/// assert_eq!(
///     errors.display().to_string(),
///     "2 components failed:\n  - C.a: env variable `A`: not found\n  - C.b: env variable `B`: not found"
/// );
/// ```
pub trait ErrorsExt {
    /// A `Display` of every error, one per line.
    fn display(&self) -> DisplayErrors<'_>;
}

impl ErrorsExt for [ComponentError] {
    fn display(&self) -> DisplayErrors<'_> {
        DisplayErrors(self)
    }
}

/// See [`ErrorsExt::display`].
pub struct DisplayErrors<'a>(&'a [ComponentError]);

impl fmt::Display for DisplayErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => fmt::Display::fmt(one, f),
            many => f.write_str(&display_many(many)),
        }
    }
}
