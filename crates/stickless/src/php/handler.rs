//! The `session.serialize_handler` formats.

use std::fmt;
use std::str::FromStr;

/// How PHP lays out `$_SESSION` in the stored bytes, named as in
/// `session.serialize_handler`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeHandler {
    /// `php`, PHP's default: `name|<value>name2|<value>`, each value in
    /// `serialize()` format. Names are strings without `|`.
    #[default]
    Php,
    /// `php_serialize`: the whole `$_SESSION` array as one `serialize()`
    /// value. Names may also be integers.
    PhpSerialize,
}

impl SerializeHandler {
    /// The name `session.serialize_handler` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Php => "php",
            Self::PhpSerialize => "php_serialize",
        }
    }
}

impl fmt::Display for SerializeHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `session.serialize_handler` this codec does not read, such as
/// `php_binary`, `igbinary` or `msgpack`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session.serialize_handler `{name}` is not supported; use `php` or `php_serialize`")]
pub struct UnsupportedHandler {
    /// The name asked for.
    pub name: String,
}

impl FromStr for SerializeHandler {
    type Err = UnsupportedHandler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "php" => Ok(Self::Php),
            "php_serialize" => Ok(Self::PhpSerialize),
            _ => Err(UnsupportedHandler {
                name: name.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_ini_names_and_refuses_the_rest() {
        assert_eq!("php".parse(), Ok(SerializeHandler::Php));
        assert_eq!("php_serialize".parse(), Ok(SerializeHandler::PhpSerialize));
        for name in ["php_binary", "igbinary", "msgpack", "PHP", ""] {
            assert_eq!(
                name.parse::<SerializeHandler>(),
                Err(UnsupportedHandler {
                    name: name.to_owned()
                })
            );
        }
        assert_eq!(SerializeHandler::PhpSerialize.to_string(), "php_serialize");
    }
}
