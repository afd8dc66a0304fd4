//! Unit tests of the parent module (kept apart so the module stays one screenful of code).

use super::*;
use crate::approval::ApprovedList;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(output.status.success(), "git {args:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The origin written without `git config` reads back as git reads it, whatever the URL
/// holds that config syntax treats specially.
#[test]
fn origin_url_is_quoted_as_git_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "https://example.com/a.git",
        r#"/srv/we"ird\path;x#y.git"#,
        "file:///a b\tc",
    ] {
        let work = dir.path().join("w");
        let _ = fs::remove_dir_all(&work);
        fs::create_dir(&work).unwrap();
        prepare_work_dir(url, &work, ObjectFormat::Sha1, &Logger::default()).unwrap();
        assert_eq!(git(&work, &["config", "--get", "remote.origin.url"]), url);
    }
}

/// A SHA-256 repository: the metadata the launcher writes itself declares the format,
/// a cold start checks the commit out, and a restart finds git reading it back.
#[test]
fn sha256_repository_checks_out_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "--quiet", "--object-format=sha256"]);
    fs::write(origin.join("run.sh"), "echo approved\n").unwrap();
    git(&origin, &["add", "--all"]);
    git(&origin, &["commit", "--quiet", "-m", "c"]);
    let sha = git(&origin, &["rev-parse", "HEAD"]);
    assert_eq!(sha.len(), 64);
    let commit = CommitId::parse(&sha).unwrap();
    let approved = ApprovedList::load(None, commit)
        .unwrap()
        .approve(None)
        .unwrap();
    let work = dir.path().join("work");
    let url = format!("file://{}", origin.display());
    for _ in 0..2 {
        let done = checkout(&url, &work, &approved, &Logger::default()).unwrap();
        assert_eq!(done.entries.len(), 1);
        assert_eq!(git(&work, &["rev-parse", "HEAD"]), sha);
        assert_eq!(git(&work, &["status", "--porcelain"]), "");
    }
}

/// A writer swapping a file after `HEAD verified`: the re-check sees it, for the one
/// entry file and for every tracked file; untracked build output is not its business.
#[test]
fn recheck_finds_files_changed_after_verification() {
    let dir = tempfile::tempdir().unwrap();
    let origin = dir.path().join("origin");
    fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "--quiet"]);
    fs::write(origin.join("run.sh"), "echo approved\n").unwrap();
    fs::write(origin.join("lib.sh"), "true\n").unwrap();
    git(&origin, &["add", "--all"]);
    git(&origin, &["commit", "--quiet", "-m", "c"]);
    let sha = git(&origin, &["rev-parse", "HEAD"]);
    let commit = CommitId::parse(&sha).unwrap();
    let approved = ApprovedList::load(None, commit)
        .unwrap()
        .approve(None)
        .unwrap();
    let work = dir.path().join("work");
    let checkout = checkout(
        origin.to_str().unwrap(),
        &work,
        &approved,
        &Logger::default(),
    )
    .unwrap();
    let entry = checkout.root.join("run.sh");
    checkout.recheck_file(&entry).unwrap();
    fs::write(checkout.root.join("build.out"), "untracked").unwrap();
    assert_eq!(checkout.recheck_tracked().unwrap(), 2);

    fs::write(checkout.root.join("lib.sh"), "evil\n").unwrap();
    checkout.recheck_file(&entry).unwrap();
    assert_eq!(
        checkout.recheck_tracked().unwrap_err().to_string(),
        "lib.sh changed after the checkout was verified: content differs from the commit (another writer on WORK_DIR, or INSTALL_CMD?)"
    );
    fs::write(&entry, "echo swapped\n").unwrap();
    assert_eq!(
        checkout.recheck_file(&entry).unwrap_err().to_string(),
        "run.sh changed after the checkout was verified: content differs from the commit (another writer on WORK_DIR, or INSTALL_CMD?)"
    );
    assert_eq!(
        checkout
            .recheck_file(&checkout.root.join("build.out"))
            .unwrap_err()
            .to_string(),
        "build.out changed after the checkout was verified: is not a file of the commit (another writer on WORK_DIR, or INSTALL_CMD?)"
    );
}
