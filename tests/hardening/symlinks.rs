//! Symlinks out of the checkout (the entry script or a subdirectory) are refused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Fixture, Item};
use crate::{assert_no_markers, clear_markers, common, evil_entry, launch, ready_events, text};

// ---------------------------------------------------------------------------------------
// 6. Symlinks out of the checkout
// ---------------------------------------------------------------------------------------

/// Commits `items`, shows that plain git plus bash runs the outside script via the symlink,
/// then that the launcher refuses before measuring ready.
fn assert_escape_refused(fx: &Fixture, items: &[Item<'_>], extra: &str, entry_dir: &str) {
    let sha = fx.commit(items);
    let naive = fx.path().join("naive");
    common::git(
        fx.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "main",
            &fx.url(),
            naive.to_str().unwrap(),
        ],
    );
    let out = Command::new("bash")
        .arg("entrypoint.sh")
        .current_dir(naive.join(entry_dir))
        .output()
        .unwrap();
    assert!(
        fx.marker("outside").exists(),
        "plain git + bash did not escape: {}",
        text(&out)
    );
    clear_markers(fx);

    let run = launch(fx, &fx.line_config(&sha, extra));
    run.fails(1, "outside the checkout");
    assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
    assert_no_markers(fx, &run);
    assert_eq!(ready_events(fx), 0);
}

fn outside_script(fx: &Fixture, path: &Path) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, evil_entry(fx, "outside")).unwrap();
    path.to_owned()
}

#[test]
fn entrypoint_symlink_to_an_absolute_outside_path_is_refused() {
    let fx = Fixture::new();
    let outside = outside_script(&fx, &fx.path().join("outside.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("entrypoint.sh", outside.to_str().unwrap())],
        "",
        "",
    );
}

#[test]
fn entrypoint_symlink_climbing_out_is_refused() {
    let fx = Fixture::new();
    outside_script(&fx, &fx.path().join("outside.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("entrypoint.sh", "../outside.sh")],
        "",
        "",
    );
}

#[test]
fn subdir_symlink_to_parent_is_refused() {
    let fx = Fixture::new();
    // WORK_DIR and the naive clone are both directly in the fixture: `app/..` is the fixture.
    outside_script(&fx, &fx.path().join("entrypoint.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("app", ".."), Item::File("README", "x\n")],
        "REPO_SUBDIR=app\n",
        "app",
    );
}

#[test]
fn subdir_symlink_to_an_outside_directory_is_refused() {
    let fx = Fixture::new();
    let dir = fx.path().join("outside-app");
    outside_script(&fx, &dir.join("entrypoint.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("app", dir.to_str().unwrap())],
        "REPO_SUBDIR=app\n",
        "app",
    );
}
