//! The command-line contract: config rejects, help, platform selection, `plan`, and that no
//! bad input panics, measures or executes anything.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

use common::{Fixture, Item, Launcher, entry};

const SHA: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";

/// A config that must be rejected with exit 2 before anything is measured or run.
#[track_caller]
fn rejects(fx: &Fixture, name: &str, text: &str, needle: &str) {
    let marker = fx.marker("ran");
    let text = text.replace("@MARKER@", &marker.display().to_string());
    let config = fx.write(name, &text);
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.fails(2, needle);
    assert!(!marker.exists(), "something ran for {text:?}");
    assert!(
        fx.events().is_empty(),
        "something was measured for {text:?}"
    );
    assert!(!fx.work_dir().exists(), "work dir touched for {text:?}");
}

#[test]
fn commit_must_be_a_full_lowercase_id() {
    let fx = Fixture::new();
    for bad in [
        "main",
        "v1.0.0",
        "7fd1a60",
        &SHA.to_uppercase(),
        &format!("{SHA}0"),
        "HEAD",
    ] {
        rejects(
            &fx,
            "c.conf",
            &format!("REPO_URL=/r\nCOMMIT_SHA={bad}\nWORK_DIR=/tmp/w\n"),
            &format!(
                "c.conf:2: COMMIT_SHA must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got \"{bad}\")"
            ),
        );
    }
}

#[test]
fn missing_unknown_duplicate_and_conflicting_keys() {
    let fx = Fixture::new();
    let base = format!(
        "REPO_URL=/r\nCOMMIT_SHA={SHA}\nWORK_DIR={}\n",
        fx.work_dir().display()
    );
    for (extra, needle) in [
        ("BRANCH=main\n", "c.conf:4: unknown key BRANCH"),
        (
            "WORK_DIR=/elsewhere\n",
            "c.conf:4: duplicate key WORK_DIR (first set on line 3)",
        ),
        (
            "INSTALL_CMD=touch @MARKER@\n",
            "c.conf:4: INSTALL_CMD requires RUN_CMD",
        ),
        ("RUN_CMD=\n", "c.conf:4: RUN_CMD must not be empty"),
        (
            "REPO_SUBDIR=../up\n",
            "c.conf:4: REPO_SUBDIR must not contain '..'",
        ),
        (
            "REPO_SUBDIR=/abs\n",
            "c.conf:4: REPO_SUBDIR must be a relative path",
        ),
        (
            "ENTRYPOINT_SCRIPT=../../x.sh\n",
            "c.conf:4: ENTRYPOINT_SCRIPT must not contain '..'",
        ),
        (
            "ENTRYPOINT_SCRIPT=/bin/sh\n",
            "c.conf:4: ENTRYPOINT_SCRIPT must be a relative path",
        ),
        ("lower=x\n", "c.conf:4: expected KEY=VALUE"),
        ("WORK_DIR=/x\r\n", "c.conf:4: carriage return"),
    ] {
        rejects(&fx, "c.conf", &format!("{base}{extra}"), needle);
    }
    rejects(
        &fx,
        "c.conf",
        "REPO_URL=/r\n",
        "c.conf: missing required key COMMIT_SHA",
    );
    rejects(&fx, "c.conf", "", "c.conf: missing required key REPO_URL");
}

#[test]
fn every_problem_is_reported_at_once() {
    let fx = Fixture::new();
    let config = fx.write(
        "c.conf",
        "REPO_URL=/r\nCOMMIT_SHA=main\nNOPE=1\nREPO_SUBDIR=..\n",
    );
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.fails(2, "c.conf:2: COMMIT_SHA")
        .stderr_has("c.conf:3: unknown key NOPE")
        .stderr_has("c.conf:4: REPO_SUBDIR must not contain '..'")
        .stderr_has("c.conf: missing required key WORK_DIR");
    assert_eq!(run.stderr.lines().count(), 4, "{}", run.stderr);
}

#[test]
fn toml_rejects_unknown_keys_with_lines() {
    let fx = Fixture::new();
    rejects(
        &fx,
        "c.toml",
        &format!(
            "[git]\nrepo = \"/r\"\ncommit = \"{SHA}\"\nwork_dir = \"/tmp/w\"\nbranch = \"main\"\n"
        ),
        "c.toml:5: unknown key git.branch",
    );
    rejects(&fx, "c.toml", "[git\n", "c.toml:1: invalid TOML");
}

#[test]
fn format_flag_overrides_detection() {
    let fx = Fixture::new();
    let config = fx.write(
        "c.toml",
        &format!("REPO_URL=/r\nCOMMIT_SHA={SHA}\nWORK_DIR=/tmp/w\n"),
    );
    fx.launcher()
        .args(["--format", "line", "plan", config.to_str().unwrap()])
        .run()
        .success()
        .stdout_has("(line format)");
}

#[test]
fn help_exits_zero_and_names_the_commands() {
    let fx = Fixture::new();
    for args in [&["--help"][..], &["-h"], &["help"], &["run", "--help"]] {
        let run = Launcher::new(fx.path()).args(args.iter().copied()).run();
        run.success();
        assert!(
            run.stdout.contains("Usage: trusted-launcher"),
            "{args:?}: {}",
            run.stdout
        );
    }
    Launcher::new(fx.path())
        .arg("--help")
        .run()
        .stdout_has("plan")
        .stdout_has("--platform")
        .stdout_has("Exit codes");
}

#[test]
fn usage_errors_exit_two() {
    let fx = Fixture::new();
    let run = Launcher::new(fx.path()).args(["--bogus"]).run();
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    let run = Launcher::new(fx.path())
        .args(["--platform", "sgx", "plan"])
        .run();
    run.fails(
        2,
        "invalid --platform value \"sgx\" (expected tee or nontee)",
    );
    let run = Launcher::new(fx.path())
        .env("PLATFORM", "bogus")
        .args(["plan"])
        .run();
    run.fails(2, "invalid environment variable PLATFORM value \"bogus\"");
    let run = Launcher::new(fx.path())
        .args(["plan", "/nonexistent/c.conf"])
        .run();
    run.fails(2, "cannot read config /nonexistent/c.conf");
}

#[test]
fn tee_mode_refuses_before_anything_happens() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File(
        "entrypoint.sh",
        &format!("touch {}\n", fx.marker("ran").display()),
    )]);
    let config = fx.line_config(&sha, "");
    let log = fx.event_log();
    // Neither an agent nor the kernel's RTMR3 file: tee mode must fail closed.
    let nowhere = fx.path().join("nowhere");
    let absent = [
        "--dstack-socket",
        nowhere.to_str().unwrap(),
        "--rtmr3-path",
        nowhere.to_str().unwrap(),
        "--event-log",
        log.to_str().unwrap(),
        config.to_str().unwrap(),
    ];
    for launcher in [
        Launcher::new(fx.path()).args(absent),
        Launcher::new(fx.path()).env("PLATFORM", "TEE").args(absent),
    ] {
        launcher
            .run()
            .fails(1, "no RTMR3 backend available")
            .stderr_has(&format!(
                "configured socket {} (missing)",
                nowhere.display()
            ))
            .stderr_has("refusing to launch unmeasured");
    }
    assert!(!fx.marker("ran").exists());
    assert!(fx.events().is_empty());
    assert!(
        !fx.work_dir().exists(),
        "tee refusal must not touch the work dir"
    );
}

#[test]
fn platform_env_is_case_insensitive_and_flag_wins() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("nontee"))]);
    let config = fx.line_config(&sha, "");
    let log = fx.event_log();
    Launcher::new(fx.path())
        .env("PLATFORM", "NonTee")
        .args([
            "--event-log",
            log.to_str().unwrap(),
            config.to_str().unwrap(),
        ])
        .run()
        .success()
        .stdout_has("RAN nontee");
    let nowhere = fx.path().join("nowhere");
    Launcher::new(fx.path())
        .env("PLATFORM", "nontee")
        .args([
            "--platform",
            "tee",
            "--dstack-socket",
            nowhere.to_str().unwrap(),
            "--rtmr3-path",
            nowhere.to_str().unwrap(),
            "--event-log",
            log.to_str().unwrap(),
            config.to_str().unwrap(),
        ])
        .run()
        .fails(1, "no RTMR3 backend available");
}

/// `plan --json` digests, recomputed by Python's hashlib from the v1 formula.
#[test]
fn plan_json_digests_match_an_independent_sha384() {
    let fx = Fixture::new();
    let config = fx.write(
        "c.conf",
        &format!("REPO_URL=https://example.com/r.git\nCOMMIT_SHA={SHA}\nWORK_DIR=/srv/app\n"),
    );
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    assert!(!fx.path().join("srv").exists());
    let plan: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["workload"], format!("git:{SHA}"));
    let events = plan["events"].as_array().unwrap();
    assert_eq!(events.len(), 3);

    let config_sha256 = python(&format!(
        "import hashlib;print(hashlib.sha256(open({:?},'rb').read()).hexdigest())",
        config.display()
    ));
    let expected_payloads = [
        format!("sha256:{config_sha256}"),
        format!("git:{SHA}"),
        String::new(),
    ];
    let names = [
        "trusted-launcher.config",
        "trusted-launcher.workload",
        "trusted-launcher.ready",
    ];
    for ((event, name), payload) in events.iter().zip(names).zip(&expected_payloads) {
        assert_eq!(event["event"], name);
        let payload_hex = common::hex(payload.as_bytes());
        assert_eq!(event["event_payload"], payload_hex);
        let digest = python(&format!(
            "import hashlib,struct;print(hashlib.sha384(struct.pack('<I',0x08000001)+b':'+{name:?}.encode()+b':'+bytes.fromhex({payload_hex:?})).hexdigest())"
        ));
        assert_eq!(event["digest"], digest, "{name}");
    }
}

fn python(code: &str) -> String {
    let output = Command::new("python3").args(["-c", code]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn plan_text_lists_events_and_has_no_side_effects() {
    let fx = Fixture::new();
    let config = fx.line_config(SHA, "");
    let run = fx.launcher().args(["plan", config.to_str().unwrap()]).run();
    run.success()
        .stdout_has(&format!("workload: git:{SHA} (pinned in the config)"))
        .stdout_has("trusted-launcher.config")
        .stdout_has("trusted-launcher.ready");
    assert!(fx.events().is_empty());
    assert!(!fx.work_dir().exists());
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("json"))]);
    let config = fx.line_config(&sha, "");
    let run = fx
        .launcher()
        .args(["--log-format", "json", config.to_str().unwrap()])
        .run();
    run.success().stdout_has("RAN json");
    for line in run.stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            value["level"].is_string() && value["message"].is_string(),
            "{line}"
        );
    }
    assert!(run.stderr.contains(&format!("HEAD verified: {sha}")));
}

/// Garbage of many shapes: always a clean exit 2 with error lines, never a panic.
#[test]
fn malformed_configs_never_panic() {
    let fx = Fixture::new();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a.conf", vec![0xff, 0xfe, 0x00, 0x01]),
        ("b.conf", b"=\n==\n=x\n".to_vec()),
        (
            "c.conf",
            "REPO_URL=\u{202e}x\nCOMMIT_SHA=\u{0}\n".as_bytes().to_vec(),
        ),
        (
            "d.toml",
            b"[git]\nrepo = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n"
                .to_vec(),
        ),
        ("e.toml", "[[git]]\nrepo = 1\n".as_bytes().to_vec()),
        (
            "f.toml",
            "[git]\nallow_env = [1, \"A\"]\nrepo = {a = 1}\n"
                .as_bytes()
                .to_vec(),
        ),
        ("g.toml", vec![b'['; 100_000]),
        ("h.conf", vec![b'#'; 1024 * 1024 + 1]),
        ("i.conf", "COMMIT_SHA=\"\nREPO_URL='\n".as_bytes().to_vec()),
    ];
    for (name, bytes) in cases {
        let path = fx.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let run = fx.launcher().arg(path.to_str().unwrap()).run();
        assert_eq!(run.status, Some(2), "{name}: {}", run.stderr);
        assert!(
            run.stderr
                .lines()
                .all(|l| l.starts_with("trusted-launcher: error: ")),
            "{name}: {}",
            run.stderr
        );
        assert!(fx.events().is_empty());
    }
}
