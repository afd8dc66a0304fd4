//! The validated launch config, read from either format.
//!
//! Reading is two-phase: a format parser fills a [`RawConfig`], then validation turns it
//! into a [`LaunchConfig`], collecting every problem with its line so a user fixes them all
//! in one go.

mod checker;
mod default_path;
mod git;
mod image;
mod line;
mod near;
mod problem;
mod raw;
mod relative_path;
mod toml;
mod workload_config;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use default_path::{
    DEFAULT_CONFIG_PATH, DefaultConfig, GIT_LAUNCHER_CONFIG_PATH, default_config,
};
pub use near::relocate_shared as relocate_near_shared;
pub use problem::{Problem, ProblemKind};
pub use raw::RawConfig;
pub use relative_path::RelativePath;
pub use workload_config::{LauncherTable, WorkloadConfigFormat, WorkloadConfigSpec};

use crate::capped_read::{CappedReadError, read_capped};
use crate::digest::{CommitId, ImageDigest, Sha256Digest};
use crate::measure::BackendChoice;
use crate::registry::{ImageReference, Platform};
#[cfg(test)]
use checker::uses_remote_helper;
use checker::{Checker, is_env_name, is_portable_name};
use raw::{KeyNames, Located};

/// Configs are small; anything larger is not a config.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

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

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no config argument given, and neither {} nor {} exists", primary.display(), fallback.display())]
    NoDefault { primary: PathBuf, fallback: PathBuf },
    #[error("config {path} is a {kind}, not a regular file; refusing to wait on it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("config {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("config {path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("config {path} ({format} format) has {} problem(s)", problems.len())]
    Invalid {
        path: PathBuf,
        format: ConfigFormat,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One line per problem, each naming the file and line: what the user reads.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid { path, problems, .. } => problems
                .iter()
                .map(|problem| match problem.line {
                    Some(line) => format!("{}:{line}: {}", path.display(), problem.kind),
                    None => format!("{}: {}", path.display(), problem.kind),
                })
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads, parses and validates a config file; the `near` format takes
/// `DEFAULT_IMAGE_DIGEST` from the process environment.
pub fn load(path: &Path, explicit: Option<ConfigFormat>) -> Result<LaunchConfig, ConfigError> {
    load_with_env(path, explicit, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given: what a compose file's `environment:` would set.
pub fn load_with_env(
    path: &Path,
    explicit: Option<ConfigFormat>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchConfig, ConfigError> {
    let bytes = read_config(path)?;
    parse_bytes(path, &bytes, explicit, env)
}

/// [`load_with_env`] on bytes already read from `path` (which names the file in messages and,
/// by its extension, may choose the format): the parser every config goes through.
pub fn parse_bytes(
    path: &Path,
    bytes: &[u8],
    explicit: Option<ConfigFormat>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchConfig, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_owned(),
    })?;
    let format = ConfigFormat::detect(explicit, path, text);
    if format == ConfigFormat::Near {
        let mut problems = Vec::new();
        let default_digest = env(near::DEFAULT_DIGEST_ENV);
        let parsed = near::parse(text, default_digest.as_deref(), &mut problems);
        return finish(path, format, bytes, parsed, problems);
    }
    let (raw, keys, mut problems) = match format {
        ConfigFormat::Line => {
            let (raw, problems) = line::parse(text);
            (raw, line::KEYS, problems)
        }
        ConfigFormat::Toml | ConfigFormat::Near => {
            let (raw, problems) = toml::parse(text);
            (raw, toml::KEYS, problems)
        }
    };
    let syntax_failed = problems
        .iter()
        .any(|p| matches!(p.kind, ProblemKind::Syntax { .. }) && format == ConfigFormat::Toml);
    let validated = if syntax_failed {
        None
    } else {
        validate(raw, &keys, &mut problems)
    };
    finish(path, format, bytes, validated, problems)
}

fn finish(
    path: &Path,
    format: ConfigFormat,
    bytes: &[u8],
    validated: Option<(WorkloadSpec, MeasurementSpec)>,
    mut problems: Vec<Problem>,
) -> Result<LaunchConfig, ConfigError> {
    match validated {
        Some((workload, measurement)) if problems.is_empty() => Ok(LaunchConfig {
            path: path.to_owned(),
            format,
            sha256: Sha256Digest::of(bytes),
            workload,
            measurement,
        }),
        _ => {
            // Top to bottom, problems without a line (missing keys) last.
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                format,
                problems,
            })
        }
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>, ConfigError> {
    read_capped(path, MAX_CONFIG_BYTES).map_err(|error| match error {
        CappedReadError::Io(source) => ConfigError::Read {
            path: path.to_owned(),
            source,
        },
        CappedReadError::NotRegular(kind) => ConfigError::NotRegular {
            path: path.to_owned(),
            kind,
        },
        CappedReadError::TooLarge => ConfigError::TooLarge {
            path: path.to_owned(),
            max: MAX_CONFIG_BYTES,
        },
    })
}

/// Checks every field; returns `None` (with problems recorded) if anything is wrong.
fn validate(
    mut raw: RawConfig,
    keys: &KeyNames,
    problems: &mut Vec<Problem>,
) -> Option<(WorkloadSpec, MeasurementSpec)> {
    let before = problems.len();
    let image = raw.image.take();
    let mut check = Checker { problems };
    let measurement = measurement(&mut raw, &mut check);
    let workload = match (raw.git_section, image) {
        (Some(_), Some(image)) => {
            check.push(image.line, ProblemKind::BothSections);
            None
        }
        (None, None) => {
            check
                .problems
                .push(Problem::unlocated(ProblemKind::MissingSection {
                    section: "git] or [image",
                }));
            None
        }
        (Some(_), None) => {
            git::validate(raw, keys, &mut check).map(|spec| WorkloadSpec::Git(Box::new(spec)))
        }
        (None, Some(image)) => {
            image::validate(image, &mut check).map(|spec| WorkloadSpec::Image(Box::new(spec)))
        }
    };
    if check.problems.len() > before {
        return None;
    }
    Some((workload?, measurement))
}

fn measurement(raw: &mut RawConfig, check: &mut Checker<'_>) -> MeasurementSpec {
    let path = |check: &mut Checker<'_>, value: Option<Located<String>>| {
        value
            .and_then(|v| check.non_empty(v))
            .map(|v| PathBuf::from(v.value))
    };
    MeasurementSpec {
        event_log: path(check, raw.event_log.take()),
        backend: raw
            .backend
            .take()
            .and_then(|v| check.non_empty(v))
            .and_then(|v| check.backend(&v)),
        dstack_socket: path(check, raw.dstack_socket.take()),
        rtmr3_path: path(check, raw.rtmr3_path.take()),
        dstack_runtime_dir: path(check, raw.dstack_runtime_dir.take()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";

    fn load_text(name: &str, text: &str) -> Result<LaunchConfig, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        load(&path, None).map_err(|e| {
            e.lines()
                .into_iter()
                .map(|l| l.replace(&path.display().to_string(), name))
                .collect()
        })
    }

    #[test]
    fn line_config_defaults_to_entrypoint_mode() {
        let config = load_text(
            "c.conf",
            &format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n"),
        )
        .unwrap();
        assert_eq!(config.format, ConfigFormat::Line);
        let WorkloadSpec::Git(git) = &config.workload else {
            panic!("not git")
        };
        assert_eq!(git.commit.to_string(), SHA);
        assert_eq!(
            git.launch,
            LaunchMode::Entrypoint(RelativePath::parse("entrypoint.sh").unwrap())
        );
        assert_eq!(
            config.sha256,
            Sha256Digest::of(
                format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n").as_bytes()
            )
        );
    }

    #[test]
    fn toml_detected_by_extension_and_content() {
        let text = format!(
            "[git]\nrepo = \"file:///r\"\ncommit = \"{SHA}\"\nwork_dir = \"/w\"\nrun = \"x\"\n"
        );
        assert_eq!(
            load_text("c.toml", &text).unwrap().format,
            ConfigFormat::Toml
        );
        assert_eq!(
            load_text("c.conf", &text).unwrap().format,
            ConfigFormat::Toml
        );
    }

    #[test]
    fn reject_table() {
        let base = format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n");
        for (extra, expected) in [
            ("RUN_CMD=\n", "c.conf:4: RUN_CMD must not be empty"),
            (
                "INSTALL_CMD=make\n",
                "c.conf:4: INSTALL_CMD requires RUN_CMD",
            ),
            (
                "REPO_SUBDIR=../x\n",
                r#"c.conf:4: REPO_SUBDIR must not contain '..' (got "../x")"#,
            ),
            (
                "REPO_SUBDIR=/abs\n",
                r#"c.conf:4: REPO_SUBDIR must be a relative path (got "/abs")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=a/../../b.sh\n",
                r#"c.conf:4: ENTRYPOINT_SCRIPT must not contain '..' (got "a/../../b.sh")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=.git/hooks/x\n",
                r#"c.conf:4: ENTRYPOINT_SCRIPT must not point into .git (got ".git/hooks/x")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=e.sh\nRUN_CMD=x\n",
                "c.conf:5: ENTRYPOINT_SCRIPT and RUN_CMD cannot both be set (default mode runs the entry script, advanced mode runs RUN_CMD)",
            ),
            (
                "OVERRIDE_COMMIT=main\n",
                r#"c.conf:4: OVERRIDE_COMMIT must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got "main")"#,
            ),
            (
                "ALLOW_ENV=LD_PRELOAD,A=B\n",
                r#"c.conf:4: ALLOW_ENV entry is not an environment variable name (got "A=B")"#,
            ),
            (
                "RUN_CMD=a\u{1b}b\n",
                "c.conf:4: RUN_CMD contains a control character",
            ),
            (
                "MEASUREMENT_BACKEND=tpm\n",
                r#"c.conf:4: MEASUREMENT_BACKEND must be one of auto, dstack, dstack-native, tdx-sysfs, local (got "tpm")"#,
            ),
        ] {
            assert_eq!(
                load_text("c.conf", &format!("{base}{extra}")).unwrap_err(),
                vec![expected],
                "{extra:?}"
            );
        }
    }

    #[test]
    fn reports_all_problems_with_lines() {
        let errors = load_text(
            "c.conf",
            "REPO_URL=ext::sh -c evil\nCOMMIT_SHA=main\nFOO=1\n",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                r#"c.conf:1: repository URL must not contain whitespace (got "ext::sh -c evil")"#,
                r#"c.conf:2: COMMIT_SHA must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got "main")"#,
                "c.conf:3: unknown key FOO",
                "c.conf: missing required key WORK_DIR",
            ]
        );
    }

    #[test]
    fn repo_url_rejects_remote_helpers() {
        let errors = load_text(
            "c.conf",
            &format!("REPO_URL=ext::evil\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                r#"c.conf:1: repository URL must not use the <transport>::<address> remote-helper syntax (it runs a helper program) (got "ext::evil")"#
            ]
        );
        for ok in [
            "https://h/r.git",
            "git@github.com:o/r.git",
            "/srv/r.git",
            "file:///r",
            "ssh://h:22/r",
        ] {
            assert!(!uses_remote_helper(ok), "{ok}");
        }
    }

    #[test]
    fn toml_missing_section_and_keys() {
        assert_eq!(
            load_text("c.toml", "").unwrap_err(),
            vec!["c.toml: missing required section [git] or [image]"]
        );
        assert_eq!(
            load_text("c.toml", "[git]\nrepo = \"r\"\n").unwrap_err(),
            vec![
                "c.toml: missing required key git.commit",
                "c.toml: missing required key git.work_dir"
            ]
        );
    }

    #[test]
    fn rejects_non_utf8_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.conf");
        std::fs::write(&path, b"REPO_URL=\xff\n").unwrap();
        assert!(matches!(
            load(&path, None),
            Err(ConfigError::NotUtf8 { .. })
        ));
        std::fs::write(&path, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(
            load(&path, None),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
