//! Payload compression, applied before encryption (see `envelope.rs`).
//!
//! A compressed payload is the plain payload's length (4 bytes, little
//! endian) followed by a zstd frame or an LZ4 block. The length comes first
//! so that a reader can refuse a value that would decompress past
//! `max_size` before allocating anything for it: a small stored value must
//! not be able to make a php-fpm worker allocate gigabytes.

use std::cell::RefCell;

use crate::error::CorruptKind;

/// Which codec compresses session payloads before they are stored.
///
/// Any reader decodes any mix: the codec is recorded in each envelope's
/// flags, so changing this setting only changes how the next writes are
/// stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Payloads are stored as they are.
    #[default]
    None,
    /// Zstandard (level 3): the better ratio.
    Zstd,
    /// LZ4 (block format): the lower CPU cost.
    Lz4,
}

/// `flags` bit: the payload is zstd-compressed.
pub(crate) const FLAG_ZSTD: u32 = 1 << 1;
/// `flags` bit: the payload is LZ4-compressed.
pub(crate) const FLAG_LZ4: u32 = 1 << 2;

/// zstd's own default level. Level 1 saves little CPU on payloads of a few
/// KB (the context setup dominates) and loses ratio.
const ZSTD_LEVEL: i32 = 3;

const LEN_PREFIX: usize = 4;

impl Compression {
    /// The option's value as written in ini or the save_path.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }

    /// Parses the option's value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "none" | "" => Some(Self::None),
            "zstd" => Some(Self::Zstd),
            "lz4" => Some(Self::Lz4),
            _ => None,
        }
    }

    fn flag(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Zstd => FLAG_ZSTD,
            Self::Lz4 => FLAG_LZ4,
        }
    }

    /// The codec a stored envelope's flags name; `Err` when they name two.
    pub(crate) fn from_flags(flags: u32) -> Result<Self, CorruptKind> {
        match (flags & FLAG_ZSTD != 0, flags & FLAG_LZ4 != 0) {
            (false, false) => Ok(Self::None),
            (true, false) => Ok(Self::Zstd),
            (false, true) => Ok(Self::Lz4),
            (true, true) => Err(CorruptKind::Malformed(
                "flags name two compression codecs".into(),
            )),
        }
    }

    /// `plain` compressed, with the flag to record, when that makes it
    /// smaller; `None` to store it as it is. A codec error only costs the
    /// saving, so it stores the payload plain rather than failing the write.
    pub(crate) fn compress(self, plain: &[u8], threshold: usize) -> Option<(u32, Vec<u8>)> {
        if self == Self::None || plain.len() < threshold {
            return None;
        }
        let len = u32::try_from(plain.len()).ok()?;
        let mut out = Vec::with_capacity(plain.len() / 2 + LEN_PREFIX);
        out.extend_from_slice(&len.to_le_bytes());
        match self {
            Self::None => return None,
            Self::Zstd => ZSTD.with(|z| {
                let mut z = z.borrow_mut();
                let c = z.compressor()?;
                let bound = zstd::zstd_safe::compress_bound(plain.len());
                out.reserve(bound);
                let start = out.len();
                out.resize(start + bound, 0);
                let n = c.compress_to_buffer(plain, &mut out[start..]).ok()?;
                out.truncate(start + n);
                Some(())
            })?,
            Self::Lz4 => out.extend_from_slice(&lz4_flex::block::compress(plain)),
        }
        (out.len() < plain.len()).then_some((self.flag(), out))
    }

    /// The plain payload of a value compressed with `self`, refused when it
    /// claims to be longer than `limit` (the store's `max_size`).
    pub(crate) fn decompress(self, stored: &[u8], limit: usize) -> Result<Vec<u8>, CorruptKind> {
        if self == Self::None {
            return Ok(stored.to_vec());
        }
        let damaged = |reason: String| CorruptKind::Decompression {
            codec: self.name(),
            reason,
        };
        let Some((len, body)) = stored.split_first_chunk::<LEN_PREFIX>() else {
            return Err(damaged("shorter than its length prefix".into()));
        };
        let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
        if len > limit {
            return Err(CorruptKind::DecompressedTooLarge { size: len, limit });
        }
        let mut plain = vec![0; len];
        let written = match self {
            Self::None => len,
            Self::Zstd => ZSTD.with(|z| {
                let mut z = z.borrow_mut();
                let d = z.decompressor().map_err(|e| damaged(e.to_string()))?;
                d.decompress_to_buffer(body, &mut plain[..])
                    .map_err(|e| damaged(e.to_string()))
            })?,
            Self::Lz4 => lz4_flex::block::decompress_into(body, &mut plain)
                .map_err(|e| damaged(e.to_string()))?,
        };
        if written != len {
            return Err(damaged(format!(
                "decompressed to {written} bytes where its prefix says {len}"
            )));
        }
        Ok(plain)
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// zstd contexts, made once per thread: a fresh context per call costs more
/// than compressing a few KB (its tables are allocated and cleared each
/// time). A php-fpm worker compresses on its request thread only.
#[derive(Default)]
struct ZstdContexts {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl ZstdContexts {
    fn compressor(&mut self) -> Option<&mut zstd::bulk::Compressor<'static>> {
        if self.compressor.is_none() {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok()?;
            // The frame's checksum lets a damaged value be told apart from
            // a session, when it is not encrypted (encryption authenticates).
            c.include_checksum(true).ok()?;
            self.compressor = Some(c);
        }
        self.compressor.as_mut()
    }

    fn decompressor(&mut self) -> std::io::Result<&mut zstd::bulk::Decompressor<'static>> {
        if self.decompressor.is_none() {
            self.decompressor = Some(zstd::bulk::Decompressor::new()?);
        }
        self.decompressor
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no zstd decompression context"))
    }
}

thread_local! {
    static ZSTD: RefCell<ZstdContexts> = RefCell::new(ZstdContexts::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMIT: usize = 1 << 20;

    fn compressible(n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        let mut i = 0u32;
        while out.len() < n {
            out.extend_from_slice(
                format!(
                    "i:{i};a:2:{{s:3:\"sku\";s:6:\"sku{:03}\";s:3:\"qty\";i:1;}}",
                    i % 97
                )
                .as_bytes(),
            );
            i += 1;
        }
        out.truncate(n);
        out
    }

    #[test]
    fn small_or_incompressible_payloads_stay_plain() {
        for c in [Compression::Zstd, Compression::Lz4] {
            assert_eq!(c.compress(&compressible(1023), 1024), None, "{c}");
            // A threshold of 0 still never stores something bigger.
            assert_eq!(c.compress(&[7], 0), None, "{c}");
        }
        assert_eq!(Compression::None.compress(&compressible(4096), 0), None);
    }

    #[test]
    fn compressible_payloads_shrink_and_come_back() {
        let plain = compressible(20_480);
        for c in [Compression::Zstd, Compression::Lz4] {
            let (flag, stored) = c.compress(&plain, 1024).expect("compressible");
            assert_eq!(Compression::from_flags(flag), Ok(c));
            assert!(
                stored.len() * 4 < plain.len(),
                "{c}: {} bytes",
                stored.len()
            );
            assert_eq!(c.decompress(&stored, LIMIT).as_deref(), Ok(&plain[..]));
        }
    }

    #[test]
    fn a_bomb_is_refused_before_it_is_allocated() {
        // A few hundred bytes that would expand to 16 MB.
        let plain = vec![b'a'; 16 << 20];
        for c in [Compression::Zstd, Compression::Lz4] {
            let (_, stored) = c.compress(&plain, 0).expect("compressible");
            assert!(stored.len() < 100_000, "{c}");
            assert_eq!(
                c.decompress(&stored, LIMIT),
                Err(CorruptKind::DecompressedTooLarge {
                    size: 16 << 20,
                    limit: LIMIT
                }),
                "{c}"
            );
        }
    }

    #[test]
    fn a_lying_length_prefix_is_refused() {
        let plain = compressible(8192);
        for c in [Compression::Zstd, Compression::Lz4] {
            let (_, mut stored) = c.compress(&plain, 0).expect("compressible");
            // Claims fewer bytes than the body holds: the output buffer is
            // too small; claims more: the body ends early.
            for claimed in [100u32, 9000] {
                stored[..4].copy_from_slice(&claimed.to_le_bytes());
                assert!(
                    matches!(
                        c.decompress(&stored, LIMIT),
                        Err(CorruptKind::Decompression { .. })
                    ),
                    "{c} claiming {claimed}"
                );
            }
        }
    }

    #[test]
    fn flags_naming_two_codecs_are_damage() {
        assert!(matches!(
            Compression::from_flags(FLAG_ZSTD | FLAG_LZ4),
            Err(CorruptKind::Malformed(_))
        ));
        assert_eq!(Compression::from_flags(1), Ok(Compression::None));
    }

    proptest! {
        #[test]
        fn any_payload_round_trips(
            plain in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..4096),
                (0usize..8192).prop_map(compressible),
            ],
            threshold in 0usize..2048,
            zstd in any::<bool>(),
        ) {
            let c = if zstd { Compression::Zstd } else { Compression::Lz4 };
            match c.compress(&plain, threshold) {
                Some((flag, stored)) => {
                    prop_assert!(plain.len() >= threshold);
                    prop_assert!(stored.len() < plain.len());
                    prop_assert_eq!(Compression::from_flags(flag), Ok(c));
                    prop_assert_eq!(c.decompress(&stored, plain.len()), Ok(plain));
                }
                // Repetitive text of a few hundred bytes always shrinks.
                None => prop_assert!(
                    plain.len() < threshold.max(512) || plain != compressible(plain.len())
                ),
            }
        }

        #[test]
        fn damaged_values_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            zstd in any::<bool>(),
        ) {
            let c = if zstd { Compression::Zstd } else { Compression::Lz4 };
            // Any outcome but a panic or a result past the limit.
            if let Ok(plain) = c.decompress(&bytes, 4096) {
                prop_assert!(plain.len() <= 4096);
            }
        }
    }
}
