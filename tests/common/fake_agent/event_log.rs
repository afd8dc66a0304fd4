//! Event-log entries in dstack's JSON, dstack's boot events, and the digests: v1 event
//! digest, RTMR extension and replay (DESIGN §4), with the hex they are written in.

use serde::Serialize;
use sha2::{Digest as _, Sha384};

use super::{APP_ID, COMPOSE_HASH, EVENT_TYPE, INSTANCE_ID, KEY_PROVIDER, MR_KMS, OS_IMAGE_HASH};

/// One event-log entry, as the agent holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub imr: u32,
    pub event_type: u32,
    pub digest: [u8; 48],
    pub event: String,
    pub payload: Vec<u8>,
    /// `Some(2)` for a v2 entry of the `next` dstack (see `next_agent`); `None` for v1.
    pub version: Option<u32>,
}

impl Entry {
    /// A runtime (RTMR3) event, with its v1 digest.
    #[must_use]
    pub fn runtime(event: &str, payload: &[u8]) -> Self {
        Self {
            imr: 3,
            event_type: EVENT_TYPE,
            digest: v1_digest(event, payload),
            event: event.to_owned(),
            payload: payload.to_vec(),
            version: None,
        }
    }

    /// A firmware/kernel event for RTMR0–2; its digest is arbitrary (derived from `seed`).
    pub(super) fn boot(imr: u32, event_type: u32, seed: &str, payload: &[u8]) -> Self {
        Self {
            imr,
            event_type,
            digest: Sha384::digest(seed.as_bytes()).into(),
            event: String::new(),
            payload: payload.to_vec(),
            version: None,
        }
    }

    #[must_use]
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }

    #[must_use]
    pub fn payload_hex(&self) -> String {
        hex(&self.payload)
    }

    /// dstack's JSON, field order included. `stripped` is what `GetQuote` does from 0.5.6 on.
    pub(super) fn json(&self, stripped: bool) -> EntryJson<'_> {
        let (digest, payload) = match (stripped, self.imr) {
            (true, 3) => (String::new(), self.payload_hex()),
            (true, _) => (self.digest_hex(), String::new()),
            (false, _) => (self.digest_hex(), self.payload_hex()),
        };
        EntryJson {
            imr: self.imr,
            event_type: self.event_type,
            digest,
            event: &self.event,
            event_payload: payload,
            version: self.version,
        }
    }
}

#[derive(Serialize)]
pub(super) struct EntryJson<'a> {
    pub(super) imr: u32,
    pub(super) event_type: u32,
    pub(super) digest: String,
    pub(super) event: &'a str,
    pub(super) event_payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) version: Option<u32>,
}

/// dstack's boot events (name, payload), in the order an agent logs them.
#[must_use]
pub fn boot_runtime_events() -> Vec<(String, Vec<u8>)> {
    boot_log()
        .0
        .into_iter()
        .filter(|e| e.imr == 3)
        .map(|e| (e.event, e.payload))
        .collect()
}

/// RTMR0–2 entries (arbitrary digests, real event types) and dstack's boot events, in the
/// order a 0.5.x agent logs them; returns the log and its length.
pub(super) fn boot_log() -> (Vec<Entry>, usize) {
    let log = vec![
        Entry::boot(0, 0x8000_000b, "td-hob", b"\x09TdxTable"),
        Entry::boot(0, 0x8000_000a, "cfv", b"XXXX-XXXX"),
        Entry::boot(0, 4, "separator-0", &[0, 0, 0, 0]),
        Entry::boot(1, 0x8000_0003, "efi-app", b"\x18\x60\xfd\x7a"),
        Entry::boot(
            1,
            0x8000_0007,
            "efi-action",
            b"Calling EFI Application from Boot Option",
        ),
        Entry::boot(2, 6, "kernel", b"LOADED_IMAGE::LoadOptions"),
        Entry::boot(2, 6, "initrd", b"Linux initrd"),
        Entry::runtime("system-preparing", b""),
        Entry::runtime("app-id", &APP_ID),
        Entry::runtime("compose-hash", &COMPOSE_HASH),
        Entry::runtime("instance-id", &INSTANCE_ID),
        Entry::runtime("boot-mr-done", b""),
        Entry::runtime("mr-kms", &MR_KMS),
        Entry::runtime("os-image-hash", &OS_IMAGE_HASH),
        Entry::runtime("key-provider", KEY_PROVIDER.as_bytes()),
        Entry::runtime("storage-fs", b"zfs"),
        Entry::runtime("system-ready", b""),
    ];
    let len = log.len();
    (log, len)
}

/// `SHA384(le_u32(0x08000001) || ":" || name || ":" || payload)` (DESIGN §4, v1).
#[must_use]
pub fn v1_digest(name: &str, payload: &[u8]) -> [u8; 48] {
    let mut hasher = Sha384::new();
    hasher.update(EVENT_TYPE.to_le_bytes());
    hasher.update(b":");
    hasher.update(name.as_bytes());
    hasher.update(b":");
    hasher.update(payload);
    hasher.finalize().into()
}

/// `SHA384(register || digest)`.
#[must_use]
pub fn extend(register: &[u8; 48], digest: &[u8; 48]) -> [u8; 48] {
    let mut hasher = Sha384::new();
    hasher.update(register);
    hasher.update(digest);
    hasher.finalize().into()
}

/// Replay from zeros over the digests, in order.
#[must_use]
pub fn replay<'a>(digests: impl IntoIterator<Item = &'a [u8; 48]>) -> [u8; 48] {
    digests
        .into_iter()
        .fold([0u8; 48], |acc, d| extend(&acc, d))
}

pub(super) fn replay_imr(log: &[Entry], imr: u32) -> [u8; 48] {
    replay(log.iter().filter(|e| e.imr == imr).map(|e| &e.digest))
}

/// Replays a dstack JSON event log (as `GetQuote` returns it): RTMR3 entries only, an empty
/// digest recomputed from name and payload, as a verifier must for stripped logs.
#[must_use]
pub fn replay_json_log(log: &[serde_json::Value]) -> [u8; 48] {
    let digests: Vec<[u8; 48]> = log
        .iter()
        .filter(|e| e["imr"] == 3)
        .map(|e| {
            let digest = e["digest"].as_str().unwrap();
            if digest.is_empty() {
                let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
                v1_digest(e["event"].as_str().unwrap(), &payload)
            } else {
                unhex(digest).unwrap().try_into().unwrap()
            }
        })
        .collect();
    replay(&digests)
}

/// Lowercase hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Hex to bytes; either case, even length, or `None`.
#[must_use]
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}
