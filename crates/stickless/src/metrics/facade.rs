//! The same events through the `metrics` facade, for Rust services: with an
//! exporter installed (Prometheus, StatsD, ...) they appear under the names
//! `/metrics.php` uses.

use metrics::{counter, histogram};

use super::names::*;
use super::{Event, Outcome};

pub(super) fn record(event: &Event) {
    match event {
        Event::Request(outcome) => {
            counter!(REQUESTS, "outcome" => outcome.label()).increment(1);
            match outcome {
                Outcome::LockTimeout => counter!(LOCK_TIMEOUTS).increment(1),
                Outcome::ReadOnly => counter!(READ_ONLY).increment(1),
                _ => {}
            }
        }
        Event::LockWait(waited) => histogram!(LOCK_WAIT).record(waited.as_secs_f64()),
        Event::Step {
            step,
            elapsed,
            round_trips,
        } => {
            counter!(ROUND_TRIPS).increment(*round_trips);
            histogram!(STEP, "step" => step.label()).record(elapsed.as_secs_f64());
        }
        Event::BytesRead(n) => counter!(BYTES_READ).increment(*n),
        Event::BytesWritten(n) => counter!(BYTES_WRITTEN).increment(*n),
        Event::Refused(reason) => {
            let reason = REFUSAL_REASONS[refusal_index(*reason)];
            counter!(REFUSED, "reason" => reason).increment(1);
        }
        Event::Error(kind) => counter!(ERRORS, "kind" => *kind).increment(1),
        Event::Created => counter!(CREATED).increment(1),
        Event::Destroyed => counter!(DESTROYED).increment(1),
        Event::LapsedWrite => counter!(LAPSED_WRITES).increment(1),
        Event::MergeConflicts(n) => counter!(MERGE_CONFLICTS).increment(*n),
        Event::MergeReplayed => counter!(MERGE_REPLAYS).increment(1),
        Event::MergeFallback => counter!(MERGE_FALLBACKS).increment(1),
    }
}
