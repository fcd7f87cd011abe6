//! Metric names, label values and histogram buckets: one list, so the PHP
//! extension's `/metrics.php` and a Rust service's exporter agree.

use super::{Outcome, Step};
use crate::{Error, LostReason};

/// Requests that opened a session, by `outcome`.
pub const REQUESTS: &str = "stickless_requests_total";
/// Seconds a request waited for another request's lock (histogram).
pub const LOCK_WAIT: &str = "stickless_lock_wait_seconds";
/// Requests that gave up waiting after `lock_wait_ms`.
pub const LOCK_TIMEOUTS: &str = "stickless_lock_timeouts_total";
/// Requests opened read-only after `lock_wait_ms` (`on_lock_timeout=readonly`).
pub const READ_ONLY: &str = "stickless_read_only_fallbacks_total";
/// Writes refused because their lock was lost, by `reason`.
pub const REFUSED: &str = "stickless_fenced_refusals_total";
/// Writes applied after their lease lapsed, nobody having changed the session.
pub const LAPSED_WRITES: &str = "stickless_lapsed_writes_total";
/// Failures, by `kind`.
pub const ERRORS: &str = "stickless_errors_total";
/// Round trips to Redis made by requests (the keeper's renewals not counted).
pub const ROUND_TRIPS: &str = "stickless_round_trips_total";
/// Seconds per protocol step on Redis, by `step` (histogram).
pub const STEP: &str = "stickless_redis_step_seconds";
/// Bytes of session data read.
pub const BYTES_READ: &str = "stickless_read_bytes_total";
/// Bytes of session data written.
pub const BYTES_WRITTEN: &str = "stickless_written_bytes_total";
/// Sessions stored for the first time.
pub const CREATED: &str = "stickless_sessions_created_total";
/// Sessions destroyed.
pub const DESTROYED: &str = "stickless_sessions_destroyed_total";
/// `concurrency=merge`: changes of a key that another request changed too,
/// refused (one per key).
pub const MERGE_CONFLICTS: &str = "stickless_merge_conflicts_total";
/// `concurrency=merge`: writes replayed onto a value another request wrote
/// meanwhile.
pub const MERGE_REPLAYS: &str = "stickless_merge_replays_total";
/// `concurrency=merge`: requests that took the lock instead (references,
/// unreadable data, a layout the codec does not read).
pub const MERGE_FALLBACKS: &str = "stickless_merge_lock_fallbacks_total";

/// The `outcome` label of [`REQUESTS`], in the order of [`Outcome::ALL`].
pub const OUTCOMES: [&str; 7] = [
    "locked",
    "snapshot",
    "read_only",
    "lock_timeout",
    "missing",
    "error",
    "merge",
];

/// The `reason` label of [`REFUSED`]: the lease lapsed and another request
/// changed the session, or another request holds the lock now.
pub const REFUSAL_REASONS: [&str; 2] = ["lease_lapsed", "taken"];

/// The `kind` label of [`ERRORS`]. Lock timeouts and fenced refusals have
/// counters of their own and are not repeated here.
pub const ERROR_KINDS: [&str; 15] = [
    "invalid_id",
    "config",
    "unavailable",
    "too_many_waiters",
    "too_large",
    "collision",
    "destroy_locked",
    "not_replicated",
    "unreadable",
    "decode",
    "encode",
    "protocol",
    "entropy",
    "read_only_write",
    "merge_refused",
];

/// The `step` label of [`STEP`], in the order of [`Step::ALL`].
pub const STEPS: [&str; 9] = [
    "lock", "load", "commit", "touch", "release", "destroy", "create", "merge", "user",
];

/// Upper bounds of [`LOCK_WAIT`]'s buckets, in seconds: from a hand-off
/// (about a round trip) to the longest sensible `lock_wait_ms`.
pub const LOCK_WAIT_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of [`STEP`]'s buckets, in seconds: a loopback round trip
/// is ~50 µs, a budget ends a step at a few seconds.
pub const STEP_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 7] = [
        Self::Locked,
        Self::Snapshot,
        Self::ReadOnly,
        Self::LockTimeout,
        Self::Missing,
        Self::Error,
        Self::Merge,
    ];

    /// Position in [`OUTCOMES`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        OUTCOMES[self.index()]
    }
}

impl Step {
    /// Every step, in label order.
    pub const ALL: [Step; 9] = [
        Self::Lock,
        Self::Load,
        Self::Commit,
        Self::Touch,
        Self::Release,
        Self::Destroy,
        Self::Create,
        Self::Merge,
        Self::User,
    ];

    /// Position in [`STEPS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The `step` label.
    pub fn label(self) -> &'static str {
        STEPS[self.index()]
    }
}

/// Position of `reason` in [`REFUSAL_REASONS`].
pub fn refusal_index(reason: LostReason) -> usize {
    match reason {
        LostReason::Changed => 0,
        LostReason::Taken => 1,
    }
}

/// The `kind` label for `error`; None for the failures counted on their
/// own ([`LOCK_TIMEOUTS`], [`REFUSED`]).
pub fn error_kind(error: &Error) -> Option<&'static str> {
    Some(match error {
        Error::LockTimeout { .. } | Error::LockLost { .. } => return None,
        // A user ID is refused before any step, as a session ID is.
        Error::InvalidId(_) | Error::InvalidUser(_) => "invalid_id",
        Error::IndexNotUpdated { cause, .. } => return error_kind(cause),
        Error::Config(_) => "config",
        Error::Unavailable { .. } => "unavailable",
        Error::TooManyWaiters { .. } => "too_many_waiters",
        Error::TooLarge { .. } => "too_large",
        Error::Collision { .. } => "collision",
        Error::DestroyLocked { .. } => "destroy_locked",
        Error::NotReplicated { .. } => "not_replicated",
        Error::Unreadable { .. } => "unreadable",
        Error::Decode(_) | Error::Value(_) => "decode",
        Error::Encode(_) => "encode",
        Error::Protocol(_) => "protocol",
        Error::Entropy(_) => "entropy",
        Error::MergeRefused { .. } => "merge_refused",
    })
}

/// Position of `kind` in [`ERROR_KINDS`]; an unknown kind counts as `protocol`
/// rather than vanishing.
pub fn error_index(kind: &str) -> usize {
    ERROR_KINDS
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(PROTOCOL)
}

const PROTOCOL: usize = 11;
