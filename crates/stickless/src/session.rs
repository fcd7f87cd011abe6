//! The lock life-cycle as types: a [`Lease`] is a held lock, and every step
//! that ends the hold (commit, touch, release, destroy) takes it by value, so
//! a released lock cannot be used again. Both drivers walk these types; the
//! PHP hooks only decide which step to take.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::crypto::KeyRing;
use crate::envelope::Envelope;
use crate::error::{CorruptKind, Error};
use crate::keys::SessionKeys;
use crate::token::LockToken;

/// How [`Store::lock`](crate::Store::lock) treats a session that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Lock it anyway; the first write creates it.
    CreateIfMissing,
    /// Take no lock and report [`Opened::Missing`] (PHP's strict mode).
    RequireExisting,
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
    pub(crate) fn from_stored(stored: Option<Vec<u8>>, ring: Option<&KeyRing>, tag: &str) -> Self {
        match stored {
            None => Self::Empty,
            Some(bytes) => match Envelope::open(&bytes, ring, tag) {
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

/// A held lock on one session.
#[derive(Debug)]
pub struct Lease {
    pub(crate) keys: SessionKeys,
    pub(crate) token: LockToken,
    pub(crate) base: Option<Envelope>,
}

impl Lease {
    /// The hashed session key, for messages.
    pub fn session(&self) -> &str {
        self.keys.tag()
    }

    /// The envelope to store for `payload`.
    pub(crate) fn next_envelope(&self, payload: Vec<u8>) -> Envelope {
        let now = now_ms();
        match &self.base {
            Some(base) => base.next(payload, now),
            None => Envelope::new(payload, now),
        }
    }

    pub(crate) fn new(keys: SessionKeys, token: LockToken, loaded: &Loaded) -> Self {
        Self {
            keys,
            token,
            base: loaded.envelope().cloned(),
        }
    }
}

/// Result of opening a session for a request.
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
