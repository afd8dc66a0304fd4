//! git-launcher parity: every behaviour of DESIGN §7 against the real binary and real git.

mod common;

use common::{Fixture, Item, entry};

#[test]
fn default_mode_runs_entrypoint_and_logs_head_verified() {
    let fx = Fixture::new();
    let sha = fx.commit(&[Item::File("entrypoint.sh", &entry("v1"))]);
    let config = fx.line_config(&sha, "");
    let run = fx.launcher().arg(config.to_str().unwrap()).run();
    run.success()
        .stdout_has(&format!(
            "RAN v1 in {}",
            fx.work_dir().canonicalize().unwrap().display()
        ))
        .stderr_has(&format!("HEAD verified: {sha}"));
    let events = fx.events();
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.ready"
        ]
    );
}
