//! `Stickless\SessionHandler`: the same handler as an object, for frameworks
//! that want one (`session_set_save_handler(new ...('redis://...'), true)`)
//! or that call read/write/destroy themselves without open/close.

use std::mem::ManuallyDrop;
use std::time::Duration;

use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::class::RegisteredClass;
use ext_php_rs::convert::IntoZval;
use ext_php_rs::exception::{PhpException, PhpResult};
use ext_php_rs::ffi::{
    zend_class_entry, zend_do_implement_interface, zend_function, zend_hash_str_find,
};
use ext_php_rs::flags::DataType;
use ext_php_rs::prelude::*;
use ext_php_rs::types::{ZendHashTable, Zval};

use crate::handler::{Handler, Warning, reported};
use crate::{ffi, guard, ini};

/// A PHP `string|false`: session data (bytes, not necessarily UTF-8) or a
/// failure PHP turns into "Failed to read session data".
pub struct DataOrFalse(Option<Vec<u8>>);

impl IntoZval for DataOrFalse {
    // Declared as `string`; registration widens it to `string|false` to
    // match SessionHandlerInterface::read, which ext-php-rs cannot express.
    const TYPE: DataType = DataType::String;
    const NULLABLE: bool = false;

    fn set_zval(self, zv: &mut Zval, _persistent: bool) -> ext_php_rs::error::Result<()> {
        match self.0 {
            Some(bytes) => zv.set_binary(bytes),
            None => zv.set_bool(false),
        }
        Ok(())
    }
}

#[php_class]
#[php(name = "Stickless\\SessionHandler")]
pub struct SessionHandler {
    /// Taken out in Drop (see there), so never dropped by the drop glue.
    inner: ManuallyDrop<Handler>,
}

fn ttl() -> Duration {
    Duration::from_secs(
        u64::try_from(ini::long("session.gc_maxlifetime"))
            .unwrap_or(0)
            .max(1),
    )
}

fn bytes(zv: &Zval) -> Vec<u8> {
    zv.zend_str()
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default()
}

fn report(r: Result<(), Warning>) -> bool {
    reported(r).is_some()
}

fn option_value(zv: &Zval) -> Option<String> {
    zv.str()
        .map(str::to_owned)
        .or_else(|| zv.long().map(|n| n.to_string()))
        .or_else(|| zv.bool().map(|b| u8::from(b).to_string()))
}

#[php_impl]
impl SessionHandler {
    /// `new Stickless\SessionHandler('redis://host:6379/0?prefix=app:', ['lock_wait_ms' => 2000])`:
    /// the same URL and options as `session.save_path`; options in the array
    /// override both ini and the URL query.
    pub fn __construct(save_path: String, options: Option<&ZendHashTable>) -> PhpResult<Self> {
        let mut set = Vec::new();
        for (key, value) in options.into_iter().flatten() {
            let name = key.to_string();
            let value = option_value(value).ok_or_else(|| {
                PhpException::from_message(format!(
                    "stickless: option `{name}` must be a string, int or bool"
                ))
            })?;
            set.push((name, value));
        }
        let config = ini::config_with(&save_path, &set)
            .map_err(|Warning(w)| PhpException::from_message(format!("stickless: {w}")))?;
        Ok(Self {
            inner: ManuallyDrop::new(Handler::new(&config)),
        })
    }

    /// Applies strict mode for the session being started (PHP asks about
    /// it right after `open`; see `strict`).
    pub fn open(&mut self, _path: &Zval, _name: &Zval) -> bool {
        crate::strict::apply(self.inner.config().settings.strict_mode);
        true
    }

    pub fn close(&mut self) -> bool {
        guard(false, || report(self.inner.close()))
    }

    pub fn read(&mut self, id: &Zval) -> DataOrFalse {
        let id = bytes(id);
        DataOrFalse(guard(None, || reported(self.inner.read(&id))))
    }

    pub fn write(&mut self, id: &Zval, data: &Zval) -> bool {
        let (id, data) = (bytes(id), bytes(data));
        guard(false, || report(self.inner.write(&id, &data, ttl())))
    }

    pub fn destroy(&mut self, id: &Zval) -> bool {
        let id = bytes(id);
        guard(false, || report(self.inner.destroy(&id)))
    }

    /// Redis expires sessions by itself; nothing to collect.
    pub fn gc(&mut self, _max_lifetime: &Zval) -> i64 {
        0
    }

    #[php(name = "create_sid")]
    pub fn create_sid(&mut self) -> PhpResult<String> {
        let id = guard(None, crate::new_session_id).ok_or_else(|| {
            PhpException::from_message("stickless: could not create a session ID".into())
        })?;
        self.inner.created(id.expose().as_bytes());
        Ok(id.expose().to_owned())
    }

    pub fn validate_id(&mut self, id: &Zval) -> bool {
        let id = bytes(id);
        guard(false, || self.inner.validate(&id))
    }

    pub fn update_timestamp(&mut self, id: &Zval, data: &Zval) -> bool {
        let (id, data) = (bytes(id), bytes(data));
        guard(false, || report(self.inner.touch(&id, &data, ttl())))
    }
}

impl Drop for SessionHandler {
    /// Frameworks that never call close() still get their lock released.
    /// The engine frees the object from a C frame: this is an entry point
    /// too, and the handler is moved out first, so that when the warnings
    /// are raised (and an error handler may end the request) no field is
    /// left for the drop glue.
    fn drop(&mut self) {
        // SAFETY: `inner` is taken once, here, and never used again.
        let mut inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        crate::enter((), move || inner.finish_request());
    }
}

/// `MAY_BE_FALSE` from zend_type_info.h.
const MAY_BE_FALSE: u32 = 1 << 2;

/// Registers the class, widens `read` and `gc` to `string|false` and
/// `int|false`, routes every method through [`crate::enter`], then implements
/// the three session interfaces. Runs in MINIT, after the session module's
/// own MINIT (it is compiled in or a dependency).
pub fn register() -> Result<(), String> {
    let mut builder = ClassBuilder::new(SessionHandler::CLASS_NAME);
    for (method, flags) in SessionHandler::method_builders() {
        builder = builder.method(method, flags);
    }
    builder = builder
        .object_override::<SessionHandler>()
        .registration(|ce, arg_info| {
            SessionHandler::get_metadata().set_ce(ce);
            SessionHandler::get_metadata().set_arg_info(arg_info);
        });
    builder.register().map_err(|e| e.to_string())?;
    let ce: *mut zend_class_entry =
        std::ptr::from_ref(SessionHandler::get_metadata().ce()).cast_mut();
    // SAFETY: MINIT, single-threaded; the class was registered just above and
    // its method table holds internal functions whose arg_info we may widen.
    unsafe {
        for method in ["read", "gc"] {
            widen_return_with_false(ce, method)?;
        }
        route_methods(ce)?;
        for iface in [
            ffi::php_session_iface_entry,
            ffi::php_session_id_iface_entry,
            ffi::php_session_update_timestamp_iface_entry,
        ] {
            if iface.is_null() {
                return Err("the session extension is not loaded".into());
            }
            zend_do_implement_interface(ce, iface);
        }
    }
    Ok(())
}

/// Makes every method end like every entry point: its warnings are raised
/// after the handler ext-php-rs generated has returned and dropped its
/// arguments, and `&mut self` is released. (That handler passes a bailout
/// inside the method on by a longjmp past its own frames; raising our
/// warnings inside the method would expose those frames to it.)
///
/// # Safety
/// `ce` must be a registered internal class; MINIT only.
unsafe fn route_methods(ce: *mut zend_class_entry) -> Result<(), String> {
    // SAFETY: see the function contract; method tables hold zend_function
    // pointers in their zvals.
    unsafe {
        let table: &ZendHashTable = &(*ce).function_table;
        for zv in table.values() {
            let func = zv.value.ptr.cast::<zend_function>();
            if func.is_null() {
                return Err("a method without a function".into());
            }
            crate::boundary::route(func)?;
        }
    }
    Ok(())
}

/// # Safety
/// `ce` must be a registered internal class; MINIT only.
unsafe fn widen_return_with_false(ce: *mut zend_class_entry, method: &str) -> Result<(), String> {
    // SAFETY: see the function contract; method tables hold zend_function
    // pointers in their zvals.
    unsafe {
        let zv = zend_hash_str_find(
            &raw const (*ce).function_table,
            method.as_ptr().cast(),
            method.len(),
        );
        let func = zv
            .as_ref()
            .map(|zv| zv.value.ptr.cast::<zend_function>())
            .filter(|f| !f.is_null())
            .ok_or_else(|| format!("method {method} not registered"))?;
        let info = (*func).internal_function.arg_info;
        if info.is_null() {
            return Err(format!("method {method} has no arg_info"));
        }
        (*info.sub(1)).type_.type_mask |= MAY_BE_FALSE;
    }
    Ok(())
}
