//! The worker's stores, shared by every handler with the same configuration:
//! the native save handler and each `Stickless\SessionHandler` object. A
//! framework builds a new handler object on every request; with a store of
//! its own each would pay TCP (and TLS and AUTH) again and take its
//! background keeper with it when freed. Shared, they reuse the worker's
//! connections, and a lease outlives the object that took it.

use std::cell::RefCell;
use std::rc::Rc;

use stickless::{Config, Store};

/// Distinct configurations kept; a worker sees one or two. Over this, an
/// unused store is closed.
const MAX_STORES: usize = 8;

/// A store shared within this worker (php-fpm workers are single-threaded;
/// a ZTS build gets a pool per thread).
pub type Shared = Rc<RefCell<Store>>;

thread_local! {
    static POOL: RefCell<Vec<Shared>> = const { RefCell::new(Vec::new()) };
}

/// The worker's store for `config`, opened (without I/O) if it has none.
pub fn shared(config: &Config) -> Shared {
    POOL.with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return Rc::new(RefCell::new(Store::new(config.clone())));
        };
        if let Some(store) = pool
            .iter()
            .find(|s| s.try_borrow().is_ok_and(|s| s.config() == config))
        {
            return Rc::clone(store);
        }
        if pool.len() >= MAX_STORES
            && let Some(unused) = pool.iter().position(|s| Rc::strong_count(s) == 1)
        {
            pool.remove(unused);
        }
        let store = Rc::new(RefCell::new(Store::new(config.clone())));
        pool.push(Rc::clone(&store));
        store
    })
}

/// Module shutdown: closes every store, which joins its keeper thread
/// before the engine unloads the extension's code.
pub fn shutdown() {
    POOL.with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut() {
            pool.clear();
        }
    });
}
