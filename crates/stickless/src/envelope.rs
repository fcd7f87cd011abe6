//! The stored value: a versioned envelope around the PHP payload.
//!
//! Layout: a 4-byte magic (`0xC1 'S' 'L' <version>`) followed by a MessagePack
//! array (rmp-serde). `0xC1` is the one byte MessagePack never uses, and PHP's
//! serializers never start with it either, so a foreign value (a phpredis
//! session, a stray `SET`) is recognised as such instead of being misread.

use serde::{Deserialize, Serialize};

use crate::error::CorruptKind;

const MAGIC: [u8; 3] = [0xC1, b'S', b'L'];
/// The envelope version this build writes.
pub const VERSION: u8 = 1;

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Bumped by every write; lets a future merge detect concurrent change.
    pub revision: u64,
    /// Unix milliseconds of the first write.
    pub created_ms: u64,
    /// Unix milliseconds of the last write.
    pub updated_ms: u64,
    /// Reserved for compression and encryption; 0 means a plain payload.
    pub flags: u32,
    /// The session payload exactly as PHP's serializer produced it.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
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
        }
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
        if env.flags != 0 {
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
