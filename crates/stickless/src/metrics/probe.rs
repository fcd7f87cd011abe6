//! Turns one driver step and its result into [`Event`]s, so both drivers
//! count the same things in the same way.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::names::error_kind;
use super::{Event, Outcome, Step, observe};
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
