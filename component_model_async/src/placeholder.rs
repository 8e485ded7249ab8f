//! `${VAR}` and `${VAR:-default}` in attribute values that name a place (`key`, `url`,
//! `secret`, `path`, `mount`), resolved when fetching. Never applied to SQL text.

use std::borrow::Cow;
use std::fmt;

/// A placeholder could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceholderError {
    /// `${VAR}` without a default, and `VAR` is not set.
    Missing(String),
    /// `${` without a closing `}` or with an empty name.
    Malformed(String),
}

impl fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceholderError::Missing(v) => write!(
                f,
                "environment variable `{v}` is not set (write `${{{v}:-default}}` to give a default)"
            ),
            PlaceholderError::Malformed(t) => write!(f, "malformed placeholder in {t:?}"),
        }
    }
}

impl std::error::Error for PlaceholderError {}

/// Expands the placeholders of `text` with `lookup`; text without `${` is borrowed as is.
///
/// ```
/// use component_model_async::placeholder::expand;
///
/// let lookup = |name: &str| (name == "DC").then(|| "eu1".to_owned());
/// assert_eq!(expand("app/${DC}/port", &lookup).unwrap(), "app/eu1/port");
/// assert_eq!(expand("${REGION:-west}", &lookup).unwrap(), "west");
/// assert!(expand("${NOPE}", &lookup).is_err());
/// ```
pub fn expand(
    text: &'static str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'static, str>, PlaceholderError> {
    expand_str(text, lookup)
}

/// [`expand`] of text that lives shorter than the program (a precedence source's
/// argument after `{@profile}` was replaced).
pub(crate) fn expand_str<'t>(
    text: &'t str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'t, str>, PlaceholderError> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| PlaceholderError::Malformed(text.to_owned()))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if name.is_empty() {
            return Err(PlaceholderError::Malformed(text.to_owned()));
        }
        match (lookup(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(PlaceholderError::Missing(name.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}
