//! Native measurement through the sysfs RTMR3 file (`tdx-sysfs`): the launcher's own log,
//! restarts in the same boot, and `auto` with no backend at all.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::fake_agent::{FakeAgent, FakeRtmr3, Mode, hex, replay, unhex, v1_digest};
use crate::common::{Fixture, Launcher};
use crate::{
    NAMES, common, emitted, failed_closed, json_post, no_rtmr3, own_log, plan, run_bounded, tee,
    tee_with_rtmr3, workload,
};

/// Waits (bounded) until the fake sysfs file has received `len` bytes.
fn wait_for_bytes(rtmr3: &FakeRtmr3, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rtmr3.received().len() < len && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // A little longer: nothing more may arrive.
    std::thread::sleep(Duration::from_millis(100));
    rtmr3.received()
}

/// What a verifier replays on a host whose agent cannot emit: the agent's RTMR3 entries,
/// then the launcher's own log. Checked against the register the kernel extended.
#[track_caller]
fn verifier_replay_matches(agent: &FakeAgent, fx: &Fixture) {
    let mut digests: Vec<[u8; 48]> = agent
        .all_events()
        .iter()
        .filter(|e| e.imr == 3)
        .map(|e| e.digest)
        .collect();
    for entry in own_log(fx) {
        let payload = unhex(entry["event_payload"].as_str().unwrap()).unwrap();
        let digest = v1_digest(entry["event"].as_str().unwrap(), &payload);
        assert_eq!(hex(&digest), entry["digest"], "{entry}");
        digests.push(digest);
    }
    assert_eq!(hex(&replay(&digests)), hex(&agent.rtmr3()));
}

/// (d) An agent without `EmitEvent` and no dstack runtime log: `auto` no longer falls back
/// to the sysfs file (the agent's log would not replay; see `tests/dstack_native.rs`) but
/// fails closed naming what it tried. `tdx-sysfs` chosen explicitly: the file receives
/// exactly the three digests in order, and the launcher's log holds the matching entries
/// (dstack's format plus `boot_id`), written before each extension. The fake file extends
/// the agent's register as the kernel would, so the agent's own log no longer replays to
/// its quote: the launcher must still recognise its restart in the same boot.
#[test]
fn explicit_tdx_sysfs_when_the_agent_has_no_emit_event() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    let (_, config) = workload(&fx, "native");
    let planned = plan(&fx, &config);
    let no_runtime_dir = fx.path().join("no-run-log-dstack");
    let run = run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--dstack-runtime-dir", no_runtime_dir.to_str().unwrap()])
            .arg(config.to_str().unwrap()),
    );
    failed_closed(&run, &agent, "no RTMR3 backend");
    run.stderr_has("Service not found: EmitEvent")
        .stderr_has(no_runtime_dir.to_str().unwrap())
        .stderr_has("tdx-sysfs is never chosen automatically");
    assert!(rtmr3.received().is_empty() && own_log(&fx).is_empty());

    run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--measurement-backend", "tdx-sysfs"])
            .arg(config.to_str().unwrap()),
    )
    .success()
    .stdout_has("RAN native");

    let expected: Vec<u8> = planned
        .iter()
        .flat_map(|p| unhex(&p.digest).unwrap())
        .collect();
    assert_eq!(hex(&wait_for_bytes(&rtmr3, 144)), hex(&expected));
    assert!(agent.events().is_empty(), "nothing recorded at the agent");
    assert_eq!(
        agent
            .requests()
            .iter()
            .filter(|r| r.method == "EmitEvent")
            .count(),
        1,
        "EmitEvent tried once by auto, never by tdx-sysfs: {:?}",
        agent.methods()
    );

    let log = own_log(&fx);
    assert_eq!(log.len(), 3, "{log:#?}");
    for (entry, planned) in log.iter().zip(&planned) {
        assert_eq!(entry["imr"], 3);
        assert_eq!(entry["event_type"], 134_217_729);
        assert_eq!(entry["event"], planned.event.as_str());
        assert_eq!(entry["event_payload"], planned.payload.as_str());
        assert_eq!(entry["digest"], planned.digest.as_str());
        assert!(
            entry["boot_id"].as_str().is_some_and(|b| !b.is_empty()),
            "{entry}"
        );
    }
    verifier_replay_matches(&agent, &fx);
    // Log first: whenever the launcher opened the register file to extend with digest k,
    // the log already held entry k.
    let opens = rtmr3.opens();
    assert!(!opens.is_empty());
    for open in &opens {
        assert!(
            open.log_lines > open.bytes_before / 48,
            "extended before logging: {opens:?}"
        );
    }

    // Same boot, same config (a container restart): the launcher's own log says it is done.
    let run = run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--measurement-backend", "tdx-sysfs"])
            .arg(config.to_str().unwrap()),
    );
    run.success()
        .stderr_has("already measured in this boot")
        .stdout_has("RAN native");
    assert_eq!(wait_for_bytes(&rtmr3, 144).len(), 144, "extended again");
    assert_eq!(own_log(&fx).len(), 3);
    verifier_replay_matches(&agent, &fx);
}

/// (d) continued: after a `tdx-sysfs` launch, a different workload in the same boot is
/// measured natively again and the launcher's log shows both launches.
#[test]
fn native_launch_of_a_different_workload_is_measured_again() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let rtmr3 = FakeRtmr3::start_linked(
        &fx.path().join("rtmr3:sha384"),
        agent.register(),
        &fx.event_log(),
    );
    let (_, first) = workload(&fx, "first");
    let first_plan = plan(&fx, &first);
    run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--measurement-backend", "tdx-sysfs"])
            .arg(first.to_str().unwrap()),
    )
    .success()
    .stdout_has("RAN first");
    wait_for_bytes(&rtmr3, 144);

    let (_, second) = workload(&fx, "second");
    let second_plan = plan(&fx, &second);
    run_bounded(
        tee_with_rtmr3(&fx, agent.endpoint(), rtmr3.path())
            .args(["--measurement-backend", "tdx-sysfs"])
            .arg(second.to_str().unwrap()),
    )
    .success()
    .stderr_lacks("already measured")
    .stdout_has("RAN second");
    let expected: Vec<u8> = first_plan
        .iter()
        .chain(&second_plan)
        .flat_map(|p| unhex(&p.digest).unwrap())
        .collect();
    assert_eq!(hex(&wait_for_bytes(&rtmr3, 288)), hex(&expected));
    let names: Vec<String> = own_log(&fx)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, [NAMES, NAMES].concat());
    verifier_replay_matches(&agent, &fx);
}

/// A launch that stopped after `config` and `workload` (a crash before `ready`), restarted
/// in the same boot: only `ready` is measured, so the log holds the launch once.
#[test]
fn restart_after_a_partial_launch_measures_only_the_rest() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let (_, config) = workload(&fx, "resumed");
    let planned = plan(&fx, &config);
    for event in &planned[..2] {
        let (status, _) = json_post(
            agent.socket_path(),
            "EmitEvent",
            &serde_json::json!({"event": event.event, "payload": event.payload}).to_string(),
        );
        assert_eq!(status, 200);
    }
    let before = agent.requests().len();
    tee(&fx, agent.endpoint())
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stderr_has("already measured in this boot")
        .stdout_has("RAN resumed");
    assert_eq!(emitted(&agent), planned);
    assert!(agent.replay_ok());
    let emits: Vec<serde_json::Value> = agent.requests()[before..]
        .iter()
        .filter(|r| r.method == "EmitEvent")
        .map(common::fake_agent::Request::json)
        .collect();
    assert_eq!(
        emits,
        [serde_json::json!({"event": NAMES[2], "payload": ""})]
    );
}

/// `tdx-sysfs` chosen explicitly: no agent is asked; the file gets the three digests and
/// the launcher's log the entries. A missing file fails closed.
#[test]
fn explicit_tdx_sysfs_backend() {
    let fx = Fixture::new();
    let rtmr3 = FakeRtmr3::start(&fx.path().join("rtmr3:sha384"));
    let (_, config) = workload(&fx, "sysfs");
    let planned = plan(&fx, &config);
    let sysfs = |path: &Path| {
        let mut launcher = Launcher::new(fx.path());
        launcher
            .args(["--platform", "tee", "--measurement-backend", "tdx-sysfs"])
            .args(["--rtmr3-path", path.to_str().unwrap()])
            .args(["--event-log", fx.event_log().to_str().unwrap()])
            .arg(config.to_str().unwrap());
        launcher
    };
    let run = run_bounded(&sysfs(&no_rtmr3(&fx)));
    run.fails(1, no_rtmr3(&fx).to_str().unwrap());
    assert!(!run.stdout.contains("RAN "));
    assert!(own_log(&fx).is_empty());

    run_bounded(&sysfs(rtmr3.path()))
        .success()
        .stdout_has("RAN sysfs");
    let expected: Vec<u8> = planned
        .iter()
        .flat_map(|p| unhex(&p.digest).unwrap())
        .collect();
    assert_eq!(hex(&wait_for_bytes(&rtmr3, 144)), hex(&expected));
    let logged: Vec<(String, String)> = own_log(&fx)
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["event_payload"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let wanted: Vec<(String, String)> = planned
        .iter()
        .map(|p| (p.event.clone(), p.payload.clone()))
        .collect();
    assert_eq!(logged, wanted);
}

/// (e) No `EmitEvent` and no sysfs file: fail closed, naming what was tried.
#[test]
fn auto_without_any_backend_fails_closed() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::NoEmitEvent);
    let (_, config) = workload(&fx, "never");
    let run = run_bounded(tee(&fx, agent.endpoint()).arg(config.to_str().unwrap()));
    failed_closed(&run, &agent, "no RTMR3 backend");
    run.stderr_has("Service not found: EmitEvent");
    run.stderr_has(no_rtmr3(&fx).to_str().unwrap());
    assert!(own_log(&fx).is_empty());
}
