//! `concurrency=merge` per request: the `session.stickless_concurrency` ini
//! entry, which `session_start(['stickless_concurrency' => 'merge'])` sets
//! (PHP turns each `session_start()` option `X` into the ini setting
//! `session.X` for the request), and what a merge needs from PHP's
//! settings.

use std::ffi::CString;
use std::time::Duration;

use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::zend::IniEntryDef;
use stickless::Concurrency;
use stickless::php::SerializeHandler;

use crate::ini;

/// The per-request setting; empty: the site's `concurrency`.
pub const PER_REQUEST: &str = "session.stickless_concurrency";

/// Registers [`PER_REQUEST`]. Runs once, in MINIT.
pub fn register(module_number: i32) {
    let (Ok(name), Ok(value)) = (CString::new(PER_REQUEST), CString::new("")) else {
        return;
    };
    // The entries must outlive the process, hence the leak.
    let defs = vec![
        IniEntryDef::new(
            Box::leak(name.into_boxed_c_str()),
            Box::leak(value.into_boxed_c_str()),
            IniEntryPermission::All,
        ),
        IniEntryDef::end(),
    ];
    IniEntryDef::register(Box::leak(defs.into_boxed_slice()), module_number);
}

/// What this request asked for, or the site's setting. An unknown value is
/// reported and the site's setting used.
pub fn chosen(site: Concurrency) -> Concurrency {
    let asked = ini::string(PER_REQUEST).unwrap_or_default();
    let asked = asked.trim();
    if asked.is_empty() {
        return site;
    }
    Concurrency::parse(asked).unwrap_or_else(|| {
        crate::warn(&format!(
            "{PER_REQUEST}: `{asked}` is neither `lock` nor `merge`; using concurrency={}",
            match site {
                Concurrency::Lock => "lock",
                Concurrency::Merge => "merge",
            }
        ));
        site
    })
}

unsafe extern "C" {
    fn stickless_ps_active() -> bool;
}

/// The layout the session module writes, if the codec can merge it. None
/// outside a session of the module (a framework calling a
/// `Stickless\SessionHandler` object itself): the data is then the
/// framework's, whatever `session.serialize_handler` says, and merging it
/// as that layout could misread it, so such a request takes the lock.
pub fn serialize_handler() -> Option<SerializeHandler> {
    // SAFETY: reads a field of the session module's globals, which exist
    // for as long as the module is loaded (a hard dependency).
    if !unsafe { stickless_ps_active() } {
        return None;
    }
    let name = ini::string("session.serialize_handler")?;
    name.parse::<SerializeHandler>()
        .ok()
        .filter(|h| matches!(h, SerializeHandler::Php | SerializeHandler::PhpSerialize))
}

/// `session.gc_maxlifetime`, which a merge read renews.
pub fn lifetime() -> Duration {
    Duration::from_secs(
        u64::try_from(ini::long("session.gc_maxlifetime"))
            .unwrap_or(0)
            .max(1),
    )
}
