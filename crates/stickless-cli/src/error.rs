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

    /// The session's slot is being moved between nodes (resharding).
    #[error(
        "{node}: {slot} is moving or has moved to {to} (the cluster is being resharded); nothing was changed: run the command again, once the move is over"
    )]
    SlotMoving {
        /// The node that answered.
        node: String,
        /// "slot N", as the node said.
        slot: String,
        /// Where the node sent it, as `host:port`.
        to: String,
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

    /// `import` from a URL that keeps the old keys itself.
    #[error(
        "--url has compat=phpredis: import moves sessions into stickless's format, so give it the URL of the pods after the switch (without compat)"
    )]
    ImportFromCompat,

    /// The store failed on one session during `import`; what was imported
    /// so far stays imported, and running it again goes on from there.
    #[error("import stopped: {0}; run it again to go on where it stopped")]
    Import(stickless::Error),

    /// `check` found problems (they were printed).
    #[error("{0} problem(s) found")]
    Problems(usize),

    /// Writing the output failed (other than a closed pipe).
    /// A user ID the index refuses.
    #[error("invalid user ID: {0}")]
    User(#[from] stickless::InvalidUser),

    /// A step of the session store failed (sessions per user go through
    /// the same driver as requests: routing, retries and budgets).
    #[error("{0}")]
    Store(#[from] stickless::Error),

    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// A node's command error, with the node named. A slot on the move answers
/// with a redirect or TRYAGAIN before the command does anything: said so, as
/// a request would retry it but a one-shot tool should not guess.
pub fn command(node: &str, e: &redis::RedisError) -> CliError {
    let moving = e
        .redirect_node()
        .map(|(to, slot)| (Some(to.to_owned()), Some(slot)));
    let moving = moving.or_else(|| {
        (e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain))
            .then_some((None, None))
    });
    match moving {
        Some((to, slot)) => CliError::SlotMoving {
            node: node.to_owned(),
            slot: slot.map_or_else(|| "its slot".to_owned(), |s| format!("slot {s}")),
            to: to.unwrap_or_else(|| "another node".to_owned()),
        },
        None => CliError::Command {
            node: node.to_owned(),
            cause: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(reply: &str) -> redis::RedisError {
        redis::parse_redis_value(reply.as_bytes())
            .and_then(redis::Value::extract_error)
            .expect_err("an error reply")
    }

    #[test]
    fn a_slot_on_the_move_is_named_and_nothing_is_said_to_have_changed() {
        let ask = command(
            "127.0.0.1:7000",
            &server_error("-ASK 3999 127.0.0.1:7003\r\n"),
        );
        assert!(
            matches!(&ask, CliError::SlotMoving { slot, to, .. } if slot == "slot 3999" && to == "127.0.0.1:7003")
        );
        assert!(ask.to_string().contains("nothing was changed"), "{ask}");
        let moved = command(
            "127.0.0.1:7000",
            &server_error("-MOVED 12 127.0.0.1:7001\r\n"),
        );
        assert!(matches!(moved, CliError::SlotMoving { .. }));
        let again = command(
            "127.0.0.1:7000",
            &server_error("-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
        );
        assert!(matches!(&again, CliError::SlotMoving { to, .. } if to == "another node"));
        let other = command("127.0.0.1:7000", &server_error("-NOPERM no\r\n"));
        assert!(matches!(other, CliError::Command { .. }));
    }
}
