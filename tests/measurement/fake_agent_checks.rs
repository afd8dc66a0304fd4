//! The fake dstack agent itself: RTMR3 by replay, quote offsets, its modes, real dstack
//! data reproduced, and the fake sysfs RTMR3 file.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::common::fake_agent::{
    self, FakeAgent, FakeRtmr3, Mode, QUOTE_LEN, QUOTE_REPORT_DATA, QUOTE_RTMR3, SIMULATOR_ERROR,
    hex, replay_json_log, unhex, v1_digest,
};
use crate::{json_post, raw_post};

// --- the fake itself -------------------------------------------------------------------

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
