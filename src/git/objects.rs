//! Reading the commit's tree through `git cat-file`, re-hashing every object, so that what
//! the launcher expects on disk comes from bytes it checked itself, not from git's word.
//!
//! A reused disk is untrusted: an object file there may hold other bytes than its name says,
//! and git does not re-hash objects on read. Here every commit and tree object is hashed and
//! compared with its name before it is parsed, so the expected file list is a Merkle proof
//! rooted in the approved commit id.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::GitError;
use super::command::Git;
use crate::digest::{CommitId, ObjectFormat};
use crate::hex;

/// Commit and tree objects larger than this are refused (they are kilobytes in practice).
const MAX_OBJECT_BYTES: u64 = 64 * 1024 * 1024;
/// Refuse trees with more entries than any real repository checks out.
const MAX_ENTRIES: usize = 2_000_000;

/// One path the commit's tree says must exist, relative to the checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Object name: a blob for files and symlinks, a commit for submodules, a tree for dirs.
    pub oid: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File {
        executable: bool,
    },
    Symlink,
    /// A submodule: git leaves an empty directory; its contents are not fetched.
    Submodule,
}

/// The verified content of a commit: its root tree and every entry below it.
#[derive(Debug)]
pub struct CommitTree {
    pub tree: Vec<u8>,
    pub entries: Vec<TreeEntry>,
}

/// Whether the local object store holds everything a checkout of the commit needs.
#[derive(Debug)]
pub enum Lookup {
    Complete(CommitTree),
    /// The first object found missing (hex), so the caller fetches.
    Missing(String),
}

/// Hashes a git object: `<type> <len>\0<content>` under the repository's hash function.
#[derive(Debug)]
pub enum ObjectHasher {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl ObjectHasher {
    #[must_use]
    pub fn new(format: ObjectFormat, kind: &str, len: u64) -> Self {
        let header = format!("{kind} {len}\0");
        let mut hasher = match format {
            ObjectFormat::Sha1 => Self::Sha1(Sha1::new()),
            ObjectFormat::Sha256 => Self::Sha256(Sha256::new()),
        };
        hasher.update(header.as_bytes());
        hasher
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
        }
    }

    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// The object name of `content` as an object of type `kind`.
#[must_use]
pub fn object_id(format: ObjectFormat, kind: &str, content: &[u8]) -> Vec<u8> {
    let mut hasher = ObjectHasher::new(format, kind, content.len() as u64);
    hasher.update(content);
    hasher.finish()
}

/// Longest one reader may run: it reads a reused object store, where a file could block
/// `git` (a FIFO planted after the store was checked), and a read from it has no timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A running `git cat-file --batch-command`, killed by a watchdog after [`READ_TIMEOUT`].
#[derive(Debug)]
pub struct ObjectReader {
    child: Arc<Mutex<Child>>,
    stdin: ChildStdin,
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
            .args(["cat-file", "--batch-command"])
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
                // Closing git's end of the pipes wakes the blocked read with EOF.
                if let Ok(mut child) = watched.lock() {
                    let _ = child.kill();
                }
            }
        });
        Ok(Self {
            child,
            stdin,
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
        let Some(content) = self.verified(commit.as_bytes(), "commit")? else {
            return Ok(Lookup::Missing(commit.to_string()));
        };
        let tree =
            parse_commit_tree(&content, self.format).ok_or_else(|| GitError::MalformedObject {
                oid: commit.to_string(),
                detail: "commit does not start with a tree line".into(),
            })?;
        let mut entries = Vec::new();
        let mut pending = vec![(tree.clone(), PathBuf::new())];
        while let Some((oid, prefix)) = pending.pop() {
            let Some(content) = self.verified(&oid, "tree")? else {
                return Ok(Lookup::Missing(hex::encode(&oid)));
            };
            for entry in parse_tree(&content, &oid, self.format)? {
                let path = prefix.join(&entry.name);
                match entry.kind {
                    EntryKind::Directory => pending.push((entry.oid.clone(), path.clone())),
                    EntryKind::File { .. } | EntryKind::Symlink => {
                        if !self.blob_exists(&entry.oid)? {
                            return Ok(Lookup::Missing(hex::encode(&entry.oid)));
                        }
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
                        oid: hex::encode(&tree),
                        detail: format!("more than {MAX_ENTRIES} entries"),
                    });
                }
            }
        }
        Ok(Lookup::Complete(CommitTree { tree, entries }))
    }

    /// Contents of an object of the expected type whose hash matches its name.
    fn verified(&mut self, oid: &[u8], kind: &str) -> Result<Option<Vec<u8>>, GitError> {
        let oid_hex = hex::encode(oid);
        let Some((actual_kind, size)) = self.request("contents", &oid_hex)? else {
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

    fn blob_exists(&mut self, oid: &[u8]) -> Result<bool, GitError> {
        let oid_hex = hex::encode(oid);
        match self.request("info", &oid_hex)? {
            None => Ok(false),
            Some((kind, _)) if kind == "blob" => Ok(true),
            Some((kind, _)) => Err(GitError::CorruptObject { oid: oid_hex, kind }),
        }
    }

    /// Sends one command; returns the object's type and size, or `None` if it is missing.
    fn request(&mut self, verb: &str, oid_hex: &str) -> Result<Option<(String, u64)>, GitError> {
        writeln!(self.stdin, "{verb} {oid_hex}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| stream_error(&e))?;
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

/// The root tree named on a commit's first line.
pub(crate) fn parse_commit_tree(content: &[u8], format: ObjectFormat) -> Option<Vec<u8>> {
    let rest = content.strip_prefix(b"tree ")?;
    let (hex_name, _) = rest.split_at_checked(format.id_len() * 2)?;
    if rest.get(format.id_len() * 2) != Some(&b'\n') {
        return None;
    }
    let text = std::str::from_utf8(hex_name).ok()?;
    match format {
        ObjectFormat::Sha1 => hex::decode_exact::<20>(text).map(|b| b.to_vec()),
        ObjectFormat::Sha256 => hex::decode_exact::<32>(text).map(|b| b.to_vec()),
    }
}

pub(crate) struct RawEntry {
    pub(crate) name: String,
    pub(crate) kind: EntryKind,
    pub(crate) oid: Vec<u8>,
}

/// Parses `<octal mode> <name>\0<raw oid>` entries, refusing names git itself refuses.
pub(crate) fn parse_tree(
    content: &[u8],
    tree: &[u8],
    format: ObjectFormat,
) -> Result<Vec<RawEntry>, GitError> {
    let malformed = |detail: &str| GitError::MalformedObject {
        oid: hex::encode(tree),
        detail: detail.to_owned(),
    };
    let mut entries = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let space = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| malformed("entry without a mode"))?;
        let (mode, after_mode) = rest.split_at(space);
        let after_mode = after_mode.get(1..).unwrap_or_default();
        let nul = after_mode
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| malformed("entry without a name terminator"))?;
        let (name, after_name) = after_mode.split_at(nul);
        let after_name = after_name.get(1..).unwrap_or_default();
        let (oid, next) = after_name
            .split_at_checked(format.id_len())
            .ok_or_else(|| malformed("truncated object name"))?;
        let kind = match mode {
            b"40000" => EntryKind::Directory,
            b"100644" | b"100664" => EntryKind::File { executable: false },
            b"100755" => EntryKind::File { executable: true },
            b"120000" => EntryKind::Symlink,
            b"160000" => EntryKind::Submodule,
            _ => {
                return Err(malformed(&format!(
                    "unknown mode {:?}",
                    String::from_utf8_lossy(mode)
                )));
            }
        };
        let name = std::str::from_utf8(name)
            .map_err(|_| malformed("entry name is not UTF-8"))?
            .to_owned();
        if name.is_empty()
            || name == "."
            || name == ".."
            || name.contains('/')
            || name.eq_ignore_ascii_case(".git")
        {
            return Err(malformed(&format!("forbidden entry name {name:?}")));
        }
        entries.push(RawEntry {
            name,
            kind,
            oid: oid.to_vec(),
        });
        rest = next;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`, and the empty tree.
        assert_eq!(
            hex::encode(&object_id(ObjectFormat::Sha1, "blob", b"hello\n")),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(
            hex::encode(&object_id(ObjectFormat::Sha1, "tree", b"")),
            "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
        );
        assert_eq!(
            hex::encode(&object_id(ObjectFormat::Sha256, "tree", b"")),
            "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321"
        );
    }

    #[test]
    fn parses_and_rejects_tree_entries() {
        let oid = [7u8; 20];
        let mut tree = b"100755 run.sh\0".to_vec();
        tree.extend_from_slice(&oid);
        tree.extend_from_slice(b"40000 sub\0");
        tree.extend_from_slice(&oid);
        let entries = parse_tree(&tree, &[0; 20], ObjectFormat::Sha1).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].kind, EntryKind::File { executable: true });
        assert_eq!(entries[1].kind, EntryKind::Directory);

        for (bad, detail) in [
            (b"100644 .git\0".to_vec(), "forbidden entry name \".git\""),
            (b"100644 ..\0".to_vec(), "forbidden entry name \"..\""),
            (b"100644 a/b\0".to_vec(), "forbidden entry name \"a/b\""),
            (b"100600 a\0".to_vec(), "unknown mode \"100600\""),
        ] {
            let mut tree = bad;
            tree.extend_from_slice(&oid);
            match parse_tree(&tree, &[0; 20], ObjectFormat::Sha1) {
                Err(GitError::MalformedObject { detail: d, .. }) => assert_eq!(d, detail),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("accepted {detail}"),
            }
        }
        for truncated in [&b"100644 a\0\x07\x07"[..], b"100644 a", b"100644"] {
            assert!(parse_tree(truncated, &[0; 20], ObjectFormat::Sha1).is_err());
        }
    }

    #[test]
    fn commit_tree_line() {
        let text = format!("tree {}\nparent x\n", "ab".repeat(20));
        assert_eq!(
            parse_commit_tree(text.as_bytes(), ObjectFormat::Sha1),
            Some(vec![0xab; 20])
        );
        assert_eq!(parse_commit_tree(b"tree abc\n", ObjectFormat::Sha1), None);
        assert_eq!(parse_commit_tree(b"parent x", ObjectFormat::Sha1), None);
    }
}
