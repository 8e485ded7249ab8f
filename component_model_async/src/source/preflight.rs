//! [`Probe`]: what a source can say about one request without reading its value — the
//! answer of [`Source::preflight`](crate::Source::preflight).

use std::fmt;

use crate::error::{ErrorKind, SourceError};

/// How a source stands towards one request, as a preflight finds it.
///
/// Ordered from best to worst: a report sorts and colours by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Access {
    /// Reachable, authenticated, allowed to read the key, and the key exists.
    Readable,
    /// The source cannot tell without reading the value (or does not know how to check):
    /// nothing was read.
    Unchecked,
    /// Reachable and allowed, but the key does not exist: the field falls through to a
    /// lower precedence source, its `fallback`, `None` or `Default` — or fails.
    Missing,
    /// The request is wrong for this source: a query that does not prepare, a table that
    /// does not exist, a key of the wrong type, a key the source cannot name.
    Invalid,
    /// Authenticated, but not allowed to read this key (Vault `deny`, a Consul ACL).
    Denied,
    /// The credentials were refused (a bad or expired token, a wrong password).
    Unauthenticated,
    /// The source could not be reached (refused, timed out, no leader).
    Unreachable,
}

impl Access {
    /// What the report shows: `readable`, `missing`, `denied`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Readable => "readable",
            Access::Unchecked => "unchecked",
            Access::Missing => "missing",
            Access::Invalid => "invalid",
            Access::Denied => "denied",
            Access::Unauthenticated => "unauthenticated",
            Access::Unreachable => "unreachable",
        }
    }

    /// Whether the key can be read as it stands ([`Access::Readable`], or nothing
    /// against it: [`Access::Unchecked`]).
    pub fn is_readable(self) -> bool {
        matches!(self, Access::Readable | Access::Unchecked)
    }

    /// Whether the source itself is in the way (everything but readable, unchecked and
    /// missing): a fetch would fail at this source, whatever the field's fallbacks.
    pub fn is_failure(self) -> bool {
        !matches!(self, Access::Readable | Access::Unchecked | Access::Missing)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a source found about one request without reading its value: an [`Access`] and a
/// detail for the person reading the report (`token ttl 59m`, `table app_settings does not
/// exist`). The detail never holds a value.
///
/// ```
/// use component_model_async::{Access, ErrorKind, Probe, SourceError};
///
/// let ok = Probe::readable().with_detail("capabilities: read");
/// assert_eq!(ok.access, Access::Readable);
///
/// // A source's error says what it means for the request.
/// let denied = Probe::from_error(&SourceError::new(ErrorKind::Unauthorized).with_message("permission denied"));
/// assert_eq!(denied.access, Access::Denied);
/// assert_eq!(denied.detail.as_deref(), Some("unauthorized: permission denied"));
/// assert_eq!(Probe::from_error(&SourceError::not_found()).access, Access::Missing);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probe {
    /// How the source stands towards the request.
    pub access: Access,
    /// What was checked or found, for the report (never a value).
    pub detail: Option<String>,
}

impl Probe {
    /// `access` with no detail.
    pub fn new(access: Access) -> Self {
        Probe {
            access,
            detail: None,
        }
    }

    /// [`Access::Readable`].
    pub fn readable() -> Self {
        Self::new(Access::Readable)
    }

    /// [`Access::Missing`].
    pub fn missing() -> Self {
        Self::new(Access::Missing)
    }

    /// [`Access::Unchecked`], saying why.
    pub fn unchecked(why: impl Into<String>) -> Self {
        Self::new(Access::Unchecked).with_detail(why)
    }

    /// Sets the detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// What a source's error means for the request: not found → missing,
    /// unauthorized → denied, unavailable / timed out / circuit open → unreachable, any
    /// other → invalid. The detail is the error's message (a [`SourceError`] never holds a
    /// value). A source that can tell a refused token from a refused key says
    /// [`Access::Unauthenticated`] itself.
    pub fn from_error(error: &SourceError) -> Self {
        let access = match error.kind() {
            ErrorKind::NotFound => Access::Missing,
            ErrorKind::Unauthorized => Access::Denied,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::CircuitOpen => {
                Access::Unreachable
            }
            _ => Access::Invalid,
        };
        Probe::new(access).with_detail(error.to_string())
    }
}

impl From<Access> for Probe {
    fn from(access: Access) -> Self {
        Probe::new(access)
    }
}

/// What [`Source::preflight`](crate::Source::preflight) returns: the work of checking,
/// one [`Probe`] per request, in order.
pub type Preflighting<'a> = futures::future::BoxFuture<'a, Vec<Probe>>;
