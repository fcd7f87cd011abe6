//! JSON text into a [`Value`] tree: serde_json parses, and the visitor
//! builds the array `json_decode($data, true)` would.

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::MAX_JSON_DEPTH;
use crate::php::error::{DecodeError, DecodeErrorKind};
use crate::php::serde_ser::string_key;
use crate::php::value::{Key, Value};

pub(super) fn value(data: &[u8]) -> Result<Value, DecodeError> {
    let refused = Cell::new(None);
    let mut parser = serde_json::Deserializer::from_slice(data);
    let seed = Seed {
        depth: 0,
        refused: &refused,
    };
    let value = seed.deserialize(&mut parser).map_err(|err| DecodeError {
        offset: offset(data, &err),
        kind: refused
            .take()
            .unwrap_or_else(|| DecodeErrorKind::InvalidJson(description(&err))),
    })?;
    // `end` fails only on something other than whitespace after the value.
    parser.end().map_err(|err| DecodeError {
        offset: offset(data, &err),
        kind: DecodeErrorKind::TrailingData,
    })?;
    Ok(value)
}

/// The byte serde_json's 1-based line and column point at.
fn offset(data: &[u8], err: &serde_json::Error) -> usize {
    let line_start: usize = data
        .split(|&b| b == b'\n')
        .take(err.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum();
    (line_start + err.column().saturating_sub(1)).min(data.len())
}

/// serde_json's message without " at line L column C".
fn description(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    text.strip_suffix(&position).unwrap_or(&text).to_owned()
}

/// Builds one value; `depth` counts the arrays and objects around it.
#[derive(Clone, Copy)]
struct Seed<'a> {
    depth: usize,
    /// A refusal of the codec's own, typed, for the error serde_json
    /// carries out of the parse (which gives it its position).
    refused: &'a Cell<Option<DecodeErrorKind>>,
}

impl Seed<'_> {
    /// The seed for the values inside an array or object here.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            self.refused.set(Some(DecodeErrorKind::TooDeep {
                limit: MAX_JSON_DEPTH,
            }));
            return Err(E::custom("nested too deep"));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    /// Beyond `i64`, PHP reads an integer as a float.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    /// serde_json gives `-0` as the float -0.0; PHP reads it as the
    /// integer 0, and so does this.
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(if v == 0.0 && v.is_sign_negative() {
            Value::Int(0)
        } else {
            Value::Float(v)
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v.into_bytes()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut entries = Vec::new();
        while let Some(value) = seq.next_element_seed(inner)? {
            let index = i64::try_from(entries.len()).unwrap_or(i64::MAX);
            entries.push((Key::Int(index), value));
        }
        Ok(Value::Array(entries))
    }

    /// A key given twice keeps its first place and takes the last value,
    /// as PHP's array does.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested()?;
        let mut entries: Vec<(Key, Value)> = Vec::new();
        let mut places: HashMap<Key, usize> = HashMap::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(inner)?;
            match places.entry(key) {
                Entry::Occupied(place) => entries[*place.get()].1 = value,
                Entry::Vacant(place) => {
                    entries.push((place.key().clone(), value));
                    place.insert(entries.len() - 1);
                }
            }
        }
        Ok(Value::Array(entries))
    }
}

/// An object's key, as PHP keys its array: `"5"` is the integer 5.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(string_key(v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Value {
        value(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn refused(json: &[u8]) -> (usize, DecodeErrorKind) {
        let err = value(json).expect_err("invalid");
        (err.offset, err.kind)
    }

    fn array(entries: Vec<(Key, Value)>) -> Value {
        Value::Array(entries)
    }

    #[test]
    fn scalars_read_as_json_decode_gives_them() {
        assert_eq!(read("null"), Value::Null);
        assert_eq!(read(" true "), Value::Bool(true));
        assert_eq!(read("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(read("9223372036854775807"), Value::Int(i64::MAX));
        assert_eq!(
            read("9223372036854775808"),
            Value::Float(9.223372036854776e18)
        );
        assert_eq!(
            read("-9223372036854775809"),
            Value::Float(-9.223372036854776e18)
        );
        assert_eq!(
            read("123456789012345678901234567890"),
            Value::Float(1.2345678901234568e29)
        );
        assert_eq!(read("1.0"), Value::Float(1.0));
        assert_eq!(read("-0"), Value::Int(0));
        assert_eq!(read("1e2"), Value::Float(100.0));
        assert_eq!(
            read(r#""a\/b\u00e9\ud83d\ude00\n""#),
            Value::from("a/bé😀\n")
        );
    }

    #[test]
    fn objects_become_arrays_keyed_as_php_keys_them() {
        assert_eq!(
            read(r#"{"5":1,"05":2,"-3":3,"-0":4,"":5}"#),
            array(vec![
                (Key::Int(5), Value::Int(1)),
                (Key::from("05"), Value::Int(2)),
                (Key::Int(-3), Value::Int(3)),
                (Key::from("-0"), Value::Int(4)),
                (Key::from(""), Value::Int(5)),
            ])
        );
        assert_eq!(
            read(r#"["a",[]]"#),
            array(vec![
                (Key::Int(0), Value::from("a")),
                (Key::Int(1), array(vec![]))
            ])
        );
        assert_eq!(read("{}"), read("[]"));
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_takes_the_last_value() {
        assert_eq!(
            read(r#"{"a":1,"b":2,"a":3,"\u0061":4}"#),
            array(vec![
                (Key::from("a"), Value::Int(4)),
                (Key::from("b"), Value::Int(2))
            ])
        );
    }

    #[test]
    fn nesting_stops_at_max_json_depth() {
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert!(value(deep(MAX_JSON_DEPTH).as_bytes()).is_ok());
        let (offset, kind) = refused(deep(MAX_JSON_DEPTH + 1).as_bytes());
        assert_eq!(
            kind,
            DecodeErrorKind::TooDeep {
                limit: MAX_JSON_DEPTH
            }
        );
        assert!(offset <= MAX_JSON_DEPTH + 1, "{offset}");
        assert_eq!(
            refused(deep(100_000).as_bytes()).1,
            DecodeErrorKind::TooDeep {
                limit: MAX_JSON_DEPTH
            }
        );
    }

    #[test]
    fn invalid_json_is_refused_where_it_goes_wrong() {
        assert_eq!(refused(b"[1] x"), (4, DecodeErrorKind::TrailingData));
        let (offset, kind) = refused(b"{\"a\":1,\n \"b\" 2}");
        assert_eq!(offset, 13);
        assert_eq!(
            kind,
            DecodeErrorKind::InvalidJson("expected `:`".to_owned())
        );
        for bad in [
            &b"[1,]"[..],
            b"{'a':1}",
            b"\"\\ud800\"",
            b"\"a\x01\"",
            b"\"\xff\"",
            b"01",
            b"NaN",
            b"1e400",
            b"",
            b"[",
        ] {
            assert!(
                matches!(refused(bad).1, DecodeErrorKind::InvalidJson(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
