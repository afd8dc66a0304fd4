//! HTTP/1.1 on the wire: the recorded request, the streams served on, reading a request
//! (`Content-Length` or chunked), and raw, protobuf and oversized replies.

use std::io::{self, BufRead as _, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{MAX_REQUEST_BODY, MAX_REQUEST_HEAD, OVERSIZED_BYTES};

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub verb: String,
    /// The path without its leading `/`, e.g. `EmitEvent`.
    pub method: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Null` if it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub(super) fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
    }
}

/// A stream the fake serves on.
pub(super) trait Conn: Read + Write + Send {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()>;
    fn close(&self);
}

impl Conn for UnixStream {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }

    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
}

impl Conn for TcpStream {
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }

    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// Reads one HTTP/1.1 request: head, then a `Content-Length` or chunked body.
pub(super) fn read_request(conn: &mut dyn Conn) -> io::Result<Request> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut reader = BufReader::new(conn);
    let mut head_bytes = 0;
    let mut line = String::new();
    let mut read_line = |reader: &mut BufReader<&mut dyn Conn>, line: &mut String| {
        line.clear();
        let n = reader
            .by_ref()
            .take((MAX_REQUEST_HEAD + 2) as u64)
            .read_line(line)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_REQUEST_HEAD {
            return Err(bad("request head missing or too long"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let request_line = read_line(&mut reader, &mut line)?;
    let mut parts = request_line.split(' ');
    let (Some(verb), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    let mut headers = Vec::new();
    loop {
        let header = read_line(&mut reader, &mut line)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request = Request {
        verb: verb.to_owned(),
        method: target.trim_start_matches('/').to_owned(),
        version: version.to_owned(),
        headers,
        body: Vec::new(),
    };
    if request
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let size = read_line(&mut reader, &mut line)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if request.body.len() + size > MAX_REQUEST_BODY {
                return Err(bad("body too large"));
            }
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            request.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad content-length"))?;
        if length > MAX_REQUEST_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(request)
}

pub(super) fn respond_raw(conn: &mut dyn Conn, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn
        .write_all(head.as_bytes())
        .and_then(|()| conn.write_all(body))
        .and_then(|()| conn.flush());
}

/// A few bytes of a protobuf message (field 1, string "0.5.11"), as dstack answers a
/// request without the JSON content type.
pub(super) fn respond_protobuf(conn: &mut dyn Conn) {
    respond_raw(
        conn,
        "200 OK",
        "application/protobuf",
        b"\x0a\x060.5.11\x12\x04fake",
    );
}

/// Declares and sends [`OVERSIZED_BYTES`]: whitespace, then the normal body. A client
/// without a size cap would accept it; stops writing when the client hangs up.
pub(super) fn respond_oversized(conn: &mut dyn Conn, status: &str, body: &str, stop: &AtomicBool) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {OVERSIZED_BYTES}\r\nConnection: close\r\n\r\n"
    );
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut remaining = OVERSIZED_BYTES.saturating_sub(body.len());
    while remaining > 0 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let n = remaining.min(chunk.len());
        if conn.write_all(&chunk[..n]).is_err() {
            return;
        }
        remaining -= n;
    }
    let _ = conn.write_all(body.as_bytes()).and_then(|()| conn.flush());
}
