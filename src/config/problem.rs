//! One problem found in a config file, with the line it is on.

use std::fmt;

/// Something wrong with a config, located on a line when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub kind: ProblemKind,
}

impl Problem {
    #[must_use]
    pub fn at(line: usize, kind: ProblemKind) -> Self {
        Self {
            line: Some(line),
            kind,
        }
    }

    #[must_use]
    pub fn unlocated(kind: ProblemKind) -> Self {
        Self { line: None, kind }
    }
}

/// What is wrong. Keys are spelled as the config format spells them
/// (`COMMIT_SHA` in the line format, `git.commit` in TOML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// A line that is not `KEY=VALUE`, or TOML that does not parse.
    Syntax {
        detail: String,
    },
    CarriageReturn,
    UnknownKey {
        key: String,
    },
    DuplicateKey {
        key: String,
        first_line: usize,
    },
    MissingKey {
        key: &'static str,
    },
    MissingSection {
        section: &'static str,
    },
    Empty {
        key: &'static str,
    },
    WrongType {
        key: String,
        expected: &'static str,
    },
    ControlCharacter {
        key: &'static str,
    },
    InvalidCommit {
        key: &'static str,
        value: String,
    },
    /// A path the config may not name (absolute where relative is needed, `..`, ...).
    InvalidPath {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    /// An image reference that does not parse.
    InvalidReference {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A platform that is not `os/arch[/variant]`.
    InvalidPlatform {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A port mapping that is not `[ip:]host:container[/proto]`.
    InvalidPort {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    /// Any other value its parser refused: a number, a name, a list entry.
    InvalidValue {
        key: &'static str,
        value: String,
        reason: &'static str,
    },
    InvalidRepoUrl {
        value: String,
        reason: &'static str,
    },
    InvalidEnvName {
        key: &'static str,
        value: String,
    },
    InvalidChoice {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A name in `pass_env` that is dropped by default and not in `allow_env`.
    DangerousPassEnv {
        key: &'static str,
        name: String,
        allow: &'static str,
    },
    /// A name both passed through and given a fixed value.
    EnvConflict {
        pass: &'static str,
        fixed: &'static str,
        name: String,
    },
    NulInEnvValue {
        key: &'static str,
        name: String,
    },
    BothSections,
    /// A key the launcher writes itself.
    Reserved {
        key: String,
    },
    InstallWithoutRun {
        install: &'static str,
        run: &'static str,
    },
    EntrypointWithRun {
        entrypoint: &'static str,
        run: &'static str,
    },
    /// A key that means nothing without another.
    Requires {
        key: &'static str,
        needs: &'static str,
    },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { detail } => write!(f, "{detail}"),
            Self::CarriageReturn => f.write_str(
                "carriage return in line (CRLF line endings are not accepted; convert the file to LF)",
            ),
            Self::UnknownKey { key } => write!(f, "unknown key {key}"),
            Self::DuplicateKey { key, first_line } => {
                write!(f, "duplicate key {key} (first set on line {first_line})")
            }
            Self::MissingKey { key } => write!(f, "missing required key {key}"),
            Self::MissingSection { section } => write!(f, "missing required section [{section}]"),
            Self::Empty { key } => write!(f, "{key} must not be empty"),
            Self::WrongType { key, expected } => write!(f, "{key} must be {expected}"),
            Self::ControlCharacter { key } => write!(f, "{key} contains a control character"),
            Self::InvalidCommit { key, value } => write!(
                f,
                "{key} must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got {value:?})"
            ),
            Self::InvalidPath { key, value, reason }
            | Self::InvalidReference { key, value, reason }
            | Self::InvalidPlatform { key, value, reason }
            | Self::InvalidPort { key, value, reason }
            | Self::InvalidValue { key, value, reason } => {
                write!(f, "{key} {reason} (got {value:?})")
            }
            Self::InvalidRepoUrl { value, reason } => {
                write!(f, "repository URL {reason} (got {value:?})")
            }
            Self::InvalidEnvName { key, value } => {
                write!(f, "{key} entry is not an environment variable name (got {value:?})")
            }
            Self::InvalidChoice {
                key,
                value,
                expected,
            } => write!(f, "{key} must be one of {expected} (got {value:?})"),
            Self::DangerousPassEnv { key, name, allow } => write!(
                f,
                "{key} names {name}, which changes what a loader, shell or interpreter runs; name it in {allow} too to pass it"
            ),
            Self::EnvConflict { pass, fixed, name } => write!(
                f,
                "{pass} and {fixed} both name {name} (pass it through or fix its value, not both)"
            ),
            Self::NulInEnvValue { key, name } => {
                write!(f, "{key} value of {name} contains a NUL character")
            }
            Self::Reserved { key } => write!(
                f,
                "{key} is reserved: the launcher writes that table itself (rename yours)"
            ),
            Self::BothSections => f.write_str("a config has either [git] or [image], not both"),
            Self::InstallWithoutRun { install, run } => write!(f, "{install} requires {run}"),
            Self::EntrypointWithRun { entrypoint, run } => write!(
                f,
                "{entrypoint} and {run} cannot both be set (default mode runs the entry script, advanced mode runs {run})"
            ),
            Self::Requires { key, needs } => write!(f, "{key} requires {needs}"),
        }
    }
}

/// What kind of value a parser refused: which [`ProblemKind`] records it.
#[derive(Clone, Copy, Debug)]
pub enum Invalid {
    Path,
    Reference,
    Platform,
    Port,
    Value,
}

impl Invalid {
    /// The problem for `key`'s `value`, refused for `reason`.
    #[must_use]
    pub fn problem(self, key: &'static str, value: String, reason: &'static str) -> ProblemKind {
        match self {
            Self::Path => ProblemKind::InvalidPath { key, value, reason },
            Self::Reference => ProblemKind::InvalidReference { key, value, reason },
            Self::Platform => ProblemKind::InvalidPlatform { key, value, reason },
            Self::Port => ProblemKind::InvalidPort { key, value, reason },
            Self::Value => ProblemKind::InvalidValue { key, value, reason },
        }
    }
}

/// 1-based line number of a byte offset in `text`.
#[must_use]
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(1, |before| before.split(|&b| b == b'\n').count())
}

/// `line: message` for each problem, as the parsers' tests compare them.
#[cfg(test)]
pub fn render(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.line.unwrap_or(0), p.kind))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind of refused value is its own variant (a caller can tell a bad reference from
    /// a bad port), with the one message shape `KEY REASON (got VALUE)`.
    #[test]
    fn refused_values_keep_their_kind() {
        let kinds = [
            Invalid::Path,
            Invalid::Reference,
            Invalid::Platform,
            Invalid::Port,
            Invalid::Value,
        ]
        .map(|what| what.problem("k", "v".into(), "is bad"));
        assert!(matches!(kinds[0], ProblemKind::InvalidPath { .. }));
        assert!(matches!(kinds[1], ProblemKind::InvalidReference { .. }));
        assert!(matches!(kinds[2], ProblemKind::InvalidPlatform { .. }));
        assert!(matches!(kinds[3], ProblemKind::InvalidPort { .. }));
        assert!(matches!(kinds[4], ProblemKind::InvalidValue { .. }));
        for kind in &kinds {
            assert_eq!(kind.to_string(), "k is bad (got \"v\")");
        }
    }

    #[test]
    fn line_of_counts_newlines_before_offset() {
        let text = "a\nbb\nccc";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 2), 2);
        assert_eq!(line_of(text, 5), 3);
        assert_eq!(line_of(text, 999), 3);
    }
}
