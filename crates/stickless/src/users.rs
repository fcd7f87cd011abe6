//! Sessions per user, sans-IO: the user's index keys, its scripts and their
//! replies. "Log out everywhere" and "your active sessions" need to find a
//! user's sessions without scanning the keyspace, and without a key or a
//! script that spans two slots.
//!
//! - The index lives in the user's own slot: its keys share a hash tag
//!   derived, like a session's, from a domain-separated SHA-256 of the user
//!   ID, so no user ID reaches Redis.
//! - Each entry is a session's tag, scored by the server time (ms) at which
//!   it expires; every script that touches the index first drops entries
//!   whose time has passed, and the keys themselves expire with their
//!   latest entry. No keyspace notification, no sweeper.
//! - A session's keys follow from its tag alone, so logging a user out
//!   walks the entries and destroys each session with a script in that
//!   session's own slot: never a CROSSSLOT.
//! - A bound session carries its user's tag in its envelope (see
//!   [`Envelope::user`](crate::Envelope::user)), so its commits and touches
//!   know to renew its entry, and unbound sessions pay nothing.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use redis::{Script, Value};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::keys::SessionKeys;
use crate::scripts::{Call, shape, with_handoff};
use crate::session::Lease;
use crate::steps::ms;

/// The longest user ID accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 512;
/// The longest label accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 256;
/// Entries one script call lists or drops at most: bounds the work of a
/// call, whatever an index holds.
const BATCH: usize = 1000;

/// Bytes of SHA-256 kept for the tag, as for sessions.
const TAG_BYTES: usize = 16;
/// Domain separation from session tags and from other systems' hashes.
const DOMAIN: &[u8] = b"stickless/user-key/v1\0";

/// Why a user ID or a label was refused. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUser {
    /// An empty user ID.
    #[error("user ID is empty")]
    Empty,
    /// Longer than [`MAX_USER_ID_LEN`].
    #[error("user ID has {len} bytes; at most {MAX_USER_ID_LEN} are accepted")]
    TooLong {
        /// Length of the refused ID.
        len: usize,
    },
    /// A label longer than [`MAX_LABEL_LEN`].
    #[error("session label has {len} bytes; at most {MAX_LABEL_LEN} are accepted")]
    LabelTooLong {
        /// Length of the refused label.
        len: usize,
    },
}

/// An application's user ID (any bytes: a number, an email, a UUID), 1 to
/// [`MAX_USER_ID_LEN`] bytes. It is personal data: this type never prints
/// it, and only its hash reaches Redis.
///
/// ```
/// use stickless::UserId;
/// let user = UserId::parse("ann@example.com").unwrap();
/// assert_eq!(format!("{user:?}"), "UserId(<15 bytes>)");
/// assert!(UserId::parse("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserId(Box<[u8]>);

impl UserId {
    /// Checks the length.
    pub fn parse(raw: &str) -> Result<Self, InvalidUser> {
        Self::from_bytes(raw.as_bytes())
    }

    /// Checks the length of raw bytes (PHP strings are bytes).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, InvalidUser> {
        match raw.len() {
            0 => Err(InvalidUser::Empty),
            len if len > MAX_USER_ID_LEN => Err(InvalidUser::TooLong { len }),
            _ => Ok(Self(raw.into())),
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId(<{} bytes>)", self.0.len())
    }
}

/// Checks a label's length.
pub(crate) fn check_label(label: Option<&str>) -> Result<(), InvalidUser> {
    match label {
        Some(l) if l.len() > MAX_LABEL_LEN => Err(InvalidUser::LabelTooLong { len: l.len() }),
        _ => Ok(()),
    }
}

/// The keys of one user's index.
///
/// ```
/// use stickless::{UserId, UserKeys};
/// let keys = UserKeys::derive("app:", &UserId::parse("ann").unwrap());
/// assert!(keys.sessions().starts_with("app:{"));
/// assert!(!keys.sessions().contains("ann"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeys {
    /// `<prefix>{<tag>}`.
    base: String,
    tag_start: usize,
}

impl UserKeys {
    /// Derives the index keys of `user` under `prefix`.
    pub fn derive(prefix: &str, user: &UserId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(&user.0);
        let hex = hex::encode(&hasher.finalize()[..TAG_BYTES]);
        Self::from_hex(prefix, &hex)
    }

    /// The keys for a tag as a bound session's envelope stores it (the hex
    /// digits, without braces); `None` for anything else.
    pub(crate) fn from_stored(prefix: &str, hex: &str) -> Option<Self> {
        is_tag_hex(hex).then(|| Self::from_hex(prefix, hex))
    }

    fn from_hex(prefix: &str, hex: &str) -> Self {
        Self {
            base: format!("{prefix}{{{hex}}}"),
            tag_start: prefix.len(),
        }
    }

    /// The `{tag}` part, as warnings name the user.
    pub fn tag(&self) -> &str {
        &self.base[self.tag_start..]
    }

    /// The tag's hex digits, as a bound session's envelope stores them.
    pub(crate) fn hex(&self) -> &str {
        self.tag().trim_start_matches('{').trim_end_matches('}')
    }

    /// Sorted set: session tag -> server time (ms) the session expires.
    pub fn sessions(&self) -> String {
        format!("{}:user", self.base)
    }

    /// Sorted set: session tag -> server time (ms) it was last used.
    pub fn seen(&self) -> String {
        format!("{}:user-seen", self.base)
    }

    /// Hash: session tag -> `<created ms>\n<label>`.
    pub fn meta(&self) -> String {
        format!("{}:user-meta", self.base)
    }
}

fn is_tag_hex(hex: &str) -> bool {
    hex.len() == 2 * TAG_BYTES
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A session's tag without its braces: how the index names it.
pub(crate) fn member(keys: &SessionKeys) -> &str {
    keys.tag().trim_start_matches('{').trim_end_matches('}')
}

/// The keys of the session an index entry names; `None` for an entry
/// stickless did not write.
pub(crate) fn session_of(prefix: &str, member: &str) -> Option<SessionKeys> {
    if !is_tag_hex(member) {
        return None;
    }
    SessionKeys::from_data_key(prefix, &format!("{prefix}{{{member}}}:data"))
}

/// One live session of a user, as [`Store::user_sessions`](crate::Store::user_sessions)
/// lists it. Never the session ID: the tag names it, as warnings and the
/// `stickless` command do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// The session's hashed tag, `{…}`.
    pub session: String,
    /// Unix ms the session was created (as bound; its first write).
    pub created_ms: u64,
    /// Unix ms (server time) of its last request, committed or touched.
    pub last_seen_ms: u64,
    /// Unix ms (server time) it expires unless used again.
    pub expires_ms: u64,
    /// What the application called it at `bind_user` (a device, say).
    pub label: Option<String>,
    /// Whether this is the session the caller named as its own.
    pub current: bool,
}

/// What the steps after a bound session's commit, touch or destroy need
/// from its lease, which those steps consume.
pub(crate) struct Bound {
    pub user: UserKeys,
    pub session: SessionKeys,
    pub member: String,
    pub created_ms: u64,
}

impl Bound {
    pub fn of(lease: &Lease) -> Option<Self> {
        let user = lease.user.clone()?;
        Some(Self {
            user,
            member: member(&lease.keys).to_owned(),
            session: lease.keys.clone(),
            created_ms: lease.created_ms(),
        })
    }

    /// The error for a step whose write went through but whose index
    /// renewal failed.
    pub fn not_renewed(&self, cause: Error) -> Error {
        Error::IndexNotUpdated {
            session: self.session.tag().to_owned(),
            user: self.user.tag().to_owned(),
            cause: Box::new(cause),
        }
    }
}

/// Server time now, in ms, in every script below.
const NOW: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// KEYS: sessions, seen, meta. ARGV: session tag, ttl_ms, meta, overwrite.
/// Adds or renews one entry (expiry now + ttl, seen now), sets its meta
/// (only if it has none unless `overwrite`), drops expired entries, and
/// makes every key expire with the latest entry. Reply: `1`.
///
/// The entry is written before the expired ones go, and its time is in the
/// future, so no key is emptied and touched again in one call (see the
/// migration rule in `scripts.rs`).
const INDEX_PUT: &str = r"
local now = now_ms()
local tag = ARGV[1]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), tag)
redis.call('ZADD', KEYS[2], now, tag)
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], tag, ARGV[3])
else
  redis.call('HSETNX', KEYS[3], tag, ARGV[3])
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], last[2]) end
return 1
";

/// KEYS: sessions, seen, meta. ARGV: limit.
/// Drops expired entries, then lists the live ones:
/// `{{tag, expires_ms, seen_ms|nil, meta|nil}, ...}`.
const INDEX_LIST: &str = r"
local now = now_ms()
local total = redis.call('ZCARD', KEYS[1])
if total == 0 then return {} end
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1000)
if #gone > 0 then
  redis.call('ZREM', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
  if #gone == total then return {} end
end
local live = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #live, 2 do
  if tonumber(live[i + 1]) > now then
    out[#out + 1] = {live[i], live[i + 1],
      redis.call('ZSCORE', KEYS[2], live[i]), redis.call('HGET', KEYS[3], live[i])}
  end
end
return out
";

/// KEYS: sessions, seen, meta. ARGV: session tags.
/// Removes those entries; the keys then expire with the latest entry left.
/// Reply: how many entries were removed.
const INDEX_DROP: &str = r"
local total = redis.call('ZCARD', KEYS[1])
if total == 0 then return 0 end
local removed = redis.call('ZREM', KEYS[1], unpack(ARGV))
if removed == 0 then return 0 end
redis.call('ZREM', KEYS[2], unpack(ARGV))
redis.call('HDEL', KEYS[3], unpack(ARGV))
if removed < total then
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  for i = 1, 3 do redis.call('PEXPIREAT', KEYS[i], last[2]) end
end
return removed
";

/// KEYS: data, lock, queue, wake (one session's). ARGV: claim_ms.
/// Deletes the session whoever holds its lock, and hands the lock on as if
/// its holder had released it: the holder's late write finds the session
/// changed and is refused (fenced), and a waiter gets an empty session.
/// Reply: `1` if there was a session, `0` if not.
const LOGOUT: &str = r"
local existed = redis.call('DEL', KEYS[1])
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= '~' then handoff(KEYS[2], KEYS[3], KEYS[4], ARGV[1]) end
return existed
";

static INDEX_PUT_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{NOW}{INDEX_PUT}")));
static INDEX_LIST_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{NOW}{INDEX_LIST}")));
static INDEX_DROP_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(INDEX_DROP));
static LOGOUT_SCRIPT: LazyLock<Script> = LazyLock::new(|| with_handoff(LOGOUT));

fn index_call(script: &'static Script, user: &UserKeys) -> Call {
    Call::new(script)
        .key(user.sessions())
        .key(user.seen())
        .key(user.meta())
}

/// How an entry's meta is written.
pub(crate) enum Meta<'a> {
    /// At `bind_user`: created time and label, replacing what was there.
    Bind {
        created_ms: u64,
        label: Option<&'a str>,
    },
    /// At a commit or touch: kept as it is; written only if it went
    /// missing, with what the session knows.
    Renew { created_ms: u64 },
}

/// Adds or renews `session`'s entry in `user`'s index for `ttl`.
pub(crate) fn put(user: &UserKeys, session: &SessionKeys, ttl: Duration, meta: Meta<'_>) -> Call {
    let (created_ms, label, overwrite) = match meta {
        Meta::Bind { created_ms, label } => (created_ms, label, true),
        Meta::Renew { created_ms } => (created_ms, None, false),
    };
    let meta = format!("{created_ms}\n{}", label.unwrap_or(""));
    index_call(&INDEX_PUT_SCRIPT, user)
        .arg(member(session))
        .arg(ms(ttl))
        .arg(meta)
        .arg(u8::from(overwrite))
}

/// Lists `user`'s live entries (dropping expired ones).
pub(crate) fn list(user: &UserKeys) -> Call {
    index_call(&INDEX_LIST_SCRIPT, user).arg(BATCH)
}

/// Removes `members` (at most a [`batch`] of them) from `user`'s index.
pub(crate) fn drop_entries(user: &UserKeys, members: &[String]) -> Call {
    index_call(&INDEX_DROP_SCRIPT, user).arg(members)
}

/// Splits entries into calls of a bounded size.
pub(crate) fn batches(members: &[String]) -> impl Iterator<Item = &[String]> {
    members.chunks(100)
}

/// Destroys one session of a logged-out user, in its own slot.
pub(crate) fn logout(session: &SessionKeys, claim: Duration) -> Call {
    Call::new(&LOGOUT_SCRIPT)
        .key(session.data())
        .key(session.lock())
        .key(session.queue())
        .key(session.wake())
        .arg(ms(claim))
}

/// One entry as `INDEX_LIST` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub member: String,
    pub expires_ms: u64,
    pub seen_ms: u64,
    pub created_ms: u64,
    pub label: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        // Scores come back as decimal strings.
        other => text(other)?.parse::<f64>().ok().map(|f| f.max(0.0) as u64),
    }
}

/// Reads `INDEX_LIST`'s reply.
pub(crate) fn parse_list(v: &Value) -> Result<Vec<Entry>, Error> {
    let bad = || Error::Protocol(format!("user sessions: got {}", shape(v)));
    let Value::Array(rows) = v else {
        return Err(bad());
    };
    rows.iter()
        .map(|row| {
            let Value::Array(f) = row else {
                return Err(bad());
            };
            let member = f.first().and_then(text).ok_or_else(bad)?;
            let expires_ms = f.get(1).and_then(number).ok_or_else(bad)?;
            let seen_ms = f.get(2).and_then(number).unwrap_or(0);
            let meta = f.get(3).and_then(text).unwrap_or_default();
            let (created, label) = meta.split_once('\n').unwrap_or((&meta, ""));
            Ok(Entry {
                member,
                expires_ms,
                seen_ms,
                created_ms: created.parse().unwrap_or(0),
                label: (!label.is_empty()).then(|| label.to_owned()),
            })
        })
        .collect()
}

/// Reads the reply of `LOGOUT`: whether a session was there.
pub(crate) fn parse_logout(v: &Value) -> Result<bool, Error> {
    match v {
        Value::Int(n) => Ok(*n > 0),
        other => Err(Error::Protocol(format!("logout: got {}", shape(other)))),
    }
}

/// Reads the reply of `INDEX_PUT` and `INDEX_DROP`.
pub(crate) fn parse_count(what: &str, v: &Value) -> Result<u64, Error> {
    match v {
        Value::Int(n) => Ok(u64::try_from(*n).unwrap_or(0)),
        other => Err(Error::Protocol(format!("{what}: got {}", shape(other)))),
    }
}

/// The listing for the caller: entries whose session still exists, the
/// caller's own marked.
pub(crate) fn listing(entries: Vec<Entry>, current: Option<&str>) -> Vec<UserSession> {
    entries
        .into_iter()
        .map(|e| UserSession {
            current: current == Some(e.member.as_str()),
            session: format!("{{{}}}", e.member),
            created_ms: e.created_ms,
            last_seen_ms: e.seen_ms,
            expires_ms: e.expires_ms,
            label: e.label,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SessionId;

    #[test]
    fn user_ids_are_checked_and_never_printed() {
        assert_eq!(UserId::parse(""), Err(InvalidUser::Empty));
        let long = "x".repeat(MAX_USER_ID_LEN + 1);
        assert_eq!(
            UserId::parse(&long),
            Err(InvalidUser::TooLong {
                len: MAX_USER_ID_LEN + 1
            })
        );
        assert!(UserId::parse(&long[1..]).is_ok());
        let user = UserId::parse("ann@example.com").unwrap();
        assert!(!format!("{user:?}").contains("ann"));
        assert!(check_label(Some(&"l".repeat(MAX_LABEL_LEN + 1))).is_err());
        assert!(check_label(Some("Firefox on Linux")).is_ok());
    }

    #[test]
    fn index_keys_share_the_users_tag_and_hide_the_id() {
        let keys = UserKeys::derive("app:", &UserId::parse("ann@example.com").unwrap());
        let tag = keys.tag();
        assert_eq!(tag.len(), 2 + 2 * TAG_BYTES);
        for key in [keys.sessions(), keys.seen(), keys.meta()] {
            assert_eq!(&key[4..4 + tag.len()], tag, "{key}");
            assert!(!key.contains("ann"));
        }
        assert_eq!(
            UserKeys::from_stored("app:", keys.hex()),
            Some(keys.clone())
        );
        assert_eq!(UserKeys::from_stored("app:", "ann"), None);
        // Pinned (python3: sha256(b"stickless/user-key/v1\0" + b"ann")[:16]):
        // a change here orphans every index.
        let ann = UserKeys::derive("", &UserId::parse("ann").unwrap());
        assert_eq!(ann.tag(), "{6678672b455100fdfae9638c90ae88c2}");
    }

    #[test]
    fn a_user_tag_is_not_the_session_tag_of_the_same_string() {
        let s = "0123456789abcdef0123456789abcdef";
        let session = SessionKeys::derive("", &SessionId::parse(s).unwrap());
        let user = UserKeys::derive("", &UserId::parse(s).unwrap());
        assert_ne!(session.tag(), user.tag());
    }

    #[test]
    fn entries_name_their_sessions_keys() {
        let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let keys = SessionKeys::derive("app:", &id);
        assert_eq!(session_of("app:", member(&keys)), Some(keys));
        assert_eq!(session_of("app:", "not-a-tag"), None);
    }

    #[test]
    fn parses_the_listing() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("aa"),
                bulk("1700000100000"),
                bulk("1700000000000"),
                bulk("1699999000000\nFirefox\non Linux"),
            ]),
            Value::Array(vec![
                bulk("bb"),
                bulk("1.7000001e12"),
                Value::Nil,
                Value::Nil,
            ]),
        ]);
        let entries = parse_list(&reply).unwrap();
        assert_eq!(entries[0].label.as_deref(), Some("Firefox\non Linux"));
        assert_eq!(entries[0].created_ms, 1_699_999_000_000);
        assert_eq!(entries[0].seen_ms, 1_700_000_000_000);
        assert_eq!(entries[1].expires_ms, 1_700_000_100_000);
        assert_eq!(entries[1].label, None);
        let listed = listing(entries, Some("bb"));
        assert_eq!(listed[0].session, "{aa}");
        assert!(!listed[0].current && listed[1].current);
        assert!(parse_list(&Value::Int(1)).is_err());
    }
}
