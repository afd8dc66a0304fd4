//! Where a launch's events go: the command line over the config's `[measurement]`, checked
//! by the TEE guard; a backend paired with the wrong platform is a usage error.

use std::path::PathBuf;

use crate::config::{LaunchConfig, MeasurementSpec};
use crate::error::Error;
use crate::log::Logger;
use crate::measure::dstack_native::DEFAULT_RUNTIME_DIR;
use crate::measure::tdx_sysfs::DEFAULT_RTMR3_PATH;
use crate::measure::{DEFAULT_EVENT_LOG, MeasureError, MeasureSettings};
use crate::tee_presence;

use super::Options;

/// The measurement settings, with the TEE guard's decision on the simulator endpoint.
pub fn checked_settings(
    options: &Options,
    config: &LaunchConfig,
    log: &Logger,
) -> Result<MeasureSettings, Error> {
    let mut settings = measure_settings(options, &config.measurement);
    settings.simulator = tee_presence::guard(
        options.platform,
        options.platform_source,
        &config.measurement,
        settings.dstack_socket.as_deref(),
        log,
    )?;
    Ok(settings)
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
pub fn usage_if_pairing(error: MeasureError) -> Error {
    if error.is_usage() {
        Error::Usage(error.to_string())
    } else {
        error.into()
    }
}
