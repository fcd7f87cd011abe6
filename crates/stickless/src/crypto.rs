//! Encryption at rest: XChaCha20-Poly1305 over the session payload, with a
//! key ring so keys can be rotated without logging anyone out.
//!
//! The first key seals; every key opens. The key's id travels in the
//! envelope, and the associated data binds the ciphertext to the session's
//! hashed key and to that id: a value copied to another session's key, or
//! relabelled with another key id, fails to open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use zeroize::Zeroizing;

use crate::error::{CorruptKind, Error};

/// Nonce length of XChaCha20: 192 random bits, safe to draw at random.
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;
const AAD_DOMAIN: &[u8] = b"stickless/payload/v1\0";

/// One named key.
#[derive(Clone, PartialEq, Eq)]
struct NamedKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

/// The configured keys, newest (sealing) first. `Debug` shows ids only.
///
/// ```
/// use stickless::KeyRing;
/// // Two 32-byte keys, base64: `openssl rand -base64 32`.
/// let ring = KeyRing::parse(
///     "2026b:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,\
///      2026a:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
/// ).unwrap();
/// assert_eq!(ring.sealing_key_id(), "2026b");
/// assert!(!format!("{ring:?}").contains("AAEC"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<NamedKey>,
    /// `plain` was listed: unencrypted values are still accepted (while
    /// encryption is being rolled out). Otherwise they are refused, or
    /// whoever can write Redis could slip in an unauthenticated session.
    accept_plain: bool,
}

/// Why a key ring spec was refused. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// Nothing configured.
    #[error("no keys given; expected `id:base64key[,id:base64key...]`")]
    Empty,
    /// A key without `id:`.
    #[error("key #{0} has no id; expected `id:base64key` (or `plain`, after the keys)")]
    MissingId(usize),
    /// `plain` first: something must seal new values.
    #[error("`plain` cannot come first: the first entry is the key new values are sealed with")]
    PlainFirst,
    /// An id outside `[A-Za-z0-9_-]{1,16}`.
    #[error("key #{0} has an invalid id; use 1 to 16 of A-Z a-z 0-9 _ -")]
    BadId(usize),
    /// The same id twice.
    #[error("key id `{0}` appears twice")]
    DuplicateId(String),
    /// Not base64 of exactly 32 bytes.
    #[error("key `{0}` is not base64 of 32 bytes (generate one with `openssl rand -base64 32`)")]
    BadKey(String),
}

impl KeyRing {
    /// Parses `id:base64key[,id:base64key...][,plain]`; the first key seals,
    /// and `plain` also accepts unencrypted values.
    pub fn parse(spec: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<NamedKey> = Vec::new();
        let mut accept_plain = false;
        for (n, item) in spec
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            if item == "plain" {
                if keys.is_empty() {
                    return Err(KeyRingError::PlainFirst);
                }
                accept_plain = true;
                continue;
            }
            let (id, b64) = item.split_once(':').ok_or(KeyRingError::MissingId(n + 1))?;
            let id = id.trim();
            let valid_id = (1..=16).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_id {
                return Err(KeyRingError::BadId(n + 1));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyRingError::DuplicateId(id.to_owned()));
            }
            let raw = Zeroizing::new(
                STANDARD
                    .decode(b64.trim())
                    .map_err(|_| KeyRingError::BadKey(id.to_owned()))?,
            );
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            if raw.len() != KEY_LEN {
                return Err(KeyRingError::BadKey(id.to_owned()));
            }
            key.copy_from_slice(&raw);
            keys.push(NamedKey {
                id: id.to_owned(),
                key,
            });
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys, accept_plain })
    }

    /// Whether unencrypted values are still accepted (`plain` listed).
    pub fn accepts_plain(&self) -> bool {
        self.accept_plain
    }

    /// The id of the key new values are sealed with.
    pub fn sealing_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Encrypts `plaintext` for the session `tag` with the first key:
    /// returns the key id and `nonce || ciphertext`.
    pub(crate) fn seal(&self, tag: &str, plaintext: &[u8]) -> Result<(String, Vec<u8>), Error> {
        let named = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Entropy(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new_from_slice(named.key.as_slice())
            .map_err(|_| Error::Protocol("encryption key has the wrong length".into()))?;
        let aad = aad(tag, &named.id);
        let sealed = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Protocol("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok((named.id.clone(), out))
    }

    /// Decrypts what [`seal`](Self::seal) produced for `tag` under `key_id`.
    pub(crate) fn open(
        &self,
        tag: &str,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, CorruptKind> {
        let named = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| CorruptKind::UnknownKey(key_id.to_owned()))?;
        let Some((nonce, ciphertext)) = sealed.split_first_chunk::<NONCE_LEN>() else {
            return Err(CorruptKind::Undecryptable);
        };
        let cipher = XChaCha20Poly1305::new_from_slice(named.key.as_slice())
            .map_err(|_| CorruptKind::Undecryptable)?;
        let aad = aad(tag, key_id);
        cipher
            .decrypt(
                &(*nonce).into(),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| CorruptKind::Undecryptable)
    }
}

fn aad(tag: &str, key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + tag.len() + 1 + key_id.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(tag.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        let plain = if self.accept_plain { ", plain" } else { "" };
        write!(f, "KeyRing({ids:?}{plain}, keys redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const B: &str = "b:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn seals_and_opens() {
        let ring = KeyRing::parse(A).unwrap();
        let (id, sealed) = ring.seal("{t1}", b"user|s:3:\"ann\";").unwrap();
        assert_eq!(id, "a");
        assert!(!sealed.windows(3).any(|w| w == b"ann"));
        assert_eq!(
            ring.open("{t1}", &id, &sealed).unwrap(),
            b"user|s:3:\"ann\";"
        );
    }

    #[test]
    fn nonces_differ() {
        let ring = KeyRing::parse(A).unwrap();
        assert_ne!(
            ring.seal("{t}", b"x").unwrap().1,
            ring.seal("{t}", b"x").unwrap().1
        );
    }

    #[test]
    fn a_value_moved_to_another_session_fails() {
        let ring = KeyRing::parse(A).unwrap();
        let (id, sealed) = ring.seal("{t1}", b"secret").unwrap();
        assert_eq!(
            ring.open("{t2}", &id, &sealed),
            Err(CorruptKind::Undecryptable)
        );
    }

    #[test]
    fn tampering_fails() {
        let ring = KeyRing::parse(A).unwrap();
        let (id, sealed) = ring.seal("{t}", b"secret").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                ring.open("{t}", &id, &bad),
                Err(CorruptKind::Undecryptable),
                "byte {i}"
            );
        }
        assert_eq!(
            ring.open("{t}", &id, &sealed[..sealed.len() - 1]),
            Err(CorruptKind::Undecryptable)
        );
        assert_eq!(
            ring.open("{t}", &id, &sealed[..10]),
            Err(CorruptKind::Undecryptable)
        );
    }

    #[test]
    fn rotation_keeps_old_keys_readable() {
        let old = KeyRing::parse(A).unwrap();
        let rotated = KeyRing::parse(&format!("{B},{A}")).unwrap();
        let (id, sealed) = old.seal("{t}", b"v").unwrap();
        assert_eq!(rotated.open("{t}", &id, &sealed).unwrap(), b"v");
        assert_eq!(rotated.seal("{t}", b"v").unwrap().0, "b");
        // Relabelling a value with another key id fails too.
        assert_eq!(
            rotated.open("{t}", "b", &sealed),
            Err(CorruptKind::Undecryptable)
        );
        assert_eq!(
            KeyRing::parse(B).unwrap().open("{t}", &id, &sealed),
            Err(CorruptKind::UnknownKey("a".into()))
        );
    }

    #[test]
    fn bad_specs_are_refused_without_echoing_keys() {
        assert_eq!(KeyRing::parse(""), Err(KeyRingError::Empty));
        assert_eq!(KeyRing::parse("plain"), Err(KeyRingError::PlainFirst));
        assert!(
            KeyRing::parse(&format!("{A},plain"))
                .unwrap()
                .accepts_plain()
        );
        assert!(!KeyRing::parse(A).unwrap().accepts_plain());
        assert_eq!(KeyRing::parse("AAAA"), Err(KeyRingError::MissingId(1)));
        assert_eq!(KeyRing::parse("bad id:AAAA"), Err(KeyRingError::BadId(1)));
        assert_eq!(
            KeyRing::parse("k:c2hvcnQ="),
            Err(KeyRingError::BadKey("k".into()))
        );
        assert_eq!(
            KeyRing::parse(&format!("{A},{A}")),
            Err(KeyRingError::DuplicateId("a".into()))
        );
        let err = KeyRing::parse("k:c2hvcnQ=").unwrap_err().to_string();
        assert!(!err.contains("c2hvcnQ"), "{err}");
    }
}
