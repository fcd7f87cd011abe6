//! The PHP session codec against PHP itself (a corpus written by PHP 8.2,
//! see `fixtures/php/generate.php`) and against generated trees.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use stickless::php::{
    self, DecodeErrorKind, Key, SerializeHandler, Session, Value, Visibility, split_property_name,
};

const CORPUS: &str = include_str!("fixtures/php/corpus.txt");
const FLOATS: &str = include_str!("fixtures/php/floats.txt");

struct Case {
    kind: &'static str,
    name: &'static str,
    bytes: Vec<u8>,
}

fn corpus() -> Vec<Case> {
    CORPUS
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ' ');
            let (Some(kind), Some(name), Some(hex)) = (fields.next(), fields.next(), fields.next())
            else {
                panic!("corpus line without three fields: {line}");
            };
            Case {
                kind,
                name,
                bytes: hex::decode(hex).expect("hex"),
            }
        })
        .collect()
}

fn case(kind: &str, name: &str) -> Vec<u8> {
    corpus()
        .into_iter()
        .find(|case| case.kind == kind && case.name == name)
        .unwrap_or_else(|| panic!("no {kind} case {name}; regenerate the corpus"))
        .bytes
}

fn handler(kind: &str) -> SerializeHandler {
    kind.parse().expect("a session handler")
}

#[test]
fn everything_php_wrote_round_trips_byte_for_byte() {
    let cases = corpus();
    assert!(cases.len() > 80, "corpus is complete");
    for case in cases {
        let shown = String::from_utf8_lossy(&case.bytes);
        let written = if case.kind == "serialize" {
            let value = php::unserialize(&case.bytes)
                .unwrap_or_else(|e| panic!("{}: {e}\n{shown}", case.name));
            php::serialize(&value).expect("encodable")
        } else {
            let handler = handler(case.kind);
            let session = Session::decode(handler, &case.bytes)
                .unwrap_or_else(|e| panic!("{}: {e}\n{shown}", case.name));
            session.encode(handler).expect("encodable")
        };
        assert_eq!(
            String::from_utf8_lossy(&written),
            shown,
            "{} {}",
            case.kind,
            case.name
        );
        assert_eq!(written, case.bytes, "{} {}", case.kind, case.name);
    }
}

#[test]
fn both_handlers_read_the_same_session_identically() {
    let cases = corpus();
    let mut compared = 0;
    for php_case in cases.iter().filter(|case| case.kind == "php") {
        let Some(serialized) = cases
            .iter()
            .find(|case| case.kind == "php_serialize" && case.name == php_case.name)
        else {
            continue;
        };
        let from_php = Session::decode(SerializeHandler::Php, &php_case.bytes).expect("valid");
        let from_serialized =
            Session::decode(SerializeHandler::PhpSerialize, &serialized.bytes).expect("valid");
        assert_eq!(from_php, from_serialized, "{}", php_case.name);
        assert_eq!(
            from_php
                .encode(SerializeHandler::PhpSerialize)
                .expect("encodable"),
            serialized.bytes
        );
        compared += 1;
    }
    assert!(compared >= 8, "only {compared} sessions in both handlers");
}

#[test]
fn floats_read_and_write_exactly_as_php() {
    let mut checked = 0;
    for line in FLOATS.lines() {
        let (bits, text) = line.split_once(' ').expect("bits and text");
        let bits = u64::from_str_radix(bits, 16).expect("hex bits");
        let expected = f64::from_bits(bits);
        match php::unserialize(text.as_bytes()) {
            Ok(Value::Float(read)) => {
                assert!(
                    read.to_bits() == bits || (read.is_nan() && expected.is_nan()),
                    "{text}: read {read:e}"
                );
            }
            other => panic!("{text}: {other:?}"),
        }
        let written = php::serialize(&Value::Float(expected)).expect("encodable");
        assert_eq!(String::from_utf8_lossy(&written), text, "{expected:e}");
        checked += 1;
    }
    assert!(checked > 5000);
}

#[test]
fn private_and_protected_properties_keep_their_class() {
    let user = php::unserialize(&case("serialize", "object_user")).expect("valid");
    let Value::Object { class, properties } = &user else {
        panic!("an object: {user:?}")
    };
    assert_eq!(class, b"App\\Model\\User");
    let names: Vec<_> = properties
        .iter()
        .filter_map(|(key, _)| key.as_bytes())
        .collect();
    assert_eq!(
        names,
        [&b"name"[..], b"\0*\0roles", b"\0App\\Model\\User\0age"]
    );
    assert_eq!(
        split_property_name(names[2]),
        (
            Visibility::Private {
                class: b"App\\Model\\User"
            },
            &b"age"[..]
        )
    );
    assert_eq!(user.get("age"), Some(&Value::Int(42)));

    // A parent's private property and the child's own, under one name.
    let child = php::unserialize(&case("serialize", "object_inherited_private")).expect("valid");
    let secrets: Vec<_> = child
        .entries()
        .expect("properties")
        .iter()
        .filter_map(|(key, value)| match split_property_name(key.as_bytes()?) {
            (Visibility::Private { class }, b"secret") => Some((class.to_vec(), value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        secrets,
        [
            (b"Base".to_vec(), Value::from("base")),
            (b"Child".to_vec(), Value::from("child"))
        ]
    );
}

#[test]
fn enums_custom_payloads_and_references_are_kept_as_written() {
    let status = php::unserialize(&case("serialize", "enum_namespaced")).expect("valid");
    assert_eq!(
        status,
        Value::Enum {
            class: b"App\\Model\\Status".to_vec(),
            case: b"Banned".to_vec()
        }
    );

    let raw = php::unserialize(&case("serialize", "custom_raw_bytes")).expect("valid");
    assert_eq!(
        raw,
        Value::Custom {
            class: b"Raw".to_vec(),
            data: b"any\0bytes;}{\"here".to_vec()
        }
    );

    let repeated = php::unserialize(&case("serialize", "enum_repeated")).expect("valid");
    assert_eq!(
        repeated.get(1),
        Some(&Value::ObjectRef(2)),
        "a repeated enum case is the same object"
    );

    let element = php::unserialize(&case("serialize", "ref_element")).expect("valid");
    assert_eq!(element.get(1), Some(&Value::Ref(2)));
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct User {
    name: String,
    roles: Vec<String>,
    age: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
enum Status {
    Active,
    Banned,
}

#[test]
fn php_sessions_deserialize_into_rust_types() {
    for kind in ["php", "php_serialize"] {
        let session = Session::decode(handler(kind), &case(kind, "user")).expect("valid");
        let user: Option<User> = session.get("user").expect("a user");
        assert_eq!(
            user,
            Some(User {
                name: "ann".into(),
                roles: vec!["admin".into(), "dev".into()],
                age: Some(42)
            })
        );
        let cart: Vec<Item> = session.get("cart").expect("a cart").expect("set");
        assert_eq!(
            cart,
            [
                Item {
                    sku: "A-1".into(),
                    qty: 2
                },
                Item {
                    sku: "B-2".into(),
                    qty: 1
                }
            ]
        );
        assert_eq!(session.get::<Status>("status"), Ok(Some(Status::Active)));
        assert_eq!(session.get::<Vec<u8>>("flash"), Ok(Some(vec![])));
        assert_eq!(session.get::<u8>("missing"), Ok(None));
    }
}

#[test]
fn references_resolve_across_session_variables() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Id {
        id: i64,
    }
    for kind in ["php", "php_serialize"] {
        let session = Session::decode(handler(kind), &case(kind, "shared_object")).expect("valid");
        assert_eq!(session.get_value("second"), Some(&Value::ObjectRef(1)));
        assert_eq!(session.get::<Id>("second"), Ok(Some(Id { id: 9 })));
        assert_eq!(
            session.get::<Vec<Id>>("list"),
            Ok(Some(vec![Id { id: 9 }, Id { id: 9 }]))
        );

        let session = Session::decode(handler(kind), &case(kind, "reference")).expect("valid");
        assert_eq!(session.get::<i64>("b"), Ok(Some(1)));
    }
}

#[test]
fn setting_a_value_writes_what_php_would() {
    let mut session =
        Session::decode(SerializeHandler::Php, &case("php", "scalars")).expect("valid");
    session
        .set(
            "cart",
            &[Item {
                sku: "A-1".into(),
                qty: 2,
            }],
        )
        .expect("serializable");
    session
        .set("n", &Option::<i32>::None)
        .expect("serializable");
    session.set("i", &7u8).expect("serializable");
    let mut counts = BTreeMap::new();
    counts.insert("7".to_owned(), 1);
    counts.insert("x".to_owned(), 2);
    session.set("counts", &counts).expect("serializable");
    assert_eq!(
        String::from_utf8(session.encode(SerializeHandler::Php).expect("encodable"))
            .expect("ASCII"),
        "n|N;b|b:1;i|i:7;f|d:0.1;s|s:3:\"x|y\";\
         cart|a:1:{i:0;a:2:{s:3:\"sku\";s:3:\"A-1\";s:3:\"qty\";i:2;}}\
         counts|a:2:{i:7;i:1;s:1:\"x\";i:2;}"
    );
}

#[test]
fn replacing_a_shared_object_keeps_references_pointing_at_the_same_values() {
    let mut session =
        Session::decode(SerializeHandler::Php, &case("php", "shared_object")).expect("valid");
    session.set("first", "gone").expect("serializable");
    let written = session.encode(SerializeHandler::Php).expect("encodable");
    assert_eq!(
        String::from_utf8(written.clone()).expect("ASCII"),
        "first|s:4:\"gone\";second|O:8:\"stdClass\":1:{s:2:\"id\";i:9;}list|a:2:{i:0;r:2;i:1;r:2;}"
    );
    let again = Session::decode(SerializeHandler::Php, &written).expect("valid");
    assert_eq!(
        again.get::<Vec<BTreeMap<String, i64>>>("list"),
        Ok(Some(vec![[("id".into(), 9)].into(); 2]))
    );
}

#[test]
fn old_and_foreign_formats_are_refused_with_a_reason() {
    let err = Session::decode(SerializeHandler::Php, b"!gone|kept|i:1;").expect_err("PHP 5 marker");
    assert!(matches!(err.kind, DecodeErrorKind::Unsupported(_)), "{err}");
    let err = php::unserialize(b"S:3:\"\\61bc\";").expect_err("escaped string");
    assert!(err.to_string().contains("`S:`"), "{err}");
    assert!("php_binary".parse::<SerializeHandler>().is_err());
    assert!("igbinary".parse::<SerializeHandler>().is_err());
}

// --- Generated trees -------------------------------------------------------

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(prop::sample::select(b"\0\";:{}|*aZ09".to_vec()), 0..8),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        any::<i64>().prop_map(Key::Int),
        bytes().prop_map(Key::String)
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>().prop_map(Value::Float),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e25,
            5e-324,
            0.1
        ])
        .prop_map(Value::Float),
        bytes().prop_map(Value::String),
        (bytes(), bytes()).prop_map(|(class, data)| Value::Custom { class, data }),
        (bytes(), bytes()).prop_map(|(mut class, case)| {
            class.retain(|&b| b != b':');
            Value::Enum { class, case }
        }),
        // Slot numbers are fixed up by `valid_references`.
        any::<u64>().prop_map(Value::ObjectRef),
        any::<u64>().prop_map(Value::Ref),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 64, 6, |inner| {
        let entries = move || prop::collection::vec((key(), inner.clone()), 0..6);
        prop_oneof![
            entries().prop_map(Value::Array),
            (bytes(), entries())
                .prop_map(|(class, properties)| Value::Object { class, properties }),
        ]
    })
}

/// Points every reference at a slot before it, as PHP requires (or turns it
/// into null where there is none yet). `slots` counts across the values of a
/// session, as the php handler numbers them.
fn valid_references(value: &mut Value, slots: &mut u64) {
    match value {
        Value::Ref(slot) => {
            if *slots == 0 {
                *value = Value::Null;
                *slots += 1;
            } else {
                *slot = *slot % *slots + 1;
            }
        }
        Value::ObjectRef(slot) => {
            if *slots == 0 {
                *value = Value::Null;
            } else {
                *slot = *slot % *slots + 1;
            }
            *slots += 1;
        }
        Value::Array(entries)
        | Value::Object {
            properties: entries,
            ..
        } => {
            *slots += 1;
            for (_, child) in entries {
                valid_references(child, slots);
            }
        }
        _ => *slots += 1,
    }
}

/// Variables with distinct names without `|`, at least `min` of them.
fn session(min: usize) -> impl Strategy<Value = Vec<(Vec<u8>, Value)>> {
    prop::collection::vec((bytes(), value()), min..6).prop_map(|entries| {
        let mut seen = std::collections::HashSet::new();
        let mut slots = 0;
        entries
            .into_iter()
            .filter_map(|(mut name, mut value)| {
                name.retain(|&b| b != b'|');
                if !seen.insert(name.clone()) {
                    return None;
                }
                valid_references(&mut value, &mut slots);
                Some((name, value))
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn generated_values_survive_a_round_trip(mut value in value()) {
        valid_references(&mut value, &mut 0);
        let written = php::serialize(&value).expect("encodable");
        let read = php::unserialize(&written).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&written))))?;
        prop_assert_eq!(&read, &value);
        prop_assert_eq!(php::serialize(&read).expect("encodable"), written);
    }

    #[test]
    fn generated_sessions_survive_both_handlers(entries in session(0)) {
        let mut session = Session::new();
        for (name, value) in entries {
            session.insert(name, value);
        }
        for handler in [SerializeHandler::Php, SerializeHandler::PhpSerialize, SerializeHandler::LaravelPhp] {
            let written = session.encode(handler).expect("encodable");
            let read = Session::decode(handler, &written).map_err(|e| TestCaseError::fail(format!("{handler}: {e}")))?;
            prop_assert_eq!(&read, &session);
            prop_assert_eq!(read.encode(handler).expect("encodable"), written);
        }
    }

    #[test]
    fn removing_an_entry_keeps_the_others_reading_the_same(entries in session(1), pick in any::<prop::sample::Index>()) {
        let mut session = Session::new();
        for (name, mut value) in entries {
            // Slots after a `C:` payload are unknown, so what they resolve to is too.
            without_custom(&mut value);
            session.insert(name, value);
        }
        let names: Vec<Key> = session.iter().map(|(key, _)| key.clone()).collect();
        let removed = pick.get(&names).clone();
        let before: Vec<_> = names.iter().filter(|n| **n != removed).map(|n| resolved(&session, n)).collect();
        session.remove(removed.clone());
        let written = session.encode(SerializeHandler::Php).expect("encodable");
        let reread = Session::decode(SerializeHandler::Php, &written).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after: Vec<_> = names.iter().filter(|n| **n != removed).map(|n| resolved(&reread, n)).collect();
        prop_assert_eq!(before, after);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = php::unserialize(&data);
        for handler in [SerializeHandler::Php, SerializeHandler::PhpSerialize, SerializeHandler::LaravelPhp] {
            if let Ok(session) = Session::decode(handler, &data) {
                let written = session.encode(handler).expect("what decodes, encodes");
                let again = Session::decode(handler, &written);
                prop_assert_eq!(again.as_ref(), Ok(&session));
            }
        }
    }

    #[test]
    fn damaged_encodings_never_panic(entries in session(1), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut session = Session::new();
        for (name, value) in entries {
            session.insert(name, value);
        }
        let written = session.encode(SerializeHandler::Php).expect("encodable");
        let at = cut.index(written.len());
        let mut flipped = written.clone();
        flipped[at] = byte;
        for damaged in [&written[..at], &flipped[..]] {
            if let Ok(read) = Session::decode(SerializeHandler::Php, damaged) {
                let again = read.encode(SerializeHandler::Php).expect("what decodes, encodes");
                let reread = Session::decode(SerializeHandler::Php, &again);
                prop_assert_eq!(reread.as_ref(), Ok(&read));
            }
        }
    }

    #[test]
    fn rust_values_survive_set_encode_decode_get(
        name in ".{0,12}",
        roles in prop::collection::vec(".*", 0..4),
        age in any::<Option<u32>>(),
        counts in prop::collection::btree_map(".{0,6}", any::<i64>(), 0..6),
    ) {
        let user = User { name, roles, age };
        let mut session = Session::new();
        session.set("user", &user).expect("serializable");
        session.set("counts", &counts).expect("serializable");
        for handler in [SerializeHandler::Php, SerializeHandler::PhpSerialize] {
            let read = Session::decode(handler, &session.encode(handler).expect("encodable")).expect("valid");
            prop_assert_eq!(read.get::<User>("user"), Ok(Some(User { ..user_clone(&user) })));
            prop_assert_eq!(read.get::<BTreeMap<String, i64>>("counts"), Ok(Some(counts.clone())));
        }
    }
}

/// Replaces `C:` values by null, which takes one slot as they do.
fn without_custom(value: &mut Value) {
    match value {
        Value::Custom { .. } => *value = Value::Null,
        Value::Array(entries)
        | Value::Object {
            properties: entries,
            ..
        } => {
            entries
                .iter_mut()
                .for_each(|(_, child)| without_custom(child));
        }
        _ => {}
    }
}

fn user_clone(user: &User) -> User {
    User {
        name: user.name.clone(),
        roles: user.roles.clone(),
        age: user.age,
    }
}

/// A variable's value with references followed, as far as that terminates.
fn resolved(session: &Session, name: &Key) -> Result<serde_value::Any, String> {
    session
        .get::<serde_value::Any>(name.clone())
        .map_err(|e| e.to_string())
        .map(|v| v.unwrap_or_default())
}

/// A self-describing copy of a deserialized value, for comparing what two
/// sessions read as, independent of slot numbers.
mod serde_value {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    #[derive(Debug, Default, PartialEq)]
    pub enum Any {
        #[default]
        Unit,
        Bool(bool),
        Int(i64),
        /// Bits, so NaN equals NaN.
        Float(u64),
        Str(Vec<u8>),
        Seq(Vec<Any>),
        Map(Vec<(Any, Any)>),
    }

    impl<'de> Deserialize<'de> for Any {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(AnyVisitor)
        }
    }

    struct AnyVisitor;

    impl<'de> Visitor<'de> for AnyVisitor {
        type Value = Any;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("anything")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Any, E> {
            Ok(Any::Unit)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Any, E> {
            Ok(Any::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Any, E> {
            Ok(Any::Int(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Any, E> {
            Ok(Any::Float(if v.is_nan() {
                f64::NAN.to_bits()
            } else {
                v.to_bits()
            }))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Any, E> {
            Ok(Any::Str(v.as_bytes().to_vec()))
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Any, E> {
            Ok(Any::Str(v.to_vec()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Any::Seq(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(Any::Map(entries))
        }
    }
}
