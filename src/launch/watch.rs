//! Watch mode (`[image] watch_interval`): after a detached image launch the launcher stays as
//! the workload's supervisor. Every interval it re-reads the approved list (the same strict,
//! size-capped parser as at launch); a running digest that is no longer approved is stopped
//! (`compose down`), then either the newest approved digest is resolved, verified and started
//! as a new, fully measured launch (`watch_switch = true`), or the launcher exits non-zero.
//!
//! Registry and docker failures during a tick are logged and retried at the next one; every
//! call is bounded by the deadlines of [`crate::docker`] and [`crate::registry`]. A
//! measurement failure ends the watch: nothing more is started.
//!
//! SIGTERM or SIGINT ([`crate::stop_signal`]) ends the watch: the workload is stopped
//! (`compose down`, bounded) and the launcher exits 128 + the signal's number.

use super::image;
use crate::approval::ApprovedList;
use crate::config::{ImageSpec, LaunchConfig, WatchSpec};
use crate::digest::ImageDigest;
use crate::docker::{Docker as _, ProcessDocker};
use crate::error::Error;
use crate::launch::{self, Target};
use crate::log::Logger;
use crate::measure::{self, MeasureSettings, Session};
use crate::platform::Platform;
use crate::stop_signal::{StopRequests, StopSignal};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "image {digest} is no longer in the approved list {list}; stopped compose project {project} (watch_switch is off, so nothing else is started)"
    )]
    Revoked {
        digest: ImageDigest,
        list: String,
        project: String,
    },
    #[error("cannot install the SIGTERM/SIGINT handler for the watch: {0}")]
    Signals(#[source] std::io::Error),
    #[error("{signal} received, but stopping compose project {project} failed: {source}")]
    StopFailed {
        signal: &'static str,
        project: String,
        #[source]
        source: crate::docker::DockerError,
    },
}

/// What the watch holds on to between ticks.
#[derive(Debug)]
pub struct Supervisor<'a> {
    /// The attested config, as loaded (and measured) at launch; never re-read.
    pub config: &'a LaunchConfig,
    pub spec: &'a ImageSpec,
    pub watch: WatchSpec,
    pub settings: &'a MeasureSettings,
    pub docker: &'a ProcessDocker,
    pub log: &'a Logger,
    /// SIGTERM/SIGINT, recorded since before the first `up --detach`.
    pub stop: StopRequests,
}

/// What one tick decided.
enum Tick {
    /// Sleep and look again, with this digest running (or none, after a stop).
    Continue(Option<ImageDigest>),
    /// Stopped and not switching.
    Stop(WatchError),
}

impl Supervisor<'_> {
    /// Supervises `running` until it is revoked (without a switch), measuring fails or a
    /// stop signal arrives; otherwise forever.
    pub fn run(&self, running: ImageDigest) -> Result<i32, Error> {
        let seconds = self.watch.interval.as_secs();
        self.log.info(&format!(
            "watching the approved list every {seconds}s for project {} (running {running})",
            self.spec.project
        ));
        let mut running = Some(running);
        loop {
            if let Some(signal) = self.stop.sleep(self.watch.interval) {
                return self.stop_on(signal);
            }
            match self.tick(running)? {
                Tick::Continue(now) => running = now,
                Tick::Stop(revoked) => return Err(revoked.into()),
            }
        }
    }

    /// Stops the workload (whatever runs, or nothing) and gives the exit code for `signal`.
    fn stop_on(&self, signal: StopSignal) -> Result<i32, Error> {
        let project = &self.spec.project;
        self.log.warn(&format!(
            "{} received; stopping compose project {project}",
            signal.name()
        ));
        self.docker
            .compose_down(project, &self.spec.compose_file)
            .map_err(|source| WatchError::StopFailed {
                signal: signal.name(),
                project: project.clone(),
                source,
            })?;
        self.log.info(&format!(
            "stopped compose project {project}; exiting with {}",
            signal.exit_code()
        ));
        Ok(signal.exit_code())
    }

    fn tick(&self, running: Option<ImageDigest>) -> Result<Tick, Error> {
        let list = self.spec.approved_list.as_deref();
        let approved = match ApprovedList::load(list, self.spec.digest) {
            Ok(approved) => approved,
            Err(error) => {
                self.retry(&error.to_string());
                return Ok(Tick::Continue(running));
            }
        };
        if let Some(digest) = running {
            if approved.approve(Some(digest)).is_ok() {
                return Ok(Tick::Continue(running));
            }
            let list = list.map_or_else(String::new, |p| p.display().to_string());
            self.log.warn(&format!(
                "image {digest} is no longer in the approved list {list}; stopping compose project {}",
                self.spec.project
            ));
            if let Err(error) = self
                .docker
                .compose_down(&self.spec.project, &self.spec.compose_file)
            {
                self.retry(&error.to_string());
                return Ok(Tick::Continue(running));
            }
            self.log
                .info(&format!("stopped compose project {}", self.spec.project));
            if !self.watch.switch {
                return Ok(Tick::Stop(WatchError::Revoked {
                    digest,
                    list,
                    project: self.spec.project.clone(),
                }));
            }
        }
        match self.launch() {
            Ok(now) => Ok(Tick::Continue(now)),
            Err(error @ (Error::Measure(_) | Error::Usage(_) | Error::Config(_))) => Err(error),
            Err(error) => {
                self.retry(&error.to_string());
                Ok(Tick::Continue(None))
            }
        }
    }

    /// Resolves the config against the list as it is now, then checks, measures and starts
    /// that launch through the same steps as the first ([`launch::measured`]): `Session`
    /// measures it in full unless this boot's log already ends with it (a retry after a
    /// failed `up`).
    fn launch(&self) -> Result<Option<ImageDigest>, Error> {
        let resolved = launch::resolve_config(self.config.clone(), self.log)?;
        let Target::Image {
            spec,
            digest,
            resolution,
            credentials,
            compose,
        } = resolved.target
        else {
            return Err(Error::Usage("watch mode is for image configs only".into()));
        };
        let running = *digest.value();
        self.log.info(&format!(
            "starting {running} ({}) for project {}",
            resolved.approved.selection(),
            spec.project
        ));
        let launch = image::ImageLaunch {
            spec,
            digest,
            resolution,
            credentials,
            compose,
            docker: self.docker,
            tee: self.settings.platform == Platform::Tee,
        }
        .checked()?;
        let backend = measure::backend(self.settings, self.log)?;
        let session = Session::start(backend, resolved.events, self.log)?;
        let command = launch::measured(session, self.log, || launch.prepare(self.log))?;
        match image::up_detached(command)? {
            0 => Ok(Some(running)),
            code => {
                self.retry(&format!("compose up --detach exited with {code}"));
                Ok(None)
            }
        }
    }

    fn retry(&self, what: &str) {
        self.log.warn(&format!(
            "watch: {what}; retrying in {}s",
            self.watch.interval.as_secs()
        ));
    }
}
