//! The line-oriented `KEY=VALUE` format of dstack's git-launcher, parsed without a shell.
//!
//! Grammar (git-launcher's): leading spaces and tabs are trimmed; blank lines and lines
//! starting with `#` are skipped; every other line is `^[A-Z_][A-Z0-9_]*=(.*)$`; one layer of
//! matching `'` or `"` around the value is removed; nothing is expanded or sourced.
//! Deliberate differences: a key set twice is an error (a reader who stops at the first
//! occurrence must not be fooled by a later one), and a carriage return anywhere is an error
//! (a CRLF file would otherwise carry an invisible `\r` into commands and paths).

use super::problem::{Problem, ProblemKind};
use super::raw::{KeyNames, Located, RawConfig};

pub const KEYS: KeyNames = KeyNames {
    repo: "REPO_URL",
    commit: "COMMIT_SHA",
    work_dir: "WORK_DIR",
    subdir: "REPO_SUBDIR",
    entrypoint: "ENTRYPOINT_SCRIPT",
    install: "INSTALL_CMD",
    run: "RUN_CMD",
    approved_list: "APPROVED_LIST",
    override_commit: "OVERRIDE_COMMIT",
    allow_env: "ALLOW_ENV",
    pass_env: "PASS_ENV",
    event_log: "EVENT_LOG",
    backend: "MEASUREMENT_BACKEND",
    dstack_socket: "DSTACK_SOCKET",
    rtmr3_path: "RTMR3_PATH",
    dstack_runtime_dir: "DSTACK_RUNTIME_DIR",
    install_timeout: "INSTALL_TIMEOUT",
};

/// Parses the line format into a raw config, collecting every problem.
pub fn parse(text: &str) -> (RawConfig, Vec<Problem>) {
    let mut raw = RawConfig {
        git_section: Some(1),
        ..RawConfig::default()
    };
    let mut problems = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if line.contains('\r') {
            problems.push(Problem::at(number, ProblemKind::CarriageReturn));
            continue;
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = split_assignment(trimmed) else {
            problems.push(Problem::at(
                number,
                ProblemKind::Syntax {
                    detail: format!("expected KEY=VALUE with an uppercase KEY (got {trimmed:?})"),
                },
            ));
            continue;
        };
        let value = unquote(value).to_owned();
        if let Err(problem) = assign(&mut raw, key, value, number) {
            problems.push(problem);
        }
    }
    (raw, problems)
}

/// Splits `KEY=VALUE` where KEY matches `[A-Z_][A-Z0-9_]*`.
fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once('=')?;
    let mut chars = key.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_uppercase() || first == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    valid.then_some((key, value))
}

/// Removes one layer of matching single or double quotes.
fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

fn assign(raw: &mut RawConfig, key: &str, value: String, line: usize) -> Result<(), Problem> {
    let names = |value: String| {
        value
            .split([',', ' ', '\t'])
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    };
    if key == KEYS.allow_env {
        return set(&mut raw.allow_env, KEYS.allow_env, names(value), line);
    }
    if key == KEYS.pass_env {
        return set(&mut raw.pass_env, KEYS.pass_env, names(value), line);
    }
    let (slot, name) = match key {
        k if k == KEYS.repo => (&mut raw.repo, KEYS.repo),
        k if k == KEYS.commit => (&mut raw.commit, KEYS.commit),
        k if k == KEYS.work_dir => (&mut raw.work_dir, KEYS.work_dir),
        k if k == KEYS.subdir => (&mut raw.subdir, KEYS.subdir),
        k if k == KEYS.entrypoint => (&mut raw.entrypoint, KEYS.entrypoint),
        k if k == KEYS.install => (&mut raw.install, KEYS.install),
        k if k == KEYS.run => (&mut raw.run, KEYS.run),
        k if k == KEYS.approved_list => (&mut raw.approved_list, KEYS.approved_list),
        k if k == KEYS.override_commit => (&mut raw.override_commit, KEYS.override_commit),
        k if k == KEYS.event_log => (&mut raw.event_log, KEYS.event_log),
        k if k == KEYS.backend => (&mut raw.backend, KEYS.backend),
        k if k == KEYS.dstack_socket => (&mut raw.dstack_socket, KEYS.dstack_socket),
        k if k == KEYS.rtmr3_path => (&mut raw.rtmr3_path, KEYS.rtmr3_path),
        k if k == KEYS.dstack_runtime_dir => (&mut raw.dstack_runtime_dir, KEYS.dstack_runtime_dir),
        k if k == KEYS.install_timeout => (&mut raw.install_timeout, KEYS.install_timeout),
        _ => {
            return Err(Problem::at(
                line,
                ProblemKind::UnknownKey {
                    key: key.to_owned(),
                },
            ));
        }
    };
    set(slot, name, value, line)
}

fn set<T>(
    slot: &mut Option<Located<T>>,
    key: &'static str,
    value: T,
    line: usize,
) -> Result<(), Problem> {
    if let Some(first) = slot {
        return Err(Problem::at(
            line,
            ProblemKind::DuplicateKey {
                key: key.to_owned(),
                first_line: first.line,
            },
        ));
    }
    *slot = Some(Located { key, line, value });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        super::super::problem::render(&parse(text).1)
    }

    #[test]
    fn accepts_git_launcher_grammar() {
        let (raw, problems) = parse(
            "# comment\n\n   \t REPO_URL=\"https://example.com/r.git\"\nCOMMIT_SHA='abc'\nWORK_DIR=/w\nRUN_CMD=echo \"hi\" # not a comment\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(raw.repo.unwrap().value, "https://example.com/r.git");
        let commit = raw.commit.unwrap();
        assert_eq!((commit.value.as_str(), commit.line), ("abc", 4));
        assert_eq!(raw.work_dir.unwrap().value, "/w");
        assert_eq!(raw.run.unwrap().value, "echo \"hi\" # not a comment");
    }

    #[test]
    fn strips_one_layer_of_matching_quotes_only() {
        for (input, expected) in [
            ("\"a\"", "a"),
            ("'a'", "a"),
            ("\"'a'\"", "'a'"),
            ("\"a'", "\"a'"),
            ("\"", "\""),
            ("\"\"", ""),
            ("a\"", "a\""),
            ("$HOME", "$HOME"),
        ] {
            assert_eq!(unquote(input), expected, "{input:?}");
        }
    }

    #[test]
    fn reject_table() {
        for (text, expected) in [
            (
                "repo_url=x",
                r#"1: expected KEY=VALUE with an uppercase KEY (got "repo_url=x")"#,
            ),
            (
                "REPO_URL x",
                r#"1: expected KEY=VALUE with an uppercase KEY (got "REPO_URL x")"#,
            ),
            (
                "REPO URL=x",
                r#"1: expected KEY=VALUE with an uppercase KEY (got "REPO URL=x")"#,
            ),
            (
                "1KEY=x",
                r#"1: expected KEY=VALUE with an uppercase KEY (got "1KEY=x")"#,
            ),
            (
                "export REPO_URL=x",
                r#"1: expected KEY=VALUE with an uppercase KEY (got "export REPO_URL=x")"#,
            ),
            ("BRANCH=main", "1: unknown key BRANCH"),
            (
                "WORK_DIR=/a\nWORK_DIR=/b",
                "2: duplicate key WORK_DIR (first set on line 1)",
            ),
            (
                "WORK_DIR=/a\r\n",
                "1: carriage return in line (CRLF line endings are not accepted; convert the file to LF)",
            ),
        ] {
            assert_eq!(messages(text), vec![expected.to_owned()], "{text:?}");
        }
    }

    #[test]
    fn reports_every_problem() {
        assert_eq!(
            messages("A=1\nnot a line\nWORK_DIR=/a\nWORK_DIR=/a\n"),
            vec![
                "1: unknown key A",
                r#"2: expected KEY=VALUE with an uppercase KEY (got "not a line")"#,
                "4: duplicate key WORK_DIR (first set on line 3)",
            ]
        );
    }

    #[test]
    fn allow_env_splits_on_commas_and_spaces() {
        let (raw, _) = parse("ALLOW_ENV=LD_LIBRARY_PATH, PYTHONPATH BASH_ENV\n");
        assert_eq!(
            raw.allow_env.unwrap().value,
            ["LD_LIBRARY_PATH", "PYTHONPATH", "BASH_ENV"]
        );
    }

    /// An empty value is a set key with an empty value (what it means is validation's
    /// business), whether written bare or as empty quotes.
    #[test]
    fn empty_values_are_set_and_empty() {
        for text in [
            "INSTALL_CMD=\nENTRYPOINT_SCRIPT=\nREPO_SUBDIR=\n",
            "INSTALL_CMD=\"\"\nENTRYPOINT_SCRIPT=''\nREPO_SUBDIR=\"\"\n",
        ] {
            let (raw, problems) = parse(text);
            assert!(problems.is_empty(), "{problems:?}");
            for (slot, key, line) in [
                (raw.install, "INSTALL_CMD", 1),
                (raw.entrypoint, "ENTRYPOINT_SCRIPT", 2),
                (raw.subdir, "REPO_SUBDIR", 3),
            ] {
                let expected = Located {
                    key,
                    line,
                    value: String::new(),
                };
                assert_eq!(slot, Some(expected), "{text:?}");
            }
        }
        assert_eq!(
            messages("INSTALL_CMD=\nINSTALL_CMD=\n"),
            vec!["2: duplicate key INSTALL_CMD (first set on line 1)"]
        );
    }
}
