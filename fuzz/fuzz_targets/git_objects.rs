//! Git objects from a reused object store: a commit's tree line and a tree's entries through
//! the parsers `ObjectReader` runs on `git cat-file` output (SHA-1 and SHA-256 stores), and
//! the object-name hash. Invariants: tree entries written back as git writes them parse to
//! the same entries (checked in `fuzzing::git_tree`), names git refuses never come back,
//! a commit's tree name is the hex on its first line, and a streamed hash is the one-piece
//! hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::digest::ObjectFormat;
use trusted_launcher::fuzzing::{git_commit_tree, git_object_id, git_tree};
use trusted_launcher::hex;

fuzz_target!(|bytes: &[u8]| {
    for format in [ObjectFormat::Sha1, ObjectFormat::Sha256] {
        if let Some(tree) = git_commit_tree(bytes, format) {
            assert_eq!(tree.len(), format.id_len());
            let line = format!("tree {}\n", hex::encode(&tree));
            assert!(bytes.starts_with(line.as_bytes()), "tree line");
        }
        match git_tree(bytes, format) {
            Err(broken) => panic!("{broken}"),
            Ok(None) => {}
            Ok(Some(entries)) => {
                for (name, _, oid) in entries {
                    assert_eq!(oid.len(), format.id_len());
                    assert!(!name.is_empty() && !name.contains('/') && !name.contains('\0'));
                    assert!(name != "." && name != ".." && !name.eq_ignore_ascii_case(".git"));
                }
            }
        }
        let split = bytes.first().map_or(0, |b| usize::from(*b));
        for kind in ["blob", "tree", "commit"] {
            git_object_id(format, kind, bytes, split).expect("object name");
        }
    }
});
