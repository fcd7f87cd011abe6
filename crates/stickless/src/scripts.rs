//! The Lua scripts, one per protocol step, and their replies parsed into
//! types once, here.
//!
//! Every script touches only keys of one session, which share a hash tag,
//! and declares every key it touches, so each runs atomically on the slot
//! owner.
//!
//! | step        | script        | round trips |
//! |-------------|---------------|-------------|
//! | open, lock free | none: `SET NX PX` + `GET`, pipelined | 1 |
//! | open, lock held | `ACQUIRE` | 1 more (+1 per hand-off while waiting) |
//! | write       | `COMMIT` (from 1 KB: `SET` of a staged envelope + `COMMIT`, pipelined) | 1 |
//! | unchanged   | `TOUCH` (`RELEASE` while the lifetime is fresh) | 1 |
//! | close/abort | `RELEASE`     | 1 (0 when the write already released) |
//! | destroy     | `DESTROY`     | 1 |
//! | long request | `RENEW`      | 1 per lock_ttl_ms / 3, from a background thread |
//! | after a failure | `ABANDON` | 1, from a background thread |
//!
//! Waiting: a waiter registers its token in `{tag}:queue` (a sorted set
//! scored by the server time until which it counts as alive) and blocks in
//! `BLPOP {tag}:wake`. A hand-off reserves the lock (`~`, for a claim
//! window) and pushes one baton to `{tag}:wake`; Redis gives it to the
//! client that has been blocked longest, and a waiter that died left that
//! list with its connection, so it costs nobody anything.

use std::sync::LazyLock;

use redis::{Cmd, Script, ToRedisArgs, Value};

use crate::error::{Error, LostReason};

/// Shared helpers: the server's clock, and the hand-off.
///
/// The lock is reserved rather than given to a named waiter: whoever pops
/// the baton claims it, so a waiter that died while blocked is skipped by
/// Redis itself. With nobody registered the lock is simply freed, for two
/// commands, as cheap as the uncontended case can be. (A baton left from an
/// earlier reservation that nobody claimed expires with its claim window; a
/// waiter that pops it only checks in once more.)
///
/// No script touches a key again after it may have emptied it (a `ZREM`, a
/// `ZREMRANGEBYSCORE`, an `LPOP`): while the session's slot migrates, the
/// node it runs on has every declared key (or it would have refused the
/// call with `TRYAGAIN` or `ASK`), but treats a key that is missing now as
/// one that already moved, and stops the script halfway with "Script
/// attempted to access a non local key". So counts come from the replies
/// of the commands that change them, and the baton list is trimmed to one
/// element, never deleted and refilled. `queued` is the number of entries
/// in the queue when the caller knows it (nil: ask).
const HANDOFF: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function handoff(lock, queue, wake, claim_ms, queued)
  if queued == nil then queued = redis.call('ZCARD', queue) end
  if queued > 0 then
    queued = queued - redis.call('ZREMRANGEBYSCORE', queue, '-inf', now_ms())
  end
  if queued > 0 then
    redis.call('SET', lock, '~', 'PX', claim_ms)
    redis.call('LPUSH', wake, '1')
    redis.call('LTRIM', wake, 0, 0)
    redis.call('PEXPIRE', wake, claim_ms)
    return true
  end
  redis.call('DEL', lock)
  return false
end
";

/// KEYS: data, lock, queue, wake, void.
/// ARGV: token, lock_ttl_ms, require_existing, final, nap_cap_ms, claim_ms,
///       woken, max_waiters, grace_ms.
/// Reply: `{1, data|nil, pttl}` acquired (`pttl` of the data, for a later
///        touch: see `touch_interval_ms`), `{0}` missing (no lock taken),
///        `{2, nap_ms}` busy (registered: block for that long),
///        `{2, pttl, data|nil}` busy on the final try (not registered),
///        `{3}` busy and `max_waiters` live waiters registered already.
///
/// A baton nobody popped is taken (`LPOP`) only as the last use of the
/// list: a strict-mode hand-off first trims it to the one baton it passes on.
const ACQUIRE: &str = r"
local token = ARGV[1]
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= '~' and owner ~= token
   and redis.call('SISMEMBER', KEYS[5], owner) == 1 then
  -- Held by a request that gave up on the server (ABANDON ran first).
  owner = false
end
local unclaimed = false
if owner == '~' and ARGV[7] ~= '1' then
  unclaimed = redis.call('LLEN', KEYS[4]) > 0
end
if owner == '~' and (ARGV[7] == '1' or unclaimed) then
  -- Reserved by a hand-off: ours if we popped the baton, or if nobody
  -- blocked was there to pop it.
  owner = false
end
if owner == false or owner == token then
  local queued = redis.call('ZCARD', KEYS[3])
  if queued > 0 then queued = queued - redis.call('ZREM', KEYS[3], token) end
  local data = redis.call('GET', KEYS[1])
  if data == false and ARGV[3] == '1' then
    -- Strict mode on a missing session: take nothing, pass the turn on.
    if not handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[6], queued) and unclaimed then
      redis.call('LPOP', KEYS[4])
    end
    return {0}
  end
  if unclaimed then redis.call('LPOP', KEYS[4]) end
  redis.call('SET', KEYS[2], token, 'PX', ARGV[2])
  return {1, data, redis.call('PTTL', KEYS[1])}
end
if ARGV[4] == '1' then
  redis.call('ZREM', KEYS[3], token)
  return {2, redis.call('PTTL', KEYS[2]), redis.call('GET', KEYS[1])}
end
local now = now_ms()
local nap = tonumber(ARGV[5])
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 and pttl < nap then nap = pttl end
local alive = nap + tonumber(ARGV[9])
local seen = redis.call('ZSCORE', KEYS[3], token)
local known = seen and tonumber(seen) > now
-- Registered before the expired entries go, so the queue never empties
-- in between (see HANDOFF): our own entry outlives `now`.
redis.call('ZADD', KEYS[3], now + alive, token)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if not known and redis.call('ZCARD', KEYS[3]) > tonumber(ARGV[8]) then
  -- Others remain after this, so the queue is not emptied.
  redis.call('ZREM', KEYS[3], token)
  return {3}
end
if redis.call('PTTL', KEYS[3]) < alive then redis.call('PEXPIRE', KEYS[3], alive) end
return {2, nap}
";

/// KEYS: data, lock, queue, wake, and stage for a staged envelope.
/// ARGV: token, data_ttl_ms, claim_ms, stamp, resent, and the envelope
///       itself when it is not staged.
/// Reply: `{1}` written and released, `{2}` written after the lease lapsed
///        (nobody had changed the session), `{0, 'changed'|'taken'}` refused,
///        `{3}` the staged envelope is gone (nothing changed: stage it again).
///
/// A large envelope is not an argument: the client stages it with a plain
/// `SET` of `stage` (a key of its own token, in the session's slot) in the
/// same pipeline, and the script moves it into place with `RENAME`. So the
/// payload never crosses into Lua, and the script's work does not grow with
/// its size. The `SET` is sent with every send of the script (see
/// `route::Batch`), so the stage exists whenever the script runs, unless it
/// was evicted or expired in between; the script then changes nothing and
/// says so. A small envelope costs less as an argument than a key of its
/// own (see `steps::STAGE_FROM`), and is written with `SET`.
///
/// `stamp` is the start of the stored value as this request read it (empty:
/// nothing was stored). It holds the envelope's revision and timestamps, so
/// comparing it is a compare-and-set on the revision that never copies the
/// payload into Lua.
///
/// A resent commit (its first send got no reply) may find its own write
/// already applied: the lock is then gone, and the stored value is
/// byte-for-byte the envelope sent (or staged again), which no other write
/// can produce (it carries a fresh timestamp and, encrypted, a fresh nonce).
/// Only a resend pays for that comparison.
const COMMIT: &str = r"
local staged = #KEYS == 5
local owner = redis.call('GET', KEYS[2])
local held = owner == ARGV[1]
if not held then
  if ARGV[5] == '1' then
    local sent = ARGV[6]
    if staged then sent = redis.call('GET', KEYS[5]) end
    if sent == false then return {3} end
    if sent == redis.call('GET', KEYS[1]) then
      if staged then redis.call('DEL', KEYS[5]) end
      return {1}
    end
  end
  local refused = nil
  if owner and owner ~= '~' then
    refused = 'taken'
  else
    local stamp = ARGV[4]
    local unchanged
    if stamp == '' then
      unchanged = redis.call('EXISTS', KEYS[1]) == 0
    else
      unchanged = redis.call('GETRANGE', KEYS[1], 0, #stamp - 1) == stamp
    end
    if not unchanged then refused = 'changed' end
  end
  if refused then
    if staged then redis.call('DEL', KEYS[5]) end
    return {0, refused}
  end
end
if staged then
  local moved = redis.pcall('RENAME', KEYS[5], KEYS[1])
  if type(moved) == 'table' and moved.err then return {3} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[2])
end
if held then
  handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[3])
  return {1}
end
-- Free: wake whoever waits. Reserved: the woken waiter reads this write.
if owner == false then handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[3]) end
return {2}
";

/// KEYS: data, lock, queue, wake. ARGV: token, data_ttl_ms, claim_ms.
/// Reply: `{1}`. Renewing a session's lifetime is harmless whoever holds
/// the lock, so an unchanged request never fails for a lapsed lease.
const TOUCH: &str = r"
local owner = redis.call('GET', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if owner == ARGV[1] or owner == false then
  handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[3])
end
return {1}
";

/// KEYS: lock, queue, wake. ARGV: token, claim_ms.
/// Reply: `{1}`; a lock that is no longer ours needs no releasing.
const RELEASE: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or owner == false then
  handoff(KEYS[1], KEYS[2], KEYS[3], ARGV[2])
end
return {1}
";

/// KEYS: data, lock, queue, wake. ARGV: token ('' when not holding), claim_ms.
/// Reply: `{1}` destroyed, `{0, 'locked'}` another request holds the lock.
const DESTROY: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return {0, 'locked'} end
redis.call('DEL', KEYS[1])
if owner then handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[2]) end
return {1}
";

/// KEYS: lock. ARGV: token, lock_ttl_ms.
/// Reply: `1` renewed, `0` the lock is not ours any more.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// KEYS: lock, queue, wake, void. ARGV: token, claim_ms, void_ttl_ms.
/// Clears what a token may have left behind when its request gave up on a
/// hung or unreachable server: the server may run the request's last
/// commands after the client stopped waiting (they were in its receive
/// buffer), possibly after this script. So the token is also voided: a lock
/// it takes later counts as free (see `ACQUIRE`). Reply: `{1}`.
const ABANDON: &str = r"
local queued = redis.call('ZCARD', KEYS[2])
if queued > 0 then queued = queued - redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  handoff(KEYS[1], KEYS[2], KEYS[3], ARGV[2], queued)
end
return {1}
";

pub(crate) fn with_handoff(body: &str) -> Script {
    Script::new(&format!("{HANDOFF}{body}"))
}

pub(crate) static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(ACQUIRE));
pub(crate) static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(COMMIT));
pub(crate) static TOUCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(TOUCH));
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(RELEASE));
pub(crate) static DESTROY_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(DESTROY));
pub(crate) static ABANDON_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(ABANDON));
pub(crate) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

/// One script call: `EVALSHA`, loading the script first wherever the
/// server does not know it yet (a node that joined or was promoted since).
pub(crate) struct Call {
    script: &'static Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    pub(crate) fn new(script: &'static Script) -> Self {
        Self {
            script,
            keys: Vec::with_capacity(3),
            args: Vec::with_capacity(8),
        }
    }

    /// Key names are built per call, so they are taken as they are made
    /// rather than copied.
    pub(crate) fn key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.keys.push(key.into());
        self
    }

    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// This call with argument `index` (0-based, after the keys) set to
    /// `value`: the variant a step sends on a later attempt.
    pub(crate) fn with_arg(&self, index: usize, value: impl ToRedisArgs) -> Self {
        let mut args = Vec::with_capacity(self.args.len());
        args.extend_from_slice(&self.args[..index.min(self.args.len())]);
        value.write_redis_args(&mut args);
        args.extend_from_slice(self.args.get(index + 1..).unwrap_or_default());
        Self {
            script: self.script,
            keys: self.keys.clone(),
            args,
        }
    }

    /// The `EVALSHA` of this call.
    pub(crate) fn cmd(&self) -> Cmd {
        let len = self.keys.len() + self.args.len() + 3;
        let bytes = 64
            + self
                .keys
                .iter()
                .chain(&self.args)
                .map(Vec::len)
                .sum::<usize>();
        let mut cmd = Cmd::with_capacity(len, bytes);
        cmd.arg("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// The script, to load on a node that does not know it (`NOSCRIPT`).
    pub(crate) fn script(&self) -> &'static Script {
        self.script
    }
}

/// Reply of `ACQUIRE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireReply {
    /// The lock is ours.
    Acquired {
        /// The stored value, if any.
        data: Option<Vec<u8>>,
        /// Its `PTTL` (negative: no value, or no expiry), when the script
        /// sent one.
        pttl: Option<i64>,
    },
    /// The session does not exist and the caller required it; no lock taken.
    Missing,
    /// Another request holds the lock and `max_waiters` live requests
    /// already wait for it; this one was not registered.
    Crowded,
    /// Another request holds the lock: registered, block for `nap_ms` (the
    /// server counts this waiter alive that long, plus a grace period).
    Busy {
        /// How long to block for a hand-off before checking again.
        nap_ms: u64,
    },
    /// The final try found the lock still held; the stored value comes
    /// along (for read-only opens).
    GaveUp {
        /// The stored value.
        data: Option<Vec<u8>>,
    },
}

/// Reply of `COMMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitReply {
    /// Written under the lock, which was released or handed on.
    Done,
    /// Written after the lease had lapsed: nobody had changed the session
    /// since it was read, so the compare-and-set let it through.
    DoneAfterLapse,
    /// Refused: applying it would lose another request's update.
    Lost(LostReason),
    /// The staged envelope was gone when the script ran (evicted, or
    /// expired past the step's budget); nothing changed.
    Unstaged,
}

/// Reply of `DESTROY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyReply {
    /// Deleted (or was already absent).
    Done,
    /// Another request holds the lock.
    Locked,
}

/// A protocol error that names the shape of the reply, never its bytes: a
/// reply may carry session data, which must not reach a warning or a log.
fn bad(what: &str, v: &Value) -> Error {
    Error::Protocol(format!("{what}: got {}", shape(v)))
}

/// What a reply looks like, two levels deep and without its contents:
/// taken (without allocating) before a reply is consumed, and printed only
/// if the reply turns out to be wrong.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    top: Kind,
    items: [Kind; 4],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Absent,
    Nil,
    Int,
    Bulk(usize),
    Status,
    Array(usize),
    /// An error reply, with the first bytes of its code.
    Error([u8; 16], u8),
    Other,
}

impl Kind {
    fn of(v: &Value) -> Self {
        match v {
            Value::Nil => Self::Nil,
            Value::Int(_) => Self::Int,
            Value::BulkString(b) => Self::Bulk(b.len()),
            Value::SimpleString(_) | Value::Okay => Self::Status,
            Value::Array(items) => Self::Array(items.len()),
            Value::ServerError(e) => {
                let code = e.code().as_bytes();
                let mut kept = [0; 16];
                let n = code.len().min(kept.len());
                kept[..n].copy_from_slice(&code[..n]);
                Self::Error(kept, n as u8)
            }
            _ => Self::Other,
        }
    }
}

impl Shape {
    pub(crate) fn of(v: &Value) -> Self {
        let mut items = [Kind::Absent; 4];
        if let Value::Array(children) = v
            && children.len() <= items.len()
        {
            for (kind, child) in items.iter_mut().zip(children) {
                *kind = Kind::of(child);
            }
        }
        Self {
            top: Kind::of(v),
            items,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Absent => Ok(()),
            Self::Nil => f.write_str("nil"),
            Self::Int => f.write_str("an integer"),
            Self::Bulk(len) => write!(f, "a {len}-byte string"),
            Self::Status => f.write_str("a status"),
            Self::Array(len) => write!(f, "an array of {len}"),
            Self::Error(code, n) => {
                let code = &code[..usize::from(*n)];
                write!(f, "error {}", String::from_utf8_lossy(code))
            }
            Self::Other => f.write_str("an unexpected type"),
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.top {
            Kind::Array(len) if len <= self.items.len() => {
                f.write_str("[")?;
                for (i, kind) in self.items[..len].iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    kind.fmt(f)?;
                }
                f.write_str("]")
            }
            top => top.fmt(f),
        }
    }
}

/// What a reply looks like, without its contents.
pub(crate) fn shape(v: &Value) -> String {
    Shape::of(v).to_string()
}

fn items<'a>(what: &str, v: &'a Value) -> Result<&'a [Value], Error> {
    match v {
        Value::Array(items) if !items.is_empty() => Ok(items),
        other => Err(bad(what, other)),
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn bytes(v: Option<&Value>) -> Option<Vec<u8>> {
    match v {
        Some(Value::BulkString(b)) => Some(b.clone()),
        _ => None,
    }
}

fn status(v: Option<&Value>) -> Option<&[u8]> {
    match v {
        Some(Value::BulkString(b)) => Some(b),
        Some(Value::SimpleString(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

impl AcquireReply {
    /// Parses the script reply.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        let it = items("acquire", v)?;
        match (int(&it[0]), it.len()) {
            (Some(1), _) => Ok(Self::Acquired {
                data: bytes(it.get(1)),
                pttl: it.get(2).and_then(int),
            }),
            (Some(0), _) => Ok(Self::Missing),
            (Some(3), _) => Ok(Self::Crowded),
            (Some(2), 2) => {
                let nap = it.get(1).and_then(int).ok_or_else(|| bad("acquire", v))?;
                Ok(Self::Busy {
                    // A lease about to lapse reads as 0 or less: check again now.
                    nap_ms: u64::try_from(nap).unwrap_or(0),
                })
            }
            (Some(2), 3) => Ok(Self::GaveUp {
                data: bytes(it.get(2)),
            }),
            _ => Err(bad("acquire", v)),
        }
    }
}

impl CommitReply {
    /// Parses the script reply.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        let it = items("commit", v)?;
        match (int(&it[0]), status(it.get(1))) {
            (Some(1), _) => Ok(Self::Done),
            (Some(2), _) => Ok(Self::DoneAfterLapse),
            (Some(3), _) => Ok(Self::Unstaged),
            (Some(0), Some(b"changed")) => Ok(Self::Lost(LostReason::Changed)),
            (Some(0), Some(b"taken")) => Ok(Self::Lost(LostReason::Taken)),
            _ => Err(bad("commit", v)),
        }
    }
}

/// Reads the reply of `TOUCH`, `RELEASE` and `ABANDON`, which always succeed.
pub fn parse_done(what: &str, v: &Value) -> Result<(), Error> {
    match int(&items(what, v)?[0]) {
        Some(1) => Ok(()),
        _ => Err(bad(what, v)),
    }
}

/// Reads the reply of `RENEW`: whether the lock was still ours.
pub fn parse_renewed(v: &Value) -> Result<bool, Error> {
    match v {
        Value::Int(1) => Ok(true),
        Value::Int(0) => Ok(false),
        other => Err(bad("renew", other)),
    }
}

impl DestroyReply {
    /// Parses the script reply.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        let it = items("destroy", v)?;
        match int(&it[0]) {
            Some(1) => Ok(Self::Done),
            Some(0) => Ok(Self::Locked),
            _ => Err(bad("destroy", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    #[test]
    fn a_call_with_one_argument_changed_is_that_call_built_with_it() {
        let call = |resent: u8| {
            Call::new(&COMMIT_SCRIPT)
                .key("{t}:data")
                .key("{t}:lock")
                .arg("token")
                .arg(1000u64)
                .arg(resent)
                .arg(&b"envelope"[..])
        };
        let changed = call(0).with_arg(2, 1u8);
        assert_eq!(
            changed.cmd().get_packed_command(),
            call(1).cmd().get_packed_command()
        );
        assert_ne!(
            changed.cmd().get_packed_command(),
            call(0).cmd().get_packed_command()
        );
    }

    #[test]
    fn a_shape_taken_up_front_prints_the_reply_without_its_contents() {
        let error = redis::parse_redis_value(b"-NOSCRIPT No matching script\r\n").unwrap();
        let cases = [
            (Value::Nil, "nil"),
            (Value::Int(3), "an integer"),
            (bulk(b"secret"), "a 6-byte string"),
            (Value::Okay, "a status"),
            (
                arr(vec![Value::Int(1), bulk(b"abc"), Value::Nil]),
                "[an integer, a 3-byte string, nil]",
            ),
            // Two levels deep: a nested array by its length.
            (
                arr(vec![arr(vec![Value::Nil]), Value::Int(1)]),
                "[an array of 1, an integer]",
            ),
            (arr(vec![Value::Nil; 5]), "an array of 5"),
            (arr(vec![]), "[]"),
            (error, "error NOSCRIPT"),
        ];
        for (reply, expected) in &cases {
            let taken = Shape::of(reply);
            assert_eq!(taken.to_string(), *expected);
            assert_eq!(shape(reply), *expected);
        }
    }

    #[test]
    fn parses_acquire_replies() {
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1), bulk(b"x"), Value::Int(900)])).unwrap(),
            AcquireReply::Acquired {
                data: Some(b"x".to_vec()),
                pttl: Some(900)
            }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1), Value::Nil, Value::Int(-2)])).unwrap(),
            AcquireReply::Acquired {
                data: None,
                pttl: Some(-2)
            }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1)])).unwrap(),
            AcquireReply::Acquired {
                data: None,
                pttl: None
            }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(0)])).unwrap(),
            AcquireReply::Missing
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(2), Value::Int(-1)])).unwrap(),
            AcquireReply::Busy { nap_ms: 0 }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(2), Value::Int(70), bulk(b"d")])).unwrap(),
            AcquireReply::GaveUp {
                data: Some(b"d".to_vec())
            }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(3)])).unwrap(),
            AcquireReply::Crowded
        );
    }

    #[test]
    fn parses_commit_replies() {
        assert_eq!(
            CommitReply::parse(&arr(vec![Value::Int(1)])).unwrap(),
            CommitReply::Done
        );
        assert_eq!(
            CommitReply::parse(&arr(vec![Value::Int(2)])).unwrap(),
            CommitReply::DoneAfterLapse
        );
        assert_eq!(
            CommitReply::parse(&arr(vec![Value::Int(3)])).unwrap(),
            CommitReply::Unstaged
        );
        assert_eq!(
            CommitReply::parse(&arr(vec![Value::Int(0), bulk(b"taken")])).unwrap(),
            CommitReply::Lost(LostReason::Taken)
        );
        assert_eq!(
            CommitReply::parse(&arr(vec![Value::Int(0), bulk(b"changed")])).unwrap(),
            CommitReply::Lost(LostReason::Changed)
        );
        assert_eq!(
            DestroyReply::parse(&arr(vec![Value::Int(0), bulk(b"locked")])).unwrap(),
            DestroyReply::Locked
        );
        assert!(parse_done("touch", &arr(vec![Value::Int(1)])).is_ok());
        assert!(parse_renewed(&Value::Int(1)).unwrap());
        assert!(!parse_renewed(&Value::Int(0)).unwrap());
    }

    #[test]
    fn rejects_unexpected_replies() {
        for v in [
            Value::Nil,
            arr(vec![]),
            arr(vec![Value::Int(7)]),
            Value::Okay,
        ] {
            assert!(AcquireReply::parse(&v).is_err(), "{v:?}");
            assert!(CommitReply::parse(&v).is_err(), "{v:?}");
        }
        // Busy without a nap.
        assert!(AcquireReply::parse(&arr(vec![Value::Int(2)])).is_err());
        assert!(CommitReply::parse(&arr(vec![Value::Int(0), bulk(b"why")])).is_err());
        assert!(parse_done("release", &arr(vec![Value::Int(0)])).is_err());
    }

    #[test]
    fn protocol_errors_never_quote_reply_bytes() {
        // A reply that carries session data in an unexpected place.
        let payload = b"user|s:5:\"alice\";csrf|s:8:\"s3cr3t!!\";";
        let reply = arr(vec![Value::Int(9), bulk(payload)]);
        for err in [
            AcquireReply::parse(&reply).unwrap_err(),
            CommitReply::parse(&reply).unwrap_err(),
            DestroyReply::parse(&arr(vec![bulk(payload)])).unwrap_err(),
            parse_renewed(&bulk(payload)).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                !text.contains("alice") && !text.contains("s3cr3t"),
                "{text}"
            );
            assert!(text.contains("byte string"), "{text}");
        }
    }

    /// The first argument of every `redis.call` or `redis.pcall` in `src`
    /// that names a key.
    fn keys_touched(src: &str) -> Vec<String> {
        src.replace("redis.pcall(", "redis.call(")
            .split("redis.call(")
            .skip(1)
            .filter_map(|call| {
                let mut args = call.split([',', ')']);
                let command = args.next()?.trim().trim_matches('\'');
                // The scripts' only keyless command.
                (command != "TIME").then(|| args.next().unwrap_or("").trim().to_owned())
            })
            .collect()
    }

    #[test]
    fn every_key_a_script_touches_is_declared() {
        // A cluster checks only the declared keys before it runs a script
        // (and refuses it, or redirects it, while its slot migrates); an
        // undeclared key is found missing halfway through instead.
        for (name, body, declared) in [
            ("ACQUIRE", ACQUIRE, 5),
            ("COMMIT", COMMIT, 5),
            ("TOUCH", TOUCH, 4),
            ("RELEASE", RELEASE, 3),
            ("DESTROY", DESTROY, 4),
            ("RENEW", RENEW, 1),
            ("ABANDON", ABANDON, 4),
        ] {
            let allowed: Vec<String> = (1..=declared).map(|i| format!("KEYS[{i}]")).collect();
            for key in keys_touched(body) {
                assert!(allowed.contains(&key), "{name} touches {key}");
            }
            // Any key named anywhere (a second argument, as `RENAME`'s).
            for named in body.split("KEYS[").skip(1) {
                let key = format!("KEYS[{}]", named.split(']').next().unwrap_or(""));
                assert!(allowed.contains(&key), "{name} names {key}");
            }
            // The hand-off is handed declared keys only.
            for call in body.split("handoff(").skip(1) {
                let args: Vec<&str> = call.split(',').take(3).map(str::trim).collect();
                for key in args {
                    assert!(allowed.iter().any(|k| k == key), "{name} hands off {key}");
                }
            }
        }
        for key in keys_touched(HANDOFF) {
            assert!(
                ["lock", "queue", "wake"].contains(&key.as_str()),
                "the hand-off touches {key}"
            );
        }
    }
}
