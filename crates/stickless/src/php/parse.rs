//! Reading `serialize()` output into a [`Value`] tree.
//!
//! The grammar follows PHP's own unserializer (`ext/standard/var_unserializer.re`)
//! in what it accepts, so data PHP reads is read here too, with two deliberate
//! differences: the old `S:` and `o:` forms are refused, and nesting is
//! capped at [`MAX_DEPTH`].

use super::error::{DecodeError, DecodeErrorKind};
use super::value::{Key, Value};

/// The deepest nesting of arrays and objects the codec reads, writes or
/// converts. Parsing recurses once per level, and a thread's stack (2 MiB for
/// spawned threads, less in some runtimes) must survive hostile input; real
/// sessions are a handful of levels deep.
pub const MAX_DEPTH: usize = 512;

/// The smallest array element, `i:0;N;`: bounds how many elements the
/// remaining input can hold, so a count in a header cannot make us reserve
/// more than the input could fill.
const MIN_ENTRY_LEN: usize = 6;

pub(crate) struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    depth: usize,
    /// Values numbered so far, counted the way PHP's unserializer numbers them
    /// for `r:` and `R:`: every value except an `R:`, array keys excluded.
    slots: u64,
    /// PHP unserializes a `C:` payload with the same numbering, so after one
    /// the count here may fall short and the upper bound is not checked.
    slots_known: bool,
    /// Slots a reference may not name, subtracted from the ones it does:
    /// 1 when the outermost array is a session and not a value.
    ref_base: u64,
}

type Result<T> = std::result::Result<T, DecodeError>;

impl<'a> Parser<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            depth: 0,
            slots: 0,
            slots_known: true,
            ref_base: 0,
        }
    }

    /// A parser whose references are renumbered as if the outermost value's
    /// own slot did not exist (the `php_serialize` session array).
    pub(crate) fn without_outer_slot(input: &'a [u8]) -> Self {
        Self {
            ref_base: 1,
            ..Self::new(input)
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.input.len()
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or_default()
    }

    #[cold]
    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[cold]
    fn expected(&self, expected: &'static str) -> DecodeError {
        self.error(DecodeErrorKind::Expected {
            expected,
            found: self.peek(),
        })
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(expected))
        }
    }

    /// `[0-9]+`, as PHP's `uiv`.
    fn unsigned(&mut self, expected: &'static str) -> Result<u64> {
        let start = self.pos;
        let mut n: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit - b'0')))
                .ok_or(DecodeError {
                    offset: start,
                    kind: DecodeErrorKind::OutOfRange { expected },
                })?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.expected(expected));
        }
        Ok(n)
    }

    fn length(&mut self, expected: &'static str) -> Result<usize> {
        let start = self.pos;
        let n = self.unsigned(expected)?;
        usize::try_from(n).map_err(|_| DecodeError {
            offset: start,
            kind: DecodeErrorKind::OutOfRange { expected },
        })
    }

    /// `[+-]?[0-9]+`, as PHP's `iv`.
    fn signed(&mut self) -> Result<i64> {
        const WHAT: &str = "an integer";
        let start = self.pos;
        let negative = match self.peek() {
            Some(b'-') => true,
            Some(b'+') => false,
            _ => {
                let n = self.unsigned(WHAT)?;
                return i64::try_from(n).map_err(|_| DecodeError {
                    offset: start,
                    kind: DecodeErrorKind::OutOfRange { expected: WHAT },
                });
            }
        };
        self.pos += 1;
        let magnitude = self.unsigned(WHAT)?;
        let value = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        };
        value.ok_or(DecodeError {
            offset: start,
            kind: DecodeErrorKind::OutOfRange { expected: WHAT },
        })
    }

    fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or_else(|| self.error(DecodeErrorKind::Truncated { what, len }))?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// `<tag>:`, the opening every typed value shares.
    fn tag(&mut self) -> Result<()> {
        self.pos += 1;
        self.expect(b':', "`:` after the type letter")
    }

    /// `<len>:"<bytes>"`, the quoted form of strings, class names and enums.
    fn quoted(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let len = self.length("a length")?;
        self.expect(b':', "`:` after the length")?;
        self.expect(b'"', "`\"` before the bytes")?;
        let bytes = self.bytes(len, what)?;
        self.expect(b'"', "`\"` after as many bytes as the length says")?;
        Ok(bytes)
    }

    /// One value; `r:`/`R:` slots are checked against what precedes it.
    ///
    /// This, [`container`](Self::container) and [`entries`](Self::entries)
    /// are the recursion, one frame each per level: everything else lives in
    /// functions kept out of line, so a level costs little stack even
    /// unoptimized.
    pub(crate) fn value(&mut self) -> Result<Value> {
        let Some(tag) = self.peek() else {
            return Err(self.expected("a value"));
        };
        // PHP numbers a value before reading its contents, so a reference
        // inside an array may name the array itself.
        if tag != b'R' {
            self.slots += 1;
        }
        match tag {
            b'a' | b'O' => self.container(tag),
            _ => self.leaf(tag),
        }
    }

    fn container(&mut self, tag: u8) -> Result<Value> {
        let (class, count) = self.container_header(tag)?;
        let entries = self.entries(count)?;
        Ok(match class {
            Some(class) => Value::Object {
                class,
                properties: entries,
            },
            None => Value::Array(entries),
        })
    }

    /// `a:<count>:` or `O:<len>:"<class>":<count>:`
    #[inline(never)]
    fn container_header(&mut self, tag: u8) -> Result<(Option<Vec<u8>>, usize)> {
        self.tag()?;
        if tag == b'a' {
            let count = self.length("an element count")?;
            self.expect(b':', "`:` after the element count")?;
            return Ok((None, count));
        }
        let class = self.quoted("class name")?.to_vec();
        self.expect(b':', "`:` after the class name")?;
        let count = self.length("a property count")?;
        self.expect(b':', "`:` after the property count")?;
        Ok((Some(class), count))
    }

    /// Every value that holds no other value.
    #[inline(never)]
    fn leaf(&mut self, tag: u8) -> Result<Value> {
        match tag {
            b'N' => {
                self.pos += 1;
                self.expect(b';', "`;` after `N`")?;
                Ok(Value::Null)
            }
            b'b' => {
                self.tag()?;
                let value = match self.peek() {
                    Some(b'0') => false,
                    Some(b'1') => true,
                    _ => return Err(self.expected("`0` or `1`")),
                };
                self.pos += 1;
                self.expect(b';', "`;` after the bool")?;
                Ok(Value::Bool(value))
            }
            b'i' => {
                self.tag()?;
                let value = self.signed()?;
                self.expect(b';', "`;` after the integer")?;
                Ok(Value::Int(value))
            }
            b'd' => {
                self.tag()?;
                let value = self.float()?;
                self.expect(b';', "`;` after the float")?;
                Ok(Value::Float(value))
            }
            b's' => {
                self.tag()?;
                let bytes = self.quoted("string")?;
                self.expect(b';', "`;` after the string")?;
                Ok(Value::String(bytes.to_vec()))
            }
            b'C' => {
                self.tag()?;
                let class = self.quoted("class name")?.to_vec();
                self.expect(b':', "`:` after the class name")?;
                let len = self.length("a payload length")?;
                self.expect(b':', "`:` after the payload length")?;
                self.expect(b'{', "`{` before the payload")?;
                let data = self.bytes(len, "custom payload")?.to_vec();
                self.expect(b'}', "`}` after as many bytes as the payload length says")?;
                self.slots_known = false;
                Ok(Value::Custom { class, data })
            }
            b'E' => {
                self.tag()?;
                let start = self.pos;
                let name = self.quoted("enum name")?;
                self.expect(b';', "`;` after the enum")?;
                let colon = name.iter().position(|&b| b == b':').ok_or(DecodeError {
                    offset: start,
                    kind: DecodeErrorKind::MissingEnumCase,
                })?;
                Ok(Value::Enum {
                    class: name[..colon].to_vec(),
                    case: name[colon + 1..].to_vec(),
                })
            }
            b'r' | b'R' => {
                self.tag()?;
                let start = self.pos;
                let slot = self.unsigned("a slot number")?;
                // An `r:` has just numbered itself, and may not name itself.
                let available = if tag == b'r' {
                    self.slots - 1
                } else {
                    self.slots
                };
                if slot == 0 || (self.slots_known && slot > available) {
                    return Err(DecodeError {
                        offset: start,
                        kind: DecodeErrorKind::BadReference { slot, available },
                    });
                }
                if slot <= self.ref_base {
                    return Err(DecodeError {
                        offset: start,
                        kind: DecodeErrorKind::Unsupported(
                            "a reference to the session array itself",
                        ),
                    });
                }
                self.expect(b';', "`;` after the slot number")?;
                let slot = slot - self.ref_base;
                Ok(if tag == b'r' {
                    Value::ObjectRef(slot)
                } else {
                    Value::Ref(slot)
                })
            }
            b'S' => Err(self.error(DecodeErrorKind::Unsupported(
                "the escaped string form `S:` (PHP 6 only; PHP reads but never writes it)",
            ))),
            b'o' => Err(self.error(DecodeErrorKind::Unsupported("the PHP 3 object form `o:`"))),
            _ => {
                Err(self
                    .expected("a value (`N`, `b`, `i`, `d`, `s`, `a`, `O`, `C`, `E`, `r` or `R`)"))
            }
        }
    }

    /// `{` key value ... `}` with `count` pairs.
    fn entries(&mut self, count: usize) -> Result<Vec<(Key, Value)>> {
        self.open_entries()?;
        let room = self.input.len().saturating_sub(self.pos) / MIN_ENTRY_LEN;
        let mut entries = Vec::with_capacity(count.min(room));
        for _ in 0..count {
            let key = self.key()?;
            entries.push((key, self.value()?));
        }
        self.close_entries()?;
        Ok(entries)
    }

    #[inline(never)]
    fn open_entries(&mut self) -> Result<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(DecodeErrorKind::TooDeep { limit: MAX_DEPTH }));
        }
        self.expect(b'{', "`{`")?;
        self.depth += 1;
        Ok(())
    }

    #[inline(never)]
    fn close_entries(&mut self) -> Result<()> {
        self.depth -= 1;
        self.expect(b'}', "`}` after as many entries as the count says")
    }

    /// `a:<count>:{`, for a caller that reads the entries itself; returns the count.
    pub(crate) fn open_array(&mut self, expected: &'static str) -> Result<usize> {
        if self.peek() != Some(b'a') {
            return Err(self.expected(expected));
        }
        self.slots += 1;
        self.tag()?;
        let count = self.length("an element count")?;
        self.expect(b':', "`:` after the element count")?;
        self.open_entries()?;
        Ok(count)
    }

    /// The `}` that ends an [`open_array`](Self::open_array).
    pub(crate) fn close_array(&mut self) -> Result<()> {
        self.close_entries()
    }

    /// Keys are not numbered: PHP reads them without its slot table.
    #[inline(never)]
    pub(crate) fn key(&mut self) -> Result<Key> {
        match self.peek() {
            Some(b'i') => {
                self.tag()?;
                let key = self.signed()?;
                self.expect(b';', "`;` after the integer key")?;
                Ok(Key::Int(key))
            }
            Some(b's') => {
                self.tag()?;
                let key = self.quoted("string key")?.to_vec();
                self.expect(b';', "`;` after the string key")?;
                Ok(Key::String(key))
            }
            Some(b'S') => {
                Err(self.error(DecodeErrorKind::Unsupported("the escaped string form `S:`")))
            }
            _ => Err(self.expected("an array key (`i:` or `s:`)")),
        }
    }

    /// PHP's `d:` grammar: `NAN`, `INF`, `-INF`, or a decimal number with an
    /// optional sign, fraction and exponent. Rust's float parser accepts a
    /// superset (`inf`, `infinity`, `nan` in any case), so the shape is checked
    /// here first.
    fn float(&mut self) -> Result<f64> {
        let start = self.pos;
        let len = self
            .rest()
            .iter()
            .position(|&b| b == b';')
            .unwrap_or(self.rest().len());
        let text = &self.input[start..start + len];
        let value = match text {
            b"NAN" => f64::NAN,
            b"INF" => f64::INFINITY,
            b"-INF" => f64::NEG_INFINITY,
            _ => {
                if let Err(bad) = check_decimal(text) {
                    self.pos = start + bad;
                    return Err(self.expected("a float (`1.5`, `1.0E+25`, `INF`, `-INF` or `NAN`)"));
                }
                // check_decimal admits ASCII only, and only what Rust parses.
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|text| text.parse::<f64>().ok())
                    .ok_or_else(|| self.expected("a float"))?
            }
        };
        self.pos = start + len;
        Ok(value)
    }
}

/// `[+-]? ( [0-9]+ ( "." [0-9]* )? | "." [0-9]+ ) ( [eE] [+-]? [0-9]+ )?`;
/// on failure, the offset of the first byte that does not fit.
fn check_decimal(text: &[u8]) -> std::result::Result<(), usize> {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while text.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if matches!(text.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa = digits(&mut i);
    if text.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return Err(i);
    }
    if matches!(text.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(text.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err(i);
        }
    }
    if i == text.len() { Ok(()) } else { Err(i) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Value> {
        let mut parser = Parser::new(input);
        let value = parser.value()?;
        if !parser.at_end() {
            return Err(parser.error(DecodeErrorKind::TrailingData));
        }
        Ok(value)
    }

    fn kind(input: &[u8]) -> (usize, DecodeErrorKind) {
        let err = parse(input).expect_err("input is invalid");
        (err.offset, err.kind)
    }

    #[test]
    fn reads_every_scalar() {
        assert_eq!(parse(b"N;"), Ok(Value::Null));
        assert_eq!(parse(b"b:1;"), Ok(Value::Bool(true)));
        assert_eq!(parse(b"i:-9223372036854775808;"), Ok(Value::Int(i64::MIN)));
        assert_eq!(parse(b"i:+7;"), Ok(Value::Int(7)));
        assert_eq!(parse(b"d:-0;"), Ok(Value::Float(-0.0)));
        assert_eq!(parse(b"d:1.0E+25;"), Ok(Value::Float(1e25)));
        assert_eq!(parse(b"d:.5;"), Ok(Value::Float(0.5)));
        assert_eq!(parse(b"d:-INF;"), Ok(Value::Float(f64::NEG_INFINITY)));
        assert_eq!(parse(b"s:3:\"a\"b\";"), Ok(Value::from("a\"b")));
        assert_eq!(
            parse(b"E:11:\"Suit:Hearts\";"),
            Ok(Value::Enum {
                class: b"Suit".to_vec(),
                case: b"Hearts".to_vec()
            })
        );
    }

    #[test]
    fn integers_outside_64_bits_are_refused() {
        assert_eq!(
            kind(b"i:9223372036854775808;"),
            (
                2,
                DecodeErrorKind::OutOfRange {
                    expected: "an integer"
                }
            )
        );
        assert_eq!(
            kind(b"i:-9223372036854775809;"),
            (
                2,
                DecodeErrorKind::OutOfRange {
                    expected: "an integer"
                }
            )
        );
    }

    #[test]
    fn floats_follow_php_grammar_not_rust_grammar() {
        for bad in [
            &b"d:inf;"[..],
            b"d:nan;",
            b"d:infinity;",
            b"d:+INF;",
            b"d:1e;",
            b"d:.;",
            b"d:;",
            b"d:1.5",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"d:1.;"), Ok(Value::Float(1.0)));
        assert_eq!(parse(b"d:1e400;"), Ok(Value::Float(f64::INFINITY)));
    }

    #[test]
    fn lengths_are_checked_against_the_input_before_reading() {
        assert_eq!(
            kind(b"s:9:\"abc\";"),
            (
                5,
                DecodeErrorKind::Truncated {
                    what: "string",
                    len: 9
                }
            )
        );
        assert_eq!(
            kind(b"s:18446744073709551615:\"\";"),
            (
                24,
                DecodeErrorKind::Truncated {
                    what: "string",
                    len: usize::MAX
                }
            )
        );
        assert_eq!(
            kind(b"s:99999999999999999999:\"\";"),
            (
                2,
                DecodeErrorKind::OutOfRange {
                    expected: "a length"
                }
            )
        );
    }

    #[test]
    fn huge_counts_reserve_nothing_the_input_cannot_fill() {
        let (offset, error) = kind(b"a:999999999:{i:0;N;");
        assert_eq!(offset, 19);
        assert!(matches!(
            error,
            DecodeErrorKind::Expected {
                expected: "an array key (`i:` or `s:`)",
                found: None
            }
        ));
    }

    #[test]
    fn nesting_stops_at_max_depth() {
        let deep = |levels: usize| {
            let mut input = b"a:1:{i:0;".repeat(levels);
            input.extend_from_slice(b"N;");
            input.extend_from_slice(&b"}".repeat(levels));
            input
        };
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        assert_eq!(
            kind(&deep(MAX_DEPTH + 1)).1,
            DecodeErrorKind::TooDeep { limit: MAX_DEPTH }
        );
        assert_eq!(
            kind(&deep(100_000)).1,
            DecodeErrorKind::TooDeep { limit: MAX_DEPTH }
        );
    }

    #[test]
    fn references_must_name_an_earlier_slot() {
        assert_eq!(
            parse(b"a:2:{i:0;i:1;i:1;R:2;}"),
            Ok(Value::Array(vec![
                (Key::Int(0), Value::Int(1)),
                (Key::Int(1), Value::Ref(2))
            ]))
        );
        assert!(
            parse(b"a:1:{i:0;R:1;}").is_ok(),
            "an array may hold a reference to itself"
        );
        assert_eq!(
            kind(b"r:1;"),
            (
                2,
                DecodeErrorKind::BadReference {
                    slot: 1,
                    available: 0
                }
            )
        );
        assert_eq!(
            kind(b"a:1:{i:0;r:2;}"),
            (
                11,
                DecodeErrorKind::BadReference {
                    slot: 2,
                    available: 1
                }
            )
        );
        assert_eq!(
            kind(b"a:1:{i:0;R:0;}"),
            (
                11,
                DecodeErrorKind::BadReference {
                    slot: 0,
                    available: 1
                }
            )
        );
        // Slots inside a C: payload are unknown, so a later reference may go beyond our count.
        assert!(parse(b"a:2:{i:0;C:1:\"X\":4:{N;N;}i:1;r:9;}").is_ok());
    }

    #[test]
    fn unsupported_forms_say_so() {
        assert!(matches!(
            kind(b"S:1:\"a\";").1,
            DecodeErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            kind(b"o:1:\"a\";").1,
            DecodeErrorKind::Unsupported(_)
        ));
        assert!(matches!(
            kind(b"a:1:{S:1:\"a\";N;}").1,
            DecodeErrorKind::Unsupported(_)
        ));
    }

    #[test]
    fn malformed_input_names_the_expected_byte() {
        assert_eq!(
            kind(b"i:1"),
            (
                3,
                DecodeErrorKind::Expected {
                    expected: "`;` after the integer",
                    found: None
                }
            )
        );
        assert_eq!(
            kind(b"b:2;"),
            (
                2,
                DecodeErrorKind::Expected {
                    expected: "`0` or `1`",
                    found: Some(b'2')
                }
            )
        );
        assert_eq!(
            kind(b"a:1:{d:1;N;}"),
            (
                5,
                DecodeErrorKind::Expected {
                    expected: "an array key (`i:` or `s:`)",
                    found: Some(b'd')
                }
            )
        );
        assert_eq!(
            kind(b"E:4:\"Suit\";"),
            (2, DecodeErrorKind::MissingEnumCase)
        );
        assert_eq!(kind(b"N;N;"), (2, DecodeErrorKind::TrailingData));
        assert_eq!(
            kind(b""),
            (
                0,
                DecodeErrorKind::Expected {
                    expected: "a value",
                    found: None
                }
            )
        );
    }
}
