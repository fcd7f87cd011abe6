//! The edge between PHP and Rust. A warning can run user code: an error
//! handler (`set_error_handler`) runs inside the call that raises it. If that
//! code hits a fatal error (`trigger_error(E_USER_ERROR)`, `memory_limit`,
//! `max_execution_time`), the engine bails out: a `longjmp` to the nearest
//! `zend_try`, past every frame in between, whose destructors then never
//! run (a `RefCell` stays borrowed, a lock guard is never released). So
//! nothing in Rust raises a warning where it happens: [`warn`] only queues
//! it, and each call from PHP into Rust goes through [`enter`], which raises
//! the queue as its last act, once the Rust work is done and dropped, and
//! passes a bailout on from a frame that holds nothing to drop.
//!
//! Two engine hooks do not go through it, and need not: the error callback
//! (`masking.rs`) and the `session_start()` wrapper (`read_and_close.rs`)
//! queue nothing and hold no value with a destructor while the engine runs.

use std::cell::{Cell, RefCell};
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use ext_php_rs::ffi::{zend_execute_data, zend_function, zval};
use ext_php_rs::zend::{CatchError, bailout, try_catch};

thread_local! {
    /// Warnings not raised yet, already prefixed and free of secrets.
    static PENDING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Entry points now running on this thread (an error handler can call
    /// back into the extension while a warning is being raised).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The engine bailed out inside a call that caught it ([`engine`], a
    /// nested [`enter`]); the running entry point passes it on when it ends.
    static BAILED: Cell<bool> = const { Cell::new(false) };
}

const INTERNAL_ERROR: &str = "internal error in the session handler; the session was not changed";

/// Queues an E_WARNING prefixed with the extension's name, raised when the
/// running entry point ends. Callers never pass session IDs or secrets (they
/// name sessions by hashed key).
pub fn warn(message: &str) {
    let text = format!("stickless: {message}");
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.push(text);
        }
    });
}

/// Runs `f`, turning a panic into a warning and `fallback`: a panic must
/// never unwind into PHP's C frames.
pub fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        warn(INTERNAL_ERROR);
        fallback
    })
}

/// One call from PHP into Rust: runs `f` (a panic becomes a warning and
/// `fallback`, a bailout is held back), then raises the warnings `f` queued,
/// in order, and finally passes on a bailout that happened meanwhile. Every
/// hook, method, callback and function of the extension is one call of this,
/// as its last act. `T: Copy` because a type with a destructor must not be
/// alive in this frame when the engine bails out of it.
pub fn enter<T: Copy>(fallback: T, f: impl FnOnce() -> T) -> T {
    let mark = begin();
    let out = match try_catch(AssertUnwindSafe(f)) {
        Ok(out) => out,
        Err(CatchError::Bailout) => {
            BAILED.set(true);
            fallback
        }
        Err(_) => {
            warn(INTERNAL_ERROR);
            fallback
        }
    };
    finish(mark);
    out
}

/// Calls into the engine from inside Rust work (an allocation that may hit
/// `memory_limit`, an ini change that may warn): a bailout stops here,
/// before it can skip a frame with something to drop, and the entry point
/// passes it on once the work is over. None after a bailout, and without
/// calling `f` once one happened: after a fatal error nothing more goes to
/// the engine.
pub fn engine<R>(f: impl FnOnce() -> R) -> Option<R> {
    if BAILED.get() {
        return None;
    }
    match try_catch(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(CatchError::Bailout) => {
            BAILED.set(true);
            None
        }
        // Left to the surrounding guard, which turns it into a warning.
        Err(e) => panic!("{e}"),
    }
}

/// Where this entry point's warnings start in the queue. The outermost entry
/// point takes everything, so a warning queued outside any entry point is
/// raised late rather than never.
fn begin() -> usize {
    let depth = DEPTH.get();
    DEPTH.set(depth + 1);
    if depth == 0 {
        0
    } else {
        PENDING.with(|pending| pending.try_borrow().map_or(0, |p| p.len()))
    }
}

fn finish(mark: usize) {
    let bailed = BAILED.take() || !raise_from(mark);
    DEPTH.set(DEPTH.get().saturating_sub(1));
    if bailed {
        // Warnings left after a fatal error are dropped: raising them would
        // run the error handler again after the script was ended.
        PENDING.with(|pending| {
            if let Ok(mut pending) = pending.try_borrow_mut() {
                pending.truncate(mark);
            }
        });
        // SAFETY: every value this entry point made has been dropped; this
        // frame and its callers up to the engine hold only Copy values, so
        // the jump skips no destructor.
        unsafe { bailout() }
    }
}

/// Raises the warnings queued from `mark` on, oldest first; false if the
/// engine bailed out of one.
fn raise_from(mark: usize) -> bool {
    while let Some(message) = next(mark) {
        if !raise(message) {
            return false;
        }
    }
    true
}

fn next(mark: usize) -> Option<String> {
    PENDING.with(|pending| {
        let mut pending = pending.try_borrow_mut().ok()?;
        (pending.len() > mark).then(|| pending.remove(mark))
    })
}

unsafe extern "C" {
    fn stickless_warning(message: *const c_char);
}

/// Raises one warning; false if the engine bailed out of it. `message` is
/// owned here, outside the `zend_try`, so a bailout skips nothing to drop.
fn raise(message: String) -> bool {
    // As php_error() does: a message with a NUL byte cannot be passed on.
    let Ok(text) = CString::new(message) else {
        return true;
    };
    let text = text.as_ptr();
    let raised = try_catch(move || {
        // SAFETY: the C side passes the text through `%s`, so `%` in it is
        // literal; it is NUL-terminated and outlives the call. The closure
        // holds only a pointer, so a bailout out of it skips no destructor.
        unsafe { stickless_warning(text) }
    });
    !matches!(raised, Err(CatchError::Bailout))
}

type Zif = unsafe extern "C" fn(*mut zend_execute_data, *mut zval);

/// Handlers ext-php-rs generates (class methods, functions) that can be
/// routed through [`enter`]; more than the extension has.
const SLOTS: usize = 16;

static ORIGINALS: [OnceLock<Zif>; SLOTS] = [const { OnceLock::new() }; SLOTS];

/// Calls the generated handler of slot `SLOT`, then ends like every entry
/// point. The generated handler already turns a bailout inside it into one
/// out of it, and a panic into an exception; here its warnings are raised
/// after it returned, so after its own values (arguments, `&mut self`) are
/// gone.
unsafe extern "C" fn routed<const SLOT: usize>(ex: *mut zend_execute_data, rv: *mut zval) {
    let Some(&original) = ORIGINALS[SLOT].get() else {
        return;
    };
    enter((), || {
        // SAFETY: forwarding the engine's own arguments to the handler that
        // was installed for this function.
        unsafe { original(ex, rv) }
    });
}

macro_rules! routed {
    ($($slot:literal)*) => { [$(routed::<$slot> as Zif),*] };
}

static ROUTED: [Zif; SLOTS] = routed!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);

/// Makes an internal function generated by ext-php-rs end through
/// [`enter`]. Idempotent, and stable across a second MINIT: a handler keeps
/// the slot it had.
///
/// # Safety
/// `func` must be a live internal function; MINIT only (single-threaded,
/// before any call).
pub unsafe fn route(func: *mut zend_function) -> Result<(), String> {
    // SAFETY: see the function contract.
    let internal = unsafe { &mut (*func).internal_function };
    let Some(handler) = internal.handler else {
        return Err("a function without a handler".into());
    };
    let same = |a: Zif, b: Zif| a as *const () == b as *const ();
    if ROUTED.iter().any(|&r| same(r, handler)) {
        return Ok(());
    }
    let slot = ORIGINALS
        .iter()
        .position(|o| o.get().is_some_and(|&h| same(h, handler)))
        .or_else(|| ORIGINALS.iter().position(|o| o.set(handler).is_ok()))
        .ok_or("more functions than slots to route them")?;
    internal.handler = Some(ROUTED[slot]);
    Ok(())
}
