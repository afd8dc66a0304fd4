//! `dstack-native`: each event measured exactly as dstack's own writer measures it on the
//! `next` branch (0.6+, where the agent has no `EmitEvent`), so the event is part of the
//! agent's `GetQuote`/`Info` log that every verifier replays.
//!
//! dstack's writer (`dstack/dstack-attest/src/lib.rs` `emit_runtime_event`, and
//! `dstack/cc-eventlog/src/runtime_events.rs` `RuntimeEvent::emit`, Dstack-TEE/dstack branch
//! `next`) does, per event: an exclusive `flock` on `/run/log/dstack/runtime_event.lock`;
//! read the digest version from `/run/log/dstack/runtime_event_version` (`1` or `2`);
//! extend RTMR3 first; then append `serde_json` of `{"event":..,"payload":<base64>}` (plus
//! `"version":2` for v2, omitted for v1) and `\n` to `/run/log/dstack/runtime_events.log`
//! (created 0600); release the lock. The agent's log is the firmware's CCEL followed by
//! those lines, so a line the launcher appends the same way is indistinguishable from
//! dstack's own events.
//!
//! Differences, each on the safe side: dstack waits for the lock without bound, this waits
//! [`LOCK_WAIT`] and fails closed naming the lock; dstack fails when the version file is
//! missing (its setup always writes it on `next`), this reads a missing file as `1` (the
//! v0.5.x layout, where every line is v1 and the agent's confirmation below still has to
//! hold); and this syncs the log to disk before releasing the lock.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::dstack::Dstack;
use super::event::Event;
use super::tdx_sysfs::extend_register;
use super::{MeasureError, Measurer};
use crate::capped_read::{O_NONBLOCK, kind_name, read_capped};

/// Where dstack keeps its runtime event log, lock and digest version.
pub const DEFAULT_RUNTIME_DIR: &str = "/run/log/dstack";
pub const LOCK_FILE: &str = "runtime_event.lock";
pub const VERSION_FILE: &str = "runtime_event_version";
pub const LOG_FILE: &str = "runtime_events.log";

/// How long another writer may hold the lock before the launch stops. dstack holds it for
/// one register write and one line: milliseconds.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
const LOCK_POLL: Duration = Duration::from_millis(25);
/// `1` or `2` and a newline; anything longer is not a version.
const MAX_VERSION_BYTES: u64 = 64;

/// The digest format of this boot's runtime events (app-compose `event_log_version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestVersion {
    V1,
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum NativeLogError {
    #[error("cannot open dstack's runtime event lock {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "dstack's runtime event lock {path} is still held by another writer after {seconds}s; nothing measured, refusing to launch"
    )]
    LockTimedOut { path: PathBuf, seconds: u64 },
    #[error("cannot read dstack's runtime event version {path}: {detail}")]
    VersionUnreadable { path: PathBuf, detail: String },
    #[error(
        "dstack's runtime event version {path} holds {value:?}, not 1 or 2; refusing to guess the event digest"
    )]
    VersionUnknown { path: PathBuf, value: String },
    #[error(
        "RTMR3 was extended with {event}, but appending it to dstack's runtime event log {path} failed: {source}; the register now holds an event the log lacks (reboot to start clean)"
    )]
    Append {
        event: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line of dstack's runtime event log, fields in dstack's order (`RuntimeEvent`).
#[derive(Serialize)]
struct Line<'a> {
    event: &'a str,
    payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

/// Why dstack-native cannot run here, if it cannot: the runtime directory or the
/// measurement file is missing.
#[must_use]
pub fn unavailable(runtime_dir: &Path, rtmr3: &Path) -> Option<String> {
    let mut missing = Vec::new();
    if !runtime_dir.is_dir() {
        missing.push(format!(
            "dstack runtime directory {} does not exist",
            runtime_dir.display()
        ));
    }
    if !rtmr3.exists() {
        missing.push(format!("RTMR3 file {} does not exist", rtmr3.display()));
    }
    (!missing.is_empty()).then(|| missing.join(" and "))
}

#[derive(Debug)]
pub struct DstackNative {
    runtime_dir: PathBuf,
    rtmr3: PathBuf,
    /// The agent whose quotes confirm each event and whose log says what this boot measured.
    agent: Dstack,
}

impl DstackNative {
    #[must_use]
    pub fn new(runtime_dir: &Path, rtmr3: &Path, agent: Dstack) -> Self {
        Self {
            runtime_dir: runtime_dir.to_owned(),
            rtmr3: rtmr3.to_owned(),
            agent,
        }
    }

    /// The agent's record of this boot, read while no dstack writer is between its
    /// extension and its line (the agent's `GetQuote` does not take the lock itself).
    fn quoted<T>(
        &mut self,
        read: impl FnOnce(&mut Dstack) -> Result<T, MeasureError>,
    ) -> Result<T, MeasureError> {
        let lock = lock(&self.runtime_dir)?;
        let result = read(&mut self.agent);
        drop(lock);
        result
    }

    /// The boot's digest version: `1` or `2` (surrounding whitespace ignored, as dstack
    /// trims); a missing file is `1`; anything else stops the launch.
    fn version(&self) -> Result<DigestVersion, NativeLogError> {
        let path = self.runtime_dir.join(VERSION_FILE);
        let bytes = match read_capped(&path, MAX_VERSION_BYTES) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => return Ok(DigestVersion::V1),
            Err(error) => {
                return Err(NativeLogError::VersionUnreadable {
                    path,
                    detail: error.to_string(),
                });
            }
        };
        parse_version(path, &bytes)
    }

    /// Appends one line in one write, synced, to a regular file created 0600.
    fn append(&self, event: &Event, version: DigestVersion) -> Result<(), NativeLogError> {
        let path = self.runtime_dir.join(LOG_FILE);
        let fail = |source| NativeLogError::Append {
            event: event.name.clone(),
            path: path.clone(),
            source,
        };
        let mut text = serde_json::to_vec(&line(event, version))
            .map_err(|e| fail(std::io::Error::other(e)))?;
        text.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(O_NONBLOCK)
            .open(&path)
            .map_err(fail)?;
        let kind = file.metadata().map_err(fail)?.file_type();
        if !kind.is_file() {
            return Err(fail(std::io::Error::other(format!(
                "is a {}, not a regular file",
                kind_name(kind)
            ))));
        }
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)
    }
}

/// The contents of the version file at `path`: `1` or `2`, surrounding whitespace ignored.
pub fn parse_version(path: PathBuf, bytes: &[u8]) -> Result<DigestVersion, NativeLogError> {
    let text = String::from_utf8_lossy(bytes);
    match text.trim() {
        "1" => Ok(DigestVersion::V1),
        "2" => Ok(DigestVersion::V2),
        other => Err(NativeLogError::VersionUnknown {
            path,
            value: other.to_owned(),
        }),
    }
}

/// Takes dstack's lock in `runtime_dir`, polling so that a writer that never lets go ends
/// the launch after [`LOCK_WAIT`]. Held while the returned file is open (flock(2) locks are
/// released on close).
pub fn lock(runtime_dir: &Path) -> Result<File, NativeLogError> {
    let path = runtime_dir.join(LOCK_FILE);
    let io = |source| NativeLogError::Lock {
        path: path.clone(),
        source,
    };
    // As dstack opens it (create, write, no truncate); non-blocking, so a FIFO planted
    // there fails the open instead of hanging it.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(&path)
        .map_err(io)?;
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(io(std::io::Error::other(format!(
            "is a {}, not a regular file",
            kind_name(kind)
        ))));
    }
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        // `try_lock` is flock(2) with LOCK_EX | LOCK_NB on Linux (std's documented
        // platform behaviour), the lock dstack's writer takes.
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(NativeLogError::LockTimedOut {
                    path,
                    seconds: LOCK_WAIT.as_secs(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
    }
}

fn line(event: &Event, version: DigestVersion) -> Line<'_> {
    Line {
        event: &event.name,
        payload: crate::base64::encode(&event.payload),
        version: (version == DigestVersion::V2).then_some(2),
    }
}

impl Measurer for DstackNative {
    /// The agent's log, which holds our lines: it must replay to the quoted RTMR3.
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        self.quoted(Measurer::prior_launch)
    }

    /// Lock, version, extend, append, unlock: dstack's order. A failed extension leaves no
    /// line; a failed append after it is reported as the inconsistency it is.
    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        let lock = lock(&self.runtime_dir)?;
        let version = self.version()?;
        let digest = match version {
            DigestVersion::V1 => event.digest(),
            DigestVersion::V2 => event.digest_v2(),
        };
        extend_register(&self.rtmr3, &digest)?;
        self.append(event, version)?;
        drop(lock);
        Ok(())
    }

    /// The agent's quote: its log (with our line) replays to RTMR3 and ends with this launch.
    fn confirm(&mut self, expected: &[Event]) -> Result<(), MeasureError> {
        self.quoted(|agent| agent.confirm(expected))
    }

    fn describe(&self) -> String {
        format!(
            "RTMR3 via {} (dstack runtime event log {})",
            self.rtmr3.display(),
            self.runtime_dir.join(LOG_FILE).display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::http::Endpoint;

    fn native(dir: &Path) -> DstackNative {
        DstackNative::new(
            dir,
            &dir.join("rtmr3"),
            Dstack::new(Endpoint::Unix(dir.join("none.sock"))),
        )
    }

    /// dstack's `serde_json` of `RuntimeEvent`: `event`, base64 `payload`, `version` only for v2.
    #[test]
    fn lines_are_dstacks_runtime_event_json() {
        let event = Event::new("trusted-launcher.config", b"sha256:ab\"\n".to_vec());
        assert_eq!(
            serde_json::to_string(&line(&event, DigestVersion::V1)).unwrap(),
            r#"{"event":"trusted-launcher.config","payload":"c2hhMjU2OmFiIgo="}"#
        );
        let ready = Event::new("trusted-launcher.ready", Vec::new());
        assert_eq!(
            serde_json::to_string(&line(&ready, DigestVersion::V2)).unwrap(),
            r#"{"event":"trusted-launcher.ready","payload":"","version":2}"#
        );
    }

    #[test]
    fn version_file_accepts_1_2_or_absent_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let measurer = native(dir.path());
        assert_eq!(measurer.version().unwrap(), DigestVersion::V1);
        let path = dir.path().join(VERSION_FILE);
        for (text, expected) in [("1", DigestVersion::V1), ("2\n", DigestVersion::V2)] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(measurer.version().unwrap(), expected, "{text:?}");
        }
        for bad in ["3", "", "v2", "12", "2 2"] {
            std::fs::write(&path, bad).unwrap();
            let error = measurer.version().unwrap_err().to_string();
            assert_eq!(
                error,
                format!(
                    "dstack's runtime event version {} holds {:?}, not 1 or 2; refusing to guess the event digest",
                    path.display(),
                    bad.trim()
                )
            );
        }
        std::fs::write(&path, "1".repeat(100)).unwrap();
        assert!(matches!(
            measurer.version(),
            Err(NativeLogError::VersionUnreadable { .. })
        ));
    }

    #[test]
    fn appended_lines_are_0600_one_per_event() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let measurer = native(dir.path());
        measurer
            .append(&Event::new("a", vec![1, 2]), DigestVersion::V1)
            .unwrap();
        measurer
            .append(&Event::new("b", Vec::new()), DigestVersion::V2)
            .unwrap();
        let path = dir.path().join(LOG_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"event\":\"a\",\"payload\":\"AQI=\"}\n{\"event\":\"b\",\"payload\":\"\",\"version\":2}\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn availability_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none");
        let why = unavailable(&missing, &missing.join("rtmr3")).unwrap();
        assert!(why.contains("dstack runtime directory"), "{why}");
        assert!(why.contains("RTMR3 file"), "{why}");
        std::fs::write(dir.path().join("rtmr3"), b"").unwrap();
        assert_eq!(unavailable(dir.path(), &dir.path().join("rtmr3")), None);
    }
}
