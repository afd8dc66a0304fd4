//! Hostile config in the reused repository (`insteadOf`, fsmonitor, filters, sparse
//! checkout, alternates) is discarded.

use std::fs;
use std::path::Path;

use crate::common::{Fixture, Item, entry};
use crate::{
    assert_no_markers, clear_markers, common, copy_tree, evil_entry, launch, marker_script,
    markers, plain, scratch_objects, text,
};

// ---------------------------------------------------------------------------------------
// 4. Hostile config in the reused repository
// ---------------------------------------------------------------------------------------

/// `url.*.insteadOf` to an evil repo, fsmonitor, a smudge filter on every path, a sparse
/// checkout without the entry script, and alternates into an evil object store.
fn plant_hostile_config(fx: &Fixture, evil: &Fixture, work: &Path) {
    let git_dir = work.join(".git");
    let fsmonitor = marker_script(
        &fx.path().join("evil-fsmonitor"),
        &fx.marker("fsmonitor"),
        0,
    );
    let url_key = format!("url.{}.insteadOf", evil.url());
    let smudge = format!(
        "touch '{}'; echo EVIL-SMUDGE",
        fx.marker("smudge").display()
    );
    for (key, value) in [
        (url_key.as_str(), fx.url()),
        ("core.fsmonitor", fsmonitor.display().to_string()),
        ("filter.x.smudge", smudge),
        ("filter.x.clean", "cat".to_owned()),
        ("core.sparseCheckout", "true".to_owned()),
    ] {
        common::git(work, &["config", key, &value]);
    }
    fs::create_dir_all(git_dir.join("info")).unwrap();
    fs::write(git_dir.join("info/attributes"), "* filter=x\n").unwrap();
    fs::write(
        git_dir.join("info/sparse-checkout"),
        "/*\n!/entrypoint.sh\n",
    )
    .unwrap();
    let alternates = git_dir.join("objects/info/alternates");
    fs::create_dir_all(alternates.parent().unwrap()).unwrap();
    fs::write(
        &alternates,
        format!("{}\n", scratch_objects(evil).display()),
    )
    .unwrap();
}

#[test]
fn hostile_reused_repo_config_is_discarded() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", &entry("A")),
        Item::File("data.txt", "A data\n"),
    ]);
    let b = fx.commit_on(
        "b",
        &[
            Item::File("entrypoint.sh", "echo \"RAN B data=$(cat data.txt)\"\n"),
            Item::File("data.txt", "B data\n"),
        ],
    );
    let evil = Fixture::new();
    let evil_sha = evil.commit(&[Item::File("entrypoint.sh", &evil_entry(&fx, "evil-repo"))]);
    let work = fx.work_dir();
    launch(&fx, &fx.line_config(&a, "")).success();
    plant_hostile_config(&fx, &evil, &work);

    // Plain git, in a copy so that B stays unfetched in WORK_DIR: origin is the evil repo,
    // the evil store is readable, and a checkout runs fsmonitor and the smudge filter and
    // leaves the entry script out.
    let naive = fx.path().join("naive");
    copy_tree(&work, &naive);
    let remote = text(&plain(&naive, &["ls-remote", "origin"]));
    assert!(
        remote.contains(&evil_sha),
        "insteadOf not honoured: {remote}"
    );
    assert!(!remote.contains(&a), "insteadOf not honoured: {remote}");
    assert!(
        plain(&naive, &["cat-file", "-e", &evil_sha])
            .status
            .success()
    );
    // (By path: the URL itself is redirected.)
    common::git(
        &naive,
        &["fetch", "--quiet", fx.origin().to_str().unwrap(), &b],
    );
    let out = plain(&naive, &["checkout", "--force", "--detach", &b]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!naive.join("entrypoint.sh").exists(), "sparse not honoured");
    assert_eq!(
        fs::read_to_string(naive.join("data.txt")).unwrap(),
        "EVIL-SMUDGE\n"
    );
    assert!(fx.marker("fsmonitor").exists(), "{:?}", markers(&fx));
    assert!(fx.marker("smudge").exists(), "{:?}", markers(&fx));
    clear_markers(&fx);

    assert!(
        !plain(&work, &["cat-file", "-e", &b]).status.success(),
        "B should not be in WORK_DIR's store yet"
    );
    let run = launch(&fx, &fx.line_config(&b, ""));
    run.success()
        .stdout_has("RAN B data=B data")
        .stderr_has(&format!("fetching {b}"))
        .stderr_has(&format!("HEAD verified: {b}"));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&fx, &run);
    // The evil store is no longer reachable from the reused repository.
    assert!(
        !plain(&work, &["cat-file", "-e", &evil_sha])
            .status
            .success()
    );
}
