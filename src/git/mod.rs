//! The hardened checkout: what git-launcher does, minus everything it trusts.
//!
//! From a reused `WORK_DIR` only the object store is kept, and every object read from it is
//! re-hashed (see `objects`). All other repository state — config (`insteadOf`, fsmonitor,
//! filters), hooks, replace refs, alternates, grafts, index, attributes — is deleted and
//! recreated, git runs with a cleared environment and no system or global config, and the
//! finished working tree is compared file by file with the approved commit's tree.

mod command;
mod fetch;
mod object_reader;
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
use command::{Git, LOCAL_TIMEOUT};
use object_reader::ObjectReader;
use objects::Lookup;

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
    /// The commit object's content, verified against `commit` (gitsign signs it).
    pub commit_object: Vec<u8>,
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

    // Blobs are required in the store even when the working tree turns out to be kept: the
    // store stays able to check the commit out again.
    let tree =
        if let Lookup::Complete(tree) = ObjectReader::spawn(&git, format)?.read_commit(&commit)? {
            log.info(&format!(
                "commit {commit} is already in the local object store; not fetching"
            ));
            tree
        } else {
            let mut complete = || {
                ObjectReader::spawn(&git, format)?
                    .read_commit(&commit)
                    .map(|lookup| matches!(lookup, Lookup::Complete(_)))
            };
            fetch::fetch(&git, repo_url, &commit, log, &mut complete)?;
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
        };
    let reused = reusable_worktree(work_dir, &tree.entries, format, log);

    let sha = commit.to_string();
    let files = if let Some(files) = reused {
        // The tree on disk is the commit's, as a checkout would leave it: give git the
        // index and HEAD a checkout would have written, and leave the files alone.
        git.run(&["read-tree", &sha], LOCAL_TIMEOUT)?;
        // A detached HEAD is the id alone (gitrepository-layout(5)); `git init` just wrote
        // this file, and git reads it back below.
        fs::write(work_dir.join(".git/HEAD"), format!("{sha}\n")).map_err(|source| {
            GitError::WorkDir {
                path: work_dir.to_owned(),
                source,
            }
        })?;
        verify_head(&git, &sha)?;
        files
    } else {
        clear_worktree(work_dir)?;
        git.run(
            &["checkout", "--quiet", "--force", "--detach", &sha],
            LOCAL_TIMEOUT,
        )?;
        verify_head(&git, &sha)?;
        worktree::verify(work_dir, &tree.entries, format)?
    };
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
        commit_object: tree.object,
        entries: tree.entries,
    })
}

/// HEAD as git reads it must name the commit.
fn verify_head(git: &Git, sha: &str) -> Result<(), GitError> {
    let head = git.run(&["rev-parse", "--verify", "HEAD^{commit}"], LOCAL_TIMEOUT)?;
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    if head == sha {
        Ok(())
    } else {
        Err(GitError::HeadMismatch {
            expected: sha.to_owned(),
            actual: head,
        })
    }
}

/// A warm start: the working tree left by an earlier run, if it passes the whole proof and
/// is, down to modes, owner and links, what a fresh checkout would make (the number of
/// files checked). Anything else — an extra, missing or changed path, type, mode, symlink
/// target or byte — and the tree is wiped and checked out again.
fn reusable_worktree(
    work_dir: &Path,
    entries: &[TreeEntry],
    format: ObjectFormat,
    log: &Logger,
) -> Option<usize> {
    let has_files = fs::read_dir(work_dir)
        .ok()?
        .any(|item| item.is_ok_and(|item| item.file_name() != ".git"));
    if !has_files && !entries.is_empty() {
        return None;
    }
    let Some(fresh) = worktree::Fresh::of_this_process() else {
        log.info("umask or effective uid unknown or group/other-writable; checking out afresh");
        return None;
    };
    match worktree::verify_reusable(work_dir, entries, format, fresh) {
        Ok(files) => {
            log.info("the working tree already is the commit's tree; not checking it out again");
            Some(files)
        }
        Err(error) => {
            let why = match error {
                GitError::WorktreeMismatch { path, detail } => {
                    format!("{} {detail}", path.display())
                }
                other => other.to_string(),
            };
            log.info(&format!(
                "the working tree is not the commit's ({why}); wiping it and checking out"
            ));
            None
        }
    }
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
    // What `git init --template= --object-format=<f>` followed by `git config
    // remote.origin.url <url>` writes (gitrepository-layout(5); git-config(1), "Syntax":
    // inside double quotes, `"` and `\` are escaped with `\`), without two git processes:
    // everything but the objects was just deleted, and git reads it all back below.
    for dir in ["objects/info", "objects/pack", "refs/heads", "refs/tags"] {
        fs::create_dir_all(git_dir.join(dir)).map_err(io)?;
    }
    fs::write(git_dir.join("HEAD"), "ref: refs/heads/master\n").map_err(io)?;
    let extensions = match format {
        ObjectFormat::Sha1 => "",
        ObjectFormat::Sha256 => "[extensions]\n\tobjectformat = sha256\n",
    };
    let version = u8::from(format == ObjectFormat::Sha256);
    fs::write(
        git_dir.join("config"),
        format!(
            "[core]\n\trepositoryformatversion = {version}\n\tfilemode = true\n\tbare = false\n\
             \tlogallrefupdates = true\n{extensions}[remote \"origin\"]\n\turl = {}\n",
            quote_config_value(repo_url)
        ),
    )
    .map_err(io)?;
    let info = git_dir.join("info");
    fs::create_dir_all(&info).map_err(io)?;
    fs::write(info.join("attributes"), NEUTRAL_ATTRIBUTES).map_err(io)?;
    Ok(git)
}

/// A git config value in double quotes, every character but `"`, `\`, newline and tab as is.
fn quote_config_value(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
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

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
