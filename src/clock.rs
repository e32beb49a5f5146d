//! Wall-clock formatting and parsing without a date-time dependency.

use std::time::{Duration, SystemTime};

/// RFC 3339 UTC timestamp (second precision) without a date-time dependency.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// RFC 3339 UTC timestamp with milliseconds (`2026-11-26T00:42:28.123Z`).
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Unix milliseconds of an RFC 3339 UTC timestamp (see `parse_utc`).
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    parse_utc(s)?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a UTC timestamp `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (the form Crossbar's HTTP bridge
/// requires, e.g. `2011-10-14T16:59:51.123Z`; up to nine fraction digits). `None` for anything
/// else, including dates before 1970.
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[b.len() - 1] == b'Z';
    if !shape {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let t = s.get(from..to)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (i64::from(num(0, 4)?), num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if y < 1970 || !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let fraction = s.get(19..s.len() - 1)?;
    let nanos = match fraction.strip_prefix('.') {
        None if fraction.is_empty() => 0,
        Some(digits)
            if (1..=9).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()) =>
        {
            let n: u32 = digits.parse().ok()?;
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let days = u64::try_from(days_from_civil(y, mo, d)).ok()?;
    let secs = days * 86_400 + u64::from(h * 3600 + mi * 60 + sec);
    std::time::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_653_748);
        assert_eq!(rfc3339(t), "2026-11-26T00:42:28Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_ms(1_795_653_748_123), "2026-11-26T00:42:28.123Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T00:42:28.123Z"),
            Some(1_795_653_748_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-26T00:42:28Z"),
            Some(1_795_653_748_000)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }

    #[test]
    fn utc_timestamps_parse() {
        let at = |secs: u64, nanos: u32| Some(std::time::UNIX_EPOCH + Duration::new(secs, nanos));
        assert_eq!(parse_utc("2026-11-26T00:42:28Z"), at(1_795_653_748, 0));
        assert_eq!(
            parse_utc("2026-11-26T00:42:28.123Z"),
            at(1_795_653_748, 123_000_000)
        );
        assert_eq!(
            parse_utc("2026-11-26T00:42:28.123456Z"),
            at(1_795_653_748, 123_456_000),
            "PHP's microseconds"
        );
        assert_eq!(parse_utc("1970-01-01T00:00:00.0Z"), at(0, 0));
        assert_eq!(parse_utc("2024-02-29T12:00:00Z"), at(1_709_208_000, 0));
        // Round trip with the formatter over many days.
        for day in (0..40_000u64).step_by(97) {
            let t = std::time::UNIX_EPOCH + Duration::from_secs(day * 86_400 + 3_723);
            assert_eq!(parse_utc(&rfc3339(t)), Some(t));
        }
        for bad in [
            "",
            "2011-10-14 16:59:51.123Z",
            "2011-10-14T16:59:51.123",
            "2011-10-14T16:59:51.123+00:00",
            "2011-13-14T16:59:51Z",
            "2023-02-29T16:59:51Z",
            "2011-10-14T24:00:00Z",
            "2011-10-14T16:59:51.Z",
            "2011-10-14T16:59:51.1234567890Z",
            "1969-12-31T23:59:59Z",
            "2011-1x-14T16:59:51Z",
            "+011-10-14T16:59:51Z",
            "2011-10-14T16:59:51.12a3Z",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
