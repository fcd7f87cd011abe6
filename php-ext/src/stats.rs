//! The counters every php-fpm worker of a pod shares, behind
//! `Stickless\metrics()`, `stickless_stats()` and phpinfo().
//!
//! php-fpm's master runs MINIT and then forks its workers, so memory mapped
//! `MAP_SHARED | MAP_ANONYMOUS` in MINIT is the same physical memory in
//! every worker, with no file, name or clean-up. The counters are atomics
//! in that page: one `fetch_add` per event, no lock a killed worker could
//! leave held. Counters start at zero when the master starts (a reload
//! re-executes it), which Prometheus reads as a counter reset.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use stickless::metrics::{self, Event, SLOTS, Snapshot, Tally};

type Slots = [AtomicU64; SLOTS];

static SHARED: OnceLock<&'static Slots> = OnceLock::new();

/// Used when the mapping failed: this process's own figures beat none.
static LOCAL: Slots = [const { AtomicU64::new(0) }; SLOTS];

/// MINIT: maps the shared counters and routes the store's events to them.
/// On failure the counters are this process's only, and the error says why.
pub fn install() -> Result<(), String> {
    metrics::set_sink(record);
    let slots = map().map_err(|e| format!("counters are per worker: mmap failed: {e}"))?;
    // A second MINIT in one process (never under php-fpm) keeps the first.
    let _ = SHARED.set(slots);
    Ok(())
}

fn map() -> io::Result<&'static Slots> {
    // SAFETY: an anonymous mapping touches no existing memory; the result
    // is checked before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size_of::<Slots>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel zero-fills the mapping (all counters 0) and aligns
    // it to a page, more than AtomicU64 needs; it is never unmapped, so the
    // reference lives as long as the process.
    Ok(unsafe { &*ptr.cast::<Slots>() })
}

fn slots() -> &'static Slots {
    SHARED.get().copied().unwrap_or(&LOCAL)
}

fn record(event: &Event) {
    Tally::new(slots()).record(event);
}

/// Counts something the extension itself decided (an ID refused before
/// any step, a write refused in read-only mode).
pub fn count(event: &Event) {
    metrics::observe(event);
}

/// The pod's figures as they are now.
pub fn snapshot() -> Snapshot {
    Tally::new(slots()).snapshot()
}
