//! Git mode's launch steps: before measuring, bash and who can write `WORK_DIR`; then the
//! verified checkout: resolve the directory and entry, check who else can write them, build
//! the workload's environment, run `INSTALL_CMD` (bounded), re-check what runs right before
//! `ready`; and exec.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::approval::Approved;
use crate::config::{GitSpec, LaunchMode};
use crate::digest::CommitId;
use crate::error::Error;
use crate::git::VerifiedCheckout;
use crate::launch::LaunchError;
use crate::log::Logger;
use crate::platform::Platform;
use crate::subprocess::{self, Outcome};
use crate::work_dir::Exposure;
use crate::workload_env::{self, EnvPolicy};

/// Git mode's steps for the spine ([`super::run`]): the approved commit with what checking
/// it out and running it needs.
#[derive(Debug)]
pub struct GitLaunch {
    spec: Box<GitSpec>,
    commit: Approved<CommitId>,
    bash: PathBuf,
    platform: Platform,
}

impl GitLaunch {
    /// What can fail before anything is measured: no bash, or (tee mode) another writer on
    /// `WORK_DIR` or above it.
    pub fn check(
        spec: Box<GitSpec>,
        commit: Approved<CommitId>,
        platform: Platform,
        log: &Logger,
    ) -> Result<Self, Error> {
        let bash = crate::git::find_program("bash").ok_or(LaunchError::BashNotFound)?;
        Exposure::before_checkout(&spec.work_dir)
            .enforce(platform, log)
            .map_err(LaunchError::from)?;
        Ok(Self {
            spec,
            commit,
            bash,
            platform,
        })
    }

    /// Between `workload` and `ready`: checks out and verifies the approved commit, prepares
    /// the workload (`INSTALL_CMD`), and re-checks it.
    pub fn prepare(self, log: &Logger) -> Result<Ready, Error> {
        let repo_url = absolute_repo_url(&self.spec.repo_url);
        let checkout = crate::git::checkout(&repo_url, &self.spec.work_dir, &self.commit, log)?;
        let prepared = prepare(&self.spec, &checkout, &self.bash, self.platform, log)?;
        // Last look before `ready`: what INSTALL_CMD or a writer did since verification.
        recheck(&prepared, &checkout, self.platform, log)?;
        Ok(Ready {
            prepared,
            bash: self.bash,
        })
    }
}

/// The prepared git workload, exec'd once `ready` is measured.
#[derive(Debug)]
pub struct Ready {
    prepared: Prepared,
    bash: PathBuf,
}

impl Ready {
    /// Replaces the launcher with the workload; returns only the error of a failed exec.
    #[must_use]
    pub fn exec(mut self) -> Error {
        let source = self.prepared.command.exec();
        LaunchError::Exec {
            program: self.bash,
            source,
        }
        .into()
    }
}

/// A relative local path is resolved against the launcher's working directory, as
/// `git clone` does; URLs and absolute paths are used as written.
#[must_use]
pub fn absolute_repo_url(url: &str) -> String {
    let scp_like = url
        .find(':')
        .is_some_and(|colon| url.find('/').is_none_or(|slash| colon < slash));
    if url.contains("://") || scp_like || Path::new(url).is_absolute() {
        return url.to_owned();
    }
    std::env::current_dir().map_or_else(
        |_| url.to_owned(),
        |cwd| cwd.join(url).to_string_lossy().into_owned(),
    )
}

/// The git workload, ready to exec once [`recheck`] passes.
#[derive(Debug)]
pub struct Prepared {
    pub command: Command,
    /// The paths whose writers could change the checkout.
    exposure: Exposure,
    /// Default mode: the entry script (canonical), re-hashed right before exec.
    entry: Option<PathBuf>,
}

/// Resolves the target directory and entry inside the verified checkout, checks who else
/// can write them, runs `INSTALL_CMD` if any, and returns the command to exec with the
/// workload's environment.
pub fn prepare(
    spec: &GitSpec,
    checkout: &VerifiedCheckout,
    bash: &Path,
    platform: Platform,
    log: &Logger,
) -> Result<Prepared, Error> {
    let target = match &spec.subdir {
        Some(subdir) => inside(
            checkout,
            &checkout.root.join(subdir.as_path()),
            "REPO_SUBDIR",
            &subdir.to_string(),
        )?,
        None => checkout.root.clone(),
    };
    require_kind(&target, "REPO_SUBDIR", true)?;
    let entry = match &spec.launch {
        LaunchMode::Entrypoint(entry) => {
            let resolved = inside(
                checkout,
                &target.join(entry.as_path()),
                "ENTRYPOINT_SCRIPT",
                &entry.to_string(),
            )?;
            require_kind(&resolved, "ENTRYPOINT_SCRIPT", false)?;
            Some(resolved)
        }
        LaunchMode::Commands { .. } => None,
    };
    let mut exposure = Exposure::checkout(&checkout.root).with("REPO_SUBDIR", &target);
    if let Some(entry) = &entry {
        exposure = exposure.with("ENTRYPOINT_SCRIPT", entry);
    }
    exposure.enforce(platform, log).map_err(LaunchError::from)?;

    let policy = EnvPolicy {
        allow: &spec.allow_env,
        pass: &spec.pass_env,
        fixed: &spec.env,
    };
    let env = workload_env::build(platform, std::env::vars_os(), &policy);
    log_env(&env, spec, platform, log);
    let bash_with = |args: &[&OsStr]| {
        let mut command = Command::new(bash);
        command
            .args(args)
            .current_dir(&target)
            .env_clear()
            .envs(env.vars.iter().map(|(k, v)| (k, v)));
        command
    };

    let command = match &spec.launch {
        LaunchMode::Entrypoint(entry) => {
            log.info(&format!("launching: bash {entry} in {}", target.display()));
            bash_with(&[entry.as_path().as_os_str()])
        }
        LaunchMode::Commands { install, run } => {
            if let Some(install) = install {
                log.info(&format!(
                    "running INSTALL_CMD in {} (at most {}s)",
                    target.display(),
                    spec.install_timeout.as_secs()
                ));
                let outcome = subprocess::run_group(
                    bash_with(&["-c".as_ref(), install.as_ref()]),
                    spec.install_timeout,
                    bash,
                )
                .map_err(|source| LaunchError::InstallSpawn { source })?;
                let Outcome::Exited(status) = outcome else {
                    return Err(LaunchError::InstallTimedOut {
                        seconds: spec.install_timeout.as_secs(),
                    }
                    .into());
                };
                if !status.success() {
                    return Err(LaunchError::InstallFailed {
                        status: status.to_string(),
                    }
                    .into());
                }
            }
            log.info(&format!(
                "launching: bash -c RUN_CMD in {}",
                target.display()
            ));
            bash_with(&["-c".as_ref(), run.as_ref()])
        }
    };
    Ok(Prepared {
        command,
        exposure,
        entry,
    })
}

/// Names only, never values: which variables the workload gets and which it does not.
fn log_env(env: &workload_env::WorkloadEnv, spec: &GitSpec, platform: Platform, log: &Logger) {
    if platform == Platform::Nontee {
        for name in &env.dropped {
            log.warn(&format!(
                "not passing {name} to the workload (it changes what a loader or shell runs; allow it with ALLOW_ENV / git.allow_env)"
            ));
        }
        return;
    }
    log.info(&format!("workload environment: {}", env.passed.join(", ")));
    let unset: Vec<&str> = spec
        .pass_env
        .iter()
        .filter(|name| !env.passed.contains(name))
        .map(String::as_str)
        .collect();
    if !unset.is_empty() {
        log.info(&format!(
            "named in PASS_ENV / git.pass_env but not set: {}",
            unset.join(", ")
        ));
    }
    if !env.dropped.is_empty() {
        log.warn(&format!(
            "not passing to the workload (tee mode passes only PASS_ENV / git.pass_env names): {}",
            env.dropped.join(", ")
        ));
    }
}

/// Right before `ready`: nobody else can write the checkout, and what runs is still what
/// was verified — the entry script in default mode (refused on change in both modes), every
/// file of the commit after `INSTALL_CMD` in advanced mode (refused on change in tee mode; a
/// warning in nontee mode, where git-launcher lets `INSTALL_CMD` edit tracked files).
pub fn recheck(
    prepared: &Prepared,
    checkout: &VerifiedCheckout,
    platform: Platform,
    log: &Logger,
) -> Result<(), Error> {
    prepared
        .exposure
        .enforce(platform, log)
        .map_err(LaunchError::from)?;
    if let Some(entry) = &prepared.entry {
        checkout.recheck_file(entry)?;
        log.info(&format!(
            "entry re-checked against the commit: {}",
            entry.display()
        ));
        return Ok(());
    }
    match checkout.recheck_tracked() {
        Ok(files) => log.info(&format!(
            "working tree re-checked: {files} files still match the commit"
        )),
        Err(error) if platform == Platform::Nontee => {
            log.warn(&format!("{error}; starting anyway (refused in tee mode)"));
        }
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// Resolves symlinks in `path` and requires the result inside the checkout, outside `.git`.
fn inside(
    checkout: &VerifiedCheckout,
    path: &Path,
    what: &'static str,
    configured: &str,
) -> Result<PathBuf, LaunchError> {
    let resolved = fs::canonicalize(path).map_err(|_| LaunchError::Missing {
        what,
        path: path.to_owned(),
    })?;
    let in_git_dir = resolved.starts_with(checkout.root.join(".git"));
    if !resolved.starts_with(&checkout.root) || in_git_dir {
        return Err(LaunchError::Escapes {
            what,
            configured: configured.to_owned(),
            resolved,
            root: checkout.root.clone(),
        });
    }
    Ok(resolved)
}

fn require_kind(path: &Path, what: &'static str, directory: bool) -> Result<(), LaunchError> {
    let meta = fs::metadata(path).map_err(|_| LaunchError::Missing {
        what,
        path: path.to_owned(),
    })?;
    let ok = if directory {
        meta.is_dir()
    } else {
        meta.is_file()
    };
    if ok {
        Ok(())
    } else {
        Err(LaunchError::WrongType {
            what,
            path: path.to_owned(),
            expected: if directory {
                "directory"
            } else {
                "regular file"
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_urls_resolve_like_git_clone() {
        for url in [
            "https://h/r.git",
            "git@h:o/r.git",
            "h:r",
            "/abs/r.git",
            "file:///r",
        ] {
            assert_eq!(absolute_repo_url(url), url);
        }
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_repo_url("examples/r.bundle"),
            cwd.join("examples/r.bundle").to_string_lossy()
        );
        assert_eq!(
            absolute_repo_url("./a:b"),
            cwd.join("./a:b").to_string_lossy()
        );
    }
}
