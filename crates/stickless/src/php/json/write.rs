//! A [`Value`] tree as PHP's `json_encode()` writes it without flags.

use super::MAX_JSON_DEPTH;
use crate::php::error::EncodeError;
use crate::php::float;
use crate::php::serde_ser::canonical_int;
use crate::php::value::{Key, Value};

pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    pub(super) fn value(&mut self, value: &Value) -> Result<(), EncodeError> {
        self.nested(value, 0)
    }

    pub(super) fn array(&mut self, entries: &[(Key, Value)]) -> Result<(), EncodeError> {
        self.entries(entries, 0)
    }

    fn nested(&mut self, value: &Value, depth: usize) -> Result<(), EncodeError> {
        match value {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(i) => self.out.extend_from_slice(i.to_string().as_bytes()),
            Value::Float(f) => {
                if !float::write_json(self.out, *f) {
                    return Err(EncodeError::NonFiniteFloat);
                }
            }
            Value::String(bytes) => self.string(bytes, "a string")?,
            Value::Array(entries) => self.entries(entries, depth)?,
            other => return Err(EncodeError::NotJson { kind: other.kind() }),
        }
        Ok(())
    }

    /// `[...]` for a list, `{...}` for any other array.
    fn entries(&mut self, entries: &[(Key, Value)], depth: usize) -> Result<(), EncodeError> {
        if depth >= MAX_JSON_DEPTH {
            return Err(EncodeError::TooDeep {
                limit: MAX_JSON_DEPTH,
            });
        }
        let list = is_list(entries);
        self.out.push(if list { b'[' } else { b'{' });
        for (i, (key, value)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            if !list {
                match key {
                    Key::Int(n) => {
                        self.out.push(b'"');
                        self.out.extend_from_slice(n.to_string().as_bytes());
                        self.out.push(b'"');
                    }
                    Key::String(name) => self.string(name, "an array key")?,
                }
                self.out.push(b':');
            }
            self.nested(value, depth + 1)?;
        }
        self.out.push(if list { b']' } else { b'}' });
        Ok(())
    }

    /// A quoted string, escaped as `php_json_escape_string` does by
    /// default.
    fn string(&mut self, bytes: &[u8], what: &'static str) -> Result<(), EncodeError> {
        let text = std::str::from_utf8(bytes).map_err(|e| EncodeError::NotUtf8 {
            what,
            valid_up_to: e.valid_up_to(),
        })?;
        self.out.push(b'"');
        for c in text.chars() {
            let escape: &[u8] = match c {
                '"' => b"\\\"",
                '\\' => b"\\\\",
                '/' => b"\\/",
                '\u{8}' => b"\\b",
                '\u{c}' => b"\\f",
                '\n' => b"\\n",
                '\r' => b"\\r",
                '\t' => b"\\t",
                ' '..='\u{7f}' => {
                    // ASCII from the space on, DEL included, is written as is.
                    self.out.push(c as u8);
                    continue;
                }
                _ => {
                    for unit in c.encode_utf16(&mut [0; 2]) {
                        self.out
                            .extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                    }
                    continue;
                }
            };
            self.out.extend_from_slice(escape);
        }
        self.out.push(b'"');
        Ok(())
    }
}

/// Keyed `0, 1, 2, ...` in order, as PHP's `zend_array_is_list` asks (an
/// empty array is a list). A string key counts as the integer PHP would
/// have made of it.
fn is_list(entries: &[(Key, Value)]) -> bool {
    entries.iter().enumerate().all(|(i, (key, _))| {
        let n = match key {
            Key::Int(n) => Some(*n),
            Key::String(name) => canonical_int(name),
        };
        n.and_then(|n| usize::try_from(n).ok()) == Some(i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: &Value) -> Result<String, EncodeError> {
        let mut out = Vec::new();
        Writer::new(&mut out).value(value)?;
        Ok(String::from_utf8(out).expect("JSON is ASCII here"))
    }

    #[test]
    fn escapes_strings_as_php_does() {
        // `php -r 'echo json_encode("a/b\"\\é😀\x01\x08\x0c\n\r\t<>&\x7f");'`
        assert_eq!(
            write(&Value::from(
                "a/b\"\\é😀\u{1}\u{8}\u{c}\n\r\t<>&'\u{7f}\u{1f}"
            )),
            Ok(
                "\"a\\/b\\\"\\\\\\u00e9\\ud83d\\ude00\\u0001\\b\\f\\n\\r\\t<>&'\u{7f}\\u001f\""
                    .to_owned()
            )
        );
    }

    #[test]
    fn lists_are_arrays_and_everything_else_objects() {
        let list = Value::Array(vec![
            (Key::Int(0), Value::Int(1)),
            (Key::from("1"), Value::Null),
        ]);
        assert_eq!(write(&list), Ok("[1,null]".to_owned()));
        assert_eq!(write(&Value::Array(vec![])), Ok("[]".to_owned()));
        let holes = Value::Array(vec![
            (Key::Int(0), Value::Bool(true)),
            (Key::Int(2), Value::Bool(false)),
        ]);
        assert_eq!(write(&holes), Ok(r#"{"0":true,"2":false}"#.to_owned()));
        let map = Value::Array(vec![
            (Key::from("a/b"), Value::Float(0.1)),
            (Key::Int(-7), Value::Float(1e25)),
        ]);
        assert_eq!(write(&map), Ok(r#"{"a\/b":0.1,"-7":1.0e+25}"#.to_owned()));
    }

    #[test]
    fn refuses_what_json_cannot_hold() {
        assert_eq!(
            write(&Value::Float(f64::NAN)),
            Err(EncodeError::NonFiniteFloat)
        );
        assert_eq!(
            write(&Value::string(b"\xc3(".to_vec())),
            Err(EncodeError::NotUtf8 {
                what: "a string",
                valid_up_to: 0
            })
        );
        let key = Value::Array(vec![(Key::String(b"ok\xff".to_vec()), Value::Null)]);
        assert_eq!(
            write(&key),
            Err(EncodeError::NotUtf8 {
                what: "an array key",
                valid_up_to: 2
            })
        );
        for value in [
            Value::Object {
                class: b"stdClass".to_vec(),
                properties: vec![],
            },
            Value::Enum {
                class: b"Suit".to_vec(),
                case: b"Hearts".to_vec(),
            },
            Value::Custom {
                class: b"X".to_vec(),
                data: vec![],
            },
            Value::Ref(1),
            Value::ObjectRef(1),
        ] {
            assert_eq!(
                write(&value),
                Err(EncodeError::NotJson { kind: value.kind() })
            );
        }
        let mut deep = Value::Null;
        for _ in 0..MAX_JSON_DEPTH {
            deep = Value::Array(vec![(Key::Int(0), deep)]);
        }
        assert!(write(&deep).is_ok());
        deep = Value::Array(vec![(Key::Int(0), deep)]);
        assert_eq!(
            write(&deep),
            Err(EncodeError::TooDeep {
                limit: MAX_JSON_DEPTH
            })
        );
    }
}
