//! Attestations for the tests: facts read from the real fixtures, and synthetic
//! quotes and logs built with `sha2` and the fake agent's helpers.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::common::fake_agent::{
    EVENT_TYPE, QUOTE_LEN, QUOTE_REPORT_DATA, QUOTE_RTMR3, hex, replay, unhex, v1_digest,
};
use crate::{
    CONFIG, CRABBOX_INFO, NEAR, QUOTE_MRCONFIGID, READY, Report, Scratch, WORKLOAD, fixture_bytes,
    fixture_json,
};

// --- facts read from the fixtures ----------------------------------------------------------

/// NEAR's public data: `tee_participant_info.Dstack`.
pub(crate) fn near() -> Value {
    fixture_json(NEAR)["tee_participant_info"]["Dstack"].clone()
}

pub(crate) fn near_quote() -> Vec<u8> {
    near()["quote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
        .collect()
}

pub(crate) fn near_image_digest() -> String {
    String::from_utf8(fixture_bytes("near-mpc_mpc_image_digest.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

/// A `GetQuote`-shaped fixture's quote bytes and parsed event log.
pub(crate) fn getquote_parts(value: &Value) -> (Vec<u8>, Vec<Value>) {
    let quote = unhex(value["quote"].as_str().unwrap()).unwrap();
    let log = serde_json::from_str(value["event_log"].as_str().unwrap()).unwrap();
    (quote, log)
}

/// Rebuilds a `GetQuote`-shaped value with `quote` and `log` in place of the originals.
pub(crate) fn with_parts(value: &Value, quote: &[u8], log: &[Value]) -> Value {
    let mut out = value.clone();
    out["quote"] = json!(hex(quote));
    out["event_log"] = json!(serde_json::to_string(log).unwrap());
    out
}

/// 48 bytes of register at absolute quote offset `at` (v4), as hex.
pub(crate) fn register(quote: &[u8], at: usize) -> String {
    hex(&quote[at..at + 48])
}

/// The payload of the last RTMR3 entry named `name`.
pub(crate) fn payload_of(log: &[Value], name: &str) -> String {
    log.iter()
        .rev()
        .find(|e| e["imr"] == 3 && e["event"] == name)
        .and_then(|e| e["event_payload"].as_str())
        .unwrap_or_else(|| panic!("no {name} in log"))
        .to_owned()
}

pub(crate) fn position(log: &[Value], name: &str) -> usize {
    log.iter()
        .position(|e| e["imr"] == 3 && e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} in log"))
}

/// The crabbox Info response's `tcb_info`, parsed.
pub(crate) fn crabbox_tcb_info() -> Value {
    serde_json::from_str(fixture_json(CRABBOX_INFO)["tcb_info"].as_str().unwrap()).unwrap()
}

// --- synthetic attestations ----------------------------------------------------------------

/// A v4 TDX quote with an empty signature (as the fake agent makes): RTMR3 and REPORTDATA
/// set, everything else zero.
pub(crate) fn fake_quote(rtmr3: &[u8; 48], report_data: &[u8]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(rtmr3);
    quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + report_data.len()].copy_from_slice(report_data);
    quote
}

/// One RTMR3 entry in dstack's JSON, with its v1 digest.
pub(crate) fn runtime_entry(name: &str, payload: &[u8]) -> Value {
    json!({
        "imr": 3,
        "event_type": EVENT_TYPE,
        "digest": hex(&v1_digest(name, payload)),
        "event": name,
        "event_payload": hex(payload),
    })
}

/// dstack's boot events, up to `system-ready`.
pub(crate) fn boot_events() -> Vec<(String, Vec<u8>)> {
    [
        ("system-preparing", &b""[..]),
        ("app-id", &[0x94; 20][..]),
        ("compose-hash", &[0x60; 32][..]),
        ("instance-id", &[0xce; 20][..]),
        ("boot-mr-done", &b""[..]),
        ("key-provider", &br#"{"name":"kms","id":"30"}"#[..]),
        ("system-ready", &b""[..]),
    ]
    .iter()
    .map(|(n, p)| ((*n).to_owned(), p.to_vec()))
    .collect()
}

/// The three launcher events of one launch of `commit` with config hash `config_sha256`.
pub(crate) fn launch_events(commit: &str, config_sha256: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            CONFIG.to_owned(),
            format!("sha256:{config_sha256}").into_bytes(),
        ),
        (WORKLOAD.to_owned(), format!("git:{commit}").into_bytes()),
        (READY.to_owned(), Vec::new()),
    ]
}

/// A `GetQuote` response whose log is `events` and whose quote's RTMR3 is their replay.
pub(crate) fn synthetic_getquote(events: &[(String, Vec<u8>)]) -> Value {
    synthetic_getquote_with(events, &[0; 48])
}

/// As [`synthetic_getquote`], with MRCONFIGID set.
pub(crate) fn synthetic_getquote_with(
    events: &[(String, Vec<u8>)],
    mr_config_id: &[u8; 48],
) -> Value {
    let log: Vec<Value> = events.iter().map(|(n, p)| runtime_entry(n, p)).collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v1_digest(n, p)).collect();
    let mut quote = fake_quote(&replay(&digests), b"");
    quote[QUOTE_MRCONFIGID..QUOTE_MRCONFIGID + 48].copy_from_slice(mr_config_id);
    json!({
        "quote": hex(&quote),
        "event_log": serde_json::to_string(&log).unwrap(),
        "report_data": hex(&[0u8; 64]),
        "vm_config": "{}",
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Verifies a synthetic `GetQuote` response (no signature: `--skip-dcap`).
pub(crate) fn synthetic(
    s: &Scratch,
    name: &str,
    events: &[(String, Vec<u8>)],
    args: &[&str],
) -> Report {
    let path = s.write_json(name, &synthetic_getquote(events));
    s.report(&[&[path.as_str(), "--skip-dcap"], args].concat())
}

pub(crate) fn chain(parts: &[Vec<(String, Vec<u8>)>]) -> Vec<(String, Vec<u8>)> {
    parts.concat()
}

pub(crate) fn event(name: &str, payload: &[u8]) -> Vec<(String, Vec<u8>)> {
    vec![(name.to_owned(), payload.to_vec())]
}
