//! The shapes a quote arrives in (issue 13): binary, hex with `0x` (dcap-qvl's own
//! `sample/tdx-quote.hex`), upper-case hex, base64; binary data given as INPUT; a quote whose
//! version field is not a TDX quote's. Each is read to the same bytes, or refused with what
//! was read and what to do, never with a misleading "quote version 30768".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use serde_json::{Value, json};

use common::verdict::{SAMPLE_NOW, fixture, fixture_str, verify};

const HEX_SAMPLE: &str = "dcap-qvl-0.7.1_sample_tdx-quote.hex";
const CRABBOX_QUOTE: &str = "crabbox_real_tdx_quote.bin";

/// Base64 written here (RFC 4648 §4, padded), independent of the crate's decoder.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    common::hex(bytes)
}

/// The measurements `verify --quote FILE --skip-dcap --allow-no-launch` reads.
fn measurements(dir: &std::path::Path, quote: &str) -> (Value, String) {
    let verdict = verify(dir, &["--quote", quote, "--skip-dcap", "--allow-no-launch"]);
    verdict.says(3, "NOT VERIFIED: the quote's signature was not checked");
    (
        verdict.json["measurements"].clone(),
        verdict.detail("input"),
    )
}

/// dcap-qvl's `sample/tdx-quote.hex` is `0x` + hex. The old reader took its text as quote
/// bytes (version = "0x" read little-endian = 30768); now it is decoded, and reads as the
/// bytes an independent decode gives.
#[test]
fn dcap_qvl_0x_hex_sample_is_read_as_hex() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(fixture(HEX_SAMPLE)).unwrap();
    assert!(text.starts_with("0x0400"));
    // The old reading: the file's bytes as the quote.
    let raw = text.as_bytes();
    assert_eq!(u16::from_le_bytes([raw[0], raw[1]]), 30768);
    let bytes: Vec<u8> = (2..text.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect();
    let binary = dir.path().join("sample.bin");
    fs::write(&binary, &bytes).unwrap();
    let (from_hex, how) = measurements(dir.path(), &fixture_str(HEX_SAMPLE));
    assert!(how.ends_with("(hex); 0 event log entries"), "{how}");
    let (from_binary, _) = measurements(dir.path(), binary.to_str().unwrap());
    assert_eq!(from_hex, from_binary);
    assert_eq!(from_hex["rtmr3"], hex(&bytes[48 + 472..48 + 520]));
    // Its signature chain verifies with the sample collateral (the TCB level is what fails:
    // a different platform than `tdx_quote`), so the bytes are the real quote's.
    let dcap = verify(
        dir.path(),
        &[
            "--quote",
            &fixture_str(HEX_SAMPLE),
            "--collateral",
            &fixture_str("dcap-qvl_sample_tdx_quote_collateral.json"),
            "--now",
            SAMPLE_NOW,
            "--allow-no-launch",
        ],
    );
    dcap.says(
        1,
        "NOT VERIFIED: the quote's signature did not verify: Intel DCAP refused",
    );
    assert!(
        dcap.detail("quote.signature")
            .contains("No matching TCB level")
    );
}

/// crabbox's binary quote, written as upper-case hex, `0X` hex wrapped at 64 columns, and
/// base64 wrapped at 76: the same measurements each time.
#[test]
fn upper_case_hex_and_base64_read_as_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(fixture(CRABBOX_QUOTE)).unwrap();
    let (binary, how) = measurements(dir.path(), &fixture_str(CRABBOX_QUOTE));
    assert!(how.contains("(binary)"), "{how}");
    let upper = hex(&bytes).to_uppercase();
    let wrapped: Vec<String> = upper
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let b64 = base64(&bytes);
    let b64_wrapped: Vec<String> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    for (name, text, kind) in [
        ("upper.hex", upper.clone(), "(hex)"),
        (
            "wrapped.hex",
            format!("0X{}\n", wrapped.join("\n")),
            "(hex)",
        ),
        ("quote.b64", b64.clone(), "(base64)"),
        (
            "wrapped.b64",
            format!("{}\n", b64_wrapped.join("\n")),
            "(base64)",
        ),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let (read, how) = measurements(dir.path(), path.to_str().unwrap());
        assert_eq!(read, binary, "{name}");
        assert!(how.contains(kind), "{name}: {how}");
    }
    // Text that is neither: refused as the input, saying what it starts with.
    let prose = dir.path().join("prose.txt");
    fs::write(&prose, "this is not a quote at all").unwrap();
    let verdict = verify(
        dir.path(),
        &["--quote", prose.to_str().unwrap(), "--skip-dcap"],
    );
    verdict.says(1, "NOT VERIFIED: the input could not be read: ");
    assert!(
        verdict.line().contains("neither hex") && verdict.line().contains("\"this is not a qu\"")
    );
}

/// A quote given as INPUT (which takes JSON documents): the old message was "input is not
/// JSON: expected value at line 1 column 1"; now it says it is a quote and to use --quote.
#[test]
fn a_quote_given_as_input_gets_a_hint_to_quote() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(fixture(CRABBOX_QUOTE)).unwrap();
    // The old reading, emulated: serde_json's error for these bytes.
    let old = serde_json::from_slice::<Value>(&bytes)
        .unwrap_err()
        .to_string();
    assert!(old.contains("expected value"), "{old}");
    let binary = verify(dir.path(), &[&fixture_str(CRABBOX_QUOTE)]);
    binary
        .says(
            1,
            "NOT VERIFIED: the input could not be read: INPUT is a binary TDX quote (5010 bytes)",
        )
        .mentions("give it as --quote FILE");
    assert!(!binary.line().contains("expected value"));
    verify(dir.path(), &[&fixture_str(HEX_SAMPLE)])
        .says(
            1,
            "NOT VERIFIED: the input could not be read: INPUT is a TDX quote written as hex text",
        )
        .mentions("--quote FILE");
    let other = dir.path().join("random.bin");
    fs::write(&other, [0xde, 0xad, 0xbe, 0xef, 0, 1, 2]).unwrap();
    verify(dir.path(), &[other.to_str().unwrap()]).says(
        1,
        "NOT VERIFIED: the input could not be read: input is binary data (7 bytes)",
    );
}

/// A `GetQuote` reply whose `quote` is the hex of the *text* of a hex quote (encoded twice):
/// the version field reads 30768 ("0x"); the message says it is not a TDX quote, shows the
/// bytes read and that they are text. A `0x`-prefixed or upper-case `quote` field is read.
#[test]
fn an_implausible_version_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(fixture(HEX_SAMPLE)).unwrap();
    let twice = json!({"quote": hex(text.trim().as_bytes()), "event_log": "[]"});
    let path = dir.path().join("twice.json");
    fs::write(&path, twice.to_string()).unwrap();
    let verdict = verify(dir.path(), &[path.to_str().unwrap(), "--skip-dcap"]);
    verdict
        .says(1, "NOT VERIFIED: the quote is not readable: not a TDX quote (version 30768, read from its first bytes 30 78 30 34)")
        .mentions("reads as text (\"0x04000200810000\")");
    assert!(!verdict.line().contains("quote version 30768"));
    for (name, quote) in [
        ("prefixed.json", text.trim().to_owned()),
        ("upper.json", text.trim()[2..].to_uppercase()),
    ] {
        let path = dir.path().join(name);
        fs::write(
            &path,
            json!({"quote": quote, "event_log": "[]"}).to_string(),
        )
        .unwrap();
        let verdict = verify(
            dir.path(),
            &[path.to_str().unwrap(), "--skip-dcap", "--allow-no-launch"],
        );
        assert_eq!(
            verdict.check("quote.structure"),
            "passed",
            "{name}: {}",
            verdict.line()
        );
    }
}
