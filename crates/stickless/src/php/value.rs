//! The owned tree that `unserialize()` data decodes into.

/// One value in PHP's `serialize()` format.
///
/// The tree mirrors the bytes rather than PHP's runtime model: references stay
/// references (`r:`/`R:` and the slot they name) and custom-serialized payloads
/// stay opaque, so that writing a parsed tree gives back the bytes PHP wrote.
///
/// Equality treats two floats as equal when PHP writes them the same way:
/// `-0.0` differs from `0.0`, and every NaN equals every other NaN.
#[derive(Debug, Clone)]
pub enum Value {
    /// `N;`
    Null,
    /// `b:0;` or `b:1;`
    Bool(bool),
    /// `i:42;`
    Int(i64),
    /// `d:0.1;`, `d:INF;`, `d:NAN;`, `d:-0;` ...
    Float(f64),
    /// `s:3:"abc";`: PHP strings are bytes, not necessarily UTF-8.
    String(Vec<u8>),
    /// `a:2:{...}`: an ordered map, kept in written order (duplicates too).
    Array(Vec<(Key, Value)>),
    /// `O:8:"stdClass":1:{...}`, including objects written by `__serialize()`
    /// and `__sleep()`.
    Object {
        /// Class name as written, with its namespace (`App\Model\User`).
        class: Vec<u8>,
        /// Property names are mangled by visibility; see [`split_property_name`].
        properties: Vec<(Key, Value)>,
    },
    /// `C:6:"Legacy":4:{...}`: an object implementing `Serializable`, whose
    /// payload only its own class can read.
    Custom {
        /// Class name as written.
        class: Vec<u8>,
        /// The payload between the braces, uninterpreted.
        data: Vec<u8>,
    },
    /// `E:11:"Suit:Hearts";`: a PHP 8.1 enum case.
    Enum {
        /// Enum name, with its namespace; never contains `:`.
        class: Vec<u8>,
        /// Case name.
        case: Vec<u8>,
    },
    /// `r:2;`: the same object as the value in this slot (object identity).
    ObjectRef(u64),
    /// `R:2;`: a PHP reference (`&$x`) to the value in this slot.
    Ref(u64),
}

impl Value {
    /// A string value from anything byte-like.
    pub fn string(bytes: impl Into<Vec<u8>>) -> Self {
        Self::String(bytes.into())
    }

    /// The string's bytes, if this is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// The entries of an array or the properties of an object.
    pub fn entries(&self) -> Option<&[(Key, Value)]> {
        match self {
            Self::Array(entries) => Some(entries),
            Self::Object { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first entry of an array, or property of an object, under `key`.
    /// Object properties match by name whatever their visibility.
    pub fn get(&self, key: impl Into<Key>) -> Option<&Value> {
        let key = key.into();
        match self {
            Self::Array(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            Self::Object { properties, .. } => {
                let Key::String(wanted) = &key else {
                    return properties.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                };
                properties
                    .iter()
                    .find(|(k, _)| match k {
                        Key::String(name) => split_property_name(name).1 == wanted.as_slice(),
                        Key::Int(_) => false,
                    })
                    .map(|(_, v)| v)
            }
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "bool",
            Self::Int(_) => "int",
            Self::Float(_) => "float",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::Object { .. } => "object",
            Self::Custom { .. } => "custom-serialized object",
            Self::Enum { .. } => "enum case",
            Self::ObjectRef(_) => "object reference",
            Self::Ref(_) => "reference",
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (String(a), String(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (
                Object {
                    class: ca,
                    properties: pa,
                },
                Object {
                    class: cb,
                    properties: pb,
                },
            ) => ca == cb && pa == pb,
            (
                Custom {
                    class: ca,
                    data: da,
                },
                Custom {
                    class: cb,
                    data: db,
                },
            ) => ca == cb && da == db,
            (
                Enum {
                    class: ca,
                    case: xa,
                },
                Enum {
                    class: cb,
                    case: xb,
                },
            ) => ca == cb && xa == xb,
            (ObjectRef(a), ObjectRef(b)) => a == b,
            (Ref(a), Ref(b)) => a == b,
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Self::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.as_bytes().to_vec())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s.into_bytes())
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Self::String(bytes)
    }
}

/// An array key, a property name or a session variable name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// `i:5;`
    Int(i64),
    /// `s:4:"name";`
    String(Vec<u8>),
}

impl Key {
    /// The key's bytes, if it is a string key.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::String(bytes) => Some(bytes),
            Self::Int(_) => None,
        }
    }
}

impl From<i64> for Key {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Self::String(s.as_bytes().to_vec())
    }
}

impl From<String> for Key {
    fn from(s: String) -> Self {
        Self::String(s.into_bytes())
    }
}

impl From<&[u8]> for Key {
    fn from(bytes: &[u8]) -> Self {
        Self::String(bytes.to_vec())
    }
}

impl From<Vec<u8>> for Key {
    fn from(bytes: Vec<u8>) -> Self {
        Self::String(bytes)
    }
}

impl From<&Key> for Key {
    fn from(key: &Key) -> Self {
        key.clone()
    }
}

/// Who may see an object property, as encoded in its serialized name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility<'a> {
    /// Written as the bare name.
    Public,
    /// Written as `\0*\0name`.
    Protected,
    /// Written as `\0Class\0name`; a subclass can hold a private property of
    /// the same name per ancestor, told apart by this class.
    Private {
        /// The declaring class.
        class: &'a [u8],
    },
}

/// Splits a serialized property name into its visibility and bare name.
///
/// A name that starts with NUL but lacks the second NUL is not something PHP
/// writes; it is returned whole as public rather than guessed at.
///
/// ```
/// use stickless::php::{split_property_name, Visibility};
///
/// assert_eq!(split_property_name(b"\0*\0roles"), (Visibility::Protected, &b"roles"[..]));
/// assert_eq!(
///     split_property_name(b"\0App\\User\0age"),
///     (Visibility::Private { class: b"App\\User" }, &b"age"[..]),
/// );
/// assert_eq!(split_property_name(b"name"), (Visibility::Public, &b"name"[..]));
/// ```
pub fn split_property_name(name: &[u8]) -> (Visibility<'_>, &[u8]) {
    let Some(rest) = name.strip_prefix(b"\0") else {
        return (Visibility::Public, name);
    };
    match rest.iter().position(|&b| b == 0) {
        Some(end) if end > 0 => {
            let (class, bare) = (&rest[..end], &rest[end + 1..]);
            if class == b"*" {
                (Visibility::Protected, bare)
            } else {
                (Visibility::Private { class }, bare)
            }
        }
        _ => (Visibility::Public, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_compare_by_their_serialized_form() {
        assert_eq!(Value::Float(f64::NAN), Value::Float(-f64::NAN));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
        assert_eq!(Value::Float(0.1), Value::Float(0.1));
    }

    #[test]
    fn malformed_property_names_stay_public_and_whole() {
        assert_eq!(split_property_name(b"\0"), (Visibility::Public, &b"\0"[..]));
        assert_eq!(
            split_property_name(b"\0\0x"),
            (Visibility::Public, &b"\0\0x"[..])
        );
        assert_eq!(
            split_property_name(b"\0abc"),
            (Visibility::Public, &b"\0abc"[..])
        );
    }

    #[test]
    fn get_finds_object_properties_whatever_their_visibility() {
        let user = Value::Object {
            class: b"User".to_vec(),
            properties: vec![
                (Key::from(&b"\0User\0age"[..]), Value::Int(42)),
                (Key::from("name"), Value::from("ann")),
            ],
        };
        assert_eq!(user.get("age"), Some(&Value::Int(42)));
        assert_eq!(user.get("name"), Some(&Value::from("ann")));
        assert_eq!(user.get("missing"), None);
    }
}
