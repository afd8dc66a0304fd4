//! The launcher against the fake agent: the planned events measured through `EmitEvent`
//! then exec, the agent's variants, and once per boot.

use crate::common::Fixture;
use crate::common::fake_agent::{FakeAgent, Mode, replay};
use crate::{NAMES, Planned, common, emitted, plan, tee, workload};

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
