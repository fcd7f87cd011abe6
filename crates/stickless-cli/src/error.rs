//! What a command can fail with. Each message says what happened and what
//! to do; none carries a session ID or a password.

use stickless::{ConfigError, CorruptKind, InvalidSessionId};

/// A failed command: printed as `stickless: <message>`, exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Neither `--url` nor `STICKLESS_URL`.
    #[error(
        "no store given: pass --url or set STICKLESS_URL, in session.save_path syntax (e.g. redis://127.0.0.1:6379/0?prefix=myapp:)"
    )]
    NoUrl,

    /// The URL does not parse.
    #[error("--url: {0}")]
    Url(#[from] ConfigError),

    /// The session ID is not one PHP would send.
    #[error("invalid session ID: {0}; pass the session cookie's value as it is")]
    Id(#[from] InvalidSessionId),

    /// A node could not be reached or refused the login.
    #[error(
        "{node}: cannot connect: {cause}; check that it runs and the URL's host, port, credentials and TLS settings"
    )]
    Connect {
        /// The node, as `host:port` or a socket path.
        node: String,
        /// What the client library reported.
        cause: String,
    },

    /// A command on a reachable node failed.
    #[error("{node}: {cause}")]
    Command {
        /// The node.
        node: String,
        /// What failed.
        cause: String,
    },

    /// No seed of a cluster answered `CLUSTER SLOTS`.
    #[error("no cluster node answered CLUSTER SLOTS ({tried}); check the seeds in the URL")]
    NoSlotMap {
        /// Each seed and why it failed.
        tried: String,
    },

    /// A slot that no primary serves.
    #[error(
        "no primary serves slot {slot}; the cluster is missing a shard (run `stickless check`)"
    )]
    SlotUnserved {
        /// The slot.
        slot: u16,
    },

    /// No sentinel named a primary for the service.
    #[error(
        "no sentinel names a primary for `{service}` ({tried}); check the sentinels and the service name in the URL"
    )]
    NoPrimary {
        /// The monitored service.
        service: String,
        /// Each sentinel and its answer.
        tried: String,
    },

    /// No session under this ID and prefix.
    #[error(
        "no session {tag} under prefix `{prefix}`: it expired, was destroyed, or the ID or the prefix (in --url) is not the one PHP uses"
    )]
    NotFound {
        /// The hashed tag.
        tag: String,
        /// The configured prefix.
        prefix: String,
    },

    /// The value under a session's key is not a readable session.
    #[error("{key} is unreadable: {kind}")]
    Unreadable {
        /// The data key.
        key: String,
        /// Why.
        kind: CorruptKind,
    },

    /// The envelope opened, but its payload is in no layout this build reads.
    #[error(
        "the session data of {tag} is not in {tried} format ({cause}); pass --serialize-handler, or --raw for the bytes"
    )]
    Undecodable {
        /// The hashed tag.
        tag: String,
        /// The layouts tried.
        tried: String,
        /// The first layout's error.
        cause: String,
    },

    /// A request holds the lock and `--force` was not given.
    #[error(
        "session {tag} is locked by a running request (lease {lease_ms} ms left); retry, or pass --force to delete it anyway (that request's write is then refused)"
    )]
    Locked {
        /// The hashed tag.
        tag: String,
        /// What is left of the holder's lease.
        lease_ms: i64,
    },

    /// Another request took the lock between our read and our action.
    #[error("session {tag} changed hands while this command ran; run it again")]
    Raced {
        /// The hashed tag.
        tag: String,
    },

    /// `check` found problems (they were printed).
    #[error("{0} problem(s) found")]
    Problems(usize),

    /// Writing the output failed (other than a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A node's command error, with the node named.
pub fn command(node: &str, e: &redis::RedisError) -> CliError {
    CliError::Command {
        node: node.to_owned(),
        cause: e.to_string(),
    }
}
