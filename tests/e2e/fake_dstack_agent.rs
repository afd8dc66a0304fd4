//! The tests' fake dstack guest agent (`tests/common/fake_agent/`, exact dstack wire
//! format, RTMR3 kept by replay) as a standalone server for the end-to-end tier, so the
//! launcher can run in a container in tee mode with `/var/run/dstack.sock` mounted, the way
//! dstack runs it. Not part of the launcher: a cargo example, built only for the tests.
//!
//!   fake-dstack-agent DIR [SECONDS]
//!
//! Serves `DIR/dstack.sock` (normal 0.5.x agent) until SECONDS pass (default 600) or
//! `DIR/stop` appears. After every change it rewrites `DIR/agent-state.json`:
//! `{"events":[{"event","payload","digest"}...], "rtmr3": hex, "replay_ok": bool,
//! "methods": [...]}` (events: the runtime ones, emitted after dstack's boot events).

// Test support: a failed unwrap ends the fake, and the test with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code)]

#[path = "../common/fake_agent/mod.rs"]
mod fake_agent;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_agent::{FakeAgent, Mode, hex};

fn state(agent: &FakeAgent) -> serde_json::Value {
    let events: Vec<serde_json::Value> = agent
        .events()
        .iter()
        .map(|e| {
            serde_json::json!({
                "event": e.event,
                "payload": e.payload_hex(),
                "digest": e.digest_hex(),
            })
        })
        .collect();
    serde_json::json!({
        "events": events,
        "rtmr3": hex(&agent.rtmr3()),
        "replay_ok": agent.replay_ok(),
        "methods": agent.methods(),
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fake-dstack-agent DIR [SECONDS]");
        std::process::exit(2);
    };
    let seconds: u64 = args.next().map_or(600, |s| s.parse().expect("SECONDS"));
    let agent = FakeAgent::start(&dir, Mode::Normal);
    let state_path = dir.join("agent-state.json");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut written = String::new();
    println!("fake dstack agent on {}", agent.socket_path().display());
    while Instant::now() < deadline && !dir.join("stop").exists() {
        let now = state(&agent).to_string();
        if now != written {
            let tmp = dir.join("agent-state.json.tmp");
            std::fs::write(&tmp, &now).unwrap();
            std::fs::rename(&tmp, &state_path).unwrap();
            written = now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
