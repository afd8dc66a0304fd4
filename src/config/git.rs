//! The git workload's section: where it comes from, how it starts, what environment it gets.

use super::raw::{KeyNames, Located, RawConfig};
use super::{
    Checker, DEFAULT_ENTRYPOINT, DEFAULT_INSTALL_TIMEOUT, GitSpec, LaunchMode, Problem,
    ProblemKind, RelativePath, is_portable_name,
};
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
    // Empty values as git-launcher's newest version reads them (DESIGN §7): an empty
    // ENTRYPOINT_SCRIPT is the default script; an empty INSTALL_CMD counts as set (it still
    // requires RUN_CMD) but runs nothing.
    let entrypoint = raw
        .entrypoint
        .and_then(|v| check.text(v))
        .filter(|v| !v.value.is_empty());
    let install = raw.install.and_then(|v| check.text(v));
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
    let install_timeout = check.seconds(raw.install_timeout, DEFAULT_INSTALL_TIMEOUT);
    let signature = raw
        .git_signature
        .map(|s| super::signature::validate(s, &super::signature::GIT_KEYS, check));

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
            install: install.map(|v| v.value).filter(|v| !v.is_empty()),
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
        install_timeout: install_timeout?,
        signature: signature.flatten(),
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

#[cfg(test)]
mod tests {
    use crate::config::{LaunchMode, RelativePath, WorkloadSpec, load};

    const SHA: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";

    fn load_text(name: &str, text: &str) -> Result<crate::config::GitSpec, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        match load(&path, None) {
            Ok(config) => match config.workload {
                WorkloadSpec::Git(git) => Ok(*git),
                WorkloadSpec::Image(_) => panic!("not git"),
            },
            Err(e) => Err(e
                .lines()
                .into_iter()
                .map(|l| l.replace(&path.display().to_string(), name))
                .collect()),
        }
    }

    fn line(extra: &str) -> String {
        format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n{extra}")
    }

    fn toml(extra: &str) -> String {
        format!("[git]\nrepo = \"file:///r\"\ncommit = \"{SHA}\"\nwork_dir = \"/w\"\n{extra}")
    }

    #[test]
    fn accept_table() {
        let git = load_text(
            "c.conf",
            &line("PASS_ENV=RUST_LOG, https_proxy\tLD_LIBRARY_PATH RUST_LOG\nALLOW_ENV=LD_LIBRARY_PATH\n"),
        )
        .unwrap();
        assert_eq!(git.pass_env, ["RUST_LOG", "https_proxy", "LD_LIBRARY_PATH"]);
        assert!(git.env.is_empty());
        let git = load_text(
            "c.toml",
            &toml("pass_env = [\"TOKEN\"]\nenv = { MODE = \"prod\", PATH = \"/opt/bin:/usr/bin\", PEM = \"a\\nb\", PYTHONPATH = \"/srv/lib\" }\n"),
        )
        .unwrap();
        assert_eq!(git.pass_env, ["TOKEN"]);
        assert_eq!(
            git.env,
            [
                ("MODE".to_owned(), "prod".to_owned()),
                ("PATH".to_owned(), "/opt/bin:/usr/bin".to_owned()),
                ("PEM".to_owned(), "a\nb".to_owned()),
                ("PYTHONPATH".to_owned(), "/srv/lib".to_owned()),
            ]
        );
        let git = load_text("c.conf", &line("")).unwrap();
        assert!(git.pass_env.is_empty() && git.env.is_empty());
    }

    #[test]
    fn reject_table() {
        for (name, text, expected) in [
            (
                "c.conf",
                line("PASS_ENV=FOO,A=B\n"),
                r#"c.conf:4: PASS_ENV entry is not an environment variable name (got "A=B")"#,
            ),
            (
                "c.conf",
                line("PASS_ENV=BASH_FUNC_ls%%\n"),
                r#"c.conf:4: PASS_ENV entry is not an environment variable name (got "BASH_FUNC_ls%%")"#,
            ),
            (
                "c.conf",
                line("PASS_ENV=1X\n"),
                r#"c.conf:4: PASS_ENV entry is not an environment variable name (got "1X")"#,
            ),
            (
                "c.conf",
                line("PASS_ENV=LD_PRELOAD\n"),
                "c.conf:4: PASS_ENV names LD_PRELOAD, which changes what a loader, shell or interpreter runs; name it in ALLOW_ENV too to pass it",
            ),
            (
                "c.conf",
                line("PASS_ENV=A\nPASS_ENV=B\n"),
                "c.conf:5: duplicate key PASS_ENV (first set on line 4)",
            ),
            (
                "c.conf",
                line("ENV_MODE=prod\n"),
                "c.conf:4: unknown key ENV_MODE",
            ),
            (
                "c.toml",
                toml("pass_env = [\"BASH_ENV\"]\n"),
                "c.toml:5: git.pass_env names BASH_ENV, which changes what a loader, shell or interpreter runs; name it in git.allow_env too to pass it",
            ),
            (
                "c.toml",
                toml("pass_env = \"A\"\n"),
                "c.toml:5: git.pass_env must be an array of strings",
            ),
            (
                "c.toml",
                toml("pass_env = [\"MODE\"]\nenv = { MODE = \"prod\" }\n"),
                "c.toml:6: git.pass_env and git.env both name MODE (pass it through or fix its value, not both)",
            ),
            (
                "c.toml",
                toml("env = { \"A-B\" = \"x\" }\n"),
                r#"c.toml:5: git.env entry is not an environment variable name (got "A-B")"#,
            ),
            (
                "c.toml",
                toml("env = { A = \"x\\u0000y\" }\n"),
                "c.toml:5: git.env value of A contains a NUL character",
            ),
            (
                "c.toml",
                toml("env = { A = 1 }\n"),
                "c.toml:5: git.env must be a table of strings",
            ),
            (
                "c.toml",
                toml("env = [\"A=1\"]\n"),
                "c.toml:5: git.env must be a table of strings",
            ),
        ] {
            assert_eq!(
                load_text(name, &text).unwrap_err(),
                vec![expected],
                "{text:?}"
            );
        }
    }

    fn commands(install: Option<&str>, run: &str) -> LaunchMode {
        LaunchMode::Commands {
            install: install.map(str::to_owned),
            run: run.to_owned(),
        }
    }

    /// Empty values as git-launcher's newest version reads them (DESIGN §7), in both
    /// spellings; its own tests write `INSTALL_CMD=` beside `RUN_CMD` in advanced mode.
    #[test]
    fn empty_values_accept_table() {
        let default = LaunchMode::Entrypoint(RelativePath::parse("entrypoint.sh").unwrap());
        for (name, text, launch) in [
            (
                "c.conf",
                line("INSTALL_CMD=\nRUN_CMD=./run.sh\n"),
                commands(None, "./run.sh"),
            ),
            (
                "c.conf",
                line("RUN_CMD=./run.sh\nINSTALL_CMD=\n"),
                commands(None, "./run.sh"),
            ),
            (
                "c.conf",
                line("INSTALL_CMD=\"\"\nRUN_CMD=x\n"),
                commands(None, "x"),
            ),
            (
                "c.conf",
                line("INSTALL_CMD=''\nRUN_CMD=x\n"),
                commands(None, "x"),
            ),
            (
                "c.conf",
                line("INSTALL_CMD=make\nRUN_CMD=x\n"),
                commands(Some("make"), "x"),
            ),
            ("c.conf", line("ENTRYPOINT_SCRIPT=\n"), default.clone()),
            ("c.conf", line("ENTRYPOINT_SCRIPT=\"\"\n"), default.clone()),
            (
                "c.conf",
                line("ENTRYPOINT_SCRIPT=\nRUN_CMD=x\n"),
                commands(None, "x"),
            ),
            ("c.conf", line("REPO_SUBDIR=\n"), default.clone()),
            (
                "c.toml",
                toml("install = \"\"\nrun = \"x\"\n"),
                commands(None, "x"),
            ),
            ("c.toml", toml("entrypoint = \"\"\n"), default.clone()),
            (
                "c.toml",
                toml("entrypoint = \"\"\nrun = \"x\"\n"),
                commands(None, "x"),
            ),
            ("c.toml", toml("subdir = \"\"\n"), default),
        ] {
            let git = load_text(name, &text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
            assert_eq!(git.launch, launch, "{text:?}");
            assert_eq!(git.subdir, None, "{text:?}");
        }
    }

    #[test]
    fn empty_values_reject_table() {
        for (name, text, expected) in [
            (
                "c.conf",
                line("INSTALL_CMD=\n"),
                vec!["c.conf:4: INSTALL_CMD requires RUN_CMD"],
            ),
            (
                "c.conf",
                line("ENTRYPOINT_SCRIPT=\nINSTALL_CMD=\"\"\n"),
                vec!["c.conf:5: INSTALL_CMD requires RUN_CMD"],
            ),
            (
                "c.conf",
                line("RUN_CMD=\n"),
                vec!["c.conf:4: RUN_CMD must not be empty"],
            ),
            (
                "c.conf",
                line("RUN_CMD=''\n"),
                vec!["c.conf:4: RUN_CMD must not be empty"],
            ),
            (
                "c.conf",
                line("INSTALL_CMD=\nRUN_CMD=\n"),
                vec![
                    "c.conf:4: INSTALL_CMD requires RUN_CMD",
                    "c.conf:5: RUN_CMD must not be empty",
                ],
            ),
            (
                "c.conf",
                line("ENTRYPOINT_SCRIPT=e.sh\nRUN_CMD=x\n"),
                vec![
                    "c.conf:5: ENTRYPOINT_SCRIPT and RUN_CMD cannot both be set (default mode runs the entry script, advanced mode runs RUN_CMD)",
                ],
            ),
            (
                "c.conf",
                line("INSTALL_CMD=\u{1b}\nRUN_CMD=x\n"),
                vec!["c.conf:4: INSTALL_CMD contains a control character"],
            ),
            (
                "c.toml",
                toml("install = \"\"\n"),
                vec!["c.toml:5: git.install requires git.run"],
            ),
            (
                "c.toml",
                toml("run = \"\"\n"),
                vec!["c.toml:5: git.run must not be empty"],
            ),
        ] {
            assert_eq!(load_text(name, &text).unwrap_err(), expected, "{text:?}");
        }
    }
}
