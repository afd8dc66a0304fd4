//! A stand-in for the guest agent of the `next` dstack (0.6+), built on [`FakeAgent`].
//!
//! What it reproduces, from Dstack-TEE/dstack branch `next`:
//! - `EmitEvent` is gone: 400 `{"error":"Service not found: EmitEvent"}` (PR #768).
//! - Every RTMR3 event is a line of `/run/log/dstack/runtime_events.log`, dstack's boot
//!   events included; the `GetQuote`/`Info` log is the firmware's entries followed by those
//!   lines, each parsed as `cc-eventlog`'s `RuntimeEvent::read_all` does: JSON
//!   `{"event":..,"payload":<standard base64>,"version":2?}`, a line that does not parse
//!   failing the read (`dstack/cc-eventlog/src/runtime_events.rs`).
//! - The digest version is fixed at boot in `runtime_event_version` (`1` or `2`); boot
//!   events are written by dstack's own writer: register extended first, then the line
//!   (`dstack/dstack-attest/src/lib.rs` `emit_runtime_event`).
//! - RTMR3 moves only through the kernel's measurement file: here a [`FakeRtmr3`] FIFO linked
//!   to the agent's register.
//!
//! Digests and base64 are computed here independently of the crate.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest as _, Sha384};

use super::fake_agent::{
    EVENT_TYPE, Entry, FakeAgent, FakeRtmr3, RuntimeLog, boot_runtime_events, extend, hex,
    v1_digest,
};

pub const LOCK_FILE: &str = "runtime_event.lock";
pub const VERSION_FILE: &str = "runtime_event_version";
pub const LOG_FILE: &str = "runtime_events.log";

/// A `next` agent, its runtime event directory and its measurement file.
pub struct NextAgent {
    pub agent: FakeAgent,
    pub rtmr3: FakeRtmr3,
    runtime_dir: PathBuf,
    boot_lines: usize,
}

impl NextAgent {
    /// Boots in `root`: `root/run-log-dstack` holds dstack's boot events as lines (with
    /// `version`, when given, in `runtime_event_version`; `None` leaves the file absent),
    /// the agent serves `root/dstack.sock`, the measurement file is `root/rtmr3:sha384`.
    pub fn start(root: &Path, version: Option<u32>) -> Self {
        let runtime_dir = root.join("run-log-dstack");
        std::fs::create_dir(&runtime_dir).unwrap();
        if let Some(version) = version {
            std::fs::write(runtime_dir.join(VERSION_FILE), version.to_string()).unwrap();
        }
        let digest_version = version.unwrap_or(1);
        let log_path = runtime_dir.join(LOG_FILE);
        let mut register = [0u8; 48];
        let boot = boot_runtime_events();
        for (name, payload) in &boot {
            register = extend(&register, &digest(digest_version, name, payload));
            append_line(&log_path, name, payload, digest_version);
        }
        let reader: RuntimeLog = {
            let log_path = log_path.clone();
            Arc::new(move || read_runtime_log(&log_path))
        };
        let agent = FakeAgent::start_next(root, register, reader);
        let rtmr3 =
            FakeRtmr3::start_linked(&root.join("rtmr3:sha384"), agent.register(), &log_path);
        Self {
            agent,
            rtmr3,
            runtime_dir,
            boot_lines: boot.len(),
        }
    }

    #[must_use]
    pub fn runtime_dir(&self) -> &Path {
        &self.runtime_dir
    }

    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.runtime_dir.join(LOG_FILE)
    }

    #[must_use]
    pub fn lock_path(&self) -> PathBuf {
        self.runtime_dir.join(LOCK_FILE)
    }

    /// Number of boot lines dstack wrote.
    #[must_use]
    pub fn boot_lines(&self) -> usize {
        self.boot_lines
    }

    /// Every line of the runtime event log, as JSON.
    #[must_use]
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.log_path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The entries after dstack's boot events, as the agent reports them.
    #[must_use]
    pub fn runtime_events(&self) -> Vec<Entry> {
        read_runtime_log(&self.log_path()).unwrap()[self.boot_lines..].to_vec()
    }

    /// What dstack's writer does for one event (the caller holds the lock, or shows what
    /// happens without it): extend the register through the measurement file, then append.
    pub fn extend_then_append(&self, name: &str, payload: &[u8], version: u32) {
        self.write_register(&digest(version, name, payload));
        append_line(&self.log_path(), name, payload, version);
    }

    /// One write of a digest to the measurement file, as the kernel interface takes it.
    pub fn write_register(&self, digest: &[u8; 48]) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(self.rtmr3.path())
            .unwrap();
        file.write_all(digest).unwrap();
    }
}

/// The digest of `version` (1 or 2) for an event.
#[must_use]
pub fn digest(version: u32, name: &str, payload: &[u8]) -> [u8; 48] {
    match version {
        2 => v2_digest(name, payload),
        _ => v1_digest(name, payload),
    }
}

/// `SHA384(JCS({"name":..,"payload":"<hex>","type":134217729}))` (DESIGN §4, v2): keys in
/// JCS order, the name escaped as JSON.
#[must_use]
pub fn v2_digest(name: &str, payload: &[u8]) -> [u8; 48] {
    let canonical = format!(
        r#"{{"name":{},"payload":"{}","type":{EVENT_TYPE}}}"#,
        serde_json::to_string(name).unwrap(),
        hex(payload)
    );
    Sha384::digest(canonical.as_bytes()).into()
}

/// Appends one line as dstack's `RuntimeEvent::emit` does (create 0600, append).
pub fn append_line(path: &Path, name: &str, payload: &[u8], version: u32) {
    let mut line = serde_json::json!({"event": name, "payload": base64(payload)});
    if version == 2 {
        line["version"] = 2.into();
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
}

/// The runtime event log as the agent reads it; any bad line fails the whole read.
fn read_runtime_log(path: &Path) -> Result<Vec<Entry>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("Failed to read user event log: {e}")),
    };
    let bad = |detail: String| format!("Failed to decode user event log: {detail}");
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let name = value["event"]
            .as_str()
            .ok_or_else(|| bad("missing field `event`".into()))?;
        let payload = value["payload"]
            .as_str()
            .and_then(unbase64)
            .ok_or_else(|| bad("payload is not base64".into()))?;
        let version = match value.get("version") {
            None => 1,
            Some(v) => match v.as_u64() {
                Some(1) => 1,
                Some(2) => 2,
                _ => return Err(bad(format!("unknown event log version: {v}"))),
            },
        };
        entries.push(Entry {
            imr: 3,
            event_type: EVENT_TYPE,
            digest: digest(version, name, &payload),
            event: name.to_owned(),
            payload,
            version: (version == 2).then_some(2),
        });
    }
    Ok(entries)
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
#[must_use]
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 with padding; `None` for anything else.
#[must_use]
pub fn unbase64(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &b in &quad[..4 - pad] {
            n = (n << 6) | u32::try_from(ALPHABET.iter().position(|&a| a == b)?).ok()?;
        }
        n <<= 6 * pad;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    (base64(&out) == text).then_some(out)
}
