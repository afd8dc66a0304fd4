//! `auto`: the dstack agent's `EmitEvent` if it has one (dstack 0.5.x), else dstack's own
//! runtime event log and the kernel's measurement file (`dstack-native`, the `next` dstack),
//! else fail closed naming what was tried.
//!
//! Whether an agent still has `EmitEvent` is only known by calling it (the `next` dstack
//! answers `Service not found: EmitEvent`), so the choice is made on the first event. Both
//! choices leave every event in the agent's own log, so this boot's record is always that
//! log, and it must replay to the quoted RTMR3. `tdx-sysfs` (events only in the launcher's
//! own log) is never chosen here: a verifier replaying the agent's log would then fail.

use std::path::{Path, PathBuf};

use super::dstack::Dstack;
use super::dstack_native::{self, DstackNative, NativeLogError};
use super::event::Event;
use super::{MeasureError, Measurer};
use crate::log::Logger;

#[derive(Debug)]
pub struct Auto {
    dstack: Option<Dstack>,
    /// What discovery tried when no agent was found.
    dstack_tried: Vec<String>,
    rtmr3: PathBuf,
    runtime_dir: PathBuf,
    chosen: Option<Box<dyn Measurer>>,
    log: Logger,
}

impl Auto {
    #[must_use]
    pub fn new(
        dstack: Result<Dstack, Vec<String>>,
        rtmr3: &Path,
        runtime_dir: &Path,
        log: Logger,
    ) -> Self {
        let (dstack, dstack_tried) = match dstack {
            Ok(dstack) => (Some(dstack), Vec::new()),
            Err(tried) => (None, tried),
        };
        Self {
            dstack,
            dstack_tried,
            rtmr3: rtmr3.to_owned(),
            runtime_dir: runtime_dir.to_owned(),
            chosen: None,
            log,
        }
    }

    fn no_agent(&self) -> MeasureError {
        MeasureError::NoBackend {
            tried: format!(
                "no dstack agent ({}); tdx-sysfs is never chosen automatically (with it, verifiers must be handed the launcher's own log)",
                self.dstack_tried.join(", ")
            ),
        }
    }
}

impl Measurer for Auto {
    /// The agent's log is this boot's record whichever way earlier launches measured: it
    /// must alone replay to the quoted RTMR3, or the launch stops (an extension nobody
    /// logged, such as an earlier `tdx-sysfs` launch, cannot be explained here).
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        let Some(dstack) = &mut self.dstack else {
            return Err(self.no_agent());
        };
        // Where dstack's runtime log is here, read the agent's record under dstack's lock, so
        // that no writer is between its extension and its line. A lock that cannot even be
        // opened (a read-only mount on a 0.5.x host) only loses that guarantee: a writer
        // caught mid-event then shows as a mismatch, and the launch stops.
        let lock = if self.runtime_dir.is_dir() {
            match dstack_native::lock(&self.runtime_dir) {
                Ok(lock) => Some(lock),
                Err(error @ NativeLogError::LockTimedOut { .. }) => return Err(error.into()),
                Err(_) => None,
            }
        } else {
            None
        };
        let prior = dstack.prior_launch();
        drop(lock);
        prior
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        if let Some(chosen) = &mut self.chosen {
            return chosen.extend(event);
        }
        let Some(dstack) = self.dstack.take() else {
            return Err(self.no_agent());
        };
        match dstack.emit(event) {
            Ok(()) => {
                self.chosen = Some(Box::new(dstack));
                Ok(())
            }
            Err(error) if error.is_emit_event_missing() => {
                if let Some(missing) = dstack_native::unavailable(&self.runtime_dir, &self.rtmr3) {
                    return Err(MeasureError::NoBackend {
                        tried: format!(
                            "dstack agent at {} has no EmitEvent ({error}); dstack-native: {missing}; tdx-sysfs is never chosen automatically (with it, verifiers must be handed the launcher's own log)",
                            dstack.endpoint()
                        ),
                    });
                }
                self.log.info(&format!(
                    "dstack agent at {} has no EmitEvent; measuring as dstack itself does: RTMR3 through {}, events in {}",
                    dstack.endpoint(),
                    self.rtmr3.display(),
                    self.runtime_dir.join(dstack_native::LOG_FILE).display()
                ));
                let mut native = DstackNative::new(&self.runtime_dir, &self.rtmr3, dstack);
                native.extend(event)?;
                self.chosen = Some(Box::new(native));
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    fn confirm(&mut self, expected: &[Event]) -> Result<(), MeasureError> {
        match &mut self.chosen {
            Some(chosen) => chosen.confirm(expected),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        self.chosen
            .as_ref()
            .map_or_else(|| "auto (undecided)".to_owned(), |c| c.describe())
    }
}
