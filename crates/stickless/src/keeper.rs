//! What keeps a lock honest while its request runs, sans-IO: the ledger of
//! held leases to renew and of tokens to abandon, and the [`Claim`] that ties
//! one token to it. Each driver runs the ledger's jobs in the background
//! (a thread for the blocking driver, a task for the async one), on
//! connections of its own.
//!
//! - A held lease is renewed every `lock_ttl_ms / 3` for as long as its
//!   [`Claim`] lives, so a long request never loses its lock, while a
//!   request that dies (SIGKILL, OOM, pod eviction) stops renewing with its
//!   process and frees the session within one lease.
//! - A claim dropped before its step settled it (the step got no reply, a
//!   future was cancelled, a lease was dropped without commit or release)
//!   becomes an orphan: its token is abandoned in the background as soon as
//!   the node answers, so no later request waits for a lock nobody holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use crate::keys::SessionKeys;
use crate::token::LockToken;

/// Orphans kept at most; more are left to their leases (oldest first).
const MAX_ORPHANS: usize = 64;
/// How long an orphan is retried: a server hung for longer than this runs
/// the request's late commands after every lease involved has lapsed anyway
/// (they are bounded by `lock_ttl_ms` from the moment they run, and the
/// void set outlives them).
const ORPHAN_HORIZON: Duration = Duration::from_secs(600);
/// Pause before a failed renewal or abandon is tried again. The I/O itself
/// is bounded by `budget_ms`, so this only keeps a refusing node from
/// being hammered.
pub(crate) const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// The longest a keeper sleeps before looking again. It never sleeps longer
/// than one renewal interval either: nothing is due sooner than an interval
/// after it is registered, so new leases need no wake-up.
const IDLE: Duration = Duration::from_secs(1);

/// One piece of background work.
#[derive(Debug, Clone)]
pub(crate) enum Job {
    /// Extend the lease of `token`.
    Renew(SessionKeys, LockToken),
    /// Clear whatever `token` may have left behind (`ABANDON`).
    Abandon(SessionKeys, LockToken),
}

struct Held {
    keys: SessionKeys,
    token: LockToken,
    next: Instant,
}

struct Orphan {
    keys: SessionKeys,
    token: LockToken,
    since: Instant,
    next: Instant,
}

/// Held leases and orphaned tokens, with when each is next due. A worker
/// holds one or two sessions at a time: a vector beats a map (no key to
/// allocate on every request).
#[derive(Default)]
pub(crate) struct Ledger {
    held: Vec<Held>,
    orphans: Vec<Orphan>,
}

impl Ledger {
    fn hold(&mut self, keys: &SessionKeys, token: &LockToken, next: Instant) {
        self.held.push(Held {
            keys: keys.clone(),
            token: token.clone(),
            next,
        });
    }

    fn forget(&mut self, token: &LockToken) {
        if let Some(i) = self.held.iter().position(|h| h.token == *token) {
            self.held.swap_remove(i);
        }
    }

    fn orphan(&mut self, keys: &SessionKeys, token: &LockToken, now: Instant) {
        self.forget(token);
        if self.orphans.len() >= MAX_ORPHANS {
            self.orphans.remove(0);
        }
        self.orphans.push(Orphan {
            keys: keys.clone(),
            token: token.clone(),
            since: now,
            next: now,
        });
    }

    /// Hands out what is due at `now`, each job once (its next time is
    /// pushed on by `every`), and how long until the next is due.
    pub fn take_due(&mut self, now: Instant, every: Duration) -> (Vec<Job>, Duration) {
        let mut jobs = Vec::new();
        self.orphans
            .retain(|o| now.saturating_duration_since(o.since) < ORPHAN_HORIZON);
        for o in &mut self.orphans {
            if o.next <= now {
                // Not again until it failed: `abandon_failed` reschedules.
                o.next = now + ORPHAN_HORIZON;
                jobs.push(Job::Abandon(o.keys.clone(), o.token.clone()));
            }
        }
        for h in &mut self.held {
            if h.next <= now {
                h.next = now + every;
                jobs.push(Job::Renew(h.keys.clone(), h.token.clone()));
            }
        }
        let next = self
            .held
            .iter()
            .map(|h| h.next)
            .chain(self.orphans.iter().map(|o| o.next))
            .min()
            .map_or(IDLE, |t| t.saturating_duration_since(now))
            .min(IDLE)
            .min(every);
        (jobs, next)
    }

    /// A renewal did not get through: try again shortly.
    pub fn renew_failed(&mut self, token: &LockToken, now: Instant) {
        if let Some(h) = self.held.iter_mut().find(|h| h.token == *token) {
            h.next = now + RETRY_PAUSE;
        }
    }

    /// The lock is not ours any more: stop renewing (the write will find
    /// out through its compare-and-set).
    pub fn lost(&mut self, token: &LockToken) {
        self.forget(token);
    }

    pub fn abandoned(&mut self, token: &LockToken) {
        self.orphans.retain(|o| o.token != *token);
    }

    pub fn abandon_failed(&mut self, token: &LockToken, now: Instant) {
        if let Some(o) = self.orphans.iter_mut().find(|o| o.token == *token) {
            o.next = now + RETRY_PAUSE;
        }
    }

    /// Leases being renewed and tokens waiting to be abandoned.
    pub fn counts(&self) -> (usize, usize) {
        (self.held.len(), self.orphans.len())
    }
}

/// The ledger shared between a store and its background keeper.
pub(crate) struct Keeping {
    ledger: Mutex<Ledger>,
    /// Wakes a blocking keeper thread.
    pub signal: Condvar,
    /// Wakes an async keeper task.
    #[cfg(feature = "tokio")]
    pub notify: tokio::sync::Notify,
    pub stop: AtomicBool,
    every: Duration,
}

impl Keeping {
    pub fn new(every: Duration) -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(Ledger::default()),
            signal: Condvar::new(),
            #[cfg(feature = "tokio")]
            notify: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
            every,
        })
    }

    /// The renewal interval.
    pub fn every(&self) -> Duration {
        self.every
    }

    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A panic while holding it leaves a ledger that is at worst missing
        // a renewal, which the compare-and-set on the write covers.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn wake(&self) {
        self.signal.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_one();
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent, not known to be held: abandoned if dropped.
    Pending,
    /// Held and renewed: abandoned if dropped.
    Held,
    /// A step got a definite reply: nothing left to do.
    Settled,
}

/// One token's standing with the keeper. A claim that is dropped while its
/// outcome is unknown (pending) or while it still holds the lock is handed
/// to the keeper to abandon; [`settle`](Self::settle) it once a step had a
/// definite reply.
pub struct Claim {
    keeping: Weak<Keeping>,
    keys: SessionKeys,
    token: LockToken,
    state: State,
    /// A claim inherited across `fork()` belongs to the parent's keeper,
    /// whose mutex may be locked forever in the child: never touch it.
    pid: u32,
}

impl Claim {
    /// A claim by process `pid` (the caller's, which it knows already:
    /// `getpid` is a system call on every use, and costs on the hot path).
    pub(crate) fn new(
        keeping: &Arc<Keeping>,
        keys: SessionKeys,
        token: LockToken,
        pid: u32,
    ) -> Self {
        Self {
            keeping: Arc::downgrade(keeping),
            keys,
            token,
            state: State::Pending,
            pid,
        }
    }

    /// The lock is ours: renew it from now on. Called in the step that made
    /// the claim, so in the process that made it.
    pub(crate) fn hold(&mut self) {
        if self.state == State::Pending
            && let Some(k) = self.keeping.upgrade()
        {
            k.ledger()
                .hold(&self.keys, &self.token, Instant::now() + k.every());
            self.state = State::Held;
        }
    }

    /// A step had a definite reply (the lock was released, handed on, or
    /// never taken): no renewal, nothing to abandon. `pid` is the process
    /// now running (a lease can be ended in a child forked after it was
    /// taken, which must not touch the parent's keeper).
    pub(crate) fn settle(&mut self, pid: u32) {
        if self.state == State::Held
            && pid == self.pid
            && let Some(k) = self.keeping.upgrade()
        {
            k.ledger().forget(&self.token);
        }
        self.state = State::Settled;
    }

    pub(crate) fn token(&self) -> &LockToken {
        &self.token
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.state == State::Settled {
            return;
        }
        if self.pid != std::process::id() {
            return;
        }
        if let Some(k) = self.keeping.upgrade() {
            k.ledger().orphan(&self.keys, &self.token, Instant::now());
            k.wake();
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("token", &self.token)
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;

    fn keys() -> SessionKeys {
        SessionKeys::derive("t:", &SessionId::parse("keeperkeeperkeeperkeeper").unwrap())
    }

    fn due(k: &Keeping, at: Instant) -> Vec<Job> {
        k.ledger().take_due(at, k.every()).0
    }

    #[test]
    fn a_held_claim_is_renewed_every_interval_until_settled() {
        let k = Keeping::new(Duration::from_millis(100));
        let mut claim = Claim::new(&k, keys(), LockToken::random().unwrap(), std::process::id());
        let start = Instant::now();
        assert!(
            due(&k, start + Duration::from_secs(1)).is_empty(),
            "pending"
        );
        claim.hold();
        assert!(due(&k, start).is_empty(), "renewed before the interval");
        let jobs = due(&k, start + Duration::from_millis(150));
        assert!(matches!(jobs.as_slice(), [Job::Renew(..)]), "{jobs:?}");
        // Handed out once per interval, not on every look.
        assert!(due(&k, start + Duration::from_millis(160)).is_empty());
        claim.settle(std::process::id());
        drop(claim);
        assert!(due(&k, start + Duration::from_secs(5)).is_empty());
        assert_eq!(k.ledger().counts(), (0, 0));
    }

    #[test]
    fn a_claim_dropped_unsettled_is_abandoned_until_that_succeeds() {
        let k = Keeping::new(Duration::from_millis(100));
        for hold in [false, true] {
            let mut claim =
                Claim::new(&k, keys(), LockToken::random().unwrap(), std::process::id());
            if hold {
                claim.hold();
            }
            let token = claim.token().clone();
            drop(claim);
            let now = Instant::now();
            let jobs = due(&k, now);
            assert!(
                matches!(jobs.as_slice(), [Job::Abandon(_, t)] if *t == token),
                "{jobs:?}"
            );
            assert_eq!(k.ledger().counts(), (0, 1), "no renewal for an orphan");
            k.ledger().abandon_failed(&token, now);
            assert!(due(&k, now).is_empty(), "retried at once");
            assert_eq!(due(&k, now + RETRY_PAUSE).len(), 1);
            k.ledger().abandoned(&token);
            assert_eq!(k.ledger().counts(), (0, 0));
        }
    }

    #[test]
    fn a_failed_renewal_is_retried_soon_and_a_lost_lock_is_dropped() {
        let k = Keeping::new(Duration::from_secs(1));
        let mut claim = Claim::new(&k, keys(), LockToken::random().unwrap(), std::process::id());
        claim.hold();
        let now = Instant::now() + Duration::from_secs(2);
        assert_eq!(due(&k, now).len(), 1);
        k.ledger().renew_failed(claim.token(), now);
        assert_eq!(due(&k, now + RETRY_PAUSE).len(), 1);
        k.ledger().lost(claim.token());
        assert_eq!(k.ledger().counts(), (0, 0));
        claim.settle(std::process::id());
    }

    #[test]
    fn the_next_wake_up_is_the_earliest_due_job() {
        let k = Keeping::new(Duration::from_millis(300));
        let (_, idle) = k.ledger().take_due(Instant::now(), k.every());
        assert_eq!(idle, k.every(), "an idle keeper looks once per interval");
        let mut claim = Claim::new(&k, keys(), LockToken::random().unwrap(), std::process::id());
        claim.hold();
        let (_, next) = k.ledger().take_due(Instant::now(), k.every());
        assert!(next <= Duration::from_millis(300), "{next:?}");
        claim.settle(std::process::id());
    }
}
