//! The session layouts: PHP's `session.serialize_handler` formats, and
//! Laravel's.

use std::fmt;
use std::str::FromStr;

/// How a session's variables are laid out in the stored bytes: PHP's
/// `session.serialize_handler` formats, named as in that setting, and the
/// two payloads Laravel stores.
///
/// Laravel (`Illuminate\Session\Store`) does not use PHP's session
/// serializer: it keeps its own attributes array and hands its save handler
/// one string per session, `serialize($attributes)` or
/// `json_encode($attributes)` after its `session.serialization` setting.
/// Those are variants here rather than a type of their own because every
/// place that takes a handler ([`Session::decode`](super::Session::decode)
/// and [`encode`](super::Session::encode), `aio::Store::with_php`, a
/// service's `--serialize-handler` option) asks the same question, "which
/// layout are these bytes in", and answers it with the same [`Value`](super::Value)
/// tree and the same serde conversions. A second type would only add
/// conversions at each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeHandler {
    /// `php`, PHP's default: `name|<value>name2|<value>`, each value in
    /// `serialize()` format. Names are strings without `|`.
    #[default]
    Php,
    /// `php_serialize`: the whole `$_SESSION` array as one `serialize()`
    /// value. Names may also be integers.
    PhpSerialize,
    /// `laravel_php`: Laravel with `session.serialization = 'php'`, its
    /// default. The attributes array as one `serialize()` value, so the
    /// bytes are those of [`PhpSerialize`](Self::PhpSerialize); the
    /// top-level keys are Laravel's attributes (`_token`, `_flash`, ...).
    LaravelPhp,
    /// `laravel_json`: Laravel with `session.serialization = 'json'`. The
    /// attributes as `json_encode()` writes them, read as
    /// `json_decode($data, true)` reads them: JSON objects and arrays become
    /// arrays, numbers `int` or `float`. Holds arrays and scalars only
    /// (see [`json_decode`](super::json_decode)).
    LaravelJson,
}

impl SerializeHandler {
    /// Every layout, in the order of the variants.
    pub const ALL: [Self; 4] = [
        Self::Php,
        Self::PhpSerialize,
        Self::LaravelPhp,
        Self::LaravelJson,
    ];

    /// The name: `session.serialize_handler`'s for PHP's layouts,
    /// `laravel_php` and `laravel_json` for Laravel's.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Php => "php",
            Self::PhpSerialize => "php_serialize",
            Self::LaravelPhp => "laravel_php",
            Self::LaravelJson => "laravel_json",
        }
    }
}

impl fmt::Display for SerializeHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A session layout this codec does not read, such as the
/// `session.serialize_handler`s `php_binary`, `igbinary` or `msgpack`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "session.serialize_handler `{name}` is not supported; use `php`, `php_serialize`, `laravel_php` or `laravel_json`"
)]
pub struct UnsupportedHandler {
    /// The name asked for.
    pub name: String,
}

impl FromStr for SerializeHandler {
    type Err = UnsupportedHandler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|handler| handler.as_str() == name)
            .ok_or_else(|| UnsupportedHandler {
                name: name.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_names_and_refuses_the_rest() {
        assert_eq!("php".parse(), Ok(SerializeHandler::Php));
        assert_eq!("php_serialize".parse(), Ok(SerializeHandler::PhpSerialize));
        assert_eq!("laravel_php".parse(), Ok(SerializeHandler::LaravelPhp));
        assert_eq!("laravel_json".parse(), Ok(SerializeHandler::LaravelJson));
        for name in [
            "php_binary",
            "igbinary",
            "msgpack",
            "PHP",
            "laravel",
            "json",
            "",
        ] {
            assert_eq!(
                name.parse::<SerializeHandler>(),
                Err(UnsupportedHandler {
                    name: name.to_owned()
                })
            );
        }
        for handler in SerializeHandler::ALL {
            assert_eq!(handler.to_string().parse(), Ok(handler));
        }
        assert_eq!(SerializeHandler::PhpSerialize.to_string(), "php_serialize");
    }
}
