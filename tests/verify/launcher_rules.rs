//! The launcher-event rules on synthetic logs: expectations, order, every launch
//! compared, application events, and the same rules through the fake agent.

use serde_json::json;

use crate::attestation::{boot_events, chain, event, launch_events, synthetic};
use crate::common::fake_agent::{FakeAgent, Mode, hex};
use crate::launch::{emit, get_quote};
use crate::{COMPOSE, CONFIG, READY, Scratch, WORKLOAD};

// --- 7. launcher rules on synthetic logs ---------------------------------------------------

/// Launcher events after `system-ready`, in contract order, ready last: passes with the
/// launch's commit, config hash or image; wrong values fail.
#[test]
fn launcher_expectations_on_a_good_launch() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let good = chain(&[boot_events(), launch.clone()]);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    let report = synthetic(&s, "good.json", &good, &expect);
    report.passes().has(&[
        ("rtmr3.replay", "passed"),
        ("boot.events", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("quote.signature", "skipped"),
    ]);
    assert_eq!(
        report.json["launches"],
        json!([{
            "number": 1,
            "complete": true,
            "config": format!("sha256:{config}"),
            "workload": format!("git:{commit}"),
            "compose": null,
            "outcome": "accepted",
            "problems": [],
        }])
    );
    // Without expectations the order is still checked (and holds).
    synthetic(&s, "good-plain.json", &good, &[])
        .passes()
        .has(&[("launcher.events", "passed")]);
    // A 64-hex (SHA-256) commit id.
    let long_commit = "2e".repeat(32);
    let long = chain(&[boot_events(), launch_events(&long_commit, &config)]);
    synthetic(&s, "long.json", &long, &["--expect-commit", &long_commit])
        .passes()
        .has(&[("launch.1", "passed")]);

    // Wrong expectations.
    synthetic(
        &s,
        "wrong-commit.json",
        &good,
        &["--expect-commit", &"1e".repeat(20)],
    )
    .fails(&["launch.1"])
    .has(&[("launcher.events", "passed")]);
    synthetic(
        &s,
        "wrong-config.json",
        &good,
        &["--expect-config-sha256", &"c1".repeat(32)],
    )
    .fails(&["launch.1"]);
}

/// Image mode: `oci:sha256:<hex>`, then the rendered compose file's digest; the image, the
/// compose digest and the launch kind are compared.
#[test]
fn image_launch_expectations() {
    let s = Scratch::new();
    let config = "c0".repeat(32);
    let good = chain(&[boot_events(), launch_events(&"1f".repeat(20), &config)]);
    let image = "5a".repeat(32);
    let compose = "d0".repeat(32);
    let oci = chain(&[
        boot_events(),
        event(CONFIG, format!("sha256:{config}").as_bytes()),
        event(WORKLOAD, format!("oci:sha256:{image}").as_bytes()),
        event(COMPOSE, format!("sha256:{compose}").as_bytes()),
        event(READY, b""),
    ]);
    let report = synthetic(
        &s,
        "oci.json",
        &oci,
        &[
            "--expect-image",
            &format!("sha256:{image}"),
            "--expect-compose-sha256",
            &compose,
        ],
    );
    report
        .passes()
        .has(&[("launch.1", "passed"), ("launcher.events", "passed")]);
    assert_eq!(
        report.json["launches"][0]["compose"],
        format!("sha256:{compose}")
    );
    synthetic(
        &s,
        "oci-wrong.json",
        &oci,
        &["--expect-image", &format!("sha256:{}", "5b".repeat(32))],
    )
    .fails(&["launch.1"]);
    synthetic(
        &s,
        "oci-wrong-compose.json",
        &oci,
        &["--expect-compose-sha256", &"d1".repeat(32)],
    )
    .fails(&["launch.1"]);
    // A git launch is not an image launch.
    synthetic(
        &s,
        "git-as-image.json",
        &good,
        &["--expect-image", &format!("sha256:{image}")],
    )
    .fails(&["launch.1"]);
}

/// Every way of breaking the launcher-event contract fails `launcher.events`.
#[test]
fn launcher_event_order_violations_fail() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    // Launcher events before system-ready.
    let boot = boot_events();
    let (before_ready, ready) = boot.split_at(boot.len() - 1);
    let early = chain(&[before_ready.to_vec(), launch.clone(), ready.to_vec()]);
    synthetic(&s, "early.json", &early, &expect).fails(&["launcher.events"]);
    synthetic(&s, "early-plain.json", &early, &[]).fails(&["launcher.events"]);

    // Workload before config.
    let swapped = chain(&[
        boot_events(),
        vec![launch[1].clone(), launch[0].clone(), launch[2].clone()],
    ]);
    synthetic(&s, "swapped.json", &swapped, &expect).fails(&["launcher.events"]);

    // Ready before workload.
    let ready_early = chain(&[
        boot_events(),
        vec![launch[0].clone(), launch[2].clone(), launch[1].clone()],
    ]);
    synthetic(&s, "ready-early.json", &ready_early, &[]).fails(&["launcher.events"]);

    // Duplicate ready.
    let twice = chain(&[boot_events(), launch.clone(), event(READY, b"")]);
    synthetic(&s, "twice.json", &twice, &expect).fails(&["launcher.events"]);

    // A duplicate workload, or config after workload, within one launch.
    let dup_workload = chain(&[
        boot_events(),
        vec![
            launch[0].clone(),
            launch[1].clone(),
            launch[1].clone(),
            launch[2].clone(),
        ],
    ]);
    synthetic(&s, "dup-workload.json", &dup_workload, &[]).fails(&["launcher.events"]);

    // A launcher-named event after ready.
    let after = chain(&[
        boot_events(),
        launch.clone(),
        event("trusted-launcher.x", b"anything"),
    ]);
    synthetic(&s, "after.json", &after, &expect).fails(&["launcher.events"]);

    // No ready at all: the launch never reached the workload.
    let unfinished = chain(&[boot_events(), launch[..2].to_vec()]);
    synthetic(&s, "unfinished.json", &unfinished, &[]).fails(&["launcher.events"]);
}

/// Several launches in one boot: every one that names a workload is compared; a config-only
/// attempt ran nothing; an application event is expected once after system-ready.
#[test]
fn every_launch_is_compared() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let config = "c0".repeat(32);
    let launch = launch_events(&commit, &config);
    let expect = [
        "--expect-commit",
        commit.as_str(),
        "--expect-config-sha256",
        config.as_str(),
    ];

    // An unfinished attempt (config only: the launcher stopped before choosing a workload)
    // followed by a whole one: the attempt is shown as incomplete, not compared.
    let other_config = "c9".repeat(32);
    let restarted = chain(&[
        boot_events(),
        event(CONFIG, format!("sha256:{other_config}").as_bytes()),
        launch.clone(),
    ]);
    let report = synthetic(&s, "restarted.json", &restarted, &expect);
    report.passes().has(&[
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("launch.2", "passed"),
    ]);
    assert_eq!(report.json["launches"][0]["outcome"], "incomplete");
    assert_eq!(report.json["launches"][1]["outcome"], "accepted");
    synthetic(
        &s,
        "restarted-first.json",
        &restarted,
        &["--expect-config-sha256", &other_config],
    )
    .fails(&["launch.2"]);

    // Launcher expectations with no launcher events at all; no launch without expectations
    // fails too, unless --allow-no-launch.
    synthetic(
        &s,
        "none.json",
        &boot_events(),
        &["--expect-commit", &commit],
    )
    .fails(&["launcher.events"]);
    synthetic(&s, "none-plain.json", &boot_events(), &[]).fails(&["launcher.events"]);

    // Two launches in one boot: both must be accepted.
    let second_commit = "2f".repeat(20);
    let second_config = "c2".repeat(32);
    let two = chain(&[
        boot_events(),
        launch.clone(),
        launch_events(&second_commit, &second_config),
    ]);
    synthetic(
        &s,
        "two.json",
        &two,
        &[
            "--expect-commit",
            &second_commit,
            "--expect-config-sha256",
            &second_config,
        ],
    )
    .fails(&["launch.1"])
    .has(&[("launch.2", "passed"), ("launcher.events", "passed")]);
    synthetic(
        &s,
        "two-both.json",
        &two,
        &[
            "--expect-commit",
            &second_commit,
            "--expect-commit",
            &commit,
            "--expect-config-sha256",
            &second_config,
            "--expect-config-sha256",
            &config,
        ],
    )
    .passes()
    .has(&[("launch.1", "passed"), ("launch.2", "passed")]);
}

/// Application events after ready are allowed and can be expected once; twice is ambiguous.
#[test]
fn application_events_are_expected_once() {
    let s = Scratch::new();
    let commit = "1f".repeat(20);
    let launch = launch_events(&commit, &"c0".repeat(32));
    let once = chain(&[boot_events(), launch.clone(), event("app-event", b"one")]);
    synthetic(
        &s,
        "app-once.json",
        &once,
        &[
            "--expect-commit",
            &commit,
            "--expect-event",
            &format!("app-event={}", hex(b"one")),
        ],
    )
    .passes()
    .has(&[("expect.event:app-event", "passed")]);
    let app = chain(&[
        boot_events(),
        launch,
        event("app-event", b"one"),
        event("app-event", b"two"),
    ]);
    for payload in [&b"one"[..], b"two"] {
        let report = synthetic(
            &s,
            "app.json",
            &app,
            &["--expect-event", &format!("app-event={}", hex(payload))],
        );
        report.fails(&["expect.event:app-event"]);
        assert!(
            report
                .detail("expect.event:app-event")
                .contains("occurs 2 times after system-ready"),
            "{}",
            report.summary()
        );
    }
}

/// The same rules through the fake agent: events emitted over its socket, `GetQuote` raw.
#[test]
fn launcher_rules_through_the_fake_agent() {
    let s = Scratch::new();
    let agent = FakeAgent::start(s.path(), Mode::Normal);
    let commit = "3a".repeat(20);
    let config = "3b".repeat(32);
    for (name, payload) in launch_events(&commit, &config) {
        emit(agent.socket_path(), &name, &payload);
    }
    let path = s.write("getquote.json", get_quote(agent.socket_path(), b"nonce"));
    s.report(&[
        &path,
        "--skip-dcap",
        "--expect-commit",
        &commit,
        "--expect-config-sha256",
        &config,
        "--expect-report-data",
        &hex(b"nonce"),
    ])
    .passes()
    .has(&[
        ("rtmr3.replay", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
        ("expect.report_data", "passed"),
    ]);

    emit(agent.socket_path(), READY, b"");
    let path = s.write("getquote-twice.json", get_quote(agent.socket_path(), b""));
    s.report(&[&path, "--skip-dcap", "--expect-commit", &commit])
        .fails(&["launcher.events"])
        .has(&[("rtmr3.replay", "passed")]);
}
