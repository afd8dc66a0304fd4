//! `verify` against forged boot identity (issue 10): dstack's boot events re-emitted after
//! `system-ready`, duplicated before it, and launcher events placed inside the boot. Each is
//! first shown to fool the old "last event of that name" rule (`common::forged_log`), then
//! the real binary is shown to refuse it.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use sha2::{Digest as _, Sha256};

use common::fake_agent::hex;
use common::forged_log::{boot, ev, git_launch, old_last_payload, verify};

/// `compose-hash` re-emitted after system-ready with the audited value while the boot's
/// differs: the old last-event rule binds the audited app-compose; now `--app-compose`,
/// `--expect-compose-hash` and `--expect-event compose-hash=` read the boot's and fail.
#[test]
fn boot_identity_re_emitted_at_runtime_fails() {
    let audited = br#"{"docker_compose_file":"audited"}"#;
    let audited_hash: [u8; 32] = Sha256::digest(audited).into();
    let mut events = boot(&Sha256::digest(b"unaudited").into());
    events.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
    events.push(ev("compose-hash", audited_hash));
    assert_eq!(
        old_last_payload(&events, "compose-hash"),
        Some(&audited_hash[..])
    );

    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("app-compose.json");
    std::fs::write(&compose, audited).unwrap();
    let verdict = verify(&events, &["--app-compose", compose.to_str().unwrap()]);
    verdict.fails(&["boot.events", "compose_hash.app_compose"]);
    assert!(
        verdict
            .detail("boot.events")
            .contains("boot event compose-hash at RTMR3 event 11 comes after system-ready")
    );
    verify(&events, &["--expect-compose-hash", &hex(&audited_hash)])
        .fails(&["expect.compose_hash"]);
    let event = format!("compose-hash={}", hex(&audited_hash));
    verify(&events, &["--expect-event", &event]).fails(&["expect.event:compose-hash"]);
    // app-id and system-ready re-emitted fail the same way.
    for name in ["app-id", "system-ready", "key-provider"] {
        let mut late = boot(&audited_hash);
        late.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
        late.push(ev(name, b"x"));
        verify(&late, &[]).fails(&["boot.events"]);
    }
}

/// A boot event twice before system-ready: the boot identity is ambiguous.
#[test]
fn a_boot_event_duplicated_in_the_boot_part_fails() {
    let audited = b"{}";
    let hash: [u8; 32] = Sha256::digest(audited).into();
    let mut events = boot(&[0x60; 32]);
    events.insert(3, ev("compose-hash", hash));
    events.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
    let dir = tempfile::tempdir().unwrap();
    let compose = dir.path().join("app-compose.json");
    std::fs::write(&compose, audited).unwrap();
    let verdict = verify(&events, &["--app-compose", compose.to_str().unwrap()]);
    verdict.fails(&["boot.events", "compose_hash.app_compose"]);
    assert!(verdict.detail("boot.events").contains(
        "boot event compose-hash appears twice before system-ready (RTMR3 events 2 and 3)"
    ));
}

/// Launcher events before system-ready (a log prefix nobody can attribute to the launcher).
#[test]
fn a_launcher_event_before_system_ready_fails() {
    let mut events = boot(&[0x60; 32]);
    let ready = events.pop().unwrap();
    events.extend(git_launch(&"1f".repeat(20), &"c0".repeat(32)));
    events.push(ready);
    let verdict = verify(&events, &["--expect-commit", &"1f".repeat(20)]);
    verdict.fails(&["launcher.events"]);
    assert!(
        verdict
            .detail("launcher.events")
            .contains("trusted-launcher.config at RTMR3 event 7 comes before system-ready")
    );
}
