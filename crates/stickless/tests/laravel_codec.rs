//! Laravel's two session payloads against PHP itself (a corpus written by
//! PHP 8.2's serialize(), json_encode() and json_decode(), see
//! `fixtures/laravel/generate.php`) and against generated trees.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use stickless::php::{
    self, DecodeErrorKind, EncodeError, Key, MAX_JSON_DEPTH, SerializeHandler, Session, Value,
};

const PAYLOADS: &str = include_str!("fixtures/laravel/payloads.txt");
const REENCODE: &str = include_str!("fixtures/laravel/reencode.txt");
const JSON_FLOATS: &str = include_str!("fixtures/laravel/json_floats.txt");

/// What Illuminate\Auth\SessionGuard names the `web` guard's user entry.
const LOGIN_WEB: &str = "login_web_59ba36addc2b2f9401580f014c7f58ea4e30989d";

/// `<a> <b> <c>` with `c` possibly empty.
fn fields(line: &str) -> (&str, &str, &str) {
    let mut fields = line.splitn(3, ' ');
    match (fields.next(), fields.next(), fields.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => panic!("fixture line without three fields: {line}"),
    }
}

fn payloads() -> Vec<(SerializeHandler, &'static str, Vec<u8>)> {
    PAYLOADS
        .lines()
        .map(|line| {
            let (kind, name, hex) = fields(line);
            let handler = kind.parse().expect("laravel_php or laravel_json");
            (handler, name, hex::decode(hex).expect("hex"))
        })
        .collect()
}

fn payload(handler: SerializeHandler, name: &str) -> Vec<u8> {
    payloads()
        .into_iter()
        .find(|(h, n, _)| *h == handler && *n == name)
        .unwrap_or_else(|| panic!("no {handler} payload {name}; regenerate the fixtures"))
        .2
}

fn decode(handler: SerializeHandler, name: &str) -> Session {
    Session::decode(handler, &payload(handler, name))
        .unwrap_or_else(|e| panic!("{handler} {name}: {e}"))
}

const LARAVEL: [SerializeHandler; 2] =
    [SerializeHandler::LaravelPhp, SerializeHandler::LaravelJson];

#[test]
fn everything_laravel_stores_round_trips_byte_for_byte() {
    let cases = payloads();
    assert!(cases.len() >= 15, "fixtures are complete");
    for (handler, name, bytes) in cases {
        let session = Session::decode(handler, &bytes).unwrap_or_else(|e| {
            panic!("{handler} {name}: {e}\n{}", String::from_utf8_lossy(&bytes))
        });
        let written = session.encode(handler).expect("encodable");
        assert_eq!(
            String::from_utf8_lossy(&written),
            String::from_utf8_lossy(&bytes),
            "{handler} {name}"
        );
        assert_eq!(written, bytes, "{handler} {name}");
        if handler == SerializeHandler::LaravelPhp {
            let same = Session::decode(SerializeHandler::PhpSerialize, &bytes).expect("valid");
            assert_eq!(
                same, session,
                "{name}: laravel_php is php_serialize's layout"
            );
        }
    }
}

/// The value `json_decode()` gives for what `json_encode()` writes of
/// `value`: floats written without a fraction or exponent read as ints.
fn as_json_reads_it(value: &Value) -> Value {
    match value {
        Value::Float(f) => {
            let text = php::json_encode(value).expect("finite");
            match std::str::from_utf8(&text)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
            {
                Some(i) => Value::Int(i),
                None => Value::Float(*f),
            }
        }
        Value::Array(entries) => Value::Array(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), as_json_reads_it(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[test]
fn both_serializations_hold_the_same_attributes() {
    let mut compared = 0;
    for (handler, name, _) in payloads() {
        if handler != SerializeHandler::LaravelJson {
            continue;
        }
        let json = decode(SerializeHandler::LaravelJson, name);
        let php = decode(SerializeHandler::LaravelPhp, name);
        let php: Vec<_> = php
            .iter()
            .map(|(k, v)| (k.clone(), as_json_reads_it(v)))
            .collect();
        let json: Vec<_> = json.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(json, php, "{name}");
        // And either one converts into the other byte for byte.
        let mut from_php = Session::new();
        for (key, value) in decode(SerializeHandler::LaravelPhp, name).iter() {
            from_php.insert(key, value.clone());
        }
        assert_eq!(
            from_php
                .encode(SerializeHandler::LaravelJson)
                .expect("plain data"),
            payload(SerializeHandler::LaravelJson, name),
            "{name}"
        );
        compared += 1;
    }
    assert!(
        compared >= 7,
        "only {compared} payloads in both serializations"
    );
}

#[derive(Debug, Deserialize, Serialize, PartialEq, Default)]
struct Flash {
    old: Vec<String>,
    new: Vec<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Previous {
    url: String,
    route: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    sku: String,
    qty: u32,
    price: f64,
    note: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Bag {
    format: String,
    messages: BTreeMap<String, Vec<String>>,
}

#[test]
fn laravel_attributes_deserialize_into_rust_types() {
    for handler in LARAVEL {
        let fresh = decode(handler, "fresh");
        let token: String = fresh.get("_token").expect("a string").expect("set");
        assert_eq!(token.len(), 40);
        assert_eq!(fresh.get::<Flash>("_flash"), Ok(Some(Flash::default())));
        assert_eq!(
            fresh.get::<Previous>("_previous"),
            Ok(Some(Previous {
                url: "http://shop.test/login".into(),
                route: None
            }))
        );

        let user = decode(handler, "logged_in");
        assert_eq!(user.get::<i64>(LOGIN_WEB), Ok(Some(42)));
        assert_eq!(
            user.get::<BTreeMap<String, String>>("url")
                .ok()
                .flatten()
                .and_then(|url| url.get("intended").cloned()),
            Some("https://shop.test/account/orders?page=2&sort=-date".into())
        );
        assert_eq!(
            user.get::<Previous>("_previous")
                .ok()
                .flatten()
                .and_then(|p| p.route),
            Some("account.show".into())
        );

        let cart: Vec<Item> = decode(handler, "cart")
            .get("cart")
            .expect("items")
            .expect("set");
        assert_eq!(cart[0].note.as_deref(), Some("Grüße 😀 日本"));
        assert_eq!((cart[1].sku.as_str(), cart[1].price), ("CUP/2", 3.0));

        let flashed = decode(handler, "flashed");
        let errors: BTreeMap<String, Bag> = flashed.get("errors").expect("bags").expect("set");
        assert_eq!(errors["default"].format, ":message");
        assert_eq!(
            errors["default"].messages["email"],
            ["The email field must be a valid email address."]
        );
        let flash: Flash = flashed.get("_flash").expect("flash").expect("set");
        assert_eq!(flash.new, ["status", "_old_input", "errors"]);
    }
    // Objects exist only in the php serialization, and read as maps.
    #[derive(Debug, Deserialize, PartialEq)]
    struct Money {
        cents: i64,
        currency: String,
    }
    let objects = decode(SerializeHandler::LaravelPhp, "objects");
    let total = Money {
        cents: 1999,
        currency: "EUR".into(),
    };
    assert_eq!(objects.get::<Money>("total"), Ok(Some(total)));
    assert_eq!(objects.get_value("same"), Some(&Value::ObjectRef(7)));
    assert_eq!(
        objects.encode(SerializeHandler::LaravelJson),
        Err(EncodeError::NotJson { kind: "object" })
    );
}

#[test]
fn a_flash_set_from_rust_is_what_laravel_would_have_stored() {
    for handler in LARAVEL {
        let mut session = decode(handler, "fresh");
        session.set("status", "Saved").expect("serializable");
        session
            .set(
                "_flash",
                &Flash {
                    old: vec!["status".into()],
                    new: vec![],
                },
            )
            .expect("serializable");
        assert_eq!(
            String::from_utf8_lossy(&session.encode(handler).expect("encodable")),
            String::from_utf8_lossy(&payload(handler, "aged_flash")),
            "{handler}"
        );
    }
}

/// Where this codec reads a JSON text otherwise than PHP does, each with
/// its reason (see `php::json_decode`). Listed cases must still differ.
const JSON_DIFFERENCES: &[(&str, &str)] = &[
    (
        "negative_zero_float",
        "-0.0 reads as the integer 0: serde_json gives -0 and -0.0 alike, and json_encode writes -0",
    ),
    (
        "depth_101",
        "deeper than MAX_JSON_DEPTH (PHP reads 511 levels)",
    ),
    (
        "depth_511",
        "deeper than MAX_JSON_DEPTH (PHP reads 511 levels)",
    ),
];
// Not a difference in outcome: `[1e400]` is refused here on reading, and
// by PHP on writing back (json_decode reads INF, json_encode refuses it).

#[test]
fn json_reads_and_writes_back_as_php_does() {
    let mut checked = 0;
    for line in REENCODE.lines() {
        let (name, hex, outcome) = fields(line);
        let text = hex::decode(hex).expect("hex");
        let shown = String::from_utf8_lossy(&text);
        let ours = php::json_decode(&text).map(|value| php::json_encode(&value));
        let differs = JSON_DIFFERENCES.iter().any(|(n, _)| *n == name);
        let agrees = match outcome {
            "undecodable" => ours.is_err(),
            "unencodable" => !matches!(ours, Ok(Ok(_))),
            expected => {
                let expected = hex::decode(expected).expect("hex");
                match &ours {
                    Ok(Ok(written)) => {
                        if !differs {
                            assert_eq!(
                                String::from_utf8_lossy(written),
                                String::from_utf8_lossy(&expected),
                                "{name}: {shown}"
                            );
                        }
                        *written == expected
                    }
                    _ => false,
                }
            }
        };
        assert_eq!(
            agrees, !differs,
            "{name}: {shown}: ours {ours:?}, PHP {outcome}"
        );
        checked += 1;
    }
    assert!(checked >= 50);
}

#[test]
fn deep_json_is_refused_with_the_limit() {
    let text = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH + 1),
        "]".repeat(MAX_JSON_DEPTH + 1)
    );
    let err = php::json_decode(text.as_bytes()).expect_err("too deep");
    assert_eq!(
        err.kind,
        DecodeErrorKind::TooDeep {
            limit: MAX_JSON_DEPTH
        }
    );
}

#[test]
fn floats_read_and_write_exactly_as_json_encode() {
    let mut checked = 0;
    for line in JSON_FLOATS.lines() {
        let (bits, text) = line.split_once(' ').expect("bits and text");
        let float = f64::from_bits(u64::from_str_radix(bits, 16).expect("hex bits"));
        let written = php::json_encode(&Value::Float(float)).expect("finite");
        assert_eq!(String::from_utf8_lossy(&written), text, "{float:e}");
        let read = php::json_decode(text.as_bytes()).expect("a number");
        let integral = !text.contains(['.', 'e']);
        match read {
            Value::Int(i) if integral => assert_eq!(i as f64, float, "{text}"),
            Value::Float(f) if !integral => assert_eq!(f.to_bits(), float.to_bits(), "{text}"),
            other => panic!("{text}: read as {other:?}"),
        }
        checked += 1;
    }
    assert!(checked > 5000);
}

// --- Generated trees -------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(
            prop::sample::select(vec![
                '"', '\\', '/', '\n', '\u{1}', '\u{7f}', 'é', '😀', '\u{2028}', 'a', '0'
            ]),
            0..8
        )
        .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// Keys as PHP keeps them: integers, or strings PHP does not turn into one.
fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        any::<i64>().prop_map(Key::Int),
        (0i64..4).prop_map(Key::Int),
        text().prop_map(|s| match s.parse::<i64>() {
            Ok(i) if i.to_string() == s => Key::Int(i),
            _ => Key::from(s),
        }),
    ]
}

/// What `json_decode()` can give: scalars (finite floats), UTF-8 strings,
/// arrays with distinct keys.
fn plain() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::Float),
        prop::sample::select(vec![0.1, 1.0, -0.0, 1e15, 1e17, 1e25, 5e-324, -1.25e-7])
            .prop_map(Value::Float),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|values| {
                Value::Array(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Key::Int(i as i64), v))
                        .collect(),
                )
            }),
            prop::collection::vec((key(), inner), 0..6).prop_map(|entries| {
                let mut seen = std::collections::HashSet::new();
                Value::Array(
                    entries
                        .into_iter()
                        .filter(|(k, _)| seen.insert(k.clone()))
                        .collect(),
                )
            }),
        ]
    })
}

/// `written` is `read` encoded; reading it back gives `read` again, except
/// that with JSON an integral float comes back an integer (as in PHP), so
/// there the bytes settle instead: written once more, they are the same.
fn settles(handler: SerializeHandler, read: &Session, written: &[u8]) -> Result<(), TestCaseError> {
    let reread = Session::decode(handler, written)
        .map_err(|e| TestCaseError::fail(format!("{handler}: {e}")))?;
    if handler == SerializeHandler::LaravelJson {
        prop_assert_eq!(reread.encode(handler).expect("encodable"), written);
    } else {
        prop_assert_eq!(&reread, read);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn plain_data_survives_laravel_json(value in plain(), name in text()) {
        let mut session = Session::new();
        session.insert(name.as_str(), value.clone());
        let written = session.encode(SerializeHandler::LaravelJson).expect("plain data encodes");
        prop_assert!(written.is_ascii());
        let read = Session::decode(SerializeHandler::LaravelJson, &written)
            .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&written))))?;
        let key = Key::from(name.as_str());
        let key = match name.parse::<i64>() {
            Ok(i) if i.to_string() == name => Key::Int(i),
            _ => key,
        };
        let expected = as_json_reads_it(&value);
        prop_assert_eq!(read.get_value(key), Some(&expected));
        // Written again, it is what PHP writes back after reading it: the
        // same bytes, unless a -0.0 became the integer 0 as in PHP.
        let mut as_php_reads_it = Session::new();
        as_php_reads_it.insert(name.as_str(), expected);
        let again = read.encode(SerializeHandler::LaravelJson).expect("encodable");
        prop_assert_eq!(&again, &as_php_reads_it.encode(SerializeHandler::LaravelJson).expect("encodable"));
        if !format!("{value:?}").contains("-0.0") {
            prop_assert_eq!(&again, &written);
        }
        // Any JSON parser reads PHP's escaping back to the same text.
        let standard: serde_json::Value = serde_json::from_slice(&written).expect("valid JSON");
        prop_assert!(standard.is_object() || standard.is_array());
        // The php serialization keeps it as it is: switched over, it writes
        // the same JSON.
        let php = session.encode(SerializeHandler::LaravelPhp).expect("encodable");
        let from_php = Session::decode(SerializeHandler::LaravelPhp, &php).expect("valid");
        prop_assert_eq!(from_php.encode(SerializeHandler::LaravelJson).expect("encodable"), written);
    }

    #[test]
    fn strings_escape_as_any_json_reader_reads_them_back(s in text()) {
        let written = php::json_encode(&Value::from(s.as_str())).expect("UTF-8");
        prop_assert!(written.is_ascii());
        let slashes_escaped = written
            .iter()
            .enumerate()
            .all(|(i, &b)| b != b'/' || (i > 0 && written[i - 1] == b'\\'));
        prop_assert!(slashes_escaped, "{}", String::from_utf8_lossy(&written));
        let standard: String = serde_json::from_slice(&written).expect("a JSON string");
        prop_assert_eq!(&standard, &s);
        prop_assert_eq!(php::json_decode(&written), Ok(Value::from(s)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        for handler in LARAVEL {
            if let Ok(session) = Session::decode(handler, &data) {
                let written = session.encode(handler).expect("what decodes, encodes");
                settles(handler, &session, &written)?;
            }
        }
    }

    #[test]
    fn damaged_json_never_panics(value in plain(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut session = Session::new();
        session.insert("v", value);
        let written = session.encode(SerializeHandler::LaravelJson).expect("encodable");
        let at = cut.index(written.len());
        let mut flipped = written.clone();
        flipped[at] = byte;
        for damaged in [&written[..at], &flipped[..]] {
            if let Ok(read) = Session::decode(SerializeHandler::LaravelJson, damaged) {
                let again = read.encode(SerializeHandler::LaravelJson).expect("what decodes, encodes");
                settles(SerializeHandler::LaravelJson, &read, &again)?;
            }
        }
    }

    #[test]
    fn rust_values_survive_both_serializations(
        token in "[A-Za-z0-9]{40}",
        old in prop::collection::vec(".{0,8}", 0..3),
        new in prop::collection::vec(".{0,8}", 0..3),
        counts in prop::collection::btree_map(".{0,6}", any::<i64>(), 0..6),
        price in any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ) {
        let flash = Flash { old, new };
        let mut session = Session::new();
        session.set("_token", &token).expect("serializable");
        session.set("_flash", &flash).expect("serializable");
        session.set("counts", &counts).expect("serializable");
        session.set("price", &price).expect("serializable");
        for handler in LARAVEL {
            let read = Session::decode(handler, &session.encode(handler).expect("encodable")).expect("valid");
            prop_assert_eq!(read.get::<String>("_token"), Ok(Some(token.clone())));
            prop_assert_eq!(read.get::<Flash>("_flash"), Ok(Some(Flash { old: flash.old.clone(), new: flash.new.clone() })));
            prop_assert_eq!(read.get::<BTreeMap<String, i64>>("counts"), Ok(Some(counts.clone())));
            let read_price = read.get::<f64>("price").expect("a number").expect("set");
            prop_assert!(read_price == price, "{handler}: {read_price:e} for {price:e}");
        }
    }
}

#[test]
fn what_json_cannot_hold_is_refused_on_encode() {
    let mut session = Session::new();
    session.set("nan", &f64::NAN).expect("serializable");
    assert_eq!(
        session.encode(SerializeHandler::LaravelJson),
        Err(EncodeError::NonFiniteFloat)
    );
    let mut session = Session::new();
    session
        .set("bytes", serde_bytes::Bytes::new(b"\xff\xfe"))
        .expect("serializable");
    assert_eq!(
        session.encode(SerializeHandler::LaravelJson),
        Err(EncodeError::NotUtf8 {
            what: "a string",
            valid_up_to: 0
        })
    );
    assert!(session.encode(SerializeHandler::LaravelPhp).is_ok());
}
