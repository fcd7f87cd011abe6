//! `stickless.*` ini entries: registered from the core crate's defaults
//! table, read back by name when a session opens.

use std::ffi::{CStr, CString};

use ext_php_rs::flags::IniEntryPermission;
use ext_php_rs::zend::IniEntryDef;
use stickless::Settings;
use stickless::config::{ConfigError, DEFAULTS};

use crate::ffi;

/// Registers one ini entry per option. Runs once, in MINIT.
pub fn register(module_number: i32) {
    let mut defs: Vec<IniEntryDef> = DEFAULTS
        .iter()
        .filter_map(|(name, default)| {
            // Names and defaults are compile-time ASCII without NUL; the
            // entries must outlive the process, hence the leak.
            let name = CString::new(format!("stickless.{name}")).ok()?;
            let value = CString::new(*default).ok()?;
            Some(IniEntryDef::new(
                Box::leak(name.into_boxed_c_str()),
                Box::leak(value.into_boxed_c_str()),
                IniEntryPermission::All,
            ))
        })
        .collect();
    defs.push(IniEntryDef::end());
    IniEntryDef::register(Box::leak(defs.into_boxed_slice()), module_number);
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
    let mut settings = Settings::default();
    for (name, _) in DEFAULTS {
        if let Some(value) = string(&format!("stickless.{name}")) {
            settings.set(name, &value)?;
        }
    }
    Ok(settings)
}
