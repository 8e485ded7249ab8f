//! A serde `Deserializer` over a JSON document whose scalars may be text: every string,
//! number or bool inside it is read through [`Text`] (so `"8080"` is a `u16` and `8080`
//! a `String`), objects and arrays member by member the same way, and an object's member
//! names too (`{"8080": ..}` into `HashMap<u16, _>`).
//!
//! It is how a subtree (`prefix = "..."`: many keys of a store read as one JSON object of
//! texts, see [`subtree`](super::subtree)) converts into `HashMap<String, u16>`, a
//! `BTreeMap<String, bool>` or a struct of numbers, as each key alone would: the members
//! stay the texts the store holds, and the field's type says what each one is.

use std::borrow::Cow;

use serde::de::value::Error;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::text::Text;

/// Deserializes from a JSON value, its scalars as text (see the module).
pub(crate) struct Lenient<'a>(pub(crate) &'a Value);

fn json_err(e: serde_json::Error) -> Error {
    de::Error::custom(e)
}

impl<'a> Lenient<'a> {
    /// The scalar as a text, `None` for null, an object or an array.
    fn text(&self) -> Option<Text<'a>> {
        match self.0 {
            Value::String(s) => Some(Text(Cow::Borrowed(s.as_str()))),
            Value::Number(_) | Value::Bool(_) => Some(Text(Cow::Owned(self.0.to_string()))),
            _ => None,
        }
    }
}

macro_rules! scalar {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
                match self.text() {
                    Some(text) => text.$method(visitor),
                    None => self.0.$method(visitor).map_err(json_err),
                }
            }
        )*
    };
}

impl<'a> Deserializer<'a> for Lenient<'a> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Members(map.iter(), None)),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Null => visitor.visit_unit(),
            _ => match self.text() {
                Some(text) => text.deserialize_any(visitor),
                None => visitor.visit_unit(),
            },
        }
    }

    scalar! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_unit
        deserialize_identifier
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            // An empty text is `None`, as a key alone would be.
            Value::String(text) => Text(Cow::Borrowed(text.as_str())).deserialize_option(visitor),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match (self.0, self.text()) {
            (Value::Array(items), _) => visitor.visit_seq(Items(items.iter())),
            (_, Some(text)) => text.deserialize_seq(visitor),
            (other, None) => other.deserialize_seq(visitor).map_err(json_err),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match (self.0, self.text()) {
            (Value::Object(map), _) => visitor.visit_map(Members(map.iter(), None)),
            (_, Some(text)) => text.deserialize_map(visitor),
            (other, None) => other.deserialize_map(visitor).map_err(json_err),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match (self.0, self.text()) {
            (Value::Object(map), _) => visitor.visit_map(Members(map.iter(), None)),
            (_, Some(text)) => text.deserialize_struct(name, fields, visitor),
            (other, None) => other
                .deserialize_struct(name, fields, visitor)
                .map_err(json_err),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.text() {
            Some(text) => text.deserialize_enum(name, variants, visitor),
            None => self
                .0
                .deserialize_enum(name, variants, visitor)
                .map_err(json_err),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// An object's members: names through [`Text`], values through [`Lenient`].
struct Members<'a>(serde_json::map::Iter<'a>, Option<&'a Value>);

impl<'a> MapAccess<'a> for Members<'a> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.0.next() {
            Some((name, value)) => {
                self.1 = Some(value);
                seed.deserialize(Text(Cow::Borrowed(name.as_str())))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> Result<S::Value, Error> {
        match self.1.take() {
            Some(value) => seed.deserialize(Lenient(value)),
            None => Err(de::Error::custom(
                "a member's value asked for before its name",
            )),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// An array's items, each through [`Lenient`].
struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'a> SeqAccess<'a> for Items<'a> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'a>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        match self.0.next() {
            Some(value) => seed.deserialize(Lenient(value)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde::Deserialize;

    use super::*;

    #[test]
    fn texts_inside_a_document_convert_as_the_type_asks() {
        let doc = serde_json::json!({"http": "8080", "admin": "9090"});
        let ports: HashMap<String, u16> = HashMap::deserialize(Lenient(&doc)).unwrap();
        assert_eq!(ports["http"], 8080);
        let texts: BTreeMap<String, String> = BTreeMap::deserialize(Lenient(&doc)).unwrap();
        assert_eq!(texts["admin"], "9090");

        #[derive(Deserialize)]
        struct Flags {
            dark: bool,
            beta: Option<u8>,
            list: Vec<String>,
            #[serde(default)]
            absent: Option<String>,
        }
        let doc = serde_json::json!({"dark": "true", "beta": "", "list": "a, b"});
        let flags = Flags::deserialize(Lenient(&doc)).unwrap();
        assert!(flags.dark && flags.beta.is_none() && flags.list == ["a", "b"]);
        assert!(flags.absent.is_none());

        let numbers = serde_json::json!({"1": 2, "3": true});
        let by_number: HashMap<u16, String> = HashMap::deserialize(Lenient(&numbers)).unwrap();
        assert_eq!(
            (by_number[&1].as_str(), by_number[&3].as_str()),
            ("2", "true")
        );

        let bad = serde_json::json!({"a": "x"});
        assert!(HashMap::<String, u16>::deserialize(Lenient(&bad)).is_err());
    }
}
