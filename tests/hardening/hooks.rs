//! Hooks planted in the reused repository (`.git/hooks`, `core.hooksPath`, fsmonitor)
//! never run.

use std::path::Path;

use crate::common::{Fixture, Item, entry};
use crate::{
    assert_no_markers, clear_markers, common, launch, marker_script, markers, plain, text,
};

// ---------------------------------------------------------------------------------------
// 1. Hooks
// ---------------------------------------------------------------------------------------

const HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "post-index-change",
    "fsmonitor-watchman",
    "p4-pre-submit",
];

/// Plants every hook in `dir`, each touching `marker-hook-<where>-<name>`.
fn plant_hooks(fx: &Fixture, dir: &Path, place: &str) {
    for hook in HOOKS {
        marker_script(
            &dir.join(hook),
            &fx.marker(&format!("hook-{place}-{hook}")),
            0,
        );
    }
}

/// Hooks in `.git/hooks`, and a `core.hooksPath` (and an fsmonitor hook) in the reused
/// repository's config, which plain git honours.
fn plant_all_hooks(fx: &Fixture) {
    let work = fx.work_dir();
    plant_hooks(fx, &work.join(".git/hooks"), "githooks");
    let elsewhere = fx.path().join("evil-hooks");
    plant_hooks(fx, &elsewhere, "hookspath");
    common::git(
        &work,
        &["config", "core.hooksPath", elsewhere.to_str().unwrap()],
    );
    common::git(
        &work,
        &[
            "config",
            "core.fsmonitor",
            elsewhere.join("fsmonitor-watchman").to_str().unwrap(),
        ],
    );
}

#[test]
fn planted_hooks_do_not_run() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let b = fx.commit_on("b", &[Item::File("entrypoint.sh", &entry("B"))]);
    let work = fx.work_dir();
    launch(&fx, &fx.line_config(&a, "")).success();

    // Plain git runs a hook from .git/hooks ...
    plant_hooks(&fx, &work.join(".git/hooks"), "githooks");
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fx.marker("hook-githooks-post-checkout").exists(),
        "plain git did not run .git/hooks/post-checkout: {:?}",
        markers(&fx)
    );
    // ... and from core.hooksPath.
    plant_all_hooks(&fx);
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fx.marker("hook-hookspath-post-checkout").exists(),
        "plain git did not run core.hooksPath/post-checkout: {:?}",
        markers(&fx)
    );
    clear_markers(&fx);

    // Same pin: nothing to fetch, only the checkout.
    plant_all_hooks(&fx);
    let run = launch(&fx, &fx.line_config(&a, ""));
    run.success().stdout_has("RAN A");
    assert_no_markers(&fx, &run);

    // New pin: a fetch and a checkout.
    plant_all_hooks(&fx);
    let run = launch(&fx, &fx.line_config(&b, ""));
    run.success()
        .stdout_has("RAN B")
        .stderr_has(&format!("HEAD verified: {b}"));
    assert_no_markers(&fx, &run);
}
