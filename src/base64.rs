//! Standard base64 (RFC 4648 §4 alphabet, `=` padding): the payload encoding of a line in
//! dstack's runtime event log and HTTP Basic credentials for a registry (encode), and a quote
//! file given to `verify` as base64 (decode).
//!
//! dstack writes payloads with `serde_human_bytes::base64`, which calls `base64::encode`
//! (base64 0.13: the standard alphabet with padding). A few lines here rather than a crate
//! in the TEE binary.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes `bytes` as standard, padded base64.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let group = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        // `chunks(3)` yields 1 to 3 bytes: 2 to 4 symbols, then padding to 4.
        let symbols = chunk.len() + 1;
        for index in 0..4 {
            if index < symbols {
                let sextet = (group >> (18 - 6 * index)) & 0x3f;
                out.push(char::from(sextet_symbol(sextet)));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64, padded or not; ASCII whitespace (line breaks) is skipped. `None`
/// for any other symbol, misplaced padding, or a length no encoder produces.
#[must_use]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data_len = symbols
        .iter()
        .position(|&b| b == b'=')
        .unwrap_or(symbols.len());
    let (data, padding) = symbols.split_at(data_len);
    let padded = !padding.is_empty();
    if padding.len() > 2
        || padding.iter().any(|&b| b != b'=')
        || (padded && !symbols.len().is_multiple_of(4))
        || data.len() % 4 == 1
    {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let mut bits = 0u32;
    let mut count = 0u32;
    for &symbol in data {
        let value = ALPHABET.iter().position(|&a| a == symbol)?;
        bits = (bits << 6) | u32::try_from(value).ok()?;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).ok()?);
            bits &= (1 << count) - 1;
        }
    }
    // Leftover bits must be zero (RFC 4648 §3.5: a canonical encoding).
    (bits == 0).then_some(out)
}

fn sextet_symbol(sextet: u32) -> u8 {
    usize::try_from(sextet)
        .ok()
        .and_then(|index| ALPHABET.get(index))
        .copied()
        .unwrap_or(b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4648 §10 test vectors, and bytes that use `+` and `/`.
    #[test]
    fn known_answers() {
        for (input, expected) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff, 0xbf], "+/+/"),
            (&[0x00, 0x10, 0x83], "ABCD"),
            (b"sha256:0123", "c2hhMjU2OjAxMjM="),
        ] {
            assert_eq!(encode(input), expected, "{input:?}");
        }
    }

    /// Every byte value in every position of a 3-byte group round-trips through a
    /// straightforward decoder written here.
    #[test]
    fn round_trips_all_byte_values() {
        let bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        for len in [bytes.len(), bytes.len() - 1, bytes.len() - 2] {
            let text = encode(&bytes[..len]);
            assert_eq!(text.len() % 4, 0);
            let mut bits = 0u32;
            let mut count = 0;
            let mut decoded = Vec::new();
            for symbol in text.bytes().filter(|&b| b != b'=') {
                let value =
                    u32::try_from(ALPHABET.iter().position(|&a| a == symbol).unwrap()).unwrap();
                bits = (bits << 6) | value;
                count += 6;
                if count >= 8 {
                    count -= 8;
                    decoded.push(u8::try_from(bits >> count).unwrap());
                    bits &= (1 << count) - 1;
                }
            }
            assert_eq!(decoded, &bytes[..len]);
            assert_eq!(decode(&text).as_deref(), Some(&bytes[..len]));
        }
    }

    /// RFC 4648 §10 vectors decode, unpadded and wrapped too; malformed text does not.
    #[test]
    fn decodes_and_refuses() {
        assert_eq!(decode("Zm9vYmE=").as_deref(), Some(&b"fooba"[..]));
        assert_eq!(decode("Zm9vYmE").as_deref(), Some(&b"fooba"[..]));
        assert_eq!(decode("Zm9v\nYmFy\n").as_deref(), Some(&b"foobar"[..]));
        assert_eq!(decode("").as_deref(), Some(&b""[..]));
        for bad in ["Zm9v!", "Z", "Zm9vY===", "Zm=9v", "Zh==", "Zm9vYmE=Zg=="] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
