//! Launches: the launcher's events after `system-ready`, grouped into attempts, each checked
//! against the contract order and against what the verifier accepts.
//!
//! Every attempt counts, not just the last: in git mode the workload keeps the agent socket
//! and can emit a whole forged launch after the real one, so "the last launch" is whatever
//! the workload wants it to be. An attempt that names a workload counts even without `ready`,
//! because `INSTALL_CMD` runs the checked-out code before `ready` is measured.

use crate::digest::{CommitId, ImageDigest};
use crate::hex;
use crate::measure::event::{
    COMPOSE_EVENT, CONFIG_EVENT, Event, READY_EVENT, SIGNER_EVENT, WORKLOAD_EVENT,
};
use crate::sigstore::Signer;
use crate::workload::Workload;

/// Every event of the contract, and only those, carries this prefix.
pub const LAUNCHER_PREFIX: &str = "trusted-launcher.";

/// One launch attempt: from a `config` event up to the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// 1-based, in log order.
    pub number: usize,
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

/// Reads every launch attempt from `events` (the replayed RTMR3 events); `runtime_start` is
/// the index after `system-ready`, `None` when the log has none. Stops at the first break of
/// the contract.
pub fn read(events: &[Event], runtime_start: Option<usize>) -> Result<Vec<Launch>, LaunchError> {
    let mut launches: Vec<(Launch, Stage)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let name = event.name.as_str();
        if !name.starts_with(LAUNCHER_PREFIX) {
            continue;
        }
        match runtime_start {
            None => {
                return Err(LaunchError::NoSystemReady {
                    name: name.to_owned(),
                    index,
                });
            }
            Some(start) if index < start => {
                return Err(LaunchError::BeforeSystemReady {
                    name: name.to_owned(),
                    index,
                });
            }
            Some(_) => {}
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
            let config = sha256_payload(&event.payload)
                .ok_or_else(|| payload_error(launch, "sha256:<64 lowercase hex>"))?;
            launches.push((
                Launch {
                    number: launch,
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
                let workload = workload_payload(&event.payload).ok_or_else(|| {
                    payload_error(
                        launch.number,
                        "git:<40 or 64 lowercase hex> or oci:sha256:<64 lowercase hex>",
                    )
                })?;
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
                launch.compose =
                    Some(sha256_payload(&event.payload).ok_or_else(|| {
                        payload_error(launch.number, "sha256:<64 lowercase hex>")
                    })?);
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

/// `sha256:<64 lowercase hex>` as bytes.
fn sha256_payload(payload: &[u8]) -> Option<[u8; 32]> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("sha256:")
        .and_then(hex::decode_exact::<32>)
}

/// `git:<commit>` or `oci:sha256:<hex>`, as the launcher measures them.
fn workload_payload(payload: &[u8]) -> Option<Workload> {
    let text = std::str::from_utf8(payload).ok()?;
    if let Some(commit) = text.strip_prefix("git:") {
        return CommitId::parse(commit).map(Workload::Git);
    }
    text.strip_prefix("oci:")
        .and_then(ImageDigest::parse)
        .map(Workload::Image)
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
    fn the_signer_event_follows_the_workload_in_either_mode() {
        let signer = br#"{"identity":"mitr@redhat.com","issuer":"https://github.com/login/oauth"}"#;
        let with = |names: &[&str], git: bool, signer_payload: &[u8]| {
            let events: Vec<Event> = names
                .iter()
                .map(|n| {
                    if *n == SIGNER_EVENT {
                        Event::new(n, signer_payload.to_vec())
                    } else {
                        Event::new(n, payload(n, git))
                    }
                })
                .collect();
            read(&events, Some(1)).map_err(|e| e.to_string())
        };
        let image = with(&["system-ready", C, W, SIGNER_EVENT, K, R], false, signer).unwrap();
        assert_eq!(
            image[0].signer.as_ref().unwrap().identity,
            "mitr@redhat.com"
        );
        assert!(image[0].complete);
        let git = with(&["system-ready", C, W, SIGNER_EVENT, R], true, signer).unwrap();
        assert!(git[0].signer.is_some());
        // Not after compose, not twice, and only in its canonical form.
        for names in [
            &["system-ready", C, W, K, SIGNER_EVENT, R][..],
            &["system-ready", C, W, SIGNER_EVENT, SIGNER_EVENT, K, R],
        ] {
            assert!(
                with(names, false, signer)
                    .unwrap_err()
                    .contains("trusted-launcher.signer at RTMR3 event"),
                "{names:?}"
            );
        }
        let spaced = br#"{"identity": "mitr@redhat.com"}"#;
        assert!(
            with(&["system-ready", C, W, SIGNER_EVENT, K, R], false, spaced)
                .unwrap_err()
                .contains("has payload")
        );
        let no_signer = launches(&["system-ready", C, W, K, R], false).unwrap();
        assert_eq!(no_signer[0].signer, None);
    }
}
