//! Subtree reads: `prefix = "..."` on a field of a backend with keys (consul, redis,
//! database, file, vault) reads every key under the prefix into ONE value, a JSON object
//! whose member names are the keys relative to the prefix.
//!
//! What each backend reads is its own (one Consul `recurse`, a Redis `SCAN` then `MGET`,
//! one SQL `LIKE`, a file's table); this module is what they share: the bounds and the
//! object they build.
//!
//! * **Members are the texts the store holds.** A value stored as text (a Consul value, a
//!   Redis string, a SQL `TEXT` column) is a JSON string member, bytes that are not UTF-8 an
//!   array of numbers, a value that already is JSON (a file's table, a Vault secret) that
//!   JSON. Conversion reads the strings inside an object as it reads one text alone
//!   (see `convert::lenient`): `{"http": "8080"}` converts into `HashMap<String, u16>`,
//!   `HashMap<String, String>` or a struct with `http: u16`, so the field's type decides,
//!   never a guess made while reading (which would make `"8080"` a number for a
//!   `HashMap<String, String>`).
//! * **Bounds, enforced while reading**: at most `max_keys` keys (a backend parameter,
//!   default [`DEFAULT_MAX_KEYS`]) and at most the field's `max_size` bytes in all; over
//!   either is [`ErrorKind::TooLarge`], never a silent truncation. Each backend asks
//!   [`Subtree::admit`] with what a server announces before it reads it, and
//!   [`Subtree::insert`] counts as it goes. The bytes counted are the values' and their
//!   names' (with JSON's quotes and separators, escapes aside): the size of the object
//!   being built, which the engine checks against `max_size` again once it is built, as
//!   it checks any value, so both say the same.

// Each item serves some of the backends (consul, redis, database, file): with only some
// of their features on, the others' items are unused. With all of them on, nothing is.
#![cfg_attr(
    not(all(
        feature = "consul",
        feature = "redis",
        any(feature = "postgres", feature = "mysql", feature = "sqlite"),
        feature = "file"
    )),
    allow(dead_code)
)]

use serde_json::{Map, Value};

use crate::error::{ErrorKind, SourceError};
use crate::source::{FetchRequest, RawValue};

/// The backend parameter that makes a field a subtree read.
pub(crate) const PREFIX: &str = "prefix";

/// The backend parameter that bounds how many keys a subtree read takes.
pub(crate) const MAX_KEYS: &str = "max_keys";

/// The most keys a subtree read takes unless the field says `max_keys = N`.
pub(crate) const DEFAULT_MAX_KEYS: usize = 10_000;

/// One subtree read being built (see the module).
#[derive(Debug)]
pub(crate) struct Subtree<'r> {
    prefix: &'r str,
    /// What the read is, for messages: "under prefix `app/`", "in hash `app`".
    what: Option<String>,
    max_keys: usize,
    max_size: Option<u64>,
    bytes: u64,
    members: Map<String, Value>,
}

impl<'r> Subtree<'r> {
    /// The subtree read `request` asks for, when it names a `prefix`; `Err` when its
    /// `max_keys` is not a number.
    pub(crate) fn of(request: &'r FetchRequest) -> Option<Result<Self, SourceError>> {
        let prefix = request.param(PREFIX)?;
        Some(Self::under(request, prefix, None))
    }

    /// A read of a whole collection (a Redis hash with `field = "*"`), bounded as a
    /// subtree read of `request` is: every member, under no prefix; `what` names it in
    /// messages ("in hash `app`").
    pub(crate) fn whole(request: &'r FetchRequest, what: String) -> Result<Self, SourceError> {
        Self::under(request, "", Some(what))
    }

    fn under(
        request: &'r FetchRequest,
        prefix: &'r str,
        what: Option<String>,
    ) -> Result<Self, SourceError> {
        let max_keys = match request.param(MAX_KEYS) {
            None => DEFAULT_MAX_KEYS,
            Some(text) => text.trim().replace('_', "").parse::<usize>().map_err(|_| {
                SourceError::new(ErrorKind::Config)
                    .with_message(format!("`max_keys = {text:?}` is not a number of keys"))
            })?,
        };
        Ok(Subtree {
            prefix,
            what,
            max_keys,
            max_size: request.spec().and_then(|s| s.max_size),
            // The object's braces.
            bytes: 2,
            members: Map::new(),
        })
    }

    fn what(&self) -> String {
        self.what
            .clone()
            .unwrap_or_else(|| format!("under prefix `{}`", self.prefix))
    }

    /// Whether `request` is a subtree read.
    pub(crate) fn is_subtree(request: &FetchRequest) -> bool {
        request.param(PREFIX).is_some()
    }

    /// The prefix, as the request names it (`key_prefix` and placeholders applied).
    pub(crate) fn prefix(&self) -> &'r str {
        self.prefix
    }

    /// The most keys this read takes.
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    /// `Ok` when `keys` keys are within `max_keys`: asked with what a server announces,
    /// before reading it.
    pub(crate) fn admit(&self, keys: usize) -> Result<(), SourceError> {
        if keys > self.max_keys {
            return Err(self.too_many());
        }
        Ok(())
    }

    /// `Ok` when `bytes` more bytes are within the field's `max_size`: asked with a length
    /// a server announces, before reading it.
    pub(crate) fn admit_bytes(&self, bytes: u64) -> Result<(), SourceError> {
        match self.max_size {
            Some(max) if self.bytes.saturating_add(bytes) > max => Err(self.too_big(max)),
            _ => Ok(()),
        }
    }

    fn too_many(&self) -> SourceError {
        SourceError::new(ErrorKind::TooLarge).with_message(format!(
            "more than {} keys {}; the read stopped there (raise `max_keys = N` on the field)",
            self.max_keys,
            self.what()
        ))
    }

    fn too_big(&self, max: u64) -> SourceError {
        SourceError::new(ErrorKind::TooLarge).with_message(format!(
            "the keys and values {} are more than the field's `max_size` of {} in all; the read stopped there",
            self.what(),
            crate::error::bytes(max)
        ))
    }

    /// Adds the member `name`: `Err` (too large) past `max_keys` keys or `max_size` bytes
    /// of values. A name seen before keeps its first value.
    pub(crate) fn insert(&mut self, name: &str, value: RawValue) -> Result<(), SourceError> {
        if self.members.contains_key(name) {
            return Ok(());
        }
        self.admit(self.members.len() + 1)?;
        // As the member will weigh in the object: `"name":` and the value, a text quoted,
        // and a separator.
        let value_len = match &value {
            RawValue::Text(s) => s.len() + 2,
            RawValue::Bytes(b) => b.len() * 4 + 2,
            RawValue::Json(v) => serde_json::to_vec(v).map_or(0, |b| b.len()),
        };
        let len = (name.len() + 4 + value_len) as u64;
        self.admit_bytes(len)?;
        self.bytes += len;
        let member = match value {
            RawValue::Text(s) => Value::String(s),
            RawValue::Bytes(b) => Value::Array(b.into_iter().map(Value::from).collect()),
            RawValue::Json(v) => v,
        };
        self.members.insert(name.to_owned(), member);
        Ok(())
    }

    /// Whether the member `name` was added.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    /// How many members so far.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The object read.
    pub(crate) fn finish(self) -> RawValue {
        RawValue::Json(Value::Object(self.members))
    }
}

/// What a source calls a subtree request's key in messages: `("prefix", <prefix>)`.
pub(crate) fn native_key(request: &FetchRequest) -> Option<(&'static str, String)> {
    request
        .param(PREFIX)
        .map(|prefix| ("prefix", prefix.to_owned()))
}

/// A JSON document's subtree at the prefix (`features`, `a.b`: dots nest, and so do `/`,
/// which a nested struct's `key_prefix` adds; empty: the whole document), as the members
/// of a [`Subtree`]: for a file's table.
pub(crate) fn of_document(subtree: &mut Subtree<'_>, document: &Value) -> Result<(), SourceError> {
    let mut at = document;
    for part in subtree.prefix().split(['.', '/']).filter(|p| !p.is_empty()) {
        at = match at {
            Value::Object(map) => map.get(part),
            _ => None,
        }
        .ok_or_else(|| {
            SourceError::not_found().with_message(format!("no table `{}`", subtree.prefix()))
        })?;
    }
    let Value::Object(map) = at else {
        return Err(SourceError::new(ErrorKind::Decode).with_message(format!(
            "`{}` is not a table (found a JSON {})",
            subtree.prefix(),
            crate::source::json_kind(at)
        )));
    };
    subtree.admit(map.len())?;
    for (name, value) in map {
        subtree.insert(name, RawValue::Json(value.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_errors_never_truncation() {
        let r = FetchRequest::for_source("consul")
            .with_param(PREFIX, "app/")
            .with_param(MAX_KEYS, "2");
        let mut s = Subtree::of(&r).unwrap().unwrap();
        s.insert("a", RawValue::from("1")).unwrap();
        s.insert("b", RawValue::from("2")).unwrap();
        let e = s.insert("c", RawValue::from("3")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(
            e.to_string()
                .contains("more than 2 keys under prefix `app/`"),
            "{e}"
        );
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.finish(),
            RawValue::Json(serde_json::json!({"a": "1", "b": "2"}))
        );
        let bad = FetchRequest::for_source("consul")
            .with_param(PREFIX, "")
            .with_param(MAX_KEYS, "many");
        assert_eq!(
            Subtree::of(&bad).unwrap().unwrap_err().kind(),
            ErrorKind::Config
        );
    }

    #[test]
    fn a_documents_table_by_dotted_path() {
        let doc = serde_json::json!({"features": {"a": {"x": 1}, "b": true}, "n": 1});
        let r = FetchRequest::for_source("file").with_param(PREFIX, "features.a");
        let mut s = Subtree::of(&r).unwrap().unwrap();
        of_document(&mut s, &doc).unwrap();
        assert_eq!(s.finish(), RawValue::Json(serde_json::json!({"x": 1})));
        let r = FetchRequest::for_source("file").with_param(PREFIX, "n");
        let mut s = Subtree::of(&r).unwrap().unwrap();
        assert_eq!(
            of_document(&mut s, &doc).unwrap_err().kind(),
            ErrorKind::Decode
        );
    }
}
