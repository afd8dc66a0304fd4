//! `verify --expect-file FILE`: approved values, one per line, or an approved-list JSON.
//!
//! Line format: `git:<40 or 64 lowercase hex>`, `oci:sha256:<64 lowercase hex>`,
//! `config:sha256:<64 lowercase hex>`, `compose:sha256:<64 lowercase hex>`; blank lines and
//! lines starting with `#` are skipped; surrounding whitespace is ignored. JSON: NEAR's
//! `{"approved_hashes":["sha256:<hex>",...]}` (image digests) and/or the launcher's
//! `{"approved_commits":["<hex>",...]}`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::capped_read::{CappedReadError, read_capped};
use crate::contract;
use crate::digest::{CommitId, ImageDigest};
use crate::workload::Workload;

/// A file of approved values is small; anything larger is not one.
pub const MAX_EXPECT_FILE_BYTES: u64 = 1024 * 1024;

const LINE_FORMS: &str = "git:<40 or 64 lowercase hex>, oci:sha256:<64 lowercase hex>, config:sha256:<64 lowercase hex> or compose:sha256:<64 lowercase hex>";

/// The values a file approves.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExpectFile {
    pub workloads: Vec<Workload>,
    pub configs: Vec<[u8; 32]>,
    pub composes: Vec<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExpectFileError {
    #[error("cannot read --expect-file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--expect-file {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("--expect-file {path} is not UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("{path}:{line}: expected {LINE_FORMS} (got {value:?})")]
    Line {
        path: PathBuf,
        line: usize,
        value: String,
    },
    #[error("--expect-file {path} is not an approved list: {detail}")]
    Json { path: PathBuf, detail: String },
    #[error("--expect-file {path}: {field} entry {index} is not {expected} (got {value})")]
    Entry {
        path: PathBuf,
        field: &'static str,
        index: usize,
        expected: &'static str,
        value: String,
    },
    #[error("--expect-file {path} approves nothing")]
    Empty { path: PathBuf },
}

impl ExpectFile {
    /// Reads and parses `path`, capped at [`MAX_EXPECT_FILE_BYTES`].
    pub fn read(path: &Path) -> Result<Self, ExpectFileError> {
        let bytes = read_capped(path, MAX_EXPECT_FILE_BYTES).map_err(|e| match e {
            CappedReadError::Io(source) => ExpectFileError::Read {
                path: path.to_owned(),
                source,
            },
            CappedReadError::TooLarge => ExpectFileError::TooLarge {
                path: path.to_owned(),
                max: MAX_EXPECT_FILE_BYTES,
            },
            not_regular @ CappedReadError::NotRegular(_) => ExpectFileError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(not_regular.to_string()),
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|_| ExpectFileError::NotUtf8 {
            path: path.to_owned(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses the text of `path`: JSON when it starts with `{`, else lines.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ExpectFileError> {
        let parsed = if text.trim_start().starts_with('{') {
            Self::json(path, text)?
        } else {
            Self::lines(path, text)?
        };
        if parsed == Self::default() {
            return Err(ExpectFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(parsed)
    }

    fn lines(path: &Path, text: &str) -> Result<Self, ExpectFileError> {
        let mut out = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let digest = |prefix: &str| line.strip_prefix(prefix).and_then(contract::parse_sha256);
            if let Some(workload) = Workload::parse(line) {
                out.workloads.push(workload);
            } else if let Some(config) = digest("config:") {
                out.configs.push(config);
            } else if let Some(compose) = digest("compose:") {
                out.composes.push(compose);
            } else {
                return Err(ExpectFileError::Line {
                    path: path.to_owned(),
                    line: index + 1,
                    value: line.to_owned(),
                });
            }
        }
        Ok(out)
    }

    fn json(path: &Path, text: &str) -> Result<Self, ExpectFileError> {
        let json_error = |detail: String| ExpectFileError::Json {
            path: path.to_owned(),
            detail,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| json_error(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| json_error("not an object".into()))?;
        let mut out = Self::default();
        for (key, entries) in object {
            let (field, expected): (&'static str, &'static str) = match key.as_str() {
                "approved_hashes" => ("approved_hashes", "sha256:<64 lowercase hex>"),
                "approved_commits" => ("approved_commits", "40 or 64 lowercase hex digits"),
                other => {
                    return Err(json_error(format!(
                        "unknown field {other:?} (expected approved_hashes or approved_commits)"
                    )));
                }
            };
            let entries = entries
                .as_array()
                .ok_or_else(|| json_error(format!("{field} is not an array")))?;
            for (index, entry) in entries.iter().enumerate() {
                let parsed = entry.as_str().and_then(|text| match field {
                    "approved_hashes" => ImageDigest::parse(text).map(Workload::Image),
                    _ => CommitId::parse(text).map(Workload::Git),
                });
                out.workloads
                    .push(parsed.ok_or_else(|| ExpectFileError::Entry {
                        path: path.to_owned(),
                        field,
                        index,
                        expected,
                        value: entry.to_string(),
                    })?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ExpectFile, String> {
        ExpectFile::parse(Path::new("approved.txt"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn lines_are_accepted() {
        let commit = "1f".repeat(20);
        let long = "2e".repeat(32);
        let digest = "5a".repeat(32);
        let text = format!(
            "# approved\n\n  git:{commit}  \ngit:{long}\noci:sha256:{digest}\nconfig:sha256:{}\ncompose:sha256:{}\n",
            "c0".repeat(32),
            "d0".repeat(32)
        );
        let parsed = parse(&text).unwrap();
        let workloads: Vec<String> = parsed.workloads.iter().map(Workload::identity).collect();
        assert_eq!(
            workloads,
            [
                format!("git:{commit}"),
                format!("git:{long}"),
                format!("oci:sha256:{digest}")
            ]
        );
        assert_eq!(parsed.configs, [[0xc0; 32]]);
        assert_eq!(parsed.composes, [[0xd0; 32]]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let forms = LINE_FORMS;
        for (text, expected) in [
            (
                "git:main\n",
                format!("approved.txt:1: expected {forms} (got \"git:main\")"),
            ),
            (
                &format!("# ok\ngit:{}\n", "1F".repeat(20)),
                format!(
                    "approved.txt:2: expected {forms} (got \"git:{}\")",
                    "1F".repeat(20)
                ),
            ),
            (
                &format!("oci:{}\n", "5a".repeat(32)),
                format!(
                    "approved.txt:1: expected {forms} (got \"oci:{}\")",
                    "5a".repeat(32)
                ),
            ),
            (
                &format!("\n\nconfig:{}\n", "c0".repeat(32)),
                format!(
                    "approved.txt:3: expected {forms} (got \"config:{}\")",
                    "c0".repeat(32)
                ),
            ),
            (
                &format!("git:{} # inline\n", "1f".repeat(20)),
                format!(
                    "approved.txt:1: expected {forms} (got \"git:{} # inline\")",
                    "1f".repeat(20)
                ),
            ),
            (
                "# nothing\n\n",
                "--expect-file approved.txt approves nothing".to_owned(),
            ),
            ("", "--expect-file approved.txt approves nothing".to_owned()),
        ] {
            assert_eq!(parse(text).unwrap_err(), expected, "{text:?}");
        }
    }

    #[test]
    fn approved_lists_as_json() {
        let digest = "5a".repeat(32);
        let commit = "1f".repeat(20);
        let parsed = parse(&format!(
            r#"{{"approved_hashes":["sha256:{digest}"],"approved_commits":["{commit}"]}}"#
        ))
        .unwrap();
        assert_eq!(parsed.workloads.len(), 2);
        for (text, expected) in [
            (
                r#"{"approved_hashes":["5a"]}"#,
                r#"--expect-file approved.txt: approved_hashes entry 0 is not sha256:<64 lowercase hex> (got "5a")"#,
            ),
            (
                r#"{"approved_commits":[1]}"#,
                "--expect-file approved.txt: approved_commits entry 0 is not 40 or 64 lowercase hex digits (got 1)",
            ),
            (
                r#"{"approved":[]}"#,
                r#"--expect-file approved.txt is not an approved list: unknown field "approved" (expected approved_hashes or approved_commits)"#,
            ),
            (
                r#"{"approved_hashes":"x"}"#,
                "--expect-file approved.txt is not an approved list: approved_hashes is not an array",
            ),
            (
                r#"{"approved_hashes":[]}"#,
                "--expect-file approved.txt approves nothing",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err(), expected, "{text}");
        }
        assert!(
            parse("{")
                .unwrap_err()
                .starts_with("--expect-file approved.txt is not an approved list: EOF")
        );
    }

    #[test]
    fn reads_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        let line = format!("git:{}\n", "1f".repeat(20));
        let count = usize::try_from(MAX_EXPECT_FILE_BYTES).unwrap() / line.len() + 1;
        std::fs::write(&path, line.repeat(count)).unwrap();
        let error = ExpectFile::read(&path).unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "--expect-file {} is larger than 1048576 bytes",
                path.display()
            )
        );
        let missing = ExpectFile::read(&dir.path().join("none"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("cannot read --expect-file "),
            "{missing}"
        );
    }
}
