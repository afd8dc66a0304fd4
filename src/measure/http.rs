//! A minimal HTTP/1.1 client for one JSON POST to the dstack guest agent, over its unix
//! socket or (simulator) TCP: every call has a deadline and every reply a size cap.
//!
//! Written on std rather than hyper + tokio: the agent is a local peer, one request per
//! connection (`Connection: close`), and this keeps the TEE binary's dependency tree small.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Where the agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, from `DSTACK_SIMULATOR_ENDPOINT=http://host:port`.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(address) => write!(f, "http://{address}"),
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: Endpoint,
        source: std::io::Error,
    },
    #[error("cannot connect to {endpoint} within {seconds}s (the socket accepts no connection)")]
    ConnectTimedOut { endpoint: Endpoint, seconds: u64 },
    #[error("no answer from {endpoint} within {seconds}s")]
    TimedOut { endpoint: Endpoint, seconds: u64 },
    #[error("talking to {endpoint}: {source}")]
    Io {
        endpoint: Endpoint,
        source: std::io::Error,
    },
    #[error("malformed HTTP reply from {endpoint}: {detail}")]
    Malformed { endpoint: Endpoint, detail: String },
    #[error("reply from {endpoint} is larger than {max} bytes")]
    TooLarge { endpoint: Endpoint, max: usize },
}

trait Stream: Read + Write {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Stream for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// POSTs `body` as JSON to `path` and returns the reply, within `timeout` overall.
pub fn post_json(
    endpoint: &Endpoint,
    path: &str,
    body: &[u8],
    timeout: Duration,
    max_body: usize,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let connect_error = |source| HttpError::Connect {
        endpoint: endpoint.clone(),
        source,
    };
    let mut stream: Box<dyn Stream> = match endpoint {
        Endpoint::Unix(path) => Box::new(connect_unix(endpoint, path, timeout)?),
        Endpoint::Tcp(address) => {
            let target = address
                .to_socket_addrs()
                .map_err(connect_error)?
                .next()
                .ok_or_else(|| {
                    connect_error(std::io::Error::other("address resolves to nothing"))
                })?;
            Box::new(TcpStream::connect_timeout(&target, timeout).map_err(connect_error)?)
        }
    };
    let call = Call {
        endpoint,
        deadline,
        timeout,
    };
    stream
        .set_timeouts(timeout)
        .map_err(|source| call.io(source))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: dstack\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush())
        .map_err(|source| call.io(source))?;
    call.read_response(&mut *stream, max_body)
}

/// An agent reply held in memory, read as from the socket (the fuzz targets' way in).
#[cfg(feature = "fuzzing")]
impl Stream for std::io::Cursor<Vec<u8>> {
    fn set_timeouts(&self, _timeout: Duration) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads `reply` as [`post_json`] reads the agent's answer: the same header, framing and size
/// checks, without a socket.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn read_reply(
    endpoint: &Endpoint,
    reply: Vec<u8>,
    max_body: usize,
) -> Result<Response, HttpError> {
    let timeout = Duration::from_secs(60);
    let call = Call {
        endpoint,
        deadline: Instant::now() + timeout,
        timeout,
    };
    call.read_response(&mut std::io::Cursor::new(reply), max_body)
}

/// `UnixStream::connect` has no timeout, and blocks while the listener's accept backlog is
/// full (unix(7): a stream socket's connect waits for room in the backlog unless the socket
/// is non-blocking). It runs on a helper thread; past the deadline that thread is abandoned
/// (it ends when the connect does) and the caller fails, naming the socket.
fn connect_unix(
    endpoint: &Endpoint,
    path: &Path,
    timeout: Duration,
) -> Result<UnixStream, HttpError> {
    let (sender, receiver) = mpsc::channel();
    let target = path.to_owned();
    thread::Builder::new()
        .name("agent-connect".into())
        .spawn(move || {
            let _ = sender.send(UnixStream::connect(target));
        })
        .map_err(|source| HttpError::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result.map_err(|source| HttpError::Connect {
            endpoint: endpoint.clone(),
            source,
        }),
        Err(_) => Err(HttpError::ConnectTimedOut {
            endpoint: endpoint.clone(),
            seconds: timeout.as_secs(),
        }),
    }
}

struct Call<'a> {
    endpoint: &'a Endpoint,
    deadline: Instant,
    timeout: Duration,
}

impl Call<'_> {
    fn io(&self, source: std::io::Error) -> HttpError {
        if matches!(
            source.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            return self.timed_out();
        }
        HttpError::Io {
            endpoint: self.endpoint.clone(),
            source,
        }
    }

    fn timed_out(&self) -> HttpError {
        HttpError::TimedOut {
            endpoint: self.endpoint.clone(),
            seconds: self.timeout.as_secs(),
        }
    }

    fn malformed(&self, detail: impl Into<String>) -> HttpError {
        HttpError::Malformed {
            endpoint: self.endpoint.clone(),
            detail: detail.into(),
        }
    }

    /// Reads into `buffer` once; `Ok(0)` at end of stream. Enforces the overall deadline,
    /// so a peer that drips bytes cannot hold the launcher forever.
    fn read_some(&self, stream: &mut dyn Stream, buffer: &mut [u8]) -> Result<usize, HttpError> {
        if Instant::now() >= self.deadline {
            return Err(self.timed_out());
        }
        loop {
            match stream.read(buffer) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => return other.map_err(|source| self.io(source)),
            }
        }
    }

    fn read_response(
        &self,
        stream: &mut dyn Stream,
        max_body: usize,
    ) -> Result<Response, HttpError> {
        let mut data = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let header_end = loop {
            if let Some(end) = find(&data, b"\r\n\r\n") {
                break end;
            }
            if data.len() > MAX_HEADER_BYTES {
                return Err(self.malformed("headers too long"));
            }
            let read = self.read_some(stream, &mut chunk)?;
            if read == 0 {
                return Err(self.malformed("connection closed before the headers ended"));
            }
            data.extend_from_slice(chunk.get(..read).unwrap_or_default());
        };
        let (head, rest) = data.split_at(header_end);
        let rest = rest.get(4..).unwrap_or_default().to_vec();
        let head =
            std::str::from_utf8(head).map_err(|_| self.malformed("headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = parse_status(lines.next().unwrap_or_default()).ok_or_else(|| {
            self.malformed(format!(
                "bad status line {:?}",
                head.lines().next().unwrap_or_default()
            ))
        })?;
        let mut content_length = None;
        let mut chunked = false;
        let mut content_type = None;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(self.malformed(format!("bad header line {line:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let length: usize = value
                    .parse()
                    .map_err(|_| self.malformed(format!("bad Content-Length {value:?}")))?;
                content_length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_owned());
            }
        }
        let too_large = || HttpError::TooLarge {
            endpoint: self.endpoint.clone(),
            max: max_body,
        };
        let raw = match content_length {
            Some(length) if !chunked && length > max_body => return Err(too_large()),
            Some(length) if !chunked => self.read_exact_body(stream, rest, length)?,
            // Chunked or close-delimited: read to the end, capped (chunk framing adds little).
            _ => self.read_to_end(stream, rest, max_body.saturating_mul(2).max(4096))?,
        };
        let body = if chunked {
            decode_chunked(&raw).ok_or_else(|| self.malformed("bad chunked encoding"))?
        } else {
            raw
        };
        if body.len() > max_body {
            return Err(too_large());
        }
        Ok(Response {
            status,
            content_type,
            body,
        })
    }

    fn read_exact_body(
        &self,
        stream: &mut dyn Stream,
        mut body: Vec<u8>,
        length: usize,
    ) -> Result<Vec<u8>, HttpError> {
        let mut chunk = [0u8; 16 * 1024];
        while body.len() < length {
            let read = self.read_some(stream, &mut chunk)?;
            if read == 0 {
                return Err(
                    self.malformed(format!("body ended after {} of {length} bytes", body.len()))
                );
            }
            body.extend_from_slice(chunk.get(..read).unwrap_or_default());
        }
        if body.len() > length {
            return Err(self.malformed("bytes after the declared body"));
        }
        Ok(body)
    }

    fn read_to_end(
        &self,
        stream: &mut dyn Stream,
        mut body: Vec<u8>,
        cap: usize,
    ) -> Result<Vec<u8>, HttpError> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if body.len() > cap {
                return Err(HttpError::TooLarge {
                    endpoint: self.endpoint.clone(),
                    max: cap,
                });
            }
            let read = self.read_some(stream, &mut chunk)?;
            if read == 0 {
                return Ok(body);
            }
            body.extend_from_slice(chunk.get(..read).unwrap_or_default());
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `HTTP/1.x <3 digits> <reason>`.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

fn decode_chunked(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(raw, b"\r\n")?;
        let (size_line, rest) = raw.split_at(line_end);
        let size_text = std::str::from_utf8(size_line).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        let rest = rest.get(2..)?;
        if size == 0 {
            return Some(body);
        }
        let (data, rest) = rest.split_at_checked(size)?;
        body.extend_from_slice(data);
        raw = rest.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status("HTTP/1.0 400 Bad Request"), Some(400));
        for bad in [
            "",
            "HTTP/2 200",
            "HTTP/1.1 20 OK",
            "FTP 200 OK",
            "HTTP/1.1 abc",
        ] {
            assert_eq!(parse_status(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            decode_chunked(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"),
            Some(b"abcde".to_vec())
        );
        for bad in [&b"3\r\nab"[..], b"zz\r\n", b"3\r\nabcXX0\r\n\r\n", b""] {
            assert_eq!(decode_chunked(bad), None, "{bad:?}");
        }
    }
}
