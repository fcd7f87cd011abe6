//! Session IDs come from cookies: validation must never panic, and whatever
//! it accepts must be within PHP's charset and length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stickless::{SessionId, SessionKeys};

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = SessionId::from_bytes(data) {
        let s = id.expose();
        assert!((1..=256).contains(&s.len()));
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'-'));
        let keys = SessionKeys::derive("p:", &id);
        // A one- or two-character ID can occur in the hex tag by chance.
        assert!(s.len() < 8 || !keys.data().contains(s));
    }
});
