//! JSON as PHP reads and writes it: `json_decode($data, true)` into a
//! [`Value`] tree and `json_encode()` (no flags) out of one, for Laravel's
//! `json` session serialization.
//!
//! Parsing is serde_json's; the tree is built the way PHP builds its array,
//! and the writer follows PHP's encoder byte for byte, so that
//! `encode(decode(x))` is `json_encode(json_decode(x, true))`. For what
//! `json_encode()` writes from plain data (what Laravel stores) that is `x`
//! itself.

mod read;
mod write;

use super::error::{DecodeError, DecodeErrorKind, EncodeError};
use super::value::{Key, Value};

/// The deepest nesting of JSON arrays and objects the codec reads or writes.
/// PHP's `json_decode()` reads 511 levels (its default depth, 512, counts
/// the innermost value too); serde_json stops at 128, and the codec stops
/// before it, so the limit is its own and the error typed. Sessions are a
/// handful of levels deep.
pub const MAX_JSON_DEPTH: usize = 100;

/// Reads one JSON text as PHP's `json_decode($data, true)` does.
///
/// - Objects become arrays with string keys, and a key that is a canonical
///   decimal integer (`"5"`, `"-3"`, not `"05"` or `"-0"`) becomes an
///   integer key, as in every PHP array. Arrays become arrays keyed
///   `0..n`. `{}` and `[]` are both the empty array.
/// - A key given twice keeps its first place and its last value, as in PHP.
/// - Integers become `int` while they fit in 64 bits and `float` beyond;
///   numbers with a fraction or an exponent become `float` (`1.0` too).
///   `-0` is the integer 0, as in PHP; `-0.0`, which PHP reads as a float,
///   is read as the integer 0 too (serde_json does not tell them apart, and
///   `json_encode()` writes neither).
/// - Strings are UTF-8 with their escapes resolved; a lone UTF-16 surrogate
///   (`"\ud800"`) is refused, as PHP refuses it.
///
/// Refused where PHP reads on: nesting deeper than [`MAX_JSON_DEPTH`]
/// (PHP: 511), and numbers beyond the float range such as `1e400` (PHP:
/// `INF`, which its `json_encode()` then refuses to write).
pub fn json_decode(data: &[u8]) -> Result<Value, DecodeError> {
    read::value(data)
}

/// Writes one value as PHP's `json_encode($value)` does, without flags.
///
/// Arrays keyed `0..n` in order (an empty one too) are written as JSON
/// arrays, other arrays as objects with their keys as strings. Strings are
/// escaped as PHP escapes them: `/` as `\/`, every non-ASCII character as
/// `\uXXXX` (a pair of them beyond the BMP), control characters as `\n`,
/// `\t`, ... or `\u001f`. Floats have PHP's shortest digits with a
/// lower-case exponent, and no fraction when integral (`1.0` is written `1`,
/// and reads back as an integer, in PHP as here).
///
/// Refused with an [`EncodeError`], as `json_encode()` fails on them or
/// writes something Laravel would not read back the same: objects, enum
/// cases, `C:` payloads and references ([`EncodeError::NotJson`]), `INF`
/// and `NAN`, strings and keys that are not UTF-8, and nesting deeper than
/// [`MAX_JSON_DEPTH`].
pub fn json_encode(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write::Writer::new(&mut out).value(value)?;
    Ok(out)
}

/// A Laravel `json` session: one JSON array or object of attributes. An
/// empty input is an empty session, as Laravel reads a new one.
pub(crate) fn decode_session(data: &[u8]) -> Result<Vec<(Key, Value)>, DecodeError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    match read::value(data)? {
        Value::Array(entries) => Ok(entries),
        _ => {
            let offset = data
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(0);
            Err(DecodeError {
                offset,
                kind: DecodeErrorKind::Expected {
                    expected: "a JSON object: Laravel stores its attributes as one",
                    found: data.get(offset).copied(),
                },
            })
        }
    }
}

/// Writes a Laravel `json` session, `json_encode($attributes)`.
pub(crate) fn encode_session(entries: &[(Key, Value)]) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write::Writer::new(&mut out).array(entries)?;
    Ok(out)
}
