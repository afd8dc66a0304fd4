//! MRCONFIGID against the compose-hash event, and dstack's v2 event digests.

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::Scratch;
use crate::attestation::{boot_events, chain, fake_quote, launch_events, synthetic_getquote_with};
use crate::common::fake_agent::{EVENT_TYPE, hex, replay, v1_digest};

/// MRCONFIGID v1 (`0x01 || compose_hash || zeros`) against the compose-hash event of a log
/// that replays: equal passes, different fails, all zero is skipped.
#[test]
fn mrconfigid_against_the_compose_hash_event() {
    let s = Scratch::new();
    let events = boot_events();
    let compose_hash = [0x60u8; 32];
    let bound = |hash: &[u8; 32]| {
        let mut id = [0u8; 48];
        id[0] = 1;
        id[1..33].copy_from_slice(hash);
        id
    };
    let check = |name: &str, id: &[u8; 48]| {
        let path = s.write_json(name, &synthetic_getquote_with(&events, id));
        s.report(&[&path, "--skip-dcap", "--allow-no-launch"])
    };
    check("bound.json", &bound(&compose_hash))
        .passes()
        .has(&[("mrconfigid.compose_hash", "passed")]);
    check("other.json", &bound(&[0x61; 32]))
        .fails(&["mrconfigid.compose_hash"])
        .has(&[("rtmr3.replay", "passed")]);
    check("zero.json", &[0; 48])
        .passes()
        .has(&[("mrconfigid.compose_hash", "skipped")]);
    s.report(&[
        &s.write_json(
            "bound2.json",
            &synthetic_getquote_with(&events, &bound(&compose_hash)),
        ),
        "--skip-dcap",
        "--allow-no-launch",
        "--expect-compose-hash",
        &hex(&compose_hash),
    ])
    .passes()
    .has(&[("expect.compose_hash", "passed")]);
}

/// `SHA384(JCS({"name","payload","type"}))`: the v2 digest (DESIGN §4), for ASCII names.
fn v2_digest(name: &str, payload: &[u8]) -> [u8; 48] {
    sha2::Sha384::digest(v2_preimage(name, payload)).into()
}

fn v2_preimage(name: &str, payload: &[u8]) -> Vec<u8> {
    format!(
        r#"{{"name":{},"payload":"{}","type":{EVENT_TYPE}}}"#,
        serde_json::to_string(name).unwrap(),
        hex(payload)
    )
    .into_bytes()
}

/// A `GetQuote` response with v2 entries (`version: 2`, `preimage`), RTMR3 their replay;
/// `digest` gives each entry's supplied digest.
fn v2_getquote(events: &[(String, Vec<u8>)], digest: impl Fn(&str, &[u8]) -> String) -> Value {
    let log: Vec<Value> = events
        .iter()
        .map(|(n, p)| {
            json!({
                "imr": 3,
                "event_type": EVENT_TYPE,
                "digest": digest(n, p),
                "event": n,
                "event_payload": hex(p),
                "version": 2,
                "preimage": hex(&v2_preimage(n, p)),
            })
        })
        .collect();
    let digests: Vec<[u8; 48]> = events.iter().map(|(n, p)| v2_digest(n, p)).collect();
    json!({
        "quote": hex(&fake_quote(&replay(&digests), b"")),
        "event_log": serde_json::to_string(&log).unwrap(),
        "report_data": hex(&[0u8; 64]),
        "vm_config": "{}",
    })
}

/// v2 entries replay with v2 digests, supplied or stripped; a v1 digest on a v2 entry fails.
#[test]
fn v2_event_digests_replay() {
    let s = Scratch::new();
    let events = chain(&[
        boot_events(),
        launch_events(&"4d".repeat(20), &"4e".repeat(32)),
    ]);
    let full = s.write_json(
        "v2.json",
        &v2_getquote(&events, |n, p| hex(&v2_digest(n, p))),
    );
    s.report(&[&full, "--skip-dcap", "--expect-commit", &"4d".repeat(20)])
        .passes()
        .has(&[
            ("event_log.digests", "passed"),
            ("rtmr3.replay", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
    let stripped = s.write_json(
        "v2-stripped.json",
        &v2_getquote(&events, |_, _| String::new()),
    );
    s.report(&[&stripped, "--skip-dcap"])
        .passes()
        .has(&[("rtmr3.replay", "passed")]);
    let wrong = s.write_json(
        "v2-v1.json",
        &v2_getquote(&events, |n, p| hex(&v1_digest(n, p))),
    );
    s.report(&[&wrong, "--skip-dcap"])
        .fails(&["event_log.digests"]);
}

/// MRCONFIGID bound (0x01...) but no compose-hash event in a log that replays: fails.
#[test]
fn bound_mrconfigid_without_compose_hash_event_fails() {
    let s = Scratch::new();
    let events: Vec<(String, Vec<u8>)> = boot_events()
        .into_iter()
        .filter(|(n, _)| n != "compose-hash")
        .collect();
    let mut id = [0u8; 48];
    id[0] = 1;
    id[1..33].copy_from_slice(&[0x60; 32]);
    let path = s.write_json("no-compose.json", &synthetic_getquote_with(&events, &id));
    s.report(&[&path, "--skip-dcap"])
        .fails(&["mrconfigid.compose_hash"])
        .has(&[("rtmr3.replay", "passed")]);
}
