//! Secrets never reach an error message. PHP's own session warnings quote
//! `session.save_path` verbatim ("Failed to read session data: stickless
//! (path: redis://:secret@host)"), so a password written inline would end up
//! in every error log. We wrap the engine's error callback (as debuggers and
//! profilers do) and replace each save path that holds a secret with its
//! redacted form before the message goes anywhere.

use std::cell::RefCell;
use std::sync::OnceLock;

use ext_php_rs::boxed::ZBox;
use ext_php_rs::ffi::zend_string;
use ext_php_rs::types::ZendStr;

use crate::ffi::{self, ErrorCb};

/// Distinct save paths remembered at most; a worker sees one or two.
const MAX_MASKS: usize = 16;

thread_local! {
    /// (as written, as shown) pairs.
    static MASKS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

static ORIGINAL: OnceLock<ErrorCb> = OnceLock::new();

/// Remembers that `raw` must be shown as `shown` in error messages.
pub fn mask(raw: &str, shown: String) {
    if raw.is_empty() || raw == shown {
        return;
    }
    MASKS.with(|m| {
        let Ok(mut masks) = m.try_borrow_mut() else {
            return;
        };
        if masks.iter().any(|(r, _)| r == raw) {
            return;
        }
        if masks.len() >= MAX_MASKS {
            masks.remove(0);
        }
        masks.push((raw.to_owned(), shown));
    });
}

/// Wraps `zend_error_cb`. MINIT only.
pub fn install() {
    // SAFETY: MINIT is single-threaded; the engine reads this pointer for
    // every error from now on.
    unsafe {
        let Some(original) = ffi::zend_error_cb else {
            return;
        };
        let original = *ORIGINAL.get_or_init(|| original);
        if original as *const () != on_error as *const () {
            ffi::zend_error_cb = Some(on_error);
        }
    }
}

fn masked(message: &[u8]) -> Option<Vec<u8>> {
    MASKS.with(|m| {
        let masks = m.try_borrow().ok()?;
        let text = std::str::from_utf8(message).ok()?;
        if !masks.iter().any(|(raw, _)| text.contains(raw.as_str())) {
            return None;
        }
        let mut out = text.to_owned();
        for (raw, shown) in masks.iter() {
            out = out.replace(raw.as_str(), shown);
        }
        Some(out.into_bytes())
    })
}

unsafe extern "C" fn on_error(
    kind: i32,
    file: *mut zend_string,
    line: u32,
    message: *mut zend_string,
) {
    let Some(original) = ORIGINAL.get() else {
        return;
    };
    // SAFETY: the engine passes a live message (or null).
    let bytes = unsafe { message.cast::<ZendStr>().as_ref() }.map(ZendStr::as_bytes);
    let replacement = std::panic::catch_unwind(|| bytes.and_then(masked))
        .ok()
        .flatten();
    match replacement {
        Some(text) => {
            let text: ZBox<ZendStr> = ZendStr::new(text, false);
            // SAFETY: forwarding to the engine's own callback; it takes its
            // own reference if it keeps the message, and ours is released
            // when `text` drops after the call.
            unsafe { original(kind, file, line, text.as_ptr().cast_mut().cast()) };
        }
        // SAFETY: forwarding the engine's own arguments.
        None => unsafe { original(kind, file, line, message) },
    }
}
