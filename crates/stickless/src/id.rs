//! Session IDs as PHP produces them, validated before anything touches Redis.

use std::fmt;

use crate::error::{Error, InvalidSessionId};

/// The longest ID PHP's session module accepts (`PS_MAX_SID_LENGTH`).
pub const MAX_LEN: usize = 256;
/// The shortest ID this crate generates: PHP's own minimum `session.sid_length`.
pub const MIN_GENERATED_LEN: usize = 22;
/// Entropy every generated ID carries at least.
pub const MIN_BITS: usize = 128;

/// PHP's ID alphabet, in PHP's order: the first 16, 32 or 64 symbols serve
/// 4, 5 or 6 bits per character.
const ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,-";

fn min_length(bits: u8) -> usize {
    MIN_BITS.div_ceil(usize::from(bits)).max(MIN_GENERATED_LEN)
}

/// A syntactically valid session ID: 1 to 256 characters from PHP's ID
/// alphabet (`0-9 a-z A-Z , -`), exactly what PHP's own files handler
/// accepts. IDs this crate generates are longer (22 or more characters, at
/// least 128 bits); a short one can only come from an application's
/// `session_id('...')` or from a client, and strict mode (on by default in
/// the extension) never adopts a client's ID that does not exist. What could
/// harm the store (control characters, braces, over-long IDs) is refused.
///
/// The ID is a bearer token. This type never prints it: `Debug` and
/// `Display` show only its length, so an ID cannot leak into a log line by
/// accident.
///
/// ```
/// use stickless::SessionId;
/// let id = SessionId::parse("0123456789abcdefghijklmnopqrstuv").unwrap();
/// assert_eq!(format!("{id:?}"), "SessionId(<32 chars>)");
/// assert!(SessionId::parse("../../etc/passwd").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Box<str>);

impl SessionId {
    /// Checks charset and length; never allocates for an invalid ID.
    pub fn parse(raw: &str) -> Result<Self, InvalidSessionId> {
        let len = raw.len();
        if !(1..=MAX_LEN).contains(&len) {
            return Err(InvalidSessionId::Length { len });
        }
        if let Some(pos) = raw.bytes().position(|b| !is_id_byte(b)) {
            return Err(InvalidSessionId::Charset { position: pos });
        }
        Ok(Self(raw.into()))
    }

    /// Parses raw bytes (PHP strings are bytes, not UTF-8).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, InvalidSessionId> {
        match std::str::from_utf8(raw) {
            Ok(s) => Self::parse(s),
            Err(e) => Err(InvalidSessionId::Charset {
                position: e.valid_up_to(),
            }),
        }
    }

    /// A new ID from the OS CSPRNG in PHP's format: `bits_per_char` (4, 5
    /// or 6, as `session.sid_bits_per_character`) bits per character and
    /// `length` characters (`session.sid_length`), lengthened when needed to
    /// carry at least 128 bits.
    ///
    /// ```
    /// use stickless::SessionId;
    /// let id = SessionId::generate(32, 5).unwrap();
    /// assert_eq!(id.expose().len(), 32);
    /// // 22 characters of 4 bits would be only 88 bits: lengthened to 32.
    /// assert_eq!(SessionId::generate(22, 4).unwrap().expose().len(), 32);
    /// ```
    pub fn generate(length: usize, bits_per_char: u8) -> Result<Self, Error> {
        let bits = bits_per_char.clamp(4, 6);
        let alphabet = &ALPHABET[..1 << bits];
        let length = length.clamp(min_length(bits), MAX_LEN);
        let mut random = vec![0u8; length];
        getrandom::fill(&mut random).map_err(|e| Error::Entropy(e.to_string()))?;
        let mask = (1u8 << bits) - 1;
        // Each character takes `bits` uniform bits of its own byte: an
        // alphabet of exactly 2^bits symbols leaves no modulo bias.
        let id: String = random
            .iter()
            .map(|b| char::from(alphabet[usize::from(b & mask)]))
            .collect();
        Ok(Self(id.into()))
    }

    /// The ID itself. Only for handing back to PHP; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b',' || b == b'-'
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId(<{} chars>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_php_alphabet() {
        for id in [
            "0123456789abcdef0123456789abcdef",
            "abcdefghijklmnopqrstuv",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ,-abcdefgh",
        ] {
            assert!(SessionId::parse(id).is_ok(), "{id}");
        }
        assert!(SessionId::parse(&"a".repeat(MAX_LEN)).is_ok());
        // What PHP's files handler accepts: an application's session_id('abc').
        for short in ["a", "abc", "0123456789abcdefghijk"] {
            assert!(SessionId::parse(short).is_ok(), "{short}");
        }
    }

    #[test]
    fn rejects_bad_length() {
        assert_eq!(
            SessionId::parse(""),
            Err(InvalidSessionId::Length { len: 0 })
        );
        assert_eq!(
            SessionId::parse(&"a".repeat(MAX_LEN + 1)),
            Err(InvalidSessionId::Length { len: MAX_LEN + 1 })
        );
    }

    #[test]
    fn rejects_bad_charset() {
        assert_eq!(
            SessionId::parse("0123456789abcdef0123456789abcde{"),
            Err(InvalidSessionId::Charset { position: 31 })
        );
        assert!(SessionId::parse("0123456789abcdef 123456789abcdef").is_err());
        assert!(SessionId::from_bytes(b"0123456789abcdef0123456789abcd\xff\xfe").is_err());
    }

    #[test]
    fn generated_ids_carry_128_bits_in_phps_alphabets() {
        for (bits, symbols) in [
            (4u8, "0123456789abcdef"),
            (5, "0123456789abcdefghijklmnopqrstuv"),
        ] {
            let id = SessionId::generate(40, bits).unwrap();
            assert_eq!(id.expose().len(), 40);
            assert!(id.expose().chars().all(|c| symbols.contains(c)), "{bits}");
        }
        let id = SessionId::generate(26, 6).unwrap();
        assert_eq!(id.expose().len(), 26);
        assert!(SessionId::parse(id.expose()).is_ok());
        // Too short for 128 bits: lengthened.
        assert_eq!(SessionId::generate(22, 4).unwrap().expose().len(), 32);
        assert_eq!(SessionId::generate(22, 5).unwrap().expose().len(), 26);
        assert_eq!(SessionId::generate(22, 6).unwrap().expose().len(), 22);
        assert_eq!(SessionId::generate(999, 4).unwrap().expose().len(), MAX_LEN);
        assert_ne!(
            SessionId::generate(32, 4).unwrap(),
            SessionId::generate(32, 4).unwrap()
        );
    }

    #[test]
    fn generated_ids_use_every_symbol() {
        // 64 symbols over 20 000 characters: any missing one means a biased map.
        let mut seen = [false; 64];
        for _ in 0..100 {
            for c in SessionId::generate(200, 6).unwrap().expose().bytes() {
                let i = ALPHABET.iter().position(|a| *a == c).unwrap();
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn debug_never_shows_the_id() {
        let id = SessionId::parse("secretsecretsecretsecret").unwrap();
        assert!(!format!("{id:?}").contains("secret"));
    }
}
