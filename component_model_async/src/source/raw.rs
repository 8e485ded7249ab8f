//! [`RawValue`]: a value as a source delivered it, and its stored form.

use std::fmt;

/// A value as a source delivered it, before conversion into the field's type.
///
/// Its `Debug` never shows the content, only its form and length.
///
/// ```
/// use component_model_async::RawValue;
///
/// let v = RawValue::from("hunter2");
/// assert_eq!(format!("{v:?}"), "Text(<7 bytes>)");
/// ```
#[derive(Clone, PartialEq)]
pub enum RawValue {
    /// Text, e.g. an environment variable or a raw Consul value.
    Text(String),
    /// Bytes that may not be UTF-8.
    Bytes(Vec<u8>),
    /// A JSON document, e.g. an HTTP body or a Vault secret.
    Json(serde_json::Value),
}

impl RawValue {
    /// A message body as a value: text when it is UTF-8, bytes otherwise.
    ///
    /// ```
    /// use component_model_async::RawValue;
    ///
    /// assert_eq!(RawValue::text_or_bytes(b"8080".to_vec()), RawValue::from("8080"));
    /// assert_eq!(RawValue::text_or_bytes(vec![0xff]), RawValue::Bytes(vec![0xff]));
    /// ```
    pub fn text_or_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => RawValue::Text(s),
            Err(e) => RawValue::Bytes(e.into_bytes()),
        }
    }

    /// The size of the value in bytes (a JSON document: its compact serialization).
    pub fn len(&self) -> usize {
        match self {
            RawValue::Text(s) => s.len(),
            RawValue::Bytes(b) => b.len(),
            RawValue::Json(v) => serde_json::to_vec(v).map_or(0, |b| b.len()),
        }
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for RawValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawValue::Text(s) => write!(f, "Text(<{} bytes>)", s.len()),
            RawValue::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            RawValue::Json(v) => write!(f, "Json(<{}>)", json_kind(v)),
        }
    }
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

impl From<String> for RawValue {
    fn from(s: String) -> Self {
        RawValue::Text(s)
    }
}
impl From<&str> for RawValue {
    fn from(s: &str) -> Self {
        RawValue::Text(s.to_owned())
    }
}
impl From<serde_json::Value> for RawValue {
    fn from(v: serde_json::Value) -> Self {
        RawValue::Json(v)
    }
}
impl From<Vec<u8>> for RawValue {
    fn from(b: Vec<u8>) -> Self {
        RawValue::Bytes(b)
    }
}

/// A [`RawValue`] as stored outside the process (`local_cache` files, the shared cache tier).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredValue {
    Text(String),
    Bytes(Vec<u8>),
    Json(serde_json::Value),
}

impl From<RawValue> for StoredValue {
    fn from(raw: RawValue) -> Self {
        match raw {
            RawValue::Text(s) => StoredValue::Text(s),
            RawValue::Bytes(b) => StoredValue::Bytes(b),
            RawValue::Json(v) => StoredValue::Json(v),
        }
    }
}

impl From<StoredValue> for RawValue {
    fn from(v: StoredValue) -> Self {
        match v {
            StoredValue::Text(s) => RawValue::Text(s),
            StoredValue::Bytes(b) => RawValue::Bytes(b),
            StoredValue::Json(v) => RawValue::Json(v),
        }
    }
}
