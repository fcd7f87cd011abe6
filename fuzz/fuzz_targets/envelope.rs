//! Stored values come from Redis, which anyone with Redis access can write:
//! decoding must never panic, with or without a key ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stickless::{Envelope, KeyRing};

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::parse("k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").ok();
    let _ = Envelope::decode(data);
    let _ = Envelope::open(data, None, "{t}");
    if let Ok(env) = Envelope::open(data, ring.as_ref(), "{t}") {
        // Whatever decodes must encode and decode back to itself.
        let again = Envelope::decode(&env.encode()).expect("re-encoded envelope decodes");
        assert_eq!(again, env);
    }
});
