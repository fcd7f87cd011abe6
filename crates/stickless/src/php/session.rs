//! `$_SESSION` as stored by the `php` and `php_serialize` handlers, and
//! Laravel's session attributes as its `Store` saves them.

use std::collections::HashSet;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{DecodeError, DecodeErrorKind, EncodeError, ValueError};
use super::handler::SerializeHandler;
use super::json;
use super::parse::Parser;
use super::refs::{self, Planned};
use super::serde_de::{self, Roots};
use super::serde_ser;
use super::value::{Key, Value};
use super::write::Writer;

/// The variables of one PHP session (or the attributes of one Laravel
/// session), in stored order.
///
/// References (`r:`/`R:`) between and inside variables are numbered the way
/// the `php` handler numbers them, whichever handler the session was read
/// with, so a session can be written with either. [`insert`](Self::insert),
/// [`set`](Self::set) and [`remove`](Self::remove) renumber them so each still
/// names the value it named before, copying a removed value into the first
/// reference to it. A `C:` payload may hold slots only its class knows about:
/// [`get`](Self::get) refuses to follow references past one, and edits
/// renumber them as if it held none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    entries: Vec<(Key, Value)>,
}

impl Session {
    /// An empty session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads stored session data. An empty input is an empty session with
    /// every handler, as PHP stores a new session and Laravel reads a
    /// missing one.
    pub fn decode(handler: SerializeHandler, data: &[u8]) -> Result<Self, DecodeError> {
        match handler {
            SerializeHandler::Php => decode_php(data),
            SerializeHandler::PhpSerialize => decode_php_serialize(
                data,
                "an array (`a:`): php_serialize stores $_SESSION as one array",
            ),
            SerializeHandler::LaravelPhp => decode_php_serialize(
                data,
                "an array (`a:`): Laravel stores its attributes as one serialized array",
            ),
            SerializeHandler::LaravelJson => Ok(Self {
                entries: json::decode_session(data)?,
            }),
        }
    }

    /// Writes the session as `handler` stores it. Encoding what
    /// [`decode`](Self::decode) read with the same handler gives back the same
    /// bytes, for everything PHP writes; for
    /// [`LaravelJson`](SerializeHandler::LaravelJson), for everything
    /// `json_encode()` writes from data `json_decode()` gave (see
    /// [`json_decode`](super::json_decode) for the exceptions).
    pub fn encode(&self, handler: SerializeHandler) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        match handler {
            SerializeHandler::Php => {
                let mut writer = Writer::new(&mut out);
                for (key, value) in &self.entries {
                    let name = match key {
                        Key::String(name) => name,
                        Key::Int(i) => return Err(EncodeError::IntegerName(*i)),
                    };
                    if name.contains(&b'|') {
                        return Err(EncodeError::NameHasDelimiter {
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    writer.raw(name);
                    writer.raw(b"|");
                    writer.value(value)?;
                }
            }
            SerializeHandler::PhpSerialize | SerializeHandler::LaravelPhp => {
                Writer::inside_outer_slot(&mut out).array(&self.entries)?
            }
            SerializeHandler::LaravelJson => out = json::encode_session(&self.entries)?,
        }
        Ok(out)
    }

    /// Deserializes variable `name` into `T`; `None` when it is not set.
    ///
    /// Arrays become sequences when their keys are `0..n` in order and maps
    /// otherwise; objects become maps of their property names without the
    /// visibility prefix; references are followed.
    pub fn get<T: DeserializeOwned>(&self, name: impl Into<Key>) -> Result<Option<T>, ValueError> {
        match self.get_value(name) {
            Some(value) => serde_de::deserialize(value, Roots::Session(&self.entries)).map(Some),
            None => Ok(None),
        }
    }

    /// Serializes `value` into variable `name`, replacing it in place or
    /// adding it at the end. Structs and maps become arrays with string keys,
    /// sequences become arrays keyed `0..n`, `None` becomes null.
    pub fn set<T: Serialize + ?Sized>(
        &mut self,
        name: impl Into<Key>,
        value: &T,
    ) -> Result<(), ValueError> {
        let value = serde_ser::to_value(value)?;
        self.insert(name, value);
        Ok(())
    }

    /// The raw value of variable `name`.
    pub fn get_value(&self, name: impl Into<Key>) -> Option<&Value> {
        let name = name.into();
        self.entries
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// Sets variable `name` to a raw value, replacing it in place or adding it
    /// at the end; returns the value it replaces.
    ///
    /// References inside `value` are kept as given: they are numbered as if
    /// the session were written with the `php` handler.
    pub fn insert(&mut self, name: impl Into<Key>, value: Value) -> Option<Value> {
        let name = name.into();
        let Some(index) = self.position(&name) else {
            self.entries.push((name, value));
            return None;
        };
        if !refs::change_moves_references(&self.entries, index) {
            return Some(std::mem::replace(&mut self.entries[index].1, value));
        }
        let mut value = Some(value);
        let plan = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (key, _))| {
                let planned = match value.take_if(|_| i == index) {
                    Some(value) => Planned::Fresh(value),
                    None => Planned::Kept(i),
                };
                (key.clone(), planned)
            })
            .collect();
        let rebuilt = refs::rebuild(&self.entries, plan);
        let mut old = std::mem::replace(&mut self.entries, rebuilt);
        Some(old.swap_remove(index).1)
    }

    /// Removes variable `name`; returns its value.
    pub fn remove(&mut self, name: impl Into<Key>) -> Option<Value> {
        let index = self.position(&name.into())?;
        if !refs::change_moves_references(&self.entries, index) {
            return Some(self.entries.remove(index).1);
        }
        let plan = self
            .entries
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != index)
            .map(|(i, (key, _))| (key.clone(), Planned::Kept(i)))
            .collect();
        let rebuilt = refs::rebuild(&self.entries, plan);
        let mut old = std::mem::replace(&mut self.entries, rebuilt);
        Some(old.swap_remove(index).1)
    }

    /// Variables in stored order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.entries.iter().map(|(key, value)| (key, value))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any variable holds a reference (`r:`/`R:`), which numbers
    /// values across the whole session.
    pub(crate) fn has_references(&self) -> bool {
        self.entries
            .iter()
            .any(|(_, value)| refs::has_references(value))
    }

    fn position(&self, name: &Key) -> Option<usize> {
        self.entries.iter().position(|(key, _)| key == name)
    }
}

/// `name|<value>name|<value>...`. Names run to the first `|`, as in PHP, which
/// is why the encoder refuses names containing one.
fn decode_php(data: &[u8]) -> Result<Session, DecodeError> {
    // One parser for all variables: PHP numbers slots across the whole
    // session, so `b|r:1;` names the value of the first variable.
    let mut parser = Parser::new(data);
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    while !parser.at_end() {
        let start = parser.position();
        let Some(len) = parser.rest().iter().position(|&b| b == b'|') else {
            // PHP stops here quietly and keeps what it read; it never writes this.
            parser.seek(data.len());
            return Err(parser.error(DecodeErrorKind::Expected {
                expected: "`|` after a session variable name",
                found: None,
            }));
        };
        let name = &data[start..start + len];
        let value_start = start + len + 1;
        parser.seek(value_start);
        let value = parser.value().map_err(|err| {
            if name.starts_with(b"!") && err.offset == value_start {
                // PHP 4 and 5 wrote `!name|` with no value for a registered but
                // unset variable; PHP 7 and later fail to read it as well.
                DecodeError {
                    offset: start,
                    kind: DecodeErrorKind::Unsupported(
                        "PHP 5's `!name|` marker for an undefined variable",
                    ),
                }
            } else {
                err
            }
        })?;
        if !seen.insert(name) {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::DuplicateName,
            });
        }
        entries.push((Key::String(name.to_vec()), value));
    }
    Ok(Session { entries })
}

/// One array holding every variable; `expected` says so when it is not one.
fn decode_php_serialize(data: &[u8], expected: &'static str) -> Result<Session, DecodeError> {
    if data.is_empty() {
        return Ok(Session::new());
    }
    let mut parser = Parser::without_outer_slot(data);
    let count = parser.open_array(expected)?;
    let mut seen = HashSet::new();
    let mut entries = Vec::new();
    for _ in 0..count {
        let start = parser.position();
        let key = parser.key()?;
        if !seen.insert(key.clone()) {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::DuplicateName,
            });
        }
        entries.push((key, parser.value()?));
    }
    parser.close_array()?;
    if !parser.at_end() {
        return Err(parser.error(DecodeErrorKind::TrailingData));
    }
    Ok(Session { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use SerializeHandler::{LaravelJson, LaravelPhp, Php, PhpSerialize};

    fn round_trip(handler: SerializeHandler, data: &[u8]) -> Session {
        let session = Session::decode(handler, data).expect("valid session");
        assert_eq!(session.encode(handler).expect("encodable"), data);
        session
    }

    #[test]
    fn php_handler_round_trips_names_and_values() {
        let session = round_trip(Php, b"user|s:3:\"ann\";n|i:5;!bang|N;|b:1;");
        assert_eq!(session.len(), 4);
        assert_eq!(session.get_value("!bang"), Some(&Value::Null));
        assert_eq!(session.get_value(""), Some(&Value::Bool(true)));
        assert!(round_trip(Php, b"").is_empty());
    }

    #[test]
    fn references_are_kept_in_php_numbering_under_both_handlers() {
        let php = round_trip(Php, b"a|i:1;b|R:1;");
        let serialized = round_trip(PhpSerialize, b"a:2:{s:1:\"a\";i:1;s:1:\"b\";R:2;}");
        assert_eq!(php, serialized);
        assert_eq!(php.get_value("b"), Some(&Value::Ref(1)));
        assert_eq!(
            php.encode(PhpSerialize).expect("encodable"),
            b"a:2:{s:1:\"a\";i:1;s:1:\"b\";R:2;}"
        );
    }

    #[test]
    fn php_serialize_allows_integer_names_that_php_handler_cannot_store() {
        let session = round_trip(PhpSerialize, b"a:1:{i:5;s:4:\"five\";}");
        assert_eq!(session.get_value(5), Some(&Value::from("five")));
        assert_eq!(session.encode(Php), Err(EncodeError::IntegerName(5)));
        assert_eq!(Session::decode(PhpSerialize, b"").map(|s| s.len()), Ok(0));
    }

    #[test]
    fn names_with_the_delimiter_cannot_be_written_by_the_php_handler() {
        let mut session = Session::new();
        session.insert("a|b", Value::Null);
        assert!(matches!(
            session.encode(Php),
            Err(EncodeError::NameHasDelimiter { .. })
        ));
        assert_eq!(
            session.encode(PhpSerialize).expect("encodable"),
            b"a:1:{s:3:\"a|b\";N;}"
        );
    }

    #[test]
    fn malformed_sessions_are_refused_with_the_offset() {
        let err = |handler, data: &[u8]| Session::decode(handler, data).expect_err("invalid");
        let e = err(Php, b"a|i:1;garbage");
        assert_eq!(
            (e.offset, &e.kind),
            (
                13,
                &DecodeErrorKind::Expected {
                    expected: "`|` after a session variable name",
                    found: None
                }
            )
        );
        assert_eq!(
            err(Php, b"a|i:1;a|i:2;").kind,
            DecodeErrorKind::DuplicateName
        );
        assert_eq!(err(Php, b"a|i:1").offset, 5);
        let e = err(Php, b"x|N;!gone|y|i:1;");
        assert_eq!(
            (e.offset, e.kind),
            (
                4,
                DecodeErrorKind::Unsupported("PHP 5's `!name|` marker for an undefined variable")
            )
        );
        assert_eq!(err(PhpSerialize, b"i:1;").offset, 0);
        assert_eq!(
            err(PhpSerialize, b"a:0:{}x").kind,
            DecodeErrorKind::TrailingData
        );
        assert_eq!(
            err(PhpSerialize, b"a:2:{i:1;N;i:1;N;}").kind,
            DecodeErrorKind::DuplicateName
        );
        assert_eq!(
            err(PhpSerialize, b"a:1:{i:0;R:1;}").kind,
            DecodeErrorKind::Unsupported("a reference to the session array itself")
        );
    }

    #[test]
    fn replacing_a_shared_object_keeps_the_other_holder_intact() {
        let mut session = round_trip(
            Php,
            b"first|O:8:\"stdClass\":1:{s:2:\"id\";i:9;}second|r:1;n|i:1;m|R:4;",
        );
        session.insert("first", Value::Null);
        assert_eq!(
            session.encode(Php).expect("encodable"),
            b"first|N;second|O:8:\"stdClass\":1:{s:2:\"id\";i:9;}n|i:1;m|R:4;"
        );
        session.remove("first");
        assert_eq!(
            session.encode(Php).expect("encodable"),
            b"second|O:8:\"stdClass\":1:{s:2:\"id\";i:9;}n|i:1;m|R:3;"
        );
    }

    #[test]
    fn laravel_php_is_php_serialize_with_its_own_refusal() {
        let stored = b"a:2:{s:6:\"_token\";s:3:\"abc\";s:6:\"_flash\";a:2:{s:3:\"old\";a:0:{}s:3:\"new\";a:0:{}}}";
        let session = round_trip(LaravelPhp, stored);
        assert_eq!(session, round_trip(PhpSerialize, stored));
        assert_eq!(session.get::<String>("_token"), Ok(Some("abc".to_owned())));
        assert_eq!(
            Session::new().encode(LaravelPhp).expect("encodable"),
            b"a:0:{}"
        );
        let e = Session::decode(LaravelPhp, b"b:0;").expect_err("not an array");
        assert_eq!(
            e.kind,
            DecodeErrorKind::Expected {
                expected: "an array (`a:`): Laravel stores its attributes as one serialized array",
                found: Some(b'b')
            }
        );
    }

    #[test]
    fn laravel_json_round_trips_what_json_encode_writes() {
        let stored = br#"{"_token":"abc","_previous":{"url":"http:\/\/localhost\/caf\u00e9"},"_flash":{"old":[],"new":["status"]},"status":"ok","7":1.5}"#;
        let session = round_trip(LaravelJson, stored);
        assert_eq!(
            session
                .get::<String>("_previous")
                .map_err(|e| e.to_string()),
            Err("invalid type: map, expected a string".to_owned())
        );
        let flash: std::collections::BTreeMap<String, Vec<String>> =
            session.get("_flash").expect("a map").expect("set");
        assert_eq!(flash["new"], ["status"]);
        assert!(flash["old"].is_empty());
        assert_eq!(session.get_value(7), Some(&Value::Float(1.5)));
        assert_eq!(
            session
                .get_value("_previous")
                .and_then(|p| p.get("url"))
                .and_then(Value::as_bytes),
            Some("http://localhost/café".as_bytes())
        );
        assert_eq!(Session::decode(LaravelJson, b""), Ok(Session::new()));
        assert_eq!(
            Session::new().encode(LaravelJson).expect("encodable"),
            b"[]"
        );
    }

    #[test]
    fn laravel_json_refuses_what_is_not_an_object_and_what_json_cannot_hold() {
        let e = Session::decode(LaravelJson, b" \"x\"").expect_err("a string");
        assert_eq!(
            (e.offset, e.kind),
            (
                1,
                DecodeErrorKind::Expected {
                    expected: "a JSON object: Laravel stores its attributes as one",
                    found: Some(b'"')
                }
            )
        );
        let php = Session::decode(Php, b"a|i:1;b|R:1;").expect("valid");
        assert_eq!(
            php.encode(LaravelJson),
            Err(EncodeError::NotJson { kind: "reference" })
        );
    }
}
