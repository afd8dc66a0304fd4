//! Standard base64 (RFC 4648 §4 alphabet, `=` padding), encode only: the payload encoding of
//! a line in dstack's runtime event log, and HTTP Basic credentials for a registry.
//!
//! dstack writes payloads with `serde_human_bytes::base64`, which calls `base64::encode`
//! (base64 0.13: the standard alphabet with padding). The `base64` crate's `STANDARD` engine
//! is that encoding; the crate is already in the launcher's build through ureq, so this is
//! no new dependency (and no hand-written encoder).

use ::base64::Engine as _;
use ::base64::engine::general_purpose::STANDARD;

/// Encodes `bytes` as standard, padded base64.
#[must_use]
pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
