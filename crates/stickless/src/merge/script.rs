//! The merge-mode write: a compare-and-set on the revision that yields to
//! the lock.

use std::sync::LazyLock;

use redis::{Script, Value};

use crate::config::Settings;
use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::{Call, shape};
use crate::steps::{self, CommitStep};

/// KEYS: data, lock[, stage]. ARGV: envelope (empty when staged),
/// data_ttl_ms, stamp, resent (0 on the first send, 1 on a later one).
/// Reply: `{1}` written; `{0}` a request holds the lock (nothing written);
///        `{2, stored|false, resent}` the session changed since `stamp`
///        (nothing written), with what is stored now; `{3}` the staged
///        envelope was gone (evicted; nothing written).
///
/// `resent` comes back so that the client knows which send the reply
/// answers. Only a resend may find its own envelope stored (its first send
/// went in, and the reply was lost): two requests that made the same change
/// to the same revision in the same millisecond seal identical envelopes, and
/// on a first send that is another request's write, a conflict.
///
/// A large envelope is staged as for the locked commit (`COMMIT`): a plain
/// `SET` of `stage` in the same pipeline, moved into place here with
/// `RENAME`, so the server's work does not grow with the payload. A stage
/// that is not moved is deleted, and one left by a request that died
/// expires on its own.
///
/// `stamp` is the start of the value as this request read it (empty:
/// nothing was stored), as for a lapsed lease's commit: the envelope's magic,
/// revision and timestamps, so the payload is never copied into Lua to
/// compare it. A lock holder may have read the session and will write it
/// unconditionally under its fence, so a merge never writes while a lock is
/// held; `~` (a hand-off being claimed) is no hold: the waiter reads the data
/// when it takes the lock, after this write.
const MERGE: &str = r"
local stage = KEYS[3]
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= '~' then
  if stage then redis.call('DEL', stage) end
  return {0}
end
local stamp = ARGV[3]
local same
if stamp == '' then
  same = redis.call('EXISTS', KEYS[1]) == 0
else
  same = redis.call('GETRANGE', KEYS[1], 0, #stamp - 1) == stamp
end
if not same then
  if stage then redis.call('DEL', stage) end
  return {2, redis.call('GET', KEYS[1]), tonumber(ARGV[4])}
end
if stage then
  -- As in COMMIT: a missing stage fails the RENAME, which is the check.
  local moved = redis.pcall('RENAME', stage, KEYS[1])
  if type(moved) == 'table' and moved.err then return {3} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return {1}
";

static MERGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MERGE));

/// Where `MERGE`'s `resent` flag is among its arguments.
const RESENT_ARG: usize = 3;

/// One compare-and-set of `envelope`, staged under `stage` when given.
pub(crate) fn step(
    keys: &SessionKeys,
    envelope: &[u8],
    ttl_ms: u64,
    stamp: &[u8],
    stage: Option<&str>,
    s: &Settings,
) -> CommitStep {
    let call = Call::new(&MERGE_SCRIPT).key(keys.data()).key(keys.lock());
    let (call, sent, stage) = match stage {
        Some(key) => (
            call.key(key),
            &[][..],
            Some(steps::stage_set(key, envelope, s)),
        ),
        None => (call, envelope, None),
    };
    let first = call.arg(sent).arg(ttl_ms).arg(stamp).arg(0u8);
    let resend = first.with_arg(RESENT_ARG, 1u8);
    CommitStep {
        stage,
        first,
        resend: Some(resend),
    }
}

/// Reply of the merge script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MergeReply {
    Written,
    Locked,
    /// Another request wrote since the read: what is stored now, and
    /// whether this reply answers a resend.
    Changed {
        stored: Option<Vec<u8>>,
        resent: bool,
    },
    /// The staged envelope was evicted before the script ran.
    Unstaged,
}

impl MergeReply {
    pub(crate) fn parse(v: &Value) -> Result<Self, Error> {
        let bad = || Error::Protocol(format!("merge: got {}", shape(v)));
        let Value::Array(items) = v else {
            return Err(bad());
        };
        match items.first() {
            Some(Value::Int(1)) => Ok(Self::Written),
            Some(Value::Int(0)) => Ok(Self::Locked),
            Some(Value::Int(3)) => Ok(Self::Unstaged),
            Some(Value::Int(2)) => Ok(Self::Changed {
                stored: match items.get(1) {
                    Some(Value::BulkString(b)) => Some(b.clone()),
                    _ => None,
                },
                resent: matches!(items.get(2), Some(Value::Int(1))),
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_into_their_cases() {
        let arr = |v: Vec<Value>| Value::Array(v);
        assert_eq!(
            MergeReply::parse(&arr(vec![Value::Int(1)])).unwrap(),
            MergeReply::Written
        );
        assert_eq!(
            MergeReply::parse(&arr(vec![Value::Int(0)])).unwrap(),
            MergeReply::Locked
        );
        assert_eq!(
            MergeReply::parse(&arr(vec![
                Value::Int(2),
                Value::BulkString(b"x".to_vec()),
                Value::Int(0)
            ]))
            .unwrap(),
            MergeReply::Changed {
                stored: Some(b"x".to_vec()),
                resent: false
            }
        );
        // Nothing stored: Lua's false, which the server sends as nil.
        assert_eq!(
            MergeReply::parse(&arr(vec![Value::Int(2), Value::Nil, Value::Int(1)])).unwrap(),
            MergeReply::Changed {
                stored: None,
                resent: true
            }
        );
        assert_eq!(
            MergeReply::parse(&arr(vec![Value::Int(3)])).unwrap(),
            MergeReply::Unstaged
        );
        assert!(MergeReply::parse(&Value::Int(1)).is_err());
    }
}
