//! Redis key layout: every key of a session shares one hash tag derived from
//! a cryptographic hash of the session ID, so the ID never reaches Redis and
//! every per-session script runs inside one cluster slot.

use sha2::{Digest, Sha256};

use crate::SessionId;

/// Bytes of SHA-256 kept for the tag: 128 bits is collision-free for any
/// realistic number of sessions and keeps keys short.
const TAG_BYTES: usize = 16;

/// Domain separation, so the tag is not a plain SHA-256 of the ID that could
/// be matched against some other system's hash of the same cookie.
const DOMAIN: &[u8] = b"stickless/session-key/v1\0";

/// The keys of one session.
///
/// ```
/// use stickless::{SessionId, SessionKeys};
/// let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
/// let keys = SessionKeys::derive("app:", &id);
/// assert!(keys.data().starts_with("app:{"));
/// assert!(!keys.data().contains(id.expose()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// `<prefix>{<tag>}`; every key below appends a suffix to it.
    base: String,
    tag_start: usize,
    /// The old handler's key (`compat=phpredis`): then `data` and `lock`
    /// name phpredis's keys, while the tag stays the hash, for messages.
    legacy: Option<Box<str>>,
}

impl SessionKeys {
    /// Derives the key set for `id` under `prefix`.
    pub fn derive(prefix: &str, id: &SessionId) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(id.expose().as_bytes());
        let digest = hasher.finalize();
        let mut tag = [0u8; 2 * TAG_BYTES];
        // Cannot fail: the buffer is exactly twice the input.
        let _ = hex::encode_to_slice(&digest[..TAG_BYTES], &mut tag);
        let mut base = String::with_capacity(prefix.len() + tag.len() + 2);
        base.push_str(prefix);
        base.push('{');
        base.extend(tag.iter().map(|&b| char::from(b)));
        base.push('}');
        Self {
            tag_start: prefix.len(),
            base,
            legacy: None,
        }
    }

    /// The keys of a session stored by phpredis under `data_key`
    /// (`compat=phpredis`): `data` is that key and `lock` phpredis's
    /// `<key>_LOCK`. The tag is still derived from `prefix` and the ID, so
    /// warnings do not print the ID.
    pub(crate) fn legacy(prefix: &str, id: &SessionId, data_key: String) -> Self {
        Self {
            legacy: Some(data_key.into_boxed_str()),
            ..Self::derive(prefix, id)
        }
    }

    /// Whether these are phpredis's keys rather than stickless's.
    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy.is_some()
    }

    /// The keys of the session whose data key is `key`, as a scan of the
    /// keyspace finds it: `<prefix>{<tag>}:data` with a tag of the length
    /// [`derive`](Self::derive) makes. `None` for any other key (a lock, a
    /// queue, a key stickless did not write). For tools that walk every
    /// session without knowing their IDs.
    ///
    /// ```
    /// use stickless::{SessionId, SessionKeys};
    /// let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
    /// let keys = SessionKeys::derive("app:", &id);
    /// assert_eq!(SessionKeys::from_data_key("app:", &keys.data()), Some(keys.clone()));
    /// assert_eq!(SessionKeys::from_data_key("app:", &keys.lock()), None);
    /// assert_eq!(SessionKeys::from_data_key("other:", &keys.data()), None);
    /// ```
    pub fn from_data_key(prefix: &str, key: &str) -> Option<Self> {
        let base = key.strip_suffix(":data")?;
        let tag = base.strip_prefix(prefix)?;
        let hex = tag.strip_prefix('{')?.strip_suffix('}')?;
        let hex_ok = hex.len() == 2 * TAG_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        hex_ok.then(|| Self {
            base: base.to_owned(),
            tag_start: prefix.len(),
            legacy: None,
        })
    }

    /// `base`, `suffix` and `tail`: key names are made on every step, and
    /// `format!` costs several times this.
    fn with(&self, suffix: &str, tail: &str) -> String {
        let mut key = String::with_capacity(self.base.len() + suffix.len() + tail.len());
        key.push_str(&self.base);
        key.push_str(suffix);
        key.push_str(tail);
        key
    }

    /// The prefix the keys were derived under.
    pub(crate) fn prefix(&self) -> &str {
        &self.base[..self.tag_start]
    }

    /// The `{tag}` part: what warnings and logs call the session.
    pub fn tag(&self) -> &str {
        &self.base[self.tag_start..]
    }

    /// The envelope holding the session payload.
    pub fn data(&self) -> String {
        match &self.legacy {
            None => self.with(":data", ""),
            Some(key) => key.to_string(),
        }
    }

    /// The lock, whose value is the owner's token.
    pub fn lock(&self) -> String {
        match &self.legacy {
            None => self.with(":lock", ""),
            Some(key) => format!("{key}_LOCK"),
        }
    }

    /// The registered waiters: a sorted set of tokens scored by the server
    /// time (ms) until which each counts as alive.
    pub fn queue(&self) -> String {
        self.with(":queue", "")
    }

    /// The wake-up list every waiter blocks on; a hand-off pushes one baton
    /// to it, and Redis gives it to the longest-blocked live client.
    pub fn wake(&self) -> String {
        self.with(":wake", "")
    }

    /// Where the request holding `token` stages its next envelope: a plain
    /// `SET` here, moved into place by the commit script (see `COMMIT`).
    /// One per token, so a lapsed writer and the lock's new holder never
    /// share one.
    pub fn stage(&self, token: &str) -> String {
        self.with(":stage:", token)
    }

    /// Tokens of requests that gave up on the server (see `ABANDON`): a lock
    /// held by one of them is free.
    pub fn void(&self) -> String {
        self.with(":void", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = SessionKeys::derive("p:", &id("abcdefghijklmnopqrstuvwxyz"));
        let tag = keys.tag();
        assert!(tag.starts_with('{') && tag.ends_with('}'));
        assert_eq!(tag.len(), 2 + 2 * TAG_BYTES);
        for key in [
            keys.data(),
            keys.lock(),
            keys.queue(),
            keys.wake(),
            keys.void(),
            keys.stage("0123456789abcdef0123456789abcdef"),
        ] {
            // Redis Cluster hashes the first {...} section only.
            assert_eq!(&key[2..2 + tag.len()], tag, "{key}");
        }
    }

    #[test]
    fn derivation_is_stable_and_distinct() {
        let a = SessionKeys::derive("", &id("abcdefghijklmnopqrstuvwxyz"));
        let b = SessionKeys::derive("", &id("abcdefghijklmnopqrstuvwxyZ"));
        assert_eq!(
            a,
            SessionKeys::derive("", &id("abcdefghijklmnopqrstuvwxyz"))
        );
        assert_ne!(a.tag(), b.tag());
        // Pinned (python3: sha256(DOMAIN + id)[:16]): a change here logs every
        // user out, so it must be deliberate.
        assert_eq!(a.tag(), "{eda127576eb8eda3317d456a4d136991}");
    }

    #[test]
    fn id_never_appears_in_keys() {
        let sid = id("SECRETSECRETSECRETSECRET");
        let keys = SessionKeys::derive("SECRET", &sid);
        assert!(!keys.tag().contains("SECRET"));
    }
}
