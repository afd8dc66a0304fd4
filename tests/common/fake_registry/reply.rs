//! Writing replies: whole, padded to an oversized body, or trickled byte by byte.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{OVERSIZED_BYTES, TRICKLE_EVERY};

/// A reply about to be written.
pub(super) struct Reply {
    pub(super) status: &'static str,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl Reply {
    pub(super) fn json(status: &'static str, value: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }

    /// An OCI distribution error body.
    pub(super) fn error(status: &'static str, code: &str, message: &str, detail: &str) -> Self {
        Self::json(
            status,
            &json!({"errors": [{"code": code, "message": message, "detail": detail}]}),
        )
    }
}

pub(super) fn head(status: &str, headers: &[(&str, String)], length: usize) -> String {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let _ = write!(
        head,
        "Content-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    head
}

pub(super) fn write_reply(stream: &mut TcpStream, reply: &Reply, head_only: bool) {
    let mut bytes = head(reply.status, &reply.headers, reply.body.len()).into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    let _ = stream.write_all(&bytes);
}

/// [`OVERSIZED_BYTES`] declared and sent: whitespace, then the body. Stops writing when the
/// client hangs up or the fake is dropped.
pub(super) fn write_oversized(
    stream: &mut TcpStream,
    headers: &[(&str, String)],
    body: &[u8],
    head_only: bool,
    stop: &AtomicBool,
) {
    let total = OVERSIZED_BYTES.max(body.len());
    if stream
        .write_all(head("200 OK", headers, total).as_bytes())
        .is_err()
        || head_only
    {
        return;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut remaining = total - body.len();
    while remaining > 0 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let n = remaining.min(chunk.len());
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        remaining -= n;
    }
    let _ = stream.write_all(body);
}

/// The head at once, then one body byte every [`TRICKLE_EVERY`]: each read gets data, so
/// only a deadline on the whole exchange ends it.
pub(super) fn write_trickle(
    stream: &mut TcpStream,
    headers: &[(&str, String)],
    body: &[u8],
    stop: &AtomicBool,
) {
    if stream
        .write_all(head("200 OK", headers, body.len()).as_bytes())
        .is_err()
    {
        return;
    }
    for byte in body {
        let next = Instant::now() + TRICKLE_EVERY;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        if stream
            .write_all(std::slice::from_ref(byte))
            .and_then(|()| stream.flush())
            .is_err()
        {
            return;
        }
    }
}
