//! Wall-clock formatting without a date-time dependency.

use std::time::SystemTime;

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

/// Unix milliseconds of an RFC 3339 timestamp (UTC `Z` form, any sub-second precision).
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
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
}
