//! Opening and reading files from untrusted places: only regular files, never blocking on
//! the open, and whole reads capped at `max` bytes.
//!
//! A FIFO, a character device or a socket where a file is expected would hang the launcher
//! on `open` (a FIFO waits for a writer, or for a reader when opened to write) or on `read`
//! (a FIFO or tty with nobody writing; `/dev/zero` never ends). So every such file is opened
//! with `O_NONBLOCK` — which makes `open` of a FIFO return at once — and then the opened
//! descriptor (not the path, which could be swapped in between) must be a regular file.

use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// `O_NONBLOCK` on Linux (`x86_64` and `aarch64` share the generic value: `asm-generic/fcntl.h`).
/// Spelled here because the crate takes no libc dependency for one constant.
pub(crate) const O_NONBLOCK: i32 = 0o4000;

#[derive(Debug)]
pub enum CappedReadError {
    Io(std::io::Error),
    /// The path is a FIFO, a device, a socket or a directory.
    NotRegular(&'static str),
    TooLarge,
}

impl std::fmt::Display for CappedReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(source) => source.fmt(f),
            Self::NotRegular(kind) => write!(f, "is a {kind}, not a regular file"),
            Self::TooLarge => f.write_str("is too large"),
        }
    }
}

impl CappedReadError {
    /// The path does not exist (callers with a fallback for a missing file ask this).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    /// As an I/O error, for callers whose errors carry one.
    #[must_use]
    pub fn into_io(self) -> std::io::Error {
        match self {
            Self::Io(source) => source,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Opens `path` for reading, without blocking, and only if it is a regular file.
pub fn open_regular(path: &Path) -> Result<File, CappedReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(CappedReadError::Io)?;
    require_regular(file)
}

/// Opens `path` to append (creating it 0666 & umask), without blocking, and only if it is a
/// regular file: an event log that is a FIFO with no reader would otherwise block the open.
pub fn open_regular_append(path: &Path) -> Result<File, CappedReadError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            // Linux: opening a FIFO write-only with O_NONBLOCK and no reader fails with ENXIO
            // (fifo(7)); say what the path is rather than "No such device or address".
            if e.raw_os_error() == Some(6) {
                CappedReadError::NotRegular("FIFO")
            } else {
                CappedReadError::Io(e)
            }
        })?;
    require_regular(file)
}

fn require_regular(file: File) -> Result<File, CappedReadError> {
    let kind = file.metadata().map_err(CappedReadError::Io)?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(CappedReadError::NotRegular(kind_name(kind)))
}

/// What a file type is called in messages.
#[must_use]
pub fn kind_name(kind: FileType) -> &'static str {
    if kind.is_file() {
        "regular file"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_dir() {
        "directory"
    } else if kind.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// Reads `path` whole if it is a regular file holding at most `max` bytes.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, CappedReadError> {
    read_to_cap(open_regular(path)?, max)
}

/// Reads `reader` to its end if it yields at most `max` bytes; never reads past `max + 1`.
/// The one capped read: files, stdin, HTTP bodies.
pub fn read_to_cap(reader: impl Read, max: u64) -> Result<Vec<u8>, CappedReadError> {
    let mut bytes = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(CappedReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(CappedReadError::TooLarge);
    }
    Ok(bytes)
}

/// Whether `error` is a read or write that ran out of time: `TimedOut`, or `WouldBlock`,
/// which a blocking socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` expiry gives on Linux (EAGAIN,
/// socket(7)).
#[must_use]
pub fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    fn mkfifo(path: &Path) {
        assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    }

    #[test]
    fn regular_files_read_and_caps_hold() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(read_capped(&path, 3).unwrap(), b"abc");
        assert!(matches!(
            read_capped(&path, 2),
            Err(CappedReadError::TooLarge)
        ));
        assert!(
            read_capped(&dir.path().join("none"), 3)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn readers_are_capped_without_reading_past_the_cap() {
        assert_eq!(read_to_cap(Cursor::new(b"abc"), 3).unwrap(), b"abc");
        assert_eq!(read_to_cap(Cursor::new(b""), 0).unwrap(), b"");
        assert!(matches!(
            read_to_cap(Cursor::new(b"abcd"), 3),
            Err(CappedReadError::TooLarge)
        ));
        // An endless reader ends at the cap, not at memory exhaustion.
        assert!(matches!(
            read_to_cap(std::io::repeat(b'x'), 1024),
            Err(CappedReadError::TooLarge)
        ));
        let mut reader = Cursor::new(vec![b'x'; 100]);
        assert!(read_to_cap(&mut reader, 9).is_err());
        assert_eq!(reader.position(), 10, "at most max + 1 bytes are read");
    }

    #[test]
    fn timeouts_are_told_by_kind() {
        use std::io::{Error, ErrorKind};
        assert!(is_timeout(&Error::from(ErrorKind::TimedOut)));
        assert!(is_timeout(&Error::from(ErrorKind::WouldBlock)));
        assert!(!is_timeout(&Error::other("timed out")));
        assert!(!is_timeout(&Error::from(ErrorKind::ConnectionReset)));
    }

    /// Without a writer, a plain `File::open` of a FIFO never returns (fifo(7)); these return
    /// at once. A test that hung here would be stopped by the harness, never pass.
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let socket = dir.path().join("sock");
        let _listener = UnixListener::bind(&socket).unwrap();
        for (path, kind) in [
            (fifo.as_path(), "FIFO"),
            (Path::new("/dev/zero"), "character device"),
            (dir.path(), "directory"),
        ] {
            let error = read_capped(path, 10).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("is a {kind}, not a regular file")
            );
        }
        // A unix socket cannot be opened at all (ENXIO): still an error, never a wait.
        assert!(read_capped(&socket, 10).is_err());
        let error = open_regular_append(&fifo).unwrap_err();
        assert_eq!(error.to_string(), "is a FIFO, not a regular file");
        assert!(open_regular_append(Path::new("/dev/null")).is_err());
    }
}
