//! The validated launch config ([`LaunchConfig`]) and its sections, read from any of the
//! formats by [`load()`].
//!
//! Reading is two-phase ([`load()`]): a format parser fills a [`RawConfig`], then validation
//! turns it into a [`LaunchConfig`], collecting every problem with its line so a user fixes
//! them all in one go.

mod checker;
mod default_path;
mod git;
mod image;
mod line;
mod load;
mod near;
mod problem;
mod raw;
mod relative_path;
mod signature;
mod toml;
mod workload_config;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use default_path::default_config;
pub use load::{ConfigError, load, load_with_env, parse_bytes};
pub use near::relocate_shared as relocate_near_shared;
pub use problem::{Problem, ProblemKind};
pub use relative_path::RelativePath;
pub use workload_config::{LauncherTable, WorkloadConfigFormat, WorkloadConfigSpec};

use crate::digest::{CommitId, ImageDigest, Sha256Digest};
use crate::measure::BackendChoice;
use crate::registry::{ImageReference, Platform};
use checker::{Checker, is_env_name, is_portable_name};

/// Entry script of default mode when the config names none.
pub const DEFAULT_ENTRYPOINT: &str = "entrypoint.sh";

/// The two config formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// git-launcher's `KEY=VALUE` lines.
    Line,
    Toml,
    /// NEAR tee-launcher's `/tapp/user_config`: `[launcher_config]` + `[mpc_node_config]`.
    Near,
}

impl ConfigFormat {
    /// `--format` wins, then NEAR's user config (TOML whose top-level tables are
    /// `launcher_config` and `mpc_node_config`), then a `.toml` extension, then the content:
    /// a document whose first meaningful line opens a `[table]` is TOML, anything else is
    /// the line format.
    #[must_use]
    pub fn detect(explicit: Option<Self>, path: &Path, text: &str) -> Self {
        if let Some(format) = explicit {
            return format;
        }
        if near::looks_like_near(text) {
            return Self::Near;
        }
        if path.extension().is_some_and(|ext| ext == "toml") {
            return Self::Toml;
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'));
        if first.is_some_and(|line| line.starts_with('[')) {
            Self::Toml
        } else {
            Self::Line
        }
    }
}

impl fmt::Display for ConfigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Line => "line",
            Self::Toml => "toml",
            Self::Near => "near",
        })
    }
}

/// A config that passed validation, with the identity of the bytes it came from.
#[derive(Clone, Debug)]
pub struct LaunchConfig {
    pub path: PathBuf,
    pub format: ConfigFormat,
    /// SHA-256 of the exact file bytes: what the `trusted-launcher.config` event measures.
    pub sha256: Sha256Digest,
    pub workload: WorkloadSpec,
    pub measurement: MeasurementSpec,
}

/// The workload section: `[git]` (or the line format), or `[image]`.
#[derive(Clone, Debug)]
pub enum WorkloadSpec {
    Git(Box<GitSpec>),
    Image(Box<ImageSpec>),
}

/// `[image]`: an OCI image by digest from a registry.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub reference: ImageReference,
    /// The pinned digest: what runs unless an approved list says otherwise.
    pub digest: ImageDigest,
    pub approved_list: Option<PathBuf>,
    pub override_digest: Option<ImageDigest>,
    pub platform: Platform,
    /// Plain HTTP to a non-loopback registry.
    pub insecure: bool,
    /// Extra CA certificates (PEM) for a private registry, beside the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Also measure NEAR's `mpc-image-digest` (the 32 raw digest bytes), so NEAR's verifier
    /// accepts the launch.
    pub near_compat: bool,
    pub username: Option<String>,
    /// The environment variable holding the registry password (secrets stay out of the
    /// attested config).
    pub password_env: Option<String>,
    /// Compose project name: stable, so a restart replaces rather than duplicates.
    pub project: String,
    pub compose_template: Option<PathBuf>,
    /// The template used when `compose_template` is not set.
    pub built_in_template: &'static str,
    /// Where the rendered compose file is written.
    pub compose_file: PathBuf,
    /// `up -d` and exit, instead of exec'ing `up` in the foreground (implied by `watch`).
    pub detach: bool,
    /// `watch_interval` / `watch_switch`: stay and supervise the workload (off by default).
    pub watch: Option<WatchSpec>,
    /// The engine every docker call is sent to, as `DOCKER_HOST`; never from the environment.
    pub docker_host: String,
    /// Longest `docker pull` may take.
    pub pull_timeout: Duration,
    pub service: ServiceSpec,
    /// `[image.workload_config]`: a config file for the workload, written before `ready`.
    pub workload_config: Option<WorkloadConfigSpec>,
    /// `[image.signature]`: the image runs only with a signature this policy accepts.
    pub signature: Option<crate::sigstore::SignaturePolicy>,
}

/// `[image] watch_interval` and `watch_switch`: re-read the approved list every `interval`;
/// stop a workload that is no longer approved, then start the newest approved one (`switch`)
/// or exit non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    pub interval: Duration,
    pub switch: bool,
}

/// Bounds of `[image] watch_interval`, in seconds.
pub const WATCH_INTERVAL_SECONDS: std::ops::RangeInclusive<u64> = 5..=86_400;

/// `[image.service]`: what a user sets on the one service of the built-in template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    pub command: Option<Vec<String>>,
    pub environment: Vec<(String, String)>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub cap_add: Vec<String>,
    pub restart: String,
    /// Mount the dstack guest-agent socket into the workload (off by default).
    pub dstack_socket: bool,
    /// Mount the Docker socket into the workload (off by default).
    pub docker_socket: bool,
}

pub const DEFAULT_PROJECT: &str = "trusted-launcher";
/// The engine when the config names none: the socket the launcher container mounts.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// `docker pull` of a large image over a slow link; a stuck registry still ends.
pub const DEFAULT_PULL_TIMEOUT: Duration = Duration::from_secs(600);
/// `INSTALL_CMD` (dependency installs, builds); a hung one still ends.
pub const DEFAULT_INSTALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// Upper bound of every configurable timeout: a week.
const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;
pub const DEFAULT_COMPOSE_FILE: &str = "/run/trusted-launcher/compose.yaml";

/// The platform an index is resolved for when the config names none.
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// `[measurement]`: where events go. Command-line flags override each field.
#[derive(Clone, Debug, Default)]
pub struct MeasurementSpec {
    pub event_log: Option<PathBuf>,
    pub backend: Option<BackendChoice>,
    pub dstack_socket: Option<PathBuf>,
    pub rtmr3_path: Option<PathBuf>,
    /// dstack's runtime event directory for `dstack-native`.
    pub dstack_runtime_dir: Option<PathBuf>,
}

/// The git workload: where it comes from, where it goes, how it starts.
#[derive(Clone, Debug)]
pub struct GitSpec {
    pub repo_url: String,
    /// The pinned commit: what runs unless an approved list says otherwise.
    pub commit: CommitId,
    pub work_dir: PathBuf,
    pub subdir: Option<RelativePath>,
    pub launch: LaunchMode,
    pub approved_list: Option<PathBuf>,
    pub override_commit: Option<CommitId>,
    /// Variables the workload may receive although they change what a loader or shell runs.
    pub allow_env: Vec<String>,
    /// Tee mode: the only variables passed through from the launcher's environment.
    pub pass_env: Vec<String>,
    /// Fixed values for the workload's environment, in both modes (TOML only).
    pub env: Vec<(String, String)>,
    /// Longest `INSTALL_CMD` may run; then its whole process group is killed.
    pub install_timeout: Duration,
    /// `[git.signature]`: the commit runs only with a gitsign signature this policy accepts.
    pub signature: Option<crate::sigstore::SignaturePolicy>,
}

/// How the workload is started inside the checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaunchMode {
    /// `exec bash <entrypoint>`: the commands are part of the pinned source.
    Entrypoint(RelativePath),
    /// `bash -c <install>` then `exec bash -c <run>`: the commands live in the config.
    Commands {
        install: Option<String>,
        run: String,
    },
}
