//! The approved list, and the only way to obtain an [`Approved`] workload.
//!
//! Selection (NEAR tee-launcher's rules): the override if set and approved, else the newest
//! approved entry. Without a list file the approved set is just the pinned commit. The
//! list's contents are untrusted: size-capped, strictly parsed, every entry a full id.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capped_read::{CappedReadError, read_capped};
use crate::digest::CommitId;
use crate::workload::Workload;

const MAX_LIST_BYTES: u64 = 1024 * 1024;

/// A workload that passed approval. Private fields: [`approve`] is the only constructor,
/// and only an `Approved<Workload>` can be measured or launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Approved<T> {
    value: T,
    selection: Selection,
}

impl<T> Approved<T> {
    pub fn value(&self) -> &T {
        &self.value
    }

    pub fn selection(&self) -> Selection {
        self.selection
    }
}

/// Why this workload was chosen.
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

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("cannot read approved list {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("approved list {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("approved list {path} is malformed: {detail}")]
    Malformed { path: PathBuf, detail: String },
    #[error("approved list {path} is empty")]
    Empty { path: PathBuf },
    #[error("approved list {path} entry {index} is not a full lowercase commit id (got {value:?})")]
    InvalidEntry {
        path: PathBuf,
        index: usize,
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

/// The approved commits, newest first.
#[derive(Debug)]
pub struct ApprovedCommits {
    pinned: CommitId,
    commits: Vec<CommitId>,
    status: ListStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitListFile {
    approved_commits: Vec<String>,
}

impl ApprovedCommits {
    /// Reads the list named by the config. A missing file falls back to the pinned commit
    /// (the caller warns); a malformed or empty file is an error.
    pub fn load(list: Option<&Path>, pinned: CommitId) -> Result<Self, ApprovalError> {
        let pinned_only = |status| Self {
            pinned,
            commits: vec![pinned],
            status,
        };
        let Some(path) = list else {
            return Ok(pinned_only(ListStatus::NotConfigured));
        };
        let bytes = match read_list(path) {
            Err(ApprovalError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(pinned_only(ListStatus::Missing(path.to_owned())));
            }
            other => other?,
        };
        let commits = parse_list(path, &bytes)?;
        Ok(Self {
            pinned,
            status: ListStatus::Loaded {
                path: path.to_owned(),
                entries: commits.len(),
            },
            commits,
        })
    }

    #[must_use]
    pub fn status(&self) -> &ListStatus {
        &self.status
    }

    /// The override if given and approved, else the newest approved commit.
    pub fn approve(
        &self,
        override_commit: Option<CommitId>,
    ) -> Result<Approved<Workload>, ApprovalError> {
        let from_list = matches!(self.status, ListStatus::Loaded { .. });
        let (commit, selection) = match override_commit {
            Some(commit) if self.commits.contains(&commit) => (commit, Selection::Override),
            Some(commit) => {
                return Err(ApprovalError::OverrideNotApproved {
                    value: commit.to_string(),
                    approved: self.describe(),
                });
            }
            // `commits` is the pinned commit alone, or a list checked to be non-empty.
            None => match self.commits.first() {
                Some(&newest) if from_list => (newest, Selection::Newest),
                _ => (self.pinned, Selection::Pinned),
            },
        };
        Ok(Approved {
            value: Workload::Git(commit),
            selection,
        })
    }

    fn describe(&self) -> String {
        match &self.status {
            ListStatus::Loaded { path, entries } => {
                format!("{entries} entries in {}", path.display())
            }
            ListStatus::Missing(path) => {
                format!(
                    "{} is missing, so only the pinned commit is",
                    path.display()
                )
            }
            ListStatus::NotConfigured => "no approved list, so only the pinned commit is".into(),
        }
    }
}

fn read_list(path: &Path) -> Result<Vec<u8>, ApprovalError> {
    read_capped(path, MAX_LIST_BYTES).map_err(|error| match error {
        CappedReadError::Io(source) => ApprovalError::Read {
            path: path.to_owned(),
            source,
        },
        CappedReadError::TooLarge => ApprovalError::TooLarge {
            path: path.to_owned(),
            max: MAX_LIST_BYTES,
        },
    })
}

fn parse_list(path: &Path, bytes: &[u8]) -> Result<Vec<CommitId>, ApprovalError> {
    let file: CommitListFile =
        serde_json::from_slice(bytes).map_err(|error| ApprovalError::Malformed {
            path: path.to_owned(),
            detail: error.to_string(),
        })?;
    if file.approved_commits.is_empty() {
        return Err(ApprovalError::Empty {
            path: path.to_owned(),
        });
    }
    let mut seen = HashSet::new();
    let mut commits = Vec::with_capacity(file.approved_commits.len());
    for (index, value) in file.approved_commits.into_iter().enumerate() {
        let Some(commit) = CommitId::parse(&value) else {
            return Err(ApprovalError::InvalidEntry {
                path: path.to_owned(),
                index,
                value,
            });
        };
        if !seen.insert(commit) {
            return Err(ApprovalError::DuplicateEntry {
                path: path.to_owned(),
                value,
            });
        }
        commits.push(commit);
    }
    Ok(commits)
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

    fn with_list(json: &str, override_commit: Option<&str>) -> Result<Approved<Workload>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.json");
        std::fs::write(&path, json).unwrap();
        ApprovedCommits::load(Some(&path), id(P))
            .and_then(|list| list.approve(override_commit.map(id)))
            .map_err(|e| e.to_string().replace(&path.display().to_string(), "L"))
    }

    #[test]
    fn no_list_runs_pinned() {
        let list = ApprovedCommits::load(None, id(P)).unwrap();
        let approved = list.approve(None).unwrap();
        assert_eq!(*approved.value(), Workload::Git(id(P)));
        assert_eq!(approved.selection(), Selection::Pinned);
    }

    #[test]
    fn missing_list_falls_back_to_pinned() {
        let list = ApprovedCommits::load(Some(Path::new("/nonexistent/list.json")), id(P)).unwrap();
        assert_eq!(
            list.status(),
            &ListStatus::Missing("/nonexistent/list.json".into())
        );
        assert_eq!(list.approve(None).unwrap().value(), &Workload::Git(id(P)));
        assert!(list.approve(Some(id(A))).is_err());
    }

    #[test]
    fn newest_entry_wins_and_override_must_be_listed() {
        let json = format!(r#"{{"approved_commits":["{A}","{B}"]}}"#);
        let newest = with_list(&json, None).unwrap();
        assert_eq!(
            (newest.value(), newest.selection()),
            (&Workload::Git(id(A)), Selection::Newest)
        );
        let chosen = with_list(&json, Some(B)).unwrap();
        assert_eq!(
            (chosen.value(), chosen.selection()),
            (&Workload::Git(id(B)), Selection::Override)
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
            (
                r#"{"approved_hashes":[]}"#.to_owned(),
                "approved list L is malformed: unknown field `approved_hashes`, expected `approved_commits` at line 1 column 18".to_owned(),
            ),
            (
                r#"{"approved_commits":["main"]}"#.to_owned(),
                r#"approved list L entry 0 is not a full lowercase commit id (got "main")"#.to_owned(),
            ),
            (format!(r#"{{"approved_commits":["{A}","{A}"]}}"#), format!("approved list L lists {A} twice")),
            (format!(r#"{{"approved_commits":["{A}"]}} x"#), "approved list L is malformed: trailing characters at line 1 column 67".to_owned()),
        ] {
            assert_eq!(with_list(&json, None).unwrap_err(), expected, "{json}");
        }
    }
}
