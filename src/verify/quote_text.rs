//! A quote as people hand it over: raw bytes (`/dev/attestation/quote`, crabbox's `.bin`), hex
//! (`0x`-prefixed as in dcap-qvl's `sample/tdx-quote.hex`, upper or lower case, line breaks
//! allowed), or standard base64. Recognised by shape; what is read is named in every message.

use crate::{base64, hex};

/// How a quote file was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Hex,
    Base64,
}

impl Encoding {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }
}

/// The quote bytes in `bytes`, and how they were written. Text that is neither hex nor base64
/// is refused with what it starts with.
pub fn decode(bytes: &[u8]) -> Result<(Vec<u8>, Encoding), String> {
    let Some(text) = as_text(bytes) else {
        return Ok((bytes.to_vec(), Encoding::Binary));
    };
    match decode_text(text) {
        // Most words are valid base64 too: base64 text counts only when it holds a quote.
        Some((quote, Encoding::Base64)) if !looks_like_tdx_quote(&quote) => {}
        Some(decoded) => return Ok(decoded),
        None => {}
    }
    Err(format!(
        "the quote file is text ({}) but neither hex (0x prefix and upper case allowed) nor base64",
        start_of(text)
    ))
}

/// `Some` when `bytes` are printable ASCII text (line breaks and spaces allowed).
fn as_text(bytes: &[u8]) -> Option<&str> {
    let printable = |b: &u8| b.is_ascii_graphic() || b.is_ascii_whitespace();
    if bytes.is_empty() || !bytes.iter().all(printable) {
        return None;
    }
    std::str::from_utf8(bytes).ok().map(str::trim)
}

/// Hex (with or without `0x`, any case, whitespace between lines), else base64.
fn decode_text(text: &str) -> Option<(Vec<u8>, Encoding)> {
    let unprefixed = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let digits: String = unprefixed
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(decoded) = hex::decode(&digits).filter(|d| !d.is_empty()) {
        return Some((decoded, Encoding::Hex));
    }
    base64::decode(text)
        .filter(|d| !d.is_empty())
        .map(|decoded| (decoded, Encoding::Base64))
}

/// The first characters of a text, quoted, for messages.
pub fn start_of(text: &str) -> String {
    let head: String = text.chars().take(16).collect();
    if head.len() < text.len() {
        format!("starts {head:?}...")
    } else {
        format!("{head:?}")
    }
}

/// The header of a TDX quote: version 4 or 5 (u16 LE at 0) and TEE type 0x81 (u32 LE at 4).
#[must_use]
pub fn looks_like_tdx_quote(bytes: &[u8]) -> bool {
    matches!(bytes.get(..8), Some([4 | 5, 0, _, _, 0x81, 0, 0, 0]))
}

/// Why a document that is not JSON is not one: a quote (binary or text) gets a hint to
/// `--quote`, other binary data says so.
#[must_use]
pub fn not_a_document(bytes: &[u8], json_error: &str) -> String {
    if looks_like_tdx_quote(bytes) {
        return format!(
            "INPUT is a binary TDX quote ({} bytes), not a JSON document: give it as --quote FILE (with --event-log FILE for its log)",
            bytes.len()
        );
    }
    match as_text(bytes) {
        Some(text) => match decode_text(text) {
            Some((quote, encoding)) if looks_like_tdx_quote(&quote) => format!(
                "INPUT is a TDX quote written as {} text, not a JSON document: give it as --quote FILE (with --event-log FILE for its log)",
                encoding.as_str()
            ),
            _ => format!("input is not JSON ({}): {json_error}", start_of(text)),
        },
        None => format!(
            "input is binary data ({} bytes), not a JSON document; a quote file is given with --quote FILE",
            bytes.len()
        ),
    }
}

/// A quote whose version field is not a TDX quote's, described with the bytes read.
#[must_use]
pub fn bad_version(bytes: &[u8], version: u16) -> String {
    let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let mut message = format!(
        "not a TDX quote (version {version}, read from its first bytes {}); a TDX quote starts with 04 00 (v4) or 05 00 (v5)",
        head.join(" ")
    );
    if let Some(text) = bytes
        .get(..16)
        .and_then(|b| std::str::from_utf8(b).ok())
        .filter(|text| text.bytes().all(|b| b.is_ascii_graphic()))
    {
        message.push_str("; the quote reads as text (");
        message.push_str(&start_of(text));
        message.push_str("): hex or base64 quotes are read with --quote FILE");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTE_HEAD: [u8; 8] = [4, 0, 2, 0, 0x81, 0, 0, 0];

    #[test]
    fn every_encoding_decodes_to_the_same_bytes() {
        let quote = QUOTE_HEAD.to_vec();
        let lower = hex::encode(&quote);
        for (text, encoding) in [
            (lower.clone(), Encoding::Hex),
            (format!("0x{lower}\n"), Encoding::Hex),
            (format!("0X{}", lower.to_ascii_uppercase()), Encoding::Hex),
            (format!("{}\n{}\n", &lower[..8], &lower[8..]), Encoding::Hex),
            (base64::encode(&quote), Encoding::Base64),
        ] {
            assert_eq!(
                decode(text.as_bytes()),
                Ok((quote.clone(), encoding)),
                "{text}"
            );
        }
        assert_eq!(decode(&quote), Ok((quote.clone(), Encoding::Binary)));
        let refused = decode(b"hello, verifier!").unwrap_err();
        assert!(refused.contains("neither hex"), "{refused}");
        // Valid base64 that is not a quote is not taken for one.
        assert!(decode(b"thisisnotaquote").is_err());
    }

    #[test]
    fn inputs_that_are_quotes_get_a_hint() {
        let binary = not_a_document(&QUOTE_HEAD, "e");
        assert!(binary.contains("binary TDX quote") && binary.contains("--quote"));
        let text = not_a_document(format!("0x{}", hex::encode(&QUOTE_HEAD)).as_bytes(), "e");
        assert!(
            text.contains("hex text") && text.contains("--quote"),
            "{text}"
        );
        let other = not_a_document(&[0xff, 0xfe, 0], "e");
        assert!(other.contains("binary data"), "{other}");
        assert!(not_a_document(b"hello", "e").contains("not JSON"));
    }

    #[test]
    fn a_bad_version_says_what_was_read() {
        let message = bad_version(b"0x04000200810000000000", 0x7830);
        assert!(
            message.contains("not a TDX quote (version 30768"),
            "{message}"
        );
        assert!(message.contains("30 78 30 34"), "{message}");
        assert!(message.contains("reads as text"), "{message}");
    }
}
