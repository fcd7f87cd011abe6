//! PHP's session formats, sans IO: `serialize()` values and the two
//! `session.serialize_handler` layouts around them, `php` and `php_serialize`;
//! and Laravel's two session payloads, its attributes array through
//! `serialize()` or `json_encode()` ([`SerializeHandler::LaravelPhp`],
//! [`SerializeHandler::LaravelJson`]).
//!
//! Data decodes into an owned [`Value`] tree that keeps what PHP wrote, down
//! to references and opaque `Serializable` payloads, so encoding it again gives
//! back the same bytes for everything PHP writes. A [`Session`] holds the
//! variables of one session, and converts them to and from Rust types with
//! serde.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use stickless::php::{SerializeHandler, Session};
//!
//! #[derive(Deserialize)]
//! struct User {
//!     name: String,
//!     roles: Vec<String>,
//! }
//!
//! #[derive(Serialize)]
//! struct Item {
//!     sku: &'static str,
//!     qty: u32,
//! }
//!
//! // What PHP stores for `$_SESSION['user'] = new User('ann', ['admin'])`,
//! // `roles` being a protected property.
//! let stored = b"user|O:4:\"User\":2:{s:4:\"name\";s:3:\"ann\";s:8:\"\0*\0roles\";a:1:{i:0;s:5:\"admin\";}}";
//! let handler: SerializeHandler = "php".parse()?;
//! let mut session = Session::decode(handler, stored)?;
//!
//! let user: User = session.get("user")?.expect("user is set");
//! assert_eq!((user.name.as_str(), user.roles.as_slice()), ("ann", &["admin".to_owned()][..]));
//!
//! session.set("cart", &[Item { sku: "A-1", qty: 2 }])?;
//! let written = session.encode(handler)?;
//! assert!(written.ends_with(b"cart|a:1:{i:0;a:2:{s:3:\"sku\";s:3:\"A-1\";s:3:\"qty\";i:2;}}"));
//! assert!(written.starts_with(stored));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is read, and what is refused:
//!
//! - Every value PHP 7 and 8 write: `N`, `b`, `i`, `d` (with `INF`, `-INF`,
//!   `NAN`, `-0`), `s` (bytes), `a`, `O` (also from `__serialize()`), `C`,
//!   `E` (PHP 8.1 enums), `r` and `R`.
//! - Floats are written as PHP does with its default `serialize_precision =
//!   -1`. A float PHP wrote with another precision (PHP before 7.1 used 17
//!   digits) reads back exactly but is written in the shortest form.
//! - Integers written non-canonically (`i:+5;`, `i:007;`) read, and are written
//!   canonically.
//! - Refused with a [`DecodeError`]: the `S:` and `o:` forms, which no current
//!   PHP writes; PHP 5's `!name|` marker for an undefined variable, which PHP 7
//!   refuses too; a session variable set twice; bytes after the data (PHP
//!   ignores them); nesting beyond [`MAX_DEPTH`].
//! - The `php_binary` handler and extension handlers such as `igbinary` are
//!   not read ([`UnsupportedHandler`]).
//! - Laravel's `php` serialization is `php_serialize`'s layout. Its `json`
//!   serialization reads into the same tree, as `json_decode($data, true)`
//!   builds it, and is written as `json_encode()` writes it: see
//!   [`json_decode`] and [`json_encode`] for what differs from PHP (a
//!   `-0.0`, nesting beyond [`MAX_JSON_DEPTH`]) and what JSON cannot hold.
//!   Laravel's encrypted sessions (`session.encrypt`) are not read.
//!
//! A Laravel session, as its `Store` saves it with `session.serialization =
//! 'json'`:
//!
//! ```
//! use stickless::php::{SerializeHandler, Session};
//!
//! let stored = br#"{"_token":"Xk3pQ9vR2mT7wY1zA4bC6dE8fG0hJ5kL2nP4qS6u","_flash":{"old":[],"new":[]},"login_web_59ba36addc2b2f9401580f014c7f58ea4e30989d":42}"#;
//! let mut session = Session::decode(SerializeHandler::LaravelJson, stored)?;
//! let user: Option<i64> = session.get("login_web_59ba36addc2b2f9401580f014c7f58ea4e30989d")?;
//! assert_eq!(user, Some(42));
//!
//! session.set("theme", "dark/blue")?;
//! let written = session.encode(SerializeHandler::LaravelJson)?;
//! assert!(written.ends_with(br#","theme":"dark\/blue"}"#));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod float;
mod handler;
mod json;
mod parse;
mod refs;
mod serde_de;
mod serde_ser;
mod session;
mod value;
mod write;

pub use error::{DecodeError, DecodeErrorKind, EncodeError, ValueError};
pub use handler::{SerializeHandler, UnsupportedHandler};
pub use json::{MAX_JSON_DEPTH, json_decode, json_encode};
pub use parse::MAX_DEPTH;
pub use serde_de::from_value;
pub use serde_ser::to_value;
pub use session::Session;
pub use value::{Key, Value, Visibility, split_property_name};

/// Reads one value in `serialize()` format, as PHP's `unserialize()` would.
/// References count slots from this value, the first.
pub fn unserialize(data: &[u8]) -> Result<Value, DecodeError> {
    let mut parser = parse::Parser::new(data);
    let value = parser.value()?;
    if !parser.at_end() {
        return Err(parser.error(DecodeErrorKind::TrailingData));
    }
    Ok(value)
}

/// Writes one value in `serialize()` format, as PHP's `serialize()` would.
pub fn serialize(value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    write::Writer::new(&mut out).value(value)?;
    Ok(out)
}
