//! Rust values into [`Value`] trees, through serde.

use serde::ser::{self, Serialize};

use super::error::ValueError;
use super::parse::MAX_DEPTH;
use super::value::{Key, Value};

/// Converts any `Serialize` value into a PHP value.
///
/// Structs and maps become arrays with string keys (integer-like keys such as
/// `"5"` become integer keys, as PHP itself stores them), sequences and tuples
/// become arrays keyed `0..n`, `None` and `()` become null, unit enum variants
/// become their name, and other enum variants become `[variant => content]`.
pub fn to_value<T: Serialize + ?Sized>(value: &T) -> Result<Value, ValueError> {
    value.serialize(Serializer { depth: 0 })
}

struct Serializer {
    /// Levels entered so far; recursive types must not exhaust the stack.
    depth: usize,
}

impl Serializer {
    fn child(&self) -> Result<Self, ValueError> {
        if self.depth >= MAX_DEPTH {
            return Err(ValueError::TooDeep { limit: MAX_DEPTH });
        }
        Ok(Self {
            depth: self.depth + 1,
        })
    }

    fn builder(
        &self,
        len: Option<usize>,
        variant: Option<&'static str>,
    ) -> Result<Builder, ValueError> {
        Ok(Builder {
            entries: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            pending_key: None,
            variant,
            inner: self.child()?,
        })
    }
}

fn int(value: impl TryInto<i64> + Copy + Into<i128>) -> Result<Value, ValueError> {
    value
        .try_into()
        .map(Value::Int)
        .map_err(|_| ValueError::IntegerOutOfRange(value.into()))
}

fn variant(name: &'static str, content: Value) -> Value {
    Value::Array(vec![(Key::from(name), content)])
}

impl ser::Serializer for Serializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = Builder;
    type SerializeTuple = Builder;
    type SerializeTupleStruct = Builder;
    type SerializeTupleVariant = Builder;
    type SerializeMap = Builder;
    type SerializeStruct = Builder;
    type SerializeStructVariant = Builder;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        i64::try_from(v)
            .map(Value::Int)
            .map_err(|_| ValueError::IntegerOutOfRange(i128::MAX))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::String(v.to_string().into_bytes()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::String(v.to_vec()))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, ValueError> {
        value.serialize(self.child()?)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        value.serialize(self.child()?)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        name: &'static str,
        value: &T,
    ) -> Result<Value, ValueError> {
        Ok(variant(name, value.serialize(self.child()?)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Builder, ValueError> {
        self.builder(len, None)
    }
    fn serialize_tuple(self, len: usize) -> Result<Builder, ValueError> {
        self.builder(Some(len), None)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Builder, ValueError> {
        self.builder(Some(len), None)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        name: &'static str,
        len: usize,
    ) -> Result<Builder, ValueError> {
        self.builder(Some(len), Some(name))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Builder, ValueError> {
        self.builder(len, None)
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Builder, ValueError> {
        self.builder(Some(len), None)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        name: &'static str,
        len: usize,
    ) -> Result<Builder, ValueError> {
        self.builder(Some(len), Some(name))
    }
}

/// Collects the entries of one array; `variant` wraps it as `[variant => array]`.
struct Builder {
    entries: Vec<(Key, Value)>,
    pending_key: Option<Key>,
    variant: Option<&'static str>,
    inner: Serializer,
}

impl Builder {
    fn push_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = Key::Int(self.entries.len() as i64);
        self.entries.push((
            key,
            value.serialize(Serializer {
                depth: self.inner.depth,
            })?,
        ));
        Ok(())
    }

    fn push_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        let value = value.serialize(Serializer {
            depth: self.inner.depth,
        })?;
        self.entries.push((string_key(name.as_bytes()), value));
        Ok(())
    }

    fn finish(self) -> Value {
        let array = Value::Array(self.entries);
        match self.variant {
            Some(name) => variant(name, array),
            None => array,
        }
    }
}

impl ser::SerializeSeq for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push_element(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTuple for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push_element(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleStruct for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push_element(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeTupleVariant for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        self.push_element(value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeMap for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ValueError> {
        self.pending_key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ValueError> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| ValueError::Message("map value serialized before its key".into()))?;
        self.entries.push((
            key,
            value.serialize(Serializer {
                depth: self.inner.depth,
            })?,
        ));
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStruct for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.push_field(name, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

impl ser::SerializeStructVariant for Builder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), ValueError> {
        self.push_field(name, value)
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(self.finish())
    }
}

/// A string key as PHP stores it: `"5"` and `"-3"` are integer keys in a PHP
/// array (`"05"`, `"-0"` and `"5.0"` stay strings), so writing them as strings
/// would give data PHP itself never writes.
pub(crate) fn string_key(bytes: &[u8]) -> Key {
    canonical_int(bytes).map_or_else(|| Key::String(bytes.to_vec()), Key::Int)
}

/// The integer PHP makes of a string array key, if it makes one.
pub(crate) fn canonical_int(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [b'0'] => digits.len() == bytes.len(),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

struct KeySerializer;

impl KeySerializer {
    fn refuse(kind: &'static str) -> Result<Key, ValueError> {
        Err(ValueError::KeyType(kind))
    }
}

impl ser::Serializer for KeySerializer {
    type Ok = Key;
    type Error = ValueError;
    type SerializeSeq = ser::Impossible<Key, ValueError>;
    type SerializeTuple = ser::Impossible<Key, ValueError>;
    type SerializeTupleStruct = ser::Impossible<Key, ValueError>;
    type SerializeTupleVariant = ser::Impossible<Key, ValueError>;
    type SerializeMap = ser::Impossible<Key, ValueError>;
    type SerializeStruct = ser::Impossible<Key, ValueError>;
    type SerializeStructVariant = ser::Impossible<Key, ValueError>;

    fn serialize_bool(self, _: bool) -> Result<Key, ValueError> {
        Self::refuse("bool")
    }
    fn serialize_i8(self, v: i8) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Key, ValueError> {
        Ok(Key::Int(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Key, ValueError> {
        i64::try_from(v)
            .map(Key::Int)
            .map_err(|_| ValueError::IntegerOutOfRange(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Key, ValueError> {
        Ok(Key::Int(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Key, ValueError> {
        i64::try_from(v)
            .map(Key::Int)
            .map_err(|_| ValueError::IntegerOutOfRange(v.into()))
    }
    fn serialize_u128(self, v: u128) -> Result<Key, ValueError> {
        i64::try_from(v)
            .map(Key::Int)
            .map_err(|_| ValueError::IntegerOutOfRange(i128::MAX))
    }
    fn serialize_f32(self, _: f32) -> Result<Key, ValueError> {
        Self::refuse("float")
    }
    fn serialize_f64(self, _: f64) -> Result<Key, ValueError> {
        Self::refuse("float")
    }
    fn serialize_char(self, v: char) -> Result<Key, ValueError> {
        Ok(string_key(v.to_string().as_bytes()))
    }
    fn serialize_str(self, v: &str) -> Result<Key, ValueError> {
        Ok(string_key(v.as_bytes()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Key, ValueError> {
        Ok(string_key(v))
    }
    fn serialize_none(self) -> Result<Key, ValueError> {
        Self::refuse("none")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Key, ValueError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Key, ValueError> {
        Self::refuse("unit")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Key, ValueError> {
        Self::refuse("unit")
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Key, ValueError> {
        Ok(string_key(variant.as_bytes()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Key, ValueError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Key, ValueError> {
        Self::refuse("enum variant with data")
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, ValueError> {
        Err(ValueError::KeyType("sequence"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, ValueError> {
        Err(ValueError::KeyType("tuple"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, ValueError> {
        Err(ValueError::KeyType("tuple struct"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, ValueError> {
        Err(ValueError::KeyType("enum variant with data"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, ValueError> {
        Err(ValueError::KeyType("map"))
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, ValueError> {
        Err(ValueError::KeyType("struct"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, ValueError> {
        Err(ValueError::KeyType("enum variant with data"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct User {
        name: String,
        age: Option<u8>,
        tags: Vec<&'static str>,
        role: Role,
    }

    #[derive(Serialize)]
    enum Role {
        Admin,
        Guest { until: u32 },
    }

    #[test]
    fn structs_become_arrays_with_string_keys() {
        let user = User {
            name: "ann".into(),
            age: None,
            tags: vec!["a"],
            role: Role::Admin,
        };
        assert_eq!(
            to_value(&user),
            Ok(Value::Array(vec![
                (Key::from("name"), Value::from("ann")),
                (Key::from("age"), Value::Null),
                (
                    Key::from("tags"),
                    Value::Array(vec![(Key::Int(0), Value::from("a"))])
                ),
                (Key::from("role"), Value::from("Admin")),
            ]))
        );
        let guest = to_value(&Role::Guest { until: 3 });
        assert_eq!(
            guest,
            Ok(Value::Array(vec![(
                Key::from("Guest"),
                Value::Array(vec![(Key::from("until"), Value::Int(3))])
            )]))
        );
    }

    #[test]
    fn integer_like_string_keys_become_integer_keys_as_in_php() {
        let map: BTreeMap<&str, i32> = [
            ("5", 1),
            ("-3", 2),
            ("05", 3),
            ("-0", 4),
            ("x", 5),
            ("0", 6),
        ]
        .into();
        let Ok(Value::Array(entries)) = to_value(&map) else {
            panic!("a map is an array")
        };
        let keys: Vec<Key> = entries.into_iter().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            vec![
                Key::from("-0"),
                Key::Int(-3),
                Key::Int(0),
                Key::from("05"),
                Key::Int(5),
                Key::from("x")
            ]
        );
        assert_eq!(
            string_key(b"9223372036854775808"),
            Key::from("9223372036854775808")
        );
    }

    #[test]
    fn values_php_cannot_hold_are_refused() {
        assert_eq!(
            to_value(&u64::MAX),
            Err(ValueError::IntegerOutOfRange(u64::MAX.into()))
        );
        let map: BTreeMap<bool, i32> = [(true, 1)].into();
        assert_eq!(to_value(&map), Err(ValueError::KeyType("bool")));
    }

    #[test]
    fn recursive_types_stop_at_max_depth() {
        #[derive(Serialize)]
        struct List(Option<Box<List>>);
        let mut list = List(None);
        for _ in 0..2 * MAX_DEPTH {
            list = List(Some(Box::new(list)));
        }
        assert_eq!(
            to_value(&list),
            Err(ValueError::TooDeep { limit: MAX_DEPTH })
        );
    }
}
