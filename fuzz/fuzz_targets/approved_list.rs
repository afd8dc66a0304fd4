//! Approved lists (`{"approved_commits": [...]}`, NEAR's `{"approved_hashes": [...]}`) through
//! `ApprovedList::from_bytes`, what `ApprovedList::load` parses. Invariants: entries are
//! unique and non-empty; written back as a list they parse to the same entries; every entry
//! is approvable as an override and the newest is chosen without one.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use trusted_launcher::approval::{ApprovedList, ListEntry, Selection};
use trusted_launcher::digest::{CommitId, ImageDigest};

fn check<T: ListEntry + std::fmt::Debug>(bytes: &[u8], pinned: T) {
    let path = Path::new("/mnt/shared/approved.json");
    let Ok(list) = ApprovedList::<T>::from_bytes(path, bytes, pinned) else {
        return;
    };
    let entries = list.entries().to_vec();
    assert!(!entries.is_empty(), "an empty list was accepted");
    let mut written = serde_json::Map::new();
    written.insert(
        T::FIELD.to_owned(),
        entries.iter().map(ToString::to_string).collect(),
    );
    let written = serde_json::Value::Object(written);
    let again = ApprovedList::<T>::from_bytes(path, written.to_string().as_bytes(), pinned)
        .expect("a list written from parsed entries is refused");
    assert_eq!(again.entries(), &entries[..], "round trip");
    for (index, entry) in entries.iter().enumerate() {
        assert!(!entries[..index].contains(entry), "duplicate {entry}");
        let approved = list
            .approve(Some(*entry))
            .expect("a listed override is refused");
        assert_eq!(*approved.value(), *entry);
        assert_eq!(approved.selection(), Selection::Override);
    }
    let newest = list.approve(None).expect("no newest entry");
    assert_eq!(*newest.value(), entries[0]);
}

fuzz_target!(|bytes: &[u8]| {
    check(
        bytes,
        CommitId::parse(&"c".repeat(40)).expect("pinned commit"),
    );
    check(
        bytes,
        ImageDigest::parse(&format!("sha256:{}", "c".repeat(64))).expect("pinned digest"),
    );
});
