//! Turns one driver step and its result into [`Event`]s, so both drivers
//! count the same things in the same way.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::names::error_kind;
use super::{Event, Outcome, Step, observe};
use crate::merge::{Fallback, MergeBase, Merged};
use crate::{Committed, Error, Loaded, Opened};

/// A step being timed.
pub(crate) struct Probe {
    step: Step,
    started: Instant,
}

/// Round trips not reported yet, given a driver's running total `now` and
/// the total reported so far. Steps that overlap (the async driver's tasks,
/// a lock that releases inside itself) each report what was added since
/// the last report, so the reported trips add up to the running total.
pub(crate) fn unreported(reported: &AtomicU64, now: u64) -> u64 {
    now.saturating_sub(reported.fetch_max(now, Relaxed))
}

fn failed(error: &Error) {
    if let Some(kind) = error_kind(error) {
        observe(&Event::Error(kind));
    }
    if let Error::LockLost { reason, .. } = error {
        observe(&Event::Refused(*reason));
    }
}

fn loaded(loaded: &Loaded) {
    observe(&Event::BytesRead(loaded.payload().len() as u64));
    if let Loaded::Corrupt(_) = loaded {
        observe(&Event::Error("unreadable"));
    }
}

impl Probe {
    pub(crate) fn start(step: Step) -> Self {
        Self {
            step,
            started: Instant::now(),
        }
    }

    fn finish(self, waited: Duration, round_trips: u64) {
        observe(&Event::Step {
            step: self.step,
            elapsed: self.started.elapsed().saturating_sub(waited),
            round_trips,
        });
    }

    /// A lock step.
    pub(crate) fn opened(self, result: &Result<Opened, Error>, round_trips: u64) {
        let waited = match result {
            Ok(Opened::Locked {
                loaded: l, waited, ..
            }) => {
                observe(&Event::Request(Outcome::Locked));
                loaded(l);
                Some(*waited)
            }
            Ok(Opened::ReadOnly { loaded: l, waited }) => {
                observe(&Event::Request(Outcome::ReadOnly));
                loaded(l);
                Some(*waited)
            }
            Ok(Opened::Missing) => {
                observe(&Event::Request(Outcome::Missing));
                None
            }
            Err(Error::LockTimeout { waited, .. }) => {
                observe(&Event::Request(Outcome::LockTimeout));
                Some(*waited)
            }
            Err(e) => {
                observe(&Event::Request(Outcome::Error));
                failed(e);
                None
            }
        };
        if let Some(waited) = waited {
            observe(&Event::LockWait(waited));
        }
        self.finish(waited.unwrap_or_default(), round_trips);
    }

    /// A read without a lock.
    pub(crate) fn loaded(self, result: &Result<Loaded, Error>, round_trips: u64) {
        match result {
            Ok(l) => {
                observe(&Event::Request(Outcome::Snapshot));
                loaded(l);
            }
            Err(e) => {
                observe(&Event::Request(Outcome::Error));
                failed(e);
            }
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A write of `written` bytes; `new` when nothing was stored before.
    pub(crate) fn committed(
        self,
        result: &Result<Committed, Error>,
        written: usize,
        new: bool,
        round_trips: u64,
    ) {
        match result {
            Ok(how) => {
                observe(&Event::BytesWritten(written as u64));
                if new {
                    observe(&Event::Created);
                }
                if *how == Committed::AfterLapse {
                    observe(&Event::LapsedWrite);
                }
            }
            Err(e) => failed(e),
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A step of the user index: only its failure, time and round trips.
    pub(crate) fn finished<T>(self, result: &Result<T, Error>, round_trips: u64) {
        if let Err(e) = result {
            failed(e);
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A step with nothing to count but its failure: touch, release, and
    /// (`destroyed`) destroy and (`created`) create.
    pub(crate) fn done(self, result: &Result<(), Error>, round_trips: u64) {
        match (result, self.step) {
            (Ok(()), Step::Destroy) => observe(&Event::Destroyed),
            (Ok(()), _) => {}
            (Err(e), _) => failed(e),
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A merge-mode read: the base to merge against, or why the lock is
    /// taken instead (the lock step then counts the request).
    pub(crate) fn merge_read(
        self,
        result: &Result<Result<MergeBase, Fallback>, Error>,
        round_trips: u64,
    ) {
        match result {
            Ok(Ok(base)) => {
                observe(&Event::Request(Outcome::Merge));
                loaded(base.loaded());
            }
            Ok(Err(_)) => observe(&Event::MergeFallback),
            Err(e) => {
                observe(&Event::Request(Outcome::Error));
                failed(e);
            }
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A merge-mode write of `written` bytes; `new` when nothing was stored.
    pub(crate) fn merged(
        self,
        result: &Result<Merged, Error>,
        written: usize,
        new: bool,
        round_trips: u64,
    ) {
        match result {
            Ok(merged) => {
                if merged.written {
                    observe(&Event::BytesWritten(written as u64));
                    if new {
                        observe(&Event::Created);
                    }
                }
                if merged.replayed {
                    observe(&Event::MergeReplayed);
                }
                if !merged.conflicts.is_empty() {
                    observe(&Event::MergeConflicts(merged.conflicts.len() as u64));
                }
            }
            Err(e) => failed(e),
        }
        self.finish(Duration::ZERO, round_trips);
    }

    /// A new session stored without a lock.
    pub(crate) fn created(self, result: &Result<(), Error>, written: usize, round_trips: u64) {
        if result.is_ok() {
            observe(&Event::BytesWritten(written as u64));
            observe(&Event::Created);
        }
        if let Err(e) = result {
            failed(e);
        }
        self.finish(Duration::ZERO, round_trips);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::LostReason;
    use crate::metrics::set_sink;

    thread_local! {
        static SEEN: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
    }

    /// The events this thread's probes reported; other tests' threads keep
    /// their own.
    fn seen(run: impl FnOnce()) -> Vec<Event> {
        set_sink(|e| SEEN.with(|s| s.borrow_mut().push(e.clone())));
        SEEN.with(|s| s.borrow_mut().clear());
        run();
        SEEN.with(|s| s.take())
    }

    fn steps(events: &[Event]) -> Vec<(Step, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Step {
                    step, round_trips, ..
                } => Some((*step, *round_trips)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lock_timeout_is_a_request_outcome_with_its_wait_not_an_error() {
        let waited = Duration::from_millis(250);
        let events = seen(|| {
            let timeout = Err(Error::LockTimeout {
                session: "{t}".into(),
                waited,
            });
            Probe::start(Step::Lock).opened(&timeout, 2);
        });
        assert_eq!(events[0], Event::Request(Outcome::LockTimeout));
        assert_eq!(events[1], Event::LockWait(waited));
        assert!(
            !events.iter().any(|e| matches!(e, Event::Error(_))),
            "{events:?}"
        );
        assert_eq!(steps(&events), [(Step::Lock, 2)]);
    }

    #[test]
    fn a_refused_write_names_its_reason_and_counts_no_bytes() {
        let events = seen(|| {
            let refused = Err(Error::LockLost {
                session: "{t}".into(),
                reason: LostReason::Changed,
            });
            Probe::start(Step::Commit).committed(&refused, 10, true, 1);
        });
        assert!(
            events.contains(&Event::Refused(LostReason::Changed)),
            "{events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::BytesWritten(_) | Event::Created))
        );
    }

    #[test]
    fn a_failed_lock_counts_an_error_request_and_its_kind() {
        let events = seen(|| {
            let down = Err(Error::Unavailable {
                server: "redis://127.0.0.1:1/0".into(),
                cause: "refused".into(),
                elapsed: Duration::ZERO,
            });
            Probe::start(Step::Lock).opened(&down, 0);
        });
        assert_eq!(events[0], Event::Request(Outcome::Error));
        assert!(events.contains(&Event::Error("unavailable")), "{events:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::LockWait(_))));
    }

    #[test]
    fn overlapping_steps_report_each_round_trip_once() {
        let reported = AtomicU64::new(0);
        // An inner step reports first (the running total is 2), then the
        // outer one (3), then a late report of an older total (2).
        assert_eq!(unreported(&reported, 2), 2);
        assert_eq!(unreported(&reported, 3), 1);
        assert_eq!(unreported(&reported, 2), 0);
        assert_eq!(unreported(&reported, 5), 2);
    }
}
