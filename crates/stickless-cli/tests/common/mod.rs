//! Running the `stickless` binary and filling a store to look at.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::process::{Command, Output};
use std::time::Duration;

use stickless::{Config, OpenMode, Opened, SessionId, Store};

/// What one run of the command printed, and how it ended.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts exit status 0 and returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code,
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts exit status 1, a one-line `stickless:` message and no
    /// panic, and returns stderr.
    pub fn failed(self) -> String {
        assert_eq!(
            self.code,
            Some(1),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(self.stderr.starts_with("stickless: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self.stderr
    }

    /// stdout as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr)
        })
    }
}

/// Runs `stickless --url <url> <args>` (no `STICKLESS_URL` from outside).
pub fn stickless(url: &str, args: &[&str]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stickless"));
    cmd.env_remove("STICKLESS_URL")
        .arg("--url")
        .arg(url)
        .args(args);
    Ran::from(cmd.output().expect("run the stickless binary"))
}

/// Runs `stickless <args>` with the environment given.
pub fn stickless_env(env: &[(&str, &str)], args: &[&str]) -> Ran {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stickless"));
    cmd.env_remove("STICKLESS_URL").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ran::from(cmd.output().expect("run the stickless binary"))
}

/// A session ID of PHP's usual shape, distinct per `n`.
pub fn sid(n: usize) -> String {
    format!("clitest{n:019}abcdefgh")
}

/// A store for `url`.
pub fn store(url: &str) -> Store {
    Store::new(Config::parse(url).expect("test URL parses"))
}

/// Stores `payload` as session `id`, as PHP's first write would.
pub fn put(store: &mut Store, id: &str, payload: &[u8]) {
    let id = SessionId::parse(id).expect("test ID");
    store
        .create(&id, payload.to_vec(), Duration::from_secs(1440))
        .expect("create the session");
}

/// Locks session `id` and keeps the lease (the store's keeper renews it).
pub fn hold(store: &mut Store, id: &str) -> stickless::Lease {
    let id = SessionId::parse(id).expect("test ID");
    match store.lock(&id, OpenMode::CreateIfMissing).expect("lock") {
        Opened::Locked { lease, .. } => lease,
        other => panic!("expected the lock, got {other:?}"),
    }
}

/// Polls `probe` (bounded) until it returns true: waiting for a state the
/// test cannot be told about, such as a waiter that has registered.
pub fn until(what: &str, mut probe: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !probe() {
        assert!(std::time::Instant::now() < deadline, "never saw: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
