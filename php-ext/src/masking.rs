//! Secrets never reach an error message. PHP's own session warnings quote
//! `session.save_path` verbatim ("Failed to read session data: stickless
//! (path: redis://:secret@host)"), so a password written inline would end up
//! in every error log. We wrap the engine's error callback (as debuggers and
//! profilers do) and replace each save path that holds a secret with its
//! redacted form before the message goes anywhere.

use std::cell::RefCell;
use std::panic::catch_unwind;
use std::sync::OnceLock;

use ext_php_rs::ffi::{ext_php_rs_zend_string_init, ext_php_rs_zend_string_release, zend_string};
use ext_php_rs::types::ZendStr;
use ext_php_rs::zend::{bailout, try_catch};

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

/// What the engine's callback is given in place of a message.
enum Shown {
    /// The message as it came: nothing to mask.
    AsIs,
    /// A masked copy, one reference of which is ours.
    Masked(*mut zend_string),
    /// Allocating the copy bailed out (`memory_limit`).
    BailedOut,
}

/// The masked copy of `message`, allocated by the request's memory manager.
/// Every Rust value made here is dropped when it returns.
///
/// # Safety
/// `message` must be a live zend_string or null.
unsafe fn shown(message: *mut zend_string) -> Shown {
    // SAFETY: see the function contract.
    let bytes = unsafe { message.cast::<ZendStr>().as_ref() }.map(ZendStr::as_bytes);
    let Ok(Some(text)) = catch_unwind(|| bytes.and_then(masked)) else {
        return Shown::AsIs;
    };
    let (ptr, len) = (text.as_ptr(), text.len());
    let copy = try_catch(move || {
        // SAFETY: `ptr` and `len` describe `text`, alive until this function
        // returns; the closure holds no value with a destructor.
        unsafe { ext_php_rs_zend_string_init(ptr.cast(), len, false) }
    });
    match copy {
        Ok(copy) if !copy.is_null() => Shown::Masked(copy),
        // emalloc never returns null and the call cannot panic: the only
        // way out is a bailout. Never fall back to the unmasked message.
        _ => Shown::BailedOut,
    }
}

/// The engine's error callback, wrapped. It must not hold a Rust value with
/// a destructor while the original runs: php_error_cb bails out after every
/// fatal error (an uncaught exception, `memory_limit`, ...), past this frame.
unsafe extern "C" fn on_error(
    kind: i32,
    file: *mut zend_string,
    line: u32,
    message: *mut zend_string,
) {
    let Some(&original) = ORIGINAL.get() else {
        return;
    };
    // SAFETY: the engine passes a live message (or null).
    match unsafe { shown(message) } {
        // SAFETY: forwarding the engine's own arguments.
        Shown::AsIs => unsafe { original(kind, file, line, message) },
        Shown::Masked(copy) => {
            // SAFETY: forwarding to the engine's own callback, which takes
            // its own reference if it keeps the message. If it bails out,
            // our reference is never released here: the request's memory
            // manager frees the copy at request end.
            unsafe { original(kind, file, line, copy) };
            // SAFETY: releasing the one reference `shown` gave us.
            unsafe { ext_php_rs_zend_string_release(copy) };
        }
        // SAFETY: this frame holds only Copy values; the engine already
        // reported why it ran out of memory.
        Shown::BailedOut => unsafe { bailout() },
    }
}
