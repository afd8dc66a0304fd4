//! The reused repository's own layout: a symlink into the kept object store, a `.git`
//! that points elsewhere, a store missing a blob.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{Fixture, Item, entry};
use crate::{
    assert_no_markers, clear_markers, common, copy_object, evil_entry, launch, ready_events, rev,
    scratch_objects, text,
};

// ---------------------------------------------------------------------------------------
// Extras: the reused repository's own layout
// ---------------------------------------------------------------------------------------

#[test]
fn entrypoint_symlink_into_the_kept_object_store_is_refused() {
    // The object store survives between runs, so a file planted there must not become the
    // entry script through an approved symlink into `.git`.
    let fx = Fixture::new();
    let a = fx.commit(&[Item::Symlink("entrypoint.sh", ".git/objects/run.sh")]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).fails(1, "does not exist");
    let planted = evil_entry(&fx, "in-git-dir");

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
    fs::write(naive.join(".git/objects/run.sh"), &planted).unwrap();
    let out = Command::new("bash")
        .arg("entrypoint.sh")
        .current_dir(&naive)
        .output()
        .unwrap();
    assert!(fx.marker("in-git-dir").exists(), "{}", text(&out));
    clear_markers(&fx);

    fs::write(fx.work_dir().join(".git/objects/run.sh"), &planted).unwrap();
    let run = launch(&fx, &config);
    run.fails(1, "outside the checkout");
    assert_no_markers(&fx, &run);
    assert_eq!(ready_events(&fx), 0);
}

#[test]
fn git_dir_that_points_elsewhere_is_refused() {
    for kind in ["gitfile", "symlink"] {
        let fx = Fixture::new();
        let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
        let evil = Fixture::new();
        evil.commit(&[Item::File("entrypoint.sh", &evil_entry(&fx, "evil-repo"))]);
        let evil_git = evil.path().join("scratch/.git");
        let work = fx.work_dir();
        fs::create_dir_all(&work).unwrap();
        if kind == "gitfile" {
            fs::write(
                work.join(".git"),
                format!("gitdir: {}\n", evil_git.display()),
            )
            .unwrap();
        } else {
            std::os::unix::fs::symlink(&evil_git, work.join(".git")).unwrap();
        }
        // Plain git works on the other repository.
        let head = common::git(&work, &["rev-parse", "--absolute-git-dir"]);
        assert_eq!(Path::new(&head), evil_git.canonicalize().unwrap(), "{kind}");

        let run = launch(&fx, &fx.line_config(&a, ""));
        run.fails(1, "is not a directory");
        assert_no_markers(&fx, &run);
        assert!(
            evil_git.join("HEAD").is_file() && evil_git.join("config").is_file(),
            "{kind}: the other repository was modified"
        );
    }
}

#[test]
fn store_missing_a_blob_is_completed_by_fetching() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", "echo \"RAN A $(cat data.txt)\"\n"),
        Item::File("data.txt", "payload\n"),
    ]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A payload");
    // Keep only the commit and its tree: the blobs are gone.
    let store = fx.work_dir().join(".git/objects");
    fs::remove_dir_all(store.join("pack")).unwrap();
    for dir in fs::read_dir(&store).unwrap() {
        let dir = dir.unwrap().path();
        if dir.file_name().unwrap().len() == 2 {
            fs::remove_dir_all(dir).unwrap();
        }
    }
    copy_object(&scratch_objects(&fx), &store, &a);
    copy_object(
        &scratch_objects(&fx),
        &store,
        &rev(&fx, &format!("{a}^{{tree}}")),
    );

    launch(&fx, &config)
        .success()
        .stdout_has("RAN A payload")
        .stderr_has(&format!("fetching {a}"))
        .stderr_has(&format!("HEAD verified: {a}"));
}
