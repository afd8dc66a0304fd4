//! Hardened checkout against a hostile host: each attack is first shown to fool plain git
//! (the naive launcher), then the real binary is shown not to be fooled.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod checkout;
#[path = "../common/mod.rs"]
mod common;
mod environment;
mod hooks;
mod origin;
mod replace_refs;
mod reused_config;
mod reused_layout;
mod symlinks;
mod tampered_objects;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Fixture, Run};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs the launcher on `config` (bounded by the harness's run limit).
fn launch(fx: &Fixture, config: &Path) -> Run {
    let mut launcher = fx.launcher();
    launcher.arg(config.to_str().unwrap());
    launcher.run()
}

fn ready_events(fx: &Fixture) -> usize {
    fx.events()
        .iter()
        .filter(|e| e["event"] == "trusted-launcher.ready")
        .count()
}

/// Every `marker-*` file an attack managed to create in the fixture.
fn markers(fx: &Fixture) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(fx.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("marker-"))
        .collect();
    found.sort();
    found
}

fn clear_markers(fx: &Fixture) {
    for name in markers(fx) {
        fs::remove_file(fx.path().join(name)).unwrap();
    }
}

#[track_caller]
fn assert_no_markers(fx: &Fixture, run: &Run) {
    assert!(
        markers(fx).is_empty(),
        "attack code ran: {:?}\nstdout:\n{}\nstderr:\n{}",
        markers(fx),
        run.stdout,
        run.stderr
    );
}

/// Writes an executable shell script at `path` that touches `marker` and exits `code`.
fn marker_script(path: &Path, marker: &Path, code: i32) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!("#!/bin/sh\ntouch '{}'\nexit {code}\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

/// An entry script that announces itself and leaves a marker file behind: used for content
/// that must never run.
fn evil_entry(fx: &Fixture, name: &str) -> String {
    format!(
        "echo \"RAN EVIL {name}\"\ntouch '{}'\n",
        fx.marker(name).display()
    )
}

/// A line config for an arbitrary repo URL and work dir.
fn config_for(fx: &Fixture, name: &str, url: &str, commit: &str, work: &Path) -> PathBuf {
    fx.write(
        name,
        &format!(
            "REPO_URL={url}\nCOMMIT_SHA={commit}\nWORK_DIR={}\n",
            work.display()
        ),
    )
}

/// Plain git as a naive launcher runs it, not asserting success.
fn plain(dir: &Path, args: &[&str]) -> Output {
    common::git_command(dir).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch_objects(fx: &Fixture) -> PathBuf {
    fx.path().join("scratch/.git/objects")
}

fn loose(objects: &Path, oid: &str) -> PathBuf {
    objects.join(&oid[..2]).join(&oid[2..])
}

/// Stores the loose object file `source` (from `from`) in `to` under the name `name`: the
/// object then holds bytes that do not hash to its name.
fn plant_object(from: &Path, source: &str, to: &Path, name: &str) {
    let src = loose(from, source);
    assert!(
        src.is_file(),
        "{source} is not a loose object in {}",
        from.display()
    );
    let dst = loose(to, name);
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    if dst.exists() {
        fs::remove_file(&dst).unwrap();
    }
    fs::copy(src, dst).unwrap();
}

/// Copies the genuine loose object `oid` from `from` to `to`.
fn copy_object(from: &Path, to: &Path, oid: &str) {
    plant_object(from, oid, to, oid);
}

/// The object name of `rev` in the fixture's scratch repository.
fn rev(fx: &Fixture, rev: &str) -> String {
    common::git(&fx.path().join("scratch"), &["rev-parse", rev])
}

/// `cp -a`, so symlinks, modes and empty directories survive.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
