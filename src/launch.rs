//! The pipeline: config → approve → measure → check out → exec.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::approval::{Approved, ApprovedList, ListStatus};
use crate::compose_document::ComposeDocument;
use crate::config::{
    self, ConfigFormat, GitSpec, ImageSpec, LaunchConfig, LaunchMode, MeasurementSpec, WorkloadSpec,
};
use crate::digest::{CommitId, ImageDigest};
use crate::docker::{self, DockerError, DockerSettings, ProcessDocker};
use crate::error::Error;
use crate::git::{self, VerifiedCheckout};
use crate::image_launch;
use crate::log::Logger;
use crate::measure::dstack::SIMULATOR_ENV;
use crate::measure::tdx_sysfs::DEFAULT_RTMR3_PATH;
use crate::measure::{
    self, BackendChoice, COMPOSE_EVENT, DEFAULT_EVENT_LOG, Event, MeasureError, MeasureSettings,
    NEAR_IMAGE_EVENT, Session, contract_events,
};
use crate::platform::Platform;
use crate::registry::{self, Credentials, Resolution};
use crate::subprocess::{self, Outcome};
use crate::tee_presence;
use crate::work_dir::{Exposure, WorkDirError};
use crate::workload::Workload;
use crate::workload_env::{self, EnvPolicy};

/// Inputs that do not come from the config file.
#[derive(Clone, Debug)]
pub struct Options {
    pub platform: Platform,
    /// Where the platform came from (`--platform`, the `PLATFORM` variable, the default),
    /// for the message that refuses `nontee` inside a TEE.
    pub platform_source: &'static str,
    pub event_log: Option<PathBuf>,
    pub backend: Option<BackendChoice>,
    pub dstack_socket: Option<PathBuf>,
    pub rtmr3_path: Option<PathBuf>,
    pub format: Option<ConfigFormat>,
    /// The docker CLI to use instead of the one on the system PATH.
    pub docker: Option<PathBuf>,
    /// The launcher's private `DOCKER_CONFIG` instead of [`docker::DEFAULT_CONFIG_DIR`].
    pub docker_config: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{what} {configured} resolves to {resolved}, outside the checkout {root}")]
    Escapes {
        what: &'static str,
        configured: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error("{what} {path} does not exist in the checkout")]
    Missing { what: &'static str, path: PathBuf },
    #[error("{what} {path} is not a {expected}")]
    WrongType {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("bash not found on {}", git::SAFE_PATH)]
    BashNotFound,
    #[error("INSTALL_CMD failed ({status}); not starting the workload")]
    InstallFailed { status: String },
    #[error(
        "INSTALL_CMD did not finish within {seconds}s (INSTALL_TIMEOUT / git.install_timeout); killed it and everything it started; not starting the workload"
    )]
    InstallTimedOut { seconds: u64 },
    #[error("cannot run INSTALL_CMD: {source}")]
    InstallSpawn { source: std::io::Error },
    #[error("cannot exec {program}: {source}")]
    Exec {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    WorkDir(#[from] WorkDirError),
}

/// A config resolved to an approved workload and the events that measure it.
#[derive(Debug)]
pub struct Resolved {
    pub config: LaunchConfig,
    pub target: Target,
    /// The approval as a workload: what is measured and planned.
    pub approved: Approved<Workload>,
    pub events: Vec<Event>,
}

/// What the approval selected, with what launching it needs.
#[derive(Debug)]
pub enum Target {
    Git {
        spec: Box<GitSpec>,
        commit: Approved<CommitId>,
    },
    Image {
        spec: Box<ImageSpec>,
        digest: Approved<ImageDigest>,
        /// The digest resolved through the registry (manifest chain checked).
        resolution: Box<Resolution>,
        /// Read once from the environment; `docker login` gets the same password.
        credentials: Option<Credentials>,
        /// The rendered compose document, checked to run only the approved image; its
        /// digest is measured.
        compose: Box<ComposeDocument>,
    },
}

/// Reads and validates the config and selects the approved workload; for an image, resolves
/// it through the registry. Nothing is pulled, measured or started.
pub fn resolve(config_path: &Path, options: &Options, log: &Logger) -> Result<Resolved, Error> {
    let config = config::load(config_path, options.format)?;
    let (target, approved) = match &config.workload {
        WorkloadSpec::Git(spec) => {
            let list = ApprovedList::load(spec.approved_list.as_deref(), spec.commit)?;
            warn_missing(log, list.status(), "commit", &spec.commit);
            let commit = list.approve(spec.override_commit)?;
            let approved = commit.workload();
            let target = Target::Git {
                spec: spec.clone(),
                commit,
            };
            (target, approved)
        }
        WorkloadSpec::Image(spec) => {
            let list = ApprovedList::load(spec.approved_list.as_deref(), spec.digest)?;
            warn_missing(log, list.status(), "digest", &spec.digest);
            let digest = list.approve(spec.override_digest)?;
            let credentials = credentials(spec)?;
            let resolution = registry::resolve(
                &spec.reference,
                digest.value(),
                &spec.platform,
                spec.insecure,
                credentials.clone(),
                spec.ca_file.as_deref(),
            )?;
            log.info(&format!(
                "{} resolved: {} {} -> {} manifest {} (config {})",
                spec.reference,
                resolution.kind,
                resolution.requested,
                resolution.platform,
                resolution.manifest,
                resolution.config
            ));
            let rendered = image_launch::render(spec, &resolution)?;
            let compose =
                ComposeDocument::check(rendered, &image_launch::image_name(spec, &resolution))?;
            let approved = digest.workload();
            let target = Target::Image {
                spec: spec.clone(),
                digest,
                resolution: Box::new(resolution),
                credentials,
                compose: Box::new(compose),
            };
            (target, approved)
        }
    };
    let extra = match &target {
        Target::Image {
            spec,
            digest,
            compose,
            ..
        } => {
            let mut extra = vec![Event::new(
                COMPOSE_EVENT,
                format!("sha256:{}", compose.sha256()),
            )];
            if spec.near_compat {
                extra.push(Event::new(
                    NEAR_IMAGE_EVENT,
                    digest.value().as_bytes().to_vec(),
                ));
            }
            extra
        }
        Target::Git { .. } => Vec::new(),
    };
    let events = contract_events(&config.sha256, &approved, extra);
    Ok(Resolved {
        config,
        target,
        approved,
        events,
    })
}

fn warn_missing(log: &Logger, status: &ListStatus, what: &str, pinned: &dyn std::fmt::Display) {
    if let ListStatus::Missing(path) = status {
        log.warn(&format!(
            "approved list {} does not exist; using the pinned {what} {pinned}",
            path.display()
        ));
    }
}

/// Registry credentials: the username from the config, the password from the environment
/// variable the config names (secrets stay out of the attested config).
fn credentials(spec: &ImageSpec) -> Result<Option<Credentials>, Error> {
    let Some(username) = &spec.username else {
        return Ok(None);
    };
    let password = match &spec.password_env {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::Usage(format!(
                "image.password_env names {name}, which is not set (or not UTF-8)"
            ))
        })?,
        None => String::new(),
    };
    Ok(Some(Credentials {
        username: username.clone(),
        password,
    }))
}

/// Resolves, measures, checks out and execs. Returns only on failure.
pub fn run(config_path: &Path, options: &Options, log: &Logger) -> Result<i32, Error> {
    let Resolved {
        config,
        target,
        approved,
        events,
        ..
    } = resolve(config_path, options, log)?;
    log.info(&format!(
        "config {} ({} format) sha256:{}",
        config.path.display(),
        config.format,
        config.sha256
    ));
    log.info(&format!(
        "workload {} ({})",
        approved.value(),
        approved.selection()
    ));

    let mut settings = measure_settings(options, &config.measurement);
    settings.simulator = tee_mode_guard(options, &config.measurement, &settings, log)?;
    // A backend that cannot serve the platform fails here, before anything is touched.
    let backend = measure::backend(&settings, log).map_err(usage_if_pairing)?;
    match target {
        Target::Git { spec, commit } => {
            let bash = git::find_program("bash").ok_or(LaunchError::BashNotFound)?;
            // Another writer on WORK_DIR (or above it) stops a tee launch before anything
            // is measured.
            Exposure::before_checkout(&spec.work_dir)
                .enforce(options.platform, log)
                .map_err(LaunchError::from)?;
            let mut session = Session::start(backend, events, log)?;
            session.measure_before_ready(log)?;

            let repo_url = absolute_repo_url(&spec.repo_url);
            let checkout = git::checkout(&repo_url, &spec.work_dir, &commit, log)?;
            let mut prepared = workload_command(&spec, &checkout, &bash, options.platform, log)?;
            // Last look before `ready`: what INSTALL_CMD or a writer did since verification.
            recheck(&prepared, &checkout, options.platform, log)?;

            session.measure_all(log)?;
            let source = prepared.command.exec();
            Err(LaunchError::Exec {
                program: bash,
                source,
            }
            .into())
        }
        Target::Image {
            spec,
            resolution,
            credentials,
            compose,
            ..
        } => {
            // Everything that can fail without side effects fails before measuring.
            let docker = ProcessDocker::locate(
                options.docker.as_deref(),
                DockerSettings {
                    host: spec.docker_host.clone(),
                    config_dir: options
                        .docker_config
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(docker::DEFAULT_CONFIG_DIR)),
                    pull_timeout: spec.pull_timeout,
                },
            )?;
            let password = credentials.map(|c| c.password);
            let mut session = Session::start(backend, events, log)?;
            session.measure_before_ready(log)?;

            let mut command = image_launch::prepare(
                &spec,
                &resolution,
                compose.text(),
                &docker,
                password.as_deref(),
                log,
            )?;

            session.measure_all(log)?;
            if spec.detach {
                log.info(&format!("starting {} detached", spec.project));
                // `up --detach` returns once the containers are created; bounded all the same.
                let outcome = subprocess::run_inherited(command, docker::DETACHED_UP_TIMEOUT)
                    .map_err(|source| LaunchError::Exec {
                        program: PathBuf::from("docker"),
                        source,
                    })?;
                let Outcome::Exited(status) = outcome else {
                    return Err(DockerError::TimedOut {
                        command: "compose up --detach".into(),
                        seconds: docker::DETACHED_UP_TIMEOUT.as_secs(),
                    }
                    .into());
                };
                return Ok(status.code().unwrap_or(1));
            }
            log.info(&format!("exec: compose up for project {}", spec.project));
            let source = command.exec();
            Err(LaunchError::Exec {
                program: PathBuf::from("docker"),
                source,
            }
            .into())
        }
    }
}

/// Keeps the environment from weakening tee mode. `nontee` is refused wherever measurement
/// is possible (the config asks for a TEE, a TDX guest, an answering agent), and
/// `DSTACK_SIMULATOR_ENDPOINT` is honoured only where neither a TDX guest nor an agent at a
/// default socket is found. Returns the simulator endpoint to use, if any.
fn tee_mode_guard(
    options: &Options,
    spec: &MeasurementSpec,
    settings: &MeasureSettings,
    log: &Logger,
) -> Result<Option<OsString>, Error> {
    if options.platform == Platform::Nontee {
        let config_asks = match (spec.backend, &spec.dstack_socket) {
            (Some(backend), _) if backend != BackendChoice::Local => {
                Some(format!("the config names measurement backend {backend}"))
            }
            (_, Some(socket)) => Some(format!(
                "the config names the dstack agent socket {}",
                socket.display()
            )),
            _ => None,
        };
        if let Some(reason) =
            tee_presence::nontee_refusal(config_asks, settings.dstack_socket.as_deref())
        {
            return Err(Error::Usage(format!(
                "refusing nontee (from {}): {reason}; nontee measures nothing into RTMR3 and is only for machines without a TEE",
                options.platform_source
            )));
        }
        return Ok(None);
    }
    let Some(endpoint) = std::env::var_os(SIMULATOR_ENV) else {
        return Ok(None);
    };
    if settings.dstack_socket.is_some() {
        return Ok(None);
    }
    let real = tee_presence::tdx_guest().or_else(|| {
        tee_presence::answering_default_agent()
            .map(|path| format!("a dstack agent answers at {}", path.display()))
    });
    if let Some(reason) = real {
        log.warn(&format!(
            "ignoring {SIMULATOR_ENV}={}: {reason}",
            endpoint.to_string_lossy()
        ));
        return Ok(None);
    }
    Ok(Some(endpoint))
}

/// Command-line flags win over the config's `[measurement]`.
fn measure_settings(options: &Options, spec: &MeasurementSpec) -> MeasureSettings {
    MeasureSettings {
        platform: options.platform,
        backend: options.backend.or(spec.backend),
        dstack_socket: options
            .dstack_socket
            .clone()
            .or_else(|| spec.dstack_socket.clone()),
        rtmr3_path: options
            .rtmr3_path
            .clone()
            .or_else(|| spec.rtmr3_path.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RTMR3_PATH)),
        event_log: options
            .event_log
            .clone()
            .or_else(|| spec.event_log.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_EVENT_LOG)),
        simulator: None,
    }
}

/// A backend paired with the wrong platform is a usage error (exit 2), not a failure.
fn usage_if_pairing(error: MeasureError) -> Error {
    if error.is_usage() {
        Error::Usage(error.to_string())
    } else {
        error.into()
    }
}

/// A relative local path is resolved against the launcher's working directory, as
/// `git clone` does; URLs and absolute paths are used as written.
fn absolute_repo_url(url: &str) -> String {
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
struct Prepared {
    command: Command,
    /// The paths whose writers could change the checkout.
    exposure: Exposure,
    /// Default mode: the entry script (canonical), re-hashed right before exec.
    entry: Option<PathBuf>,
}

/// Resolves the target directory and entry inside the verified checkout, checks who else
/// can write them, runs `INSTALL_CMD` if any, and returns the command to exec with the
/// workload's environment.
fn workload_command(
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
fn recheck(
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
