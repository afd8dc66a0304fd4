//! `verify --plan FILE` (issue 13): the reference values come from `plan --json` output, so a
//! verifier copies no value by hand. A launch verifies against the plan of its config, fails
//! against the plan of another, and every malformed plan is a one-line usage error naming the
//! file and the field.
//!
//! Launch logs here are the launcher's own (`--platform nontee`) after dstack's boot events,
//! with a quote whose RTMR3 is their replay computed by the tests' own sha2 code; such a quote
//! has no signature, so these runs use `--skip-dcap` (exit 3 at best). The shipped real
//! attestations carry no launcher launch at all (they come from NEAR's launcher, dstack and
//! Phala), so a plan cannot verify them: that is shown too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use common::fake_agent::hex;
use common::verdict::{NEAR_NOW, fixture, fixture_str, get_quote, one_line_usage_error, verify};
use common::{Fixture, Item, Launcher, entry};

/// `plan --json CONFIG`, written to `dir/name`.
fn plan(fx: &Fixture, config: &Path, name: &str) -> String {
    let run = Launcher::new(fx.path())
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let path = fx.path().join(name);
    fs::write(&path, &run.stdout).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The events of the launcher's own log (name, payload).
fn own_events(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    fx.events()
        .iter()
        .map(|e| {
            let payload = common::fake_agent::unhex(e["event_payload"].as_str().unwrap());
            (e["event"].as_str().unwrap().to_owned(), payload.unwrap())
        })
        .collect()
}

/// plan → run → verify: the plan of the config that ran verifies its launch with no
/// `--expect-*` flag; the plan of another commit's config does not, and names the launch.
#[test]
fn a_launch_verifies_against_its_plan_and_not_against_another() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("planned"))]);
    let config = fx.line_config(&sha, "");
    let planned = plan(&fx, &config, "plan.json");
    fx.launcher()
        .arg(config.to_str().unwrap())
        .run()
        .success()
        .stdout_has("RAN planned");
    let quote = fx.path().join("getquote.json");
    fs::write(&quote, get_quote(&own_events(&fx)).to_string()).unwrap();
    let quote = quote.to_str().unwrap();

    // Without reference values the launch is shown, not compared (the old way needed three
    // copied flags to compare it).
    let shown = verify(fx.path(), &[quote, "--skip-dcap"]);
    assert!(
        shown
            .detail("launcher.events")
            .contains("no workload expected")
    );

    let verdict = verify(fx.path(), &[quote, "--skip-dcap", "--plan", &planned]);
    verdict
        .says(
            3,
            "NOT VERIFIED: the quote's signature was not checked (--skip-dcap)",
        )
        .mentions(&format!("runs git:{sha} (config sha256:"));
    assert_eq!(verdict.check("launch.1"), "passed");
    assert!(
        !verdict
            .detail("launcher.events")
            .contains("no workload expected")
    );

    // The plan of another commit: the same launch is not accepted.
    let other = fx.commit(&[Item::File("entrypoint.sh", &entry("other"))]);
    let other_config = fx.write(
        "other.conf",
        &fs::read_to_string(&config).unwrap().replace(&sha, &other),
    );
    let other_plan = plan(&fx, &other_config, "other-plan.json");
    verify(fx.path(), &[quote, "--skip-dcap", "--plan", &other_plan])
        .says(1, "NOT VERIFIED: launch 1 is not accepted: ");
    // The flags add to a plan's accepted values, as repeated flags do.
    let config_sha = fs::read_to_string(&config)
        .map(|t| hex(&Sha256::digest(t)))
        .unwrap();
    let both = verify(
        fx.path(),
        &[
            quote,
            "--skip-dcap",
            "--plan",
            &other_plan,
            "--expect-commit",
            &sha,
            "--expect-config-sha256",
            &config_sha,
        ],
    );
    both.says(3, "NOT VERIFIED: the quote's signature was not checked");
    assert_eq!(both.check("launch.1"), "passed");
    // Two plans: either launch is accepted.
    verify(
        fx.path(),
        &[
            quote,
            "--skip-dcap",
            "--plan",
            &other_plan,
            "--plan",
            &planned,
        ],
    )
    .says(3, "NOT VERIFIED: the quote's signature was not checked");
}

/// The shipped `hello.plan.json` is `plan --json examples/hello/launcher.conf` (the README's
/// example), and the launch it describes, rebuilt here from the example's bytes with sha2,
/// verifies against it; a launch of the same commit with another config does not.
#[test]
fn the_example_plan_is_the_known_answer_of_its_launch() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = fixture_str("hello.plan.json");
    let now = Launcher::new(root)
        .args(["plan", "--json", "examples/hello/launcher.conf"])
        .run();
    now.success();
    assert_eq!(
        now.stdout,
        fs::read_to_string(&shipped).unwrap(),
        "plan drifted"
    );

    let config = fs::read(root.join("examples/hello/launcher.conf")).unwrap();
    let commit = "23139dff75edd9a9a1078b3142a716925181e1ca";
    let launch = |config_sha: &str| {
        vec![
            (
                "trusted-launcher.config".to_owned(),
                format!("sha256:{config_sha}").into_bytes(),
            ),
            (
                "trusted-launcher.workload".to_owned(),
                format!("git:{commit}").into_bytes(),
            ),
            ("trusted-launcher.ready".to_owned(), Vec::new()),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("hello-getquote.json");
    fs::write(
        &good,
        get_quote(&launch(&hex(&Sha256::digest(&config)))).to_string(),
    )
    .unwrap();
    verify(
        dir.path(),
        &[good.to_str().unwrap(), "--skip-dcap", "--plan", &shipped],
    )
    .says(3, "NOT VERIFIED: the quote's signature was not checked")
    .mentions(&format!(
        "runs git:{commit} (config sha256:{}",
        hex(&Sha256::digest(&config))
    ));
    let edited = dir.path().join("edited-getquote.json");
    let other_config = [&config[..], b"# edited\n"].concat();
    fs::write(
        &edited,
        get_quote(&launch(&hex(&Sha256::digest(&other_config)))).to_string(),
    )
    .unwrap();
    let refused = verify(
        dir.path(),
        &[edited.to_str().unwrap(), "--skip-dcap", "--plan", &shipped],
    );
    refused.says(1, "NOT VERIFIED: launch 1 is not accepted: ");
    assert!(
        refused.detail("launch.1").contains("config"),
        "{}",
        refused.detail("launch.1")
    );
}

/// The real attestations in tests/fixtures carry no launcher launch: a plan makes that a
/// failure even with `--allow-no-launch` (a plan expects a launch); their DCAP verdicts hold.
#[test]
fn a_plan_never_passes_an_attestation_without_a_launch() {
    let dir = tempfile::tempdir().unwrap();
    let plan = fixture_str("hello.plan.json");
    let near = fixture_str("near-mpc_public_data.json");
    for extra in [&[][..], &["--allow-no-launch"]] {
        let args = [
            &[near.as_str(), "--now", NEAR_NOW, "--plan", &plan][..],
            extra,
        ]
        .concat();
        let verdict = verify(dir.path(), &args);
        verdict.says(
            1,
            "NOT VERIFIED: the launcher's events do not prove a launch: ",
        );
        assert_eq!(verdict.check("quote.signature"), "passed");
    }
    for name in [
        "dstack_verifier_quote-report.json",
        "dstack_verifier_tdx-lite-getquote.json",
        "crabbox_real_attestation_info.json",
    ] {
        verify(
            dir.path(),
            &[&fixture_str(name), "--skip-dcap", "--plan", &plan],
        )
        .says(
            1,
            "NOT VERIFIED: the launcher's events do not prove a launch: ",
        );
    }
}

/// Every malformed plan is a usage error: one line naming the file and the field, exit 2,
/// no verdict. A FIFO is refused, not waited on.
#[test]
fn malformed_plans_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good: Value =
        serde_json::from_slice(&fs::read(fixture("hello.plan.json")).unwrap()).unwrap();
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("not-json", "plan:".into(), "is not JSON"),
        ("array", "[]".into(), "field (top level) is not an object"),
        (
            "duplicate",
            r#"{"workload":"a","workload":"b"}"#.into(),
            "is not JSON",
        ),
    ];
    let mut edit = |name: &'static str, pointer: &str, value: Value, needle: &'static str| {
        let mut plan = good.clone();
        *plan.pointer_mut(pointer).unwrap() = value;
        cases.push((name, plan.to_string(), needle));
    };
    edit(
        "branch",
        "/workload",
        json!("git:main"),
        "field workload is not git:",
    );
    edit(
        "short",
        "/config/sha256",
        json!("abc"),
        "field config.sha256 is not 64",
    );
    edit(
        "no-events",
        "/events",
        json!(null),
        "field events is missing",
    );
    edit(
        "lying",
        "/workload",
        json!(format!("git:{}", "9".repeat(40))),
        "field workload disagrees",
    );
    let mut no_workload = good.clone();
    no_workload.as_object_mut().unwrap().remove("workload");
    cases.push((
        "no-workload",
        no_workload.to_string(),
        "field workload is missing",
    ));
    let mut bad_compose = good.clone();
    bad_compose["compose"] = json!({"sha256": "md5:00"});
    cases.push((
        "compose",
        bad_compose.to_string(),
        "field compose.sha256 is not sha256:",
    ));
    let quote = fixture_str("dstack_verifier_tdx-lite-getquote.json");
    for (name, text, needle) in &cases {
        let path = dir.path().join(format!("{name}.json"));
        fs::write(&path, text).unwrap();
        let run = Launcher::new(dir.path())
            .args([
                "verify",
                &quote,
                "--skip-dcap",
                "--plan",
                path.to_str().unwrap(),
            ])
            .run();
        one_line_usage_error(&run, &format!("--plan {}", path.display()));
        one_line_usage_error(&run, needle);
    }
}

/// A plan is read as a capped regular file: a FIFO is refused, not waited on; a huge file is
/// refused, not read whole.
#[test]
fn plans_are_read_capped_and_regular_only() {
    let dir = tempfile::tempdir().unwrap();
    let quote = fixture_str("dstack_verifier_tdx-lite-getquote.json");
    let fifo = dir.path().join("plan.fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let run = Launcher::new(dir.path())
        .args([
            "verify",
            &quote,
            "--skip-dcap",
            "--plan",
            fifo.to_str().unwrap(),
        ])
        .run();
    one_line_usage_error(&run, "FIFO");
    let huge = dir.path().join("huge.json");
    fs::write(&huge, vec![b' '; 5 * 1024 * 1024]).unwrap();
    let run = Launcher::new(dir.path())
        .args([
            "verify",
            &quote,
            "--skip-dcap",
            "--plan",
            huge.to_str().unwrap(),
        ])
        .run();
    one_line_usage_error(&run, "larger than");
}
