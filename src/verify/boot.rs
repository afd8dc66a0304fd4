//! Boot identity: dstack's own RTMR3 events, read only from the part of the log up to and
//! including `system-ready`.
//!
//! The threat: `EmitEvent` reserves no names, so any process holding the agent socket after
//! boot (the workload in git mode, an image with the socket) can emit `compose-hash` or
//! `app-id` again. Only events before `system-ready` are dstack's, because no app container
//! runs before it; so boot identity comes from there, each name at most once, and a boot
//! name after `system-ready` fails the log.

use std::collections::BTreeMap;

use crate::measure::event::Event;

/// The event that ends dstack's boot part of RTMR3.
pub const SYSTEM_READY: &str = "system-ready";

/// dstack's boot event names (those that precede `system-ready`). Taken from the real logs in
/// `tests/fixtures/`: `crabbox_real_attestation_info.json` (dstack 0.5.x with KMS: every name
/// here, each once), `dstack_verifier_tdx-lite-getquote.json` (0.6, no `mr-kms`) and
/// `near-mpc_public_data.json` (local key provider).
pub const BOOT_EVENTS: &[&str] = &[
    "system-preparing",
    "app-id",
    "compose-hash",
    "instance-id",
    "boot-mr-done",
    "mr-kms",
    "os-image-hash",
    "key-provider",
    "storage-fs",
    SYSTEM_READY,
];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    #[error(
        "the log has no {SYSTEM_READY} event: no part of it is known to be dstack's boot, so no boot identity and no launch can be read from it"
    )]
    NoSystemReady,
    #[error(
        "boot event {name} appears twice before {SYSTEM_READY} (RTMR3 events {first} and {second}): the boot identity is ambiguous"
    )]
    Duplicate {
        name: String,
        first: usize,
        second: usize,
    },
    #[error(
        "boot event {name} at RTMR3 event {index} comes after {SYSTEM_READY} (at {ready}): dstack emits it only during boot, so something else emitted it"
    )]
    AfterBoot {
        name: String,
        index: usize,
        ready: usize,
    },
}

/// The log split at `system-ready`.
#[derive(Debug)]
pub struct Boot<'a> {
    /// Boot event name → payload, from the boot part; `None` when the boot part is not sound
    /// (no `system-ready`, or a name twice), so nothing may be read from it.
    identity: Option<BTreeMap<&'a str, &'a [u8]>>,
    /// Index of the first event after `system-ready`; `None` without `system-ready`.
    runtime_start: Option<usize>,
    /// Every problem found, in log order.
    pub problems: Vec<BootError>,
}

impl<'a> Boot<'a> {
    /// Splits `events` (the replayed RTMR3 events, in log order).
    #[must_use]
    pub fn read(events: &'a [Event]) -> Self {
        let Some(ready) = events.iter().position(|e| e.name == SYSTEM_READY) else {
            return Self {
                identity: None,
                runtime_start: None,
                problems: vec![BootError::NoSystemReady],
            };
        };
        let mut problems = Vec::new();
        let mut identity = BTreeMap::new();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, event) in events.iter().enumerate().take(ready + 1) {
            let Some(name) = BOOT_EVENTS.iter().copied().find(|n| *n == event.name) else {
                continue;
            };
            if let Some(first) = seen.insert(name, index) {
                problems.push(BootError::Duplicate {
                    name: name.to_owned(),
                    first,
                    second: index,
                });
            }
            identity.insert(name, event.payload.as_slice());
        }
        let sound = problems.is_empty();
        for (index, event) in events.iter().enumerate().skip(ready + 1) {
            if BOOT_EVENTS.contains(&event.name.as_str()) {
                problems.push(BootError::AfterBoot {
                    name: event.name.clone(),
                    index,
                    ready,
                });
            }
        }
        Self {
            identity: sound.then_some(identity),
            runtime_start: Some(ready + 1),
            problems,
        }
    }

    /// The boot part's payload of boot event `name`: `Err` when the boot part is not sound,
    /// `Ok(None)` when the boot did not emit it.
    pub fn payload(&self, name: &str) -> Result<Option<&'a [u8]>, &'static str> {
        self.identity
            .as_ref()
            .map(|identity| identity.get(name).copied())
            .ok_or("the boot part of the log is not sound (see boot.events)")
    }

    /// Where the runtime part starts (the event after `system-ready`).
    #[must_use]
    pub fn runtime_start(&self) -> Option<usize> {
        self.runtime_start
    }

    /// One line for the `boot.events` check.
    #[must_use]
    pub fn summary(&self) -> String {
        match (&self.identity, self.runtime_start) {
            (Some(identity), Some(start)) => format!(
                "{} boot events up to {SYSTEM_READY} (RTMR3 event {}), each once; none after it",
                identity.len(),
                start.saturating_sub(1)
            ),
            _ => "no sound boot part".to_owned(),
        }
    }
}

/// Is `name` one of dstack's boot events?
#[must_use]
pub fn is_boot_event(name: &str) -> bool {
    BOOT_EVENTS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(names: &[&str]) -> Vec<Event> {
        names
            .iter()
            .map(|n| Event::new(n, n.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn boot_identity_comes_from_the_boot_part() {
        let events = log(&["system-preparing", "compose-hash", SYSTEM_READY, "app"]);
        let boot = Boot::read(&events);
        assert!(boot.problems.is_empty());
        assert_eq!(boot.payload("compose-hash"), Ok(Some(&b"compose-hash"[..])));
        assert_eq!(boot.payload("app-id"), Ok(None));
        assert_eq!(boot.runtime_start(), Some(3));
        assert_eq!(
            boot.summary(),
            "3 boot events up to system-ready (RTMR3 event 2), each once; none after it"
        );
    }

    #[test]
    fn boot_problems_have_exact_texts() {
        for (names, expected) in [
            (
                &["compose-hash", "app"][..],
                "the log has no system-ready event: no part of it is known to be dstack's boot, so no boot identity and no launch can be read from it",
            ),
            (
                &["compose-hash", "app-id", "compose-hash", SYSTEM_READY],
                "boot event compose-hash appears twice before system-ready (RTMR3 events 0 and 2): the boot identity is ambiguous",
            ),
            (
                &["compose-hash", SYSTEM_READY, "app", "compose-hash"],
                "boot event compose-hash at RTMR3 event 3 comes after system-ready (at 1): dstack emits it only during boot, so something else emitted it",
            ),
            (
                &[SYSTEM_READY, SYSTEM_READY],
                "boot event system-ready at RTMR3 event 1 comes after system-ready (at 0): dstack emits it only during boot, so something else emitted it",
            ),
        ] {
            let events = log(names);
            let boot = Boot::read(&events);
            let texts: Vec<String> = boot.problems.iter().map(ToString::to_string).collect();
            assert_eq!(texts, [expected], "{names:?}");
        }
    }

    #[test]
    fn an_unsound_boot_part_yields_no_identity() {
        let events = log(&["app-id", "app-id", SYSTEM_READY]);
        let duplicated = Boot::read(&events);
        assert_eq!(
            duplicated.payload("app-id"),
            Err("the boot part of the log is not sound (see boot.events)")
        );
        assert!(Boot::read(&log(&["app-id"])).payload("app-id").is_err());
        // A boot name after system-ready fails the log but leaves the boot's own value.
        let events = log(&["app-id", SYSTEM_READY, "app-id"]);
        let late = Boot::read(&events);
        assert_eq!(late.problems.len(), 1);
        assert_eq!(late.payload("app-id"), Ok(Some(&b"app-id"[..])));
    }
}
