//! The pipeline: config → approve → measure → check out → exec.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};

use crate::approval::{Approved, ApprovedList, ListStatus};
use crate::compose_document::ComposeDocument;
use crate::config::{
    self, ConfigFormat, GitSpec, ImageSpec, LaunchConfig, MeasurementSpec, WorkloadSpec,
};
use crate::digest::{CommitId, ImageDigest};
use crate::error::Error;
use crate::git;
use crate::git_launch;
use crate::image_launch;
use crate::log::Logger;
use crate::measure::dstack_native::DEFAULT_RUNTIME_DIR;
use crate::measure::tdx_sysfs::DEFAULT_RTMR3_PATH;
use crate::measure::{
    self, BackendChoice, COMPOSE_EVENT, DEFAULT_EVENT_LOG, Event, MeasureError, MeasureSettings,
    NEAR_IMAGE_EVENT, SIGNER_EVENT, Session, contract_events,
};
use crate::platform::Platform;
use crate::registry::{self, Credentials, Resolution};
use crate::tee_presence;
use crate::watch::Supervisor;
use crate::work_dir::{Exposure, WorkDirError};
use crate::workload::Workload;
use crate::workload_config;

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
    pub dstack_runtime_dir: Option<PathBuf>,
    pub format: Option<ConfigFormat>,
    /// The docker CLI to use instead of the one on the system PATH.
    pub docker: Option<PathBuf>,
    /// The launcher's private `DOCKER_CONFIG` instead of [`docker::DEFAULT_CONFIG_DIR`].
    pub docker_config: Option<PathBuf>,
    /// `near` format: the launcher's view of NEAR's shared volume instead of `/mnt/shared`.
    pub near_shared_dir: Option<PathBuf>,
    /// Image mode: the compose file's path instead of the config's `compose_file`.
    pub compose_file: Option<PathBuf>,
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
    let mut config = config::load(config_path, options.format)?;
    if let (ConfigFormat::Near, Some(dir), WorkloadSpec::Image(spec)) = (
        config.format,
        &options.near_shared_dir,
        &mut config.workload,
    ) {
        config::relocate_near_shared(spec, dir);
    }
    if let (Some(path), WorkloadSpec::Image(spec)) = (&options.compose_file, &mut config.workload) {
        spec.compose_file.clone_from(path);
    }
    refuse_unattested_default(&config, options.platform)?;
    resolve_config(config, log)
}

/// NEAR's dialect takes its fallback digest from `DEFAULT_IMAGE_DIGEST` in the environment,
/// which an operator can set without changing the attestation. NEAR's launcher runs it when
/// the approved list is absent; in tee mode this one refuses: the list must name what runs.
fn refuse_unattested_default(config: &LaunchConfig, platform: Platform) -> Result<(), Error> {
    let WorkloadSpec::Image(spec) = &config.workload else {
        return Ok(());
    };
    let Some(list) = &spec.approved_list else {
        return Ok(());
    };
    if platform == Platform::Tee
        && config.format == ConfigFormat::Near
        && list.symlink_metadata().is_err()
    {
        return Err(Error::Usage(format!(
            "refusing DEFAULT_IMAGE_DIGEST {} in tee mode: it comes from the environment, which is not attested, and the approved list {} does not exist (write the approved list before the first boot)",
            spec.digest,
            list.display()
        )));
    }
    Ok(())
}

/// [`resolve`] for a config already loaded: the watch resolves the same attested config again
/// against the approved list as it is now.
pub fn resolve_config(config: LaunchConfig, log: &Logger) -> Result<Resolved, Error> {
    let mut signer_event = None;
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
            if config.format == config::ConfigFormat::Near
                && matches!(list.status(), ListStatus::Missing(_))
            {
                log.warn(&format!(
                    "DEFAULT_IMAGE_DIGEST comes from the environment, which is not attested: \
                     {} runs only because the approved list is absent, and the workload event \
                     measures it, so verify shows which digest ran",
                    spec.digest
                ));
            }
            let digest = list.approve(spec.override_digest)?;
            let credentials = credentials(spec)?;
            let signer =
                crate::sigstore::image::verify(spec, digest.value(), credentials.clone(), log)?;
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
            signer_event = signer.map(|s| Event::new(SIGNER_EVENT, s.payload()));
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
            let mut extra: Vec<Event> = signer_event.into_iter().collect();
            extra.push(Event::new(
                COMPOSE_EVENT,
                format!("sha256:{}", compose.sha256()),
            ));
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

/// Resolves, measures, checks out and execs. Returns only on failure, or for a detached
/// image launch (when the watch, if configured, ends).
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
    settings.simulator = tee_presence::guard(
        options.platform,
        options.platform_source,
        &config.measurement,
        settings.dstack_socket.as_deref(),
        log,
    )?;
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

            let checkout = checkout_signed(&spec, &commit, &mut session, log)?;
            let mut prepared = git_launch::prepare(&spec, &checkout, &bash, options.platform, log)?;
            // Last look before `ready`: what INSTALL_CMD or a writer did since verification.
            git_launch::recheck(&prepared, &checkout, options.platform, log)?;

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
            digest,
            resolution,
            credentials,
            compose,
        } => {
            // Everything that can fail without side effects fails before measuring.
            let docker = image_launch::locate_docker(&spec, options)?;
            let tee = options.platform == Platform::Tee;
            if let Some(workload_config) = &spec.workload_config {
                workload_config::check_platform(workload_config, tee)
                    .map_err(image_launch::ImageLaunchError::from)?;
            }
            let session = Session::start(backend, events, log)?;
            let target = image_launch::ImageTarget {
                spec: &spec,
                resolution: &resolution,
                compose: &compose,
            };
            let mut command =
                image_launch::start_image(session, target, credentials, &docker, tee, log)?;
            if let Some(watch) = spec.watch {
                log.info(&format!(
                    "starting {} detached, then watching",
                    spec.project
                ));
                let code = image_launch::up_detached(command)?;
                if code != 0 {
                    return Ok(code);
                }
                let supervisor = Supervisor {
                    config: &config,
                    spec: &spec,
                    watch,
                    settings: &settings,
                    docker: &docker,
                    log,
                };
                return supervisor.run(*digest.value());
            }
            if spec.detach {
                log.info(&format!("starting {} detached", spec.project));
                return image_launch::up_detached(command);
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

/// Command-line flags win over the config's `[measurement]`.
/// The verified checkout; with `[git.signature]`, its signer verified and measured before
/// anything from it runs.
fn checkout_signed(
    spec: &GitSpec,
    commit: &Approved<CommitId>,
    session: &mut Session,
    log: &Logger,
) -> Result<git::VerifiedCheckout, Error> {
    let repo_url = git_launch::absolute_repo_url(&spec.repo_url);
    let checkout = git::checkout(&repo_url, &spec.work_dir, commit, log)?;
    crate::sigstore::commit::measure_signer(spec, &checkout, session, log)?;
    Ok(checkout)
}

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
        dstack_runtime_dir: options
            .dstack_runtime_dir
            .clone()
            .or_else(|| spec.dstack_runtime_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME_DIR)),
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
