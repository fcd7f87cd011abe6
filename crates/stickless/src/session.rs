//! The lock life-cycle as types: a [`Lease`] is a held lock, and every step
//! that ends the hold (commit, touch, release, destroy) takes it by value, so
//! a released lock cannot be used again. Both drivers walk these types; the
//! PHP hooks only decide which step to take.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::envelope::{Envelope, Sealing};
use crate::error::{CorruptKind, Error};
use crate::keeper::Claim;
use crate::keys::SessionKeys;
use crate::token::LockToken;
use crate::users::UserKeys;

/// How [`Store::lock`](crate::Store::lock) treats a session that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Lock it anyway; the first write creates it.
    CreateIfMissing,
    /// Take no lock and report [`Opened::Missing`] (PHP's strict mode).
    RequireExisting,
    /// An ID this process just drew from the CSPRNG: lock it (its cookie may
    /// reach the browser before the request ends, and the next request must
    /// wait for this one), and refuse it with [`Error::Collision`] if it is
    /// somehow taken already (only on a broken random source).
    New,
}

/// What a stored value turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// Nothing stored.
    Empty,
    /// A valid envelope.
    Data(Envelope),
    /// Something unreadable; it is left in place until the application writes.
    Corrupt(CorruptKind),
}

impl Loaded {
    pub(crate) fn from_stored(stored: Option<&[u8]>, how: &Sealing<'_>, tag: &str) -> Self {
        match stored {
            None => Self::Empty,
            Some(bytes) => match Envelope::open(bytes, how, tag) {
                Ok(env) => Self::Data(env),
                Err(kind) => Self::Corrupt(kind),
            },
        }
    }

    /// The PHP payload; empty for an empty or corrupt session.
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::Data(env) => &env.payload,
            Self::Empty | Self::Corrupt(_) => &[],
        }
    }

    /// The envelope the next write builds on.
    fn envelope(&self) -> Option<&Envelope> {
        match self {
            Self::Data(env) => Some(env),
            Self::Empty | Self::Corrupt(_) => None,
        }
    }
}

/// Bytes of the stored value a lease remembers: the envelope's magic,
/// revision and timestamps always fit, so comparing them tells whether
/// anyone wrote since (see `COMMIT`).
pub(crate) const STAMP_LEN: usize = 32;

/// A held lock on one session. It is renewed in the background for as long
/// as it lives; dropped without commit, touch, release or destroy, it is
/// released in the background too.
#[derive(Debug)]
pub struct Lease {
    pub(crate) keys: SessionKeys,
    pub(crate) token: LockToken,
    pub(crate) base: Option<Envelope>,
    /// The start of the stored value as read (empty: nothing was stored).
    pub(crate) stamp: Vec<u8>,
    /// When the stored value expires, as the lock step saw it; `None` when
    /// nothing was stored or it has no expiry.
    pub(crate) expires: Option<Instant>,
    pub(crate) claim: Claim,
    /// The session was moved in from the old handler's key by this lock.
    pub(crate) imported: bool,
    /// The user this session is bound to, if any.
    pub(crate) user: Option<UserKeys>,
    /// Whether the stored envelope already names [`Self::user`]; if not,
    /// the session must be written (a touch becomes a commit).
    pub(crate) user_stored: bool,
}

impl Lease {
    /// The hashed session key, for messages.
    pub fn session(&self) -> &str {
        self.keys.tag()
    }

    /// Whether a value was stored when the lock was taken (a new session's
    /// first write must store even an empty payload).
    pub fn was_stored(&self) -> bool {
        !self.stamp.is_empty()
    }

    /// The envelope to store for `payload`.
    pub(crate) fn next_envelope(&self, payload: Vec<u8>) -> Envelope {
        let now = now_ms();
        let mut env = match &self.base {
            Some(base) => base.next(payload, now),
            None => Envelope::new(payload, now),
        };
        env.user = self.user.as_ref().map(|u| u.hex().to_owned());
        env
    }

    /// Unix ms the session was first written; now for a new one.
    pub fn created_ms(&self) -> u64 {
        self.base.as_ref().map_or_else(now_ms, |b| b.created_ms)
    }

    /// Whether the session is bound to a user (see
    /// [`Store::bind_user`](crate::Store::bind_user)).
    pub fn is_bound(&self) -> bool {
        self.user.is_some()
    }

    /// Binding to `user` that the stored envelope does not name yet: the
    /// session must be written at its end even if unchanged.
    pub(crate) fn bind(&mut self, user: UserKeys) {
        if self.user.as_ref() != Some(&user) {
            self.user = Some(user);
            self.user_stored = false;
        }
    }

    /// Whether ending this lease needs a write although PHP's data is
    /// unchanged: a binding the stored value does not carry yet.
    pub fn needs_write(&self) -> bool {
        self.user.is_some() && !self.user_stored
    }

    /// The payload as read, to write back unchanged.
    pub(crate) fn read_payload(&self) -> Vec<u8> {
        self.base
            .as_ref()
            .map_or_else(Vec::new, |b| b.payload.clone())
    }

    /// A lease on what `stored` held; `claim` starts renewing it.
    pub(crate) fn new(
        keys: SessionKeys,
        mut claim: Claim,
        stored: Option<&[u8]>,
        loaded: &Loaded,
    ) -> Self {
        claim.hold();
        let stamp = stored.map_or_else(Vec::new, |b| b[..b.len().min(STAMP_LEN)].to_vec());
        let base = loaded.envelope().cloned();
        let user = base
            .as_ref()
            .and_then(|b| b.user.as_deref())
            .and_then(|hex| UserKeys::from_stored(keys.prefix(), hex));
        Self {
            user_stored: user.is_some(),
            user,
            keys,
            token: claim.token().clone(),
            base,
            stamp,
            expires: None,
            claim,
            imported: false,
        }
    }

    /// Whether taking this lock moved the session in from the old
    /// handler's key (`import=...`).
    pub fn imported(&self) -> bool {
        self.imported
    }

    /// Notes that the value read had `ttl_left` of its lifetime (none:
    /// unknown, refreshed at the next touch).
    pub(crate) fn expiring_in(mut self, ttl_left: Option<Duration>) -> Self {
        self.expires = ttl_left
            .filter(|_| self.was_stored())
            .map(|left| Instant::now() + left);
        self
    }

    /// Whether an unchanged session's lifetime must be set to `ttl` again:
    /// skipping it must cost no more than `interval` of it (and at most
    /// half), so an idle user is logged out no earlier than `ttl - interval`
    /// after their last request. A value of unknown expiry is refreshed.
    pub(crate) fn needs_refresh(&self, ttl: Duration, interval: Duration) -> bool {
        let Some(expires) = self.expires else {
            return true;
        };
        let left = expires.saturating_duration_since(Instant::now());
        left + interval.min(ttl / 2) < ttl
    }

    /// The step that ended this lease had a definite reply; `pid` is the
    /// process running it.
    pub(crate) fn settle(mut self, pid: u32) {
        self.claim.settle(pid);
    }
}

/// How a write was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// While the lease was held: the usual case.
    UnderLock,
    /// After the lease had lapsed (its renewals could not reach Redis), because
    /// nobody had changed the session since it was read: a compare-and-set
    /// on the revision.
    AfterLapse,
}

/// Result of opening a session for a request.
// Returned once per request and matched at once: boxing the lease would buy
// an allocation and nothing else.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Opened {
    /// The lock is ours.
    Locked {
        /// The held lock; end it with commit, touch, release or destroy.
        lease: Lease,
        /// What was stored.
        loaded: Loaded,
        /// Time spent waiting for other requests; zero when the lock was free.
        waited: Duration,
    },
    /// [`OpenMode::RequireExisting`] and nothing is stored; no lock was taken.
    Missing,
    /// The lock wait ran out with `on_lock_timeout=readonly`: the current data,
    /// without a lock.
    ReadOnly {
        /// What was stored.
        loaded: Loaded,
        /// Time spent waiting.
        waited: Duration,
    },
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Checks a payload against `max_size` before anything is sent.
pub(crate) fn check_size(keys: &SessionKeys, payload: &[u8], limit: usize) -> Result<(), Error> {
    if payload.len() > limit {
        return Err(Error::TooLarge {
            session: keys.tag().to_owned(),
            size: payload.len(),
            limit,
        });
    }
    Ok(())
}
