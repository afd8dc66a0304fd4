//! Running git with nothing from the environment, the user, the system or a reused repo
//! able to change what it does.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::GitError;
use crate::subprocess::{Outcome, run_captured};

/// The search path for programs the launcher runs itself (git, bash). Fixed: an injected
/// `PATH` must not choose which git verifies the checkout.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Proxy settings may pass through: a proxy sees only bytes whose hashes are checked.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "all_proxy",
];

/// Command-line config outranks every config file. Each line closes a way for a reused
/// repository or the host to run code or change checked-out bytes.
const HARDENING: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.sparseCheckout=false",
    "core.attributesFile=/dev/null",
    "core.autocrlf=false",
    "core.symlinks=true",
    "core.askPass=",
    "credential.helper=",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "protocol.git.allow=always",
    "protocol.ssh.allow=always",
    "protocol.http.allow=always",
    "protocol.https.allow=always",
    "transfer.fsckObjects=true",
    "fetch.fsckObjects=true",
    "fetch.recurseSubmodules=false",
    "fetch.writeCommitGraph=false",
    "submodule.recurse=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "advice.detachedHead=false",
];

/// Longest a local git command may take.
pub const LOCAL_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// Cap on what a git command may print that the launcher keeps.
const MAX_OUTPUT: u64 = 16 * 1024 * 1024;

/// A git program bound to one working directory.
#[derive(Debug)]
pub struct Git {
    program: PathBuf,
    work_dir: PathBuf,
}

/// What a finished git command printed.
#[derive(Debug)]
pub struct GitOutput {
    pub stdout: Vec<u8>,
}

impl Git {
    /// Finds git on [`SAFE_PATH`].
    pub fn locate(work_dir: &Path) -> Result<Self, GitError> {
        let program = find_program("git").ok_or(GitError::GitNotFound)?;
        Ok(Self {
            program,
            work_dir: work_dir.to_owned(),
        })
    }

    /// A git command with a cleared environment and the hardening config.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("LC_ALL", "C")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_SYSTEM", "/dev/null")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ATTR_NOSYSTEM", "1")
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_NO_LAZY_FETCH", "1");
        for name in PROXY_VARS {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command.arg("--no-replace-objects");
        for setting in HARDENING {
            command.arg("-c").arg(setting);
        }
        // The reused directory may be owned by another user (a shared volume); ownership is
        // no defence here, because nothing of the repository's own config is read.
        command
            .arg("-c")
            .arg(format!("safe.directory={}", self.work_dir.display()));
        command.current_dir(&self.work_dir).stdin(Stdio::null());
        command
    }

    /// Runs `git <args>` and returns its output, or an error carrying its stderr.
    pub fn run<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        timeout: Duration,
    ) -> Result<GitOutput, GitError> {
        let mut command = self.command();
        command.args(args);
        let describe = || {
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        // Waited for without polling (the pipes' end wakes it), killed at the deadline.
        let finished =
            run_captured(command, None, timeout, MAX_OUTPUT).map_err(|source| GitError::Spawn {
                command: describe(),
                source,
            })?;
        match finished {
            Outcome::Exited(done) if done.status.success() => Ok(GitOutput {
                stdout: done.stdout,
            }),
            Outcome::Exited(done) => Err(GitError::Failed {
                command: describe(),
                status: done.status.code(),
                stderr: last_line(&done.stderr),
            }),
            Outcome::TimedOut => Err(GitError::TimedOut {
                command: describe(),
                seconds: timeout.as_secs(),
            }),
        }
    }
}

/// Finds a program on [`SAFE_PATH`].
#[must_use]
pub fn find_program(name: &str) -> Option<PathBuf> {
    SAFE_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file())
}

/// The last non-empty line git printed, which is where it says what went wrong.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
        .to_owned()
}
