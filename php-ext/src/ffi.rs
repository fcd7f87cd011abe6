//! What ext-php-rs does not bind: the session module's registration API and
//! class entries, and two ini readers. Layouts match PHP 8.x headers
//! (`ext/session/php_session.h`, `Zend/zend_ini.h`).

use std::ffi::{c_char, c_int, c_void};

use ext_php_rs::ffi::{zend_class_entry, zend_long, zend_module_entry, zend_string};

/// `zend_result`: SUCCESS is 0, FAILURE is -1.
pub type ZendResult = c_int;
pub const SUCCESS: ZendResult = 0;
pub const FAILURE: ZendResult = -1;

pub type ModData = *mut *mut c_void;

/// `ps_module`, field for field.
#[repr(C)]
pub struct PsModule {
    pub s_name: *const c_char,
    pub s_open: unsafe extern "C" fn(ModData, *const c_char, *const c_char) -> ZendResult,
    pub s_close: unsafe extern "C" fn(ModData) -> ZendResult,
    pub s_read: unsafe extern "C" fn(
        ModData,
        *mut zend_string,
        *mut *mut zend_string,
        zend_long,
    ) -> ZendResult,
    pub s_write:
        unsafe extern "C" fn(ModData, *mut zend_string, *mut zend_string, zend_long) -> ZendResult,
    pub s_destroy: unsafe extern "C" fn(ModData, *mut zend_string) -> ZendResult,
    pub s_gc: unsafe extern "C" fn(ModData, zend_long, *mut zend_long) -> zend_long,
    pub s_create_sid: unsafe extern "C" fn(ModData) -> *mut zend_string,
    pub s_validate_sid: unsafe extern "C" fn(ModData, *mut zend_string) -> ZendResult,
    pub s_update_timestamp:
        unsafe extern "C" fn(ModData, *mut zend_string, *mut zend_string, zend_long) -> ZendResult,
}

// SAFETY: the table is immutable after construction and only read by PHP.
unsafe impl Sync for PsModule {}

/// `zend_error_cb`'s type (PHP 8.x).
pub type ErrorCb = unsafe extern "C" fn(c_int, *mut zend_string, u32, *mut zend_string);

unsafe extern "C" {
    pub static mut zend_error_cb: Option<ErrorCb>;

    pub fn php_session_register_module(module: *const PsModule) -> ZendResult;

    pub static mut php_session_iface_entry: *mut zend_class_entry;
    pub static mut php_session_id_iface_entry: *mut zend_class_entry;
    pub static mut php_session_update_timestamp_iface_entry: *mut zend_class_entry;

    pub fn zend_ini_long(name: *const c_char, name_length: usize, orig: c_int) -> zend_long;
    pub fn zend_ini_string_ex(
        name: *const c_char,
        name_length: usize,
        orig: c_int,
        exists: *mut bool,
    ) -> *mut c_char;

    pub fn display_ini_entries(module: *mut zend_module_entry);
}
