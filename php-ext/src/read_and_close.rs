//! `session_start(['read_and_close' => true])` in one round trip.
//!
//! PHP does not tell a save handler that the session will be closed right
//! after `read`, so a handler has to lock (and then unlock) like any other
//! start: two round trips. We wrap the engine's `session_start` function
//! (the technique profilers use) to note the option for the duration of the
//! call; `read` then loads the session with a plain GET, takes no lock, and
//! `close` has nothing to release.

use std::cell::Cell;
use std::sync::OnceLock;

use ext_php_rs::ffi::{
    compiler_globals, zend_execute_data, zend_function, zend_hash_str_find, zif_handler, zval,
};
use ext_php_rs::types::Zval;
use ext_php_rs::zend::ExecuteData;

thread_local! {
    static REQUESTED: Cell<bool> = const { Cell::new(false) };
}

/// The engine's own `session_start`.
static ORIGINAL: OnceLock<unsafe extern "C" fn(*mut zend_execute_data, *mut zval)> =
    OnceLock::new();

/// Whether the `session_start()` now running asked for `read_and_close`.
pub fn requested() -> bool {
    REQUESTED.with(Cell::get)
}

/// Forgets the option at the end of a request: a `session_start()` that
/// bailed out (a fatal error inside it) never got to clear it, and a stale
/// flag would make the next request read without locking.
pub fn reset() {
    REQUESTED.with(|r| r.set(false));
}

/// Wraps `session_start`. MINIT only, after the session extension started.
pub fn install() -> Result<(), String> {
    const NAME: &str = "session_start";
    // SAFETY: MINIT is single-threaded; the global function table holds
    // zend_function pointers, and session_start is an internal function.
    unsafe {
        let table = compiler_globals.function_table;
        if table.is_null() {
            return Err("no function table".into());
        }
        let zv = zend_hash_str_find(table, NAME.as_ptr().cast(), NAME.len());
        let func = zv
            .as_ref()
            .map(|zv| zv.value.ptr.cast::<zend_function>())
            .filter(|f| !f.is_null())
            .ok_or("session_start() not found")?;
        let internal = &mut (*func).internal_function;
        let Some(original) = internal.handler else {
            return Err("session_start() has no handler".into());
        };
        // A second MINIT in the same process (some SAPIs restart modules)
        // finds our wrapper installed already: keep the first original.
        let original = *ORIGINAL.get_or_init(|| original);
        if original as *const () != session_start as *const () {
            internal.handler = Some(session_start);
        }
    }
    Ok(())
}

unsafe extern "C" fn session_start(ex: *mut zend_execute_data, rv: *mut zval) {
    // SAFETY: the engine passes the live call frame of session_start().
    let wanted = unsafe { read_and_close_option(ex) };
    REQUESTED.with(|r| r.set(wanted));
    if let Some(original) = ORIGINAL.get() {
        // SAFETY: forwarding the engine's own arguments to its own handler.
        unsafe { original(ex, rv) };
    }
    REQUESTED.with(|r| r.set(false));
}

/// # Safety
/// `ex` must be the call frame of a running `session_start()`.
unsafe fn read_and_close_option(ex: *mut zend_execute_data) -> bool {
    // SAFETY: see the function contract; argument 0 exists when num_args > 0.
    unsafe {
        let Some(frame) = ex.cast::<ExecuteData>().as_ref() else {
            return false;
        };
        if (*ex).This.u2.num_args == 0 {
            return false;
        }
        frame
            .zend_call_arg(0)
            .and_then(|options: &mut Zval| options.array())
            .and_then(|options| options.get("read_and_close"))
            .is_some_and(Zval::is_true)
    }
}

/// Keeps the `zif_handler` type in view: the wrapper must match it exactly.
const _: zif_handler = Some(session_start);
