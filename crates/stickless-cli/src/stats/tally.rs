//! The figures `stats` reports, gathered key by key, and how they print.

use serde_json::{Value as Json, json};
use stickless::admin::{FLAG_ENCRYPTED, is_compressed};

use crate::header::{Header, Peeked};
use crate::output::Table;
use crate::render::time;

/// Upper bounds of the TTL histogram's buckets, in milliseconds; a last
/// bucket holds everything longer.
const TTL_BOUNDS_MS: [u64; 7] = [
    60_000,
    300_000,
    900_000,
    3_600_000,
    21_600_000,
    86_400_000,
    604_800_000,
];

/// Everything counted in one scan.
#[derive(Debug, Default)]
pub struct Tally {
    /// Data keys (`<prefix>{tag}:data`).
    pub sessions: u64,
    /// Stored size of each, in bytes.
    sizes: Vec<u64>,
    /// Sessions per TTL bucket (`TTL_BOUNDS_MS`, then the rest).
    ttl: [u64; TTL_BOUNDS_MS.len() + 1],
    /// Data keys without a TTL (stickless always sets one).
    no_ttl: u64,
    encrypted: u64,
    compressed: u64,
    /// Data keys whose value is not an envelope this build reads.
    unreadable: u64,
    /// Locks held by a request.
    pub locked: u64,
    /// Locks reserved for a waiter during a hand-off.
    handing_over: u64,
    /// Live waiters over all sessions.
    waiters: u64,
    /// Keys under the prefix that are no session key at all.
    foreign_keys: u64,
    /// Sessions per primary.
    per_node: Vec<(String, u64)>,
    /// SCAN calls made, and keys they returned.
    scan_calls: u64,
    keys_seen: u64,
    /// Wall time of the scan.
    elapsed_ms: u64,
}

impl Tally {
    /// Starts counting the sessions of primary `name`.
    pub fn start_node(&mut self, name: &str) {
        self.per_node.push((name.to_owned(), 0));
    }

    /// One SCAN call that returned `keys` keys.
    pub fn scanned(&mut self, keys: usize) {
        self.scan_calls += 1;
        self.keys_seen += keys as u64;
    }

    /// A session's data key: its size, `PTTL` and header.
    pub fn session(&mut self, size: u64, ttl_ms: i64, header: Peeked) {
        self.sessions += 1;
        if let Some((_, n)) = self.per_node.last_mut() {
            *n += 1;
        }
        self.sizes.push(size);
        match u64::try_from(ttl_ms) {
            Ok(ms) => {
                let bucket = TTL_BOUNDS_MS
                    .iter()
                    .position(|&bound| ms < bound)
                    .unwrap_or(TTL_BOUNDS_MS.len());
                self.ttl[bucket] += 1;
            }
            // -1: no TTL. (-2, gone since SCAN returned it, is not counted.)
            Err(_) if ttl_ms == -1 => self.no_ttl += 1,
            Err(_) => {}
        }
        match header {
            Peeked::Envelope(Header { flags, .. }) => {
                if flags & FLAG_ENCRYPTED != 0 {
                    self.encrypted += 1;
                }
                if is_compressed(flags) {
                    self.compressed += 1;
                }
            }
            Peeked::Foreign | Peeked::Version(_) | Peeked::Damaged => self.unreadable += 1,
        }
    }

    /// A lock key's value.
    pub fn lock(&mut self, reserved: bool) {
        if reserved {
            self.handing_over += 1;
        } else {
            self.locked += 1;
        }
    }

    /// A queue key's live waiters.
    pub fn waiters(&mut self, live: u64) {
        self.waiters += live;
    }

    /// A key under the prefix that is none of a session's.
    pub fn foreign(&mut self) {
        self.foreign_keys += 1;
    }

    /// Records how long the scan took.
    pub fn finish(&mut self, elapsed_ms: u64) {
        self.elapsed_ms = elapsed_ms;
        self.sizes.sort_unstable();
    }

    /// The stored size at percentile `p` (nearest rank), 0 without sessions.
    fn percentile(&self, p: f64) -> u64 {
        if self.sizes.is_empty() {
            return 0;
        }
        let rank = (p / 100.0 * self.sizes.len() as f64).ceil() as usize;
        self.sizes[rank.clamp(1, self.sizes.len()) - 1]
    }

    fn share(&self, n: u64) -> f64 {
        if self.sessions == 0 {
            0.0
        } else {
            n as f64 / self.sessions as f64
        }
    }

    fn bucket_labels() -> Vec<(Option<u64>, String)> {
        let mut labels = Vec::new();
        let mut lower = None;
        for bound in TTL_BOUNDS_MS {
            let label = match lower {
                None => format!("under {}", time::span(bound)),
                Some(lower) => format!("{} - {}", time::span(lower), time::span(bound)),
            };
            labels.push((Some(bound), label));
            lower = Some(bound);
        }
        let lower = lower.unwrap_or(0);
        labels.push((None, format!("over {}", time::span(lower))));
        labels
    }

    /// The figures as JSON; the session count is the top-level `sessions`.
    pub fn to_json(&self) -> Json {
        let histogram: Vec<Json> = Self::bucket_labels()
            .into_iter()
            .zip(self.ttl)
            .map(|((bound, label), n)| json!({ "below_ms": bound, "label": label, "sessions": n }))
            .collect();
        json!({
            "sessions": self.sessions,
            "bytes": {
                "total": self.sizes.iter().sum::<u64>(),
                "p50": self.percentile(50.0),
                "p90": self.percentile(90.0),
                "p99": self.percentile(99.0),
                "max": self.sizes.last().copied().unwrap_or(0),
            },
            "locked": self.locked,
            "handing_over": self.handing_over,
            "waiters": self.waiters,
            "ttl_histogram": histogram,
            "no_ttl": self.no_ttl,
            "encrypted": self.encrypted,
            "encrypted_share": self.share(self.encrypted),
            "compressed": self.compressed,
            "compressed_share": self.share(self.compressed),
            "unreadable": self.unreadable,
            "foreign_keys": self.foreign_keys,
            "per_node": self.per_node.iter().map(|(node, n)| json!({ "node": node, "sessions": n })).collect::<Vec<_>>(),
            "scan": { "calls": self.scan_calls, "keys": self.keys_seen, "elapsed_ms": self.elapsed_ms },
        })
    }

    /// The figures for people.
    pub fn to_text(&self) -> String {
        let mut t = Table::default();
        let nodes = self
            .per_node
            .iter()
            .map(|(node, n)| format!("{node}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        t.row("sessions", format!("{} ({nodes})", self.sessions));
        t.row(
            "size",
            format!(
                "total {}; p50 {}, p90 {}, p99 {}, max {}",
                bytes(self.sizes.iter().sum()),
                bytes(self.percentile(50.0)),
                bytes(self.percentile(90.0)),
                bytes(self.percentile(99.0)),
                bytes(self.sizes.last().copied().unwrap_or(0)),
            ),
        );
        t.row(
            "locked now",
            format!(
                "{} held, {} being handed over, {} waiting for a lock",
                self.locked, self.handing_over, self.waiters
            ),
        );
        t.row(
            "encrypted",
            format!(
                "{} ({:.1} %)",
                self.encrypted,
                100.0 * self.share(self.encrypted)
            ),
        );
        t.row(
            "compressed",
            format!(
                "{} ({:.1} %)",
                self.compressed,
                100.0 * self.share(self.compressed)
            ),
        );
        if self.unreadable > 0 {
            t.row(
                "unreadable",
                format!(
                    "{} (not written by this stickless; `stickless show` says why)",
                    self.unreadable
                ),
            );
        }
        if self.foreign_keys > 0 {
            t.row(
                "other keys",
                format!(
                    "{} under the prefix that are no session's",
                    self.foreign_keys
                ),
            );
        }
        let widest = self.ttl.iter().copied().max().unwrap_or(0).max(1);
        for (i, ((_, label), n)) in Self::bucket_labels().into_iter().zip(self.ttl).enumerate() {
            let bar = "#".repeat((n * 40).div_ceil(widest) as usize);
            t.row(
                if i == 0 { "ttl" } else { "" },
                format!("{label:>22}  {n:>8}  {bar}"),
            );
        }
        if self.no_ttl > 0 {
            t.row("", format!("{:>22}  {:>8}", "no TTL", self.no_ttl));
        }
        t.row(
            "scanned",
            format!(
                "{} keys in {} SCAN calls, {}",
                self.keys_seen,
                self.scan_calls,
                time::span(self.elapsed_ms)
            ),
        );
        t.render()
    }
}

/// Bytes in B, kB, MB (powers of 1000).
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.1} GB", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u32) -> Peeked {
        Peeked::Envelope(Header {
            revision: 1,
            created_ms: 0,
            updated_ms: 0,
            flags,
        })
    }

    #[test]
    fn percentiles_and_buckets() {
        let mut t = Tally::default();
        t.start_node("n1");
        for size in 1..=100 {
            t.session(size, 30_000, header(0));
        }
        t.session(5000, 7_200_000, header(1));
        t.session(10, -1, Peeked::Foreign);
        t.finish(5);
        let j = t.to_json();
        assert_eq!(j["sessions"], 102);
        // 102 sizes: 1..=100, another 10 and 5000; the 51st smallest is 50.
        assert_eq!(j["bytes"]["p50"], 50);
        assert_eq!(j["bytes"]["max"], 5000);
        assert_eq!(j["ttl_histogram"][0]["sessions"], 100);
        assert_eq!(j["ttl_histogram"][4]["sessions"], 1);
        assert_eq!(j["no_ttl"], 1);
        assert_eq!(j["encrypted"], 1);
        assert_eq!(j["unreadable"], 1);
        assert_eq!(j["per_node"][0]["sessions"], 102);
    }

    #[test]
    fn an_empty_store_has_zero_everything() {
        let mut t = Tally::default();
        t.finish(0);
        let j = t.to_json();
        assert_eq!(j["sessions"], 0);
        assert_eq!(j["bytes"]["p99"], 0);
        assert_eq!(j["encrypted_share"], 0.0);
        assert!(t.to_text().contains("sessions"));
    }
}
