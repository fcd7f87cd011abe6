//! Redis server time per fenced commit, by payload size: what one locked
//! write costs the server, on the server the measurement starts.
//!
//! ```text
//! cargo bench -p stickless --bench commit_server_time
//! STICKLESS_REDIS_SERVER=/usr/bin/valkey-server cargo bench -p stickless --bench commit_server_time
//! ```
//!
//! For each size, in each of `ROUNDS` rounds, `SESSIONS` sessions are
//! locked first, then only their commits run between two readings of
//! `INFO commandstats` and `INFO cpu`, so the differences cover the commits
//! and nothing else. Printed per commit:
//!
//! - `server µs`: the commandstats time of the commands the client sent
//!   (`evalsha`, and `set` when the script itself does not call `SET`,
//!   as the staged commit's does not). A script's own `redis.call`s are
//!   inside its `evalsha` time, so they are not added again.
//! - `cpu µs`: the server process's user + system CPU (`used_cpu_*` in
//!   `INFO cpu`), which adds reading the request off the socket and the
//!   event loop: what the machine pays.
//! - the same for a plain `SET data` + `DEL lock` pipeline of the same value,
//!   the floor no fenced write can go under.
//!
//! The server is started on a free loopback port (never 6379) through the
//! integration tests' helper and killed by its PID when done.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use stickless::{Config, OpenMode, Opened, SessionId, Store};
use support::RedisServer;

const SIZES: [(usize, &str); 4] = [
    (100, "100 B"),
    (1_024, "1 KB"),
    (4_096, "4 KB"),
    (65_536, "64 KB"),
];
/// Sessions locked, then committed, per round.
const SESSIONS: usize = 500;
const ROUNDS: usize = 10;
const TTL: Duration = Duration::from_secs(1440);

fn main() {
    // `cargo test --benches` runs every bench once as a smoke test: keep it short.
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { ROUNDS } else { 1 };
    let binary =
        std::env::var("STICKLESS_REDIS_SERVER").unwrap_or_else(|_| "/usr/bin/redis-server".into());
    if !Path::new(&binary).exists() {
        eprintln!(
            "commit_server_time: skipped, no server at {binary} (set STICKLESS_REDIS_SERVER)"
        );
        return;
    }
    let server = RedisServer::start();
    let mut con = server.client();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut con)
        .expect("INFO server");
    let version = field(&info, "valkey_version").map_or_else(
        || format!("Redis {}", field(&info, "redis_version").unwrap_or("?")),
        |v| format!("Valkey {v}"),
    );
    println!(
        "{version} ({binary}), {} commits per size",
        rounds * SESSIONS
    );
    println!("| payload | commit server µs | commit cpu µs | SET+DEL server µs | SET+DEL cpu µs |");
    println!("|---|---|---|---|---|");
    let mut store = Store::new(
        Config::parse(&format!("{}?prefix=bench:", server.url())).expect("benchmark URL parses"),
    );
    for (size, label) in SIZES {
        let body = vec![b'x'; size];
        let (commit_usec, commit_cpu) = commits_cost(&mut store, &mut con, &body, rounds, size);
        let (raw_usec, raw_cpu) = raw_cost(&mut con, &body, rounds);
        println!("| {label} | {commit_usec:.1} | {commit_cpu:.1} | {raw_usec:.1} | {raw_cpu:.1} |");
        let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    }
    drop(server);
}

/// Server time and CPU per commit of `body`: `rounds` rounds of locking
/// `SESSIONS` sessions, then committing them while the counters run.
fn commits_cost(
    store: &mut Store,
    con: &mut redis::Connection,
    body: &[u8],
    rounds: usize,
    size: usize,
) -> (f64, f64) {
    let mut cost = Cost::default();
    for _ in 0..rounds {
        let leases: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let id = SessionId::parse(&format!("commit-server-time-{size:06}-{i:08}"))
                    .expect("valid ID");
                match store.lock(&id, OpenMode::CreateIfMissing).expect("lock") {
                    Opened::Locked { lease, .. } => lease,
                    other => panic!("expected a lock, got {other:?}"),
                }
            })
            .collect();
        let before = Sample::take(con);
        for lease in leases {
            store.commit(lease, body.to_vec(), TTL).expect("commit");
        }
        cost.add(&before, &Sample::take(con), &["evalsha", "set"]);
    }
    cost.per(rounds * SESSIONS)
}

/// A plain `SET` + `DEL` pipeline of the same value per session.
fn raw_cost(con: &mut redis::Connection, body: &[u8], rounds: usize) -> (f64, f64) {
    let mut cost = Cost::default();
    for _ in 0..rounds {
        let before = Sample::take(con);
        for i in 0..SESSIONS {
            let _: () = redis::pipe()
                .cmd("SET")
                .arg(format!("raw:{i}"))
                .arg(body)
                .arg("PX")
                .arg(1_440_000)
                .ignore()
                .cmd("DEL")
                .arg(format!("raw:{i}:lock"))
                .ignore()
                .query(con)
                .expect("SET + DEL");
        }
        cost.add(&before, &Sample::take(con), &["set", "del"]);
    }
    cost.per(rounds * SESSIONS)
}

/// The server's counters at one moment.
struct Sample {
    commandstats: String,
    cpu: f64,
}

impl Sample {
    fn take(con: &mut redis::Connection) -> Self {
        let cpu: String = redis::cmd("INFO").arg("cpu").query(con).expect("INFO cpu");
        let commandstats = redis::cmd("INFO")
            .arg("commandstats")
            .query(con)
            .expect("INFO commandstats");
        Self {
            commandstats,
            cpu: ["used_cpu_user", "used_cpu_sys"]
                .iter()
                .filter_map(|k| field(&cpu, k)?.parse::<f64>().ok())
                .sum(),
        }
    }
}

/// Server µs and CPU seconds summed over rounds.
#[derive(Default)]
struct Cost {
    usec: f64,
    cpu: f64,
}

impl Cost {
    /// Adds what happened between two samples: the time of the commands
    /// the client sent (`sent`). A `SET` counts only when none ran inside a
    /// script (no `rename` means the old commit, whose script wrote with
    /// `SET`, inside its own `evalsha` time).
    fn add(&mut self, before: &Sample, after: &Sample, sent: &[&str]) {
        let delta = |name: &str, key: &str| {
            stat(&after.commandstats, name, key) - stat(&before.commandstats, name, key)
        };
        let scripted_set = sent.contains(&"evalsha") && delta("rename", "calls") == 0.0;
        for name in sent {
            if *name == "set" && scripted_set {
                continue;
            }
            self.usec += delta(name, "usec");
        }
        self.cpu += after.cpu - before.cpu;
    }

    fn per(&self, n: usize) -> (f64, f64) {
        (self.usec / n as f64, self.cpu * 1e6 / n as f64)
    }
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// `cmdstat_<name>:calls=..,usec=..,...`, one of its numbers (0 when the
/// command has not run).
fn stat(stats: &str, name: &str, key: &str) -> f64 {
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:")))
        .and_then(|line| {
            line.split(',')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
