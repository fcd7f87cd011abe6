//! Per-worker counters shown by phpinfo(). A php-fpm worker is one process
//! serving one request at a time, so plain process-wide atomics suffice.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub static REQUESTS: AtomicU64 = AtomicU64::new(0);
pub static LOCK_WAITS: AtomicU64 = AtomicU64::new(0);
pub static LOCK_TIMEOUTS: AtomicU64 = AtomicU64::new(0);
pub static ERRORS: AtomicU64 = AtomicU64::new(0);
/// Writes applied after their lease lapsed (renewals could not reach Redis),
/// because nobody had changed the session meanwhile.
pub static LAPSED_WRITES: AtomicU64 = AtomicU64::new(0);

pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// (phpinfo label, stickless_stats() key, value) for every counter of this
/// worker. Round trips are the native handler's.
pub fn rows() -> [(&'static str, &'static str, u64); 6] {
    [
        ("Sessions opened", "sessions_opened", REQUESTS.load(Relaxed)),
        ("Lock waits", "lock_waits", LOCK_WAITS.load(Relaxed)),
        (
            "Lock timeouts",
            "lock_timeouts",
            LOCK_TIMEOUTS.load(Relaxed),
        ),
        ("Errors", "errors", ERRORS.load(Relaxed)),
        (
            "Writes after a lapsed lease",
            "lapsed_writes",
            LAPSED_WRITES.load(Relaxed),
        ),
        ("Round trips", "round_trips", crate::hooks::round_trips()),
    ]
}
