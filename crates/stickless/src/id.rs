//! Session IDs as PHP produces them, validated before anything touches Redis.

use std::fmt;

use crate::error::InvalidSessionId;

/// PHP accepts `session.sid_length` between 22 and 256 characters.
pub const MIN_LEN: usize = 22;
/// See [`MIN_LEN`].
pub const MAX_LEN: usize = 256;

/// A syntactically valid session ID: 22 to 256 characters from PHP's ID
/// alphabet (`0-9 a-z A-Z , -`).
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
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
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
    }

    #[test]
    fn rejects_bad_length() {
        assert_eq!(
            SessionId::parse("short"),
            Err(InvalidSessionId::Length { len: 5 })
        );
        assert_eq!(
            SessionId::parse(&"a".repeat(MAX_LEN + 1)),
            Err(InvalidSessionId::Length { len: MAX_LEN + 1 })
        );
        assert!(SessionId::parse("").is_err());
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
    fn debug_never_shows_the_id() {
        let id = SessionId::parse("secretsecretsecretsecret").unwrap();
        assert!(!format!("{id:?}").contains("secret"));
    }
}
