//! The handlers a site migrates from, sans-IO: their key names, the lock
//! phpredis takes, and the commands and scripts of `compat=phpredis` (a
//! stickless pod in a fleet that still has phpredis pods) and of
//! `import=...` (a native pod that moves old sessions over on a miss).
//!
//! phpredis (5.3 and 6.x, `redis_session.c`) stores the raw
//! `serialize_handler` output under `<prefix><id>` with `SETEX`, and, with
//! `redis.session.locking_enabled=1`, locks with `SET <key>_LOCK <secret> NX
//! PX <lock_expire>`, polling until it gets it, and releases with a
//! compare-and-delete script. Symfony's `RedisSessionHandler` stores the raw
//! data under `sf_s<id>` and takes no lock.
//!
//! An importer leaves [`MOVED`] in the old lock key: phpredis pods and
//! compat pods then cannot lock the old session again (a phpredis pod's
//! write is refused without its lock; a compat pod turns to the native
//! session), so a moved session does not come back in the old format.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Pipeline, Script, Value};

use crate::SessionId;
use crate::config::Settings;
use crate::error::{Error, LostReason};
use crate::keys::SessionKeys;
use crate::scripts::Call;
use crate::steps::{ms, reply_as};
use crate::token::LockToken;

/// What an importer leaves in the old session's lock key. Never a value
/// phpredis writes there (`host|pid`, or a random secret on 6.x).
pub const MOVED: &str = "stickless:moved";

/// PHP's default `session.gc_maxlifetime`: the lifetime an imported session
/// gets when its old key had none.
pub const UNEXPIRING_TTL: Duration = Duration::from_secs(1440);

/// The handler sessions are migrated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// phpredis's `redis` save handler.
    Phpredis,
    /// Symfony's `RedisSessionHandler`.
    Symfony,
}

impl Source {
    /// Whether the old handler locks its sessions (phpredis does, with
    /// `redis.session.locking_enabled=1`; Symfony never does).
    pub fn locks(self) -> bool {
        self == Self::Phpredis
    }

    /// The key prefix the handler uses by default.
    pub fn default_prefix(self) -> &'static str {
        match self {
            Self::Phpredis => "PHPREDIS_SESSION:",
            Self::Symfony => "sf_s",
        }
    }

    /// As the option spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Phpredis => "phpredis",
            Self::Symfony => "symfony",
        }
    }
}

/// An old handler and the prefix its keys carry: `phpredis`,
/// `phpredis:myprefix_`, `symfony`, `symfony:app_sess_`.
///
/// ```
/// use stickless::legacy::{Legacy, Source};
/// let l = Legacy::parse("phpredis").unwrap();
/// assert_eq!((l.source, l.prefix.as_str()), (Source::Phpredis, "PHPREDIS_SESSION:"));
/// let l = Legacy::parse("symfony:app_").unwrap();
/// assert_eq!((l.source, l.prefix.as_str()), (Source::Symfony, "app_"));
/// assert_eq!(Legacy::parse("memcached"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Legacy {
    /// The old handler.
    pub source: Source,
    /// Its key prefix.
    pub prefix: String,
}

impl Legacy {
    /// Parses `<source>[:<prefix>]`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        let (name, prefix) = match value.split_once(':') {
            Some((name, prefix)) => (name, Some(prefix)),
            None => (value, None),
        };
        let source = match name.to_ascii_lowercase().as_str() {
            "phpredis" => Source::Phpredis,
            "symfony" => Source::Symfony,
            _ => return None,
        };
        let prefix = prefix.unwrap_or(source.default_prefix()).to_owned();
        Some(Self { source, prefix })
    }

    /// The old handler's key for `id`.
    pub fn data_key(&self, id: &SessionId) -> String {
        format!("{}{}", self.prefix, id.expose())
    }

    /// phpredis's lock key for `id`; none for a handler without a lock.
    pub fn lock_key(&self, id: &SessionId) -> Option<String> {
        self.source
            .locks()
            .then(|| format!("{}_LOCK", self.data_key(id)))
    }

    /// The session ID an old key names, if it is one of this handler's
    /// session keys (not a lock, not another application's key).
    pub fn id_of(&self, key: &str) -> Option<SessionId> {
        let id = key.strip_prefix(self.prefix.as_str())?;
        if self.source.locks() && id.ends_with("_LOCK") {
            return None;
        }
        SessionId::parse(id).ok()
    }

    /// The keys of `id` in compat mode (`data`, `lock` are phpredis's).
    pub(crate) fn keys(&self, native_prefix: &str, id: &SessionId) -> SessionKeys {
        SessionKeys::legacy(native_prefix, id, self.data_key(id))
    }
}

/// KEYS: data, lock. ARGV: token, ttl_s, payload, resend (`1`/`0`).
/// phpredis's write as one step, fenced: `SETEX` only while the lock is
/// still ours (phpredis itself reads the lock and then writes), then the
/// lock is released. A resend whose first send was applied finds its own
/// payload stored. Reply: 1 written; 0 the lock lapsed and is free; 2 it
/// is held by another request; 3 the session was moved to the native format.
const LEGACY_COMMIT: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner == ARGV[1] then
  redis.call('SETEX', KEYS[1], ARGV[2], ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
if ARGV[4] == '1' and redis.call('GET', KEYS[1]) == ARGV[3] then return 1 end
if owner == false then return 0 end
if owner == ARGV[5] then return 3 end
return 2
";

/// KEYS: data, lock. ARGV: token, ttl_s. phpredis's `update_timestamp`
/// (`EXPIRE`) and release, while the lock is ours. Reply: `{1}`.
const LEGACY_TOUCH: &str = r"
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('DEL', KEYS[2])
end
return {1}
";

/// KEYS: lock. ARGV: token. phpredis's own release: compare-and-delete.
/// Reply: `{1}`.
const LEGACY_RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return {1}
";

/// KEYS: data, lock. ARGV: token (empty: none held). Deletes the session
/// unless another request holds its lock. Reply: `{1}` done, `{0}` locked.
const LEGACY_DESTROY: &str = r"
local owner = redis.call('GET', KEYS[2])
if owner ~= false and owner ~= ARGV[1] then return {0} end
redis.call('DEL', KEYS[1])
if owner ~= false then redis.call('DEL', KEYS[2]) end
return {1}
";

/// KEYS: old lock. ARGV: token, marker, marker_ms. Turns the importer's
/// hold on the old lock (or the marker an interrupted import left) into the
/// marker, with no moment in which the lock is free. Reply: 1, or 0 when
/// the old lock is held by someone else (our hold lapsed).
const MARK_MOVED: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] or owner == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: native data, native lock. ARGV: token, envelope, ttl_ms. Stores the
/// imported session while the importer's native lock is still its own.
/// Reply: 1 stored (or stored already by this import's first send); 0 the
/// native lock was lost; 2 a native session exists already.
const STORE_IMPORTED: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local stored = redis.call('GET', KEYS[1])
if stored == ARGV[2] then return 1 end
if stored ~= false then return 2 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";

static LEGACY_COMMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEGACY_COMMIT));
static LEGACY_TOUCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEGACY_TOUCH));
static LEGACY_RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEGACY_RELEASE));
static LEGACY_DESTROY_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEGACY_DESTROY));
static MARK_MOVED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(MARK_MOVED));
static STORE_IMPORTED_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(STORE_IMPORTED));

/// phpredis's lock attempt, with the data and the lock's owner in the same
/// round trip: `SET lock token NX PX ttl`, `GET data`, `GET lock`. Without
/// `data` (an importer, whose old key may be in another cluster slot) the
/// lock is read in its place, so the reply keeps its shape.
pub(crate) fn take_lock(
    lock: &str,
    data: Option<&str>,
    token: &LockToken,
    ttl: Duration,
) -> Pipeline {
    let data = data.unwrap_or(lock);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(lock)
        .arg(token.as_str())
        .arg("NX")
        .arg("PX")
        .arg(ms(ttl))
        .cmd("GET")
        .arg(data)
        .cmd("GET")
        .arg(lock);
    pipe
}

/// What a phpredis lock attempt found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OldLock {
    /// Ours now; the stored value, if any.
    Taken(Option<Vec<u8>>),
    /// Held by another request; the stored value, for a read-only open.
    Held(Option<Vec<u8>>),
    /// An importer moved the session into the native format.
    Moved,
}

/// Reads the reply of [`take_lock`]. A resent attempt whose first `SET`
/// landed finds the lock held by its own token: that is ours too.
pub(crate) fn old_lock(reply: Value, token: &LockToken) -> Result<OldLock, Error> {
    let (set, stored, owner): (Value, Option<Vec<u8>>, Option<Vec<u8>>) =
        reply_as("phpredis lock", reply)?;
    let owner = owner.unwrap_or_default();
    Ok(if set != Value::Nil || owner == token.as_str().as_bytes() {
        OldLock::Taken(stored)
    } else if owner == MOVED.as_bytes() {
        OldLock::Moved
    } else {
        OldLock::Held(stored)
    })
}

/// The fenced phpredis write; `resend` for every attempt after the first.
pub(crate) fn commit(
    keys: &SessionKeys,
    token: &LockToken,
    payload: &[u8],
    ttl: Duration,
    resend: bool,
) -> Call {
    Call::new(&LEGACY_COMMIT_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .arg(token.as_str())
        .arg(ttl_secs(ttl))
        .arg(payload)
        .arg(if resend { "1" } else { "0" })
        .arg(MOVED)
}

/// Reads the reply of [`commit`].
pub(crate) fn committed(keys: &SessionKeys, reply: &Value) -> Result<(), Error> {
    let lost = |reason| {
        Err(Error::LockLost {
            session: keys.tag().to_owned(),
            reason,
        })
    };
    match reply {
        Value::Int(1) => Ok(()),
        Value::Int(0) => lost(LostReason::Changed),
        Value::Int(2 | 3) => lost(LostReason::Taken),
        other => Err(Error::Protocol(format!(
            "phpredis write: unexpected reply {other:?}"
        ))),
    }
}

/// phpredis's `EXPIRE` and release.
pub(crate) fn touch(keys: &SessionKeys, token: &LockToken, ttl: Duration) -> Call {
    Call::new(&LEGACY_TOUCH_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .arg(token.as_str())
        .arg(ttl_secs(ttl))
}

/// phpredis's compare-and-delete release of `lock`.
pub(crate) fn release(lock: &str, token: &LockToken) -> Call {
    Call::new(&LEGACY_RELEASE_SCRIPT)
        .key(lock)
        .arg(token.as_str())
}

/// Deletes a phpredis session unless another request holds it.
pub(crate) fn destroy(keys: &SessionKeys, token: &str) -> Call {
    Call::new(&LEGACY_DESTROY_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .arg(token)
}

/// Puts the marker in the old lock key for as long as the old session
/// could still have lived.
pub(crate) fn mark_moved(lock: &str, token: &LockToken, lifetime: Duration, s: &Settings) -> Call {
    Call::new(&MARK_MOVED_SCRIPT)
        .key(lock)
        .arg(token.as_str())
        .arg(MOVED)
        .arg(ms(lifetime.max(s.lock_ttl)))
}

/// Stores the imported envelope under the importer's native lock.
pub(crate) fn store_imported(
    keys: &SessionKeys,
    token: &LockToken,
    envelope: &[u8],
    ttl: Duration,
) -> Call {
    Call::new(&STORE_IMPORTED_SCRIPT)
        .key(keys.data())
        .key(keys.lock())
        .arg(token.as_str())
        .arg(envelope)
        .arg(ms(ttl))
}

/// What [`store_imported`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The envelope is the native session now.
    Done,
    /// A native session exists already; the old one is left alone.
    Exists,
}

/// Reads the reply of [`store_imported`].
pub(crate) fn stored(keys: &SessionKeys, reply: &Value) -> Result<Stored, Error> {
    match reply {
        Value::Int(1) => Ok(Stored::Done),
        Value::Int(2) => Ok(Stored::Exists),
        Value::Int(0) => Err(Error::LockLost {
            session: keys.tag().to_owned(),
            reason: LostReason::Taken,
        }),
        other => Err(Error::Protocol(format!(
            "import: unexpected reply {other:?}"
        ))),
    }
}

/// `GET` and `PTTL` of an old key, pipelined.
pub(crate) fn read_old(key: &str) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
    pipe
}

/// The old value and the lifetime left to it (`None`: no expiry set).
pub(crate) fn old_value(reply: Value) -> Result<(Option<Vec<u8>>, Option<Duration>), Error> {
    let (value, pttl): (Option<Vec<u8>>, i64) = reply_as("import read", reply)?;
    let left = u64::try_from(pttl)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    Ok((value, left))
}

/// phpredis writes whole seconds (`SETEX` with `session.gc_maxlifetime`).
fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::parse("abcdefghijklmnopqrstuvwxyz").unwrap()
    }

    #[test]
    fn keys_are_phpredis_own() {
        let l = Legacy::parse("phpredis").unwrap();
        assert_eq!(
            l.data_key(&id()),
            "PHPREDIS_SESSION:abcdefghijklmnopqrstuvwxyz"
        );
        assert_eq!(
            l.lock_key(&id()).as_deref(),
            Some("PHPREDIS_SESSION:abcdefghijklmnopqrstuvwxyz_LOCK")
        );
        let keys = l.keys("stickless:", &id());
        assert_eq!(keys.data(), l.data_key(&id()));
        assert_eq!(keys.lock(), l.lock_key(&id()).unwrap());
        assert!(!keys.tag().contains("abcdefghij"), "the tag hides the ID");
        let sf = Legacy::parse("symfony").unwrap();
        assert_eq!(sf.data_key(&id()), "sf_sabcdefghijklmnopqrstuvwxyz");
        assert_eq!(sf.lock_key(&id()), None);
    }

    #[test]
    fn ids_come_back_from_session_keys_only() {
        let l = Legacy::parse("phpredis:p_").unwrap();
        assert_eq!(l.id_of("p_abcdefghijklmnopqrstuvwxyz"), Some(id()));
        assert_eq!(l.id_of("p_abcdefghijklmnopqrstuvwxyz_LOCK"), None);
        assert_eq!(l.id_of("other:abcdefghijklmnopqrstuvwxyz"), None);
        assert_eq!(l.id_of("p_not an id"), None);
    }

    #[test]
    fn lock_replies_are_read_by_owner() {
        let token = LockToken::random().unwrap();
        let reply = |set: Value, owner: &[u8]| {
            Value::Array(vec![
                set,
                Value::BulkString(b"a|i:1;".to_vec()),
                Value::BulkString(owner.to_vec()),
            ])
        };
        let ok = Value::Okay;
        assert_eq!(
            old_lock(reply(ok, token.as_str().as_bytes()), &token).unwrap(),
            OldLock::Taken(Some(b"a|i:1;".to_vec()))
        );
        assert_eq!(
            old_lock(reply(Value::Nil, token.as_str().as_bytes()), &token).unwrap(),
            OldLock::Taken(Some(b"a|i:1;".to_vec())),
            "a resend whose first SET landed"
        );
        assert_eq!(
            old_lock(reply(Value::Nil, MOVED.as_bytes()), &token).unwrap(),
            OldLock::Moved
        );
        assert_eq!(
            old_lock(reply(Value::Nil, b"web-1|4242"), &token).unwrap(),
            OldLock::Held(Some(b"a|i:1;".to_vec()))
        );
    }
}
