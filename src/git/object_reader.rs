//! Reading the commit's tree through one `git cat-file --batch-command --buffer`, re-hashing
//! every commit and tree object before it is parsed, so that what the launcher expects on
//! disk comes from bytes it checked itself, not from git's word.
//!
//! The tree is read one level at a time: every request of a level (the trees found at that
//! depth, and an existence check for each blob) is written before the first answer is read,
//! so a tree costs one round trip per level of directories, not one per object. The
//! requests are written from a thread of their own: git answers while it reads, and a
//! writer that waited for its answers' reader would deadlock on two full pipes.

use std::io::{BufRead as _, BufReader, BufWriter, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use super::GitError;
use super::command::Git;
use super::objects::{
    CommitTree, EntryKind, Lookup, TreeEntry, object_id, parse_commit_tree, parse_tree,
};
use crate::digest::{CommitId, ObjectFormat};
use crate::hex;

/// Commit and tree objects larger than this are refused (they are kilobytes in practice).
const MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// Refuse trees with more entries than any real repository checks out.
const MAX_ENTRIES: usize = 2_000_000;

/// Longest one reader may run: it reads a reused object store, where a file could block
/// `git` (a FIFO planted after the store was checked), and a read from it has no timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// One object asked for, and what the answer is for.
enum Want {
    Commit(Vec<u8>),
    /// A tree, and the path of the directory it describes.
    Tree(Vec<u8>, PathBuf),
    /// A blob (file content or symlink target): only its presence and type are asked for;
    /// its bytes are hashed from the checked-out file.
    Blob(Vec<u8>),
}

impl Want {
    fn request(&self) -> (&'static str, &[u8]) {
        match self {
            Self::Commit(oid) | Self::Tree(oid, _) => ("contents", oid),
            Self::Blob(oid) => ("info", oid),
        }
    }
}

/// A running `git cat-file --batch-command --buffer`, killed by a watchdog after
/// [`READ_TIMEOUT`].
#[derive(Debug)]
pub struct ObjectReader {
    child: Arc<Mutex<Child>>,
    /// `None` while a writer thread has it.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    format: ObjectFormat,
    /// Dropping it stops the watchdog.
    _watchdog: mpsc::Sender<()>,
    expired: Arc<AtomicBool>,
}

impl ObjectReader {
    pub fn spawn(git: &Git, format: ObjectFormat) -> Result<Self, GitError> {
        let mut command = git.command();
        command
            .args(["cat-file", "--batch-command", "--buffer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let spawn_error = |source| GitError::Spawn {
            command: "cat-file --batch-command".into(),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(GitError::ObjectStream {
                detail: "cat-file pipes unavailable".into(),
            });
        };
        let child = Arc::new(Mutex::new(child));
        let expired = Arc::new(AtomicBool::new(false));
        let (watchdog, stop) = mpsc::channel::<()>();
        let (watched, flag) = (Arc::clone(&child), Arc::clone(&expired));
        thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(READ_TIMEOUT) {
                flag.store(true, Ordering::SeqCst);
                // Closing git's end of the pipes wakes the blocked read with EOF (and the
                // blocked writer with EPIPE).
                if let Ok(mut child) = watched.lock() {
                    let _ = child.kill();
                }
            }
        });
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            format,
            _watchdog: watchdog,
            expired,
        })
    }

    /// Reads the whole tree of `commit`, or reports the first missing object.
    pub fn read_commit(&mut self, commit: &CommitId) -> Result<Lookup, GitError> {
        let result = self.read_tree_of(commit);
        if self.expired.load(Ordering::SeqCst) {
            return Err(GitError::TimedOut {
                command: "cat-file --batch-command".into(),
                seconds: READ_TIMEOUT.as_secs(),
            });
        }
        result
    }

    fn read_tree_of(&mut self, commit: &CommitId) -> Result<Lookup, GitError> {
        let mut root = None;
        let mut commit_object = Vec::new();
        let mut entries = Vec::new();
        let mut level = vec![Want::Commit(commit.as_bytes().to_vec())];
        while !level.is_empty() {
            let writer = self.send(&level)?;
            let mut next = Vec::new();
            for want in level {
                let missing = match want {
                    Want::Commit(oid) => match self.verified(&oid, "commit")? {
                        Some(content) => {
                            let tree =
                                parse_commit_tree(&content, self.format).ok_or_else(|| {
                                    GitError::MalformedObject {
                                        oid: hex::encode(&oid),
                                        detail: "commit does not start with a tree line".into(),
                                    }
                                })?;
                            next.push(Want::Tree(tree.clone(), PathBuf::new()));
                            root = Some(tree);
                            commit_object = content;
                            None
                        }
                        None => Some(oid),
                    },
                    Want::Tree(oid, prefix) => match self.verified(&oid, "tree")? {
                        Some(content) => {
                            self.add_entries(&content, &oid, &prefix, &mut entries, &mut next)?;
                            None
                        }
                        None => Some(oid),
                    },
                    Want::Blob(oid) => self.check_blob(oid)?,
                };
                if let Some(oid) = missing {
                    // The reader is dropped with the rest unread: git and the writer die.
                    return Ok(Lookup::Missing(hex::encode(&oid)));
                }
            }
            self.stdin = Some(writer.join().map_err(|_| GitError::ObjectStream {
                detail: "cat-file request writer failed".into(),
            })??);
            level = next;
        }
        let tree = root.ok_or_else(|| GitError::ObjectStream {
            detail: "no commit read".into(),
        })?;
        Ok(Lookup::Complete(CommitTree {
            tree,
            entries,
            object: commit_object,
        }))
    }

    /// Records the entries of a verified tree and asks for its subtrees and blobs next.
    fn add_entries(
        &self,
        content: &[u8],
        oid: &[u8],
        prefix: &std::path::Path,
        entries: &mut Vec<TreeEntry>,
        next: &mut Vec<Want>,
    ) -> Result<(), GitError> {
        for entry in parse_tree(content, oid, self.format)? {
            let path = prefix.join(&entry.name);
            match entry.kind {
                EntryKind::Directory => next.push(Want::Tree(entry.oid.clone(), path.clone())),
                EntryKind::File { .. } | EntryKind::Symlink => {
                    next.push(Want::Blob(entry.oid.clone()));
                }
                EntryKind::Submodule => {}
            }
            entries.push(TreeEntry {
                path,
                kind: entry.kind,
                oid: entry.oid,
            });
            if entries.len() > MAX_ENTRIES {
                return Err(GitError::MalformedObject {
                    oid: hex::encode(oid),
                    detail: format!("more than {MAX_ENTRIES} entries below it"),
                });
            }
        }
        Ok(())
    }

    /// Writes every request of a level, then `flush`, from a thread; it hands stdin back.
    fn send(
        &mut self,
        level: &[Want],
    ) -> Result<thread::JoinHandle<Result<ChildStdin, GitError>>, GitError> {
        let stdin = self.stdin.take().ok_or_else(|| GitError::ObjectStream {
            detail: "cat-file requests already being written".into(),
        })?;
        let lines: Vec<(&'static str, Vec<u8>)> = level
            .iter()
            .map(|want| {
                let (verb, oid) = want.request();
                (verb, oid.to_vec())
            })
            .collect();
        Ok(thread::spawn(move || {
            let mut out = BufWriter::new(stdin);
            for (verb, oid) in &lines {
                writeln!(out, "{verb} {}", hex::encode(oid)).map_err(|e| stream_error(&e))?;
            }
            out.write_all(b"flush\n")
                .and_then(|()| out.flush())
                .map_err(|e| stream_error(&e))?;
            out.into_inner().map_err(|e| stream_error(e.error()))
        }))
    }

    /// Contents of an object of the expected type whose hash matches its name.
    fn verified(&mut self, oid: &[u8], kind: &str) -> Result<Option<Vec<u8>>, GitError> {
        let oid_hex = hex::encode(oid);
        let Some((actual_kind, size)) = self.answer(&oid_hex)? else {
            return Ok(None);
        };
        if size > MAX_OBJECT_BYTES {
            return Err(GitError::MalformedObject {
                oid: oid_hex,
                detail: format!("{actual_kind} object of {size} bytes exceeds the cap"),
            });
        }
        let mut content = Vec::new();
        (&mut self.stdout)
            .take(size + 1)
            .read_to_end(&mut content)
            .map_err(|e| stream_error(&e))?;
        if content.pop() != Some(b'\n') || content.len() as u64 != size {
            return Err(GitError::ObjectStream {
                detail: format!("short read of object {oid_hex}"),
            });
        }
        if actual_kind != kind || object_id(self.format, &actual_kind, &content) != oid {
            return Err(GitError::CorruptObject {
                oid: oid_hex,
                kind: actual_kind,
            });
        }
        Ok(Some(content))
    }

    /// `None` if the blob is present, its name if it is missing.
    fn check_blob(&mut self, oid: Vec<u8>) -> Result<Option<Vec<u8>>, GitError> {
        let oid_hex = hex::encode(&oid);
        match self.answer(&oid_hex)? {
            None => Ok(Some(oid)),
            Some((kind, _)) if kind == "blob" => Ok(None),
            Some((kind, _)) => Err(GitError::CorruptObject { oid: oid_hex, kind }),
        }
    }

    /// Reads the answer to the next request: the object's type and size, or `None` if it
    /// is missing.
    fn answer(&mut self, oid_hex: &str) -> Result<Option<(String, u64)>, GitError> {
        let mut header = String::new();
        (&mut self.stdout)
            .take(4096)
            .read_line(&mut header)
            .map_err(|e| stream_error(&e))?;
        let fields: Vec<&str> = header.trim_end_matches('\n').split(' ').collect();
        match fields.as_slice() {
            [name, "missing"] if *name == oid_hex => Ok(None),
            [name, kind, size] if *name == oid_hex => size
                .parse()
                .map(|size| Some(((*kind).to_owned(), size)))
                .map_err(|_| GitError::ObjectStream {
                    detail: format!("bad cat-file header {header:?}"),
                }),
            _ => Err(GitError::ObjectStream {
                detail: format!("unexpected cat-file reply {header:?} for {oid_hex}"),
            }),
        }
    }
}

fn stream_error(error: &std::io::Error) -> GitError {
    GitError::ObjectStream {
        detail: error.to_string(),
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            // No background `gc --auto`: it would pack the objects this test deletes.
            .args(["-c", "gc.auto=0"])
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
        String::from_utf8(output.stdout).unwrap()
    }

    /// A level of 6,000 requests (about 300 KiB, where a pipe holds 64 KiB: pipe(7)) is
    /// written while its answers are read: a writer on the reading thread would block on a
    /// full pipe while git blocks on its own full stdout. What is read is git's own listing.
    #[test]
    fn reads_wide_and_deep_trees_in_one_request_per_level() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "--quiet"]);
        fs::create_dir_all(repo.join("wide")).unwrap();
        for i in 0..6000 {
            fs::write(repo.join(format!("wide/f{i}")), format!("{i}\n")).unwrap();
        }
        fs::create_dir_all(repo.join("a/b/c")).unwrap();
        fs::write(repo.join("a/b/c/deep.sh"), "true\n").unwrap();
        std::os::unix::fs::symlink("a/b", repo.join("link")).unwrap();
        git(repo, &["add", "--all"]);
        git(repo, &["commit", "--quiet", "-m", "c"]);
        let sha = git(repo, &["rev-parse", "HEAD"]);
        let commit = CommitId::parse(sha.trim()).unwrap();

        let reader = Git::locate(repo).unwrap();
        let Lookup::Complete(tree) = ObjectReader::spawn(&reader, ObjectFormat::Sha1)
            .unwrap()
            .read_commit(&commit)
            .unwrap()
        else {
            panic!("objects reported missing")
        };
        let mut ours: Vec<(String, String)> = tree
            .entries
            .iter()
            .map(|e| (e.path.display().to_string(), hex::encode(&e.oid)))
            .collect();
        ours.sort();
        let mut theirs: Vec<(String, String)> = git(repo, &["ls-tree", "-r", "-t", "HEAD"])
            .lines()
            .map(|line| {
                let (meta, path) = line.split_once('\t').unwrap();
                (path.to_owned(), meta.rsplit(' ').next().unwrap().to_owned())
            })
            .collect();
        theirs.sort();
        assert_eq!(ours.len(), 6000 + 6);
        assert_eq!(ours, theirs);

        // A blob deleted from the store is reported missing (the caller fetches).
        let blob = git(repo, &["rev-parse", "HEAD:a/b/c/deep.sh"]);
        let blob = blob.trim();
        let (fan, rest) = blob.split_at(2);
        fs::remove_file(repo.join(".git/objects").join(fan).join(rest)).unwrap();
        match ObjectReader::spawn(&reader, ObjectFormat::Sha1)
            .unwrap()
            .read_commit(&commit)
            .unwrap()
        {
            Lookup::Missing(missing) => assert_eq!(missing, blob),
            Lookup::Complete(_) => panic!("a missing blob went unnoticed"),
        }
    }
}
