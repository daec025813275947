//! Typed values read straight from the tree, as [`Node::to_json`] and
//! `serde_json` would read them, without building the JSON first. A value
//! these rules do not cover (a mapping where an enum is expected, say) is
//! an error: the caller then takes the JSON route, which gives the answer
//! of record. Tests: `roster::schema` (every roster of the repository and
//! odd values read alike both ways).

use super::{Node, Value};
use serde::de::{self, Deserializer, IntoDeserializer, Visitor};
use std::fmt;

/// Why a tree could not be read as the type asked for.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl<'de> Deserializer<'de> for &'de Node {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match &self.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            // JSON keeps a non-negative integer as unsigned.
            Value::Int(i) => match u64::try_from(*i) {
                Ok(u) => v.visit_u64(u),
                Err(_) => v.visit_i64(*i),
            },
            // JSON has no NaN or infinity: `to_json` makes them null.
            Value::Float(f) if f.is_finite() => v.visit_f64(*f),
            Value::Float(_) => v.visit_unit(),
            Value::Str(s) => v.visit_borrowed_str(s),
            Value::Seq(items) => {
                let mut seq = Items(items.iter());
                let out = v.visit_seq(&mut seq)?;
                match seq.0.len() {
                    0 => Ok(out),
                    _ => Err(de::Error::custom("a list with more items than expected")),
                }
            }
            Value::Map(entries) => {
                let mut map = Entries {
                    iter: entries.iter(),
                    value: None,
                };
                let out = v.visit_map(&mut map)?;
                match map.iter.len() {
                    0 => Ok(out),
                    _ => Err(de::Error::custom("a mapping with more keys than expected")),
                }
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match &self.value {
            Value::Null => v.visit_none(),
            Value::Float(f) if !f.is_finite() => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match &self.value {
            Value::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            _ => Err(de::Error::custom("an enum that is not a plain string")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

struct Items<'de>(std::slice::Iter<'de, Node>);

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|n| seed.deserialize(n)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de> {
    iter: std::slice::Iter<'de, (Node, Node)>,
    value: Option<&'de Node>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        // JSON keys are text: a key that is not a string is read as its
        // text, as `to_json` writes it.
        let key = match &k.value {
            Value::Str(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            _ => seed.deserialize(de::value::StringDeserializer::<Error>::new(k.key_text())),
        };
        key.map(Some)
    }

    fn next_value_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(v),
            None => Err(de::Error::custom("a value asked for before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}
