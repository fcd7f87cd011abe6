//! [`Value`] trees into Rust values, through serde.

use std::cell::{Cell, OnceCell};

use serde::de::{self, DeserializeOwned, DeserializeSeed, Unexpected, Visitor};
use serde::forward_to_deserialize_any;

use super::error::ValueError;
use super::parse::MAX_DEPTH;
use super::refs::Slots;
use super::value::{Key, Value, split_property_name};

/// Converts a PHP value into any `Deserialize` type.
///
/// Arrays keyed `0..n` in order become sequences and other arrays maps;
/// a sequence target also takes any array's values in order, since PHP lists
/// with holes (after `unset()`) are common. Objects become maps of their
/// property names without the visibility prefix. Strings that are not UTF-8
/// reach the target as bytes. Enum cases (`E:`) become their case name.
/// References are followed, numbering slots from `value` itself; a `C:`
/// payload cannot be converted.
pub fn from_value<T: DeserializeOwned>(value: &Value) -> Result<T, ValueError> {
    deserialize(value, Roots::Value(value))
}

/// What `r:`/`R:` slots count from.
pub(crate) enum Roots<'a> {
    /// A standalone value: slot 1 is the value itself.
    Value(&'a Value),
    /// A session's variables, numbered as the `php` handler writes them.
    Session(&'a [(Key, Value)]),
}

pub(crate) fn deserialize<T: DeserializeOwned>(
    value: &Value,
    roots: Roots<'_>,
) -> Result<T, ValueError> {
    let context = Context {
        roots,
        slots: OnceCell::new(),
        visits: Cell::new(0),
        budget: Cell::new(None),
    };
    T::deserialize(Deserializer {
        value,
        context: &context,
        depth: 0,
    })
}

/// Values a conversion may visit once it follows a reference, at the least.
/// Each `R:` to an array that itself holds two references to the previous
/// one doubles what a naive walk visits, so a few hundred bytes could
/// otherwise keep a conversion busy for longer than the universe lasts. PHP
/// shares those values instead; a Rust value has to copy them.
const MIN_VISIT_BUDGET: usize = 1 << 20;

struct Context<'a> {
    roots: Roots<'a>,
    /// Built on the first reference met: most values have none.
    slots: OnceCell<Slots<'a>>,
    /// Values visited so far, and the most allowed once a reference was
    /// followed (`None` before).
    visits: Cell<usize>,
    budget: Cell<Option<usize>>,
}

impl<'a> Context<'a> {
    fn slot(&self, slot: u64) -> Result<&'a Value, ValueError> {
        let slots = self.slots.get_or_init(|| match self.roots {
            Roots::Value(value) => Slots::new([value]),
            Roots::Session(entries) => Slots::new(entries.iter().map(|(_, value)| value)),
        });
        if self.budget.get().is_none() {
            self.budget
                .set(Some(MIN_VISIT_BUDGET.max(slots.len().saturating_mul(16))));
        }
        slots.get(slot).ok_or(ValueError::UnresolvedReference(slot))
    }

    fn visit(&self) -> Result<(), ValueError> {
        let visits = self.visits.get() + 1;
        self.visits.set(visits);
        match self.budget.get() {
            Some(limit) if visits > limit => Err(ValueError::TooManyValues { limit }),
            _ => Ok(()),
        }
    }
}

struct Deserializer<'a, 'c> {
    value: &'a Value,
    context: &'c Context<'a>,
    /// Levels entered, references followed included, so a reference cycle
    /// ends in an error instead of a stack overflow.
    depth: usize,
}

impl<'a, 'c> Deserializer<'a, 'c> {
    /// The value behind any references, and the depth after following them.
    fn resolve(&self) -> Result<(&'a Value, usize), ValueError> {
        self.context.visit()?;
        let (mut value, mut depth) = (self.value, self.depth);
        while let Value::Ref(slot) | Value::ObjectRef(slot) = value {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(ValueError::TooDeep { limit: MAX_DEPTH });
            }
            value = self.context.slot(*slot)?;
        }
        Ok((value, depth))
    }

    fn child(&self, value: &'a Value, depth: usize) -> Result<Self, ValueError> {
        if depth >= MAX_DEPTH {
            return Err(ValueError::TooDeep { limit: MAX_DEPTH });
        }
        Ok(Self {
            value,
            context: self.context,
            depth: depth + 1,
        })
    }

    fn entries(
        &self,
        entries: &'a [(Key, Value)],
        depth: usize,
        properties: bool,
    ) -> Result<Entries<'a, 'c>, ValueError> {
        let parent = self.child(self.value, depth)?;
        Ok(Entries {
            entries: entries.iter(),
            pending: None,
            properties,
            parent,
        })
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Int(i) => Unexpected::Signed(*i),
        Value::Float(f) => Unexpected::Float(*f),
        Value::String(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => Unexpected::Str(s),
            Err(_) => Unexpected::Bytes(bytes),
        },
        Value::Array(_) | Value::Object { .. } => Unexpected::Map,
        other => Unexpected::Other(other.kind()),
    }
}

fn is_list(entries: &[(Key, Value)]) -> bool {
    entries
        .iter()
        .enumerate()
        .all(|(i, (key, _))| matches!(key, Key::Int(k) if usize::try_from(*k) == Ok(i)))
}

fn visit_bytes<'de, V: Visitor<'de>>(bytes: &[u8], visitor: V) -> Result<V::Value, ValueError> {
    match std::str::from_utf8(bytes) {
        Ok(s) => visitor.visit_str(s),
        Err(_) => visitor.visit_bytes(bytes),
    }
}

impl<'de> de::Deserializer<'de> for Deserializer<'_, '_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let (value, depth) = self.resolve()?;
        match value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::String(bytes) => visit_bytes(bytes, visitor),
            Value::Array(entries) if is_list(entries) => {
                visitor.visit_seq(self.entries(entries, depth, false)?)
            }
            Value::Array(entries) => visitor.visit_map(self.entries(entries, depth, false)?),
            Value::Object { properties, .. } => {
                visitor.visit_map(self.entries(properties, depth, true)?)
            }
            Value::Enum { case, .. } => visit_bytes(case, visitor),
            other => Err(de::Error::invalid_type(unexpected(other), &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self.resolve()?.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let (value, depth) = self.resolve()?;
        match value {
            Value::Array(entries) => visitor.visit_seq(self.entries(entries, depth, false)?),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        let (value, depth) = self.resolve()?;
        match value {
            Value::Array(entries) => visitor.visit_map(self.entries(entries, depth, false)?),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        let (value, depth) = self.resolve()?;
        let (variant, content) = match value {
            Value::String(name) | Value::Enum { case: name, .. } => (name.as_slice(), None),
            Value::Array(entries) => match entries.as_slice() {
                [(Key::String(name), content)] => {
                    (name.as_slice(), Some(self.child(content, depth)?))
                }
                _ => {
                    return Err(de::Error::invalid_type(
                        Unexpected::Map,
                        &"an array with one string key",
                    ));
                }
            },
            other => return Err(de::Error::invalid_type(unexpected(other), &visitor)),
        };
        visitor.visit_enum(Variant {
            name: variant,
            content,
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct identifier
    }
}

/// Array entries or object properties, as a map or as a sequence of values.
struct Entries<'a, 'c> {
    entries: std::slice::Iter<'a, (Key, Value)>,
    pending: Option<&'a Value>,
    /// Object properties lose their visibility prefix.
    properties: bool,
    /// Carries the context and the depth of the children.
    parent: Deserializer<'a, 'c>,
}

impl<'a, 'c> Entries<'a, 'c> {
    fn deserializer(&self, value: &'a Value) -> Deserializer<'a, 'c> {
        Deserializer {
            value,
            context: self.parent.context,
            depth: self.parent.depth,
        }
    }
}

impl<'de> de::SeqAccess<'de> for Entries<'_, '_> {
    type Error = ValueError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ValueError> {
        match self.entries.next() {
            Some((_, value)) => seed.deserialize(self.deserializer(value)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = ValueError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ValueError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some(value);
        let key = match key {
            Key::Int(i) => KeyDeserializer::Int(*i),
            Key::String(name) if self.properties => {
                KeyDeserializer::Bytes(split_property_name(name).1)
            }
            Key::String(name) => KeyDeserializer::Bytes(name),
        };
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ValueError> {
        let value = self
            .pending
            .take()
            .ok_or_else(|| ValueError::Message("map value requested before its key".into()))?;
        seed.deserialize(self.deserializer(value))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A key: integer keys read as strings where a string is wanted (struct
/// fields, `String` map keys), and integer-like strings as integers where an
/// integer is wanted.
#[derive(Clone, Copy)]
enum KeyDeserializer<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl KeyDeserializer<'_> {
    fn as_int(self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(i),
            Self::Bytes(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        }
    }
}

macro_rules! integer_key {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
            match self.as_int() {
                Some(i) => visitor.visit_i64(i),
                None => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for KeyDeserializer<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            Self::Int(i) => visitor.visit_i64(i),
            Self::Bytes(bytes) => visit_bytes(bytes, visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        match self {
            // Not visit_i64: a struct's field visitor takes an integer as a
            // field index, and key 0 would silently fill the first field.
            Self::Int(i) => visitor.visit_string(i.to_string()),
            Self::Bytes(bytes) => visit_bytes(bytes, visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Self::Bytes(name) => visitor.visit_enum(Variant {
                name,
                content: None,
            }),
            Self::Int(i) => Err(de::Error::invalid_type(Unexpected::Signed(i), &visitor)),
        }
    }

    integer_key! { deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
    deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 }

    forward_to_deserialize_any! {
        bool f32 f64 char bytes byte_buf unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

/// An enum variant: a name, and for variants with data, their content.
struct Variant<'a, 'c> {
    name: &'a [u8],
    content: Option<Deserializer<'a, 'c>>,
}

impl<'de, 'a, 'c> de::EnumAccess<'de> for Variant<'a, 'c> {
    type Error = ValueError;
    type Variant = Content<'a, 'c>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), ValueError> {
        let variant = seed.deserialize(KeyDeserializer::Bytes(self.name))?;
        Ok((variant, Content(self.content)))
    }
}

/// A variant's data; `None` for a unit variant written as its bare name.
struct Content<'a, 'c>(Option<Deserializer<'a, 'c>>);

impl<'de> de::VariantAccess<'de> for Content<'_, '_> {
    type Error = ValueError;

    fn unit_variant(self) -> Result<(), ValueError> {
        match self.0 {
            None => Ok(()),
            Some(content) => de::Deserialize::deserialize(content),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, ValueError> {
        match self.0 {
            Some(content) => seed.deserialize(content),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a variant with data",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.0 {
            Some(content) => de::Deserializer::deserialize_seq(content, visitor),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &visitor)),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        match self.0 {
            Some(content) => de::Deserializer::deserialize_map(content, visitor),
            None => Err(de::Error::invalid_type(Unexpected::UnitVariant, &visitor)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::php::unserialize;

    fn from<T: DeserializeOwned>(data: &str) -> Result<T, ValueError> {
        from_value(&unserialize(data.as_bytes()).expect("valid data"))
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct User {
        name: String,
        roles: Vec<String>,
        age: Option<u8>,
    }

    #[test]
    fn objects_read_as_structs_by_bare_property_name() {
        let user = from::<User>(
            "O:4:\"User\":3:{s:4:\"name\";s:3:\"ann\";s:8:\"\0*\0roles\";a:1:{i:0;s:5:\"admin\";}s:9:\"\0User\0age\";N;}",
        );
        assert_eq!(
            user,
            Ok(User {
                name: "ann".into(),
                roles: vec!["admin".into()],
                age: None
            })
        );
    }

    #[test]
    fn lists_are_sequences_and_other_arrays_maps() {
        assert_eq!(from::<Vec<i64>>("a:2:{i:0;i:5;i:1;i:6;}"), Ok(vec![5, 6]));
        assert_eq!(
            from::<Vec<i64>>("a:2:{i:0;i:5;i:2;i:6;}"),
            Ok(vec![5, 6]),
            "holes after unset()"
        );
        let map = from::<BTreeMap<String, i64>>("a:2:{i:7;i:5;s:1:\"x\";i:6;}");
        assert_eq!(map, Ok([("7".to_owned(), 5), ("x".to_owned(), 6)].into()));
        let map = from::<BTreeMap<i64, bool>>("a:1:{i:-7;b:1;}");
        assert_eq!(map, Ok([(-7, true)].into()));
    }

    #[test]
    fn integer_keys_never_fill_struct_fields_by_position() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Pair {
            a: i64,
        }
        assert!(from::<Pair>("a:1:{i:0;i:5;}").is_err());
    }

    #[test]
    fn enums_read_from_cases_names_and_tagged_arrays() {
        #[derive(Debug, Deserialize, PartialEq)]
        enum Suit {
            Hearts,
            Spades,
        }
        #[derive(Debug, Deserialize, PartialEq)]
        enum Shape {
            Circle { r: f64 },
            Square(f64),
        }
        assert_eq!(from::<Suit>("E:11:\"Suit:Hearts\";"), Ok(Suit::Hearts));
        assert_eq!(from::<Suit>("s:6:\"Spades\";"), Ok(Suit::Spades));
        assert_eq!(
            from::<Shape>("a:1:{s:6:\"Circle\";a:1:{s:1:\"r\";d:1.5;}}"),
            Ok(Shape::Circle { r: 1.5 })
        );
        assert_eq!(
            from::<Shape>("a:1:{s:6:\"Square\";i:2;}"),
            Ok(Shape::Square(2.0))
        );
    }

    #[test]
    fn references_are_followed_and_cycles_end_in_an_error() {
        assert_eq!(from::<Vec<i64>>("a:2:{i:0;i:1;i:1;R:2;}"), Ok(vec![1, 1]));
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Node {
            next: Box<Node>,
        }
        let cycle = from::<Node>("O:4:\"Node\":1:{s:4:\"next\";r:1;}");
        assert_eq!(
            cycle.map(|_| ()),
            Err(ValueError::TooDeep { limit: MAX_DEPTH })
        );
        let ignored = from::<serde::de::IgnoredAny>("O:4:\"Node\":1:{s:4:\"next\";r:1;}");
        assert!(ignored.is_ok());
    }

    #[test]
    fn references_that_multiply_the_data_are_cut_short() {
        #[derive(Debug, Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        enum Tree {
            Leaf(i64),
            List(Vec<Tree>),
        }
        // Level k holds two references to level k-1: 2^64 leaves in 900 bytes.
        let levels = 64;
        let mut data = format!("a:{}:{{i:0;a:2:{{i:0;i:1;i:1;i:1;}}", levels + 1);
        for level in 1..=levels {
            let previous = if level == 1 { 2 } else { 4 + level - 1 };
            data += &format!("i:{level};a:2:{{i:0;R:{previous};i:1;R:{previous};}}");
        }
        data += "}";
        assert_eq!(
            from::<Tree>(&data).map(|_| ()),
            Err(ValueError::TooManyValues {
                limit: MIN_VISIT_BUDGET
            })
        );
        let few = from::<Vec<Tree>>("a:3:{i:0;a:1:{i:0;i:1;}i:1;R:2;i:2;R:2;}");
        assert!(few.is_ok(), "{few:?}");
    }

    #[test]
    fn custom_payloads_and_references_past_them_are_refused() {
        assert!(from::<BTreeMap<String, i64>>("C:1:\"X\":2:{N;}").is_err());
        // Slot 3 is `i:1;` unless X's unserialize() numbered values inside its payload.
        let past = from::<(serde::de::IgnoredAny, i64, Option<i64>)>(
            "a:3:{i:0;C:1:\"X\":2:{N;}i:1;i:1;i:2;R:3;}",
        );
        assert_eq!(past.map(|_| ()), Err(ValueError::UnresolvedReference(3)));
    }

    #[test]
    fn non_utf8_strings_reach_the_target_as_bytes() {
        assert!(
            from::<String>("s:2:\"\u{ff}\";").is_ok(),
            "U+00FF is two UTF-8 bytes"
        );
        let bytes = from_value::<serde_bytes::ByteBuf>(&Value::String(vec![0xff, 0]));
        assert_eq!(bytes.map(|b| b.into_vec()), Ok(vec![0xff, 0]));
        assert!(from_value::<String>(&Value::String(vec![0xff])).is_err());
    }
}
