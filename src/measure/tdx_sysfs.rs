//! Native RTMR3 extension through the kernel's TDX measurement file, with the launcher's own
//! event log as the record a verifier replays: only for hosts without dstack's runtime event
//! log (see `dstack_native` for the `next` dstack). Verifiers must be handed that own log.
//!
//! Order: the log entry is written and synced first, then the register is extended. A crash
//! in between leaves a log entry the register lacks: the replay of the log then does not
//! match RTMR3, which a verifier detects (and can explain by dropping the last entry). The
//! other order could leave an extension nobody can name.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::dstack::{Dstack, QuotedLog, require_recorded};
use super::event::Event;
use super::event_log::LocalEventLog;
use super::{MeasureError, Measurer};
use crate::contract::launches::last_launch;
use crate::hex;

/// The kernel's RTMR3 measurement file (Linux TSM measurement register interface).
pub const DEFAULT_RTMR3_PATH: &str =
    "/sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384";

#[derive(Debug)]
pub struct TdxSysfs {
    rtmr3: PathBuf,
    log: LocalEventLog,
    /// An agent whose quotes can show the register: each event is then confirmed.
    agent: Option<Dstack>,
}

impl TdxSysfs {
    #[must_use]
    pub fn new(rtmr3: &Path, log: LocalEventLog) -> Self {
        Self {
            rtmr3: rtmr3.to_owned(),
            log,
            agent: None,
        }
    }

    /// Confirms every extension against the agent's quote: its log followed by this boot's
    /// entries of our log must replay to the quoted RTMR3.
    #[must_use]
    pub fn with_agent(mut self, agent: Dstack) -> Self {
        self.agent = Some(agent);
        self
    }

    #[must_use]
    pub fn inconsistent(&self, quoted: &QuotedLog) -> MeasureError {
        MeasureError::NativeReplay {
            log: self.log.path().to_owned(),
            quoted: hex::encode(&quoted.quoted),
        }
    }
}

/// Writes the 48-byte digest to the measurement file `rtmr3` in one write at offset 0: the
/// kernel extends RTMR3 with it (what dstack's `tdx-attest` `extend_rtmr_via_sysfs` does).
pub fn extend_register(rtmr3: &Path, digest: &[u8; 48]) -> Result<(), MeasureError> {
    let io = |source| MeasureError::Sysfs {
        path: rtmr3.to_owned(),
        source,
    };
    let mut file = OpenOptions::new().write(true).open(rtmr3).map_err(io)?;
    file.write_all(digest).map_err(io)
}

impl Measurer for TdxSysfs {
    /// This boot's last launch in our own log, only when the agent's quote vouches for the
    /// log. The file is ours, but anyone who can write it could append this boot's entries
    /// for a launch RTMR3 never saw; believing them would skip a measurement. Without an
    /// agent nothing vouches for the file (the register alone cannot be replayed without
    /// the boot's own events), so the launch is measured again: a duplicate is harmless to a
    /// verifier, a skip is not.
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        let Some(agent) = &self.agent else {
            return Ok(Vec::new());
        };
        let ours = self.log.this_boot()?;
        let quoted = agent.quoted_log()?;
        if !quoted.extended_by(&ours) {
            return Err(self.inconsistent(&quoted));
        }
        Ok(last_launch(&ours))
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        self.log.append(event)?;
        extend_register(&self.rtmr3, &event.digest())
    }

    fn confirm(&mut self, expected: &[Event]) -> Result<(), MeasureError> {
        let Some(agent) = &self.agent else {
            return Ok(());
        };
        let quoted = agent.quoted_log()?;
        let ours = self.log.this_boot()?;
        if !quoted.extended_by(&ours) {
            return Err(self.inconsistent(&quoted));
        }
        Ok(require_recorded(&last_launch(&ours), expected)?)
    }

    fn describe(&self) -> String {
        format!(
            "RTMR3 via {} (event log {})",
            self.rtmr3.display(),
            self.log.path().display()
        )
    }
}
