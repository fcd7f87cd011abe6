//! What the store reports about itself, under one set of names for every
//! front end.
//!
//! The drivers describe each step as [`Event`]s and hand them to
//! [`observe`]. Where they go is the embedder's choice:
//!
//! - a sink set with [`set_sink`], once per process: the PHP extension
//!   records into a [`Tally`] that every php-fpm worker of a pod shares, and
//!   renders it with [`Snapshot::prometheus`];
//! - with the `metrics` feature, the [`metrics`](https://docs.rs/metrics)
//!   facade, under the same names, so any exporter a Rust service installs
//!   picks them up.
//!
//! ```
//! use std::sync::atomic::AtomicU64;
//! use stickless::metrics::{Event, Outcome, SLOTS, Tally};
//!
//! static SLOT_VALUES: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
//! let tally = Tally::new(&SLOT_VALUES);
//! tally.record(&Event::Request(Outcome::Locked));
//! assert!(tally.snapshot().prometheus().contains(r#"stickless_requests_total{outcome="locked"} 1"#));
//! ```

#[cfg(feature = "metrics")]
mod facade;
pub mod names;
mod probe;
mod tally;

use std::sync::OnceLock;
use std::time::Duration;

use crate::LostReason;

pub(crate) use probe::{Probe, unreported};
pub use tally::{Row, SLOTS, Snapshot, Tally};

/// One thing worth counting, as a driver saw it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A request opened a session (locked, or read without a lock).
    Request(Outcome),
    /// How long a request waited for a lock held by another one (zero when
    /// the lock was free); only for requests that asked for the lock.
    LockWait(Duration),
    /// One protocol step: its time on Redis (lock waits left out) and the
    /// round trips it took.
    Step {
        /// Which step.
        step: Step,
        /// Time spent, not counting a wait for another request's lock.
        elapsed: Duration,
        /// Round trips to Redis.
        round_trips: u64,
    },
    /// Session data read (bytes of the PHP payload).
    BytesRead(u64),
    /// Session data written (bytes of the PHP payload).
    BytesWritten(u64),
    /// A write refused because its lock was lost.
    Refused(LostReason),
    /// A failure, by kind (one of [`names::ERROR_KINDS`]).
    Error(&'static str),
    /// A session was stored for the first time.
    Created,
    /// A session was destroyed.
    Destroyed,
    /// A write applied after its lease lapsed, because nobody had changed
    /// the session meanwhile.
    LapsedWrite,
    /// `concurrency=merge`: this many keys that another request changed too
    /// were left as that request wrote them.
    MergeConflicts(u64),
    /// `concurrency=merge`: a write replayed onto another request's.
    MergeReplayed,
    /// `concurrency=merge`: a request took the lock instead.
    MergeFallback,
}

/// How a request's session opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Locked and read.
    Locked,
    /// Read without a lock (`read_and_close`, [`crate::Store::load`]).
    Snapshot,
    /// Opened read-only after `lock_wait_ms` (`on_lock_timeout=readonly`).
    ReadOnly,
    /// Gave up after `lock_wait_ms`.
    LockTimeout,
    /// Asked for an existing session that does not exist (strict mode).
    Missing,
    /// Failed (see the `errors` by kind).
    Error,
    /// Read without a lock to merge its changes (`concurrency=merge`).
    Merge,
}

/// The protocol steps, as the step latency histogram labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Lock and read.
    Lock,
    /// Read without a lock.
    Load,
    /// Fenced write and release.
    Commit,
    /// Lifetime renewal and release.
    Touch,
    /// Release without a write.
    Release,
    /// Delete.
    Destroy,
    /// Store a new session without a lock.
    Create,
    /// A merge-mode write: compare-and-set, replayed on conflict.
    Merge,
    /// The index of sessions per user: bind, list, log out.
    User,
}

type Sink = fn(&Event);

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends every later [`Event`] of this process to `sink` as well. Only the
/// first call takes effect (false after that): a sink is the process's
/// choice, made at start-up. `sink` runs on the request's own thread, in
/// the middle of a step: it must be quick and must not panic.
pub fn set_sink(sink: fn(&Event)) -> bool {
    SINK.set(sink).is_ok()
}

/// Reports `event` to the sink and, with the `metrics` feature, to the
/// `metrics` facade.
pub fn observe(event: &Event) {
    if let Some(sink) = SINK.get() {
        sink(event);
    }
    #[cfg(feature = "metrics")]
    facade::record(event);
}
