//! Strict mode by default: `session.use_strict_mode` makes PHP ask the
//! handler whether a session ID exists before adopting it, which defeats
//! session fixation. Distributions ship it off; stickless turns it on for
//! the sessions it serves unless `stickless.strict_mode=0`.
//!
//! Not through the ini system: changing a `session.*` setting at run time is
//! refused while a session is active (`session.auto_start=1`: a warning,
//! and the change is skipped) and is a fatal error on current PHP while
//! `session.upload_progress.enabled` is on, upstream's default. Instead the
//! handler's own `open` sets the session module's flag for the session being
//! started: PHP opens the handler first and asks about strict mode right
//! after, in `session_start()`, `session.auto_start` and
//! `session_regenerate_id()` alike. `ini_get('session.use_strict_mode')`
//! still shows php.ini's value.

use crate::ini;

unsafe extern "C" {
    /// `src/session_globals.c`.
    fn stickless_ps_set_strict_mode(on: bool);
    fn stickless_strict_mode_set_at_runtime() -> bool;
}

/// Called from the handler's `open`: strict mode for this session when the
/// handler's settings want it, unless the application chose for itself
/// during this request (`ini_set('session.use_strict_mode', ...)` or a
/// `session_start()` option). Never turned off here.
pub fn apply(strict: bool) {
    // SAFETY: reads the engine's ini table from the thread running the request.
    if strict && !unsafe { stickless_strict_mode_set_at_runtime() } {
        // SAFETY: a plain store to the session module's globals, from the
        // thread running the request.
        unsafe { stickless_ps_set_strict_mode(true) };
    }
}

/// At the end of every request: back to what the ini says, so a later
/// request in this worker whose handler is not stickless is not affected.
pub fn reset() {
    let configured = ini::long("session.use_strict_mode") != 0;
    // SAFETY: as in `apply`; the session module has finished the request.
    unsafe { stickless_ps_set_strict_mode(configured) };
}
