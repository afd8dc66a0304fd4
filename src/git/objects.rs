//! Git objects as the launcher checks them: the hash of `<type> <len>\0<content>`, and the
//! commit and tree formats, parsed only after the bytes hashed to their name.
//!
//! A reused disk is untrusted: an object file there may hold other bytes than its name says,
//! and git does not re-hash objects on read. Every commit and tree object is hashed and
//! compared with its name before it is parsed (see `object_reader`), so the expected file
//! list is a Merkle proof rooted in the approved commit id.

use std::path::PathBuf;

use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::GitError;
use crate::digest::ObjectFormat;
use crate::hex;

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
    /// The commit object's content, verified against its id (what a signature covers).
    pub object: Vec<u8>,
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
