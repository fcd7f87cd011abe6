//! What operator tools (the `stickless` command) need beyond the request
//! path: a connection to one named node, the meaning of an envelope's
//! header, and ending a lock on behalf of the request that holds it.
//!
//! Nothing here is used by a request. The drivers route, retry and fence;
//! a tool that inspects a store wants the opposite: one node at a time,
//! exactly what it asked for, and every reply shown as it is.
//!
//! ```no_run
//! use std::time::Duration;
//! use stickless::admin::{self, NodeRole};
//! use stickless::config::{Config, Endpoint, Topology};
//!
//! let config = Config::parse("redis://127.0.0.1:6390/0?prefix=app:")?;
//! let Topology::Standalone(endpoint) = &config.server.topology else { unreachable!() };
//! let t = Duration::from_secs(1);
//! let mut con = admin::connect(&config.server, endpoint, NodeRole::Data, t, t)?;
//! let pong: String = redis::cmd("PING").query(&mut con)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::Duration;

use redis::{Connection, ConnectionLike, ErrorKind, RedisResult, ServerErrorKind, Value};

use crate::compress::{FLAG_LZ4, FLAG_ZSTD};
use crate::config::{Endpoint, Server, Settings};
use crate::connect::{self, Role};
use crate::envelope::Envelope;
use crate::error::CorruptKind;
use crate::keys::SessionKeys;
use crate::scripts::{Call, RELEASE_SCRIPT};
use crate::steps;

pub use crate::envelope::{FLAG_ENCRYPTED, VERSION as ENVELOPE_VERSION};

/// The lock's value while a hand-off waits for the woken waiter to claim
/// it: the lock is held for nobody in particular, for a claim window.
pub const RESERVED: &str = "~";

/// Which credentials a connection presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// A node that holds sessions: the server's user, password and database.
    Data,
    /// A sentinel: the sentinel credentials, database 0.
    Sentinel,
}

/// Opens a connection to `endpoint` the way the drivers do (TLS files,
/// ACL user, password, database), with `io_timeout` on every read and
/// write. No routing, no retries.
pub fn connect(
    server: &Server,
    endpoint: &Endpoint,
    role: NodeRole,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> RedisResult<Connection> {
    let role = match role {
        NodeRole::Data => Role::Data,
        NodeRole::Sentinel => Role::Sentinel,
    };
    connect::open(server, endpoint, None, role, connect_timeout, io_timeout)
}

/// The names of the envelope flags set in `flags`, and the bits this build
/// does not know, as `0x..`.
///
/// ```
/// use stickless::admin::{FLAG_ENCRYPTED, flag_names};
/// assert_eq!(flag_names(0), Vec::<String>::new());
/// assert_eq!(flag_names(FLAG_ENCRYPTED), ["encrypted"]);
/// assert_eq!(flag_names(FLAG_ENCRYPTED | 2), ["encrypted", "zstd"]);
/// assert_eq!(flag_names(4 | 0x80), ["lz4", "0x80"]);
/// ```
pub fn flag_names(flags: u32) -> Vec<String> {
    let known = [
        (FLAG_ENCRYPTED, "encrypted"),
        (FLAG_ZSTD, "zstd"),
        (FLAG_LZ4, "lz4"),
    ];
    let mut names = Vec::new();
    let mut rest = flags;
    for (bit, name) in known {
        if flags & bit != 0 {
            names.push(name.to_owned());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    names
}

/// Whether `flags` mark a compressed payload (any codec).
pub fn is_compressed(flags: u32) -> bool {
    flags & (FLAG_ZSTD | FLAG_LZ4) != 0
}

/// Decodes a stored value of the session `keys` the way a request would
/// with these settings: decrypts with `encryption_keys` (and refuses a
/// plain value where the key ring does not list `plain`), and expands a
/// compressed payload up to `max_size`.
pub fn open_envelope(
    stored: &[u8],
    keys: &SessionKeys,
    settings: &Settings,
) -> Result<Envelope, CorruptKind> {
    Envelope::open(stored, &settings.sealing(), keys.tag())
}

/// Releases the lock held by `holder` (the lock's value, as read), handing
/// it to the oldest live waiter as the holder's own release would. A lock
/// taken by someone else since it was read is left alone. The holder's
/// later write is refused with a warning (`LostReason`). Read the reply
/// with [`crate::scripts::parse_done`].
pub fn release_held(
    con: &mut dyn ConnectionLike,
    keys: &SessionKeys,
    holder: &str,
    settings: &Settings,
) -> RedisResult<Value> {
    let call = Call::new(&RELEASE_SCRIPT)
        .key(keys.lock())
        .key(keys.queue())
        .key(keys.wake())
        .arg(holder)
        .arg(steps::ms(steps::claim_window(settings)));
    run(con, &call)
}

/// Destroys the session as the request holding its lock would (`holder`,
/// the lock's value as read; empty when nobody holds it): deletes the data
/// and hands the lock on. Refused when another request holds the lock by
/// then. Read the reply with [`crate::scripts::DestroyReply::parse`].
pub fn destroy_held(
    con: &mut dyn ConnectionLike,
    keys: &SessionKeys,
    holder: &str,
    settings: &Settings,
) -> RedisResult<Value> {
    run(con, &steps::destroy(keys, holder, settings))
}

/// Sends `call`, loading its script first where the node does not know it:
/// a script the server does not know is refused before any effect.
fn run(con: &mut dyn ConnectionLike, call: &Call) -> RedisResult<Value> {
    match call.cmd().query(con) {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            call.script().load(con)?;
            call.cmd().query(con)
        }
        other => other,
    }
}
