//! Proves the working tree is exactly the commit's tree: every expected path with the right
//! type, mode and content hash, and nothing else beside `.git`.
//!
//! A warm start first asks whether the tree already there can stand in for a fresh checkout
//! ([`verify_reusable`]): the same proof, plus everything else a fresh checkout by this
//! process would have made so — permission bits, owner, one link per file.

use std::collections::HashSet;
use std::fs;
use std::io::Read as _;
use std::num::NonZero;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::thread;

use super::GitError;
use super::objects::{EntryKind, ObjectHasher, TreeEntry, object_id};
use crate::capped_read::CappedReadError;
use crate::digest::ObjectFormat;

/// Checks `root` against `entries`; returns the number of files and symlinks checked.
pub fn verify(root: &Path, entries: &[TreeEntry], format: ObjectFormat) -> Result<usize, GitError> {
    let checked = verify_tracked(root, entries, format)?;
    let expected: HashSet<&Path> = entries.iter().map(|e| e.path.as_path()).collect();
    find_extra(root, Path::new(""), &expected)?;
    Ok(checked)
}

/// What a checkout by this process creates: git creates files with mode 0666 or 0777 and
/// directories with 0777, less the umask (`checkout_entry` in git's `entry.c`, `mkdir` in
/// `safe_create_leading_directories`), owned by the launcher's effective uid.
#[derive(Clone, Copy, Debug)]
pub struct Fresh {
    umask: u32,
    uid: u32,
}

impl Fresh {
    /// This process's umask (`Umask:` in `/proc/self/status`, proc(5)) and effective uid.
    /// `None` (reuse nothing) if either is unknown, or if the umask leaves group or others
    /// write access: then a file's group would decide who else can change it.
    #[must_use]
    pub fn of_this_process() -> Option<Self> {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let umask = status
            .lines()
            .find_map(|line| line.strip_prefix("Umask:"))
            .and_then(|value| u32::from_str_radix(value.trim(), 8).ok())?;
        let uid = crate::work_dir::euid().ok()?;
        (umask & 0o022 == 0o022).then_some(Self { umask, uid })
    }
}

/// Whether the tree at `root` is what a fresh checkout of `entries` by this process would
/// leave: [`verify`]'s proof, and also every directory and file with the permission bits
/// and owner a checkout gives it, and every file with a single link (another link, outside
/// `WORK_DIR`, would let its owner change the file later). An ACL cannot grant write past
/// the group bits (its mask is them). Extended attributes (file capabilities) are not
/// compared: std reads none without `unsafe`. Returns the files checked.
pub fn verify_reusable(
    root: &Path,
    entries: &[TreeEntry],
    format: ObjectFormat,
    fresh: Fresh,
) -> Result<usize, GitError> {
    for entry in entries {
        let mismatch = |detail: String| GitError::WorktreeMismatch {
            path: entry.path.clone(),
            detail,
        };
        let meta = fs::symlink_metadata(root.join(&entry.path))
            .map_err(|_| mismatch("is missing".into()))?;
        let (created, right_type) = match entry.kind {
            EntryKind::Directory | EntryKind::Submodule => (0o777, meta.is_dir()),
            EntryKind::File { executable: true } => (0o777, meta.is_file()),
            EntryKind::File { executable: false } => (0o666, meta.is_file()),
            // A symlink's own mode and owner change nothing: only its directory's writers
            // can replace it, and the directory is checked.
            EntryKind::Symlink => continue,
        };
        if !right_type {
            // [`verify`] below names the wrong type.
            continue;
        }
        let mode = meta.mode() & 0o7777;
        if mode != created & !fresh.umask {
            return Err(mismatch(format!(
                "has mode {mode:o}, a fresh checkout's is {:o}",
                created & !fresh.umask
            )));
        }
        if meta.uid() != fresh.uid {
            return Err(mismatch(format!(
                "is owned by uid {}, not the launcher's {}",
                meta.uid(),
                fresh.uid
            )));
        }
        if meta.is_file() && meta.nlink() != 1 {
            return Err(mismatch(format!("has {} hard links", meta.nlink())));
        }
    }
    verify(root, entries, format)
}

/// Checks every path of `entries` (type, exec bit, content), ignoring paths the commit does
/// not have; returns the number of files and symlinks checked.
pub fn verify_tracked(
    root: &Path,
    entries: &[TreeEntry],
    format: ObjectFormat,
) -> Result<usize, GitError> {
    // Hashed on every core (at most 8), each thread a contiguous run of entries; the first
    // mismatch in entry order is the one reported, as by one thread.
    let workers = thread::available_parallelism()
        .map_or(1, NonZero::get)
        .min(8);
    if workers < 2 || entries.len() < 16 {
        return check_entries(root, entries, format);
    }
    thread::scope(|scope| {
        let parts: Vec<_> = entries
            .chunks(entries.len().div_ceil(workers))
            .map(|part| scope.spawn(move || check_entries(root, part, format)))
            .collect();
        let mut checked = 0;
        for part in parts {
            checked += part.join().map_err(|_| GitError::WorktreeMismatch {
                path: PathBuf::new(),
                detail: "could not be verified (a hashing thread failed)".into(),
            })??;
        }
        Ok(checked)
    })
}

fn check_entries(
    root: &Path,
    entries: &[TreeEntry],
    format: ObjectFormat,
) -> Result<usize, GitError> {
    let mut checked = 0;
    for entry in entries {
        let path = root.join(&entry.path);
        let mismatch = |detail: &str| GitError::WorktreeMismatch {
            path: entry.path.clone(),
            detail: detail.to_owned(),
        };
        let meta = fs::symlink_metadata(&path).map_err(|_| mismatch("is missing"))?;
        let kind = meta.file_type();
        match entry.kind {
            EntryKind::Directory => {
                if !kind.is_dir() {
                    return Err(mismatch("should be a directory"));
                }
            }
            EntryKind::Submodule => {
                let empty = kind.is_dir()
                    && fs::read_dir(&path).is_ok_and(|mut items| items.next().is_none());
                if !empty {
                    return Err(mismatch("should be an empty submodule directory"));
                }
            }
            EntryKind::Symlink => {
                if !kind.is_symlink() {
                    return Err(mismatch("should be a symlink"));
                }
                let target = fs::read_link(&path).map_err(|_| mismatch("unreadable symlink"))?;
                if object_id(format, "blob", target.as_os_str().as_bytes()) != entry.oid {
                    return Err(mismatch("symlink target differs from the commit"));
                }
                checked += 1;
            }
            EntryKind::File { executable } => {
                if !kind.is_file() {
                    return Err(mismatch("should be a regular file"));
                }
                if (meta.permissions().mode() & 0o100 != 0) != executable {
                    return Err(mismatch("executable bit differs from the commit"));
                }
                if blob_id(&path, meta.len(), format).map_err(|_| mismatch("unreadable"))?
                    != entry.oid
                {
                    return Err(mismatch("content differs from the commit"));
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}

fn blob_id(path: &Path, len: u64, format: ObjectFormat) -> std::io::Result<Vec<u8>> {
    let mut hasher = ObjectHasher::new(format, "blob", len);
    // Opened without blocking and checked on the descriptor: the path was a regular file a
    // moment ago, but another writer on a shared volume may have swapped in a FIFO.
    let mut file = crate::capped_read::open_regular(path).map_err(CappedReadError::into_io)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        total += read as u64;
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
    if total != len {
        return Err(std::io::Error::other("file changed while hashing"));
    }
    Ok(hasher.finish())
}

/// Walks the tree without following symlinks; any path the commit does not have is an error.
fn find_extra(root: &Path, relative: &Path, expected: &HashSet<&Path>) -> Result<(), GitError> {
    let dir = root.join(relative);
    let unreadable = |path: PathBuf| GitError::WorktreeMismatch {
        path,
        detail: "cannot be listed".into(),
    };
    for item in fs::read_dir(&dir).map_err(|_| unreadable(relative.to_owned()))? {
        let item = item.map_err(|_| unreadable(relative.to_owned()))?;
        let path = relative.join(item.file_name());
        if relative.as_os_str().is_empty() && item.file_name() == ".git" {
            continue;
        }
        if !expected.contains(path.as_path()) {
            return Err(GitError::WorktreeMismatch {
                path,
                detail: "is not in the commit".into(),
            });
        }
        let is_real_dir = item.file_type().is_ok_and(|t| t.is_dir());
        if is_real_dir {
            find_extra(root, &path, expected)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 40 files, hashed by several threads: all pass, and of two changed files the one
    /// first in the tree's order is named, as one thread going in order would name it.
    #[test]
    fn parallel_verification_reports_the_first_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for i in 0..40 {
            let (name, content) = (format!("f{i:02}"), format!("file {i}\n"));
            fs::write(dir.path().join(&name), &content).unwrap();
            entries.push(TreeEntry {
                path: PathBuf::from(name),
                kind: EntryKind::File { executable: false },
                oid: object_id(ObjectFormat::Sha1, "blob", content.as_bytes()),
            });
        }
        assert_eq!(
            verify(dir.path(), &entries, ObjectFormat::Sha1).unwrap(),
            40
        );
        fs::write(dir.path().join("f35"), "changed\n").unwrap();
        fs::write(dir.path().join("f07"), "changed\n").unwrap();
        match verify(dir.path(), &entries, ObjectFormat::Sha1) {
            Err(GitError::WorktreeMismatch { path, detail }) => {
                assert_eq!(path, Path::new("f07"));
                assert_eq!(detail, "content differs from the commit");
            }
            other => panic!("{other:?}"),
        }
    }
}
