//! Image mode's launch steps: render the compose file, pull and confirm the approved image,
//! write the file, build the compose command, and start it (exec, detached, or watched).

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::approval::Approved;
use crate::atomic_file;
use crate::capped_read::{CappedReadError, read_capped};
use crate::compose::{self, TemplateError};
use crate::compose_document::ComposeDocument;
use crate::config::{ImageSpec, LaunchConfig};
use crate::digest::ImageDigest;
use crate::docker::{self, Docker, DockerError, DockerSettings, ProcessDocker};
use crate::error::Error;
use crate::image_store;
use crate::log::Logger;
use crate::measure::MeasureSettings;
use crate::registry::{Credentials, Resolution};
use crate::stop_signal::StopRequests;
use crate::subprocess::{self, Outcome};
use crate::workload::Workload;
use crate::workload_config::{self, Decision, WorkloadConfigError};

use super::watch::{Supervisor, WatchError};
use super::{LaunchError, Options};

const MAX_TEMPLATE_BYTES: u64 = 1024 * 1024;
const DSTACK_SOCKET: &str = "/var/run/dstack.sock:/var/run/dstack.sock";
const DOCKER_SOCKET: &str = "/var/run/docker.sock:/var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum ImageLaunchError {
    #[error("cannot read compose template {path}: {detail}")]
    Template { path: String, detail: String },
    #[error("compose template {path}: {source}")]
    Render { path: String, source: TemplateError },
    #[error(transparent)]
    WorkloadConfig(#[from] WorkloadConfigError),
    #[error("cannot write compose file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The compose document for the approved image, rendered before anything is measured so a
/// bad template stops the launch with nothing done.
pub fn render(
    spec: &ImageSpec,
    digest: &Approved<ImageDigest>,
) -> Result<String, ImageLaunchError> {
    let (name, template) = match &spec.compose_template {
        Some(path) => {
            let bytes =
                read_capped(path, MAX_TEMPLATE_BYTES).map_err(|e| ImageLaunchError::Template {
                    path: path.display().to_string(),
                    detail: match e {
                        CappedReadError::TooLarge => {
                            format!("larger than {MAX_TEMPLATE_BYTES} bytes")
                        }
                        other => other.to_string(),
                    },
                })?;
            let text = String::from_utf8(bytes).map_err(|_| ImageLaunchError::Template {
                path: path.display().to_string(),
                detail: "not UTF-8".into(),
            })?;
            (path.display().to_string(), text)
        }
        None => ("(built-in)".to_owned(), spec.built_in_template.to_owned()),
    };
    let service = &spec.service;
    let mut volumes = service.volumes.clone();
    if service.dstack_socket {
        volumes.push(DSTACK_SOCKET.to_owned());
    }
    if service.docker_socket {
        volumes.push(DOCKER_SOCKET.to_owned());
    }
    // Compose refuses a service volume whose source is a name not declared at the top level;
    // each is declared with `name:` so it is that engine volume, not a project-prefixed one.
    let named_volumes: serde_json::Map<String, Value> = volumes
        .iter()
        .filter_map(|v| v.split(':').next())
        .filter(|source| !source.starts_with('/'))
        .map(|source| (source.to_owned(), json!({ "name": source })))
        .collect();
    let environment: serde_json::Map<String, Value> = service
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let values: BTreeMap<&str, Value> = BTreeMap::from([
        ("project", json!(spec.project)),
        (
            "container_name",
            json!(format!("{}-workload", spec.project)),
        ),
        ("image", json!(image_name(spec, digest))),
        ("restart", json!(service.restart)),
        (
            "command",
            service.command.as_ref().map_or(Value::Null, |c| json!(c)),
        ),
        ("environment", Value::Object(environment)),
        ("ports", json!(service.ports)),
        ("volumes", json!(volumes)),
        ("named_volumes", Value::Object(named_volumes)),
        ("cap_add", json!(service.cap_add)),
    ])
    .into_iter()
    .map(|(k, v)| (k, compose::literal(v)))
    .collect();
    compose::render(&template, &values)
        .map_err(|source| ImageLaunchError::Render { path: name, source })
}

/// `repository@digest` as Docker spells it: the approved digest, never a tag. Only an
/// [`Approved`] digest has a name to pull, confirm or write into the compose file.
#[must_use]
pub fn image_name(spec: &ImageSpec, digest: &Approved<ImageDigest>) -> String {
    format!("{}@{}", spec.reference.docker_name(), digest.value())
}

/// Pulls the approved digest, confirms the engine holds exactly that image, writes the
/// workload config (if any) and the compose file, and returns the compose command to run.
/// Docker's failures are [`Error::Docker`], the one route they take to the user.
pub fn prepare(
    launch: &ImageLaunch<'_>,
    docker: &dyn Docker,
    log: &Logger,
) -> Result<Command, Error> {
    let ImageLaunch {
        spec,
        digest,
        resolution,
        credentials,
        compose,
        tee,
        ..
    } = launch;
    let password = credentials.as_ref().map(|c| c.password.as_str());
    if let Some(username) = &spec.username {
        docker.login(
            spec.reference.login_server(),
            username,
            password.unwrap_or_default(),
        )?;
    }
    let image = image_name(spec, digest);
    log.info(&format!("pulling {image}"));
    docker.pull(&image)?;
    let info = docker.inspect(&image)?;
    let store = image_store::confirm(
        &info,
        &image_store::Expected {
            repository: &spec.reference.docker_name(),
            requested: &digest.value().to_string(),
            manifest: &resolution.manifest.to_string(),
            config: &resolution.config.to_string(),
        },
    )?;
    log.info(&format!(
        "image verified: {image} is config {} for {} ({store})",
        resolution.config, resolution.platform
    ));
    if let Some(config) = &spec.workload_config {
        let text = workload_config::render(
            config,
            &Decision {
                workload: Workload::Image(*digest.value()),
                image: &image,
                approved_list: spec.approved_list.as_deref(),
                tee: *tee,
            },
        )
        .map_err(ImageLaunchError::from)?;
        workload_config::write_atomically(&config.path, &text).map_err(ImageLaunchError::from)?;
        log.info(&format!(
            "workload config written to {}",
            config.path.display()
        ));
    }
    write_atomically(&spec.compose_file, compose.text())?;
    Ok(docker.compose_up(&spec.project, &spec.compose_file, spec.detach)?)
}

/// The docker CLI for an image launch, with its private config directory prepared.
pub fn locate_docker(spec: &ImageSpec, options: &Options) -> Result<ProcessDocker, DockerError> {
    ProcessDocker::locate(
        options.docker.as_deref(),
        DockerSettings {
            host: spec.docker_host.clone(),
            config_dir: options
                .docker_config
                .clone()
                .unwrap_or_else(|| PathBuf::from(docker::DEFAULT_CONFIG_DIR)),
            pull_timeout: spec.pull_timeout,
        },
    )
}

/// Image mode's steps for the spine ([`super::run`]) and the watch: the approved image with
/// what launching it needs, as [`super::resolve`] selected it.
#[derive(Debug)]
pub struct ImageLaunch<'a> {
    pub spec: Box<ImageSpec>,
    /// What is pulled, confirmed, named in the compose file and measured.
    pub digest: Approved<ImageDigest>,
    /// The digest resolved through the registry (manifest chain checked).
    pub resolution: Box<Resolution>,
    /// Read once from the environment; `docker login` gets the same password.
    pub credentials: Option<Credentials>,
    /// The rendered compose document, checked to run only the approved image.
    pub compose: Box<ComposeDocument>,
    pub docker: &'a ProcessDocker,
    pub tee: bool,
}

impl ImageLaunch<'_> {
    /// What can fail before anything is measured: a workload config the platform forbids.
    pub fn checked(self) -> Result<Self, Error> {
        if let Some(workload_config) = &self.spec.workload_config {
            workload_config::check_platform(workload_config, self.tee)
                .map_err(ImageLaunchError::from)?;
        }
        Ok(self)
    }

    /// Between `compose` and `ready`: pulls and confirms the approved image, writes the
    /// workload config and the compose file; returns the compose command that starts it.
    pub fn prepare(&self, log: &Logger) -> Result<Command, Error> {
        prepare(self, self.docker, log)
    }

    /// After `ready`: execs `compose up`, or starts the project detached (then watches the
    /// approved list when `watch_interval` is set).
    pub fn start(
        self,
        mut command: Command,
        config: &LaunchConfig,
        settings: &MeasureSettings,
        log: &Logger,
    ) -> Result<i32, Error> {
        if let Some(watch) = self.spec.watch {
            log.info(&format!(
                "starting {} detached, then watching",
                self.spec.project
            ));
            // Before `up`, so a stop asked for while it runs is not lost.
            let supervisor = Supervisor {
                config,
                spec: &self.spec,
                watch,
                settings,
                docker: self.docker,
                log,
                stop: StopRequests::install().map_err(WatchError::Signals)?,
            };
            return match up_detached(command)? {
                0 => supervisor.run(*self.digest.value()),
                code => Ok(code),
            };
        }
        if self.spec.detach {
            log.info(&format!("starting {} detached", self.spec.project));
            return up_detached(command);
        }
        log.info(&format!(
            "exec: compose up for project {}",
            self.spec.project
        ));
        let source = command.exec();
        Err(LaunchError::Exec {
            program: PathBuf::from("docker"),
            source,
        }
        .into())
    }
}

/// `compose up --detach` returns once the containers are created; bounded all the same.
pub fn up_detached(command: Command) -> Result<i32, Error> {
    let outcome =
        subprocess::run_inherited(command, docker::DETACHED_UP_TIMEOUT).map_err(|source| {
            LaunchError::Exec {
                program: PathBuf::from("docker"),
                source,
            }
        })?;
    let Outcome::Exited(status) = outcome else {
        return Err(DockerError::TimedOut {
            command: "compose up --detach".into(),
            seconds: docker::DETACHED_UP_TIMEOUT.as_secs(),
        }
        .into());
    };
    Ok(status.code().unwrap_or(1))
}

/// The compose file compose reads: replaced atomically, never written through a planted link.
fn write_atomically(path: &Path, text: &str) -> Result<(), ImageLaunchError> {
    atomic_file::write(path, text.as_bytes(), 0o644).map_err(|source| ImageLaunchError::Write {
        path: path.display().to_string(),
        source,
    })
}
