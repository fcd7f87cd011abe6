//! Floats the way `serialize()` and `json_encode()` write them with PHP's
//! default `serialize_precision = -1`.
//!
//! PHP takes the shortest digit string that reads back as the same double
//! (`zend_gcvt` in mode 0) and lays it out in plain notation while the
//! decimal point falls within 17 digits of the first one, in exponent notation
//! otherwise. Rust's `{:e}` yields the same shortest digits, so only the layout
//! is PHP's.

/// Digits PHP writes in plain notation before switching to `1.0E+17`.
const PLAIN_DIGITS: i32 = 17;

/// As `serialize()` writes it: `1.0E+25`, `INF`, `-INF`, `NAN`.
pub(crate) fn write(out: &mut Vec<u8>, value: f64) {
    if value.is_nan() {
        out.extend_from_slice(b"NAN");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value < 0.0 { b"-INF" } else { b"INF" });
        return;
    }
    write_finite(out, value, b'E');
}

/// As `json_encode()` writes it without flags: the same digits and layout
/// as `serialize()`, with a lower-case `e` (`1.0e+25`), and no `.0` added
/// to integral values (`1`, `-0`: `JSON_PRESERVE_ZERO_FRACTION` is off), so
/// `json_decode()` reads those back as integers. `false` for INF and NAN,
/// which JSON cannot hold and `json_encode()` refuses.
pub(crate) fn write_json(out: &mut Vec<u8>, value: f64) -> bool {
    if !value.is_finite() {
        return false;
    }
    write_finite(out, value, b'e');
    true
}

/// A finite `value`; `exponent_mark` is the letter before the exponent.
fn write_finite(out: &mut Vec<u8>, value: f64, exponent_mark: u8) {
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let Some((&first, rest)) = digits.split_first() else {
        return;
    };
    // `{:e}` always writes a decimal exponent that fits; the fallback is never taken.
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // Where the decimal point sits counted from the first digit:
    // 0.1 → 0, 1.5 → 1, 100 → 3.
    let point = exponent + 1;

    if negative {
        out.push(b'-');
    }
    if !(-3..=PLAIN_DIGITS).contains(&point) {
        out.push(first);
        out.push(b'.');
        if rest.is_empty() {
            out.push(b'0');
        } else {
            out.extend_from_slice(rest);
        }
        out.push(exponent_mark);
        out.push(if exponent < 0 { b'-' } else { b'+' });
        out.extend_from_slice(exponent.unsigned_abs().to_string().as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.extend_from_slice(&digits);
            out.extend(std::iter::repeat_n(b'0', point - digits.len()));
        } else {
            out.extend_from_slice(&digits[..point]);
            out.push(b'.');
            out.extend_from_slice(&digits[point..]);
        }
    }
}

#[cfg(test)]
mod tests {
    fn php(value: f64) -> String {
        let mut out = Vec::new();
        super::write(&mut out, value);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn matches_php_at_every_layout_boundary() {
        // Each expectation is what `php -r 'echo serialize(...);'` prints.
        let cases = [
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (100.0, "100"),
            (1e15, "1000000000000000"),
            (1e16, "10000000000000000"),
            (1e17, "1.0E+17"),
            (1.2345678901234568e17, "1.2345678901234568E+17"),
            (1e25, "1.0E+25"),
            (1e-4, "0.0001"),
            (1.2e-4, "0.00012"),
            (1e-5, "1.0E-5"),
            (1e-10, "1.0E-10"),
            (5e-324, "5.0E-324"),
            (f64::MAX, "1.7976931348623157E+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::INFINITY, "INF"),
            (f64::NEG_INFINITY, "-INF"),
            (f64::NAN, "NAN"),
            (-f64::NAN, "NAN"),
        ];
        for (value, expected) in cases {
            assert_eq!(php(value), expected, "{value:e}");
        }
    }

    #[test]
    fn json_differs_only_in_the_exponent_letter_and_refuses_inf_and_nan() {
        // What `php -r 'echo json_encode(...);'` prints.
        let cases = [
            (1.0, "1"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1e25, "1.0e+25"),
            (-1.25e-7, "-1.25e-7"),
            (5e-324, "5.0e-324"),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            assert!(super::write_json(&mut out, value));
            assert_eq!(String::from_utf8(out).expect("ASCII"), expected);
        }
        for value in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let mut out = Vec::new();
            assert!(!super::write_json(&mut out, value));
            assert!(out.is_empty());
        }
    }
}
