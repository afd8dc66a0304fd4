//! Every failure closed: refusals, dropped events, malformed or silent agents, a missing
//! socket, backend and platform mismatches, unexplained extensions, forged own logs; and
//! the backend named in the config.

use crate::common::fake_agent::{FakeAgent, FakeRtmr3, Mode, SIMULATOR_ERROR};
use crate::common::{Fixture, Item, Launcher, entry};
use crate::{emitted, failed_closed, own_log, plan, run_bounded, tee, tee_with_rtmr3, workload};

/// (f) The simulator refuses `EmitEvent`: its own words reach the user.
#[test]
fn simulator_refusal_is_surfaced() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Simulator);
    let (_, config) = workload(&fx, "never");
    let run = run_bounded(tee(&fx, agent.endpoint()).arg(config.to_str().unwrap()));
    failed_closed(&run, &agent, SIMULATOR_ERROR);
}

/// (g) An agent that answers `EmitEvent` but records nothing: the quote's log lacks the
/// event, so the launcher stops.
#[test]
fn agent_that_drops_events_is_caught_by_the_quote() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::DropsEvents);
    let (_, config) = workload(&fx, "never");
    let run = run_bounded(tee(&fx, agent.endpoint()).arg(config.to_str().unwrap()));
    failed_closed(&run, &agent, "trusted-launcher.config");
    run.stderr_has("not recording events");
    assert!(agent.methods().iter().any(|m| m == "GetQuote"));
    assert_eq!(
        agent
            .requests()
            .iter()
            .filter(|r| r.method == "EmitEvent")
            .count(),
        1,
        "continued after the first unrecorded event: {:?}\n{}",
        agent.methods(),
        run.stderr
    );
}

/// (h) Replies that are not the agent's JSON: not JSON, larger than any cap, protobuf.
#[test]
fn malformed_agent_replies_fail_closed_with_one_clear_error() {
    for (mode, needle) in [
        (Mode::Garbage, "GetQuote reply is malformed"),
        (Mode::Oversized, "larger than"),
        (Mode::AlwaysProtobuf, "application/protobuf"),
    ] {
        let fx = Fixture::new();
        let agent = FakeAgent::start(fx.path(), mode);
        let (_, config) = workload(&fx, "never");
        let run = run_bounded(tee(&fx, agent.endpoint()).arg(config.to_str().unwrap()));
        failed_closed(&run, &agent, needle);
        assert!(!agent.requests().is_empty(), "{mode:?}: agent never asked");
    }
}

/// A protobuf-on-missing-content-type agent is fine: the launcher always sends JSON.
#[test]
fn content_type_sensitive_agent_gets_json() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Protobuf);
    let (_, config) = workload(&fx, "json");
    let planned = plan(&fx, &config);
    tee(&fx, agent.endpoint())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN json");
    assert_eq!(emitted(&agent), planned);
}

/// (i) An agent that never answers: the client's timeout ends the run, well within a minute.
#[test]
fn silent_agent_times_out() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Silent);
    let (_, config) = workload(&fx, "never");
    let run = run_bounded(tee(&fx, agent.endpoint()).arg(config.to_str().unwrap()));
    failed_closed(&run, &agent, agent.endpoint());
    assert!(!agent.requests().is_empty());
}

/// (j) `dstack` chosen explicitly, socket missing: exit 1 naming the path; nothing run.
#[test]
fn explicit_dstack_backend_without_a_socket_names_the_path() {
    let fx = Fixture::new();
    let (_, config) = workload(&fx, "never");
    let missing = fx.path().join("nowhere/dstack.sock");
    let run = run_bounded(
        Launcher::new(fx.path())
            .args(["--platform", "tee", "--measurement-backend", "dstack"])
            .arg("--dstack-socket")
            .arg(missing.to_str().unwrap())
            .arg("--event-log")
            .arg(fx.event_log().to_str().unwrap())
            .arg(config.to_str().unwrap()),
    );
    run.fails(1, missing.to_str().unwrap());
    assert!(!run.stdout.contains("RAN never"));
    assert!(
        !fx.work_dir().exists(),
        "failed after touching the work dir"
    );
}

/// The config file can name the backend and socket too (line keys).
#[test]
fn config_names_backend_and_socket() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("configured"))]);
    let config = fx.line_config(
        &sha,
        &format!(
            "MEASUREMENT_BACKEND=dstack\nDSTACK_SOCKET={}\n",
            agent.socket_path().display()
        ),
    );
    let planned = plan(&fx, &config);
    Launcher::new(fx.path())
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN configured");
    assert_eq!(emitted(&agent), planned);
}

/// (k) Combinations that would measure nothing into RTMR3, or RTMR3 outside a TEE.
#[test]
fn backend_and_platform_mismatches_are_usage_errors() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let (_, config) = workload(&fx, "never");
    let run = tee(&fx, agent.endpoint())
        .args(["--measurement-backend", "local"])
        .arg(config.to_str().unwrap())
        .run();
    run.fails(2, "measures nothing into RTMR3");
    assert!(!run.stdout.contains("RAN never"));

    let line = fx.line_config(
        &fx.commit(&[Item::File("entrypoint.sh", &entry("never"))]),
        "MEASUREMENT_BACKEND=local\n",
    );
    tee(&fx, agent.endpoint())
        .arg(line.to_str().unwrap())
        .run()
        .fails(2, "measures nothing into RTMR3");

    let run = fx
        .launcher()
        .args(["--measurement-backend", "dstack"])
        .arg(config.to_str().unwrap())
        .run();
    run.fails(2, "nontee");
    assert!(!run.stdout.contains("RAN never"));
    assert!(agent.requests().is_empty(), "{:?}", agent.methods());
    assert!(fx.events().is_empty());
}

/// An RTMR3 extension the agent's log does not explain (something else wrote the
/// register): `auto` refuses to launch rather than guess.
#[test]
fn unexplained_rtmr3_extension_stops_the_launch() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    agent.register().extend_natively(&[7u8; 48]);
    let (_, config) = workload(&fx, "foreign");
    run_bounded(tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path()).arg(config.to_str().unwrap()))
        .fails(1, "dstack agent's event log replays to RTMR3")
        .stderr_has("but its quote says")
        .stderr_lacks("RAN foreign");
    assert!(own_log(&fx).is_empty(), "nothing measured");
}

/// A forged own log claiming this launch was already measured: with an agent present, the
/// quote shows the register lacks those extensions, and the launch stops instead of
/// skipping the measurement.
#[test]
fn forged_own_log_cannot_skip_native_measurement() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    let (_, config) = workload(&fx, "forged");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let forged: Vec<String> = plan(&fx, &config)
        .iter()
        .map(|p| {
            serde_json::json!({
                "imr": 3,
                "event_type": 134_217_729,
                "digest": p.digest,
                "event": p.event,
                "event_payload": p.payload,
                "boot_id": boot_id.trim(),
            })
            .to_string()
        })
        .collect();
    let forged = forged.join("\n") + "\n";
    std::fs::write(fx.event_log(), forged).unwrap();
    run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--measurement-backend", "tdx-sysfs"])
            .arg(config.to_str().unwrap()),
    )
    .fails(
        1,
        "is not the replay of the agent's log followed by this boot's entries",
    )
    .stderr_lacks("already measured");
    // `auto` never reads the launcher's own log: the agent's log shows nothing measured, and
    // with no way to measure here it stops.
    let no_runtime_dir = fx.path().join("no-run-log-dstack");
    run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--dstack-runtime-dir", no_runtime_dir.to_str().unwrap()])
            .arg(config.to_str().unwrap()),
    )
    .fails(1, "no RTMR3 backend")
    .stderr_lacks("already measured");
}
