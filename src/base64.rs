//! Standard base64 (RFC 4648 §4 alphabet, `=` padding): the payload encoding of a line in
//! dstack's runtime event log and HTTP Basic credentials for a registry (encode), and a quote
//! file given to `verify` as base64 (decode).
//!
//! dstack writes payloads with `serde_human_bytes::base64`, which calls `base64::encode`
//! (base64 0.13: the standard alphabet with padding). The `base64` crate's `STANDARD` engine
//! is that encoding; the crate is already in the launcher's build through ureq, so this is
//! no new dependency (and no hand-written codec).

use ::base64::Engine as _;
use ::base64::engine::general_purpose::STANDARD;
#[cfg(feature = "verify")]
use ::base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};

/// Decoding (`verify` only): the standard alphabet, padding optional, non-zero leftover bits refused (RFC
/// 4648 §3.5: only a canonical encoding).
#[cfg(feature = "verify")]
const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes `bytes` as standard, padded base64.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, padded or not; ASCII whitespace (line breaks) is skipped. `None`
/// for any other symbol, misplaced padding, or a length no encoder produces.
#[cfg(feature = "verify")]
#[must_use]
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    LENIENT_PADDING.decode(symbols).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// RFC 4648 §10 test vectors, and bytes that use `+` and `/`: the standard alphabet with
    /// padding, not the URL-safe one or an unpadded engine.
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
            (b"user:pass", "dXNlcjpwYXNz"),
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
            #[cfg(feature = "verify")]
            assert_eq!(decode(&text).as_deref(), Some(&bytes[..len]));
        }
    }

    /// RFC 4648 §10 vectors decode, unpadded and wrapped too; malformed text does not.
    #[cfg(feature = "verify")]
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
