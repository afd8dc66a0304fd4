//! Approved lists, and the only way to obtain an [`Approved`] value.
//!
//! Selection (NEAR tee-launcher's rules): the override if set and approved, else the newest
//! approved entry. Without a list file the approved set is just the pinned value. The list's
//! contents are untrusted: size-capped, strictly parsed, every entry a full identity.

use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::capped_read::{CappedReadError, read_capped};
use crate::digest::{CommitId, ImageDigest};
use crate::workload::Workload;

const MAX_LIST_BYTES: u64 = 1024 * 1024;

/// A value that passed approval. Private fields: [`ApprovedList::approve`] is the only
/// constructor, and only approved values can be measured or launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approved<T> {
    value: T,
    selection: Selection,
}

impl<T: Copy> Approved<T> {
    pub fn value(&self) -> &T {
        &self.value
    }

    pub fn selection(&self) -> Selection {
        self.selection
    }
}

impl Approved<CommitId> {
    /// The workload this approval names, for measurement.
    #[must_use]
    pub fn workload(&self) -> Approved<Workload> {
        Approved {
            value: Workload::Git(self.value),
            selection: self.selection,
        }
    }
}

impl Approved<ImageDigest> {
    /// The workload this approval names, for measurement.
    #[must_use]
    pub fn workload(&self) -> Approved<Workload> {
        Approved {
            value: Workload::Image(self.value),
            selection: self.selection,
        }
    }
}

/// Why this value was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// No approved list file: the pinned value from the attested config.
    Pinned,
    /// The newest entry of the approved list.
    Newest,
    /// The config's override, found in the approved list.
    Override,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pinned => "pinned in the config",
            Self::Newest => "newest entry of the approved list",
            Self::Override => "override, found in the approved list",
        })
    }
}

/// What an approved list holds, and how its file names them.
pub trait ListEntry: Copy + Eq + Hash + fmt::Display {
    /// The one field of the list file: `{"<FIELD>": ["...", ...]}`.
    const FIELD: &'static str;
    /// What an entry must be, for messages.
    const EXPECTED: &'static str;
    fn parse_entry(text: &str) -> Option<Self>;
}

impl ListEntry for CommitId {
    const FIELD: &'static str = "approved_commits";
    const EXPECTED: &'static str = "a full lowercase commit id";
    fn parse_entry(text: &str) -> Option<Self> {
        CommitId::parse(text)
    }
}

/// NEAR tee-launcher's format.
impl ListEntry for ImageDigest {
    const FIELD: &'static str = "approved_hashes";
    const EXPECTED: &'static str = "a sha256:<64 lowercase hex> digest";
    fn parse_entry(text: &str) -> Option<Self> {
        ImageDigest::parse(text)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("cannot read approved list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("approved list {path} is a {kind}, not a regular file; refusing to wait on it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("approved list {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("approved list {path} is malformed: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("approved list {path} is empty")]
    Empty { path: PathBuf },
    #[error("approved list {path} entry {index} is not {expected} (got {value:?})")]
    InvalidEntry {
        path: PathBuf,
        index: usize,
        expected: &'static str,
        value: String,
    },
    #[error("approved list {path} lists {value} twice")]
    DuplicateEntry { path: PathBuf, value: String },
    #[error("override {value} is not approved ({approved})")]
    OverrideNotApproved { value: String, approved: String },
}

/// What happened to the list file, for the launcher's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListStatus {
    NotConfigured,
    Missing(PathBuf),
    Loaded { path: PathBuf, entries: usize },
}

/// The approved values, newest first.
#[derive(Debug)]
pub struct ApprovedList<T> {
    pinned: T,
    entries: Vec<T>,
    status: ListStatus,
}

impl<T: ListEntry> ApprovedList<T> {
    /// Reads the list named by the config. A missing file falls back to the pinned value
    /// (the caller warns); a malformed or empty file is an error.
    pub fn load(list: Option<&Path>, pinned: T) -> Result<Self, ApprovalError> {
        let pinned_only = |status| Self {
            pinned,
            entries: vec![pinned],
            status,
        };
        let Some(path) = list else {
            return Ok(pinned_only(ListStatus::NotConfigured));
        };
        let bytes = match read_capped(path, MAX_LIST_BYTES) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => {
                return Ok(pinned_only(ListStatus::Missing(path.to_owned())));
            }
            Err(CappedReadError::Io(source)) => {
                return Err(ApprovalError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
            Err(CappedReadError::NotRegular(kind)) => {
                return Err(ApprovalError::NotRegular {
                    path: path.to_owned(),
                    kind,
                });
            }
            Err(CappedReadError::TooLarge) => {
                return Err(ApprovalError::TooLarge {
                    path: path.to_owned(),
                    max: MAX_LIST_BYTES,
                });
            }
        };
        Self::from_bytes(path, &bytes, pinned)
    }

    /// The list in `bytes`, read from `path` (named in messages): what [`Self::load`] parses.
    pub fn from_bytes(path: &Path, bytes: &[u8], pinned: T) -> Result<Self, ApprovalError> {
        let entries = parse_list::<T>(path, bytes)?;
        Ok(Self {
            pinned,
            status: ListStatus::Loaded {
                path: path.to_owned(),
                entries: entries.len(),
            },
            entries,
        })
    }

    /// The approved values, newest first (the pinned value alone without a list).
    #[must_use]
    pub fn entries(&self) -> &[T] {
        &self.entries
    }

    #[must_use]
    pub fn status(&self) -> &ListStatus {
        &self.status
    }

    /// The override if given and approved, else the newest approved value.
    pub fn approve(&self, override_value: Option<T>) -> Result<Approved<T>, ApprovalError> {
        let from_list = matches!(self.status, ListStatus::Loaded { .. });
        let (value, selection) = match override_value {
            Some(value) if self.entries.contains(&value) => (value, Selection::Override),
            Some(value) => {
                return Err(ApprovalError::OverrideNotApproved {
                    value: value.to_string(),
                    approved: self.describe(),
                });
            }
            // `entries` is the pinned value alone, or a list checked to be non-empty.
            None => match self.entries.first() {
                Some(&newest) if from_list => (newest, Selection::Newest),
                _ => (self.pinned, Selection::Pinned),
            },
        };
        Ok(Approved { value, selection })
    }

    fn describe(&self) -> String {
        match &self.status {
            ListStatus::Loaded { path, entries } => {
                let noun = if *entries == 1 { "entry" } else { "entries" };
                format!("{entries} {noun} in {}", path.display())
            }
            ListStatus::Missing(path) => {
                format!("{} is missing, so only the pinned value is", path.display())
            }
            ListStatus::NotConfigured => "no approved list, so only the pinned value is".into(),
        }
    }
}

/// `{"<FIELD>": ["<entry>", ...]}` with nothing else in it.
fn parse_list<T: ListEntry>(path: &Path, bytes: &[u8]) -> Result<Vec<T>, ApprovalError> {
    let malformed = |detail: String| ApprovalError::Malformed {
        path: path.to_owned(),
        detail,
    };
    // A repeated key is refused: serde_json alone would keep the last list silently.
    let document = crate::strict_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let Value::Object(fields) = document else {
        return Err(malformed(format!("expected an object with `{}`", T::FIELD)));
    };
    if let Some(unknown) = fields.keys().find(|k| *k != T::FIELD) {
        return Err(malformed(format!(
            "unknown field `{unknown}`, expected `{}`",
            T::FIELD
        )));
    }
    let Some(Value::Array(items)) = fields.get(T::FIELD) else {
        return Err(malformed(format!(
            "`{}` must be an array of strings",
            T::FIELD
        )));
    };
    if items.is_empty() {
        return Err(ApprovalError::Empty {
            path: path.to_owned(),
        });
    }
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let text = item.as_str().unwrap_or_default();
        let Some(entry) = T::parse_entry(text) else {
            return Err(ApprovalError::InvalidEntry {
                path: path.to_owned(),
                index,
                expected: T::EXPECTED,
                value: item
                    .as_str()
                    .map_or_else(|| item.to_string(), str::to_owned),
            });
        };
        if !seen.insert(entry) {
            return Err(ApprovalError::DuplicateEntry {
                path: path.to_owned(),
                value: entry.to_string(),
            });
        }
        entries.push(entry);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const P: &str = "cccccccccccccccccccccccccccccccccccccccc";

    fn id(text: &str) -> CommitId {
        CommitId::parse(text).unwrap()
    }

    fn with_list(json: &str, override_commit: Option<&str>) -> Result<Approved<CommitId>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        std::fs::write(&path, json).unwrap();
        ApprovedList::load(Some(&path), id(P))
            .and_then(|list| list.approve(override_commit.map(id)))
            .map_err(|e| e.to_string().replace(&path.display().to_string(), "L"))
    }

    #[test]
    fn no_list_runs_pinned() {
        let list = ApprovedList::load(None, id(P)).unwrap();
        let approved = list.approve(None).unwrap();
        assert_eq!(*approved.value(), id(P));
        assert_eq!(approved.selection(), Selection::Pinned);
        assert_eq!(approved.workload().value(), &Workload::Git(id(P)));
    }

    #[test]
    fn missing_list_falls_back_to_pinned() {
        let list = ApprovedList::load(Some(Path::new("/nonexistent/list.json")), id(P)).unwrap();
        assert_eq!(
            list.status(),
            &ListStatus::Missing("/nonexistent/list.json".into())
        );
        assert_eq!(list.approve(None).unwrap().value(), &id(P));
        assert!(list.approve(Some(id(A))).is_err());
    }

    #[test]
    fn newest_entry_wins_and_override_must_be_listed() {
        let json = format!(r#"{{"approved_commits":["{A}","{B}"]}}"#);
        let newest = with_list(&json, None).unwrap();
        assert_eq!(
            (newest.value(), newest.selection()),
            (&id(A), Selection::Newest)
        );
        let chosen = with_list(&json, Some(B)).unwrap();
        assert_eq!(
            (chosen.value(), chosen.selection()),
            (&id(B), Selection::Override)
        );
        assert_eq!(
            with_list(&json, Some(P)).unwrap_err(),
            format!("override {P} is not approved (2 entries in L)")
        );
    }

    #[test]
    fn reject_table() {
        for (json, expected) in [
            (r#"{"approved_commits":[]}"#.to_owned(), "approved list L is empty".to_owned()),
            ("not json".to_owned(), "approved list L is malformed: expected ident at line 1 column 2".to_owned()),
            ("[]".to_owned(), "approved list L is malformed: expected an object with `approved_commits`".to_owned()),
            (
                r#"{"approved_hashes":[]}"#.to_owned(),
                "approved list L is malformed: unknown field `approved_hashes`, expected `approved_commits`".to_owned(),
            ),
            (
                r#"{"approved_commits":"x"}"#.to_owned(),
                "approved list L is malformed: `approved_commits` must be an array of strings".to_owned(),
            ),
            (
                r#"{"approved_commits":["main"]}"#.to_owned(),
                r#"approved list L entry 0 is not a full lowercase commit id (got "main")"#.to_owned(),
            ),
            (
                r#"{"approved_commits":[7]}"#.to_owned(),
                r#"approved list L entry 0 is not a full lowercase commit id (got "7")"#.to_owned(),
            ),
            (format!(r#"{{"approved_commits":["{A}","{A}"]}}"#), format!("approved list L lists {A} twice")),
            (format!(r#"{{"approved_commits":["{A}"]}} x"#), "approved list L is malformed: trailing characters at line 1 column 67".to_owned()),
            (
                format!(r#"{{"approved_commits":["{A}"],"approved_commits":["{B}"]}}"#),
                "approved list L is malformed: duplicate key `approved_commits` at line 1 column 83".to_owned(),
            ),
            (
                format!(r#"{{"approved_commits":["{A}"],"note":"x"}}"#),
                "approved list L is malformed: unknown field `note`, expected `approved_commits`".to_owned(),
            ),
        ] {
            assert_eq!(with_list(&json, None).unwrap_err(), expected, "{json}");
        }
    }

    /// NEAR tee-launcher's approved-hashes file selects the newest digest.
    #[test]
    fn image_lists_use_nears_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hashes.json");
        let (new, old) = (
            format!("sha256:{}", "1".repeat(64)),
            format!("sha256:{}", "2".repeat(64)),
        );
        std::fs::write(&path, format!(r#"{{"approved_hashes":["{new}","{old}"]}}"#)).unwrap();
        let pinned = ImageDigest::parse(&format!("sha256:{}", "3".repeat(64))).unwrap();
        let list = ApprovedList::load(Some(&path), pinned).unwrap();
        let approved = list.approve(None).unwrap();
        assert_eq!(approved.value().to_string(), new);
        assert_eq!(approved.workload().value().identity(), format!("oci:{new}"));
        std::fs::write(
            &path,
            format!(r#"{{"approved_hashes":["{}"]}}"#, "1".repeat(64)),
        )
        .unwrap();
        let error = ApprovedList::load(Some(&path), pinned)
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with(&format!(
                "entry 0 is not a sha256:<64 lowercase hex> digest (got \"{}\")",
                "1".repeat(64)
            )),
            "{error}"
        );
    }
}
