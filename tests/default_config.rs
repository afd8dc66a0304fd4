//! With no config argument the launcher reads `/etc/trusted-launcher/config.toml`, else
//! git-launcher's default `/etc/git-launcher/config.conf` (DESIGN §7: "one optional argument
//! overrides the path"), and says which in the log (issue 12).
//!
//! The real `/etc` is never written: the launcher runs in a private mount namespace
//! (`unshare -m`, as root) whose `/etc` is an overlay with the real `/etc` as its read-only
//! lower layer and a scratch upper layer, so creating, removing or replacing the two config
//! directories there changes only the scratch dir (overlayfs: "all modifications go to the
//! upper, writable layer", Documentation/filesystems/overlayfs.rst). Everything else the
//! launcher, bash and git read from `/etc` (the loader cache, ...) is the real one. The upper
//! layer is a tmpfs, so this works where the scratch dir itself is on an overlay (a
//! container's root), which overlayfs does not accept as an upper layer.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fmt::Write as _;
use std::path::Path;

use common::{Fixture, Item, Launcher, entry};
use sha2::{Digest as _, Sha256};

const OURS: &str = "/etc/trusted-launcher/config.toml";
const THEIRS: &str = "/etc/git-launcher/config.conf";

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

/// The launcher, with no config argument, in a namespace whose `/etc` has exactly the
/// given default configs (neither of the host's own, if it has any).
fn without_argument(fx: &Fixture, ours: Option<&str>, theirs: Option<&str>) -> Launcher {
    let s = fx.path().join("etc-overlay");
    std::fs::create_dir_all(s.join("layers")).unwrap();
    let mut place = String::new();
    for (text, target) in [(ours, OURS), (theirs, THEIRS)] {
        if let Some(text) = text {
            let source = s.join(Path::new(target).file_name().unwrap());
            std::fs::write(&source, text).unwrap();
            let dir = Path::new(target).parent().unwrap().display();
            let _ = writeln!(place, "mkdir {dir}\ncp {} {target}", source.display());
        }
    }
    let s = s.display();
    let setup = format!(
        "set -e\nmount -t tmpfs tl-etc-layers {s}/layers\nmkdir {s}/layers/upper {s}/layers/work\n\
         mount -t overlay tl-etc -o lowerdir=/etc,upperdir={s}/layers/upper,workdir={s}/layers/work /etc\n\
         rm -rf /etc/trusted-launcher /etc/git-launcher\n{place}exec \"$@\"\n"
    );
    let mut launcher = fx.launcher();
    launcher.wrapped(["unshare", "-m", "sh", "-c", &setup, "sh"]);
    launcher
}

/// A line config as git-launcher's README writes it (`REPO_URL`, `COMMIT_SHA`, `WORK_DIR`).
fn git_launcher_config(fx: &Fixture, marker: &str) -> String {
    let sha = fx.commit_on(marker, &[Item::File("entrypoint.sh", &entry(marker))]);
    format!(
        "REPO_URL={}\nCOMMIT_SHA={sha}\nWORK_DIR={}\n",
        fx.url(),
        fx.path().join(format!("work-{marker}")).display()
    )
}

/// Whether the host has either directory: the tests must leave that as they found it.
fn host_etc() -> [bool; 2] {
    [OURS, THEIRS].map(|p| Path::new(p).parent().unwrap().exists())
}

#[test]
fn only_git_launchers_default_config_is_read_and_logged() {
    if !root() {
        return;
    }
    let before = host_etc();
    let fx = Fixture::new();
    let text = git_launcher_config(&fx, "theirs");
    let run = without_argument(&fx, None, Some(&text)).run();
    // The old code path read only OURS: "cannot read config /etc/trusted-launcher/config.toml".
    run.success()
        .stdout_has("RAN theirs")
        .stderr_has(&format!(
            "trusted-launcher: config: {THEIRS} (no config argument and no {OURS}; git-launcher's default)\n"
        ))
        .stderr_lacks("cannot read config");
    // The measured config is the git-launcher file's exact bytes.
    let events = fx.events();
    assert_eq!(events[0]["event"], "trusted-launcher.config");
    let digest = common::hex(&Sha256::digest(text.as_bytes()));
    assert_eq!(
        events[0]["event_payload"],
        common::hex(format!("sha256:{digest}").as_bytes())
    );
    assert_eq!(events.len(), 3);

    // `plan` without an argument reads the same file.
    let mut plan = without_argument(&fx, None, Some(&text));
    plan.arg("plan");
    plan.run()
        .success()
        .stdout_has(&format!("sha256:{digest}"))
        .stderr_has(&format!("config: {THEIRS} ("));
    assert_eq!(host_etc(), before, "the host's /etc must not change");
}

#[test]
fn ours_wins_when_both_exist() {
    if !root() {
        return;
    }
    let before = host_etc();
    let fx = Fixture::new();
    let theirs = git_launcher_config(&fx, "theirs");
    let sha = fx.commit_on("ours", &[Item::File("entrypoint.sh", &entry("ours"))]);
    let ours = format!(
        "[git]\nrepo = \"{}\"\ncommit = \"{sha}\"\nwork_dir = \"{}\"\n",
        fx.url(),
        fx.path().join("work-ours").display()
    );
    without_argument(&fx, Some(&ours), Some(&theirs))
        .run()
        .success()
        .stdout_has("RAN ours")
        .stderr_has(&format!(
            "trusted-launcher: config: {OURS} (no config argument)\n"
        ))
        .stderr_lacks("RAN theirs")
        .stderr_lacks(THEIRS);
    assert_eq!(host_etc(), before, "the host's /etc must not change");
}

#[test]
fn neither_is_an_error_naming_both() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    for command in [None, Some("run"), Some("plan")] {
        let mut launcher = without_argument(&fx, None, None);
        if let Some(command) = command {
            launcher.arg(command);
        }
        launcher.run().fails(
            2,
            &format!(
                "trusted-launcher: error: no config argument given, and neither {OURS} nor {THEIRS} exists\n"
            ),
        );
    }
    assert!(fx.events().is_empty(), "nothing may be measured");
}

#[test]
fn an_argument_is_read_even_when_a_default_exists() {
    if !root() {
        return;
    }
    let fx = Fixture::new();
    let theirs = git_launcher_config(&fx, "theirs");
    let given = fx.write("given.conf", &git_launcher_config(&fx, "given"));
    let mut launcher = without_argument(&fx, None, Some(&theirs));
    launcher.arg(given.to_str().unwrap());
    launcher
        .run()
        .success()
        .stdout_has("RAN given")
        .stderr_lacks("no config argument");
}
