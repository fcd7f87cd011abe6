//! Errors callers can match on. Each variant says what happened and, where
//! the caller can do something about it, what to do.

use std::time::Duration;

/// Why a session ID was refused. Never carries the ID itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSessionId {
    /// Empty, or longer than PHP's 256 characters.
    #[error("session ID has {len} characters; expected 1 to 256")]
    Length {
        /// Length of the refused ID.
        len: usize,
    },
    /// A byte outside `0-9 a-z A-Z , -`.
    #[error("session ID has a character outside 0-9a-zA-Z,- at position {position}")]
    Charset {
        /// Zero-based position of the first bad byte.
        position: usize,
    },
}

/// What is wrong with a stored value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKind {
    /// Not written by stickless (for instance a phpredis session or a hand-made key).
    #[error("the value was not written by stickless")]
    Foreign,
    /// Written by a newer stickless.
    #[error("envelope version {0} is not supported by this build; upgrade stickless")]
    UnsupportedVersion(u8),
    /// Uses a feature (compression, encryption) this build does not have.
    #[error("envelope flags {0:#x} are not supported by this build; upgrade stickless")]
    UnsupportedFlags(u32),
    /// Truncated or damaged.
    #[error("the envelope is damaged: {0}")]
    Malformed(String),
    /// Encrypted with a key that is not in the key ring.
    #[error("encrypted with key `{0}`, which is not in encryption_keys")]
    UnknownKey(String),
    /// Not encrypted, though encryption_keys are configured without `plain`.
    #[error(
        "stored unencrypted, but encryption_keys are configured; list `plain` after the keys while turning encryption on"
    )]
    Unencrypted,
    /// Encrypted, but this store has no keys.
    #[error("encrypted, but no encryption_keys are configured")]
    NoKeys,
    /// A compressed payload that does not decompress (damaged, or its
    /// length prefix does not match).
    #[error("its {codec}-compressed payload is damaged: {reason}")]
    Decompression {
        /// `zstd` or `lz4`.
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// A compressed payload that would expand past `max_size`: a damaged
    /// value, a decompression bomb, or a writer with a larger `max_size`.
    #[error(
        "its compressed payload expands to {size} bytes, over max_size {limit}; raise max_size if a writer with a larger one stored it"
    )]
    DecompressedTooLarge {
        /// The plain size the value claims.
        size: usize,
        /// This reader's `max_size`.
        limit: usize,
    },
    /// Authentication failed: tampered, truncated, or copied from another session.
    #[error("failed authentication: tampered with, truncated, or copied from another session")]
    Undecryptable,
}

/// Why a write was refused after its lock was lost.
///
/// A lease is renewed while its request runs, so this only happens when the
/// renewals could not reach Redis for a whole `lock_ttl_ms`. Even then a
/// write is applied when nobody changed the session since it was read; these
/// are the cases where applying it would lose someone else's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostReason {
    /// The lease lapsed and another request changed or destroyed the session
    /// since this one read it.
    Changed,
    /// The lease lapsed and another request holds the lock now.
    Taken,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Changed => {
                "the lock lapsed (its renewals did not reach Redis for lock_ttl_ms) and another request changed the session since it was read"
            }
            Self::Taken => {
                "the lock lapsed (its renewals did not reach Redis for lock_ttl_ms) and another request holds it now"
            }
        })
    }
}

/// Why a merge-mode write was refused as a whole (a key both requests
/// changed is refused on its own, see `Merged::conflicts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRefusal {
    /// Another request wrote meanwhile, and this request's data, or the data
    /// now stored, cannot be merged key by key: it holds references (`&`
    /// between session variables) or is not in the `serialize_handler`'s
    /// layout.
    Unmergeable,
    /// Other requests wrote on every try within `budget_ms`.
    Contended,
    /// The staged copy of the write was evicted before it could be moved
    /// into place, on every try (the server is at `maxmemory`).
    Evicted,
}

impl std::fmt::Display for MergeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unmergeable => {
                "another request changed the session meanwhile, and the data holds references or is not in the serialize_handler's layout, so the changes cannot be merged key by key; use concurrency=lock for requests that store references"
            }
            Self::Contended => {
                "other requests changed the session on every try within budget_ms; use concurrency=lock for this session's busiest requests"
            }
            Self::Evicted => {
                "its staged copy was evicted before it could be moved into place, on every try (the server is at maxmemory; raise it, or pick a maxmemory-policy that evicts no keys with a TTL)"
            }
        })
    }
}

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session ID is not acceptable; nothing was sent to Redis.
    #[error(transparent)]
    InvalidId(#[from] InvalidSessionId),

    /// A user ID or a session label is not acceptable; nothing was sent.
    #[error(transparent)]
    InvalidUser(#[from] crate::users::InvalidUser),

    /// The session was written, but its entry in its user's index could
    /// not be renewed: it may drop out of `user_sessions` (and escape a
    /// `logout_user`) until its next request renews it.
    #[error(
        "session {session} was saved, but its entry in user {user}'s session index was not renewed: {cause}"
    )]
    IndexNotUpdated {
        /// Hashed session key.
        session: String,
        /// Hashed user key.
        user: String,
        /// Why the index step failed.
        cause: Box<Error>,
    },

    /// The configuration (a save path, an option) is invalid; nothing was sent.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    /// Redis could not be reached or did not answer in time.
    #[error("{server}: {cause} (after {} ms)", elapsed.as_millis())]
    Unavailable {
        /// The server as configured (password redacted).
        server: String,
        /// What failed, from the client library.
        cause: String,
        /// Time spent on the failed step.
        elapsed: Duration,
    },

    /// Another request held the session's lock for longer than `lock_wait_ms`.
    #[error(
        "session {session} is locked by another request; gave up after {} ms (lock_wait_ms)",
        waited.as_millis()
    )]
    LockTimeout {
        /// Hashed session key.
        session: String,
        /// Time spent waiting.
        waited: Duration,
    },

    /// The write was refused because the lock was no longer ours.
    #[error("write to session {session} refused: {reason}")]
    LockLost {
        /// Hashed session key.
        session: String,
        /// What happened to the lock.
        reason: LostReason,
    },

    /// More requests already wait for this session than `max_waiters`.
    #[error(
        "session {session} already has {limit} requests waiting for its lock (max_waiters); refused without waiting"
    )]
    TooManyWaiters {
        /// Hashed session key.
        session: String,
        /// Configured limit.
        limit: u32,
    },

    /// The session is larger than `max_size`; stored data was left as it was.
    #[error("session {session} is {size} bytes, over max_size {limit}; the write was refused")]
    TooLarge {
        /// Hashed session key.
        session: String,
        /// Payload size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },

    /// A new session ID is already taken (only on a broken random source).
    #[error("session {session} already exists; refusing to overwrite it with a new session")]
    Collision {
        /// Hashed session key.
        session: String,
    },

    /// Another request holds the lock of a session this request tried to destroy.
    #[error("session {session} is locked by another request; not destroyed")]
    DestroyLocked {
        /// Hashed session key.
        session: String,
    },

    /// `durability=replica`: no replica acknowledged the write in time. The
    /// primary applied it, but it may be lost if the primary fails now.
    #[error(
        "write to session {session} reached the primary but no replica acknowledged it within {} ms (durability=replica); check the replicas' link to the primary",
        waited.as_millis()
    )]
    NotReplicated {
        /// Hashed session key.
        session: String,
        /// How long the write waited for a replica.
        waited: Duration,
    },

    /// The stored value is not a readable session (tampered, foreign, or
    /// sealed with a key no longer configured); it was left in place.
    #[error("session {session} is unreadable: {kind}")]
    Unreadable {
        /// Hashed session key.
        session: String,
        /// What is wrong with it.
        kind: CorruptKind,
    },

    /// The stored PHP session data could not be decoded (see [`crate::php`]).
    #[error("session data: {0}")]
    Decode(#[from] crate::php::DecodeError),

    /// A session could not be written in PHP's format.
    #[error("session data: {0}")]
    Encode(#[from] crate::php::EncodeError),

    /// A session entry does not fit the Rust type asked for, or the other way round.
    #[error("session entry: {0}")]
    Value(#[from] crate::php::ValueError),

    /// `concurrency=merge`: this request's write could not be merged with
    /// what another request wrote meanwhile; the stored value is the other
    /// request's.
    #[error("write to session {session} refused (concurrency=merge): {reason}")]
    MergeRefused {
        /// Hashed session key.
        session: String,
        /// Why.
        reason: MergeRefusal,
    },

    /// Redis answered something this protocol does not expect.
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),

    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Entropy(String),
}
