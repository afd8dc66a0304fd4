//! Measurement: the event contract, and where events are recorded.

pub mod event;
pub mod event_log;

use std::path::{Path, PathBuf};

pub use event::{Event, contract_events};
pub use event_log::LocalEventLog;

use crate::platform::Platform;

/// Where the local event log goes when neither `--event-log` nor the config names one.
pub const DEFAULT_EVENT_LOG: &str = "/run/trusted-launcher/events.jsonl";

/// Records one event. Events are measured one at a time, in order; an error stops the launch.
pub trait Measurer {
    fn measure(&mut self, event: &Event) -> Result<(), MeasureError>;
    /// Names the backend for the log, e.g. `local event log /run/...`.
    fn describe(&self) -> String;
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error(
        "tee mode has no RTMR3 backend in this version: refusing to launch unmeasured (use --platform nontee outside a TEE)"
    )]
    NoTeeBackend,
    #[error("cannot write event log {path}: {source}")]
    EventLog {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The backend for a platform. In tee mode this fails before anything is started.
pub fn backend(platform: Platform, event_log: &Path) -> Result<Box<dyn Measurer>, MeasureError> {
    match platform {
        Platform::Tee => Err(MeasureError::NoTeeBackend),
        Platform::Nontee => Ok(Box::new(LocalEventLog::new(event_log))),
    }
}
