//! Measurement: the backends that record the contract's events ([`crate::contract`]) into
//! RTMR3, and the once-per-boot rule.

pub mod auto;
pub mod dstack;
pub mod dstack_native;
pub mod event;
pub mod event_log;
pub mod http;
pub mod replay;
pub mod tdx_sysfs;

use std::fmt;
use std::path::PathBuf;

pub use event::Event;
pub use event_log::LocalEventLog;

use crate::log::Logger;
use crate::platform::Platform;
use auto::Auto;
use dstack::{Dstack, DstackError};
use dstack_native::{DstackNative, NativeLogError};
use tdx_sysfs::TdxSysfs;

/// Where the local event log goes when neither `--event-log` nor the config names one.
pub const DEFAULT_EVENT_LOG: &str = "/run/trusted-launcher/events.jsonl";

/// Records events one at a time, in order; an error stops the launch.
pub trait Measurer: fmt::Debug {
    /// The launcher events of the last launch already measured in this boot.
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError>;
    fn extend(&mut self, event: &Event) -> Result<(), MeasureError>;
    /// Checks, where the backend can, that `expected` is what the register now holds as
    /// this launch. Backends that keep their own record have nothing more to check.
    fn confirm(&mut self, expected: &[Event]) -> Result<(), MeasureError> {
        let _ = expected;
        Ok(())
    }
    /// Names the backend for the log.
    fn describe(&self) -> String;
}

/// `[measurement] backend` / `--measurement-backend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    Auto,
    Dstack,
    DstackNative,
    TdxSysfs,
    Local,
}

impl BackendChoice {
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "dstack" => Some(Self::Dstack),
            "dstack-native" => Some(Self::DstackNative),
            "tdx-sysfs" => Some(Self::TdxSysfs),
            "local" => Some(Self::Local),
            _ => None,
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Dstack => "dstack",
            Self::DstackNative => "dstack-native",
            Self::TdxSysfs => "tdx-sysfs",
            Self::Local => "local",
        })
    }
}

/// Everything that decides where events go.
#[derive(Clone, Debug)]
pub struct MeasureSettings {
    pub platform: Platform,
    pub backend: Option<BackendChoice>,
    pub dstack_socket: Option<PathBuf>,
    pub rtmr3_path: PathBuf,
    /// dstack's runtime event directory (`dstack-native`): config file or command line only.
    pub dstack_runtime_dir: PathBuf,
    pub event_log: PathBuf,
    /// `DSTACK_SIMULATOR_ENDPOINT`, when the launcher decided to honour it (no TDX guest and
    /// no agent at a default socket); never read from the environment here.
    pub simulator: Option<std::ffi::OsString>,
}

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("measurement backend {backend} cannot be used with --platform {platform}: {reason}")]
    Unsupported {
        backend: BackendChoice,
        platform: Platform,
        reason: &'static str,
    },
    #[error("no RTMR3 backend available: {tried}; refusing to launch unmeasured")]
    NoBackend { tried: String },
    #[error(transparent)]
    Dstack(#[from] DstackError),
    #[error(transparent)]
    DstackNative(#[from] NativeLogError),
    #[error("RTMR3 in the agent's quote ({quoted}) is not the replay of the agent's log followed by this boot's entries of {}; refusing to launch (an extension without a log entry, or a log entry without an extension: reboot to start clean)", log.display())]
    NativeReplay { log: PathBuf, quoted: String },
    #[error("cannot extend RTMR3 through {path}: {source}")]
    Sysfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use event log {path}: {source}")]
    EventLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "event log {path} line {line} is not a valid entry ({detail}); refusing to guess what was measured"
    )]
    EventLogCorrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },
}

impl MeasureError {
    /// Whether this is a usage error (a backend that cannot serve the platform).
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::Unsupported { .. })
    }
}

/// The backend for the settings. Nothing is measured yet; only `dstack`'s socket discovery
/// and the platform/backend pairing can fail here.
pub fn backend(
    settings: &MeasureSettings,
    log: &Logger,
) -> Result<Box<dyn Measurer>, MeasureError> {
    let choice = settings.backend.unwrap_or(match settings.platform {
        Platform::Tee => BackendChoice::Auto,
        Platform::Nontee => BackendChoice::Local,
    });
    let unsupported = |reason| MeasureError::Unsupported {
        backend: choice,
        platform: settings.platform,
        reason,
    };
    let local = || LocalEventLog::new(&settings.event_log);
    match (settings.platform, choice) {
        (Platform::Nontee, BackendChoice::Local) => Ok(Box::new(local())),
        (Platform::Nontee, _) => Err(unsupported(
            "nontee mode records to the local event log only",
        )),
        (Platform::Tee, BackendChoice::Local) => Err(unsupported(
            "the local event log measures nothing into RTMR3; use --platform nontee outside a TEE",
        )),
        (Platform::Tee, BackendChoice::TdxSysfs) => {
            if !settings.rtmr3_path.exists() {
                return Err(MeasureError::NoBackend {
                    tried: format!(
                        "RTMR3 file {} does not exist",
                        settings.rtmr3_path.display()
                    ),
                });
            }
            let sysfs = TdxSysfs::new(&settings.rtmr3_path, local());
            // An agent, where there is one, vouches for our log through its quotes.
            Ok(Box::new(
                match dstack::discover(
                    settings.dstack_socket.as_deref(),
                    settings.simulator.as_deref(),
                ) {
                    Ok((endpoint, source)) => {
                        note_endpoint(log, source, &endpoint);
                        sysfs.with_agent(Dstack::new(endpoint))
                    }
                    Err(_) => sysfs,
                },
            ))
        }
        (Platform::Tee, BackendChoice::Dstack) => Ok(Box::new(agent(settings, log)?)),
        (Platform::Tee, BackendChoice::DstackNative) => {
            let agent = agent(settings, log)?;
            if let Some(tried) =
                dstack_native::unavailable(&settings.dstack_runtime_dir, &settings.rtmr3_path)
            {
                return Err(MeasureError::NoBackend { tried });
            }
            Ok(Box::new(DstackNative::new(
                &settings.dstack_runtime_dir,
                &settings.rtmr3_path,
                agent,
            )))
        }
        (Platform::Tee, BackendChoice::Auto) => {
            let found = dstack::discover(
                settings.dstack_socket.as_deref(),
                settings.simulator.as_deref(),
            );
            if let Ok((endpoint, source)) = &found {
                note_endpoint(log, source, endpoint);
            }
            Ok(Box::new(Auto::new(
                found.map(|(endpoint, _)| Dstack::new(endpoint)),
                &settings.rtmr3_path,
                &settings.dstack_runtime_dir,
                log.clone(),
            )))
        }
    }
}

/// The agent an explicit `dstack` or `dstack-native` backend needs.
fn agent(settings: &MeasureSettings, log: &Logger) -> Result<Dstack, MeasureError> {
    let (endpoint, source) = dstack::discover(
        settings.dstack_socket.as_deref(),
        settings.simulator.as_deref(),
    )
    .map_err(|tried| MeasureError::NoBackend {
        tried: format!("no dstack agent ({})", tried.join(", ")),
    })?;
    note_endpoint(log, source, &endpoint);
    Ok(Dstack::new(endpoint))
}

fn note_endpoint(log: &Logger, source: &str, endpoint: &http::Endpoint) {
    if source == dstack::SIMULATOR_ENV {
        log.warn(&format!(
            "using the dstack agent named by DSTACK_SIMULATOR_ENDPOINT ({endpoint}); a quote shows only what the real agent measured"
        ));
    }
}

/// The contract's events for one launch, measured at most once per boot.
///
/// If this boot's log already ends with a launch whose launcher events are a prefix of
/// ours (a restart of the same launch), those are not measured again; anything else — a
/// different config or workload — is a new launch and is measured in full.
#[derive(Debug)]
pub struct Session {
    backend: Box<dyn Measurer>,
    events: Vec<Event>,
    done: usize,
}

impl Session {
    pub fn start(
        mut backend: Box<dyn Measurer>,
        events: Vec<Event>,
        log: &Logger,
    ) -> Result<Self, MeasureError> {
        let prior = backend.prior_launch()?;
        let done = if !prior.is_empty() && events.starts_with(&prior) {
            prior.len()
        } else {
            0
        };
        if done > 0 {
            let names: Vec<&str> = prior.iter().map(|e| e.name.as_str()).collect();
            log.info(&format!(
                "already measured in this boot: {}; not measuring again",
                names.join(", ")
            ));
        }
        Ok(Self {
            backend,
            events,
            done,
        })
    }

    /// Measures every event but `ready`: what precedes preparing the workload.
    pub fn measure_before_ready(&mut self, log: &Logger) -> Result<(), MeasureError> {
        self.measure_until(self.events.len().saturating_sub(1), log)
    }

    /// Measures the rest, `ready` last: the workload may start.
    pub fn measure_all(&mut self, log: &Logger) -> Result<(), MeasureError> {
        self.measure_until(self.events.len(), log)
    }

    /// Measures the contract's events up to (not including) index `end`, one at a time,
    /// confirming each with the backend before the next: an event that was not recorded
    /// stops the launch there.
    fn measure_until(&mut self, end: usize, log: &Logger) -> Result<(), MeasureError> {
        let end = end.min(self.events.len());
        while self.done < end {
            let Some(event) = self.events.get(self.done) else {
                break;
            };
            self.backend.extend(event)?;
            self.done += 1;
            self.backend
                .confirm(self.events.get(..self.done).unwrap_or_default())?;
            log.info(&format!(
                "measured {} into {}",
                event.name,
                self.backend.describe()
            ));
        }
        Ok(())
    }
}
