//! The stored value: a versioned envelope around the PHP payload.
//!
//! Layout: a 4-byte magic (`0xC1 'S' 'L' <version>`) followed by a MessagePack
//! array (rmp-serde). `0xC1` is the one byte MessagePack never uses, and PHP's
//! serializers never start with it either, so a foreign value (a phpredis
//! session, a stray `SET`) is recognised as such instead of being misread.
//!
//! The payload is compressed first, then encrypted: ciphertext is random to
//! a compressor, so the other order would store it at full size.

use serde::{Deserialize, Serialize};

use crate::compress::{Compression, FLAG_LZ4, FLAG_ZSTD};
use crate::config::Settings;
use crate::crypto::KeyRing;
use crate::error::{CorruptKind, Error};

const MAGIC: [u8; 3] = [0xC1, b'S', b'L'];
/// The envelope version this build writes.
pub const VERSION: u8 = 1;
/// `flags` bit: the payload is `nonce || ciphertext` under `key_id`.
pub const FLAG_ENCRYPTED: u32 = 1;
/// Every flag this build reads.
const KNOWN_FLAGS: u32 = FLAG_ENCRYPTED | FLAG_ZSTD | FLAG_LZ4;

/// How payloads are stored and read back: what [`Settings`] says about
/// compression, encryption and size, borrowed for one step.
#[derive(Debug, Clone, Copy)]
pub struct Sealing<'a> {
    /// Keys to encrypt with (the first) and decrypt with (any); `None`
    /// stores payloads in clear.
    pub keys: Option<&'a KeyRing>,
    /// The codec for payloads of at least `compression_threshold` bytes.
    pub compression: Compression,
    /// Smallest payload worth compressing, in bytes.
    pub compression_threshold: usize,
    /// Largest payload a compressed value may expand to when read.
    pub max_size: usize,
}

impl Sealing<'_> {
    /// Plain values, no compression, no keys: what older builds wrote. Reads
    /// still decode compressed values, up to the default `max_size`.
    pub const PLAIN: Sealing<'static> = Sealing {
        keys: None,
        compression: Compression::None,
        compression_threshold: usize::MAX,
        max_size: 4 * 1024 * 1024,
    };
}

impl Settings {
    /// The settings that decide how payloads are stored.
    pub fn sealing(&self) -> Sealing<'_> {
        Sealing {
            keys: self.encryption_keys.as_ref(),
            compression: self.compression,
            compression_threshold: self.compression_threshold,
            max_size: self.max_size,
        }
    }
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Bumped by every write; lets a future merge detect concurrent change.
    pub revision: u64,
    /// Unix milliseconds of the first write.
    pub created_ms: u64,
    /// Unix milliseconds of the last write.
    pub updated_ms: u64,
    /// How the stored payload was transformed: bit 1 (`1`) encrypted, bit 2
    /// (`2`) zstd-compressed, bit 3 (`4`) LZ4-compressed; 0 for a plain one.
    /// A decoded envelope's payload is plain whatever its flags said.
    pub flags: u32,
    /// The session payload exactly as PHP's serializer produced it (sealed
    /// while the envelope is stored encrypted).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The encryption key's id when encrypted. Absent from older values.
    #[serde(default)]
    pub key_id: Option<String>,
    /// The hashed tag of the user this session is bound to (see
    /// `Store::bind_user`), stored after the array so that builds which
    /// predate it read the envelope as before and ignore it.
    #[serde(skip)]
    pub user: Option<String>,
}

/// What follows the envelope's array: fields older builds skip, since they
/// decode one MessagePack value and ignore the rest. Written only when a
/// field is set, so an unbound session's value is byte for byte what it
/// always was.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Trailer {
    /// [`Envelope::user`].
    #[serde(default, rename = "u", skip_serializing_if = "Option::is_none")]
    user: Option<String>,
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
            user: None,
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
            user: self.user.clone(),
        }
    }

    /// The stored bytes for session `tag`: compressed where that pays,
    /// then sealed with the ring's first key when there is a ring.
    pub fn seal(mut self, how: &Sealing<'_>, tag: &str) -> Result<Vec<u8>, Error> {
        if let Some((flag, packed)) = how
            .compression
            .compress(&self.payload, how.compression_threshold)
        {
            self.payload = packed;
            self.flags |= flag;
        }
        if let Some(ring) = how.keys {
            let (key_id, sealed) = ring.seal(tag, &self.payload)?;
            self.payload = sealed;
            self.flags |= FLAG_ENCRYPTED;
            self.key_id = Some(key_id);
        }
        Ok(self.encode())
    }

    /// Decodes stored bytes of session `tag`: opens an encrypted payload
    /// and expands a compressed one, whatever `how` would write. With keys,
    /// plain values are refused unless the ring lists `plain` (while
    /// encryption is being turned on).
    pub fn open(stored: &[u8], how: &Sealing<'_>, tag: &str) -> Result<Self, CorruptKind> {
        let mut env = Self::decode(stored)?;
        let codec = Compression::from_flags(env.flags)?;
        if env.flags & FLAG_ENCRYPTED != 0 {
            let ring = how.keys.ok_or(CorruptKind::NoKeys)?;
            let key_id = env
                .key_id
                .take()
                .ok_or_else(|| CorruptKind::Malformed("encrypted without a key id".into()))?;
            env.payload = ring.open(tag, &key_id, &env.payload)?;
        } else if how.keys.is_some_and(|r| !r.accepts_plain()) {
            return Err(CorruptKind::Unencrypted);
        }
        if codec != Compression::None {
            env.payload = codec.decompress(&env.payload, how.max_size)?;
        }
        env.flags = 0;
        Ok(env)
    }

    /// Encodes to the stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 40);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        // Writing into a Vec cannot fail and every field is representable.
        rmp_serde::encode::write(&mut out, self).expect("envelope encodes into a Vec");
        if self.user.is_some() {
            let trailer = Trailer {
                user: self.user.clone(),
            };
            rmp_serde::encode::write_named(&mut out, &trailer).expect("trailer encodes into a Vec");
        }
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
        // A slice reads itself forward, so what is left is the trailer.
        let mut rest = body;
        let mut env: Envelope =
            rmp_serde::from_read(&mut rest).map_err(|e| CorruptKind::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            let trailer: Trailer = rmp_serde::from_slice(rest)
                .map_err(|e| CorruptKind::Malformed(format!("trailer: {e}")))?;
            env.user = trailer.user;
        }
        if env.flags & !KNOWN_FLAGS != 0 {
            return Err(CorruptKind::UnsupportedFlags(env.flags));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RING: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn keys(ring: Option<&KeyRing>) -> Sealing<'_> {
        Sealing {
            keys: ring,
            ..Sealing::PLAIN
        }
    }

    fn with(compression: Compression, ring: Option<&KeyRing>) -> Sealing<'_> {
        Sealing {
            keys: ring,
            compression,
            compression_threshold: 1024,
            max_size: 1 << 20,
        }
    }

    /// A cart of 300 items, as `php` serialize_handler writes it: about 20 KB.
    fn cart() -> Vec<u8> {
        let mut s = String::from("cart|a:300:{");
        for i in 0..300 {
            s.push_str(&format!(
                "i:{i};a:3:{{s:3:\"sku\";s:8:\"SKU-{:04}\";s:3:\"qty\";i:{};s:5:\"price\";d:{}.99;}}",
                i * 7 % 1000,
                i % 5 + 1,
                i % 40
            ));
        }
        s.push('}');
        s.into_bytes()
    }

    #[test]
    fn a_binding_rides_after_the_array_where_older_builds_ignore_it() {
        let unbound = Envelope::new(b"n|i:1;".to_vec(), 1_700_000_000_000);
        let bound = Envelope {
            user: Some("6678672b455100fdfae9638c90ae88c2".into()),
            ..unbound.clone()
        };
        let (plain, with_user) = (unbound.encode(), bound.encode());
        // Unbound values are what every earlier build wrote.
        assert_eq!(with_user[..plain.len()], plain[..]);
        assert_eq!(Envelope::decode(&with_user), Ok(bound.clone()));
        // An earlier build decodes one MessagePack value and stops there.
        let old: Envelope = rmp_serde::from_slice(&with_user[4..]).unwrap();
        assert_eq!(old, unbound);
        // The binding survives the next revision.
        assert_eq!(bound.next(vec![], 1).user, bound.user);
    }

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
        let ring = KeyRing::parse(RING).unwrap();
        let env = Envelope::new(b"user|s:3:\"ann\";".to_vec(), 5);
        let stored = env.clone().seal(&keys(Some(&ring)), "{a}").unwrap();
        assert!(!stored.windows(3).any(|w| w == b"ann"));
        assert_eq!(
            Envelope::open(&stored, &keys(Some(&ring)), "{a}"),
            Ok(env.clone())
        );
        assert_eq!(
            Envelope::open(&stored, &keys(Some(&ring)), "{b}"),
            Err(CorruptKind::Undecryptable)
        );
        assert_eq!(
            Envelope::open(&stored, &Sealing::PLAIN, "{a}"),
            Err(CorruptKind::NoKeys)
        );
        // A plain value is refused, unless the ring still lists `plain`.
        let plain = env.clone().seal(&Sealing::PLAIN, "{a}").unwrap();
        assert_eq!(
            Envelope::open(&plain, &keys(Some(&ring)), "{a}"),
            Err(CorruptKind::Unencrypted)
        );
        let rolling_out = KeyRing::parse(&format!("{RING},plain")).unwrap();
        assert_eq!(
            Envelope::open(&plain, &keys(Some(&rolling_out)), "{a}"),
            Ok(env)
        );
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

    #[test]
    fn compressed_values_are_flagged_smaller_and_read_back() {
        let env = Envelope::new(cart(), 7);
        for codec in [Compression::Zstd, Compression::Lz4] {
            let stored = env.clone().seal(&with(codec, None), "{a}").unwrap();
            let raw = Envelope::decode(&stored).unwrap();
            assert_eq!(Compression::from_flags(raw.flags), Ok(codec));
            assert!(
                stored.len() * 3 < env.payload.len(),
                "{codec}: {}",
                stored.len()
            );
            assert_eq!(
                Envelope::open(&stored, &with(codec, None), "{a}"),
                Ok(env.clone())
            );
        }
    }

    #[test]
    fn compression_happens_before_encryption() {
        // Ciphertext does not compress: a value sealed in the other order
        // would be as long as the plain payload.
        let ring = KeyRing::parse(RING).unwrap();
        let env = Envelope::new(cart(), 7);
        let stored = env
            .clone()
            .seal(&with(Compression::Zstd, Some(&ring)), "{a}")
            .unwrap();
        let raw = Envelope::decode(&stored).unwrap();
        assert_eq!(raw.flags, FLAG_ENCRYPTED | FLAG_ZSTD);
        assert!(stored.len() * 3 < env.payload.len());
        assert_eq!(
            Envelope::open(&stored, &with(Compression::None, Some(&ring)), "{a}"),
            Ok(env)
        );
    }

    #[test]
    fn any_reader_reads_any_mix() {
        // Old plain values, compressed ones of either codec, encrypted ones
        // with and without compression: whatever a reader would write.
        let ring = KeyRing::parse(&format!("{RING},plain")).unwrap();
        let small = Envelope::new(b"n|i:1;".to_vec(), 1);
        let big = Envelope::new(cart(), 2);
        let mut stored = Vec::new();
        for env in [&small, &big] {
            for codec in [Compression::None, Compression::Zstd, Compression::Lz4] {
                for ring in [None, Some(&ring)] {
                    stored.push((env, env.clone().seal(&with(codec, ring), "{a}").unwrap()));
                }
            }
        }
        for reader in [Compression::None, Compression::Zstd, Compression::Lz4] {
            for (env, bytes) in &stored {
                assert_eq!(
                    Envelope::open(bytes, &with(reader, Some(&ring)), "{a}").as_ref(),
                    Ok(*env),
                    "{reader}"
                );
            }
        }
    }

    #[test]
    fn small_payloads_stay_uncompressed() {
        let env = Envelope::new(b"n|i:1;".to_vec(), 1);
        let stored = env.seal(&with(Compression::Zstd, None), "{a}").unwrap();
        assert_eq!(Envelope::decode(&stored).unwrap().flags, 0);
    }

    #[test]
    fn damaged_compressed_values_are_reported() {
        let env = Envelope::new(cart(), 7);
        for codec in [Compression::Zstd, Compression::Lz4] {
            let stored = env.clone().seal(&with(codec, None), "{a}").unwrap();
            let mut raw = Envelope::decode(&stored).unwrap();
            let mid = raw.payload.len() / 2;
            raw.payload[mid] ^= 0x55;
            raw.payload.truncate(raw.payload.len() - 2);
            assert!(
                matches!(
                    Envelope::open(&raw.encode(), &with(codec, None), "{a}"),
                    Err(CorruptKind::Decompression { .. })
                ),
                "{codec}"
            );
            // A reader with a smaller max_size refuses to expand it.
            let tight = Sealing {
                max_size: 1000,
                ..with(codec, None)
            };
            assert_eq!(
                Envelope::open(&stored, &tight, "{a}"),
                Err(CorruptKind::DecompressedTooLarge {
                    size: env.payload.len(),
                    limit: 1000
                })
            );
        }
    }

    #[test]
    fn plain_sealing_reads_within_the_default_max_size() {
        assert_eq!(Sealing::PLAIN.max_size, Settings::default().max_size);
        let default = Settings::default();
        let how = default.sealing();
        assert_eq!(how.compression, Compression::None);
        assert_eq!(how.compression_threshold, 1024);
    }

    #[test]
    fn unknown_flags_ask_for_an_upgrade() {
        let mut env = Envelope::new(b"x".to_vec(), 1);
        env.flags = 1 << 7;
        let err = Envelope::decode(&env.encode()).unwrap_err();
        assert_eq!(err, CorruptKind::UnsupportedFlags(1 << 7));
        assert!(err.to_string().contains("upgrade"), "{err}");
    }

    proptest! {
        #[test]
        fn every_setting_round_trips(
            payload in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..3000),
                (1usize..300).prop_map(|n| cart()[..n * 60].to_vec()),
            ],
            codec in prop_oneof![
                Just(Compression::None),
                Just(Compression::Zstd),
                Just(Compression::Lz4),
            ],
            threshold in 0usize..4096,
            encrypted in any::<bool>(),
            revision in any::<u64>(),
        ) {
            let ring = KeyRing::parse(RING).unwrap();
            let how = Sealing {
                keys: encrypted.then_some(&ring),
                compression: codec,
                compression_threshold: threshold,
                max_size: payload.len(),
            };
            let env = Envelope { revision, ..Envelope::new(payload, 9) };
            let stored = env.clone().seal(&how, "{t}").unwrap();
            prop_assert_eq!(Envelope::open(&stored, &how, "{t}"), Ok(env));
        }
    }
}
