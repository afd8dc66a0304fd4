//! The top-level error: what the user reads and which exit code they get.

use crate::approval::ApprovalError;
use crate::compose_document::ComposeError;
use crate::config::ConfigError;
use crate::docker::DockerError;
use crate::git::GitError;
use crate::launch::LaunchError;
use crate::launch::image::ImageLaunchError;
use crate::launch::watch::WatchError;
use crate::measure::MeasureError;
use crate::registry::RegistryError;
use crate::sigstore::SignatureError;

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for any launcher failure other than usage or config.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a usage or config error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the output (`plan`'s, `verify`'s report) could not be written to stdout:
/// a closed pipe (EPIPE), a full disk. Whatever the command decided, the caller never got it.
pub const EXIT_OUTPUT: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the output to stdout: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    #[error(transparent)]
    Measure(#[from] MeasureError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    ImageLaunch(#[from] ImageLaunchError),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

impl Error {
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) | Self::Config(_) => EXIT_USAGE,
            Self::Output(_) => EXIT_OUTPUT,
            _ => EXIT_FAILURE,
        }
    }

    /// One line per problem. Messages carry their cause inline, so this is the whole story.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Config(error) => error.lines(),
            other => vec![other.to_string()],
        }
    }
}
