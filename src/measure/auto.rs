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
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        if let Some(dstack) = &mut self.dstack {
            let prior = dstack.prior_launch()?;
            if !prior.is_empty() {
                // The agent recorded an earlier launch this boot: it can extend.
                self.chosen = self.dstack.take().map(|d| Box::new(d) as Box<dyn Measurer>);
                return Ok(prior);
            }
        }
        if let Some(mut sysfs) = self.sysfs() {
            let prior = sysfs.prior_launch()?;
            if !prior.is_empty() || self.dstack.is_none() {
                self.chosen = Some(Box::new(sysfs));
                return Ok(prior);
            }
        } else if self.dstack.is_none() {
            let tried = format!("no dstack agent ({})", self.dstack_tried.join(", "));
            return Err(self.nothing_available(&tried));
        }
        Ok(Vec::new())
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
                self.chosen = Some(Box::new(sysfs));
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
