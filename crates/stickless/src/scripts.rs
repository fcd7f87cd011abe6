//! The Lua scripts, one per protocol step, and their replies parsed into
//! types once, here.
//!
//! Every script touches only keys of one session, which share a hash tag, so
//! each runs atomically on the slot owner. The wake-up list of a waiter is
//! named from `wake_prefix .. token` inside the script; it carries the same
//! tag, so it lives in the same slot.
//!
//! | step        | script        | round trips |
//! |-------------|---------------|-------------|
//! | open, lock free | none: `SET NX PX` + `GET`, pipelined | 1 |
//! | open, lock held | `ACQUIRE` | 1 more (+1 per hand-off while waiting) |
//! | write       | `COMMIT`      | 1 |
//! | unchanged   | `TOUCH`       | 1 |
//! | close/abort | `RELEASE`     | 1 (0 when the write already released) |
//! | destroy     | `DESTROY`     | 1 |
//! | after a failure | `ABANDON` | 1, once, on the next request |

use std::sync::LazyLock;

use redis::{Cmd, Connection, ErrorKind, RedisResult, Script, ServerErrorKind, ToRedisArgs, Value};

use crate::error::{Error, LostReason};

/// Hands the lock to the oldest waiter, or frees it.
///
/// The handed lock gets a short claim window instead of a full lease: a
/// waiter that died while queued then blocks the session only briefly.
const HANDOFF: &str = r"
local function handoff(lock, queue, wake_prefix, claim_ms)
  local nxt = redis.call('LPOP', queue)
  if nxt then
    redis.call('SET', lock, nxt, 'PX', claim_ms)
    local wake = wake_prefix .. nxt
    redis.call('RPUSH', wake, '1')
    redis.call('PEXPIRE', wake, claim_ms)
  else
    redis.call('DEL', lock)
  end
end
";

/// KEYS: data, lock, queue.
/// ARGV: token, lock_ttl_ms, require_existing, final, queue_ttl_ms,
///       wake_prefix, claim_ms, was_queued, max_waiters.
/// Reply: `{1, data|nil}` acquired, `{0}` missing (no lock taken),
///        `{2, pttl}` busy (queued), `{2, pttl, data|nil}` busy on the final try,
///        `{3}` busy and `max_waiters` already queued (not queued).
const ACQUIRE: &str = r"
local token = ARGV[1]
local queued = ARGV[8] == '1'
local owner = redis.call('GET', KEYS[2])
if owner == false or owner == token then
  if queued then
    redis.call('LREM', KEYS[3], 0, token)
    redis.call('DEL', ARGV[6] .. token)
  end
  local data = redis.call('GET', KEYS[1])
  if data == false and ARGV[3] == '1' then
    if owner == token then handoff(KEYS[2], KEYS[3], ARGV[6], ARGV[7]) end
    return {0}
  end
  redis.call('SET', KEYS[2], token, 'PX', ARGV[2])
  return {1, data}
end
if ARGV[4] == '1' then
  if queued then
    redis.call('LREM', KEYS[3], 0, token)
    redis.call('DEL', ARGV[6] .. token)
  end
  return {2, redis.call('PTTL', KEYS[2]), redis.call('GET', KEYS[1])}
end
-- Not `if not queued`: a waiter that was handed the lock but too late to
-- claim it was popped from the queue, and must queue again.
if not redis.call('LPOS', KEYS[3], token) then
  if redis.call('LLEN', KEYS[3]) >= tonumber(ARGV[9]) then
    return {3}
  end
  redis.call('RPUSH', KEYS[3], token)
end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {2, redis.call('PTTL', KEYS[2])}
";

/// KEYS: data, lock, queue.
/// ARGV: token, envelope, data_ttl_ms, wake_prefix, claim_ms, resent.
/// Reply: `{1}` written and released, `{0, 'expired'|'taken'}` refused.
///
/// A resent commit (its first send got no reply) may find its own write
/// already applied: the lock is then gone, and the stored value is
/// byte-for-byte the envelope sent, which no other write can produce (it
/// carries a fresh timestamp and, encrypted, a fresh nonce). Only a resend
/// pays for that comparison.
const COMMIT: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner ~= ARGV[1] then
  if ARGV[6] == '1' and redis.call('GET', KEYS[1]) == ARGV[2] then return {1} end
  if owner then return {0, 'taken'} end
  return {0, 'expired'}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
handoff(KEYS[2], KEYS[3], ARGV[4], ARGV[5])
return {1}
";

/// KEYS: data, lock, queue. ARGV: token, data_ttl_ms, wake_prefix, claim_ms.
/// Reply as `COMMIT`.
const TOUCH: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner ~= ARGV[1] then
  if owner then return {0, 'taken'} end
  return {0, 'expired'}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
handoff(KEYS[2], KEYS[3], ARGV[3], ARGV[4])
return {1}
";

/// KEYS: lock, queue. ARGV: token, wake_prefix, claim_ms.
/// Reply as `COMMIT`.
const RELEASE: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner ~= ARGV[1] then
  if owner then return {0, 'taken'} end
  return {0, 'expired'}
end
handoff(KEYS[1], KEYS[2], ARGV[2], ARGV[3])
return {1}
";

/// KEYS: data, lock, queue. ARGV: token ('' when not holding), wake_prefix, claim_ms.
/// Reply: `{1}` destroyed, `{0, 'locked'}` another request holds the lock.
const DESTROY: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return {0, 'locked'} end
redis.call('DEL', KEYS[1])
if owner then handoff(KEYS[2], KEYS[3], ARGV[2], ARGV[3]) end
return {1}
";

/// KEYS: lock, queue. ARGV: token, wake_prefix, claim_ms.
/// Clears what a token may have left behind when its request gave up on a
/// hung or unreachable server: the server may run the request's last script
/// after the client stopped waiting. Reply: `{1}`.
const ABANDON: &str = r"
redis.call('LREM', KEYS[2], 0, ARGV[1])
redis.call('DEL', ARGV[2] .. ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  handoff(KEYS[1], KEYS[2], ARGV[2], ARGV[3])
end
return {1}
";

fn with_handoff(body: &str) -> Script {
    Script::new(&format!("{HANDOFF}{body}"))
}

pub(crate) static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(ACQUIRE));
pub(crate) static COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(COMMIT));
pub(crate) static TOUCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(TOUCH));
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(RELEASE));
pub(crate) static DESTROY_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(DESTROY));
pub(crate) static ABANDON_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(ABANDON));

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

    pub(crate) fn key(mut self, key: impl ToRedisArgs) -> Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    pub(crate) fn arg(mut self, arg: impl ToRedisArgs) -> Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    fn cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash())
            .arg(self.keys.len())
            .arg(&self.keys)
            .arg(&self.args);
        cmd
    }

    /// Runs the script, then `then` in the same round trip when given (the
    /// `WAIT` of a durable write), and returns both replies.
    pub(crate) fn run(
        &self,
        con: &mut Connection,
        then: Option<&Cmd>,
    ) -> RedisResult<(Value, Value)> {
        let send = |con: &mut Connection| -> RedisResult<(Value, Value)> {
            match then {
                None => Ok((self.cmd().query(con)?, Value::Nil)),
                Some(then) => redis::pipe()
                    .add_command(self.cmd())
                    .add_command(then.clone())
                    .query(con),
            }
        };
        match send(con) {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                // Nothing ran: a script the server does not know is refused
                // before any effect.
                self.script.load(con)?;
                send(con)
            }
            other => other,
        }
    }
}

#[cfg(feature = "tokio")]
impl Call {
    /// [`run`](Self::run) on an async connection.
    pub(crate) async fn run_async(
        &self,
        con: &mut impl redis::aio::ConnectionLike,
        then: Option<&Cmd>,
    ) -> RedisResult<(Value, Value)> {
        for loaded in [false, true] {
            let sent = match then {
                None => self
                    .cmd()
                    .query_async::<Value>(con)
                    .await
                    .map(|v| (v, Value::Nil)),
                Some(then) => {
                    redis::pipe()
                        .add_command(self.cmd())
                        .add_command(then.clone())
                        .query_async(con)
                        .await
                }
            };
            match sent {
                Err(e) if !loaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    self.script.load_async(con).await?;
                }
                other => return other,
            }
        }
        unreachable!("the second pass always returns")
    }
}

/// Reply of `ACQUIRE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireReply {
    /// The lock is ours; the stored value, if any.
    Acquired(Option<Vec<u8>>),
    /// The session does not exist and the caller required it; no lock taken.
    Missing,
    /// Another request holds the lock and `max_waiters` requests already
    /// wait for it; this one was not queued.
    Crowded,
    /// Another request holds the lock for `pttl_ms` more; on the final try
    /// the stored value comes along (for read-only opens).
    Busy {
        /// Remaining lease of the holder.
        pttl_ms: u64,
        /// The stored value, on the final try only.
        data: Option<Vec<u8>>,
    },
}

/// Reply of `COMMIT`, `TOUCH` and `RELEASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencedReply {
    /// Applied, and the lock was released or handed on.
    Done,
    /// Refused: the lock was not ours any more.
    Lost(LostReason),
}

/// Reply of `DESTROY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestroyReply {
    /// Deleted (or was already absent).
    Done,
    /// Another request holds the lock.
    Locked,
}

fn bad(what: &str, v: &Value) -> Error {
    Error::Protocol(format!("{what}: {v:?}"))
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
        match int(&it[0]) {
            Some(1) => Ok(Self::Acquired(bytes(it.get(1)))),
            Some(0) => Ok(Self::Missing),
            Some(3) => Ok(Self::Crowded),
            Some(2) => {
                let pttl = it.get(1).and_then(int).ok_or_else(|| bad("acquire", v))?;
                Ok(Self::Busy {
                    // -1/-2 (no TTL / gone meanwhile) mean "retry now".
                    pttl_ms: u64::try_from(pttl).unwrap_or(0),
                    data: bytes(it.get(2)),
                })
            }
            _ => Err(bad("acquire", v)),
        }
    }
}

impl FencedReply {
    /// Parses the script reply.
    pub fn parse(v: &Value) -> Result<Self, Error> {
        let it = items("fenced step", v)?;
        match (int(&it[0]), status(it.get(1))) {
            (Some(1), _) => Ok(Self::Done),
            (Some(0), Some(b"expired")) => Ok(Self::Lost(LostReason::Expired)),
            (Some(0), Some(b"taken")) => Ok(Self::Lost(LostReason::Taken)),
            _ => Err(bad("fenced step", v)),
        }
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
    fn parses_acquire_replies() {
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1), bulk(b"x")])).unwrap(),
            AcquireReply::Acquired(Some(b"x".to_vec()))
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1), Value::Nil])).unwrap(),
            AcquireReply::Acquired(None)
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(1)])).unwrap(),
            AcquireReply::Acquired(None)
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(0)])).unwrap(),
            AcquireReply::Missing
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(2), Value::Int(-1)])).unwrap(),
            AcquireReply::Busy {
                pttl_ms: 0,
                data: None
            }
        );
        assert_eq!(
            AcquireReply::parse(&arr(vec![Value::Int(2), Value::Int(70), bulk(b"d")])).unwrap(),
            AcquireReply::Busy {
                pttl_ms: 70,
                data: Some(b"d".to_vec())
            }
        );
    }

    #[test]
    fn parses_fenced_replies() {
        assert_eq!(
            FencedReply::parse(&arr(vec![Value::Int(1)])).unwrap(),
            FencedReply::Done
        );
        assert_eq!(
            FencedReply::parse(&arr(vec![Value::Int(0), bulk(b"taken")])).unwrap(),
            FencedReply::Lost(LostReason::Taken)
        );
        assert_eq!(
            FencedReply::parse(&arr(vec![Value::Int(0), bulk(b"expired")])).unwrap(),
            FencedReply::Lost(LostReason::Expired)
        );
        assert_eq!(
            DestroyReply::parse(&arr(vec![Value::Int(0), bulk(b"locked")])).unwrap(),
            DestroyReply::Locked
        );
    }

    #[test]
    fn rejects_unexpected_replies() {
        for v in [
            Value::Nil,
            arr(vec![]),
            arr(vec![Value::Int(7)]),
            arr(vec![Value::Int(2)]),
            Value::Okay,
        ] {
            assert!(AcquireReply::parse(&v).is_err(), "{v:?}");
            assert!(FencedReply::parse(&v).is_err(), "{v:?}");
        }
        assert!(FencedReply::parse(&arr(vec![Value::Int(0), bulk(b"why")])).is_err());
    }
}
