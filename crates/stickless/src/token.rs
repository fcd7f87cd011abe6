//! Lock tokens: 128 random bits from the OS, so nobody can guess or forge the
//! owner of a lock (phpredis uses `host|pid`).

use std::fmt;

use crate::error::Error;

/// A lock owner's token, 32 lowercase hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct LockToken(String);

impl LockToken {
    /// Draws a fresh token from the OS CSPRNG.
    pub fn random() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| Error::Entropy(e.to_string()))?;
        Ok(Self(hex::encode(bytes)))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LockToken {
    // Tokens are capabilities too: show a short prefix only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockToken({}…)", &self.0[..6])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_128_bit_and_distinct() {
        let a = LockToken::random().unwrap();
        let b = LockToken::random().unwrap();
        assert_eq!(a.as_str().len(), 32);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
