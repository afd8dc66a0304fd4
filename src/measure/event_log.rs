//! The local event log: JSON lines in dstack's runtime event-log entry format.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::event::{EVENT_TYPE, Event, digest_hex};
use super::{MeasureError, Measurer};
use crate::hex;

/// One entry, fields in dstack's order:
/// `{"imr":3,"event_type":134217729,"digest":..,"event":..,"event_payload":..}`.
#[derive(Debug, Serialize)]
pub struct LogEntry<'a> {
    pub imr: u32,
    pub event_type: u32,
    pub digest: String,
    pub event: &'a str,
    pub event_payload: String,
}

impl<'a> LogEntry<'a> {
    #[must_use]
    pub fn of(event: &'a Event) -> Self {
        Self {
            imr: 3,
            event_type: EVENT_TYPE,
            digest: digest_hex(&event.digest()),
            event: &event.name,
            event_payload: hex::encode(&event.payload),
        }
    }
}

/// Appends each event as one line, synced to disk before `measure` returns.
#[derive(Debug)]
pub struct LocalEventLog {
    path: PathBuf,
}

impl LocalEventLog {
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
        }
    }

    fn append(&self, event: &Event) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut line = serde_json::to_vec(&LogEntry::of(event))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // One write of a whole line: concurrent appenders never interleave within an entry.
        file.write_all(&line)?;
        file.sync_all()
    }
}

impl Measurer for LocalEventLog {
    fn measure(&mut self, event: &Event) -> Result<(), MeasureError> {
        self.append(event).map_err(|source| MeasureError::EventLog {
            path: self.path.clone(),
            source,
        })
    }

    fn describe(&self) -> String {
        format!("local event log {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_dstack_entry_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/events.jsonl");
        let mut log = LocalEventLog::new(&path);
        log.measure(&Event::new("a", b"\x01\xff".to_vec())).unwrap();
        log.measure(&Event::new("b", Vec::new())).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let digest = digest_hex(&Event::new("a", b"\x01\xff".to_vec()).digest());
        assert_eq!(
            lines[0],
            format!(
                r#"{{"imr":3,"event_type":134217729,"digest":"{digest}","event":"a","event_payload":"01ff"}}"#
            )
        );
        assert!(lines[1].ends_with(r#""event":"b","event_payload":""}"#));
    }
}
