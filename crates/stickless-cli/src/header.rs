//! An envelope's header from the first bytes of a stored value: version,
//! revision, timestamps and flags come before the payload, so a scan reads
//! them with `GETRANGE` and never moves session data.

use stickless::admin::ENVELOPE_VERSION;

/// How many leading bytes hold the header at its widest: magic and version
/// (4), the array marker (1), three u64 (9 each), the flags (5).
pub const HEADER_BYTES: usize = 4 + 1 + 3 * 9 + 5;

const MAGIC: [u8; 3] = [0xC1, b'S', b'L'];

/// What the start of a stored value says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// A stickless envelope this build reads.
    Envelope(Header),
    /// Not written by stickless.
    Foreign,
    /// Written by another envelope version.
    Version(u8),
    /// Starts like an envelope but the header does not decode.
    Damaged,
}

/// The envelope's fields before the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bumped by every write.
    pub revision: u64,
    /// Unix milliseconds of the first write.
    pub created_ms: u64,
    /// Unix milliseconds of the last write.
    pub updated_ms: u64,
    /// Encryption and compression bits (`stickless::admin::flag_names`).
    pub flags: u32,
}

/// Reads the header from (at least the first [`HEADER_BYTES`] of) a value.
pub fn peek(start: &[u8]) -> Peeked {
    let Some((head, mut body)) = start.split_first_chunk::<4>() else {
        return Peeked::Foreign;
    };
    if head[..3] != MAGIC {
        return Peeked::Foreign;
    }
    if head[3] != ENVELOPE_VERSION {
        return Peeked::Version(head[3]);
    }
    let header = (|| {
        let fields = rmp::decode::read_array_len(&mut body).ok()?;
        if fields < 5 {
            return None;
        }
        Some(Header {
            revision: rmp::decode::read_int(&mut body).ok()?,
            created_ms: rmp::decode::read_int(&mut body).ok()?,
            updated_ms: rmp::decode::read_int(&mut body).ok()?,
            flags: rmp::decode::read_int(&mut body).ok()?,
        })
    })();
    header.map_or(Peeked::Damaged, Peeked::Envelope)
}

#[cfg(test)]
mod tests {
    use stickless::Envelope;

    use super::*;

    #[test]
    fn the_header_is_read_from_a_prefix() {
        let env = Envelope {
            revision: u64::MAX,
            created_ms: 1_700_000_000_000,
            updated_ms: u64::MAX - 1,
            flags: 1,
            payload: vec![7; 500],
            key_id: Some("k1".into()),
            user: None,
        };
        let stored = env.encode();
        assert_eq!(
            peek(&stored[..HEADER_BYTES]),
            Peeked::Envelope(Header {
                revision: u64::MAX,
                created_ms: 1_700_000_000_000,
                updated_ms: u64::MAX - 1,
                flags: 1,
            })
        );
        let small = Envelope::new(b"a|i:1;".to_vec(), 5).encode();
        assert!(matches!(peek(&small), Peeked::Envelope(h) if h.revision == 1 && h.flags == 0));
    }

    #[test]
    fn other_values_are_told_apart() {
        assert_eq!(peek(b"counter|i:1;"), Peeked::Foreign);
        assert_eq!(peek(b""), Peeked::Foreign);
        assert_eq!(peek(&[0xC1, b'S', b'L', 9, 0x95]), Peeked::Version(9));
        assert_eq!(
            peek(&[0xC1, b'S', b'L', ENVELOPE_VERSION, 0x01]),
            Peeked::Damaged
        );
    }
}
