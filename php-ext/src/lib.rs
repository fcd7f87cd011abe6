//! The stickless PHP extension: a native session save handler named
//! `stickless`, the `Stickless\SessionHandler` class, `stickless.*` ini
//! settings and a phpinfo() section. Locking and storage live in the
//! `stickless` core crate; this crate only adapts PHP's calls to it.

mod boundary;
mod class;
mod concurrency;
mod ffi;
mod handler;
mod hooks;
mod ini;
mod masking;
mod read_and_close;
mod stats;
mod stores;
mod strict;
mod users;

use std::ffi::CString;

use ext_php_rs::ffi::{
    compiler_globals, php_info_print_table_end, php_info_print_table_row,
    php_info_print_table_start, zend_function, zend_hash_str_find,
};
use ext_php_rs::prelude::*;
use ext_php_rs::zend::ModuleEntry;

pub(crate) use boundary::{engine, enter, guard, warn};

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

/// MINIT: ini entries, the save handler and the class. Nothing here opens a
/// socket or starts a thread: php-fpm forks after MINIT.
fn startup(_ty: i32, module_number: i32) -> i32 {
    enter(ffi::FAILURE, || start(module_number))
}

fn start(module_number: i32) -> i32 {
    // First: the counters must be mapped before php-fpm forks its workers.
    if let Err(e) = stats::install() {
        warn(&e);
    }
    ini::register(module_number);
    concurrency::register(module_number);
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
    // SAFETY: MINIT; the module's functions were registered before it.
    for name in [
        "stickless_stats",
        "stickless\\metrics",
        "stickless\\bind_user",
        "stickless\\user_sessions",
        "stickless\\logout_user",
    ] {
        // SAFETY: as above.
        if let Err(e) = unsafe { route_function(name) } {
            warn(&format!("{name}(): {e}"));
            return ffi::FAILURE;
        }
    }
    ffi::SUCCESS
}

/// Makes the generated handler of function `name` end like every entry
/// point (see `boundary`).
///
/// # Safety
/// MINIT only.
unsafe fn route_function(name: &str) -> Result<(), String> {
    // SAFETY: see the function contract; the global function table holds
    // zend_function pointers.
    unsafe {
        let table = compiler_globals.function_table;
        let func = zend_hash_str_find(table, name.as_ptr().cast(), name.len())
            .as_ref()
            .map(|zv| zv.value.ptr.cast::<zend_function>())
            .filter(|f| !f.is_null())
            .ok_or("not registered")?;
        boundary::route(func)
    }
}

/// After every RSHUTDOWN, so the session module has flushed first.
unsafe extern "C" fn post_deactivate() -> i32 {
    read_and_close::reset();
    enter((), || {
        hooks::finish_request();
        strict::reset();
    });
    ffi::SUCCESS
}

unsafe extern "C" fn info(module: *mut ModuleEntry) {
    enter((), || {
        info_table();
        // SAFETY: the engine passes our own module entry.
        unsafe { ffi::display_ini_entries(module.cast()) };
    });
}

/// The extension's phpinfo() table. Every row is built first and printed
/// through [`engine`]: output can hit `memory_limit`, and the bailout must
/// not skip the strings.
fn info_table() {
    let server = match hooks::current_config() {
        Some(config) => config.server.to_string(),
        None => "not opened in this worker yet".to_owned(),
    };
    let rows = vec![
        ("stickless support", "enabled".to_owned()),
        ("Version", env!("CARGO_PKG_VERSION").to_owned()),
        ("Server in force", server),
    ];
    let rows = rows
        .into_iter()
        .map(|(label, value)| (label.to_owned(), value))
        .chain(
            stats::snapshot()
                .rows()
                .into_iter()
                .map(|row| (row.label, row.value.to_string())),
        );
    let rows: Vec<(CString, CString)> = rows
        .filter_map(|(label, value)| Some((CString::new(label).ok()?, CString::new(value).ok()?)))
        .collect();
    // SAFETY: plain output calls of a request in progress.
    engine(|| unsafe { php_info_print_table_start() });
    for (label, value) in &rows {
        let (label, value) = (label.as_ptr(), value.as_ptr());
        // SAFETY: two NUL-terminated strings that outlive the call.
        engine(move || unsafe { php_info_print_table_row(2, label, value) });
    }
    // SAFETY: as above.
    engine(|| unsafe { php_info_print_table_end() });
}

/// The pod's counters (shared by all its php-fpm workers) as an array of
/// ints: `sessions_opened`, `lock_waits`, `lock_timeouts`, `errors`,
/// `lapsed_writes`, `round_trips` and the rest of phpinfo()'s figures.
#[php_function]
pub fn stickless_stats() -> ext_php_rs::boxed::ZBox<ext_php_rs::types::ZendHashTable> {
    let mut table = ext_php_rs::types::ZendHashTable::new();
    for row in stats::snapshot().rows() {
        // Inserting an int under a short string key cannot fail.
        let _ = table.insert(
            row.key.as_str(),
            i64::try_from(row.value).unwrap_or(i64::MAX),
        );
    }
    table
}

/// The pod's counters in the Prometheus text exposition format, so a
/// `/metrics.php` is `<?php echo Stickless\metrics();`.
#[php_function]
#[php(name = "Stickless\\metrics")]
pub fn metrics() -> String {
    text_content_type();
    stats::snapshot().prometheus()
}

/// Prometheus 3 refuses a scrape whose content type is not one of its
/// formats unless told otherwise, and PHP answers text/html by default.
fn text_content_type() {
    use ext_php_rs::convert::IntoZvalDyn;
    use ext_php_rs::types::ZendCallable;
    engine(|| {
        let sent = ZendCallable::try_from_name("headers_sent").ok()?;
        if sent.try_call(vec![]).ok()?.bool()? {
            return None;
        }
        let header = ZendCallable::try_from_name("header").ok()?;
        let value: &dyn IntoZvalDyn = &"Content-Type: text/plain; version=0.0.4; charset=utf-8";
        header.try_call(vec![value]).ok()
    });
}

/// `Stickless\bind_user(string|int $userId, ?string $label = null): void`
/// (see `users.rs`).
#[php_function]
#[php(name = "Stickless\\bind_user")]
pub fn bind_user(user_id: &ext_php_rs::types::Zval, label: Option<String>) -> PhpResult<()> {
    users::bind_user(user_id, label)
}

/// `Stickless\user_sessions(string|int $userId): array` (see `users.rs`).
#[php_function]
#[php(name = "Stickless\\user_sessions")]
pub fn user_sessions(
    user_id: &ext_php_rs::types::Zval,
) -> PhpResult<ext_php_rs::boxed::ZBox<ext_php_rs::types::ZendHashTable>> {
    users::user_sessions(user_id)
}

/// `Stickless\logout_user(string|int $userId, ?string $exceptCurrent = null): int`
/// (see `users.rs`).
#[php_function]
#[php(name = "Stickless\\logout_user")]
pub fn logout_user(
    user_id: &ext_php_rs::types::Zval,
    except_current: Option<String>,
) -> PhpResult<i64> {
    users::logout_user(user_id, except_current)
}

#[php_module]
#[php(startup = startup)]
pub fn get_module(module: ModuleBuilder) -> ModuleBuilder {
    module
        .name("stickless")
        .function(wrap_function!(stickless_stats))
        .function(wrap_function!(metrics))
        .function(wrap_function!(bind_user))
        .function(wrap_function!(user_sessions))
        .function(wrap_function!(logout_user))
        .post_deactivate_function(post_deactivate)
        .shutdown_function(module_shutdown)
        .info_function(info)
}

/// MSHUTDOWN: close every store, which stops and joins its keeper thread.
/// The engine unloads the extension right after; a thread left sleeping in
/// its code would crash the process on waking.
extern "C" fn module_shutdown(_ty: i32, _module_number: i32) -> i32 {
    enter(ffi::SUCCESS, || {
        hooks::shutdown();
        stores::shutdown();
        ffi::SUCCESS
    })
}
