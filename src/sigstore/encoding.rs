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
/// seconds ignored), as the trusted root writes them.
#[must_use]
pub fn rfc3339_seconds(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..61).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
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
    }
}
