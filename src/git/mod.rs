//! The hardened checkout: what git-launcher does, minus everything it trusts.
//!
//! From a reused `WORK_DIR` only the object store is kept, and every object read from it is
//! re-hashed (see `objects`). All other repository state — config (`insteadOf`, fsmonitor,
//! filters), hooks, replace refs, alternates, grafts, index, attributes — is deleted and
//! recreated, git runs with a cleared environment and no system or global config, and the
//! finished working tree is compared file by file with the approved commit's tree.

mod command;
pub(crate) mod objects;
mod worktree;

use std::fs;
use std::path::{Path, PathBuf};

pub use command::{SAFE_PATH, find_program};
pub use objects::{EntryKind, TreeEntry};

use crate::approval::Approved;
use crate::capped_read::kind_name;
use crate::digest::{CommitId, ObjectFormat};
use crate::hex;
use crate::log::Logger;
use command::{FETCH_TIMEOUT, Git, LOCAL_TIMEOUT};
use objects::{Lookup, ObjectReader};

/// Attributes that would make checked-out bytes differ from the blobs (line-ending and
/// encoding conversion, `$Id$` expansion, filters). `info/attributes` outranks the tree's
/// own `.gitattributes`.
const NEUTRAL_ATTRIBUTES: &str = "* -text -eol -crlf -ident -filter -working-tree-encoding\n";

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git not found on {}", SAFE_PATH)]
    GitNotFound,
    #[error("cannot run git {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("git {command} failed (exit {}): {stderr}", status.map_or_else(|| "by signal".to_owned(), |c| c.to_string()))]
    Failed {
        command: String,
        status: Option<i32>,
        stderr: String,
    },
    #[error("git {command} timed out after {seconds}s")]
    TimedOut { command: String, seconds: u64 },
    #[error("WORK_DIR {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("WORK_DIR {path} is not a directory")]
    WorkDirNotDirectory { path: PathBuf },
    #[error("WORK_DIR {path} is not empty and is not a git checkout; refusing to use it")]
    WorkDirNotEmpty { path: PathBuf },
    #[error(
        "{path} is not a directory (a gitfile or symlink would move the repository elsewhere); refusing to use it"
    )]
    GitDirNotDirectory { path: PathBuf },
    #[error(
        "existing checkout in {path} has origin {actual:?}, config says {expected:?}; refusing to reuse it"
    )]
    OriginMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("commit {commit} is not in {repo} (object {missing} missing after fetching)")]
    CommitNotFound {
        commit: String,
        repo: String,
        missing: String,
    },
    #[error(
        "object {oid} in the local store does not hash to its name (claims to be a {kind}); the reused checkout is corrupt or tampered with; remove WORK_DIR to start clean"
    )]
    CorruptObject { oid: String, kind: String },
    #[error("object {oid} is malformed: {detail}")]
    MalformedObject { oid: String, detail: String },
    #[error("reading objects from git failed: {detail}")]
    ObjectStream { detail: String },
    #[error(
        "{} in the reused object store is a {kind}, not a regular file (git would block on it); remove WORK_DIR to start clean", path.display()
    )]
    SpecialFile { path: PathBuf, kind: &'static str },
    #[error("HEAD is {actual}, expected {expected}")]
    HeadMismatch { expected: String, actual: String },
    #[error("working tree does not match the commit: {} {detail} (if this persists, the reused object store is corrupt: remove WORK_DIR to start clean)", path.display())]
    WorktreeMismatch { path: PathBuf, detail: String },
    #[error("{} changed after the checkout was verified: {detail} (another writer on WORK_DIR, or INSTALL_CMD?)", path.display())]
    ChangedAfterVerification { path: PathBuf, detail: String },
}

/// A checkout proven to hold exactly the approved commit's tree.
#[derive(Debug)]
pub struct VerifiedCheckout {
    /// Canonical path of the checkout root.
    pub root: PathBuf,
    pub commit: CommitId,
    pub files: usize,
    /// The verified tree, to check the files again right before the workload starts.
    entries: Vec<TreeEntry>,
}

impl VerifiedCheckout {
    /// Hashes the regular file at `path` (canonical, inside the root) again and compares it
    /// with the blob the verified tree names for it: what a writer on `WORK_DIR` may have
    /// swapped since the checkout was verified.
    pub fn recheck_file(&self, path: &Path) -> Result<(), GitError> {
        let changed = |path: &Path, detail: &str| GitError::ChangedAfterVerification {
            path: path.to_owned(),
            detail: detail.to_owned(),
        };
        let relative = path
            .strip_prefix(&self.root)
            .map_err(|_| changed(path, "is outside the checkout"))?;
        let entry = self
            .entries
            .iter()
            .find(|e| e.path == relative && matches!(e.kind, EntryKind::File { .. }))
            .ok_or_else(|| changed(relative, "is not a file of the commit"))?;
        self.recheck(std::slice::from_ref(entry)).map(|_| ())
    }

    /// Checks every path of the commit again (type, exec bit, content); paths the commit
    /// does not have (build output) are not looked at. Returns the number of files checked.
    pub fn recheck_tracked(&self) -> Result<usize, GitError> {
        self.recheck(&self.entries)
    }

    fn recheck(&self, entries: &[TreeEntry]) -> Result<usize, GitError> {
        worktree::verify_tracked(&self.root, entries, self.commit.object_format()).map_err(
            |error| match error {
                GitError::WorktreeMismatch { path, detail } => {
                    GitError::ChangedAfterVerification { path, detail }
                }
                other => other,
            },
        )
    }
}

/// Fetches (only if needed), checks out and verifies the approved commit in `work_dir`.
pub fn checkout(
    repo_url: &str,
    work_dir: &Path,
    approved: &Approved<CommitId>,
    log: &Logger,
) -> Result<VerifiedCheckout, GitError> {
    let commit = *approved.value();
    let format = commit.object_format();
    let git = prepare_work_dir(repo_url, work_dir, format, log)?;

    let tree = match ObjectReader::spawn(&git, format)?.read_commit(&commit)? {
        Lookup::Complete(tree) => {
            log.info(&format!(
                "commit {commit} is already in the local object store; not fetching"
            ));
            tree
        }
        Lookup::Missing(_) => {
            fetch(&git, repo_url, &commit, log)?;
            match ObjectReader::spawn(&git, format)?.read_commit(&commit)? {
                Lookup::Complete(tree) => tree,
                Lookup::Missing(missing) => {
                    return Err(GitError::CommitNotFound {
                        commit: commit.to_string(),
                        repo: repo_url.to_owned(),
                        missing,
                    });
                }
            }
        }
    };

    clear_worktree(work_dir)?;
    let sha = commit.to_string();
    git.run(
        &["checkout", "--quiet", "--force", "--detach", &sha],
        LOCAL_TIMEOUT,
    )?;
    let head = git.run(&["rev-parse", "--verify", "HEAD^{commit}"], LOCAL_TIMEOUT)?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    if head != sha {
        return Err(GitError::HeadMismatch {
            expected: sha,
            actual: head,
        });
    }
    let files = worktree::verify(work_dir, &tree.entries, format)?;
    log.info(&format!(
        "working tree verified: {files} files match tree {}",
        hex::encode(&tree.tree)
    ));
    log.info(&format!("HEAD verified: {sha}"));
    let root = fs::canonicalize(work_dir).map_err(|source| GitError::WorkDir {
        path: work_dir.to_owned(),
        source,
    })?;
    Ok(VerifiedCheckout {
        root,
        commit,
        files,
        entries: tree.entries,
    })
}

/// Makes `work_dir` a repository holding only our own metadata, keeping reused objects.
fn prepare_work_dir(
    repo_url: &str,
    work_dir: &Path,
    format: ObjectFormat,
    log: &Logger,
) -> Result<Git, GitError> {
    let io = |source| GitError::WorkDir {
        path: work_dir.to_owned(),
        source,
    };
    fs::create_dir_all(work_dir).map_err(io)?;
    if !fs::metadata(work_dir).map_err(io)?.is_dir() {
        return Err(GitError::WorkDirNotDirectory {
            path: work_dir.to_owned(),
        });
    }
    let git = Git::locate(work_dir)?;
    let git_dir = work_dir.join(".git");
    match fs::symlink_metadata(&git_dir) {
        Ok(meta) if meta.is_dir() => {
            let origin = read_origin(&git, &git_dir)?;
            if origin != repo_url {
                return Err(GitError::OriginMismatch {
                    path: work_dir.to_owned(),
                    expected: repo_url.to_owned(),
                    actual: origin,
                });
            }
            log.info(&format!(
                "reusing the object store in {}; discarding its config, hooks, refs and index",
                git_dir.display()
            ));
            scrub_git_dir(&git_dir).map_err(io)?;
            require_plain_store(&git_dir)?;
        }
        Ok(_) => return Err(GitError::GitDirNotDirectory { path: git_dir }),
        Err(_) => {
            if fs::read_dir(work_dir).map_err(io)?.next().is_some() {
                return Err(GitError::WorkDirNotEmpty {
                    path: work_dir.to_owned(),
                });
            }
        }
    }
    let object_format = format!("--object-format={}", format.git_name());
    git.run(
        &["init", "--quiet", "--template=", &object_format],
        LOCAL_TIMEOUT,
    )?;
    git.run(&["config", "remote.origin.url", repo_url], LOCAL_TIMEOUT)?;
    let info = git_dir.join("info");
    fs::create_dir_all(&info).map_err(io)?;
    fs::write(info.join("attributes"), NEUTRAL_ATTRIBUTES).map_err(io)?;
    Ok(git)
}

/// The origin recorded in a reused checkout, read from its config file alone (no includes).
fn read_origin(git: &Git, git_dir: &Path) -> Result<String, GitError> {
    let config = git_dir.join("config");
    let mut args = vec!["config".to_owned(), "--no-includes".into(), "--file".into()];
    args.push(config.to_string_lossy().into_owned());
    args.extend(["--get".into(), "remote.origin.url".into()]);
    match git.run(&args, LOCAL_TIMEOUT) {
        Ok(output) => Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end_matches('\n')
            .to_owned()),
        // Exit 1: the key is not set.
        Err(GitError::Failed {
            status: Some(1), ..
        }) => Ok(String::new()),
        Err(other) => Err(other),
    }
}

/// Deletes everything in `.git` but the object store and the shallow list, and the store's
/// `info/` (alternates, http-alternates, commit-graphs). Never follows a symlink.
fn scrub_git_dir(git_dir: &Path) -> std::io::Result<()> {
    for item in fs::read_dir(git_dir)? {
        let item = item?;
        let name = item.file_name();
        let kind = item.file_type()?;
        let keep = (name == "objects" || name == "shallow") && !kind.is_symlink();
        if !keep {
            remove(&item.path(), kind.is_dir())?;
        }
    }
    let objects = git_dir.join("objects");
    if let Ok(meta) = fs::symlink_metadata(objects.join("info")) {
        remove(&objects.join("info"), meta.is_dir())?;
    }
    Ok(())
}

/// Refuses a reused object store holding anything but directories and regular files. git
/// opens loose objects, packs and `shallow` with a blocking `open` and no timeout: a FIFO
/// there hangs it (and the launcher, after the config and workload are measured); a symlink
/// could lead to one. Checked before any git command reads the store.
fn require_plain_store(git_dir: &Path) -> Result<(), GitError> {
    let special = |path: &Path, kind: &'static str| GitError::SpecialFile {
        path: path.to_owned(),
        kind,
    };
    let io = |source| GitError::WorkDir {
        path: git_dir.to_owned(),
        source,
    };
    let shallow = git_dir.join("shallow");
    if let Ok(meta) = fs::symlink_metadata(&shallow)
        && !meta.is_file()
    {
        return Err(special(&shallow, kind_name(meta.file_type())));
    }
    let mut pending = vec![git_dir.join("objects")];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        for item in entries {
            let item = item.map_err(io)?;
            let kind = item.file_type().map_err(io)?;
            if kind.is_dir() {
                pending.push(item.path());
            } else if !kind.is_file() {
                return Err(special(&item.path(), kind_name(kind)));
            }
        }
    }
    Ok(())
}

/// Removes everything in the working tree but `.git`, so nothing from a previous run or
/// another writer survives into the checkout.
fn clear_worktree(work_dir: &Path) -> Result<(), GitError> {
    let io = |source| GitError::WorkDir {
        path: work_dir.to_owned(),
        source,
    };
    for item in fs::read_dir(work_dir).map_err(io)? {
        let item = item.map_err(io)?;
        if item.file_name() != ".git" {
            let is_dir = item.file_type().map_err(io)?.is_dir();
            remove(&item.path(), is_dir).map_err(io)?;
        }
    }
    Ok(())
}

fn remove(path: &Path, is_dir: bool) -> std::io::Result<()> {
    // `remove_dir_all` does not follow symlinks; a symlink is removed as a file.
    if is_dir {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

/// Fetches just the commit (shallow, by id); if the server refuses, everything.
fn fetch(git: &Git, repo_url: &str, commit: &CommitId, log: &Logger) -> Result<(), GitError> {
    let sha = commit.to_string();
    log.info(&format!(
        "fetching {sha} from {repo_url} (shallow, by commit id)"
    ));
    let shallow = git.run(
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--depth=1",
            "origin",
            &sha,
        ],
        FETCH_TIMEOUT,
    );
    let Err(refused) = shallow else {
        return Ok(());
    };
    log.warn(&format!(
        "fetch by commit id failed ({refused}); fetching all branches and tags"
    ));
    let mut args = vec!["fetch", "--quiet", "--no-tags", "--no-write-fetch-head"];
    if git_dir_has_shallow(git) {
        args.push("--unshallow");
    }
    args.extend([
        "origin",
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/tags/*:refs/tags/*",
    ]);
    git.run(&args, FETCH_TIMEOUT).map(|_| ())
}

fn git_dir_has_shallow(git: &Git) -> bool {
    git.run(&["rev-parse", "--is-shallow-repository"], LOCAL_TIMEOUT)
        .is_ok_and(|out| out.stdout.starts_with(b"true"))
}

#[cfg(test)]
mod tests {
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
}
