//! Strict mode by default: `session.use_strict_mode` makes PHP ask the
//! handler whether a session ID exists before adopting it, which defeats
//! session fixation. Distributions ship it off; stickless turns it on for
//! requests it serves unless `stickless.strict_mode=0`.

use ext_php_rs::boxed::ZBox;
use ext_php_rs::ffi::zend_string;
use ext_php_rs::types::ZendStr;

use crate::{ffi, ini};

/// `ZEND_INI_USER` and `ZEND_INI_STAGE_RUNTIME`: the change is undone at the
/// end of the request, like an `ini_set()`.
const INI_USER: i32 = 1;
const STAGE_RUNTIME: i32 = 1 << 4;

/// Turns strict mode on for this request when the native handler is the
/// configured one and its settings (ini, then save_path query) want it.
pub fn enforce_for_native_handler() {
    if ini::string("session.save_handler").as_deref() != Some("stickless") {
        return;
    }
    let save_path = ini::string("session.save_path").unwrap_or_default();
    // A bad configuration is reported when the session opens.
    if let Ok(config) = ini::config(&save_path) {
        enforce(config.settings.strict_mode);
    }
}

/// Turns `session.use_strict_mode` on for this request if `strict` and it
/// is off. Does nothing once a session is active.
pub fn enforce(strict: bool) {
    if strict && ini::long("session.use_strict_mode") == 0 {
        turn_on();
    }
}

/// The session module warns when the setting cannot change (output already
/// sent), and a warning runs the error handler: the change goes through
/// [`crate::engine`], and the name is released only after it.
fn turn_on() {
    const NAME: &str = "session.use_strict_mode";
    let Some(name) = crate::engine(|| ZendStr::new(NAME, false).into_raw()) else {
        return;
    };
    crate::engine(|| {
        // SAFETY: a live zend_string name and a NUL-free value with its
        // length; the closure holds only pointers.
        unsafe {
            ffi::zend_alter_ini_entry_chars(
                name.cast::<zend_string>(),
                c"1".as_ptr(),
                1,
                INI_USER,
                STAGE_RUNTIME,
            )
        }
    });
    // SAFETY: the one reference made above; a bailout out of the change was
    // caught, so this runs either way.
    drop(unsafe { ZBox::from_raw(name) });
}
