//! save_path and option values come from ini files, pool configs and
//! constructor arguments: parsing, showing and redacting must never panic,
//! on any topology's URL (multi-host cluster and sentinel lists included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stickless::Config;
use stickless::config::redact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let shown = redact(text);
    let _ = redact(&shown);
    if let Ok(config) = Config::parse(text) {
        let _ = format!("{} {config:?}", config.server);
        let _ = Config::parse(&shown);
        // An inline URL password never survives redaction.
        if let Some(pw) = config.server.password.as_ref().map(|p| p.expose())
            && pw.len() >= 8
            && !pw.contains("***")
            && text.matches(pw).count() == 1
        {
            assert!(!shown.contains(pw), "password shown: {shown}");
        }
    }
});
