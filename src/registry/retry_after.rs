//! `Retry-After` (RFC 9110 §10.2.3): how long a rate-limited (429) or unavailable (503)
//! registry asks to be left alone, as delta-seconds or an HTTP-date. RFC 9110 §5.6.7 makes
//! recipients accept all three date forms: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`),
//! the obsolete RFC 850 form (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
//! (`Sun Nov  6 08:49:37 1994`). A date in the past means "now".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The wait `value` asks for, counted from `now`; `None` if it is neither form.
#[must_use]
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Saturating: a wait longer than u64 seconds is simply past any deadline.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let at = http_date(value, now)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Seconds since the epoch of an HTTP-date in any of its three forms.
fn http_date(value: &str, now: SystemTime) -> Option<SystemTime> {
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match words.as_slice() {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
        [name, day, month, year, time, "GMT"]
            if DAY_NAMES.contains(&name.strip_suffix(',')?) && day.len() == 2 =>
        {
            (*day, *month, year4(year)?, *time)
        }
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
        [name, date, time, "GMT"] if LONG_DAY_NAMES.contains(&name.strip_suffix(',')?) => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || day.len() != 2 || year.len() != 2 {
                return None;
            }
            (day, month, two_digit_year(number(year)?, now), *time)
        }
        // asctime: `Sun Nov  6 08:49:37 1994` (the day padded with a space, not a zero).
        [name, month, day, time, year] if DAY_NAMES.contains(name) && day.len() <= 2 => {
            (*day, *month, year4(year)?, *time)
        }
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let day = number(day)?;
    let mut clock = time.split(':');
    let (hour, minute, second) = (clock.next()?, clock.next()?, clock.next()?);
    if clock.next().is_some() || [hour, minute, second].iter().any(|p| p.len() != 2) {
        return None;
    }
    let (hour, minute, second) = (number(hour)?, number(minute)?, number(second)?);
    // Second 60: a leap second, which the grammar allows.
    if hour > 23 || minute > 59 || second > 60 || day == 0 || day > days_in(year, month) {
        return None;
    }
    let days = days_from_civil(year, u64::try_from(month).ok()?, day)?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn year4(text: &str) -> Option<u64> {
    (text.len() == 4).then(|| number(text)).flatten()
}

/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the most recent
/// past year with those digits.
fn two_digit_year(yy: u64, now: SystemTime) -> u64 {
    let this_year = now
        .duration_since(UNIX_EPOCH)
        .map_or(1970, |d| 1970 + d.as_secs() / 31_556_952);
    let century = this_year - this_year % 100;
    let year = century + yy;
    if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in(year: u64, month: usize) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian); `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    // Count in years starting in March, so the leap day is the last day of a year.
    // Year 0's January and February belong to year -1: before 1970 like any other.
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-06-01 12:00:00 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_748_779_200)
    }

    #[test]
    fn accept_table() {
        for (value, seconds) in [
            ("0", 0),
            ("1", 1),
            (" 120 ", 120),
            ("99999999999999999999999", u64::MAX),
            // RFC 9110's own example date, long past: no wait.
            ("Sun, 06 Nov 1994 08:49:37 GMT", 0),
            ("Sunday, 06-Nov-94 08:49:37 GMT", 0),
            ("Sun Nov  6 08:49:37 1994", 0),
            // Thirty seconds after `now`, in each form.
            ("Sun, 01 Jun 2025 12:00:30 GMT", 30),
            ("Sunday, 01-Jun-25 12:00:30 GMT", 30),
            ("Sun Jun  1 12:00:30 2025", 30),
            // Years later, on a leap day.
            ("Tue, 29 Feb 2028 00:00:00 GMT", 86_400 * 1003 - 12 * 3600),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
        ] {
            assert_eq!(
                retry_after(value, now()),
                Some(Duration::from_secs(seconds)),
                "{value}"
            );
        }
        // RFC 850 years more than 50 years ahead are last century's.
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("Monday, 01-Jan-74 00:00:00 GMT", now()).map(|d| d.as_secs() > 0),
            Some(true)
        );
    }

    #[test]
    fn reject_table() {
        for value in [
            "",
            "-1",
            "1.5",
            "soon",
            "0x10",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 2025 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37 94",
            "Sun, 00 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(retry_after(value, now()), None, "{value:?}");
        }
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2025, 6, 1), Some(20_240));
        assert_eq!(days_from_civil(1969, 12, 31), None);
    }

    /// The old `days_from_civil` as the release build ran it: `year - 1` and the products
    /// wrapping instead of stopping.
    fn old_days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
        let year = if month <= 2 {
            year.wrapping_sub(1)
        } else {
            year
        };
        let era = year / 400;
        let year_of_era = year % 400;
        let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era.wrapping_mul(146_097)
            .wrapping_add(day_of_era)
            .checked_sub(719_468)
    }

    /// Found by the `retry_after` fuzz target (fuzz/seeds/retry_after/crash-year-zero): a
    /// date in January or February of year 0 made `year - 1` underflow: a panic with overflow
    /// checks (debug builds, tests), a wrapped year and a bogus wait without (release).
    #[test]
    fn year_zero_january_and_february_are_before_1970_not_an_overflow() {
        let reproducer = include_str!("../../fuzz/seeds/retry_after/crash-year-zero");
        assert_eq!(reproducer, "Fri, 01 Feb 0000 08:49:37 GMT");
        // The old arithmetic made year 0 a day after 1970: a bogus wait, not "no date".
        assert!(old_days_from_civil(0, 2, 1).is_some_and(|days| days > 0));
        assert_eq!(days_from_civil(0, 2, 1), None);
        assert_eq!(days_from_civil(0, 1, 31), None);
        assert_eq!(days_from_civil(0, 3, 1), None);
        assert_eq!(retry_after(reproducer, now()), None);
        assert_eq!(retry_after("Sat Jan  1 00:00:00 0000", now()), None);
    }
}
