//! What a launch is: the launcher's events grouped into attempts, each from a `config` event
//! to its `ready`, checked against the contract order and payloads. `verify` reads every
//! attempt after `system-ready` ([`read`]); `run` resumes or confirms the last one
//! ([`last_launch`]).
//!
//! Every attempt counts, not just the last: in git mode the workload keeps the agent socket
//! and can emit a whole forged launch after the real one, so "the last launch" is whatever
//! the workload wants it to be. An attempt that names a workload counts even without `ready`,
//! because `INSTALL_CMD` runs the checked-out code before `ready` is measured.

use std::ops::Range;

use super::{
    COMPOSE_EVENT, CONFIG_EVENT, LAUNCHER_PREFIX, READY_EVENT, SHA256_FORM, SIGNER_EVENT,
    WORKLOAD_EVENT, WORKLOAD_FORM, parse_sha256_payload, parse_workload_payload,
};
use crate::measure::event::Event;
use crate::sigstore::Signer;
use crate::workload::Workload;

/// One launch attempt: from a `config` event to its `ready`, or up to the next `config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// 1-based, in log order.
    pub number: usize,
    /// Where its events are in the log ([`extent`]).
    pub events: Range<usize>,
    pub config: [u8; 32],
    pub workload: Option<Workload>,
    pub compose: Option<[u8; 32]>,
    /// The verified signer, when the launcher had a signature policy.
    pub signer: Option<Signer>,
    /// Reached `ready`.
    pub complete: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("{name} at RTMR3 event {index} comes before system-ready")]
    BeforeSystemReady { name: String, index: usize },
    #[error(
        "{name} at RTMR3 event {index}: the log has no system-ready, so no launcher event is known to follow the boot"
    )]
    NoSystemReady { name: String, index: usize },
    #[error("{name} at RTMR3 event {index} comes before any {CONFIG_EVENT}")]
    BeforeConfig { name: String, index: usize },
    #[error(
        "launch {launch}: {name} at RTMR3 event {index} breaks the contract order (expected {expected})"
    )]
    OutOfOrder {
        launch: usize,
        name: String,
        index: usize,
        expected: &'static str,
    },
    #[error(
        "launch {launch}: {name} at RTMR3 event {index} has payload {payload:?}, expected {expected}"
    )]
    Payload {
        launch: usize,
        name: String,
        index: usize,
        payload: String,
        expected: &'static str,
    },
}

/// Where an attempt is in the contract: what may come next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Configured,
    GitNamed,
    ImageNamed,
    /// `signer` (optional) right after `workload`.
    GitSigned,
    ImageSigned,
    Composed,
    Ready,
}

/// The `trusted-launcher.signer` payload's form, for errors.
const SIGNER_FORM: &str = "compact JSON {\"identity\",\"issuer\",\"source_commit\",\"source_repository\",\"trusted_root\"} (sorted keys, absent ones omitted)";

impl Stage {
    /// After the optional `signer` event.
    fn signed(self) -> Self {
        match self {
            Self::GitNamed => Self::GitSigned,
            _ => Self::ImageSigned,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Configured => WORKLOAD_EVENT,
            Self::GitNamed | Self::GitSigned | Self::Composed => READY_EVENT,
            Self::ImageNamed | Self::ImageSigned => COMPOSE_EVENT,
            Self::Ready => "nothing, or a new trusted-launcher.config",
        }
    }
}

/// Reads every launch attempt from a boot's `events` (the replayed RTMR3 events), as the
/// verifier does: the launcher runs after the boot, so its first event must follow
/// `system-ready` (`runtime_start` is the index after it, `None` when the log has none).
/// Stops at the first break of the contract.
pub fn read(events: &[Event], runtime_start: Option<usize>) -> Result<Vec<Launch>, LaunchError> {
    // Checking the first launcher event is enough: every later one has a larger index.
    if let Some((index, event)) = events
        .iter()
        .enumerate()
        .find(|(_, e)| e.name.starts_with(LAUNCHER_PREFIX))
    {
        let name = event.name.clone();
        match runtime_start {
            None => return Err(LaunchError::NoSystemReady { name, index }),
            Some(start) if index < start => {
                return Err(LaunchError::BeforeSystemReady { name, index });
            }
            Some(_) => {}
        }
    }
    attempts(events)
}

/// Reads every launch attempt from `events`: the one definition of a launch. Every event
/// named with [`LAUNCHER_PREFIX`] belongs to the attempt its `config` opened, in the contract
/// order, with a well-formed payload; other events (NEAR's `mpc-image-digest`, the
/// workload's own) are not the launcher's and are skipped. Stops at the first break.
pub fn attempts(events: &[Event]) -> Result<Vec<Launch>, LaunchError> {
    let mut launches: Vec<(Launch, Stage)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let name = event.name.as_str();
        if !name.starts_with(LAUNCHER_PREFIX) {
            continue;
        }
        let payload_error = |launch: usize, expected: &'static str| LaunchError::Payload {
            launch,
            name: name.to_owned(),
            index,
            payload: String::from_utf8_lossy(&event.payload).into_owned(),
            expected,
        };
        if name == CONFIG_EVENT {
            let launch = launches.len() + 1;
            let config = parse_sha256_payload(&event.payload)
                .ok_or_else(|| payload_error(launch, SHA256_FORM))?;
            launches.push((
                Launch {
                    number: launch,
                    events: extent(events, index),
                    config,
                    workload: None,
                    compose: None,
                    signer: None,
                    complete: false,
                },
                Stage::Configured,
            ));
            continue;
        }
        let Some((launch, stage)) = launches.last_mut() else {
            return Err(LaunchError::BeforeConfig {
                name: name.to_owned(),
                index,
            });
        };
        let out_of_order = || LaunchError::OutOfOrder {
            launch: launch.number,
            name: name.to_owned(),
            index,
            expected: stage.expected(),
        };
        *stage = match (*stage, name) {
            (Stage::Configured, WORKLOAD_EVENT) => {
                let workload = parse_workload_payload(&event.payload)
                    .ok_or_else(|| payload_error(launch.number, WORKLOAD_FORM))?;
                launch.workload = Some(workload);
                match workload {
                    Workload::Git(_) => Stage::GitNamed,
                    Workload::Image(_) => Stage::ImageNamed,
                }
            }
            (Stage::GitNamed | Stage::ImageNamed, SIGNER_EVENT) => {
                let signer = Signer::parse(&event.payload)
                    .ok_or_else(|| payload_error(launch.number, SIGNER_FORM))?;
                launch.signer = Some(signer);
                stage.signed()
            }
            (Stage::ImageNamed | Stage::ImageSigned, COMPOSE_EVENT) => {
                launch.compose = Some(
                    parse_sha256_payload(&event.payload)
                        .ok_or_else(|| payload_error(launch.number, SHA256_FORM))?,
                );
                Stage::Composed
            }
            (Stage::GitNamed | Stage::GitSigned | Stage::Composed, READY_EVENT) => {
                if !event.payload.is_empty() {
                    return Err(payload_error(launch.number, "an empty payload"));
                }
                launch.complete = true;
                Stage::Ready
            }
            _ => return Err(out_of_order()),
        };
    }
    Ok(launches.into_iter().map(|(launch, _)| launch).collect())
}

/// The events of the launch whose `config` is at `start`: up to and including the first
/// `ready` after it, or up to the next `config`, or to the end. Extra events measured as
/// part of a launch (NEAR's `mpc-image-digest`) belong to it; whatever the workload measures
/// after `ready` does not. [`attempts`] and [`last_launch`] both use this.
#[must_use]
pub fn extent(events: &[Event], start: usize) -> Range<usize> {
    let after = start.saturating_add(1);
    let end = events
        .iter()
        .enumerate()
        .skip(after)
        .find_map(|(index, event)| match event.name.as_str() {
            READY_EVENT => Some(index + 1),
            CONFIG_EVENT => Some(index),
            _ => None,
        })
        .unwrap_or(events.len());
    start..end.max(start)
}

/// The last launch in `events`, for the launcher to resume or confirm: the [`extent`] of
/// the last `config` event. The order is not checked here: callers compare the result event
/// for event with a launch built by [`super::events`], which follows the contract, so a
/// broken one never matches (and `verify`, through [`read`], refuses it).
#[must_use]
pub fn last_launch(events: &[Event]) -> Vec<Event> {
    let Some(start) = events.iter().rposition(|e| e.name == CONFIG_EVENT) else {
        return Vec::new();
    };
    events
        .get(extent(events, start))
        .map(<[Event]>::to_vec)
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "launches_tests.rs"]
mod tests;
