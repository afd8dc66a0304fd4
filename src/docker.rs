//! Docker as the launcher uses it: log in, pull by digest, confirm the local image is that
//! digest, and run compose (v2 plugin, else v1). A trait, so the pipeline can be driven by a
//! recording fake in tests; the process implementation runs the real CLI.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::git::find_program;

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
}

/// The docker CLI found on the system PATH. `DOCKER_HOST` and `DOCKER_CONFIG` pass through
/// from the launcher's environment: they name the engine the launcher was given.
#[derive(Debug)]
pub struct ProcessDocker {
    docker: PathBuf,
}

impl ProcessDocker {
    /// `explicit` (from `--docker`), else docker on the system PATH.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, DockerError> {
        explicit
            .map(Path::to_path_buf)
            .or_else(|| find_program("docker"))
            .filter(|path| path.is_file())
            .map(|docker| Self { docker })
            .ok_or(DockerError::NotFound)
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>, DockerError> {
        let command = args.first().copied().unwrap_or_default().to_owned();
        let mut child = Command::new(&self.docker)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DockerError::Spawn {
                command: command.clone(),
                source,
            })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            let _ = pipe.write_all(text.as_bytes());
        }
        let output = child
            .wait_with_output()
            .map_err(|source| DockerError::Spawn {
                command: command.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(DockerError::Failed {
            command,
            status: output.status.to_string(),
            stderr: stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_owned(),
        })
    }

    fn compose(&self) -> Result<Compose, DockerError> {
        if self.run(&["compose", "version"], None).is_ok() {
            return Ok(Compose::Plugin(self.docker.clone()));
        }
        find_program("docker-compose")
            .map(Compose::Standalone)
            .ok_or(DockerError::NoCompose)
    }
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
        )
        .map(|_| ())
    }

    fn pull(&self, image: &str) -> Result<(), DockerError> {
        self.run(&["pull", "--quiet", image], None).map(|_| ())
    }

    fn inspect(&self, image: &str) -> Result<ImageInfo, DockerError> {
        let out = self.run(&["image", "inspect", "--format", "{{json .}}", image], None)?;
        serde_json::from_slice(&out).map_err(|e| DockerError::Inspect {
            detail: e.to_string(),
        })
    }

    fn compose_up(&self, project: &str, file: &Path, detach: bool) -> Result<Command, DockerError> {
        let mut command = match self.compose()? {
            Compose::Plugin(docker) => {
                let mut command = Command::new(docker);
                command.arg("compose");
                command
            }
            Compose::Standalone(program) => Command::new(program),
        };
        command
            .arg("--project-name")
            .arg(project)
            .arg("--file")
            .arg(file)
            .arg("up");
        if detach {
            command.arg("--detach");
        }
        command.arg("--remove-orphans");
        Ok(command)
    }
}

/// The local image must be the approved one: `RepoDigests` names `repository@digest`, and
/// its ID is the config digest of the verified manifest.
pub fn confirm(
    info: &ImageInfo,
    repository: &str,
    digest: &str,
    config: &str,
) -> Result<(), DockerError> {
    let expected = format!("{repository}@{digest}");
    if !info.repo_digests.contains(&expected) {
        return Err(DockerError::NotApproved {
            detail: format!(
                "RepoDigests {:?} do not include {expected}",
                info.repo_digests
            ),
        });
    }
    if info.id != config {
        return Err(DockerError::NotApproved {
            detail: format!(
                "image ID {} is not the verified config digest {config}",
                info.id
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_requires_digest_and_config() {
        let good = ImageInfo {
            id: "sha256:cfg".into(),
            repo_digests: vec!["r/x@sha256:other".into(), "r/x@sha256:abc".into()],
        };
        assert!(confirm(&good, "r/x", "sha256:abc", "sha256:cfg").is_ok());
        assert!(confirm(&good, "r/x", "sha256:nope", "sha256:cfg").is_err());
        assert!(confirm(&good, "r/y", "sha256:abc", "sha256:cfg").is_err());
        assert!(confirm(&good, "r/x", "sha256:abc", "sha256:evil").is_err());
    }

    #[test]
    fn inspect_output_parses() {
        let info: ImageInfo =
            serde_json::from_str(r#"{"Id":"sha256:1","RepoDigests":["a@sha256:2"],"Os":"linux"}"#)
                .unwrap();
        assert_eq!(info.repo_digests, ["a@sha256:2"]);
    }
}
