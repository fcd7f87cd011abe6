//! The stickless PHP extension: a native session save handler named
//! `stickless`, the `Stickless\SessionHandler` class, `stickless.*` ini
//! settings and a phpinfo() section. Locking and storage live in the
//! `stickless` core crate; this crate only adapts PHP's calls to it.

mod class;
mod ffi;
mod handler;
mod hooks;
mod ini;
mod masking;
mod read_and_close;
mod stats;
mod strict;

use ext_php_rs::error::php_error;
use ext_php_rs::flags::ErrorType;
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ModuleEntry;
use ext_php_rs::{info_table_end, info_table_row, info_table_start};

/// Emits an E_WARNING prefixed with the extension's name. Callers never pass
/// session IDs or secrets (they name sessions by hashed key).
pub(crate) fn warn(message: &str) {
    php_error(&ErrorType::Warning, &format!("stickless: {message}"));
}

/// A new session ID with PHP's `session.sid_length` and
/// `session.sid_bits_per_character`, lengthened to carry at least 128 bits;
/// None (after a warning) if the OS random source fails.
pub(crate) fn new_session_id() -> Option<stickless::SessionId> {
    let length = usize::try_from(ini::long("session.sid_length")).unwrap_or(0);
    let bits = u8::try_from(ini::long("session.sid_bits_per_character")).unwrap_or(4);
    match stickless::SessionId::generate(length, bits) {
        Ok(id) => Some(id),
        Err(e) => {
            warn(&e.to_string());
            None
        }
    }
}

/// Runs `f`, turning a panic into a warning and `fallback`: a panic must
/// never unwind into PHP's C frames.
pub(crate) fn guard<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        warn("internal error in the session handler; the session was not changed");
        fallback
    })
}

/// MINIT: ini entries, the save handler and the class. Nothing here opens a
/// socket or starts a thread: php-fpm forks after MINIT.
fn startup(_ty: i32, module_number: i32) -> i32 {
    ini::register(module_number);
    ini::redact_save_path_display();
    masking::install();
    if let Err(e) = ini::settings() {
        warn(&format!("ini: {e}"));
    }
    // SAFETY: MODULE is a static table with 'static function pointers.
    if unsafe { ffi::php_session_register_module(&raw const hooks::MODULE) } != ffi::SUCCESS {
        warn("could not register the save handler with the session extension");
        return ffi::FAILURE;
    }
    if let Err(e) = read_and_close::install() {
        // Only an optimisation: read_and_close then locks like any start.
        warn(&format!("read_and_close will take the lock: {e}"));
    }
    if let Err(e) = class::register() {
        warn(&format!(
            "could not register Stickless\\SessionHandler: {e}"
        ));
        return ffi::FAILURE;
    }
    ffi::SUCCESS
}

/// RINIT: with `stickless.strict_mode` on (the default) and the native
/// handler configured, PHP's `session.use_strict_mode` is turned on for the
/// request, so an unknown session ID is never adopted (session fixation).
/// It must happen here: once `session_start()` runs, session settings can no
/// longer change.
extern "C" fn request_startup(_ty: i32, _module_number: i32) -> i32 {
    guard((), strict::enforce_for_native_handler);
    ffi::SUCCESS
}

/// After every RSHUTDOWN, so the session module has flushed first.
unsafe extern "C" fn post_deactivate() -> i32 {
    read_and_close::reset();
    let _ = std::panic::catch_unwind(hooks::finish_request);
    ffi::SUCCESS
}

unsafe extern "C" fn info(module: *mut ModuleEntry) {
    let _ = std::panic::catch_unwind(|| {
        info_table_start!();
        info_table_row!("stickless support", "enabled");
        info_table_row!("Version", env!("CARGO_PKG_VERSION"));
        let server = match hooks::current_config() {
            Some(config) => config.server.to_string(),
            None => "not opened in this worker yet".to_owned(),
        };
        info_table_row!("Server in force", server);
        for (label, _, value) in stats::rows() {
            info_table_row!(label, value.to_string());
        }
        info_table_end!();
    });
    // SAFETY: the engine passes our own module entry.
    unsafe { ffi::display_ini_entries(module.cast()) };
}

/// This worker's counters: `sessions_opened`, `lock_waits`,
/// `lock_timeouts`, `errors` and `round_trips` (the native handler's).
#[php_function]
pub fn stickless_stats() -> ext_php_rs::boxed::ZBox<ext_php_rs::types::ZendHashTable> {
    let mut table = ext_php_rs::types::ZendHashTable::new();
    for (_, key, value) in stats::rows() {
        // Inserting an int under a short string key cannot fail.
        let _ = table.insert(key, i64::try_from(value).unwrap_or(i64::MAX));
    }
    table
}

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .name("stickless")
        .function(wrap_function!(stickless_stats))
        .request_startup_function(request_startup)
        .post_deactivate_function(post_deactivate)
        .info_function(info)
}
