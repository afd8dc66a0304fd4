//! The launcher's own event log: JSON lines in dstack's entry format, plus the boot they
//! belong to. It is the record for `nontee` (local) and `tdx-sysfs`, where no agent keeps one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::event::{EVENT_TYPE, Event, digest_hex};
use super::{MeasureError, Measurer};
use crate::capped_read::{CappedReadError, open_regular_append, read_capped};
use crate::contract::launches::last_launch;
use crate::hex;

/// The kernel's id of this boot: entries of earlier boots are not this boot's measurements.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// One entry, fields in dstack's order:
/// `{"imr":3,"event_type":134217729,"digest":..,"event":..,"event_payload":..,"boot_id":..}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct LogEntry {
    pub imr: u32,
    pub event_type: u32,
    pub digest: String,
    pub event: String,
    pub event_payload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

impl LogEntry {
    #[must_use]
    pub fn of(event: &Event, boot_id: Option<&str>) -> Self {
        Self {
            imr: 3,
            event_type: EVENT_TYPE,
            digest: digest_hex(&event.digest()),
            event: event.name.clone(),
            event_payload: hex::encode(&event.payload),
            boot_id: boot_id.map(str::to_owned),
        }
    }
}

/// The current boot id, if the kernel tells it.
#[must_use]
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string(BOOT_ID_PATH)
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

/// Appends each event as one line, synced to disk before `extend` returns.
#[derive(Debug)]
pub struct LocalEventLog {
    path: PathBuf,
    boot_id: Option<String>,
}

impl LocalEventLog {
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            boot_id: boot_id(),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, event: &Event) -> Result<(), MeasureError> {
        let io = |source| MeasureError::EventLog {
            path: self.path.clone(),
            source,
        };
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut line = serde_json::to_vec(&LogEntry::of(event, self.boot_id.as_deref()))
            .map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut file = open_regular_append(&self.path).map_err(|e| io(e.into_io()))?;
        // One write of a whole line: concurrent appenders never interleave within an entry.
        file.write_all(&line).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// This boot's events, in order. Without a boot id nothing counts as already measured.
    pub fn this_boot(&self) -> Result<Vec<Event>, MeasureError> {
        let Some(boot_id) = &self.boot_id else {
            return Ok(Vec::new());
        };
        let bytes = match read_capped(&self.path, MAX_LOG_BYTES) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => {
                return Ok(Vec::new());
            }
            Err(error @ (CappedReadError::Io(_) | CappedReadError::NotRegular(_))) => {
                return Err(MeasureError::EventLog {
                    path: self.path.clone(),
                    source: error.into_io(),
                });
            }
            Err(CappedReadError::TooLarge) => {
                return Err(MeasureError::EventLogCorrupt {
                    path: self.path.clone(),
                    line: 0,
                    detail: format!("larger than {MAX_LOG_BYTES} bytes"),
                });
            }
        };
        events_of_boot(&self.path, &bytes, boot_id)
    }
}

/// The events of boot `boot_id` in the log `bytes` read from `path` (named in messages):
/// every line must be an entry, and each of this boot's must carry its own digest.
pub fn events_of_boot(
    path: &Path,
    bytes: &[u8],
    boot_id: &str,
) -> Result<Vec<Event>, MeasureError> {
    let corrupt = |line: usize, detail: String| MeasureError::EventLogCorrupt {
        path: path.to_owned(),
        line,
        detail,
    };
    let mut events = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let entry: LogEntry =
            serde_json::from_slice(line).map_err(|e| corrupt(index + 1, e.to_string()))?;
        if entry.boot_id.as_deref() != Some(boot_id) {
            continue;
        }
        let payload = hex::decode(&entry.event_payload)
            .ok_or_else(|| corrupt(index + 1, "payload is not hex".into()))?;
        let event = Event {
            name: entry.event,
            payload,
        };
        if entry.imr != 3 || entry.digest != digest_hex(&event.digest()) {
            return Err(corrupt(
                index + 1,
                "digest does not match name and payload".into(),
            ));
        }
        events.push(event);
    }
    Ok(events)
}

impl Measurer for LocalEventLog {
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        Ok(last_launch(&self.this_boot()?))
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        self.append(event)
    }

    fn describe(&self) -> String {
        format!("local event log {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_dstack_entry_format_and_reads_this_boot_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let mut log = LocalEventLog::new(&path);
        log.extend(&Event::new("a", b"\x01\xff".to_vec())).unwrap();
        log.extend(&Event::new("b", Vec::new())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let digest = digest_hex(&Event::new("a", b"\x01\xff".to_vec()).digest());
        let boot = boot_id().unwrap();
        assert_eq!(
            lines[0],
            format!(
                r#"{{"imr":3,"event_type":134217729,"digest":"{digest}","event":"a","event_payload":"01ff","boot_id":"{boot}"}}"#
            )
        );
        assert_eq!(log.this_boot().unwrap().len(), 2);
    }

    #[test]
    fn other_boots_do_not_count_and_tampering_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let old = LogEntry::of(
            &Event::new("trusted-launcher.config", Vec::new()),
            Some("old-boot"),
        );
        std::fs::write(&path, format!("{}\n", serde_json::to_string(&old).unwrap())).unwrap();
        let log = LocalEventLog::new(&path);
        assert!(log.this_boot().unwrap().is_empty());

        let mut forged = LogEntry::of(&Event::new("x", Vec::new()), boot_id().as_deref());
        forged.event_payload = "00".into();
        std::fs::write(
            &path,
            format!("{}\n", serde_json::to_string(&forged).unwrap()),
        )
        .unwrap();
        assert!(matches!(
            log.this_boot(),
            Err(MeasureError::EventLogCorrupt { line: 1, .. })
        ));
        std::fs::write(&path, "not json\n").unwrap();
        assert!(matches!(
            log.this_boot(),
            Err(MeasureError::EventLogCorrupt { line: 1, .. })
        ));
    }
}
