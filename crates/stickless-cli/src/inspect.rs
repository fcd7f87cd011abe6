//! One session's state, read in one round trip from its primary: the
//! stored value and its TTL, the lock and its lease, the waiters, and the
//! server's clock to judge them by.

use stickless::admin::RESERVED;
use stickless::{CorruptKind, SessionKeys};

use crate::error::{CliError, command};
use crate::nodes::Store;

/// Who holds a session's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// Nobody.
    Free,
    /// A request, whose lease has `lease_ms` left (it is renewed every
    /// third of `lock_ttl_ms` while the request runs).
    Held {
        /// The holder's token: a capability, never printed.
        token: String,
        /// Milliseconds left of the lease.
        lease_ms: i64,
    },
    /// Handed off, waiting for the woken waiter to claim it.
    Reserved {
        /// Milliseconds left of the claim window.
        claim_ms: i64,
    },
}

/// What one round trip told about a session.
pub struct SessionState {
    /// Its keys.
    pub keys: SessionKeys,
    /// The primary serving it.
    pub node: String,
    /// The stored value, if any.
    pub stored: Option<Vec<u8>>,
    /// `PTTL` of the data key (-2 missing, -1 no TTL).
    pub ttl_ms: i64,
    /// The lock.
    pub lock: Lock,
    /// Registered waiters still within their check-in time.
    pub waiters: usize,
    /// Registered waiters whose time is up (dead, or between two calls);
    /// the next hand-off forgets them.
    pub stale_waiters: usize,
    /// The server's clock, in Unix milliseconds.
    pub server_ms: u64,
}

impl SessionState {
    /// Whether there is anything of the session in Redis.
    pub fn exists(&self) -> bool {
        self.stored.is_some() || self.lock != Lock::Free || self.waiters > 0
    }
}

type Replies = (
    redis::RedisResult<Option<Vec<u8>>>,
    i64,
    Option<String>,
    i64,
    Vec<(String, f64)>,
    (u64, u64),
);

/// Reads the state of the session whose keys are `keys`.
pub fn read_keys(store: &mut Store, keys: SessionKeys) -> Result<SessionState, CliError> {
    let node = store.node_for(&keys.data())?;
    // All keys share the session's hash tag: one slot, one node, so one
    // pipeline (not a transaction: nothing needs to be atomic to look).
    let (stored, ttl_ms, lock, lock_ms, queue, (secs, micros)): Replies = redis::pipe()
        .cmd("GET")
        .arg(keys.data())
        .cmd("PTTL")
        .arg(keys.data())
        .cmd("GET")
        .arg(keys.lock())
        .cmd("PTTL")
        .arg(keys.lock())
        .cmd("ZRANGE")
        .arg(keys.queue())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .cmd("TIME")
        .ignore_errors()
        .query(&mut node.con)
        .map_err(|e| command(&node.name, &e))?;
    let stored = stored.map_err(|e| match e.code() {
        // GET of a hash, a list...: nothing stickless wrote.
        Some("WRONGTYPE") => CliError::Unreadable {
            key: keys.data(),
            kind: CorruptKind::Foreign,
        },
        _ => command(&node.name, &e),
    })?;
    let server_ms = secs * 1000 + micros / 1000;
    let lock = match lock {
        None => Lock::Free,
        Some(value) if value == RESERVED => Lock::Reserved { claim_ms: lock_ms },
        Some(token) => Lock::Held {
            token,
            lease_ms: lock_ms,
        },
    };
    // A waiter's score is the server time until which it counts as alive.
    let waiters = queue
        .iter()
        .filter(|(_, until)| *until > server_ms as f64)
        .count();
    Ok(SessionState {
        node: node.name.clone(),
        keys,
        stored,
        ttl_ms,
        lock,
        waiters,
        stale_waiters: queue.len() - waiters,
        server_ms,
    })
}
