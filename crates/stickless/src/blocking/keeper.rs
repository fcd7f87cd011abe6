//! The blocking driver's keeper: one background thread per store, started
//! on the first lock (so after php-fpm's fork), with connections of its own.
//! It renews held leases and abandons orphaned tokens (see `crate::keeper`).
//!
//! A thread is the one thing that keeps running while PHP is blocked in a
//! slow query, a `sleep()` or an HTTP call; PHP offers no hook between a
//! script's statements. The thread never calls into PHP.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::link::Link;
use crate::cluster::slot;
use crate::config::Config;
use crate::keeper::{Claim, Job, Keeping};
use crate::keys::SessionKeys;
use crate::route::Op;
use crate::scripts;
use crate::steps;
use crate::token::LockToken;

pub(super) struct Keeper {
    keeping: Arc<Keeping>,
    config: Config,
    thread: Option<JoinHandle<()>>,
    /// The process that owns `keeping` and `thread` (see `Claim::pid`).
    pid: u32,
}

impl Keeper {
    pub fn new(config: &Config) -> Self {
        Self {
            keeping: Keeping::new(steps::renew_every(&config.settings)),
            config: config.clone(),
            thread: None,
            pid: std::process::id(),
        }
    }

    /// A claim on `token`, with the thread running to honour it.
    pub fn claim(&mut self, keys: SessionKeys, token: LockToken) -> Claim {
        let pid = std::process::id();
        self.ensure_running(pid);
        Claim::new(&self.keeping, keys, token, pid)
    }

    /// Leases being renewed and tokens waiting to be abandoned.
    pub fn counts(&self) -> (usize, usize) {
        self.keeping.ledger().counts()
    }

    /// New settings: the thread is replaced once nothing depends on it.
    pub fn reconfigure(&mut self, config: &Config) {
        if *config != self.config && self.counts() == (0, 0) {
            self.stop();
            *self = Self::new(config);
        }
    }

    fn ensure_running(&mut self, pid: u32) {
        if self.pid != pid {
            // Forked: the parent's thread does not exist here, and its
            // ledger's mutex may have been locked at the fork. Leave both.
            std::mem::forget(std::mem::replace(
                &mut self.keeping,
                Keeping::new(steps::renew_every(&self.config.settings)),
            ));
            std::mem::forget(self.thread.take());
            self.pid = pid;
        }
        if self.thread.is_none() {
            let keeping = Arc::clone(&self.keeping);
            let config = self.config.clone();
            // If the OS refuses a thread, leases are not renewed and lapse
            // after lock_ttl_ms; the compare-and-set on the write still
            // applies it when nobody else changed the session.
            self.thread = thread::Builder::new()
                .name("stickless-keeper".into())
                .spawn(move || run(&keeping, &config))
                .ok();
        }
    }

    fn stop(&mut self) {
        if self.pid != std::process::id() {
            return;
        }
        self.keeping.shut_down();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Keeper {
    /// Joins the thread: the PHP extension's code is unmapped after module
    /// shutdown, and a thread still sleeping in it would crash the process.
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(keeping: &Keeping, config: &Config) {
    let mut link = Link::new(config);
    let s = &config.settings;
    loop {
        let jobs = {
            let mut ledger = keeping.ledger();
            loop {
                if keeping.stopping() {
                    return;
                }
                let (jobs, next) = ledger.take_due(Instant::now(), keeping.every());
                if !jobs.is_empty() {
                    break jobs;
                }
                ledger = keeping
                    .signal
                    .wait_timeout(ledger, next)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            }
        };
        for job in jobs {
            if keeping.stopping() {
                return;
            }
            match job {
                Job::Renew(keys, token) => {
                    let call = steps::renew(&keys, &token, s);
                    let outcome = link
                        .run(slot(keys.tag()), Op::Script(&call))
                        .map_err(|_| ())
                        .and_then(|ran| scripts::parse_renewed(&ran.value).map_err(|_| ()));
                    let mut ledger = keeping.ledger();
                    match outcome {
                        Ok(true) => {}
                        Ok(false) => ledger.lost(&token),
                        Err(()) => ledger.renew_failed(&token, Instant::now()),
                    }
                }
                Job::Abandon(keys, token) => {
                    let call = steps::abandon(&keys, &token, s);
                    let outcome = link
                        .run(slot(keys.tag()), Op::Script(&call))
                        .map_err(|_| ())
                        .and_then(|ran| scripts::parse_done("abandon", &ran.value).map_err(|_| ()));
                    let mut ledger = keeping.ledger();
                    match outcome {
                        Ok(()) => ledger.abandoned(&token),
                        Err(()) => ledger.abandon_failed(&token, Instant::now()),
                    }
                }
            }
        }
    }
}
