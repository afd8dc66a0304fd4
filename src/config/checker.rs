//! Field checks shared by every config section: each records a problem with its line and
//! returns the checked value, or `None`.

use std::time::Duration;

use super::problem::Invalid;
use super::raw::Located;
use super::{MAX_TIMEOUT_SECONDS, Problem, ProblemKind, RelativePath};
use crate::digest::{CommitId, ImageDigest};
use crate::measure::BackendChoice;

/// Collects problems while fields are checked; each check returns the value or `None`.
pub(super) struct Checker<'p> {
    pub(super) problems: &'p mut Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn push(&mut self, line: usize, kind: ProblemKind) {
        self.problems.push(Problem::at(line, kind));
    }

    pub(super) fn required(
        &mut self,
        value: Option<Located<String>>,
        key: &'static str,
    ) -> Option<Located<String>> {
        if let Some(value) = value {
            return self.non_empty(value);
        }
        self.problems
            .push(Problem::unlocated(ProblemKind::MissingKey { key }));
        None
    }

    /// Rejects control characters (tab excepted): they hide in logs and break commands.
    pub(super) fn text(&mut self, value: Located<String>) -> Option<Located<String>> {
        if value.value.chars().any(|c| c.is_control() && c != '\t') {
            self.push(value.line, ProblemKind::ControlCharacter { key: value.key });
            return None;
        }
        Some(value)
    }

    pub(super) fn non_empty(&mut self, value: Located<String>) -> Option<Located<String>> {
        let value = self.text(value)?;
        if value.value.is_empty() {
            self.push(value.line, ProblemKind::Empty { key: value.key });
            return None;
        }
        Some(value)
    }

    pub(super) fn commit(&mut self, value: &Located<String>) -> Option<CommitId> {
        let commit = CommitId::parse(&value.value);
        if commit.is_none() {
            self.push(
                value.line,
                ProblemKind::InvalidCommit {
                    key: value.key,
                    value: value.value.clone(),
                },
            );
        }
        commit
    }

    pub(super) fn relative_path(&mut self, value: &Located<String>) -> Option<RelativePath> {
        match RelativePath::parse(&value.value) {
            Ok(path) => Some(path),
            Err(reason) => {
                self.push(
                    value.line,
                    ProblemKind::InvalidPath {
                        key: value.key,
                        value: value.value.clone(),
                        reason,
                    },
                );
                None
            }
        }
    }

    pub(super) fn repo_url(&mut self, value: Located<String>) -> Option<String> {
        let url = &value.value;
        let reason = if url.starts_with('-') {
            Some("must not start with '-'")
        } else if url.chars().any(char::is_whitespace) {
            Some("must not contain whitespace")
        } else if uses_remote_helper(url) {
            Some(
                "must not use the <transport>::<address> remote-helper syntax (it runs a helper program)",
            )
        } else {
            None
        };
        if let Some(reason) = reason {
            self.push(
                value.line,
                ProblemKind::InvalidRepoUrl {
                    value: url.clone(),
                    reason,
                },
            );
            return None;
        }
        Some(value.value)
    }

    /// Parses with `parse`, recording its reason as an invalid value of kind `what`.
    pub(super) fn parsed<T>(
        &mut self,
        value: &Located<String>,
        what: Invalid,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Option<T> {
        match parse(&value.value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.push(
                    value.line,
                    what.problem(value.key, value.value.clone(), reason),
                );
                None
            }
        }
    }

    /// A timeout in whole seconds, 1 to a week; `default` when not set.
    pub(super) fn seconds(
        &mut self,
        value: Option<Located<String>>,
        default: Duration,
    ) -> Option<Duration> {
        let Some(value) = value.and_then(|v| self.non_empty(v)) else {
            return Some(default);
        };
        self.parsed(&value, Invalid::Value, |text| {
            text.parse::<u64>()
                .ok()
                .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s) && !text.starts_with('+'))
                .map(Duration::from_secs)
                .ok_or("must be a whole number of seconds from 1 to 604800")
        })
    }

    pub(super) fn image_digest(&mut self, value: &Located<String>) -> Option<ImageDigest> {
        let digest = ImageDigest::parse(&value.value);
        if digest.is_none() {
            self.push(
                value.line,
                ProblemKind::InvalidChoice {
                    key: value.key,
                    value: value.value.clone(),
                    expected: "sha256:<64 lowercase hex>",
                },
            );
        }
        digest
    }

    pub(super) fn backend(&mut self, value: &Located<String>) -> Option<BackendChoice> {
        let choice = BackendChoice::parse(&value.value);
        if choice.is_none() {
            self.push(
                value.line,
                ProblemKind::InvalidChoice {
                    key: value.key,
                    value: value.value.clone(),
                    expected: "auto, dstack, dstack-native, tdx-sysfs, local",
                },
            );
        }
        choice
    }

    pub(super) fn env_names(&mut self, value: Located<Vec<String>>) -> Vec<String> {
        let mut names = Vec::new();
        for name in value.value {
            if is_env_name(&name) {
                names.push(name);
            } else {
                self.push(
                    value.line,
                    ProblemKind::InvalidEnvName {
                        key: value.key,
                        value: name,
                    },
                );
            }
        }
        names
    }
}

/// `ext::cmd`, `fd::0` and any other `<transport>::<address>` make git run a remote helper.
pub(super) fn uses_remote_helper(url: &str) -> bool {
    url.split_once("::").is_some_and(|(transport, _)| {
        !transport.is_empty()
            && transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// A portable name, or bash's exported-function spelling `BASH_FUNC_name%%`.
pub(super) fn is_env_name(name: &str) -> bool {
    let base = name
        .strip_prefix("BASH_FUNC_")
        .and_then(|rest| rest.strip_suffix("%%"))
        .map_or(name, |_| "BASH_FUNC_");
    is_portable_name(base)
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: what a POSIX shell can name (no `BASH_FUNC_x%%` here).
pub(super) fn is_portable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
