//! The native `ps_module` named `stickless`: nine C hooks, each a thin shell
//! that converts arguments and calls [`Handler`] through [`crate::enter`],
//! which catches panics and raises the warnings once the work is done.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
use std::time::Duration;

use ext_php_rs::ffi::{zend_long, zend_string};
use ext_php_rs::types::ZendStr;
use stickless::Config;

use crate::ffi::{FAILURE, ModData, PsModule, SUCCESS, ZendResult};
use crate::handler::{Handler, Warning, reported};
use crate::{enter, ini, warn};

thread_local! {
    /// The native handler's state for this process (php-fpm workers are
    /// single-threaded; a ZTS build gets one per thread).
    static NATIVE: RefCell<Option<Handler>> = const { RefCell::new(None) };
}

/// PHP only calls write/close while `*mod_data` is non-null; the state
/// itself lives in `NATIVE`, so any stable address will do.
static MOD_DATA_MARKER: u8 = 0;

pub static MODULE: PsModule = PsModule {
    s_name: c"stickless".as_ptr(),
    s_open: open,
    s_close: close,
    s_read: read,
    s_write: write,
    s_destroy: destroy,
    s_gc: gc,
    s_create_sid: create_sid,
    s_validate_sid: validate_sid,
    s_update_timestamp: update_timestamp,
};

/// Runs `f` on the native handler as one entry point: a panic becomes a
/// warning and `fallback`, never an unwind across the C boundary, and the
/// warnings are raised after the handler is no longer borrowed.
fn with_handler<T: Copy>(fallback: T, f: impl FnOnce(&mut Handler) -> T) -> T {
    let run = || {
        NATIVE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => match slot.as_mut() {
                Some(handler) => f(handler),
                None => {
                    warn("the session was not opened (session.save_path not set?)");
                    fallback
                }
            },
            Err(_) => fallback,
        })
    };
    enter(fallback, run)
}

fn result(r: Result<(), Warning>) -> ZendResult {
    if reported(r).is_some() {
        SUCCESS
    } else {
        FAILURE
    }
}

/// # Safety
/// `s` must be a valid `zend_string` for the duration of the call.
unsafe fn bytes<'a>(s: *mut zend_string) -> &'a [u8] {
    // SAFETY: the caller passes a live zend_string.
    unsafe { s.cast::<ZendStr>().as_ref() }.map_or(&[], ZendStr::as_bytes)
}

fn ttl(maxlifetime: zend_long) -> Duration {
    Duration::from_secs(u64::try_from(maxlifetime).unwrap_or(0).max(1))
}

unsafe extern "C" fn open(
    mod_data: ModData,
    save_path: *const c_char,
    _name: *const c_char,
) -> ZendResult {
    let run = || {
        let path = if save_path.is_null() {
            String::new()
        } else {
            // SAFETY: PHP passes a NUL-terminated save_path.
            unsafe { CStr::from_ptr(save_path) }
                .to_string_lossy()
                .into_owned()
        };
        let config = match ini::config(&path) {
            Ok(c) => c,
            Err(Warning(w)) => {
                warn(&format!("session.save_path: {w}"));
                return FAILURE;
            }
        };
        crate::strict::apply(config.settings.strict_mode);
        NATIVE.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return FAILURE;
            };
            slot.get_or_insert_with(|| Handler::new(&config))
                .reconfigure(config);
            // SAFETY: PHP passes &PS(mod_data).
            unsafe { *mod_data = (&raw const MOD_DATA_MARKER).cast_mut().cast::<c_void>() };
            SUCCESS
        })
    };
    enter(FAILURE, run)
}

unsafe extern "C" fn close(mod_data: ModData) -> ZendResult {
    // SAFETY: PHP passes &PS(mod_data).
    unsafe { *mod_data = std::ptr::null_mut() };
    with_handler(FAILURE, |h| result(h.close()))
}

unsafe extern "C" fn read(
    mod_data: ModData,
    key: *mut zend_string,
    val: *mut *mut zend_string,
    _maxlifetime: zend_long,
) -> ZendResult {
    // SAFETY: PHP passes a live key.
    let id = unsafe { bytes(key) };
    let data = |h: &mut Handler| {
        let data = reported(h.read(id))?;
        // The allocation may hit memory_limit while `h` is borrowed.
        crate::engine(|| ZendStr::new(&data, false).into_raw())
    };
    with_handler(FAILURE, |h| match data(h) {
        Some(data) => {
            // SAFETY: PHP passes a writable out-pointer and takes ownership.
            unsafe { *val = data.cast() };
            SUCCESS
        }
        None => {
            // PHP aborts the session after a failed read, but not if a
            // fatal error raised by an error handler on our warning ends
            // session_start() first: the session then stays active and PHP
            // would write its empty $_SESSION over the stored one at request
            // end. Without mod_data it writes nothing (and calls no close;
            // we hold no lock after a failed read, and post_deactivate
            // releases anything anyway).
            // SAFETY: PHP passes &PS(mod_data).
            unsafe { *mod_data = std::ptr::null_mut() };
            FAILURE
        }
    })
}

/// A step that stores `data` for `id` with a lifetime (write, touch).
type Store = fn(&mut Handler, &[u8], &[u8], Duration) -> Result<(), Warning>;

/// The shared body of the write and update_timestamp hooks.
///
/// # Safety
/// `key` and `val` must be live zend_strings for the duration of the call.
unsafe fn store(
    key: *mut zend_string,
    val: *mut zend_string,
    maxlifetime: zend_long,
    step: Store,
) -> ZendResult {
    // SAFETY: see the function contract.
    let (id, data) = unsafe { (bytes(key), bytes(val)) };
    with_handler(FAILURE, |h| result(step(h, id, data, ttl(maxlifetime))))
}

unsafe extern "C" fn write(
    _mod_data: ModData,
    key: *mut zend_string,
    val: *mut zend_string,
    maxlifetime: zend_long,
) -> ZendResult {
    // SAFETY: PHP passes live strings.
    unsafe { store(key, val, maxlifetime, Handler::write) }
}

unsafe extern "C" fn update_timestamp(
    _mod_data: ModData,
    key: *mut zend_string,
    val: *mut zend_string,
    maxlifetime: zend_long,
) -> ZendResult {
    // SAFETY: PHP passes live strings.
    unsafe { store(key, val, maxlifetime, Handler::touch) }
}

unsafe extern "C" fn destroy(_mod_data: ModData, key: *mut zend_string) -> ZendResult {
    // SAFETY: PHP passes a live key.
    let id = unsafe { bytes(key) };
    with_handler(FAILURE, |h| result(h.destroy(id)))
}

unsafe extern "C" fn gc(
    _mod_data: ModData,
    _maxlifetime: zend_long,
    nrdels: *mut zend_long,
) -> zend_long {
    enter(0, || {
        // Redis expires sessions by itself (PX on every write and touch).
        if !nrdels.is_null() {
            // SAFETY: PHP passes a writable counter.
            unsafe { *nrdels = 0 };
        }
        0
    })
}

unsafe extern "C" fn create_sid(_mod_data: ModData) -> *mut zend_string {
    enter(std::ptr::null_mut(), || {
        let Some(id) = crate::new_session_id() else {
            return std::ptr::null_mut();
        };
        NATIVE.with(|cell| {
            if let Ok(mut slot) = cell.try_borrow_mut()
                && let Some(h) = slot.as_mut()
            {
                h.created(id.expose().as_bytes());
            }
        });
        crate::engine(|| ZendStr::new(id.expose(), false).into_raw().cast())
            .unwrap_or(std::ptr::null_mut())
    })
}

unsafe extern "C" fn validate_sid(_mod_data: ModData, key: *mut zend_string) -> ZendResult {
    // SAFETY: PHP passes a live key.
    let id = unsafe { bytes(key) };
    with_handler(FAILURE, |h| if h.validate(id) { SUCCESS } else { FAILURE })
}

/// After every request (post-RSHUTDOWN, so after the session module's own
/// flush): release anything still held.
pub fn finish_request() {
    NATIVE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut()
            && let Some(h) = slot.as_mut()
        {
            h.finish_request();
        }
    });
}

/// Module shutdown: the native handler lets go of its store.
pub fn shutdown() {
    NATIVE.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut() {
            *slot = None;
        }
    });
}

/// The native handler's configuration, for phpinfo().
pub fn current_config() -> Option<Config> {
    NATIVE.with(|cell| cell.try_borrow().ok()?.as_ref().map(Handler::config))
}
