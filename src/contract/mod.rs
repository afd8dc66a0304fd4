//! The measurement contract: the events a launch measures into RTMR3, their payloads (built
//! from the workload's own identity and parsed back), their order, and what counts as a
//! launch in a log ([`launches`]). `run`, `plan` and `verify` all use it; nothing else spells
//! an event name or a payload.
//!
//! A launch, in order: `config` (`sha256:<hex>` of the exact config bytes), `workload`
//! ([`Workload::identity`]: `git:<commit hex>` or `oci:sha256:<hex>`), in image mode
//! `compose` (`sha256:<hex>` of the exact compose document), any extra event (NEAR's
//! `mpc-image-digest`), and `ready` (empty) last.

pub mod launches;

use crate::approval::Approved;
use crate::digest::{ImageDigest, Sha256Digest};
use crate::hex;
use crate::measure::event::Event;
use crate::workload::Workload;

/// Every event of the contract, and only those, carries this prefix.
pub const LAUNCHER_PREFIX: &str = "trusted-launcher.";

/// Event names of the measurement contract, in the order they are measured.
pub const CONFIG_EVENT: &str = "trusted-launcher.config";
pub const WORKLOAD_EVENT: &str = "trusted-launcher.workload";
/// Image mode: `sha256:<hex>` of the exact compose document handed to compose, between
/// `workload` and `ready` (and before any extra event such as NEAR's `mpc-image-digest`).
pub const COMPOSE_EVENT: &str = "trusted-launcher.compose";
pub const READY_EVENT: &str = "trusted-launcher.ready";

/// NEAR tee-launcher's event: the 32 raw bytes of the image digest it launched.
pub const NEAR_IMAGE_EVENT: &str = "mpc-image-digest";

/// How a `config` or `compose` payload is written, for error messages.
pub const SHA256_FORM: &str = "sha256:<64 lowercase hex>";
/// How a `workload` payload is written, for error messages.
pub const WORKLOAD_FORM: &str = "git:<40 or 64 lowercase hex> or oci:sha256:<64 lowercase hex>";

/// The contract's events for one launch, in order: config, workload, the compose digest
/// (image mode), any `extra` events (such as NEAR's `mpc-image-digest`), and `ready` last.
/// Only an approved workload can be measured.
#[must_use]
pub fn events(
    config: &Sha256Digest,
    workload: &Approved<Workload>,
    compose: Option<&Sha256Digest>,
    extra: Vec<Event>,
) -> Vec<Event> {
    let mut events = vec![
        Event::new(CONFIG_EVENT, sha256_payload(config.as_bytes())),
        Event::new(WORKLOAD_EVENT, workload.value().identity()),
    ];
    if let Some(compose) = compose {
        events.push(Event::new(
            COMPOSE_EVENT,
            sha256_payload(compose.as_bytes()),
        ));
    }
    events.extend(extra);
    events.push(Event::new(READY_EVENT, Vec::new()));
    events
}

/// NEAR's `mpc-image-digest` event for the approved image.
#[must_use]
pub fn near_image_event(digest: &Approved<ImageDigest>) -> Event {
    Event::new(NEAR_IMAGE_EVENT, digest.value().as_bytes().to_vec())
}

/// `sha256:<hex>`: the payload of `config` and `compose`, and how reports show them.
#[must_use]
pub fn sha256_payload(digest: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(digest))
}

/// The digest in a `sha256:<64 lowercase hex>` text.
#[must_use]
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    text.strip_prefix("sha256:")
        .and_then(hex::decode_exact::<32>)
}

/// The digest in a `config` or `compose` payload.
#[must_use]
pub fn parse_sha256_payload(payload: &[u8]) -> Option<[u8; 32]> {
    parse_sha256(std::str::from_utf8(payload).ok()?)
}

/// The workload a `workload` payload names: the inverse of [`Workload::identity`].
#[must_use]
pub fn parse_workload_payload(payload: &[u8]) -> Option<Workload> {
    Workload::parse(std::str::from_utf8(payload).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ApprovedList;
    use crate::digest::CommitId;

    #[test]
    fn events_have_fixed_names_payloads_and_order() {
        let config = Sha256Digest::of(b"REPO_URL=x\n");
        let commit = CommitId::parse(&"ab".repeat(20)).unwrap();
        let list = ApprovedList::load(None, commit).unwrap();
        let events = events(
            &config,
            &list.approve(None).unwrap().workload(),
            None,
            Vec::new(),
        );
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].name, "trusted-launcher.config");
        assert_eq!(events[0].payload, format!("sha256:{config}").into_bytes());
        assert_eq!(events[1].name, "trusted-launcher.workload");
        assert_eq!(
            events[1].payload,
            format!("git:{}", "ab".repeat(20)).into_bytes()
        );
        assert_eq!(events[2].name, "trusted-launcher.ready");
        assert!(events[2].payload.is_empty());
    }

    #[test]
    fn image_events_carry_compose_then_extra_before_ready() {
        let config = Sha256Digest::of(b"[image]\n");
        let compose = Sha256Digest::of(b"services: {}\n");
        let digest = ImageDigest::parse(&format!("sha256:{}", "5a".repeat(32))).unwrap();
        let approved = ApprovedList::load(None, digest)
            .unwrap()
            .approve(None)
            .unwrap();
        let events = events(
            &config,
            &approved.workload(),
            Some(&compose),
            vec![near_image_event(&approved)],
        );
        let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "trusted-launcher.config",
                "trusted-launcher.workload",
                "trusted-launcher.compose",
                "mpc-image-digest",
                "trusted-launcher.ready"
            ]
        );
        assert_eq!(
            events[1].payload,
            format!("oci:sha256:{}", "5a".repeat(32)).into_bytes()
        );
        assert_eq!(events[2].payload, format!("sha256:{compose}").into_bytes());
        assert_eq!(events[3].payload, vec![0x5a; 32]);
    }

    /// Every payload the constructors write parses back to the value it came from, and
    /// near misses do not parse.
    #[test]
    fn payloads_round_trip_and_near_misses_are_refused() {
        let config = Sha256Digest::of(b"x");
        let written = sha256_payload(config.as_bytes());
        assert_eq!(
            parse_sha256_payload(written.as_bytes()),
            Some(*config.as_bytes())
        );
        for workload in [
            Workload::Git(CommitId::parse(&"1f".repeat(20)).unwrap()),
            Workload::Git(CommitId::parse(&"1f".repeat(32)).unwrap()),
            Workload::Image(ImageDigest::parse(&format!("sha256:{}", "5a".repeat(32))).unwrap()),
        ] {
            assert_eq!(
                parse_workload_payload(workload.identity().as_bytes()),
                Some(workload)
            );
        }
        for bad in [
            "sha256:".to_owned(),
            format!("sha256:{}", "C0".repeat(32)),
            format!("sha512:{}", "c0".repeat(32)),
            format!("sha256:{}", "c0".repeat(33)),
        ] {
            assert_eq!(parse_sha256_payload(bad.as_bytes()), None, "{bad}");
        }
        for bad in [
            "git:main".to_owned(),
            format!("oci:{}", "5a".repeat(32)),
            format!("git:{}", "1F".repeat(20)),
            format!("sha256:{}", "5a".repeat(32)),
        ] {
            assert_eq!(parse_workload_payload(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(parse_sha256_payload(&[0xff; 4]), None);
    }
}
