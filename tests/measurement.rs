//! TEE measurement (issue 3): the real binary against a fake dstack guest agent and a fake
//! sysfs RTMR3 file. Events and payloads as `plan --json` prints them, RTMR3 replayable
//! from the agent's log, once per boot, explicit tdx-sysfs, and every failure closed.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_agent::{
    self, FakeAgent, FakeRtmr3, Mode, QUOTE_LEN, QUOTE_REPORT_DATA, QUOTE_RTMR3, SIMULATOR_ERROR,
    hex, replay, replay_json_log, unhex, v1_digest,
};
use common::{Fixture, Item, Launcher, Run, entry};

const NAMES: [&str; 3] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.ready",
];

/// A failing run must end well inside this, whatever the agent does.
const FAIL_LIMIT: Duration = Duration::from_secs(60);

/// One event as `plan --json` prints it.
#[derive(Debug, PartialEq, Eq)]
struct Planned {
    event: String,
    payload: String,
    digest: String,
}

/// A workload whose entry script prints `RAN <marker>`; returns its commit and config.
fn workload(fx: &Fixture, marker: &str) -> (String, PathBuf) {
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry(marker))]);
    let config = fx.line_config(&sha, "");
    (sha, config)
}

/// The events `run` would measure, from `plan --json`.
fn plan(fx: &Fixture, config: &Path) -> Vec<Planned> {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let events: Vec<Planned> = plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Planned {
            event: e["event"].as_str().unwrap().to_owned(),
            payload: e["event_payload"].as_str().unwrap().to_owned(),
            digest: e["digest"].as_str().unwrap().to_owned(),
        })
        .collect();
    assert_eq!(
        events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
        NAMES
    );
    events
}

/// The launcher in tee mode, finding the agent through `DSTACK_SIMULATOR_ENDPOINT`, with a
/// sysfs path that does not exist unless the test made it (hermetic on a real TDX host).
fn tee(fx: &Fixture, endpoint: &str) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(no_rtmr3(fx).to_str().unwrap());
    launcher
}

/// Like [`tee`], with the sysfs RTMR3 file at `rtmr3`.
fn tee_with_rtmr3(fx: &Fixture, endpoint: &str, rtmr3: &Path) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", endpoint)
        .args(["--platform", "tee", "--event-log"])
        .arg(fx.event_log().to_str().unwrap())
        .arg("--rtmr3-path")
        .arg(rtmr3.to_str().unwrap());
    launcher
}

fn no_rtmr3(fx: &Fixture) -> PathBuf {
    fx.path().join("no-such-rtmr3:sha384")
}

/// Runs and checks the run ended within [`FAIL_LIMIT`].
fn run_bounded(launcher: &Launcher) -> Run {
    let start = Instant::now();
    let run = launcher.run();
    let took = start.elapsed();
    assert!(
        took < FAIL_LIMIT,
        "run took {took:?}\nstderr:\n{}",
        run.stderr
    );
    run
}

/// The agent's emitted events as (name, payload hex, digest hex), comparable with the plan.
fn emitted(agent: &FakeAgent) -> Vec<Planned> {
    agent
        .events()
        .iter()
        .map(|e| Planned {
            event: e.event.clone(),
            payload: e.payload_hex(),
            digest: e.digest_hex(),
        })
        .collect()
}

/// A failure that started nothing: exit 1, `needle` on an error line, no workload output,
/// no `ready` event at the agent, and a short, readable message.
#[track_caller]
fn failed_closed(run: &Run, agent: &FakeAgent, needle: &str) {
    run.fails(1, needle);
    assert!(
        !run.stdout.contains("RAN "),
        "workload ran:\n{}",
        run.stdout
    );
    assert!(
        !agent.events().iter().any(|e| e.event == NAMES[2]),
        "ready measured after a failure: {:?}",
        agent.events()
    );
    assert!(agent.replay_ok());
    assert!(
        run.stderr.len() < 4096 && run.stderr.lines().all(|l| l.len() < 1024),
        "error output is not short:\n{}",
        &run.stderr[..run.stderr.len().min(4096)]
    );
}

// --- the fake itself -------------------------------------------------------------------

/// POSTs raw HTTP/1.1 to a unix-socket fake; returns the status code, headers and body.
fn raw_post(
    socket: &Path,
    method: &str,
    body: &str,
    content_type: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let content_type = content_type
        .map(|t| format!("Content-Type: {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST /{method} HTTP/1.1\r\nHost: dstack\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(reply[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = reply[end + 4..].to_vec();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(length, body.len(), "{head}");
    (status, head, body)
}

fn json_post(socket: &Path, method: &str, body: &str) -> (u16, serde_json::Value) {
    let (status, head, body) = raw_post(socket, method, body, Some("application/json"));
    assert!(head.contains("Content-Type: application/json"), "{head}");
    (status, serde_json::from_slice(&body).unwrap())
}

/// Checks one `GetQuote` answer against the fake's register: quote layout, RTMR3 at byte
/// 520 equal to the register and to the replay of the returned log, report data at 568.
fn check_quote(agent: &FakeAgent, report_data: &[u8]) -> Vec<serde_json::Value> {
    let (status, reply) = json_post(
        agent.socket_path(),
        "GetQuote",
        &format!(r#"{{"report_data":"{}"}}"#, hex(report_data)),
    );
    assert_eq!(status, 200, "{reply}");
    let quote = unhex(reply["quote"].as_str().unwrap()).unwrap();
    assert_eq!(quote.len(), QUOTE_LEN);
    assert_eq!(quote[0..8], [4, 0, 2, 0, 0x81, 0, 0, 0]);
    assert_eq!(quote[632..636], [0, 0, 0, 0]);
    assert_eq!(quote[520..568], agent.rtmr3());
    assert_eq!(QUOTE_RTMR3, 520);
    assert_eq!(QUOTE_REPORT_DATA, 568);
    let mut padded = report_data.to_vec();
    padded.resize(64, 0);
    assert_eq!(quote[568..632], padded);
    assert_eq!(reply["report_data"], hex(&padded));
    let log: Vec<serde_json::Value> =
        serde_json::from_str(reply["event_log"].as_str().unwrap()).unwrap();
    assert_eq!(replay_json_log(&log), agent.rtmr3());
    assert!(agent.replay_ok());
    log
}

#[test]
fn fake_agent_keeps_rtmr3_by_replay_and_quotes_it_at_the_right_offsets() {
    for mode in [Mode::Normal, Mode::Stripped] {
        let dir = tempfile::tempdir().unwrap();
        let agent = FakeAgent::start(dir.path(), mode);
        assert_eq!(
            json_post(agent.socket_path(), "Version", "{}"),
            (200, serde_json::json!({"version": "0.5.11", "rev": "fake"}))
        );

        let boot = check_quote(&agent, b"nonce");
        let names: Vec<&str> = boot
            .iter()
            .filter(|e| e["imr"] == 3)
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(names.first(), Some(&"system-preparing"));
        assert_eq!(names.last(), Some(&"system-ready"));
        assert!(
            boot.iter().any(|e| e["imr"] != 3),
            "RTMR0-2 entries present"
        );
        for entry in &boot {
            let stripped = mode == Mode::Stripped;
            if entry["imr"] == 3 {
                assert_eq!(entry["digest"] == "", stripped, "{entry}");
                assert_eq!(entry["event_type"], 134_217_729);
            } else {
                assert_eq!(entry["event_payload"] == "", stripped, "{entry}");
                assert_ne!(entry["digest"], "");
            }
        }

        let before = agent.rtmr3();
        let (status, reply) = json_post(
            agent.socket_path(),
            "EmitEvent",
            r#"{"event":"probe","payload":"00ff"}"#,
        );
        assert_eq!((status, reply), (200, serde_json::Value::Null));
        let digest = v1_digest("probe", &[0x00, 0xff]);
        assert_eq!(agent.rtmr3(), fake_agent::extend(&before, &digest));
        assert_eq!(agent.events().len(), 1);
        assert_eq!(agent.events()[0].digest, digest);
        let log = check_quote(&agent, &[0xab; 64]);
        assert_eq!(log.last().unwrap()["event"], "probe");

        let (status, info) = json_post(agent.socket_path(), "Info", "{}");
        assert_eq!(status, 200);
        let tcb: serde_json::Value =
            serde_json::from_str(info["tcb_info"].as_str().unwrap()).unwrap();
        assert_eq!(tcb["rtmr3"], hex(&agent.rtmr3()));
        let full = tcb["event_log"].as_array().unwrap();
        assert!(
            full.iter().all(|e| e["digest"] != ""),
            "Info is never stripped"
        );
        assert_eq!(replay_json_log(full), agent.rtmr3());

        for (method, body, message) in [
            ("Nope", "{}", "Service not found: Nope"),
            (
                "GetQuote",
                &format!(r#"{{"report_data":"{}"}}"#, "00".repeat(65)),
                "report_data must be at most 64 bytes",
            ),
            ("GetQuote", r#"{"report_data":"zz"}"#, "not hex"),
            ("EmitEvent", r#"{"event":"x","payload":"abc"}"#, "not hex"),
        ] {
            let (status, reply) = json_post(agent.socket_path(), method, body);
            assert_eq!(status, 400, "{method} {body}");
            assert!(
                reply["error"].as_str().unwrap().contains(message),
                "{reply}"
            );
        }
        assert_eq!(agent.events().len(), 1, "rejected calls record nothing");
        let requests = agent.requests();
        assert_eq!(requests[0].method, "Version");
        assert_eq!(requests[0].header("host"), Some("dstack"));
        assert_eq!(requests[0].json(), serde_json::json!({}));
    }
}

#[test]
fn fake_agent_modes_answer_as_specified() {
    let dir = tempfile::tempdir().unwrap();
    let emit = r#"{"event":"e","payload":""}"#;
    for (mode, message) in [
        (Mode::NoEmitEvent, "Service not found: EmitEvent"),
        (Mode::Simulator, SIMULATOR_ERROR),
    ] {
        let agent = FakeAgent::start(dir.path(), mode);
        let (status, reply) = json_post(agent.socket_path(), "EmitEvent", emit);
        assert_eq!(
            (status, reply),
            (400, serde_json::json!({ "error": message }))
        );
        assert!(agent.events().is_empty());
    }
    let agent = FakeAgent::start(dir.path(), Mode::DropsEvents);
    let before = agent.rtmr3();
    assert_eq!(
        json_post(agent.socket_path(), "EmitEvent", emit),
        (200, serde_json::Value::Null)
    );
    assert!(agent.events().is_empty());
    assert_eq!(agent.rtmr3(), before);
    drop(agent);

    let agent = FakeAgent::start(dir.path(), Mode::Garbage);
    let (status, _, body) = raw_post(
        agent.socket_path(),
        "Version",
        "{}",
        Some("application/json"),
    );
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    drop(agent);

    let agent = FakeAgent::start(dir.path(), Mode::Protobuf);
    let (_, head, _) = raw_post(agent.socket_path(), "Version", "{}", None);
    assert!(
        head.contains("Content-Type: application/protobuf"),
        "{head}"
    );
    let (_, head, _) = raw_post(
        agent.socket_path(),
        "Version",
        "{}",
        Some("application/json"),
    );
    assert!(head.contains("Content-Type: application/json"), "{head}");
    drop(agent);
    let agent = FakeAgent::start(dir.path(), Mode::AlwaysProtobuf);
    let (_, head, _) = raw_post(
        agent.socket_path(),
        "Version",
        "{}",
        Some("application/json"),
    );
    assert!(
        head.contains("Content-Type: application/protobuf"),
        "{head}"
    );
    drop(agent);

    // Oversized: the declared length is 64 MiB; hanging up early must not stall the fake.
    let agent = FakeAgent::start(dir.path(), Mode::Oversized);
    let mut stream = UnixStream::connect(agent.socket_path()).unwrap();
    stream
        .write_all(b"POST /Version HTTP/1.1\r\nHost: dstack\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut head = [0u8; 256];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(head.contains("Content-Length: 67108864"), "{head}");
    drop(stream);
    let (status, reply) = json_post(agent.socket_path(), "Version", "{}");
    assert_eq!(
        (status, &reply["version"]),
        (200, &serde_json::json!("0.5.11"))
    );

    drop(agent);

    // Silent: no answer, and dropping the fake does not hang.
    let agent = FakeAgent::start(dir.path(), Mode::Silent);
    let mut stream = UnixStream::connect(agent.socket_path()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream
        .write_all(b"POST /Version HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert!(stream.read(&mut [0u8; 16]).is_err(), "silent fake answered");
    let start = Instant::now();
    drop(agent);
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// The fake's digest and replay against real data: NEAR's published attestation.
#[test]
fn fake_agent_digest_reproduces_real_dstack_data() {
    let text = std::fs::read_to_string("tests/fixtures/near-mpc_public_data.json").unwrap();
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tcb = &data["tee_participant_info"]["Dstack"]["tcb_info"];
    let mut log = tcb["event_log"].as_array().unwrap().clone();
    assert_eq!(hex(&replay_json_log(&log)), tcb["rtmr3"]);
    // Stripped, as a 0.5.6+ GetQuote returns it: recomputed digests replay the same.
    for entry in &mut log {
        if entry["imr"] == 3 {
            entry["digest"] = "".into();
        }
    }
    assert_eq!(hex(&replay_json_log(&log)), tcb["rtmr3"]);
    let image = unhex("564a5aebc33495d5610626d23cb9e3da8e9d531d0edff9e38aa1ccaf059c15d3").unwrap();
    assert_eq!(
        hex(&v1_digest("mpc-image-digest", &image)),
        "0405a5706797115cdcccb66841205179fa5c2d989ad42fee2e2fab4c5b52bb6d9aa9bf8a86755d37e8566fdaabebc468"
    );
}

#[test]
fn fake_rtmr3_records_every_write_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = FakeRtmr3::start(&dir.path().join("rtmr3:sha384"));
    for byte in [1u8, 2, 3] {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(fifo.path())
            .unwrap();
        file.write_all(&[byte; 48]).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while fifo.received().len() < 144 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let expected: Vec<u8> = [[1u8; 48], [2; 48], [3; 48]].concat();
    assert_eq!(fifo.received(), expected);
    let start = Instant::now();
    drop(fifo);
    assert!(start.elapsed() < Duration::from_secs(2));
}

// --- the launcher against the fake ------------------------------------------------------

/// (a) Three events, payloads and digests exactly as `plan --json`, one `EmitEvent` each, in
/// order; the agent's RTMR3 equals the replay of its log; the workload ran afterwards.
#[test]
fn dstack_measures_the_planned_events_then_execs() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let (_, config) = workload(&fx, "measured");
    let planned = plan(&fx, &config);
    let run = tee(&fx, agent.endpoint())
        .arg(config.to_str().unwrap())
        .run();
    run.success().stdout_has("RAN measured");
    assert_eq!(emitted(&agent), planned);
    assert!(agent.replay_ok());
    let digests: Vec<[u8; 48]> = agent
        .all_events()
        .iter()
        .filter(|e| e.imr == 3)
        .map(|e| e.digest)
        .collect();
    assert_eq!(replay(&digests), agent.rtmr3());

    let requests = agent.requests();
    for request in &requests {
        assert_eq!(request.verb, "POST", "{request:?}");
        assert_eq!(request.version, "HTTP/1.1", "{request:?}");
        assert_eq!(request.header("host"), Some("dstack"), "{request:?}");
        assert_eq!(
            request.header("content-type"),
            Some("application/json"),
            "{request:?}"
        );
    }
    let emits: Vec<serde_json::Value> = requests
        .iter()
        .filter(|r| r.method == "EmitEvent")
        .map(common::fake_agent::Request::json)
        .collect();
    let expected: Vec<serde_json::Value> = planned
        .iter()
        .map(|p| serde_json::json!({"event": p.event, "payload": p.payload}))
        .collect();
    assert_eq!(emits, expected);
    assert!(
        requests.iter().any(|r| r.method == "GetQuote"),
        "the launcher must check the quote: {:?}",
        agent.methods()
    );
    // Measurement is complete before the launcher checks it: the last EmitEvent is the ready
    // event, and a GetQuote follows it.
    let last_emit = requests
        .iter()
        .rposition(|r| r.method == "EmitEvent")
        .unwrap();
    assert!(requests[last_emit..].iter().any(|r| r.method == "GetQuote"));
}

/// (b, l) An agent that strips RTMR3 digests from `GetQuote`'s log (0.5.6+), and the
/// simulator's TCP form of `DSTACK_SIMULATOR_ENDPOINT`, work the same.
#[test]
fn dstack_variants_measure_the_planned_events() {
    let fx = Fixture::new();
    let tcp = FakeAgent::start_tcp(Mode::Normal);
    assert!(tcp.endpoint().starts_with("http://127.0.0.1:"));
    let stripped_dir = fx.path().join("stripped");
    std::fs::create_dir_all(&stripped_dir).unwrap();
    let stripped = FakeAgent::start(&stripped_dir, Mode::Stripped);
    for (name, agent) in [("stripped", &stripped), ("tcp", &tcp)] {
        let (_, config) = workload(&fx, name);
        let planned = plan(&fx, &config);
        tee(&fx, agent.endpoint())
            .arg(config.to_str().unwrap())
            .run()
            .success()
            .stdout_has(&format!("RAN {name}"));
        assert_eq!(emitted(agent), planned, "{name}");
        assert!(agent.replay_ok(), "{name}");
    }
}

/// (c) Once per boot: the same config again adds nothing; a different commit adds three
/// events and the log shows both launches.
#[test]
fn dstack_measures_once_per_boot_and_again_for_a_different_workload() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let (first_sha, first) = workload(&fx, "first");
    let first_plan = plan(&fx, &first);
    tee(&fx, agent.endpoint())
        .arg(first.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN first");
    let after_first = agent.rtmr3();

    tee(&fx, agent.endpoint())
        .arg(first.to_str().unwrap())
        .run()
        .success()
        .stderr_has("already measured in this boot")
        .stdout_has("RAN first");
    assert_eq!(emitted(&agent), first_plan);
    assert_eq!(agent.rtmr3(), after_first);
    assert_eq!(
        agent
            .requests()
            .iter()
            .filter(|r| r.method == "EmitEvent")
            .count(),
        3,
        "the re-run emitted something"
    );

    let (second_sha, second) = workload(&fx, "second");
    assert_ne!(first_sha, second_sha);
    let second_plan = plan(&fx, &second);
    tee(&fx, agent.endpoint())
        .arg(second.to_str().unwrap())
        .run()
        .success()
        .stderr_lacks("already measured")
        .stdout_has("RAN second");
    let both: Vec<Planned> = first_plan.into_iter().chain(second_plan).collect();
    assert_eq!(emitted(&agent), both);
    assert!(agent.replay_ok());
    let workloads: Vec<String> = agent
        .events()
        .iter()
        .filter(|e| e.event == NAMES[1])
        .map(|e| String::from_utf8(e.payload.clone()).unwrap())
        .collect();
    assert_eq!(
        workloads,
        [format!("git:{first_sha}"), format!("git:{second_sha}")]
    );
}

/// Reads the launcher's own JSON-lines log.
fn own_log(fx: &Fixture) -> Vec<serde_json::Value> {
    fx.events()
}

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
