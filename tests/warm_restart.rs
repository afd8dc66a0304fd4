//! Warm restarts: the working tree an earlier run left is reused when, and only when, it is
//! exactly what a fresh checkout of the approved commit would make. Each tampering of a
//! reused disk is first shown fooling a naive "skip the checkout if HEAD matches" launcher,
//! then caught: the tree is wiped, checked out again and proven, and the approved bytes run.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use common::{Fixture, Item, Launcher, git};

const REUSED: &str = "the working tree already is the commit's tree; not checking it out again";

/// The launcher under a umask of 022, whatever the test runner's: the reuse check compares
/// modes with what a checkout under the launcher's umask creates.
fn launcher(fx: &Fixture, config: &Path) -> Launcher {
    let mut launcher = fx.launcher();
    launcher
        .wrapped(["/bin/sh", "-c", "umask 022 && exec \"$0\" \"$@\""])
        .arg(config.to_str().unwrap());
    launcher
}

/// A commit with a file, an executable, a symlink and a subdirectory; the entry prints the
/// data file, the symlink's target and the tree's listing.
fn fixture() -> (Fixture, String, std::path::PathBuf) {
    let fx = Fixture::new();
    let sha = fx.commit(&[
        Item::File(
            "entrypoint.sh",
            "echo \"DATA=$(cat data.txt) LINK=$(readlink link) LS=$(ls -A | tr '\\n' ' ')\"\n",
        ),
        Item::File("data.txt", "approved\n"),
        Item::Exec("bin/tool", "#!/bin/sh\ntrue\n"),
        Item::Symlink("link", "data.txt"),
        Item::File(".gitignore", "ignored.txt\n"),
    ]);
    let config = fx.line_config(&sha, "");
    (fx, sha, config)
}

const APPROVED_OUTPUT: &str =
    "DATA=approved LINK=data.txt LS=.git .gitignore bin data.txt entrypoint.sh link \n";

#[test]
fn an_untouched_tree_is_reused_and_left_as_a_checkout_would() {
    let (fx, sha, config) = fixture();
    launcher(&fx, &config)
        .run()
        .success()
        .stdout_has(APPROVED_OUTPUT)
        .stderr_lacks(REUSED);
    let measured = fx.events();
    assert!(!measured.is_empty());
    let data = fx.work_dir().join("data.txt");
    let inode = fs::metadata(&data).unwrap().ino();

    launcher(&fx, &config)
        .run()
        .success()
        .stdout_has(APPROVED_OUTPUT)
        .stderr_has(REUSED)
        .stderr_has("working tree verified: 5 files match tree")
        .stderr_has(&format!("HEAD verified: {sha}"));
    // Not re-created: the same inode.
    assert_eq!(fs::metadata(&data).unwrap().ino(), inode);
    // git sees what a checkout leaves: HEAD detached at the commit, index and tree clean.
    let work = fx.work_dir();
    assert_eq!(git(&work, &["rev-parse", "HEAD"]), sha);
    assert_eq!(git(&work, &["status", "--porcelain", "--ignored"]), "");
    // Measured as after a checkout: once per boot, nothing added by the restart.
    assert_eq!(fx.events(), measured);
}

/// One tampering of the reused tree, and the reason the launcher should give for it.
struct Tamper {
    name: &'static str,
    apply: fn(&Path, &Path),
    why: &'static str,
}

fn tamperings() -> Vec<Tamper> {
    vec![
        Tamper {
            name: "untracked file",
            apply: |work, _| fs::write(work.join("extra.sh"), "evil\n").unwrap(),
            why: "(extra.sh is not in the commit)",
        },
        Tamper {
            name: "ignored file",
            apply: |work, _| fs::write(work.join("ignored.txt"), "evil\n").unwrap(),
            why: "(ignored.txt is not in the commit)",
        },
        Tamper {
            name: "changed byte",
            apply: |work, _| fs::write(work.join("data.txt"), "approveD\n").unwrap(),
            why: "(data.txt content differs from the commit)",
        },
        Tamper {
            name: "missing file",
            apply: |work, _| fs::remove_file(work.join("bin/tool")).unwrap(),
            why: "(bin/tool is missing)",
        },
        Tamper {
            name: "exec bit set",
            apply: |work, _| chmod(&work.join("data.txt"), 0o755),
            why: "(data.txt has mode 755, a fresh checkout's is 644)",
        },
        // git tracks only the exec bit; the checkout's own proof accepts this one too.
        Tamper {
            name: "group/world-writable file",
            apply: |work, _| chmod(&work.join("entrypoint.sh"), 0o666),
            why: "(entrypoint.sh has mode 666, a fresh checkout's is 644)",
        },
        Tamper {
            name: "world-writable directory",
            apply: |work, _| chmod(&work.join("bin"), 0o777),
            why: "(bin has mode 777, a fresh checkout's is 755)",
        },
        Tamper {
            name: "symlink swapped for a file with its target as content",
            apply: |work, _| {
                fs::remove_file(work.join("link")).unwrap();
                fs::write(work.join("link"), "data.txt").unwrap();
                chmod(&work.join("link"), 0o644);
            },
            why: "(link should be a symlink)",
        },
        Tamper {
            name: "symlink retargeted",
            apply: |work, _| {
                fs::remove_file(work.join("link")).unwrap();
                std::os::unix::fs::symlink("entrypoint.sh", work.join("link")).unwrap();
            },
            why: "(link symlink target differs from the commit)",
        },
        Tamper {
            name: "file swapped for a directory",
            apply: |work, _| {
                fs::remove_file(work.join("data.txt")).unwrap();
                fs::create_dir(work.join("data.txt")).unwrap();
            },
            why: "(data.txt should be a regular file)",
        },
        // Same bytes, but whoever holds the other link can change them after the proof.
        Tamper {
            name: "hard link from outside WORK_DIR",
            apply: |work, outside| fs::hard_link(work.join("data.txt"), outside).unwrap(),
            why: "(data.txt has 2 hard links)",
        },
    ]
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// What a naive warm start decides: HEAD names the approved commit, so nothing is checked
/// out (git-launcher's own guard is `git rev-parse HEAD` against `COMMIT_SHA`, DESIGN §7).
fn naive_skips_checkout(work: &Path, sha: &str) -> bool {
    git(work, &["rev-parse", "HEAD"]) == sha
}

#[test]
fn every_tampering_of_a_reused_tree_is_wiped_and_checked_out_again() {
    let (fx, sha, config) = fixture();
    launcher(&fx, &config).run().success();
    let work = fx.work_dir();
    let outside = fx.path().join("outside-link");
    for tamper in tamperings() {
        let _ = fs::remove_file(&outside);
        (tamper.apply)(&work, &outside);
        assert!(
            naive_skips_checkout(&work, &sha),
            "{}: the naive launcher would have checked out",
            tamper.name
        );
        let run = launcher(&fx, &config).run();
        run.success()
            .stdout_has(APPROVED_OUTPUT)
            .stderr_lacks(REUSED)
            .stderr_has(&format!(
                "the working tree is not the commit's {}; wiping it and checking out",
                tamper.why
            ));
        assert_eq!(
            git(&work, &["status", "--porcelain", "--ignored"]),
            "",
            "{}",
            tamper.name
        );
        let data = fs::symlink_metadata(work.join("data.txt")).unwrap();
        assert!(data.is_file() && data.nlink() == 1, "{}", tamper.name);
        assert_eq!(data.mode() & 0o7777, 0o644, "{}", tamper.name);
        assert_eq!(
            fs::metadata(work.join("entrypoint.sh")).unwrap().mode() & 0o7777,
            0o644
        );
        assert_eq!(
            fs::metadata(work.join("bin")).unwrap().mode() & 0o7777,
            0o755
        );
        // The next start finds the restored tree good again.
        launcher(&fx, &config)
            .run()
            .success()
            .stdout_has(APPROVED_OUTPUT)
            .stderr_has(REUSED);
    }
}

/// The launcher's umask decides what a fresh checkout is: under umask 002 a checkout's
/// files are group-writable, so their group would matter; nothing is reused then.
#[test]
fn nothing_is_reused_under_a_group_writable_umask() {
    let (fx, _, config) = fixture();
    launcher(&fx, &config).run().success();
    let mut loose = fx.launcher();
    loose
        .wrapped(["/bin/sh", "-c", "umask 002 && exec \"$0\" \"$@\""])
        .arg(config.to_str().unwrap());
    loose
        .run()
        .success()
        .stdout_has(APPROVED_OUTPUT)
        .stderr_lacks(REUSED)
        .stderr_has("checking out afresh");
}

/// A store that lost a blob gets it fetched again (so it can always check the commit out),
/// and the tree on disk, still exactly the commit's, is kept.
#[test]
fn a_kept_tree_still_has_its_blobs_fetched() {
    let (fx, _, config) = fixture();
    launcher(&fx, &config).run().success();
    let work = fx.work_dir();
    let blob = git(&work, &["rev-parse", "HEAD:data.txt"]);
    // The fetch kept a pack: unpack it into loose objects, then drop the blob's.
    let packs = work.join(".git/objects/pack");
    for item in fs::read_dir(&packs).unwrap() {
        let path = item.unwrap().path();
        let moved = fx.path().join(path.file_name().unwrap());
        fs::rename(&path, &moved).unwrap();
        if moved.extension().is_some_and(|e| e == "pack") {
            let status = common::git_command(&work)
                .arg("unpack-objects")
                .stdin(fs::File::open(&moved).unwrap())
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let (fan, rest) = blob.split_at(2);
    fs::remove_file(work.join(".git/objects").join(fan).join(rest)).unwrap();
    let has_blob = || {
        common::git_command(&work)
            .args(["cat-file", "-e", &blob])
            .status()
            .unwrap()
            .success()
    };
    assert!(!has_blob());

    launcher(&fx, &config)
        .run()
        .success()
        .stdout_has(APPROVED_OUTPUT)
        .stderr_has("fetching")
        .stderr_has(REUSED);
    assert!(has_blob());
}
