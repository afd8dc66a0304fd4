//! Unit tests of the parent module (kept apart so the module stays one screenful of code).

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
    let one = super::super::events(&config, &approved.workload(), None, Some(&compose), near);
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
            signer: None,
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
