//! The pipeline, one spine for both modes ([`run`]): check → measure the config and the
//! workload → prepare → measure the rest → exec or supervise. Each mode's steps live in
//! [`git`] and [`image`]; the watch that supervises a detached image launch in [`watch`].

pub mod git;
pub mod image;
mod settings;
pub mod watch;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::approval::{Approved, ApprovedList, ListStatus};
use crate::compose_document::ComposeDocument;
use crate::config::{self, ConfigFormat, GitSpec, ImageSpec, LaunchConfig, WorkloadSpec};
use crate::contract;
use crate::digest::{CommitId, ImageDigest};
use crate::error::Error;
use crate::log::Logger;
use crate::measure::{self, BackendChoice, Event, MeasureSettings, Session};
use crate::platform::Platform;
use crate::registry::{self, Credentials, Resolution};
use crate::work_dir::WorkDirError;
use crate::workload::Workload;
use settings::{checked_settings, usage_if_pairing};

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

/// The pipeline, the same for both modes: check (config, approval, registry, compose; each
/// mode's own checks), measure the config and workload (image mode: and compose), prepare
/// (check out and verify the commit, or pull and confirm the image), measure `ready` last,
/// then exec or supervise. Returns only on failure, or for a detached image launch (when
/// the watch, if configured, ends).
pub fn run(config_path: &Path, options: &Options, log: &Logger) -> Result<i32, Error> {
    let Resolved {
        config,
        target,
        approved,
        events,
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
    let settings = checked_settings(options, &config, log)?;
    // A backend that cannot serve the platform fails here, before anything is touched.
    let backend = measure::backend(&settings, log).map_err(usage_if_pairing)?;
    // Everything else that can fail without side effects fails before measuring.
    let docker;
    let steps = match target {
        Target::Git { spec, commit } => {
            Steps::Git(git::GitLaunch::check(spec, commit, options.platform, log)?)
        }
        Target::Image {
            spec,
            digest,
            resolution,
            credentials,
            compose,
        } => {
            docker = image::locate_docker(&spec, options)?;
            Steps::Image(
                image::ImageLaunch {
                    spec,
                    digest,
                    resolution,
                    credentials,
                    compose,
                    docker: &docker,
                    tee: options.platform == Platform::Tee,
                }
                .checked()?,
            )
        }
    };
    let session = Session::start(backend, events, log)?;
    let ready = measured(session, log, || steps.prepare(log))?;
    ready.start(&config, &settings, log)
}

/// The measured middle of every launch (both modes, and each launch of the watch): the
/// contract's events up to `ready`, then `prepare`, then `ready` last, so the workload can
/// start only once all of it is measured. Events this boot already measured for the same
/// launch are not measured again ([`Session`]).
pub fn measured<T>(
    mut session: Session,
    log: &Logger,
    prepare: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    session.measure_before_ready(log)?;
    let prepared = prepare()?;
    session.measure_all(log)?;
    Ok(prepared)
}

/// Each mode's steps, checked and not yet measured.
enum Steps<'a> {
    Git(git::GitLaunch),
    Image(image::ImageLaunch<'a>),
}

/// Each mode's workload, prepared and measured, ready to start.
enum Ready<'a> {
    Git(git::Ready),
    Image {
        launch: image::ImageLaunch<'a>,
        command: Command,
    },
}

impl<'a> Steps<'a> {
    fn prepare(self, log: &Logger) -> Result<Ready<'a>, Error> {
        Ok(match self {
            Self::Git(launch) => Ready::Git(launch.prepare(log)?),
            Self::Image(launch) => Ready::Image {
                command: launch.prepare(log)?,
                launch,
            },
        })
    }
}

impl Ready<'_> {
    fn start(
        self,
        config: &LaunchConfig,
        settings: &MeasureSettings,
        log: &Logger,
    ) -> Result<i32, Error> {
        match self {
            Self::Git(ready) => Err(ready.exec()),
            Self::Image { launch, command } => launch.start(command, config, settings, log),
        }
    }
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
    #[error("bash not found on {}", crate::git::SAFE_PATH)]
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
            let rendered = image::render(spec, &digest)?;
            let compose = ComposeDocument::check(rendered, &image::image_name(spec, &digest))?;
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
    let events = match &target {
        Target::Image {
            spec,
            digest,
            compose,
            ..
        } => {
            let near = spec.near_compat.then(|| contract::near_image_event(digest));
            contract::events(
                &config.sha256,
                &approved,
                Some(compose.sha256()),
                near.into_iter().collect(),
            )
        }
        Target::Git { .. } => contract::events(&config.sha256, &approved, None, Vec::new()),
    };
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
