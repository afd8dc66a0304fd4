//! Docker as the launcher uses it: log in, pull by digest, confirm the local image is that
//! digest, and run compose (v2 plugin, else v1). A trait, so the pipeline can be driven by a
//! recording fake in tests; the process implementation runs the real CLI.

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::git::{SAFE_PATH, find_program};
use crate::subprocess::{Outcome, run_captured};

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("docker not found on the system PATH")]
    NotFound,
    #[error("neither `docker compose` (v2) nor `docker-compose` (v1) is available")]
    NoCompose,
    #[error("cannot run docker {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("docker {command} did not finish within {seconds}s; killed it")]
    TimedOut { command: String, seconds: u64 },
    #[error("cannot prepare the private docker config directory {path}: {source}")]
    ConfigDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("docker {command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("docker image inspect printed something that is not an image: {detail}")]
    Inspect { detail: String },
    #[error("the pulled image is not what was approved: {detail}; not starting it")]
    NotApproved { detail: String },
}

/// What `docker image inspect` says about an image.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ImageInfo {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Vec<String>,
}

/// How compose is invoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compose {
    /// `docker compose ...`
    Plugin(PathBuf),
    /// `docker-compose ...`
    Standalone(PathBuf),
}

pub trait Docker {
    fn login(&self, registry: &str, username: &str, password: &str) -> Result<(), DockerError>;
    fn pull(&self, image: &str) -> Result<(), DockerError>;
    fn inspect(&self, image: &str) -> Result<ImageInfo, DockerError>;
    /// The command that runs `compose -p project -f file up [-d]`.
    fn compose_up(&self, project: &str, file: &Path, detach: bool) -> Result<Command, DockerError>;
    /// Runs `compose -p project -f file down --remove-orphans`, within [`DOWN_TIMEOUT`]: stops
    /// and removes the project's containers (named volumes stay).
    fn compose_down(&self, project: &str, file: &Path) -> Result<(), DockerError>;
}

/// Where docker is told to find its engine and its own config: from the attested config and
/// the command line only, never from the launcher's environment.
#[derive(Clone, Debug)]
pub struct DockerSettings {
    /// `DOCKER_HOST` for every docker call (`[image] docker_host`).
    pub host: String,
    /// The launcher's private `DOCKER_CONFIG`, recreated empty (mode 0700) for this run.
    pub config_dir: PathBuf,
    /// Longest `docker pull` may take (`[image] pull_timeout`).
    pub pull_timeout: Duration,
}

/// Longest any docker call but `pull` and `compose up --detach` may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `compose up --detach` may take (it creates and starts the containers).
pub const DETACHED_UP_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest `compose down` may take: compose gives each container 10 s to stop after
/// SIGTERM, then kills it (docker docs, `docker compose down --timeout`).
pub const DOWN_TIMEOUT: Duration = Duration::from_secs(120);
/// What is kept of a docker call's stdout or stderr; the rest is read and dropped.
pub const MAX_OUTPUT: u64 = 1024 * 1024;
/// What of docker's last stderr line goes into an error message.
const MAX_ERROR_CHARS: usize = 512;
/// An empty file in the private directory, given to compose as `--env-file`. Without it,
/// compose reads `.env` from the compose file's directory, which can set `DOCKER_HOST`,
/// `COMPOSE_FILE` and the values `${VAR}` in the document interpolates (docker docs,
/// "Environment file"; `--env-file` replaces that default).
pub const EMPTY_ENV_FILE: &str = "empty.env";
/// The launcher's private docker config directory when the command line names none: on
/// the launcher container's own `/run` (a tmpfs in the examples), never a shared volume.
pub const DEFAULT_CONFIG_DIR: &str = "/run/trusted-launcher/docker-config";

/// The docker CLI, run with a cleared environment: a fixed `PATH`, `DOCKER_HOST` from the
/// config, and a private `DOCKER_CONFIG`. Inherited, `DOCKER_CONFIG` or `HOME` naming a
/// shared volume would pick the `cli-plugins/docker-compose` it runs (and its credentials),
/// `DOCKER_HOST` or `DOCKER_CONTEXT` the engine it believes, `COMPOSE_*` what compose does.
#[derive(Debug)]
pub struct ProcessDocker {
    docker: PathBuf,
    settings: DockerSettings,
}

impl ProcessDocker {
    /// `explicit` (from `--docker`), else docker on the system PATH; prepares the private
    /// config directory.
    pub fn locate(explicit: Option<&Path>, settings: DockerSettings) -> Result<Self, DockerError> {
        let docker = explicit
            .map(Path::to_path_buf)
            .or_else(|| find_program("docker"))
            .filter(|path| path.is_file())
            .ok_or(DockerError::NotFound)?;
        let io = |source| DockerError::ConfigDir {
            path: settings.config_dir.clone(),
            source,
        };
        fresh_private_dir(&settings.config_dir).map_err(io)?;
        std::fs::write(settings.config_dir.join(EMPTY_ENV_FILE), b"").map_err(io)?;
        Ok(Self { docker, settings })
    }

    /// `program` with nothing of the launcher's environment.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", SAFE_PATH)
            .env("HOME", &self.settings.config_dir)
            .env("DOCKER_CONFIG", &self.settings.config_dir)
            .env("DOCKER_HOST", &self.settings.host);
        command
    }

    fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, DockerError> {
        let command = args.first().copied().unwrap_or_default().to_owned();
        let mut process = self.command(&self.docker);
        process.args(args);
        Self::finish(process, command, stdin, timeout)
    }

    /// Runs `process` to completion within `timeout`, its output captured and capped.
    fn finish(
        process: Command,
        command: String,
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, DockerError> {
        let outcome = run_captured(process, stdin.map(str::as_bytes), timeout, MAX_OUTPUT)
            .map_err(|source| DockerError::Spawn {
                command: command.clone(),
                source,
            })?;
        let Outcome::Exited(output) = outcome else {
            return Err(DockerError::TimedOut {
                command,
                seconds: timeout.as_secs(),
            });
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        // One readable line, however much the program printed.
        let mut stderr: String = last.chars().take(MAX_ERROR_CHARS).collect();
        if stderr.len() < last.len() {
            stderr.push_str("...");
        }
        Err(DockerError::Failed {
            command,
            status: output.status.to_string(),
            stderr,
        })
    }

    fn compose(&self) -> Result<Compose, DockerError> {
        if self
            .run(&["compose", "version"], None, CALL_TIMEOUT)
            .is_ok()
        {
            return Ok(Compose::Plugin(self.docker.clone()));
        }
        find_program("docker-compose")
            .map(Compose::Standalone)
            .ok_or(DockerError::NoCompose)
    }
}

/// Removes whatever is at `path` (never following a symlink) and creates it empty, 0700.
fn fresh_private_dir(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path)?,
        Ok(_) => std::fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // `create`, not `create_all`: if something appeared in between, fail rather than use it.
    std::fs::DirBuilder::new().mode(0o700).create(path)
}

impl Docker for ProcessDocker {
    fn login(&self, registry: &str, username: &str, password: &str) -> Result<(), DockerError> {
        self.run(
            &[
                "login",
                registry,
                "--username",
                username,
                "--password-stdin",
            ],
            Some(password),
            CALL_TIMEOUT,
        )
        .map(|_| ())
    }

    fn pull(&self, image: &str) -> Result<(), DockerError> {
        self.run(
            &["pull", "--quiet", image],
            None,
            self.settings.pull_timeout,
        )
        .map(|_| ())
    }

    fn inspect(&self, image: &str) -> Result<ImageInfo, DockerError> {
        let out = self.run(
            &["image", "inspect", "--format", "{{json .}}", image],
            None,
            CALL_TIMEOUT,
        )?;
        serde_json::from_slice(&out).map_err(|e| DockerError::Inspect {
            detail: e.to_string(),
        })
    }

    fn compose_up(&self, project: &str, file: &Path, detach: bool) -> Result<Command, DockerError> {
        let mut command = self.compose_command(project, file)?;
        command.arg("up");
        if detach {
            command.arg("--detach");
        }
        command.arg("--remove-orphans");
        Ok(command)
    }

    fn compose_down(&self, project: &str, file: &Path) -> Result<(), DockerError> {
        let mut command = self.compose_command(project, file)?;
        command.args(["down", "--remove-orphans"]);
        Self::finish(command, "compose down".into(), None, DOWN_TIMEOUT).map(|_| ())
    }
}

impl ProcessDocker {
    /// `compose --project-name P --env-file <empty> --file F`, for a subcommand to follow.
    fn compose_command(&self, project: &str, file: &Path) -> Result<Command, DockerError> {
        let mut command = match self.compose()? {
            Compose::Plugin(docker) => {
                let mut command = self.command(&docker);
                command.arg("compose");
                command
            }
            Compose::Standalone(program) => self.command(&program),
        };
        command
            .arg("--project-name")
            .arg(project)
            .arg("--env-file")
            .arg(self.settings.config_dir.join(EMPTY_ENV_FILE))
            .arg("--file")
            .arg(file);
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_output_parses() {
        let info: ImageInfo =
            serde_json::from_str(r#"{"Id":"sha256:1","RepoDigests":["a@sha256:2"],"Os":"linux"}"#)
                .unwrap();
        assert_eq!(info.repo_digests, ["a@sha256:2"]);
    }
}
