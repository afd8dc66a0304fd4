//! Tee mode cannot be weakened from outside the attested config (issue 10, classes 1 and 3).
//!
//! The launcher runs in a private mount namespace (`unshare -m`, as root) whose `/run`,
//! `/dev`, `/sys/...` and `/proc/cpuinfo` the test shapes, so the real default paths are
//! exercised on a machine without TDX: an agent at dstack's default socket, and each of the
//! kernel's signs of a TDX guest. Tests that need namespaces say so and skip when not root.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use common::fake_agent::{FakeAgent, FakeRtmr3, Mode, hex, v1_digest};
use common::{Fixture, Item, Launcher, entry};

const NAMES: [&str; 3] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.ready",
];

/// Namespaces need root (CI runs as root); elsewhere these tests say why they did nothing.
fn root() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    if uid != "0" {
        eprintln!("skipped: needs root for a private mount namespace");
    }
    uid == "0"
}

/// What the namespace shows the launcher.
#[derive(Clone, Copy, Debug)]
enum View {
    /// dstack's agent at its first default socket, `/var/run/dstack.sock` (DESIGN §3).
    AgentAtDefaultSocket,
    /// `/dev/tdx_guest`, the TDX guest driver's device.
    DevTdxGuest,
    /// `/sys/class/misc/tdx_guest`, the same driver's misc device in sysfs.
    SysfsMisc,
    /// `/sys/kernel/config/tsm/report`, the configfs TSM report interface.
    TsmReport,
    /// `/proc/cpuinfo` with the `tdx_guest` CPU flag, as a TDX guest kernel lists it.
    CpuFlag,
}

/// `unshare -m sh -c SETUP`: a private mount namespace shaped as `view`, then the launcher.
/// `/run` is always a fresh tmpfs, so the host's own `/run` cannot leak in.
fn in_namespace(launcher: &mut Launcher, fx: &Fixture, view: View, agent: Option<&Path>) {
    let scratch = fx.path().join(format!("ns-{view:?}"));
    std::fs::create_dir_all(&scratch).unwrap();
    let s = scratch.display();
    let link = agent.map_or_else(String::new, |socket| {
        format!("ln -s {} /run/dstack.sock\n", socket.display())
    });
    let shape = match view {
        View::AgentAtDefaultSocket => String::new(),
        // /dev becomes a tmpfs holding only null (bound from the real one) and the device.
        View::DevTdxGuest => format!(
            "touch {s}/null\nmount --bind /dev/null {s}/null\nmount -t tmpfs tl-dev /dev\n\
             touch /dev/null /dev/tdx_guest\nmount --bind {s}/null /dev/null\n"
        ),
        View::SysfsMisc => {
            "mount -t tmpfs tl-misc /sys/class/misc\nmkdir /sys/class/misc/tdx_guest\n".into()
        }
        // This host has no configfs mount point, so a tmpfs over /sys/kernel makes one.
        View::TsmReport => {
            "mount -t tmpfs tl-kernel /sys/kernel\nmkdir -p /sys/kernel/config/tsm/report\n".into()
        }
        View::CpuFlag => format!(
            "printf 'processor\\t: 0\\nflags\\t\\t: fpu vme tdx_guest x2apic\\n' > {s}/cpuinfo\n\
             mount --bind {s}/cpuinfo /proc/cpuinfo\n"
        ),
    };
    let setup = format!("set -e\nmount -t tmpfs tl-run /run\n{link}{shape}exec \"$@\"\n");
    launcher.wrapped(["unshare", "-m", "sh", "-c", &setup, "sh"]);
}

/// A committed workload whose entry prints `RAN <marker>`, and its line config.
fn workload(fx: &Fixture, name: &str, marker: &str) -> std::path::PathBuf {
    let sha = fx.commit_on(name, &[Item::File("entrypoint.sh", &entry(marker))]);
    let text = format!(
        "REPO_URL={}\nCOMMIT_SHA={sha}\nWORK_DIR={}\n",
        fx.url(),
        fx.path().join(format!("work-{name}")).display()
    );
    fx.write(&format!("{name}.conf"), &text)
}

/// The launcher with this fixture's event log and an RTMR3 path that does not exist.
fn launcher(fx: &Fixture) -> Launcher {
    let mut launcher = Launcher::new(fx.path());
    launcher
        .args(["--event-log", fx.event_log().to_str().unwrap()])
        .args(["--rtmr3-path"])
        .arg(fx.path().join("no-rtmr3").to_str().unwrap());
    launcher
}

fn names(agent: &FakeAgent) -> Vec<String> {
    agent.events().into_iter().map(|e| e.event).collect()
}

/// Class 1: after a measured launch of A, a restart with `PLATFORM=nontee` injected ran B with
/// nothing measured while the quote still ended with A. Where an agent answers at dstack's
/// default socket, nontee is now refused: B does not run, nothing is recorded anywhere.
#[test]
fn injected_nontee_is_refused_where_an_agent_answers_at_a_default_socket() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let approved = workload(&fx, "a", "approved");
    let other = workload(&fx, "b", "other");

    let mut first = launcher(&fx);
    first.arg(approved.to_str().unwrap());
    in_namespace(
        &mut first,
        &fx,
        View::AgentAtDefaultSocket,
        Some(agent.socket_path()),
    );
    first.run().success().stdout_has("RAN approved");
    assert_eq!(names(&agent), NAMES, "the first launch is measured");

    // What nontee does where nothing can be measured (the old launcher did this anywhere):
    // B runs and RTMR3 still ends with A's launch — the forgery this test is about.
    let mut outside = launcher(&fx);
    outside
        .env("PLATFORM", "nontee")
        .arg(other.to_str().unwrap());
    outside.run().success().stdout_has("RAN other");
    assert_eq!(names(&agent), NAMES);
    std::fs::remove_file(fx.event_log()).unwrap();
    std::fs::remove_dir_all(fx.path().join("work-b")).unwrap();

    let mut injected = launcher(&fx);
    injected
        .env("PLATFORM", "nontee")
        .arg(other.to_str().unwrap());
    in_namespace(
        &mut injected,
        &fx,
        View::AgentAtDefaultSocket,
        Some(agent.socket_path()),
    );
    let run = injected.run();
    run.fails(
        2,
        "refusing nontee (from environment variable PLATFORM): a dstack agent answers at /var/run/dstack.sock",
    );
    assert!(!run.stdout.contains("RAN "), "{}", run.stdout);
    assert_eq!(names(&agent), NAMES, "nothing more measured");
    assert!(!fx.event_log().exists(), "nothing recorded locally");
    assert!(!fx.path().join("work-b").exists(), "nothing checked out");
}

/// Inside a TDX guest nontee is refused whatever its source, for each sign the kernel gives.
#[test]
fn nontee_is_refused_inside_a_tdx_guest() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    let config = workload(&fx, "a", "approved");
    for (view, sign) in [
        (View::DevTdxGuest, "/dev/tdx_guest exists"),
        (View::SysfsMisc, "/sys/class/misc/tdx_guest exists"),
        (View::TsmReport, "/sys/kernel/config/tsm/report exists"),
        (View::CpuFlag, "/proc/cpuinfo lists the tdx_guest CPU flag"),
    ] {
        for (how, source) in [
            ("env", "environment variable PLATFORM"),
            ("flag", "--platform"),
        ] {
            let mut run = launcher(&fx);
            if how == "env" {
                run.env("PLATFORM", "NONTEE");
            } else {
                run.args(["--platform", "nontee"]);
            }
            run.arg(config.to_str().unwrap());
            in_namespace(&mut run, &fx, view, None);
            let run = run.run();
            run.fails(
                2,
                &format!("refusing nontee (from {source}): this is a TDX guest ({sign})"),
            );
            assert!(!run.stdout.contains("RAN "), "{view:?}: {}", run.stdout);
            assert!(!fx.event_log().exists(), "{view:?}: nothing recorded");
        }
    }
    // The same namespace setup without a sign lets nontee run: the signs, not the
    // namespace, are what the launcher reacts to.
    let mut plain = launcher(&fx);
    plain
        .env("PLATFORM", "nontee")
        .arg(config.to_str().unwrap());
    in_namespace(&mut plain, &fx, View::AgentAtDefaultSocket, None);
    plain.run().success().stdout_has("RAN approved");
}

/// A config that asks for a TEE, or a configured socket where an agent answers, refuses
/// nontee too (no namespace needed: nothing here is at a default path).
#[test]
fn nontee_is_refused_when_the_config_or_command_line_names_an_agent() {
    let fx = Fixture::new();
    let agent = FakeAgent::start(fx.path(), Mode::Normal);
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("approved"))]);
    for (extra, reason) in [
        (
            "MEASUREMENT_BACKEND=tdx-sysfs\n".to_owned(),
            "the config names measurement backend tdx-sysfs".to_owned(),
        ),
        (
            "DSTACK_SOCKET=/nonexistent/dstack.sock\n".to_owned(),
            "the config names the dstack agent socket /nonexistent/dstack.sock".to_owned(),
        ),
    ] {
        let config = fx.line_config(&sha, &extra);
        let mut run = launcher(&fx);
        run.env("PLATFORM", "nontee").arg(config.to_str().unwrap());
        let run = run.run();
        run.fails(2, &reason);
        assert!(!run.stdout.contains("RAN "));
    }
    let config = fx.line_config(&sha, "");
    let mut run = launcher(&fx);
    run.env("PLATFORM", "nontee")
        .args(["--dstack-socket", agent.socket_path().to_str().unwrap()])
        .arg(config.to_str().unwrap());
    run.run().fails(
        2,
        &format!(
            "a dstack agent answers at {}",
            agent.socket_path().display()
        ),
    );
    assert!(agent.events().is_empty());
    assert!(!fx.event_log().exists());
}

/// `DSTACK_SIMULATOR_ENDPOINT` injected next to a real agent used to send every event to the
/// attacker's agent, whose quote no verifier trusts. It is now ignored (with a warning) where
/// an agent answers at a default socket, and the real agent records the launch.
#[test]
fn simulator_endpoint_is_ignored_where_a_real_agent_answers() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    let real_dir = fx.path().join("real");
    let fake_dir = fx.path().join("attacker");
    std::fs::create_dir_all(&real_dir).unwrap();
    std::fs::create_dir_all(&fake_dir).unwrap();
    let real = FakeAgent::start(&real_dir, Mode::Normal);
    let attacker = FakeAgent::start(&fake_dir, Mode::Normal);
    let config = workload(&fx, "a", "approved");

    // Without a real agent in sight, the variable is honoured: this is where events went.
    let mut honoured = launcher(&fx);
    honoured
        .env("DSTACK_SIMULATOR_ENDPOINT", attacker.endpoint())
        .arg(config.to_str().unwrap());
    honoured.run().success();
    assert_eq!(names(&attacker), NAMES);

    let mut ignored = launcher(&fx);
    ignored
        .env(
            "DSTACK_SIMULATOR_ENDPOINT",
            fake_dir.join("dstack.sock").to_str().unwrap(),
        )
        .arg(config.to_str().unwrap());
    in_namespace(
        &mut ignored,
        &fx,
        View::AgentAtDefaultSocket,
        Some(real.socket_path()),
    );
    ignored
        .run()
        .success()
        .stdout_has("RAN approved")
        .stderr_has("ignoring DSTACK_SIMULATOR_ENDPOINT=")
        .stderr_has("a dstack agent answers at /var/run/dstack.sock");
    assert_eq!(names(&real), NAMES, "the real agent measured the launch");
    assert_eq!(
        names(&attacker),
        NAMES,
        "the attacker's agent got nothing more"
    );
}

/// Inside a TDX guest with no agent, the variable is ignored too: the launch fails closed
/// instead of "measuring" into the attacker's agent.
#[test]
fn simulator_endpoint_is_ignored_inside_a_tdx_guest() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    let attacker = FakeAgent::start(fx.path(), Mode::Normal);
    let config = workload(&fx, "a", "approved");
    let mut run = launcher(&fx);
    run.env("DSTACK_SIMULATOR_ENDPOINT", attacker.endpoint())
        .arg(config.to_str().unwrap());
    in_namespace(&mut run, &fx, View::CpuFlag, None);
    let run = run.run();
    run.fails(1, "no RTMR3 backend available")
        .stderr_has("ignoring DSTACK_SIMULATOR_ENDPOINT=");
    assert!(!run.stdout.contains("RAN "));
    assert!(attacker.events().is_empty());
}

/// Class 3: with `tdx-sysfs` and no agent, entries for a workload appended to the launcher's
/// own log with this boot's `boot_id` made it say "already measured" and run that workload
/// with RTMR3 never extended. Nothing vouches for that file, so the launch is measured again.
#[test]
fn native_backend_without_an_agent_does_not_trust_its_own_file() {
    let fx = Fixture::new();
    let rtmr3 = FakeRtmr3::start(&fx.path().join("rtmr3:sha384"));
    let config = workload(&fx, "a", "approved");
    let plan = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    let plan: serde_json::Value = serde_json::from_str(&plan.success().stdout).unwrap();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    // The forged record: this boot's id, the planned events, correct digests.
    let forged: Vec<String> = plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| -> String {
            format!(
                "{{\"imr\":3,\"event_type\":134217729,\"digest\":\"{}\",\"event\":\"{}\",\"event_payload\":\"{}\",\"boot_id\":\"{}\"}}\n",
                e["digest"].as_str().unwrap(),
                e["event"].as_str().unwrap(),
                e["event_payload"].as_str().unwrap(),
                boot_id.trim()
            )
        })
        .collect();
    let forged = forged.concat();
    std::fs::write(fx.event_log(), forged).unwrap();

    let mut run = Launcher::new(fx.path());
    run.args(["--measurement-backend", "tdx-sysfs"])
        .args(["--event-log", fx.event_log().to_str().unwrap()])
        .args(["--rtmr3-path", rtmr3.path().to_str().unwrap()])
        .arg(config.to_str().unwrap());
    run.run()
        .success()
        .stdout_has("RAN approved")
        .stderr_lacks("already measured");
    let expected: Vec<u8> = plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            v1_digest(
                e["event"].as_str().unwrap(),
                &common::fake_agent::unhex(e["event_payload"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rtmr3.received().len() < expected.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        hex(&rtmr3.received()),
        hex(&expected),
        "all three events reached the register"
    );
}
