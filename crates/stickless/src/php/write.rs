//! Writing a [`Value`] tree in `serialize()` format.

use super::error::EncodeError;
use super::float;
use super::parse::MAX_DEPTH;
use super::value::{Key, Value};

pub(crate) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    /// Added to every reference: 1 when the tree sits inside the
    /// `php_serialize` session array, which takes slot 1.
    ref_base: u64,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, ref_base: 0 }
    }

    pub(crate) fn inside_outer_slot(out: &'a mut Vec<u8>) -> Self {
        Self { out, ref_base: 1 }
    }

    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub(crate) fn value(&mut self, value: &Value) -> Result<(), EncodeError> {
        self.nested(value, 0)
    }

    pub(crate) fn array(&mut self, entries: &[(Key, Value)]) -> Result<(), EncodeError> {
        self.raw(b"a:");
        self.entries(entries, 0)
    }

    fn nested(&mut self, value: &Value, depth: usize) -> Result<(), EncodeError> {
        match value {
            Value::Null => self.raw(b"N;"),
            Value::Bool(b) => self.raw(if *b { b"b:1;" } else { b"b:0;" }),
            Value::Int(i) => {
                self.raw(b"i:");
                self.int(*i);
                self.raw(b";");
            }
            Value::Float(f) => {
                self.raw(b"d:");
                float::write(self.out, *f);
                self.raw(b";");
            }
            Value::String(bytes) => {
                self.raw(b"s:");
                self.quoted(bytes);
                self.raw(b";");
            }
            Value::Array(entries) => {
                self.raw(b"a:");
                self.entries(entries, depth)?;
            }
            Value::Object { class, properties } => {
                self.raw(b"O:");
                self.quoted(class);
                self.raw(b":");
                self.entries(properties, depth)?;
            }
            Value::Custom { class, data } => {
                self.raw(b"C:");
                self.quoted(class);
                self.raw(b":");
                self.unsigned(data.len() as u64);
                self.raw(b":{");
                self.raw(data);
                self.raw(b"}");
            }
            Value::Enum { class, case } => {
                if class.contains(&b':') {
                    return Err(EncodeError::EnumClassHasColon {
                        class: String::from_utf8_lossy(class).into_owned(),
                    });
                }
                self.raw(b"E:");
                self.unsigned((class.len() + 1 + case.len()) as u64);
                self.raw(b":\"");
                self.raw(class);
                self.raw(b":");
                self.raw(case);
                self.raw(b"\";");
            }
            Value::ObjectRef(slot) => self.reference(b"r:", *slot)?,
            Value::Ref(slot) => self.reference(b"R:", *slot)?,
        }
        Ok(())
    }

    /// `<count>:{key value ...}`
    fn entries(&mut self, entries: &[(Key, Value)], depth: usize) -> Result<(), EncodeError> {
        if depth >= MAX_DEPTH {
            return Err(EncodeError::TooDeep { limit: MAX_DEPTH });
        }
        self.unsigned(entries.len() as u64);
        self.raw(b":{");
        for (key, value) in entries {
            self.key(key);
            self.nested(value, depth + 1)?;
        }
        self.raw(b"}");
        Ok(())
    }

    pub(crate) fn key(&mut self, key: &Key) {
        match key {
            Key::Int(i) => {
                self.raw(b"i:");
                self.int(*i);
            }
            Key::String(bytes) => {
                self.raw(b"s:");
                self.quoted(bytes);
            }
        }
        self.raw(b";");
    }

    fn reference(&mut self, tag: &[u8], slot: u64) -> Result<(), EncodeError> {
        if slot == 0 {
            return Err(EncodeError::ZeroReference);
        }
        self.raw(tag);
        self.unsigned(slot.saturating_add(self.ref_base));
        self.raw(b";");
        Ok(())
    }

    /// `<len>:"<bytes>"`
    fn quoted(&mut self, bytes: &[u8]) {
        self.unsigned(bytes.len() as u64);
        self.raw(b":\"");
        self.raw(bytes);
        self.raw(b"\"");
    }

    fn int(&mut self, i: i64) {
        if i < 0 {
            self.raw(b"-");
        }
        self.unsigned(i.unsigned_abs());
    }

    fn unsigned(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.raw(&digits[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        Writer::new(&mut out).value(value).expect("writable");
        out
    }

    #[test]
    fn writes_every_kind() {
        let value = Value::Array(vec![
            (Key::Int(-1), Value::Int(i64::MIN)),
            (Key::from("s"), Value::from("a\"b")),
            (
                Key::Int(0),
                Value::Custom {
                    class: b"X".to_vec(),
                    data: b"{}".to_vec(),
                },
            ),
            (
                Key::Int(1),
                Value::Enum {
                    class: b"Suit".to_vec(),
                    case: b"Hearts".to_vec(),
                },
            ),
            (
                Key::Int(2),
                Value::Object {
                    class: b"stdClass".to_vec(),
                    properties: vec![],
                },
            ),
            (Key::Int(3), Value::ObjectRef(4)),
            (Key::Int(4), Value::Ref(2)),
            (Key::Int(5), Value::Float(-0.0)),
            (Key::Int(6), Value::Null),
            (Key::Int(7), Value::Bool(false)),
        ]);
        assert_eq!(
            String::from_utf8(write(&value)).expect("ASCII"),
            "a:10:{i:-1;i:-9223372036854775808;s:1:\"s\";s:3:\"a\"b\";i:0;C:1:\"X\":2:{{}}\
             i:1;E:11:\"Suit:Hearts\";i:2;O:8:\"stdClass\":0:{}i:3;r:4;i:4;R:2;i:5;d:-0;i:6;N;i:7;b:0;}"
        );
    }

    #[test]
    fn refuses_what_php_could_not_read_back() {
        let mut out = Vec::new();
        let enum_value = Value::Enum {
            class: b"A:B".to_vec(),
            case: b"C".to_vec(),
        };
        assert!(matches!(
            Writer::new(&mut out).value(&enum_value),
            Err(EncodeError::EnumClassHasColon { .. })
        ));
        assert_eq!(
            Writer::new(&mut out).value(&Value::Ref(0)),
            Err(EncodeError::ZeroReference)
        );
        let mut deep = Value::Null;
        for _ in 0..=MAX_DEPTH {
            deep = Value::Array(vec![(Key::Int(0), deep)]);
        }
        assert_eq!(
            Writer::new(&mut out).value(&deep),
            Err(EncodeError::TooDeep { limit: MAX_DEPTH })
        );
    }
}
