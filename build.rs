//! Sets `TRUSTED_LAUNCHER_VERSION` for `--version`: the package version, followed by the source
//! commit when the crate is built from a git checkout (`git rev-parse HEAD`). Without `.git`
//! (a source archive) or without git, the version alone. A commit id is the same in every
//! clone of that commit, so two builds of one commit stay byte-identical.

use std::path::Path;
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let text = match commit(Path::new(&manifest)) {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=TRUSTED_LAUNCHER_VERSION={text}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// HEAD's commit id, when `dir` is a git checkout; registers the files whose change moves
/// HEAD so the version follows new commits.
fn commit(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env_remove("GIT_DIR")
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    if !head.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // Only paths that exist: cargo reruns a script on every build for a missing one.
    // A worktree's `.git` is a file naming its git dir; a clone's is the git dir itself,
    // whose other files (the index) change without moving HEAD.
    let mut watched: Vec<_> = Some(dir.join(".git"))
        .filter(|p| p.is_file())
        .into_iter()
        .collect();
    if let Some(git_dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watched.push(Path::new(&git_dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        watched.push(Path::new(&common).join("refs/heads"));
        watched.push(Path::new(&common).join("packed-refs"));
    }
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(head)
}
