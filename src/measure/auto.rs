//! `auto`: the dstack agent if it can extend RTMR3, else the kernel's measurement file,
//! else fail closed naming what was tried.
//!
//! Whether an agent still has `EmitEvent` is only known by calling it (the next dstack
//! release answers `Service not found: EmitEvent`), so the choice is made on the first
//! event — unless this boot's logs already show which backend earlier launches used.

use std::path::{Path, PathBuf};

use super::dstack::Dstack;
use super::event::Event;
use super::event_log::LocalEventLog;
use super::replay::last_launch;
use super::tdx_sysfs::TdxSysfs;
use super::{MeasureError, Measurer};
use crate::log::Logger;

#[derive(Debug)]
pub struct Auto {
    dstack: Option<Dstack>,
    /// What discovery tried when no agent was found.
    dstack_tried: Vec<String>,
    rtmr3: PathBuf,
    event_log: PathBuf,
    chosen: Option<Box<dyn Measurer>>,
    log: Logger,
}

impl Auto {
    #[must_use]
    pub fn new(
        dstack: Result<Dstack, Vec<String>>,
        rtmr3: &Path,
        event_log: &Path,
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
            event_log: event_log.to_owned(),
            chosen: None,
            log,
        }
    }

    fn sysfs(&self) -> Option<TdxSysfs> {
        self.rtmr3
            .exists()
            .then(|| TdxSysfs::new(&self.rtmr3, LocalEventLog::new(&self.event_log)))
    }

    fn nothing_available(&self, dstack_problem: &str) -> MeasureError {
        MeasureError::NoBackend {
            tried: format!(
                "{dstack_problem}; RTMR3 file {} does not exist",
                self.rtmr3.display()
            ),
        }
    }
}

impl Measurer for Auto {
    /// Decides from this boot's records where possible. The agent's quote is the judge:
    /// if its log alone replays to the quoted RTMR3, earlier launches (if any) went through
    /// the agent; if its log followed by our own log does, they were extended natively;
    /// anything else is an unexplained extension, and the launch stops.
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        if let Some(dstack) = self.dstack.take() {
            let quoted = dstack.quoted_log()?;
            if quoted.replayed == quoted.quoted {
                let prior = last_launch(&quoted.events);
                if prior.is_empty() {
                    // Nothing measured yet this boot: the first event decides.
                    self.dstack = Some(dstack);
                } else {
                    self.chosen = Some(Box::new(dstack));
                }
                return Ok(prior);
            }
            let Some(sysfs) = self.sysfs() else {
                return Err(quoted.require_complete().err().map_or_else(
                    || self.nothing_available("dstack agent's log is incomplete"),
                    MeasureError::from,
                ));
            };
            let ours = sysfs.this_boot()?;
            if !quoted.extended_by(&ours) {
                return Err(sysfs.inconsistent(&quoted));
            }
            self.chosen = Some(Box::new(sysfs.with_agent(dstack)));
            return Ok(last_launch(&ours));
        }
        if let Some(mut sysfs) = self.sysfs() {
            let prior = sysfs.prior_launch()?;
            self.chosen = Some(Box::new(sysfs));
            return Ok(prior);
        }
        let tried = format!("no dstack agent ({})", self.dstack_tried.join(", "));
        Err(self.nothing_available(&tried))
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        if let Some(chosen) = &mut self.chosen {
            return chosen.extend(event);
        }
        let Some(dstack) = self.dstack.take() else {
            let tried = format!("no dstack agent ({})", self.dstack_tried.join(", "));
            return Err(self.nothing_available(&tried));
        };
        match dstack.emit(event) {
            Ok(()) => {
                self.chosen = Some(Box::new(dstack));
                Ok(())
            }
            Err(error) if error.is_emit_event_missing() => {
                let Some(mut sysfs) = self.sysfs() else {
                    return Err(self.nothing_available(&format!(
                        "dstack agent at {} has no EmitEvent ({error})",
                        dstack.endpoint()
                    )));
                };
                self.log.warn(&format!(
                    "dstack agent at {} has no EmitEvent; extending RTMR3 natively through {}",
                    dstack.endpoint(),
                    self.rtmr3.display()
                ));
                sysfs.extend(event)?;
                self.chosen = Some(Box::new(sysfs.with_agent(dstack)));
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
