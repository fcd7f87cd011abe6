//! save_path and option values come from ini files, pool configs and
//! constructor arguments: parsing, showing and redacting must never panic,
//! and a redacted path must still parse wherever the original did.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stickless::Config;
use stickless::config::redact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact(text);
    if let Ok(config) = Config::parse(text) {
        let _ = format!("{} {config:?}", config.server);
        assert!(url::Url::parse(&shown).is_ok(), "redacted form does not parse: {shown}");
    }
});
