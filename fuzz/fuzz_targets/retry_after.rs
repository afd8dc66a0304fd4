//! `Retry-After` values from a registry's 429 / 503 through `retry_after`, as the registry
//! client reads them. Invariants: delta-seconds are the number given; a date in the future
//! written back as an IMF-fixdate (RFC 9110 §5.6.7) is the same wait; leading and trailing
//! whitespace changes nothing.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::retry_after;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `secs` since the epoch as an IMF-fixdate; the civil date by Howard Hinnant's
/// `civil_from_days` (http://howardhinnant.github.io/date_algorithms.html).
fn imf_fixdate(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = std::str::from_utf8(bytes) else {
        return;
    };
    // 2026-01-01T00:00:00Z.
    let now_secs = 1_767_225_600;
    let now = UNIX_EPOCH + Duration::from_secs(now_secs);
    let Some(wait) = retry_after(value, now) else {
        return;
    };
    let trimmed = value.trim();
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let expected = trimmed.parse::<u64>().unwrap_or(u64::MAX);
        assert_eq!(wait, Duration::from_secs(expected));
    } else if wait > Duration::ZERO && wait.as_secs() < 300 * 365 * 86_400 {
        let date = imf_fixdate(now_secs + wait.as_secs());
        assert_eq!(retry_after(&date, now), Some(wait), "{value:?} -> {date:?}");
    }
    assert_eq!(
        retry_after(&format!(" {value}\t"), now),
        Some(wait),
        "whitespace"
    );
});
