//! Lowercase hex encoding and strict decoding, shared by every digest type.

use std::fmt::Write as _;

/// Encodes bytes as lowercase hex.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Decodes lowercase hex of exactly `N` bytes; anything else (uppercase, odd length,
/// whitespace, a prefix) is rejected, so one value has exactly one spelling.
#[must_use]
pub fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if text.len() != N * 2 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *slot = (nibble(*high)? << 4) | nibble(*low)?;
    }
    Some(out)
}

/// Decodes lowercase hex of any even length (payloads).
#[must_use]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| match pair {
            [high, low] => Some((nibble(*high)? << 4) | nibble(*low)?),
            _ => None,
        })
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(encode(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(decode_exact::<3>("00abff"), Some([0x00, 0xab, 0xff]));
    }

    #[test]
    fn decodes_any_even_length() {
        assert_eq!(decode(""), Some(vec![]));
        assert_eq!(decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode("0"), None);
        assert_eq!(decode("0G"), None);
        assert_eq!(decode("FF"), None);
    }

    #[test]
    fn rejects_non_canonical() {
        for bad in [
            "00ABff", "00abf", "00abff0", " 0abff", "0xabff", "00abfg", "",
        ] {
            assert_eq!(decode_exact::<3>(bad), None, "{bad:?}");
        }
    }
}
