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
    COMPOSE_EVENT, CONFIG_EVENT, LAUNCHER_PREFIX, READY_EVENT, SHA256_FORM, WORKLOAD_EVENT,
    WORKLOAD_FORM, parse_sha256_payload, parse_workload_payload,
};
use crate::measure::event::Event;
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
    Composed,
    Ready,
}

impl Stage {
    fn expected(self) -> &'static str {
        match self {
            Self::Configured => WORKLOAD_EVENT,
            Self::GitNamed | Self::Composed => READY_EVENT,
            Self::ImageNamed => COMPOSE_EVENT,
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
            (Stage::ImageNamed, COMPOSE_EVENT) => {
                launch.compose = Some(
                    parse_sha256_payload(&event.payload)
                        .ok_or_else(|| payload_error(launch.number, SHA256_FORM))?,
                );
                Stage::Composed
            }
            (Stage::GitNamed | Stage::Composed, READY_EVENT) => {
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
mod tests {
    use super::*;

    const C: &str = CONFIG_EVENT;
    const W: &str = WORKLOAD_EVENT;
    const K: &str = COMPOSE_EVENT;
    const R: &str = READY_EVENT;

    fn payload(name: &str, git: bool) -> Vec<u8> {
        match name {
            C => format!("sha256:{}", "c0".repeat(32)).into_bytes(),
            W if git => format!("git:{}", "1f".repeat(20)).into_bytes(),
            W => format!("oci:sha256:{}", "5a".repeat(32)).into_bytes(),
            K => format!("sha256:{}", "d0".repeat(32)).into_bytes(),
            R => Vec::new(),
            other => other.as_bytes().to_vec(),
        }
    }

    fn log(names: &[&str], git: bool) -> Vec<Event> {
        names
            .iter()
            .map(|n| Event::new(n, payload(n, git)))
            .collect()
    }

    fn launches(names: &[&str], git: bool) -> Result<Vec<Launch>, String> {
        let events = log(names, git);
        let start = names
            .iter()
            .position(|n| *n == "system-ready")
            .map(|i| i + 1);
        read(&events, start).map_err(|e| e.to_string())
    }

    #[test]
    fn contract_orders_that_hold() {
        let git = launches(&["system-ready", C, W, R, "app"], true).unwrap();
        assert_eq!(git.len(), 1);
        assert!(git[0].complete);
        assert_eq!(git[0].compose, None);
        let image = launches(&["system-ready", C, W, K, "mpc-image-digest", R], false).unwrap();
        assert_eq!(image[0].compose, Some([0xd0; 32]));
        assert!(image[0].complete);
        // Attempts that stop short, then a whole one.
        let many = launches(&["system-ready", C, C, W, C, W, R], true).unwrap();
        let complete: Vec<bool> = many.iter().map(|l| l.complete).collect();
        assert_eq!(complete, [false, false, true]);
        assert_eq!(
            many[1].workload.map(|w| w.identity()),
            Some(format!("git:{}", "1f".repeat(20)))
        );
        assert_eq!(launches(&["system-ready", "app"], true).unwrap(), []);
    }

    #[test]
    fn contract_breaks_have_exact_texts() {
        for (names, git, expected) in [
            (
                &[C, W, R, "system-ready"][..],
                true,
                "trusted-launcher.config at RTMR3 event 0 comes before system-ready",
            ),
            (
                &[C, W, R],
                true,
                "trusted-launcher.config at RTMR3 event 0: the log has no system-ready, so no launcher event is known to follow the boot",
            ),
            (
                &["system-ready", W, C, R],
                true,
                "trusted-launcher.workload at RTMR3 event 1 comes before any trusted-launcher.config",
            ),
            (
                &["system-ready", C, R],
                true,
                "launch 1: trusted-launcher.ready at RTMR3 event 2 breaks the contract order (expected trusted-launcher.workload)",
            ),
            (
                &["system-ready", C, W, R, R],
                true,
                "launch 1: trusted-launcher.ready at RTMR3 event 4 breaks the contract order (expected nothing, or a new trusted-launcher.config)",
            ),
            (
                &["system-ready", C, W, W, R],
                true,
                "launch 1: trusted-launcher.workload at RTMR3 event 3 breaks the contract order (expected trusted-launcher.ready)",
            ),
            (
                &["system-ready", C, W, K, R],
                true,
                "launch 1: trusted-launcher.compose at RTMR3 event 3 breaks the contract order (expected trusted-launcher.ready)",
            ),
            (
                &["system-ready", C, W, R],
                false,
                "launch 1: trusted-launcher.ready at RTMR3 event 3 breaks the contract order (expected trusted-launcher.compose)",
            ),
            (
                &["system-ready", C, W, R, "trusted-launcher.extra"],
                true,
                "launch 1: trusted-launcher.extra at RTMR3 event 4 breaks the contract order (expected nothing, or a new trusted-launcher.config)",
            ),
        ] {
            assert_eq!(launches(names, git), Err(expected.to_owned()), "{names:?}");
        }
    }

    #[test]
    fn malformed_payloads_have_exact_texts() {
        let with = |name: &str, payload: &[u8]| {
            let mut events = log(&["system-ready", C, W, K, R], false);
            for event in &mut events {
                if event.name == name {
                    event.payload = payload.to_vec();
                }
            }
            read(&events, Some(1)).map_err(|e| e.to_string())
        };
        assert_eq!(
            with(C, b"sha256:C0"),
            Err(r#"launch 1: trusted-launcher.config at RTMR3 event 1 has payload "sha256:C0", expected sha256:<64 lowercase hex>"#.to_owned())
        );
        assert_eq!(
            with(W, b"git:main"),
            Err(r#"launch 1: trusted-launcher.workload at RTMR3 event 2 has payload "git:main", expected git:<40 or 64 lowercase hex> or oci:sha256:<64 lowercase hex>"#.to_owned())
        );
        assert_eq!(
            with(K, b"sha256:"),
            Err(r#"launch 1: trusted-launcher.compose at RTMR3 event 3 has payload "sha256:", expected sha256:<64 lowercase hex>"#.to_owned())
        );
        assert_eq!(
            with(R, b"x"),
            Err(r#"launch 1: trusted-launcher.ready at RTMR3 event 4 has payload "x", expected an empty payload"#.to_owned())
        );
    }

    #[test]
    fn last_launch_runs_from_the_last_config_to_its_ready() {
        let names = [
            "system-ready",
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready",
            "app",
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "mpc-image-digest",
            "trusted-launcher.ready",
            "workload-event",
        ];
        let events: Vec<Event> = names.iter().map(|n| Event::new(n, Vec::new())).collect();
        let last: Vec<String> = last_launch(&events).into_iter().map(|e| e.name).collect();
        assert_eq!(
            last,
            [
                "trusted-launcher.config",
                "trusted-launcher.workload",
                "mpc-image-digest",
                "trusted-launcher.ready"
            ]
        );
        let unfinished: Vec<String> = last_launch(&events[..7])
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(
            unfinished,
            ["trusted-launcher.config", "trusted-launcher.workload"]
        );
        assert!(last_launch(&events[..1]).is_empty());
    }

    /// The launcher's own launches, built by the contract's constructor, read back by the
    /// one definition as complete launches with the values they were built from; the last
    /// one is what `run` resumes.
    #[test]
    fn built_launches_read_back_as_complete_launches() {
        use crate::approval::ApprovedList;
        use crate::digest::{ImageDigest, Sha256Digest};
        let config = Sha256Digest::of(b"[image]\n");
        let compose = Sha256Digest::of(b"services: {}\n");
        let digest = ImageDigest::parse(&format!("sha256:{}", "5a".repeat(32))).unwrap();
        let approved = ApprovedList::load(None, digest)
            .unwrap()
            .approve(None)
            .unwrap();
        let near = vec![super::super::near_image_event(&approved)];
        let one = super::super::events(&config, &approved.workload(), Some(&compose), near);
        let mut log = vec![Event::new("system-ready", Vec::new())];
        log.extend(one.clone());
        log.push(Event::new("app", b"after ready".to_vec()));
        let launches = read(&log, Some(1)).unwrap();
        assert_eq!(
            launches,
            [Launch {
                number: 1,
                events: 1..6,
                config: *config.as_bytes(),
                workload: Some(Workload::Image(digest)),
                compose: Some(*compose.as_bytes()),
                complete: true,
            }]
        );
        assert_eq!(last_launch(&log), one);
    }

    /// `verify` (through [`read`]) and `run` (through [`last_launch`]) cut the log into the
    /// same launches: every attempt spans its [`extent`], and the last one is what `run`
    /// resumes or confirms.
    #[test]
    fn verify_and_run_cut_the_same_launches() {
        let names = [
            "system-ready",
            C,
            C,
            W,
            "app",
            C,
            W,
            K,
            "mpc-image-digest",
            R,
            "app",
        ];
        let events = log(&names, false);
        let launches = read(&events, Some(1)).unwrap();
        let spans: Vec<Range<usize>> = launches.iter().map(|l| l.events.clone()).collect();
        assert_eq!(spans, [1..2, 2..5, 5..10]);
        assert_eq!(last_launch(&events), events[5..10].to_vec());
        // An unfinished last attempt runs to the end of the log.
        assert_eq!(last_launch(&events[..8]), events[5..8].to_vec());
        assert_eq!(read(&events[..8], Some(1)).unwrap()[2].events, 5..8);
    }
}
