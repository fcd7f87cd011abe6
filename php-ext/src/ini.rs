//! `stickless.*` ini entries: registered from the core crate's defaults
//! table, read back by name when a session opens.

use std::cell::OnceCell;
use std::ffi::{CStr, CString, c_int};
use std::ptr::NonNull;
use std::rc::Rc;

use ext_php_rs::ffi::{
    executor_globals, php_output_write, sapi_module, zend_hash_str_find, zend_ini_entry,
};
use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::types::ZendStr;
use ext_php_rs::zend::IniEntryDef;
use std::cell::RefCell;

use stickless::{Config, Settings};

use crate::handler::Warning;
use stickless::config::{ConfigError, DEFAULTS, SECRET_OPTIONS, redact, redact_option};

use crate::ffi;

/// Registers one ini entry per option. Runs once, in MINIT.
pub fn register(module_number: i32) {
    let mut defs: Vec<IniEntryDef> = DEFAULTS
        .iter()
        .filter_map(|(option, default)| {
            // Names and defaults are compile-time ASCII without NUL; the
            // entries must outlive the process, hence the leak.
            let name = CString::new(format!("stickless.{option}")).ok()?;
            let value = CString::new(*default).ok()?;
            let mut def = IniEntryDef::new(
                Box::leak(name.into_boxed_c_str()),
                Box::leak(value.into_boxed_c_str()),
                IniEntryPermission::All,
            );
            if SECRET_OPTIONS.contains(option) {
                def.displayer = Some(show_secret_option);
            }
            Some(def)
        })
        .collect();
    defs.push(IniEntryDef::end());
    IniEntryDef::register(Box::leak(defs.into_boxed_slice()), module_number);
}

/// Makes phpinfo() show `session.save_path` without its password. MINIT
/// only, after the session extension registered its settings.
pub fn redact_save_path_display() {
    const NAME: &str = "session.save_path";
    // SAFETY: MINIT is single-threaded; EG(ini_directives) maps names to
    // zend_ini_entry pointers for the life of the process.
    unsafe {
        let table = executor_globals.ini_directives;
        if table.is_null() {
            return;
        }
        let zv = zend_hash_str_find(table, NAME.as_ptr().cast(), NAME.len());
        if let Some(entry) = zv
            .as_ref()
            .map(|zv| zv.value.ptr.cast::<zend_ini_entry>())
            .and_then(|e| e.as_mut())
        {
            entry.displayer = Some(show_save_path);
        }
    }
}

/// `ZEND_INI_DISPLAY_ORIG`: phpinfo()'s "Master Value" column.
const DISPLAY_ORIG: c_int = 1;

/// The value phpinfo() asks for, as PHP's own displayer picks it.
///
/// # Safety
/// `entry` must be a live ini entry.
unsafe fn shown_value(entry: *mut zend_ini_entry, kind: c_int) -> Option<String> {
    // SAFETY: see the function contract.
    let entry = unsafe { entry.as_ref()? };
    let value = if kind == DISPLAY_ORIG && entry.modified != 0 && !entry.orig_value.is_null() {
        entry.orig_value
    } else {
        entry.value
    };
    // SAFETY: ini values are live zend_strings (or null).
    let value = unsafe { value.cast::<ZendStr>().as_ref()? };
    Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
}

fn phpinfo_is_html() -> bool {
    // SAFETY: reading a plain int of the SAPI's static descriptor.
    unsafe { sapi_module.phpinfo_as_text == 0 }
}

fn write_raw(out: &str) {
    // SAFETY: a valid buffer and its length.
    unsafe { php_output_write(out.as_ptr().cast(), out.len()) };
}

/// Prints a value as PHP's own displayer does: "no value" when empty,
/// HTML-escaped in an HTML phpinfo().
fn print_value(value: Option<String>) {
    let html = phpinfo_is_html();
    match value.filter(|v| !v.is_empty()) {
        Some(v) if html => write_raw(
            &v.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;"),
        ),
        Some(v) => write_raw(&v),
        None if html => write_raw("<i>no value</i>"),
        None => write_raw("no value"),
    }
}

unsafe extern "C" fn show_secret_option(entry: *mut zend_ini_entry, kind: c_int) {
    crate::enter((), || {
        // SAFETY: the engine passes a live entry.
        print_value(unsafe { shown_value(entry, kind) }.map(|v| redact_option(&v)));
    });
}

unsafe extern "C" fn show_save_path(entry: *mut zend_ini_entry, kind: c_int) {
    crate::enter((), || {
        // SAFETY: the engine passes a live entry.
        print_value(unsafe { shown_value(entry, kind) }.map(|v| redact(&v)));
    });
}

/// Reads a string ini value (ours or PHP's) as bytes.
pub fn string(name: &str) -> Option<String> {
    let mut exists = false;
    // SAFETY: the engine copies nothing; we read the current value while the
    // ini table is alive (we are inside a request or MINIT).
    let raw =
        unsafe { ffi::zend_ini_string_ex(name.as_ptr().cast(), name.len(), 0, &raw mut exists) };
    if !exists || raw.is_null() {
        return None;
    }
    // SAFETY: ini values are NUL-terminated C strings owned by the engine.
    let value = unsafe { CStr::from_ptr(raw) };
    Some(value.to_string_lossy().into_owned())
}

/// Reads an integer ini value.
pub fn long(name: &str) -> i64 {
    // SAFETY: as for `string`.
    unsafe { ffi::zend_ini_long(name.as_ptr().cast(), name.len(), 0) }
}

/// The settings from `stickless.*` ini values, before the save_path query
/// overrides them.
pub fn settings() -> Result<Settings, ConfigError> {
    settings_from(&raw_values())
}

/// An ini entry, found by name once: the engine keeps its entries for the
/// life of the process (of the thread, in ZTS), and `ini_set` and the
/// end-of-request restore only swap the value inside. Reading the value in
/// place costs no lookup and no copy, which matters because every session
/// start compares every `stickless.*` value with the ones the
/// configuration was built from.
#[derive(Clone, Copy)]
struct Entry(NonNull<zend_ini_entry>);

impl Entry {
    fn find(name: &str) -> Option<Self> {
        // SAFETY: called between MINIT and MSHUTDOWN (the settings check
        // in MINIT, then session starts), while EG(ini_directives) maps
        // names to live zend_ini_entry pointers; null before and after.
        unsafe {
            let table = executor_globals.ini_directives;
            if table.is_null() {
                return None;
            }
            let zv = zend_hash_str_find(table, name.as_ptr().cast(), name.len()).as_ref()?;
            NonNull::new(zv.value.ptr.cast::<zend_ini_entry>()).map(Self)
        }
    }

    /// The current value; read it before anything can call `ini_set`.
    fn value(&self) -> Option<&[u8]> {
        // SAFETY: the entry lives as long as the process; its value is a
        // live zend_string (or null) until the next ini change, and the
        // caller compares or copies it right away.
        unsafe {
            let value = self.0.as_ref().value.cast::<ZendStr>().as_ref()?;
            Some(value.as_bytes())
        }
    }
}

thread_local! {
    /// The `stickless.*` entries in `DEFAULTS` order, found on first use
    /// (MINIT's settings check: php-fpm's workers inherit them, as they
    /// inherit the entries themselves).
    static OPTIONS: OnceCell<Vec<Option<Entry>>> = const { OnceCell::new() };
}

/// Runs `f` on the `stickless.*` entries in `DEFAULTS` order.
fn with_options<T>(f: impl FnOnce(&[Option<Entry>]) -> T) -> T {
    let find = || -> Vec<Option<Entry>> {
        DEFAULTS
            .iter()
            .map(|(name, _)| Entry::find(&format!("stickless.{name}")))
            .collect()
    };
    // SAFETY: reading a pointer of the engine's globals.
    if unsafe { executor_globals.ini_directives }.is_null() {
        // Outside the engine's life: nothing to keep.
        return f(&find());
    }
    OPTIONS.with(|cell| f(cell.get_or_init(find)))
}

/// The `stickless.*` ini values as written, in `DEFAULTS` order.
fn raw_values() -> Vec<Option<String>> {
    with_options(|entries| {
        entries
            .iter()
            .map(|e| e.and_then(|e| e.value().map(|v| String::from_utf8_lossy(v).into_owned())))
            .collect()
    })
}

/// Whether the `stickless.*` values are still `raw`, compared in place.
fn values_are(raw: &[Option<String>]) -> bool {
    with_options(|entries| {
        entries.len() == raw.len()
            && entries.iter().zip(raw).all(|(entry, was)| {
                entry.as_ref().and_then(Entry::value) == was.as_deref().map(str::as_bytes)
            })
    })
}

fn settings_from(raw: &[Option<String>]) -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    for ((name, _), value) in DEFAULTS.iter().zip(raw) {
        if let Some(value) = value {
            settings.set(name, value)?;
        }
    }
    Ok(settings)
}

/// Configurations kept built; a worker sees one or two (the native
/// handler's, an object handler's).
const MAX_BUILT: usize = 4;

/// A configuration built, with what it was built from.
struct Built {
    save_path: String,
    options: Vec<(String, String)>,
    raw: Vec<Option<String>>,
    config: Rc<Config>,
}

thread_local! {
    static BUILT: RefCell<Vec<Built>> = const { RefCell::new(Vec::new()) };
}

/// The configuration for `save_path` and the current `stickless.*` ini
/// values. Built once per distinct input in a worker: parsing reads
/// `file:` secrets and decodes keys, which has no place on every request;
/// while the input stays the same, every call returns the same `Rc`.
/// (A worker therefore sees a changed secret file when it restarts.)
pub fn config(save_path: &str) -> Result<Rc<Config>, Warning> {
    config_with(save_path, &[])
}

/// [`config`] with `options` (name, value) set over the ini values and the
/// URL's query: `new Stickless\SessionHandler($path, $options)`, which a
/// framework calls on every request.
pub fn config_with(save_path: &str, options: &[(String, String)]) -> Result<Rc<Config>, Warning> {
    let cached = BUILT.with(|built| {
        let built = built.try_borrow().ok()?;
        built
            .iter()
            .find(|b| b.save_path == save_path && b.options == options && values_are(&b.raw))
            .map(|b| Rc::clone(&b.config))
    });
    if let Some(config) = cached {
        return Ok(config);
    }
    crate::masking::mask(save_path, redact(save_path));
    let refused = |why: String| {
        crate::stats::count(&stickless::metrics::Event::Error("config"));
        Warning(why)
    };
    let raw = raw_values();
    let settings = settings_from(&raw).map_err(|e| refused(format!("ini: {e}")))?;
    let mut config = Config::parse_with(save_path, settings).map_err(|e| refused(e.to_string()))?;
    for (name, value) in options {
        config
            .settings
            .set(name, value)
            .map_err(|e| refused(e.to_string()))?;
    }
    let config = Rc::new(config);
    BUILT.with(|built| {
        if let Ok(mut built) = built.try_borrow_mut() {
            if built.len() >= MAX_BUILT {
                built.remove(0);
            }
            built.push(Built {
                save_path: save_path.to_owned(),
                options: options.to_vec(),
                raw,
                config: Rc::clone(&config),
            });
        }
    });
    Ok(config)
}
