//! Whether measurement is possible where the launcher runs: a TDX guest, seen through the
//! kernel's own interfaces, or a dstack agent that answers.
//!
//! `nontee` and `DSTACK_SIMULATOR_ENDPOINT` are conveniences for machines without a TEE.
//! Both can arrive through the environment, which an operator may inject into a CVM without
//! changing its attestation; honoured inside a TEE, either would let a restart run a
//! different workload with nothing measured (or measured into a register no quote shows)
//! while the quote still ends with the earlier launch. So they are refused or ignored
//! wherever this module finds that measurement is possible.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::MeasurementSpec;
use crate::error::Error;
use crate::log::Logger;
use crate::measure::BackendChoice;
use crate::measure::dstack::{DEFAULT_SOCKETS, SIMULATOR_ENV};
use crate::measure::http::{Endpoint, post_json};
use crate::platform::Platform;

/// The TDX guest driver's character device (in-tree driver, and dstack's v0.5.x module).
pub const TDX_GUEST_DEVICE: &str = "/dev/tdx_guest";
/// The same driver's misc device in sysfs: present even where `/dev` is a container's own.
pub const TDX_GUEST_SYSFS: &str = "/sys/class/misc/tdx_guest";
/// The configfs TSM report interface (quote generation for confidential guests).
pub const TSM_REPORT: &str = "/sys/kernel/config/tsm/report";
/// The kernel lists `tdx_guest` among the CPU flags of a TDX guest.
pub const CPUINFO: &str = "/proc/cpuinfo";
const CPU_FLAG: &str = "tdx_guest";
/// `/proc/cpuinfo` is about 1.5 KiB a CPU; this covers thousands of CPUs.
const MAX_CPUINFO: u64 = 16 * 1024 * 1024;
/// An agent that exists answers its own socket at once; this only bounds a stuck one.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The first sign of a TDX guest, named for the error message; `None` outside one.
#[must_use]
pub fn tdx_guest() -> Option<String> {
    for path in [TDX_GUEST_DEVICE, TDX_GUEST_SYSFS, TSM_REPORT] {
        // A dangling symlink is still the kernel saying the device is registered.
        if Path::new(path).symlink_metadata().is_ok() {
            return Some(format!("{path} exists"));
        }
    }
    cpuinfo_has_tdx_flag().then(|| format!("{CPUINFO} lists the {CPU_FLAG} CPU flag"))
}

fn cpuinfo_has_tdx_flag() -> bool {
    let Ok(file) = std::fs::File::open(CPUINFO) else {
        return false;
    };
    let mut text = String::new();
    if file.take(MAX_CPUINFO).read_to_string(&mut text).is_err() {
        return false;
    }
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| key.trim() == "flags")
        .any(|(_, flags)| flags.split_whitespace().any(|flag| flag == CPU_FLAG))
}

/// The first of `configured` (if any) and the default sockets where an agent answers.
#[must_use]
pub fn answering_agent(configured: Option<&Path>) -> Option<PathBuf> {
    configured
        .into_iter()
        .map(Path::to_path_buf)
        .chain(DEFAULT_SOCKETS.iter().map(PathBuf::from))
        .find(|path| answers(path))
}

/// The first default socket where an agent answers.
#[must_use]
pub fn answering_default_agent() -> Option<PathBuf> {
    answering_agent(None)
}

/// Whether something speaks HTTP on the unix socket at `path`: any status counts, since an
/// agent of any version answers `/Info` with something (older ones with an error).
fn answers(path: &Path) -> bool {
    if !path.exists() {
        return false;
    }
    let endpoint = Endpoint::Unix(path.to_owned());
    post_json(&endpoint, "/Info", b"{}", PROBE_TIMEOUT, 64 * 1024 * 1024).is_ok()
}

/// Why `nontee` cannot be used here, if it cannot: the config asks for a TEE, the kernel is
/// a TDX guest, or an agent answers.
#[must_use]
pub fn nontee_refusal(
    config_asks_for_tee: Option<String>,
    configured_socket: Option<&Path>,
) -> Option<String> {
    if let Some(reason) = config_asks_for_tee {
        return Some(reason);
    }
    if let Some(sign) = tdx_guest() {
        return Some(format!("this is a TDX guest ({sign})"));
    }
    answering_agent(configured_socket)
        .map(|path| format!("a dstack agent answers at {}", path.display()))
}

/// Keeps the environment from weakening tee mode. `nontee` is refused wherever measurement
/// is possible (the config asks for a TEE, a TDX guest, an answering agent), and
/// `DSTACK_SIMULATOR_ENDPOINT` is honoured only where neither a TDX guest nor an agent at a
/// default socket is found. Returns the simulator endpoint to use, if any.
pub fn guard(
    platform: Platform,
    platform_source: &str,
    spec: &MeasurementSpec,
    configured_socket: Option<&Path>,
    log: &Logger,
) -> Result<Option<OsString>, Error> {
    if platform == Platform::Nontee {
        let config_asks = match (spec.backend, &spec.dstack_socket, &spec.dstack_runtime_dir) {
            (Some(backend), _, _) if backend != BackendChoice::Local => {
                Some(format!("the config names measurement backend {backend}"))
            }
            (_, Some(socket), _) => Some(format!(
                "the config names the dstack agent socket {}",
                socket.display()
            )),
            (_, _, Some(dir)) => Some(format!(
                "the config names the dstack runtime directory {}",
                dir.display()
            )),
            _ => None,
        };
        if let Some(reason) = nontee_refusal(config_asks, configured_socket) {
            return Err(Error::Usage(format!(
                "refusing nontee (from {platform_source}): {reason}; nontee measures nothing into RTMR3 and is only for machines without a TEE"
            )));
        }
        return Ok(None);
    }
    let Some(endpoint) = std::env::var_os(SIMULATOR_ENV) else {
        return Ok(None);
    };
    if configured_socket.is_some() {
        return Ok(None);
    }
    let real = tdx_guest().or_else(|| {
        answering_default_agent()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_silent_socket_does_not_answer() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!answers(&dir.path().join("none.sock")));
        let path = dir.path().join("plain-file");
        std::fs::write(&path, b"").unwrap();
        assert!(!answers(&path));
        // A listener that closes every connection without a word is not an agent.
        let socket = dir.path().join("mute.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        assert!(!answers(&socket));
    }

    #[test]
    fn the_config_decides_first() {
        assert_eq!(
            nontee_refusal(Some("the config names backend dstack".into()), None).as_deref(),
            Some("the config names backend dstack")
        );
    }
}
