//! What can go wrong, per operation: decoding bytes, encoding a tree, and
//! converting between a tree and Rust types.

use std::fmt;

/// Bytes that are not valid data in the format asked for (PHP's
/// `serialize()` format, a session layout, or Laravel's JSON), or use a
/// feature this codec does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undecodable at byte {offset}: {kind}")]
pub struct DecodeError {
    /// Zero-based offset of the byte where decoding stopped, in the whole input.
    pub offset: usize,
    /// What was wrong there.
    pub kind: DecodeErrorKind,
}

/// Why [`DecodeError`] stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// A byte (or the end of input) where something else had to be.
    #[error("expected {expected}, found {}", Found(*.found))]
    Expected {
        /// What the format requires here.
        expected: &'static str,
        /// The byte found, or `None` at the end of the input.
        found: Option<u8>,
    },
    /// A number too large for its field (PHP integers are 64-bit signed).
    #[error("expected {expected}, found a number out of range")]
    OutOfRange {
        /// What the number is.
        expected: &'static str,
    },
    /// A length that runs past the end of the input.
    #[error("{what} of {len} bytes runs past the end of the input")]
    Truncated {
        /// What the length counts.
        what: &'static str,
        /// The length as written.
        len: usize,
    },
    /// Valid in some PHP version, but not read here.
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH), or for JSON
    /// [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH).
    #[error("nested deeper than {limit} arrays or objects")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// `r:`/`R:` naming a slot that does not come before it, as PHP requires.
    #[error("reference to slot {slot}, but only {available} values precede it")]
    BadReference {
        /// The slot named.
        slot: u64,
        /// Slots numbered so far.
        available: u64,
    },
    /// `E:` naming an enum without a case.
    #[error("expected `Enum:Case`, found a name without `:`")]
    MissingEnumCase,
    /// A session variable that appears twice.
    #[error("session variable appears twice")]
    DuplicateName,
    /// Bytes after the end of the data.
    #[error("expected the end of the data, found more bytes")]
    TrailingData,
    /// Not JSON as `json_decode()` reads it (Laravel's `json` serialization):
    /// serde_json's description, without its line and column (the error's
    /// offset says where).
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
}

struct Found(Option<u8>);

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("the end of the input"),
            Some(b) if b.is_ascii_graphic() || b == b' ' => write!(f, "`{}`", b as char),
            Some(b) => write!(f, "byte {b:#04x}"),
        }
    }
}

/// A tree or session that PHP could not read back if written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The `php` handler separates names from values with `|`, so a name
    /// containing one cannot be written (PHP refuses it too).
    #[error("session variable name {name:?} contains `|`; the php handler cannot store it")]
    NameHasDelimiter {
        /// The name, lossily decoded for display.
        name: String,
    },
    /// The `php` handler only stores string names; PHP skips integer ones with a
    /// notice, which would silently lose data.
    #[error("session variable {0} has an integer name; use the php_serialize handler")]
    IntegerName(i64),
    /// An enum name containing `:`, which separates it from the case.
    #[error("enum name {class:?} contains `:`")]
    EnumClassHasColon {
        /// The name, lossily decoded for display.
        class: String,
    },
    /// `r:0;`/`R:0;`: slots are numbered from 1.
    #[error("reference to slot 0; slots are numbered from 1")]
    ZeroReference,
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH), or for JSON
    /// [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH).
    #[error("nested deeper than {limit} arrays or objects")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A value Laravel's `json` serialization cannot hold. `json_decode()`
    /// gives arrays and scalars only, so a JSON session never holds one; it
    /// comes from a tree read in PHP's `serialize()` format. (PHP's
    /// `json_encode()` would write an object's public properties only, an
    /// enum case's backing value, or fail.)
    #[error(
        "a PHP {kind} has no JSON form; Laravel's json serialization stores arrays and scalars only"
    )]
    NotJson {
        /// What the value is, as [`Value::kind`](super::Value::kind) names it.
        kind: &'static str,
    },
    /// `INF`, `-INF` or `NAN`, which JSON cannot hold: `json_encode()`
    /// fails on them, and Laravel would then store an empty string.
    #[error("INF and NAN have no JSON form")]
    NonFiniteFloat,
    /// A string or array key that is not UTF-8: JSON strings are Unicode,
    /// and `json_encode()` fails on such bytes.
    #[error("{what} is not UTF-8 (invalid from byte {valid_up_to}); JSON cannot hold it")]
    NotUtf8 {
        /// `"a string"` or `"an array key"`.
        what: &'static str,
        /// How many bytes from its start are valid UTF-8.
        valid_up_to: usize,
    },
}

/// A Rust value that has no PHP form, or PHP data that does not fit the Rust
/// type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Raised by a `Serialize`/`Deserialize` implementation, or a type mismatch.
    #[error("{0}")]
    Message(String),
    /// An integer outside PHP's 64-bit signed range.
    #[error("integer {0} does not fit in a PHP int (64-bit signed)")]
    IntegerOutOfRange(i128),
    /// A map key that is neither a string nor an integer.
    #[error("PHP array keys are strings or integers, not {0}")]
    KeyType(&'static str),
    /// A reference whose slot cannot be found, for instance after a `C:`
    /// payload, whose inner slots only its class knows.
    #[error("reference to slot {0} cannot be resolved")]
    UnresolvedReference(u64),
    /// References that, followed, would copy more values than the data
    /// holds many times over (PHP shares them; a Rust value cannot).
    #[error("following references would visit more than {limit} values")]
    TooManyValues {
        /// The most visited.
        limit: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH), or references that
    /// form a cycle.
    #[error("nested deeper than {limit} levels (or references form a cycle)")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
}

impl serde::ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}

impl serde::de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Message(msg.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_was_expected_and_where() {
        let err = DecodeError {
            offset: 7,
            kind: DecodeErrorKind::Expected {
                expected: "`;`",
                found: Some(b'x'),
            },
        };
        assert_eq!(
            err.to_string(),
            "undecodable at byte 7: expected `;`, found `x`"
        );
        let err = DecodeErrorKind::Expected {
            expected: "`;`",
            found: None,
        };
        assert_eq!(err.to_string(), "expected `;`, found the end of the input");
        let err = DecodeErrorKind::Expected {
            expected: "`;`",
            found: Some(0),
        };
        assert_eq!(err.to_string(), "expected `;`, found byte 0x00");
    }
}
