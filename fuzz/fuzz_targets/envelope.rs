//! Stored values come from Redis, which anyone with Redis access can write:
//! decoding must never panic, with or without a key ring, whatever codec
//! the flags name, and a compressed payload never expands past max_size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stickless::{Envelope, KeyRing, Sealing};

const MAX_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::parse("k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").ok();
    let bounded = Sealing {
        max_size: MAX_SIZE,
        ..Sealing::PLAIN
    };
    let _ = Envelope::decode(data);
    let _ = Envelope::open(data, &bounded, "{t}");
    let keyed = Sealing {
        keys: ring.as_ref(),
        ..bounded
    };
    if let Ok(env) = Envelope::open(data, &keyed, "{t}") {
        assert!(env.payload.len() <= MAX_SIZE || env.payload.len() <= data.len());
        // Whatever decodes must encode and decode back to itself.
        let again = Envelope::decode(&env.encode()).expect("re-encoded envelope decodes");
        assert_eq!(again, env);
    }
});
