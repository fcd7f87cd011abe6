//! Times and durations for people: UTC timestamps and "3 min 12 s".

/// Unix milliseconds as `2026-12-01T16:20:01.123Z`.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        ms % 1000
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for the proleptic Gregorian calendar).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Milliseconds as the two largest units, the second left out when it is
/// zero: `850 ms`, `12.3 s`, `3 min 12 s`, `5 min`, `5 h 2 min`, `2 d 4 h`.
pub fn span(ms: u64) -> String {
    let s = ms / 1000;
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| match small {
        0 => format!("{big} {big_unit}"),
        _ => format!("{big} {big_unit} {small} {small_unit}"),
    };
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => two(s / 60, "min", s % 60, "s"),
        3_600_000..86_400_000 => two(s / 3600, "h", s / 60 % 60, "min"),
        _ => two(s / 86_400, "d", s / 3600 % 24, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        // date -u -d @1700000000.5
        assert_eq!(utc(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn spans_keep_two_units() {
        assert_eq!(span(850), "850 ms");
        assert_eq!(span(12_345), "12.3 s");
        assert_eq!(span(192_000), "3 min 12 s");
        assert_eq!(span(300_000), "5 min");
        assert_eq!(span(604_800_000), "7 d");
        assert_eq!(span(18_120_000), "5 h 2 min");
        assert_eq!(span(187_200_000), "2 d 4 h");
    }
}
