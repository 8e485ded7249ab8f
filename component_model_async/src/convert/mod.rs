//! Converting a [`RawValue`] into a field's type: strings, bytes and JSON into any
//! `serde::Deserialize` type, with errors that name the field and never show a secret.

mod lenient;
#[cfg(any(
    feature = "consul",
    feature = "etcd",
    feature = "aws",
    feature = "redis",
    feature = "postgres",
    feature = "mysql",
    feature = "sqlite",
    feature = "file"
))]
pub(crate) mod subtree;
mod text;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ComponentError, ErrorKind, Provenance};
use crate::source::{FieldSpec, RawValue, json_kind};

/// What conversion needs to know about the field.
pub(crate) struct Target<'a> {
    pub spec: &'a FieldSpec,
    /// Built only when an error needs it.
    pub provenance: &'a dyn Fn() -> Provenance,
    pub sensitive: bool,
    /// `field = "..."` still to apply (`None` when the source already selected it).
    pub select: Option<&'a str>,
    /// Whether a one-member object may be read into a scalar (the source says so).
    pub unwrap_single: bool,
    /// `pointer = "..."` to apply.
    pub pointer: Option<&'a str>,
    /// The source and request the value came from, asked whether to conceal it
    /// ([`Source::conceals`](crate::Source::conceals)) only when an error would show it.
    pub origin: Option<(&'a dyn crate::Source, &'a crate::FetchRequest)>,
}

impl<'a> Target<'a> {
    pub(crate) fn new(
        spec: &'a FieldSpec,
        provenance: &'a dyn Fn() -> Provenance,
        sensitive: bool,
    ) -> Self {
        Target {
            spec,
            provenance,
            sensitive,
            select: spec.select,
            unwrap_single: false,
            pointer: spec.pointer,
            origin: None,
        }
    }

    /// Whether an error may not show the value: a secret field, or a value its source
    /// conceals.
    pub(crate) fn hides(&self) -> bool {
        self.sensitive || self.origin.is_some_and(|(s, r)| s.conceals(r))
    }
}

/// Whether `T` is a `secrecy` secret type, by its name: a best effort for generic code
/// (standalone fetchers) that cannot ask for [`SecretValue`](crate::SecretValue); the
/// derive asks the trait.
pub(crate) fn is_secret_type<T>() -> bool {
    let name = std::any::type_name::<T>();
    name.starts_with("secrecy::") || name.contains("<secrecy::")
}

/// Whether `T` is `Option<_>`, for which an absent key means `None`.
pub(crate) fn is_option<T>() -> bool {
    std::any::type_name::<T>().starts_with("core::option::Option<")
}

/// `None` for an `Option<_>` field whose key is absent.
pub(crate) fn absent<T: DeserializeOwned>() -> Option<T> {
    if is_option::<T>() {
        T::deserialize(&Value::Null).ok()
    } else {
        None
    }
}

pub(crate) fn decode<T: DeserializeOwned>(
    raw: RawValue,
    t: &Target<'_>,
) -> Result<T, ComponentError> {
    decode_selected(raw, t.select, t.pointer, t)
}

/// [`decode`] with `field`/`pointer` given at run time (the standalone fetchers).
pub(crate) fn decode_selected<T: DeserializeOwned>(
    raw: RawValue,
    select: Option<&str>,
    pointer: Option<&str>,
    t: &Target<'_>,
) -> Result<T, ComponentError> {
    if select.is_some() || pointer.is_some() {
        let doc = match raw {
            RawValue::Json(v) => v,
            RawValue::Text(s) => parse_document(&s, select, pointer, t)?,
            RawValue::Bytes(b) => match String::from_utf8(b) {
                Ok(s) => parse_document(&s, select, pointer, t)?,
                Err(e) => return Err(not_utf8(e.as_bytes().len(), t)),
            },
        };
        return decode_json(narrow(doc, select, pointer, t)?, t);
    }
    match raw {
        RawValue::Text(s) => decode_owned_text(s, t),
        RawValue::Bytes(b) => decode_bytes(b, t),
        RawValue::Json(v) => decode_json(v, t),
    }
}

/// Converts a value fetched by a standalone fetcher ([`SourceFetcher`](crate::SourceFetcher)):
/// `field`/`pointer` applied, an absent value is `None` for an `Option<_>`.
pub(crate) fn standalone<T: DeserializeOwned>(
    fetched: Result<RawValue, ComponentError>,
    target: &Target<'_>,
) -> Result<T, ComponentError> {
    let raw = match fetched {
        Ok(raw) => raw,
        Err(e) if e.kind() == ErrorKind::NotFound => return absent::<T>().ok_or(e),
        Err(e) => return Err(e),
    };
    match decode::<T>(raw, target) {
        Err(e) if e.kind() == ErrorKind::NotFound => absent::<T>().ok_or(e),
        other => other,
    }
}

/// Bytes as a byte sequence (`Vec<u8>` from a BYTEA/BLOB column), else as UTF-8 text.
fn decode_bytes<T: DeserializeOwned>(b: Vec<u8>, t: &Target<'_>) -> Result<T, ComponentError> {
    let seq =
        serde::de::value::SeqDeserializer::<_, serde::de::value::Error>::new(b.iter().copied());
    if let Ok(v) = T::deserialize(seq) {
        return Ok(v);
    }
    match String::from_utf8(b) {
        Ok(s) => decode_owned_text(s, t),
        Err(e) => Err(not_utf8(e.as_bytes().len(), t)),
    }
}

fn parse_document(
    s: &str,
    select: Option<&str>,
    pointer: Option<&str>,
    t: &Target<'_>,
) -> Result<Value, ComponentError> {
    serde_json::from_str(s).map_err(|e| {
        let what = match (select, pointer) {
            (Some(f), _) => format!("field `{f}`"),
            (None, Some(p)) => format!("JSON pointer `{p}`"),
            _ => "a value".to_owned(),
        };
        let mut msg = format!("expected a JSON document to take {what} from");
        if !t.hides() {
            msg.push_str(&format!(", found {}: {e}", preview(s)));
        }
        error(ErrorKind::Decode, t, msg)
    })
}

/// Applies `field = "..."` then `pointer = "..."`.
fn narrow(
    mut doc: Value,
    select: Option<&str>,
    pointer: Option<&str>,
    t: &Target<'_>,
) -> Result<Value, ComponentError> {
    if let Some(name) = select {
        doc = match doc {
            Value::Object(mut map) => map.remove(name).ok_or_else(|| {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let listed: Vec<String> = keys.iter().take(10).map(|k| format!("`{k}`")).collect();
                error(
                    ErrorKind::NotFound,
                    t,
                    format!(
                        "no field `{name}` in the value (fields: {})",
                        listed.join(", ")
                    ),
                )
            })?,
            other => {
                return Err(error(
                    ErrorKind::Decode,
                    t,
                    format!(
                        "expected a JSON object to take field `{name}` from, found {}",
                        json_kind(&other)
                    ),
                ));
            }
        };
    }
    if let Some(p) = pointer {
        doc = doc.pointer_mut(p).map(Value::take).ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                t,
                format!("JSON pointer `{p}` matches nothing"),
            )
        })?;
    }
    Ok(doc)
}

/// Text through [`text::Text`]: scalars parsed as the field type asks, documents as JSON.
pub(crate) fn decode_text<T: DeserializeOwned>(
    s: String,
    t: &Target<'_>,
) -> Result<T, ComponentError> {
    T::deserialize(text::Text(std::borrow::Cow::Borrowed(s.as_str()))).map_err(|e| {
        // Cold path: decode again, tracking where inside the value it failed.
        let path = serde_path_to_error::deserialize::<_, T>(text::Text(
            std::borrow::Cow::Borrowed(s.as_str()),
        ))
        .err()
        .map(|e| e.path().to_string());
        mismatch(t, || preview(&s), s.len(), &e.to_string(), path)
    })
}

/// Like [`decode_text`] for a text the caller gives away: `String` fields take it as is.
pub(crate) fn decode_owned_text<T: DeserializeOwned>(
    s: String,
    t: &Target<'_>,
) -> Result<T, ComponentError> {
    if is_string::<T>() {
        return T::deserialize(text::Text(std::borrow::Cow::Owned(s)))
            .map_err(|e| error(ErrorKind::Decode, t, e.to_string()));
    }
    decode_text(s, t)
}

fn is_string<T>() -> bool {
    matches!(
        std::any::type_name::<T>(),
        "alloc::string::String" | "secrecy::SecretBox<str>"
    )
}

fn decode_json<T: DeserializeOwned>(v: Value, t: &Target<'_>) -> Result<T, ComponentError> {
    let first = match T::deserialize(&v) {
        Ok(x) => return Ok(x),
        Err(e) => e,
    };
    // Lenient forms: a JSON string holding a number/bool/document, a number for a string,
    // and the same inside an object or array (a subtree's texts, `prefix = "..."`).
    // (When this fails too, the strict reading's error says what did not fit.)
    if let Ok(x) = T::deserialize(lenient::Lenient(&v)) {
        return Ok(x);
    }
    // A Vault secret with one key reads into a scalar without `field = "..."`.
    if let Value::Object(map) = &v
        && map.len() == 1
        && t.unwrap_single
        && t.select.is_none()
        && let Some(only) = map.values().next()
        && let Ok(x) = decode_json::<T>(only.clone(), t)
    {
        return Ok(x);
    }
    let len = v.to_string().len();
    // Cold path: decode again, tracking where inside the value it failed.
    let path = serde_path_to_error::deserialize::<_, T>(&v)
        .err()
        .map(|e| e.path().to_string());
    Err(mismatch(
        t,
        || preview_json(&v),
        len,
        &first.to_string(),
        path,
    ))
}

/// "expected `T`, found <value> (<where>: <why>)"; a secret's value and serde's words
/// about it are never shown, only its length and where inside it decoding failed.
fn mismatch(
    t: &Target<'_>,
    show: impl FnOnce() -> String,
    len: usize,
    why: &str,
    path: Option<String>,
) -> ComponentError {
    let expected = t.spec.type_name;
    // `.` is the value itself: nothing to add.
    let path = path.filter(|p| !p.is_empty() && p != ".");
    let detail = match (t.hides(), path) {
        (true, None) => {
            format!("expected `{expected}`, found a secret value of {len} bytes (not shown)")
        }
        (true, Some(p)) => format!(
            "expected `{expected}`, found a secret value of {len} bytes (not shown) that does not fit at `{p}`"
        ),
        (false, None) => format!("expected `{expected}`, found {} ({why})", show()),
        (false, Some(p)) => format!("expected `{expected}`, found {} ({p}: {why})", show()),
    };
    error(ErrorKind::Decode, t, detail)
}

fn not_utf8(len: usize, t: &Target<'_>) -> ComponentError {
    error(
        ErrorKind::Decode,
        t,
        format!(
            "expected `{}`, found {len} bytes that are not UTF-8",
            t.spec.type_name
        ),
    )
}

fn preview(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut:?}… ({} bytes)", s.len())
    }
}

fn preview_json(v: &Value) -> String {
    match v {
        Value::String(s) => preview(s),
        Value::Object(_) | Value::Array(_) => format!("a JSON {}", json_kind(v)),
        other => other.to_string(),
    }
}

pub(crate) fn error(kind: ErrorKind, t: &Target<'_>, detail: String) -> ComponentError {
    ComponentError::field(kind)
        .provenance((t.provenance)())
        .detail(detail)
        .build()
}
