//! Round trips: a launch (fake dstack agent, native sysfs fallback, nontee own log)
//! then `verify` on what it measured.

use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::attestation::{boot_events, fake_quote, position, runtime_entry};
use crate::common::fake_agent::{FakeAgent, FakeRtmr3, Mode, hex, replay, unhex, v1_digest};
use crate::common::{Fixture, Launcher};
use crate::launch::{fixture_report, get_quote, planned_config_sha256, tee, workload};
use crate::{WORKLOAD, run_with_stdin};

// --- 8. round trips ------------------------------------------------------------------------

/// A real tee launch through the fake agent (normal and stripped), then the agent's
/// `GetQuote` verifies with the expectations `plan --json` gives.
#[test]
fn round_trip_tee_launch_through_the_fake_agent() {
    for mode in [Mode::Normal, Mode::Stripped] {
        let fx = Fixture::new();
        let agent = FakeAgent::start(fx.path(), mode);
        let (sha, config) = workload(&fx, "verified");
        let config_sha256 = planned_config_sha256(&fx, &config);
        tee(
            &fx,
            agent.endpoint(),
            &fx.path().join("no-such-rtmr3:sha384"),
        )
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN verified");
        assert_eq!(agent.events().len(), 3, "{mode:?}");

        let quote_path = fx.write(
            "getquote.json",
            &String::from_utf8(get_quote(agent.socket_path(), b"")).unwrap(),
        );
        let quote_path = quote_path.to_str().unwrap();
        fixture_report(
            &fx,
            &[
                quote_path,
                "--skip-dcap",
                "--expect-commit",
                &sha,
                "--expect-config-sha256",
                &config_sha256,
            ],
        )
        .passes()
        .has(&[
            ("rtmr3.replay", "passed"),
            ("event_log.digests", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
        fixture_report(
            &fx,
            &[
                quote_path,
                "--skip-dcap",
                "--expect-commit",
                &"0".repeat(40),
            ],
        )
        .fails(&["launch.1"]);

        // And through stdin.
        let mut launcher = Launcher::new(fx.path());
        launcher.args(["verify", "-", "--skip-dcap", "--expect-commit", &sha]);
        let run = run_with_stdin(&launcher, &fs::read(quote_path).unwrap());
        assert_eq!(
            run.status,
            Some(3),
            "{mode:?}\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// No `EmitEvent`, and `tdx-sysfs` chosen explicitly: the launcher extends natively and
/// keeps its own log. The agent's `GetQuote` alone does not replay; with
/// `--event-log <own log>` appended, it does. (`dstack-native`, where the agent's own
/// `GetQuote` suffices, is in `tests/dstack_native.rs`.)
#[test]
fn round_trip_native_extension_with_appended_own_log() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    let (sha, config) = workload(&fx, "native");
    let config_sha256 = planned_config_sha256(&fx, &config);
    tee(&fx, agent.endpoint(), rtmr3.path())
        .args(["--measurement-backend", "tdx-sysfs"])
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN native");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rtmr3.received().len() < 144 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rtmr3.received().len(), 144);

    let quote_path = fx.write(
        "getquote.json",
        &String::from_utf8(get_quote(agent.socket_path(), b"")).unwrap(),
    );
    let quote_path = quote_path.to_str().unwrap();
    let own_log = fx.event_log();
    let own_log = own_log.to_str().unwrap();
    fixture_report(
        &fx,
        &[
            quote_path,
            "--skip-dcap",
            "--event-log",
            own_log,
            "--expect-commit",
            &sha,
            "--expect-config-sha256",
            &config_sha256,
        ],
    )
    .passes()
    .has(&[
        ("rtmr3.replay", "passed"),
        ("launcher.events", "passed"),
        ("launch.1", "passed"),
    ]);
    fixture_report(&fx, &[quote_path, "--skip-dcap"]).fails(&["rtmr3.replay"]);
}

/// A nontee launch: its own log, and a quote whose RTMR3 is that log's replay, verify with
/// `--quote` and `--event-log` (JSON lines as written, or a JSON array).
#[test]
fn round_trip_nontee_own_log() {
    let fx = Fixture::new();
    let (sha, config) = workload(&fx, "local");
    let config_sha256 = planned_config_sha256(&fx, &config);
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN local");
    let own = fx.events();
    assert_eq!(own.len(), 3);
    let v1 = |e: &Value| {
        let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
        v1_digest(e["event"].as_str().unwrap(), &payload)
    };
    let own_log = fx.event_log();
    let expectations = [
        "--expect-commit",
        sha.as_str(),
        "--expect-config-sha256",
        config_sha256.as_str(),
    ];

    // The own log alone has no system-ready: nothing places its launch after a boot.
    let own_digests: Vec<[u8; 48]> = own.iter().map(v1).collect();
    let own_quote = fx.path().join("own-quote.bin");
    fs::write(&own_quote, fake_quote(&replay(&own_digests), b"")).unwrap();
    fixture_report(
        &fx,
        &[
            &[
                "--quote",
                own_quote.to_str().unwrap(),
                "--event-log",
                own_log.to_str().unwrap(),
                "--skip-dcap",
            ][..],
            &expectations,
        ]
        .concat(),
    )
    .fails(&["boot.events", "launcher.events"])
    .has(&[("rtmr3.replay", "passed")]);

    // After dstack's boot events (as the tdx-sysfs backend's log follows the agent's), it
    // verifies: JSON lines as written.
    let mut log: Vec<Value> = boot_events()
        .iter()
        .map(|(n, p)| runtime_entry(n, p))
        .collect();
    log.extend(own);
    let digests: Vec<[u8; 48]> = log.iter().map(v1).collect();
    let quote = fake_quote(&replay(&digests), b"");
    let quote_path = fx.path().join("quote.bin");
    fs::write(&quote_path, &quote).unwrap();
    let quote_path = quote_path.to_str().unwrap();
    let lines_text = log.iter().fold(String::new(), |mut out, e| {
        let _ = writeln!(out, "{e}");
        out
    });
    let lines_path = fx.write("boot-and-own.jsonl", &lines_text);
    let array_path = fx.write("events.json", &serde_json::to_string(&log).unwrap());
    for path in [lines_path, array_path] {
        let args = ["--quote", quote_path, "--event-log", path.to_str().unwrap()];
        let report = fixture_report(&fx, &[&args[..], &["--skip-dcap"], &expectations].concat());
        report.passes().has(&[
            ("rtmr3.replay", "passed"),
            ("event_log.digests", "passed"),
            ("boot.events", "passed"),
            ("launcher.events", "passed"),
            ("launch.1", "passed"),
        ]);
        assert_eq!(report.measurement("rtmr3"), hex(&replay(&digests)));
    }

    // A log line forged after the fact (a different commit, digest recomputed) fails.
    let mut forged = log.clone();
    let workload = format!("git:{}", "9".repeat(40));
    let at = position(&forged, WORKLOAD);
    forged[at]["event_payload"] = json!(hex(workload.as_bytes()));
    forged[at]["digest"] = json!(hex(&v1_digest(WORKLOAD, workload.as_bytes())));
    let forged_text = forged.iter().fold(String::new(), |mut out, e| {
        let _ = writeln!(out, "{e}");
        out
    });
    let forged_path = fx.write("forged.jsonl", &forged_text);
    fixture_report(
        &fx,
        &[
            "--quote",
            quote_path,
            "--event-log",
            forged_path.to_str().unwrap(),
            "--skip-dcap",
        ],
    )
    .fails(&["rtmr3.replay"]);
}
