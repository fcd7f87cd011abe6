//! Session data comes from Redis, where PHP, other services and anyone with
//! Redis access write it: decoding must never panic, whatever decodes must
//! encode back to the same session, and reading it into Rust types (following
//! references, cycles included) or editing it must not panic either.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use stickless::php::{self, SerializeHandler, Session};

/// Any shape at all, so conversion walks the whole tree.
#[derive(serde::Deserialize)]
#[serde(untagged)]
#[allow(dead_code)]
enum Any {
    Null(()),
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(serde_bytes::ByteBuf),
    List(Vec<Any>),
    Map(BTreeMap<String, Any>),
}

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = php::unserialize(data) {
        let written = php::serialize(&value).expect("a decoded value encodes");
        assert_eq!(php::unserialize(&written).as_ref(), Ok(&value));
        let _ = php::from_value::<Any>(&value);
    }
    for handler in [SerializeHandler::Php, SerializeHandler::PhpSerialize] {
        let Ok(mut session) = Session::decode(handler, data) else {
            continue;
        };
        let written = session.encode(handler).expect("a decoded session encodes");
        assert_eq!(Session::decode(handler, &written).as_ref(), Ok(&session));
        let names: Vec<_> = session.iter().map(|(name, _)| name.clone()).collect();
        for name in &names {
            let _ = session.get::<Any>(name);
        }
        if let Some(first) = names.first() {
            session.set(first, "replaced").expect("a string serializes");
            let _ = session.encode(handler);
        }
        if let Some(last) = names.last() {
            session.remove(last);
            let _ = session.encode(handler);
        }
    }
});
