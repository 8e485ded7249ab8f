//! A serde `Deserializer` over one text value (an env variable, a Consul value, a SQL
//! `TEXT`): scalars are parsed as the field's type asks (`"8080"` as `u16`, `"true"` as
//! `bool`), documents (`{...}`, `[...]`) are read as JSON, a plain `a,b,c` is a sequence,
//! and an empty text is `None` for an `Option`. An owned text moves into `String` fields
//! without a copy.

use std::borrow::Cow;

use serde::de::value::{Error, SeqDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, Unexpected, VariantAccess,
    Visitor,
};

/// Deserializes from a text.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'a> Text<'a> {
    fn visit_text<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error>
    where
        'a: 'de,
    {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_borrowed_str(s),
            Cow::Owned(s) => visitor.visit_string(s),
        }
    }
}

fn json_err(e: serde_json::Error) -> Error {
    de::Error::custom(e)
}

fn is_document(s: &str) -> bool {
    let t = s.trim_start();
    t.starts_with('{') || t.starts_with('[')
}

macro_rules! parse_scalar {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self.0.trim().parse::<$ty>() {
                    Ok(v) => visitor.$visit(v),
                    Err(e) => Err(de::Error::custom(format_args!("{e} (expected {})", stringify!($ty)))),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Text<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Self-describing targets (`serde_json::Value`, untagged enums): JSON when the text
        // is JSON (`8080`, `true`, `{..}`), else the text itself.
        match serde_json::from_str::<serde_json::Value>(&self.0) {
            Ok(value) => value.deserialize_any(visitor).map_err(json_err),
            Err(_) => self.visit_text(visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let t = self.0.trim();
        match () {
            _ if t.eq_ignore_ascii_case("true") => visitor.visit_bool(true),
            _ if t.eq_ignore_ascii_case("false") => visitor.visit_bool(false),
            _ => Err(de::Error::invalid_value(
                Unexpected::Str(&self.0),
                &"`true` or `false`",
            )),
        }
    }

    parse_scalar! {
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_i128 => i128, visit_i128;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
        deserialize_u128 => u128, visit_u128;
        deserialize_f32 => f32, visit_f32;
        deserialize_f64 => f64, visit_f64;
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut chars = self.0.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => visitor.visit_char(c),
            _ => Err(de::Error::invalid_value(
                Unexpected::Str(&self.0),
                &"one character",
            )),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_text(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_text(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Cow::Borrowed(s) => visitor.visit_borrowed_bytes(s.as_bytes()),
            Cow::Owned(s) => visitor.visit_byte_buf(s.into_bytes()),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.trim().is_empty() || self.0.trim() == "null" {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.trim().is_empty() || self.0.trim() == "null" {
            visitor.visit_unit()
        } else {
            Err(de::Error::invalid_value(
                Unexpected::Str(&self.0),
                &"nothing",
            ))
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if is_document(&self.0) {
            let value: serde_json::Value = serde_json::from_str(&self.0).map_err(json_err)?;
            return value.deserialize_seq(visitor).map_err(json_err);
        }
        // `a, b, c`: a comma-separated list of texts.
        let items: Vec<Text<'de>> = if self.0.trim().is_empty() {
            Vec::new()
        } else {
            self.0
                .split(',')
                .map(|s| Text(Cow::Owned(s.trim().to_owned())))
                .collect()
        };
        let mut seq = SeqDeserializer::new(items.into_iter());
        let v = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value: serde_json::Value = serde_json::from_str(&self.0).map_err(json_err)?;
        value.deserialize_map(visitor).map_err(json_err)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let value: serde_json::Value = serde_json::from_str(&self.0).map_err(json_err)?;
        value
            .deserialize_struct(name, fields, visitor)
            .map_err(json_err)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let t = self.0.trim_start();
        if t.starts_with('{') || t.starts_with('"') {
            let value: serde_json::Value = serde_json::from_str(&self.0).map_err(json_err)?;
            return value
                .deserialize_enum(name, variants, visitor)
                .map_err(json_err);
        }
        let name = match self.0 {
            Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
            Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
        };
        visitor.visit_enum(UnitVariant(name))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_text(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

impl<'de> IntoDeserializer<'de, Error> for Text<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// A unit variant named by plain text (`mode = "fast"` for `enum Mode { Fast, .. }` with
/// `rename_all = "lowercase"`).
struct UnitVariant<'a>(Cow<'a, str>);

impl<'de> EnumAccess<'de> for UnitVariant<'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self), Error> {
        let value = match &self.0 {
            Cow::Borrowed(s) => {
                seed.deserialize(IntoDeserializer::<Error>::into_deserializer(*s))?
            }
            Cow::Owned(s) => {
                seed.deserialize(IntoDeserializer::<Error>::into_deserializer(s.clone()))?
            }
        };
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, _seed: S) -> Result<S::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a variant with data, written as JSON",
        ))
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a tuple variant, written as JSON",
        ))
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a struct variant, written as JSON",
        ))
    }
}
