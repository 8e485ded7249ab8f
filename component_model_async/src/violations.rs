//! [`Violations`]: what a validation rule found wrong, message by message, each at a field
//! path or about the whole struct.

use std::fmt;

/// What a validation rule found wrong: one or more messages, each about the whole struct or
/// at a field path relative to the struct the rule is declared on (`"port"`,
/// `"database.port"`). Returned by the functions `#[component(validate_with = ...)]` and
/// `#[component(validate_with_async = ...)]` name; every message becomes one
/// [`ComponentError`](crate::ComponentError) of kind [`Invalid`](crate::ErrorKind::Invalid),
/// naming the field (and, for a fetched field, its source and key).
///
/// Build one from a message (`"..".into()`, `String`, `Vec<String>`), at a path with
/// [`Violations::at`], and combine several with `collect`, `extend` or [`Violations::and`]:
///
/// ```
/// use component_model_async::Violations;
///
/// let mut v = Violations::at("database.port", "must differ from `port`");
/// v.extend([Violations::from("replicas must not exceed 8")]);
/// let both: Violations = [v, Violations::at("port", "is privileged")].into_iter().collect();
/// assert_eq!(both.len(), 3);
/// assert_eq!(both.iter().next().unwrap().path(), Some("database.port"));
/// assert_eq!(
///     both.to_string(),
///     "database.port: must differ from `port`; replicas must not exceed 8; port: is privileged"
/// );
/// let ok: Result<(), Violations> = Violations::new().into_result();
/// assert!(ok.is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations {
    items: Vec<Violation>,
}

/// One message of [`Violations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    path: Option<String>,
    message: String,
}

impl Violation {
    /// The field path the message is about, relative to the struct the rule is declared on
    /// (`None`: the struct as a whole).
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Violations {
    /// No violation.
    pub fn new() -> Self {
        Violations::default()
    }

    /// One message about the field at `path` (`"port"`, `"database.port"`), relative to the
    /// struct the rule is declared on.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        Violations {
            items: vec![Violation {
                path: (!path.is_empty()).then_some(path),
                message: message.into(),
            }],
        }
    }

    /// `self` and `other`.
    #[must_use]
    pub fn and(mut self, other: impl Into<Violations>) -> Self {
        self.items.extend(other.into().items);
        self
    }

    /// Adds a message about the field at `path`.
    pub fn push_at(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.extend(Violations::at(path, message).items);
    }

    /// Adds a message about the whole struct.
    pub fn push(&mut self, message: impl Into<String>) {
        self.items.push(Violation {
            path: None,
            message: message.into(),
        });
    }

    /// Whether there is no message.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The messages, in the order they were added.
    pub fn iter(&self) -> std::slice::Iter<'_, Violation> {
        self.items.iter()
    }

    /// `Ok(())` when there is no message, else `Err(self)`: the end of a rule that
    /// collected its findings.
    pub fn into_result(self) -> Result<(), Violations> {
        if self.items.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Every path below `prefix` (`port` → `database.port`), for a rule of a nested struct.
    pub(crate) fn under(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            for v in &mut self.items {
                v.path = Some(match v.path.take() {
                    Some(p) => format!("{prefix}.{p}"),
                    None => prefix.to_owned(),
                });
            }
        }
        self
    }

    pub(crate) fn into_items(self) -> Vec<Violation> {
        self.items
    }
}

impl From<String> for Violations {
    fn from(message: String) -> Self {
        Violations {
            items: vec![Violation {
                path: None,
                message,
            }],
        }
    }
}

impl From<&str> for Violations {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl From<Vec<String>> for Violations {
    fn from(messages: Vec<String>) -> Self {
        messages.into_iter().map(Violations::from).collect()
    }
}

impl FromIterator<Violations> for Violations {
    fn from_iter<I: IntoIterator<Item = Violations>>(iter: I) -> Self {
        let mut all = Violations::new();
        all.extend(iter);
        all
    }
}

impl Extend<Violations> for Violations {
    fn extend<I: IntoIterator<Item = Violations>>(&mut self, iter: I) {
        for v in iter {
            self.items.extend(v.items);
        }
    }
}

impl<'a> IntoIterator for &'a Violations {
    type Item = &'a Violation;
    type IntoIter = std::slice::Iter<'a, Violation>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}
