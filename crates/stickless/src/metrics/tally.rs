//! Counters kept in a flat array of atomics, so that the array can live in
//! memory several processes share (the PHP extension maps it before
//! php-fpm forks), and their Prometheus text rendering.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::names::*;
use super::{Event, Outcome};

/// A histogram: one non-cumulative count per bucket, one for `+Inf`, then
/// the sum in nanoseconds (integers add up exactly in an atomic).
const fn histogram(buckets: usize) -> usize {
    buckets + 2
}

const REQ: usize = 0;
const WAIT: usize = REQ + OUTCOMES.len();
const TIMEOUTS: usize = WAIT + histogram(LOCK_WAIT_BUCKETS.len());
const READ_ONLY_AT: usize = TIMEOUTS + 1;
const REFUSED_AT: usize = READ_ONLY_AT + 1;
const LAPSED: usize = REFUSED_AT + REFUSAL_REASONS.len();
const ERR: usize = LAPSED + 1;
const TRIPS: usize = ERR + ERROR_KINDS.len();
const STEP_AT: usize = TRIPS + 1;
const STEP_LEN: usize = histogram(STEP_BUCKETS.len());
const READ: usize = STEP_AT + STEPS.len() * STEP_LEN;
const WRITTEN: usize = READ + 1;
const CREATED_AT: usize = WRITTEN + 1;
const DESTROYED_AT: usize = CREATED_AT + 1;
const WAITED: usize = DESTROYED_AT + 1;
const CONFLICTS_AT: usize = WAITED + 1;
const REPLAYS_AT: usize = CONFLICTS_AT + 1;
const FALLBACKS_AT: usize = REPLAYS_AT + 1;

/// How many `u64`s a [`Tally`] needs.
pub const SLOTS: usize = FALLBACKS_AT + 1;

/// Records [`Event`]s into `SLOTS` atomics that may be shared between
/// processes. Every update is one relaxed `fetch_add`: counters only go up,
/// and a scrape that sees one bucket a moment before another is still a
/// valid exposition.
#[derive(Clone, Copy)]
pub struct Tally<'a> {
    slots: &'a [AtomicU64; SLOTS],
}

impl<'a> Tally<'a> {
    /// A tally over `slots` (all zero for a fresh start).
    pub fn new(slots: &'a [AtomicU64; SLOTS]) -> Self {
        Self { slots }
    }

    fn add(&self, slot: usize, n: u64) {
        self.slots[slot].fetch_add(n, Relaxed);
    }

    fn observe(&self, at: usize, bounds: &[f64], value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = bounds
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(bounds.len());
        self.add(at + bucket, 1);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.add(at + bounds.len() + 1, nanos);
    }

    /// Counts `event`.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Request(outcome) => {
                self.add(REQ + outcome.index(), 1);
                match outcome {
                    Outcome::LockTimeout => self.add(TIMEOUTS, 1),
                    Outcome::ReadOnly => self.add(READ_ONLY_AT, 1),
                    _ => {}
                }
            }
            Event::LockWait(waited) => {
                self.observe(WAIT, &LOCK_WAIT_BUCKETS, *waited);
                if !waited.is_zero() {
                    self.add(WAITED, 1);
                }
            }
            Event::Step {
                step,
                elapsed,
                round_trips,
            } => {
                self.add(TRIPS, *round_trips);
                self.observe(STEP_AT + step.index() * STEP_LEN, &STEP_BUCKETS, *elapsed);
            }
            Event::BytesRead(n) => self.add(READ, *n),
            Event::BytesWritten(n) => self.add(WRITTEN, *n),
            Event::Refused(reason) => self.add(REFUSED_AT + refusal_index(*reason), 1),
            Event::Error(kind) => self.add(ERR + error_index(kind), 1),
            Event::Created => self.add(CREATED_AT, 1),
            Event::Destroyed => self.add(DESTROYED_AT, 1),
            Event::LapsedWrite => self.add(LAPSED, 1),
            Event::MergeConflicts(n) => self.add(CONFLICTS_AT, *n),
            Event::MergeReplayed => self.add(REPLAYS_AT, 1),
            Event::MergeFallback => self.add(FALLBACKS_AT, 1),
        }
    }

    /// The values as they are now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            values: std::array::from_fn(|i| self.slots[i].load(Relaxed)),
        }
    }
}

/// A copy of a [`Tally`]'s values, to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    values: [u64; SLOTS],
}

/// One row of [`Snapshot::rows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// For people (phpinfo()).
    pub label: String,
    /// For code (`stickless_stats()`).
    pub key: String,
    /// The value; durations in microseconds.
    pub value: u64,
}

struct Histogram<'a> {
    counts: &'a [u64],
    sum_nanos: u64,
}

impl Histogram<'_> {
    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Snapshot {
    fn get(&self, slot: usize) -> u64 {
        self.values[slot]
    }

    fn histogram(&self, at: usize, buckets: usize) -> Histogram<'_> {
        Histogram {
            counts: &self.values[at..=at + buckets],
            sum_nanos: self.values[at + buckets + 1],
        }
    }

    fn wait(&self) -> Histogram<'_> {
        self.histogram(WAIT, LOCK_WAIT_BUCKETS.len())
    }

    fn step(&self, index: usize) -> Histogram<'_> {
        self.histogram(STEP_AT + index * STEP_LEN, STEP_BUCKETS.len())
    }

    /// Requests with `outcome`.
    pub fn requests(&self, outcome: Outcome) -> u64 {
        self.get(REQ + outcome.index())
    }

    /// Round trips to Redis.
    pub fn round_trips(&self) -> u64 {
        self.get(TRIPS)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8192);
        let labelled = |out: &mut String, name, help, label, values: &[&str], at: usize| {
            header(out, name, help, "counter");
            for (i, value) in values.iter().enumerate() {
                let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {}", self.get(at + i));
            }
        };
        let single = |out: &mut String, name, help, at| {
            header(out, name, help, "counter");
            let _ = writeln!(out, "{name} {}", self.get(at));
        };
        labelled(
            &mut out,
            REQUESTS,
            "Requests that opened a session, by outcome.",
            "outcome",
            &OUTCOMES,
            REQ,
        );
        header(
            &mut out,
            LOCK_WAIT,
            "Seconds a request waited for a lock another request held.",
            "histogram",
        );
        buckets(&mut out, LOCK_WAIT, "", &LOCK_WAIT_BUCKETS, &self.wait());
        single(
            &mut out,
            LOCK_TIMEOUTS,
            "Requests that gave up waiting for a lock after lock_wait_ms.",
            TIMEOUTS,
        );
        single(
            &mut out,
            READ_ONLY,
            "Requests opened read-only after lock_wait_ms (on_lock_timeout=readonly).",
            READ_ONLY_AT,
        );
        labelled(
            &mut out,
            REFUSED,
            "Writes refused because their lock was lost: the lease lapsed and the session changed, or another request took the lock.",
            "reason",
            &REFUSAL_REASONS,
            REFUSED_AT,
        );
        single(
            &mut out,
            LAPSED_WRITES,
            "Writes applied after their lease lapsed, nobody having changed the session.",
            LAPSED,
        );
        labelled(
            &mut out,
            ERRORS,
            "Failures, by kind.",
            "kind",
            &ERROR_KINDS,
            ERR,
        );
        single(
            &mut out,
            ROUND_TRIPS,
            "Round trips to Redis made by requests.",
            TRIPS,
        );
        header(
            &mut out,
            STEP,
            "Seconds per protocol step on Redis, lock waits left out.",
            "histogram",
        );
        for (i, step) in STEPS.iter().enumerate() {
            let label = format!("step=\"{step}\",");
            buckets(&mut out, STEP, &label, &STEP_BUCKETS, &self.step(i));
        }
        single(&mut out, BYTES_READ, "Bytes of session data read.", READ);
        single(
            &mut out,
            BYTES_WRITTEN,
            "Bytes of session data written.",
            WRITTEN,
        );
        single(
            &mut out,
            CREATED,
            "Sessions stored for the first time.",
            CREATED_AT,
        );
        single(&mut out, DESTROYED, "Sessions destroyed.", DESTROYED_AT);
        single(
            &mut out,
            MERGE_CONFLICTS,
            "concurrency=merge: changes of a key another request changed too, refused (one per key).",
            CONFLICTS_AT,
        );
        single(
            &mut out,
            MERGE_REPLAYS,
            "concurrency=merge: writes replayed onto a value another request wrote meanwhile.",
            REPLAYS_AT,
        );
        single(
            &mut out,
            MERGE_FALLBACKS,
            "concurrency=merge: requests that took the lock instead (references, unreadable data).",
            FALLBACKS_AT,
        );
        out
    }

    /// Every figure as one row, for phpinfo() and `stickless_stats()`:
    /// the totals first (under the keys earlier versions had), then each
    /// label's own count.
    pub fn rows(&self) -> Vec<Row> {
        let row = |label: &str, key: &str, value| Row {
            label: label.to_owned(),
            key: key.to_owned(),
            value,
        };
        let opened = OUTCOMES.iter().enumerate().map(|(i, _)| self.get(REQ + i));
        let errors = (0..ERROR_KINDS.len()).map(|i| self.get(ERR + i)).sum();
        let steps: Vec<Histogram<'_>> = (0..STEPS.len()).map(|i| self.step(i)).collect();
        let micros = |nanos: u64| nanos / 1_000;
        let mut rows = vec![
            row("Sessions opened", "sessions_opened", opened.sum()),
            row("Lock waits", "lock_waits", self.get(WAITED)),
            row("Lock timeouts", "lock_timeouts", self.get(TIMEOUTS)),
            row("Errors", "errors", errors),
            row(
                "Writes after a lapsed lease",
                "lapsed_writes",
                self.get(LAPSED),
            ),
            row("Round trips", "round_trips", self.get(TRIPS)),
            row(
                "Read-only fallbacks",
                "read_only_fallbacks",
                self.get(READ_ONLY_AT),
            ),
            row(
                "Lock wait, total µs",
                "lock_wait_us",
                micros(self.wait().sum_nanos),
            ),
            row(
                "Redis steps",
                "redis_steps",
                steps.iter().map(Histogram::count).sum(),
            ),
            row(
                "Redis steps, total µs",
                "redis_step_us",
                micros(steps.iter().map(|h| h.sum_nanos).sum()),
            ),
            row("Bytes read", "bytes_read", self.get(READ)),
            row("Bytes written", "bytes_written", self.get(WRITTEN)),
            row("Sessions created", "sessions_created", self.get(CREATED_AT)),
            row(
                "Sessions destroyed",
                "sessions_destroyed",
                self.get(DESTROYED_AT),
            ),
            row("Merge conflicts", "merge_conflicts", self.get(CONFLICTS_AT)),
            row("Merge replays", "merge_replays", self.get(REPLAYS_AT)),
            row(
                "Merge lock fallbacks",
                "merge_lock_fallbacks",
                self.get(FALLBACKS_AT),
            ),
        ];
        for (i, outcome) in OUTCOMES.iter().enumerate() {
            rows.push(row(
                &format!("Requests: {outcome}"),
                &format!("requests_{outcome}"),
                self.get(REQ + i),
            ));
        }
        for (i, reason) in REFUSAL_REASONS.iter().enumerate() {
            rows.push(row(
                &format!("Refused writes: {reason}"),
                &format!("refused_{reason}"),
                self.get(REFUSED_AT + i),
            ));
        }
        for (i, kind) in ERROR_KINDS.iter().enumerate() {
            rows.push(row(
                &format!("Errors: {kind}"),
                &format!("errors_{kind}"),
                self.get(ERR + i),
            ));
        }
        rows
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A histogram's `_bucket` (cumulative), `_sum` and `_count` lines;
/// `labels` is empty or ends with a comma.
fn buckets(out: &mut String, name: &str, labels: &str, bounds: &[f64], h: &Histogram<'_>) {
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(h.counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
    }
    let total = h.count();
    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {total}");
    let braces = labels.trim_end_matches(',');
    let braces = if braces.is_empty() {
        String::new()
    } else {
        format!("{{{braces}}}")
    };
    // Seconds from integer nanoseconds: exact up to 2^53 ns (104 days of
    // summed time); beyond, the rounding is far below a scrape's interest.
    #[allow(clippy::cast_precision_loss)]
    let sum = h.sum_nanos as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {total}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LostReason;
    use crate::metrics::Step;

    fn fresh() -> &'static [AtomicU64; SLOTS] {
        Box::leak(Box::new([const { AtomicU64::new(0) }; SLOTS]))
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    }

    #[test]
    fn requests_are_counted_by_outcome_and_timeouts_on_their_own() {
        let tally = Tally::new(fresh());
        tally.record(&Event::Request(Outcome::Locked));
        tally.record(&Event::Request(Outcome::Locked));
        tally.record(&Event::Request(Outcome::LockTimeout));
        tally.record(&Event::Request(Outcome::ReadOnly));
        let text = tally.snapshot().prometheus();
        assert_eq!(
            line(&text, "stickless_requests_total{outcome=\"locked\"}"),
            "stickless_requests_total{outcome=\"locked\"} 2"
        );
        assert_eq!(
            line(&text, "stickless_lock_timeouts_total "),
            "stickless_lock_timeouts_total 1"
        );
        assert_eq!(
            line(&text, "stickless_read_only_fallbacks_total "),
            "stickless_read_only_fallbacks_total 1"
        );
        assert_eq!(tally.snapshot().requests(Outcome::Locked), 2);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_sum_in_seconds() {
        let tally = Tally::new(fresh());
        for ms in [0, 3, 3, 20_000] {
            tally.record(&Event::LockWait(Duration::from_millis(ms)));
        }
        let text = tally.snapshot().prometheus();
        assert!(
            text.contains("stickless_lock_wait_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_lock_wait_seconds_bucket{le=\"0.005\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_lock_wait_seconds_bucket{le=\"10\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_lock_wait_seconds_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_lock_wait_seconds_sum 20.006\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_lock_wait_seconds_count 4\n"),
            "{text}"
        );
        let waits = tally
            .snapshot()
            .rows()
            .into_iter()
            .find(|r| r.key == "lock_waits");
        assert_eq!(waits.map(|r| r.value), Some(3));
    }

    #[test]
    fn steps_are_labelled_and_add_their_round_trips() {
        let tally = Tally::new(fresh());
        tally.record(&Event::Step {
            step: Step::Commit,
            elapsed: Duration::from_micros(300),
            round_trips: 1,
        });
        tally.record(&Event::Step {
            step: Step::Lock,
            elapsed: Duration::from_micros(80),
            round_trips: 3,
        });
        let snap = tally.snapshot();
        let text = snap.prometheus();
        assert_eq!(snap.round_trips(), 4);
        assert!(
            text.contains(
                "stickless_redis_step_seconds_bucket{step=\"commit\",le=\"0.00025\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("stickless_redis_step_seconds_bucket{step=\"commit\",le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("stickless_redis_step_seconds_count{step=\"lock\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("stickless_round_trips_total 4\n"), "{text}");
    }

    #[test]
    fn refusals_errors_bytes_and_lifecycle_land_in_their_own_series() {
        let tally = Tally::new(fresh());
        tally.record(&Event::Refused(LostReason::Changed));
        tally.record(&Event::Refused(LostReason::Taken));
        tally.record(&Event::Refused(LostReason::Taken));
        tally.record(&Event::Error("unavailable"));
        tally.record(&Event::Error("no such kind"));
        tally.record(&Event::BytesRead(10));
        tally.record(&Event::BytesWritten(7));
        tally.record(&Event::Created);
        tally.record(&Event::Destroyed);
        let text = tally.snapshot().prometheus();
        for expected in [
            "stickless_fenced_refusals_total{reason=\"lease_lapsed\"} 1",
            "stickless_fenced_refusals_total{reason=\"taken\"} 2",
            "stickless_errors_total{kind=\"unavailable\"} 1",
            "stickless_errors_total{kind=\"protocol\"} 1",
            "stickless_read_bytes_total 10",
            "stickless_written_bytes_total 7",
            "stickless_sessions_created_total 1",
            "stickless_sessions_destroyed_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "{expected} missing from\n{text}"
            );
        }
        let errors = tally
            .snapshot()
            .rows()
            .into_iter()
            .find(|r| r.key == "errors");
        assert_eq!(errors.map(|r| r.value), Some(2));
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let text = Tally::new(fresh()).snapshot().prometheus();
        for name in [
            REQUESTS,
            LOCK_WAIT,
            LOCK_TIMEOUTS,
            READ_ONLY,
            REFUSED,
            LAPSED_WRITES,
            ERRORS,
            ROUND_TRIPS,
            STEP,
            BYTES_READ,
            BYTES_WRITTEN,
            CREATED,
            DESTROYED,
        ] {
            let types = text
                .lines()
                .filter(|l| l.starts_with(&format!("# TYPE {name} ")))
                .count();
            assert_eq!(types, 1, "{name}");
        }
    }
}
