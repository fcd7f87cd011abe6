//! The stored value: a versioned envelope around the PHP payload.
//!
//! Layout: a 4-byte magic (`0xC1 'S' 'L' <version>`) followed by a MessagePack
//! array (rmp-serde). `0xC1` is the one byte MessagePack never uses, and PHP's
//! serializers never start with it either, so a foreign value (a phpredis
//! session, a stray `SET`) is recognised as such instead of being misread.

use serde::{Deserialize, Serialize};

use crate::crypto::KeyRing;
use crate::error::{CorruptKind, Error};

const MAGIC: [u8; 3] = [0xC1, b'S', b'L'];
/// The envelope version this build writes.
pub const VERSION: u8 = 1;
/// `flags` bit: the payload is `nonce || ciphertext` under `key_id`.
pub const FLAG_ENCRYPTED: u32 = 1;

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Bumped by every write; lets a future merge detect concurrent change.
    pub revision: u64,
    /// Unix milliseconds of the first write.
    pub created_ms: u64,
    /// Unix milliseconds of the last write.
    pub updated_ms: u64,
    /// Bit 1 set for an encrypted payload, or 0 for a plain one.
    pub flags: u32,
    /// The session payload exactly as PHP's serializer produced it (sealed
    /// while the envelope is stored encrypted).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The encryption key's id when encrypted. Absent from older values.
    #[serde(default)]
    pub key_id: Option<String>,
}

impl Envelope {
    /// A first revision of `payload`, stamped `now_ms`.
    pub fn new(payload: Vec<u8>, now_ms: u64) -> Self {
        Self {
            revision: 1,
            created_ms: now_ms,
            updated_ms: now_ms,
            flags: 0,
            payload,
            key_id: None,
        }
    }

    /// The next revision after `self`, holding `payload`.
    pub fn next(&self, payload: Vec<u8>, now_ms: u64) -> Self {
        Self {
            revision: self.revision.wrapping_add(1),
            created_ms: self.created_ms,
            updated_ms: now_ms,
            flags: 0,
            payload,
            key_id: None,
        }
    }

    /// The stored bytes for session `tag`: sealed with the ring's first key
    /// when a ring is given.
    pub fn seal(mut self, ring: Option<&KeyRing>, tag: &str) -> Result<Vec<u8>, Error> {
        if let Some(ring) = ring {
            let (key_id, sealed) = ring.seal(tag, &self.payload)?;
            self.payload = sealed;
            self.flags |= FLAG_ENCRYPTED;
            self.key_id = Some(key_id);
        }
        Ok(self.encode())
    }

    /// Decodes stored bytes of session `tag`, opening an encrypted payload.
    /// With a ring, plain values are refused unless the ring lists `plain`
    /// (while encryption is being turned on).
    pub fn open(stored: &[u8], ring: Option<&KeyRing>, tag: &str) -> Result<Self, CorruptKind> {
        let mut env = Self::decode(stored)?;
        if env.flags & FLAG_ENCRYPTED != 0 {
            let ring = ring.ok_or(CorruptKind::NoKeys)?;
            let key_id = env
                .key_id
                .take()
                .ok_or_else(|| CorruptKind::Malformed("encrypted without a key id".into()))?;
            env.payload = ring.open(tag, &key_id, &env.payload)?;
            env.flags &= !FLAG_ENCRYPTED;
        } else if ring.is_some_and(|r| !r.accepts_plain()) {
            return Err(CorruptKind::Unencrypted);
        }
        Ok(env)
    }

    /// Encodes to the stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 40);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        // Writing into a Vec cannot fail and every field is representable.
        rmp_serde::encode::write(&mut out, self).expect("envelope encodes into a Vec");
        out
    }

    /// Decodes stored bytes, telling a foreign value from a damaged one.
    pub fn decode(stored: &[u8]) -> Result<Self, CorruptKind> {
        let Some((head, body)) = stored.split_first_chunk::<4>() else {
            return Err(CorruptKind::Foreign);
        };
        if head[..3] != MAGIC {
            return Err(CorruptKind::Foreign);
        }
        if head[3] != VERSION {
            return Err(CorruptKind::UnsupportedVersion(head[3]));
        }
        let env: Envelope =
            rmp_serde::from_slice(body).map_err(|e| CorruptKind::Malformed(e.to_string()))?;
        if env.flags & !FLAG_ENCRYPTED != 0 {
            return Err(CorruptKind::UnsupportedFlags(env.flags));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let env = Envelope::new(b"counter|i:41;".to_vec(), 1_700_000_000_000);
        let next = env.next(b"counter|i:42;".to_vec(), 1_700_000_000_500);
        for e in [env, next] {
            assert_eq!(Envelope::decode(&e.encode()), Ok(e));
        }
    }

    #[test]
    fn the_first_32_bytes_tell_revisions_apart() {
        // COMMIT's compare-and-set compares this much of the stored value
        // (session::STAMP_LEN): it must cover the revision and both
        // timestamps at their widest, and nothing of the payload.
        let widest = Envelope {
            revision: u64::MAX,
            created_ms: u64::MAX,
            updated_ms: u64::MAX,
            ..Envelope::new(b"payload".to_vec(), 0)
        };
        let stamp = |e: &Envelope| e.encode()[..32].to_vec();
        let next_ms = Envelope {
            updated_ms: u64::MAX - 1,
            ..widest.clone()
        };
        let next_rev = Envelope {
            revision: u64::MAX - 1,
            ..widest.clone()
        };
        let other_payload = Envelope {
            payload: b"other".to_vec(),
            ..widest.clone()
        };
        assert_ne!(stamp(&widest), stamp(&next_ms));
        assert_ne!(stamp(&widest), stamp(&next_rev));
        assert_eq!(stamp(&widest), stamp(&other_payload));
    }

    #[test]
    fn next_bumps_revision_and_keeps_creation() {
        let env = Envelope::new(vec![], 10);
        let next = env.next(vec![1], 20);
        assert_eq!(next.revision, 2);
        assert_eq!(next.created_ms, 10);
        assert_eq!(next.updated_ms, 20);
    }

    #[test]
    fn foreign_values_are_recognised() {
        for v in [&b""[..], b"a:1:{s:1:\"a\";i:1;}", b"counter|i:1;", b"\xC1S"] {
            assert_eq!(Envelope::decode(v), Err(CorruptKind::Foreign), "{v:?}");
        }
    }

    #[test]
    fn sealed_envelopes_open_only_for_their_session() {
        let ring = KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let env = Envelope::new(b"user|s:3:\"ann\";".to_vec(), 5);
        let stored = env.clone().seal(Some(&ring), "{a}").unwrap();
        assert!(!stored.windows(3).any(|w| w == b"ann"));
        assert_eq!(Envelope::open(&stored, Some(&ring), "{a}"), Ok(env.clone()));
        assert_eq!(
            Envelope::open(&stored, Some(&ring), "{b}"),
            Err(CorruptKind::Undecryptable)
        );
        assert_eq!(
            Envelope::open(&stored, None, "{a}"),
            Err(CorruptKind::NoKeys)
        );
        // A plain value is refused, unless the ring still lists `plain`.
        let plain = env.clone().seal(None, "{a}").unwrap();
        assert_eq!(
            Envelope::open(&plain, Some(&ring), "{a}"),
            Err(CorruptKind::Unencrypted)
        );
        let rolling_out =
            KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,plain").unwrap();
        assert_eq!(Envelope::open(&plain, Some(&rolling_out), "{a}"), Ok(env));
    }

    #[test]
    fn damage_is_reported() {
        let mut bytes = Envelope::new(b"x|i:1;".to_vec(), 1).encode();
        assert_eq!(
            Envelope::decode(&[0xC1, b'S', b'L', 9, 0]),
            Err(CorruptKind::UnsupportedVersion(9))
        );
        bytes.truncate(bytes.len() - 3);
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(CorruptKind::Malformed(_))
        ));
    }
}
