//! Native RTMR3 extension through the kernel's TDX measurement file, for agents without
//! `EmitEvent`, with the launcher's own event log as the record a verifier replays.
//!
//! Order: the log entry is written and synced first, then the register is extended. A crash
//! in between leaves a log entry the register lacks: the replay of the log then does not
//! match RTMR3, which a verifier detects (and can explain by dropping the last entry). The
//! other order could leave an extension nobody can name.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::event::Event;
use super::event_log::LocalEventLog;
use super::{MeasureError, Measurer};

/// The kernel's RTMR3 measurement file (Linux TSM measurement register interface).
pub const DEFAULT_RTMR3_PATH: &str =
    "/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384";

#[derive(Debug)]
pub struct TdxSysfs {
    rtmr3: PathBuf,
    log: LocalEventLog,
}

impl TdxSysfs {
    #[must_use]
    pub fn new(rtmr3: &Path, log: LocalEventLog) -> Self {
        Self {
            rtmr3: rtmr3.to_owned(),
            log,
        }
    }

    /// Writes the 48-byte digest in one write at offset 0: the kernel extends RTMR3 with it.
    fn extend_register(&self, digest: &[u8; 48]) -> Result<(), MeasureError> {
        let io = |source| MeasureError::Sysfs {
            path: self.rtmr3.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .open(&self.rtmr3)
            .map_err(io)?;
        file.write_all(digest).map_err(io)
    }
}

impl Measurer for TdxSysfs {
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        self.log.prior_launch()
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        self.log.append(event)?;
        self.extend_register(&event.digest())
    }

    fn describe(&self) -> String {
        format!(
            "RTMR3 via {} (event log {})",
            self.rtmr3.display(),
            self.log.path().display()
        )
    }
}
