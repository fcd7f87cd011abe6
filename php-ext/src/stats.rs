//! Per-worker counters shown by phpinfo(). A php-fpm worker is one process
//! serving one request at a time, so plain process-wide atomics suffice.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static LOCK_WAITS: AtomicU64 = AtomicU64::new(0);
pub static LOCK_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub static ERRORS: AtomicU64 = AtomicU64::new(0);

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

pub fn rows() -> [(&'static str, u64); 4] {
    [
        ("Sessions opened", REQUESTS.load(Relaxed)),
        ("Lock waits", LOCK_WAITS.load(Relaxed)),
        ("Lock timeouts", LOCK_TIMEOUTS.load(Relaxed)),
        ("Errors", ERRORS.load(Relaxed)),
    ]
}
