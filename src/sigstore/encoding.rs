//! The encodings Sigstore material arrives in: standard base64 (bundles, annotations,
//! Rekor bodies) and RFC 3339 UTC times (the trusted root's validity windows).

/// Decodes standard base64 (RFC 4648 §4), padded or not; anything else is `None`.
#[must_use]
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 || body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut group: u32 = 0;
    let mut bits = 0u32;
    for byte in body.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        group = (group << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((group >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time (`2021-01-12T11:53:27Z`, fractional
/// seconds ignored), as the trusted root writes them. Only RFC 3339 §5.6's grammar with `Z`:
/// four-digit year, two-digit fields, a day that exists in its month, a second up to 60 (a
/// leap second), a fraction of at least one digit. Anything else is `None` (a longer year
/// once overflowed the day count).
#[must_use]
pub fn rfc3339_seconds(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let rest = bytes.get(19..)?.strip_suffix(b"Z")?;
    match rest.strip_prefix(b".") {
        Some(fraction) if !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit) => {}
        None if rest.is_empty() => {}
        _ => return None,
    }
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !separators
        .iter()
        .all(|(at, byte)| bytes.get(*at) == Some(byte))
    {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<i64> {
        let digits = bytes.get(from..to)?;
        digits.iter().try_fold(0i64, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// RFC 3339 §5.7's table: 28, 29 (leap years) or 30/31 days.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_the_encoder_and_refuses_other_alphabets() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let encoded = crate::base64::encode(bytes);
            assert_eq!(base64_decode(&encoded).unwrap(), bytes, "{encoded}");
            assert_eq!(base64_decode(encoded.trim_end_matches('=')).unwrap(), bytes);
        }
        for bad in ["Zm9v\n", "Zm9-", "Z", "Zg===", "Zm 9v"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_known_answers() {
        // `date -u -d 2021-01-12T11:53:27Z +%s` = 1610452407.
        assert_eq!(rfc3339_seconds("2021-01-12T11:53:27Z"), Some(1_610_452_407));
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        // `date -u -d 2022-12-31T23:59:59Z +%s` = 1672531199.
        assert_eq!(
            rfc3339_seconds("2022-12-31T23:59:59.999Z"),
            Some(1_672_531_199)
        );
        assert_eq!(rfc3339_seconds("2021-01-12T11:53:27+01:00"), None);
        assert_eq!(rfc3339_seconds("2021-13-12T11:53:27Z"), None);
        // RFC 3339 §5.7: 2000 is a leap year, 1900 is not.
        assert_eq!(rfc3339_seconds("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(rfc3339_seconds("1900-02-29T00:00:00Z"), None);
    }

    /// Found by the `sigstore_encoding` fuzz target: a year of 18 digits overflowed the day
    /// count (a panic with overflow checks, a wrapped validity window without). A trusted
    /// root's `validFor` times are now only RFC 3339's grammar.
    #[test]
    fn rfc3339_refuses_what_is_not_its_grammar() {
        for bad in [
            "922337203685477580-01-01T00:00:00Z",
            "-9223372036854775-01-01T00:00:00Z",
            "+2021-01-12T11:53:27Z",
            "2021-1-12T11:53:27Z",
            "2021-01-12T11:53:7Z",
            "2021-02-30T00:00:00Z",
            "2021-04-31T00:00:00Z",
            "2021-01-12T11:53:27.Z",
            "2021-01-12T11:53:27.9xZ",
            "2021-01-12 11:53:27Z",
            "2021-01-12T11:53:61Z",
            "2021-01-12T11:53:27z",
        ] {
            assert_eq!(rfc3339_seconds(bad), None, "{bad}");
        }
        // A leap second is RFC 3339's (§5.6 time-second 60): the next second's count.
        assert_eq!(
            rfc3339_seconds("2016-12-31T23:59:60Z"),
            rfc3339_seconds("2017-01-01T00:00:00Z")
        );
    }
}
