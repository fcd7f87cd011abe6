//! Session variables as PHP literals, close to `var_export()`: what a PHP
//! developer reads without a manual. Bytes that are not printable text are
//! written as escapes in a double-quoted string, so the output is one line
//! per scalar and never carries raw control characters to the terminal.

use std::fmt::Write;

use stickless::php::{Key, Session, Value, Visibility, split_property_name};

/// `name => value` per session variable, nested values indented.
pub fn session(session: &Session) -> String {
    let mut out = String::new();
    for (key, value) in session.iter() {
        out.push_str(&key_literal(key));
        out.push_str(" => ");
        write_value(&mut out, value, 0);
        out.push('\n');
    }
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&float(*f)),
        Value::String(bytes) => out.push_str(&string(bytes)),
        Value::Array(entries) => {
            out.push('[');
            write_entries(out, entries, depth, key_literal);
            out.push(']');
        }
        Value::Object { class, properties } => {
            let _ = write!(out, "{} {{", String::from_utf8_lossy(class));
            write_entries(out, properties, depth, property_name);
            out.push('}');
        }
        Value::Custom { class, data } => {
            let _ = write!(
                out,
                "{} (Serializable, {} bytes: {})",
                String::from_utf8_lossy(class),
                data.len(),
                string(data)
            );
        }
        Value::Enum { class, case } => {
            let _ = write!(
                out,
                "{}::{}",
                String::from_utf8_lossy(class),
                String::from_utf8_lossy(case)
            );
        }
        Value::ObjectRef(slot) => {
            let _ = write!(out, "(the object in slot {slot})");
        }
        Value::Ref(slot) => {
            let _ = write!(out, "&(slot {slot})");
        }
    }
}

fn write_entries(
    out: &mut String,
    entries: &[(Key, Value)],
    depth: usize,
    name: impl Fn(&Key) -> String,
) {
    if entries.is_empty() {
        return;
    }
    out.push('\n');
    let indent = "  ".repeat(depth + 1);
    for (key, value) in entries {
        out.push_str(&indent);
        out.push_str(&name(key));
        out.push_str(" => ");
        write_value(out, value, depth + 1);
        out.push_str(",\n");
    }
    out.push_str(&"  ".repeat(depth));
}

fn key_literal(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::String(bytes) => string(bytes),
    }
}

/// A property with its visibility, as PHP declares it.
fn property_name(key: &Key) -> String {
    let Key::String(raw) = key else {
        return key_literal(key);
    };
    let (visibility, name) = split_property_name(raw);
    let name = string(name);
    match visibility {
        Visibility::Public => name,
        Visibility::Protected => format!("protected {name}"),
        Visibility::Private { class } => {
            format!("private({}) {name}", String::from_utf8_lossy(class))
        }
    }
}

fn float(f: f64) -> String {
    if f.is_nan() {
        "NAN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "INF" } else { "-INF" }.into()
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        // PHP's var_export marks a whole float as one: 1.0, not 1.
        format!("{f:.1}")
    } else {
        f.to_string()
    }
}

/// A PHP string literal: single-quoted where that shows every byte as it
/// is, double-quoted with escapes otherwise.
fn string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(char::is_control) => {
            format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        _ => {
            let mut out = String::from("\"");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '$' => out.push_str("\\$"),
                        c if c.is_control() => {
                            let mut buf = [0; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                let _ = write!(out, "\\x{b:02x}");
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
            out.push('"');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use stickless::php::SerializeHandler;

    use super::*;

    fn render(data: &[u8]) -> String {
        session(&Session::decode(SerializeHandler::Php, data).unwrap())
    }

    #[test]
    fn scalars_read_as_php_literals() {
        assert_eq!(
            render(b"n|N;b|b:1;i|i:-7;f|d:1;g|d:0.5;s|s:4:\"it's\";"),
            "'n' => null\n'b' => true\n'i' => -7\n'f' => 1.0\n'g' => 0.5\n's' => 'it\\'s'\n"
        );
    }

    #[test]
    fn nested_values_are_indented() {
        let out = render(
            b"user|O:4:\"User\":2:{s:4:\"name\";s:3:\"ann\";s:8:\"\0*\0roles\";a:1:{i:0;s:5:\"admin\";}}",
        );
        assert_eq!(
            out,
            "'user' => User {\n  'name' => 'ann',\n  protected 'roles' => [\n    0 => 'admin',\n  ],\n}\n"
        );
    }

    #[test]
    fn binary_bytes_are_escaped() {
        assert_eq!(
            render(b"k|s:4:\"a\0\xff\n\";"),
            "'k' => \"a\\x00\\xff\\n\"\n"
        );
    }
}
