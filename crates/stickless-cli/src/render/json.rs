//! Session variables as JSON, for scripts. PHP's values map onto JSON where
//! they can; what JSON lacks is spelled out in small tagged objects:
//!
//! | PHP | JSON |
//! |---|---|
//! | array with keys 0, 1, ... in order | array |
//! | any other array | object (integer keys as strings) |
//! | object | `{"@class": "App\\User", "name": ..., "protected roles": ...}` |
//! | string that is not UTF-8 | `{"@bytes": "<hex>"}` |
//! | INF, -INF, NAN | `"INF"`, `"-INF"`, `"NAN"` |
//! | `Serializable` payload | `{"@class": ..., "@serialized": ...}` |
//! | enum case | `{"@enum": "Suit::Hearts"}` |
//! | reference to slot n | `{"@ref": n}`, `{"@object_ref": n}` |

use serde_json::{Map, Value as Json, json};
use stickless::php::{Key, Session, Value, Visibility, split_property_name};

/// The session's variables as one JSON object.
pub fn session(session: &Session) -> Json {
    let mut map = Map::new();
    for (key, value) in session.iter() {
        map.insert(key_text(key), value_json(value));
    }
    Json::Object(map)
}

fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Int(i) => json!(i),
        Value::Float(f) if f.is_nan() => json!("NAN"),
        Value::Float(f) if f.is_infinite() => json!(if *f > 0.0 { "INF" } else { "-INF" }),
        Value::Float(f) => json!(f),
        Value::String(bytes) => bytes_json(bytes),
        Value::Array(entries) => {
            let is_list = entries
                .iter()
                .enumerate()
                .all(|(i, (k, _))| matches!(k, Key::Int(n) if usize::try_from(*n) == Ok(i)));
            if is_list {
                Json::Array(entries.iter().map(|(_, v)| value_json(v)).collect())
            } else {
                Json::Object(
                    entries
                        .iter()
                        .map(|(k, v)| (key_text(k), value_json(v)))
                        .collect(),
                )
            }
        }
        Value::Object { class, properties } => {
            let mut map = Map::new();
            map.insert("@class".into(), text_json(class));
            for (k, v) in properties {
                map.insert(property_text(k), value_json(v));
            }
            Json::Object(map)
        }
        Value::Custom { class, data } => {
            json!({ "@class": text_json(class), "@serialized": bytes_json(data) })
        }
        Value::Enum { class, case } => json!({
            "@enum": format!("{}::{}", String::from_utf8_lossy(class), String::from_utf8_lossy(case))
        }),
        Value::ObjectRef(slot) => json!({ "@object_ref": slot }),
        Value::Ref(slot) => json!({ "@ref": slot }),
    }
}

fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(text) => json!(text),
        Err(_) => json!({ "@bytes": hex(bytes) }),
    }
}

fn text_json(bytes: &[u8]) -> Json {
    json!(String::from_utf8_lossy(bytes))
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::String(bytes) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn property_text(key: &Key) -> String {
    let Key::String(raw) = key else {
        return key_text(key);
    };
    let (visibility, name) = split_property_name(raw);
    let name = String::from_utf8_lossy(name);
    match visibility {
        Visibility::Public => name.into_owned(),
        Visibility::Protected => format!("protected {name}"),
        Visibility::Private { class } => {
            format!("private({}) {name}", String::from_utf8_lossy(class))
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use stickless::php::SerializeHandler;

    use super::*;

    #[test]
    fn lists_objects_and_bytes_map_onto_json() {
        let data = b"roles|a:2:{i:0;s:1:\"a\";i:1;s:1:\"b\";}map|a:1:{i:5;b:0;}u|O:1:\"U\":1:{s:4:\"\0*\0p\";d:INF;}raw|s:2:\"\xff\x00\";";
        let s = Session::decode(SerializeHandler::Php, data).unwrap();
        assert_eq!(
            session(&s),
            json!({
                "roles": ["a", "b"],
                "map": { "5": false },
                "u": { "@class": "U", "protected p": "INF" },
                "raw": { "@bytes": "ff00" },
            })
        );
    }
}
