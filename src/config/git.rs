//! The git workload's section: where it comes from, how it starts, what environment it gets.

use super::raw::{KeyNames, Located, RawConfig};
use super::{Checker, DEFAULT_ENTRYPOINT, GitSpec, LaunchMode, Problem, ProblemKind, RelativePath};
use crate::workload_env::is_dangerous;
use std::path::PathBuf;

/// Checks the git workload's fields; `None` (with problems recorded) if anything is wrong.
pub(super) fn validate(
    raw: RawConfig,
    keys: &KeyNames,
    check: &mut Checker<'_>,
) -> Option<GitSpec> {
    let before = check.problems.len();
    let repo_url = check
        .required(raw.repo, keys.repo)
        .and_then(|v| check.repo_url(v));
    let commit = check
        .required(raw.commit, keys.commit)
        .and_then(|v| check.commit(&v));
    let work_dir = check
        .required(raw.work_dir, keys.work_dir)
        .map(|v| PathBuf::from(v.value));
    // An empty REPO_SUBDIR means the repository root, as in git-launcher.
    let subdir = raw
        .subdir
        .and_then(|v| check.text(v))
        .filter(|v| !v.value.is_empty())
        .and_then(|v| check.relative_path(&v));
    let entrypoint = raw.entrypoint.and_then(|v| check.non_empty(v));
    let install = raw.install.and_then(|v| check.non_empty(v));
    let run = raw.run.and_then(|v| check.non_empty(v));
    let approved_list = raw
        .approved_list
        .and_then(|v| check.non_empty(v))
        .map(|v| PathBuf::from(v.value));
    let override_commit = raw
        .override_commit
        .and_then(|v| check.non_empty(v))
        .and_then(|v| check.commit(&v));
    let allow_env = raw
        .allow_env
        .map(|v| check.env_names(v))
        .unwrap_or_default();
    let (pass_env, env) = environment(raw.pass_env, raw.env, &allow_env, keys, check);

    let launch = match (entrypoint, install, run) {
        (Some(entry), _, Some(run)) => {
            check.problems.push(Problem::at(
                run.line,
                ProblemKind::EntrypointWithRun {
                    entrypoint: entry.key,
                    run: run.key,
                },
            ));
            None
        }
        (_, Some(install), None) => {
            check.problems.push(Problem::at(
                install.line,
                ProblemKind::InstallWithoutRun {
                    install: install.key,
                    run: keys.run,
                },
            ));
            None
        }
        (_, install, Some(run)) => Some(LaunchMode::Commands {
            install: install.map(|v| v.value),
            run: run.value,
        }),
        (Some(entry), None, None) => check.relative_path(&entry).map(LaunchMode::Entrypoint),
        (None, None, None) => RelativePath::parse(DEFAULT_ENTRYPOINT)
            .ok()
            .map(LaunchMode::Entrypoint),
    };

    if check.problems.len() > before {
        return None;
    }
    Some(GitSpec {
        repo_url: repo_url?,
        commit: commit?,
        work_dir: work_dir?,
        subdir,
        launch: launch?,
        approved_list,
        override_commit,
        allow_env,
        pass_env,
        env,
    })
}

/// `pass_env` and `env`: portable names, no name in both, no NUL in a value, and a name that
/// changes what a loader or shell runs passes through only if `allow_env` names it too.
fn environment(
    pass: Option<Located<Vec<String>>>,
    fixed: Option<Located<Vec<(String, String)>>>,
    allow_env: &[String],
    keys: &KeyNames,
    check: &mut Checker<'_>,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut pass_env = Vec::new();
    if let Some(pass) = pass {
        for name in pass.value {
            if !is_portable_name(&name) {
                check.push(
                    pass.line,
                    ProblemKind::InvalidEnvName {
                        key: pass.key,
                        value: name,
                    },
                );
            } else if is_dangerous(name.as_bytes()) && !allow_env.contains(&name) {
                check.push(
                    pass.line,
                    ProblemKind::DangerousPassEnv {
                        key: pass.key,
                        name,
                        allow: keys.allow_env,
                    },
                );
            } else if !pass_env.contains(&name) {
                pass_env.push(name);
            }
        }
    }
    let mut env = Vec::new();
    if let Some(fixed) = fixed {
        for (name, value) in fixed.value {
            if !is_portable_name(&name) {
                check.push(
                    fixed.line,
                    ProblemKind::InvalidEnvName {
                        key: fixed.key,
                        value: name,
                    },
                );
            } else if value.contains('\0') {
                check.push(
                    fixed.line,
                    ProblemKind::NulInEnvValue {
                        key: fixed.key,
                        name,
                    },
                );
            } else if pass_env.contains(&name) {
                check.push(
                    fixed.line,
                    ProblemKind::EnvConflict {
                        pass: keys.pass_env,
                        fixed: fixed.key,
                        name,
                    },
                );
            } else {
                env.push((name, value));
            }
        }
    }
    (pass_env, env)
}

/// `^[A-Za-z_][A-Za-z0-9_]*$`: what a POSIX shell can name (no `BASH_FUNC_x%%` here).
fn is_portable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
