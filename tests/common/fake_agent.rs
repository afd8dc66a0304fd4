//! A fake dstack guest agent (DESIGN §3–§5): HTTP/1.1 over a unix socket (or loopback TCP,
//! as the simulator), `Version`, `Info`, `GetQuote` and `EmitEvent` with dstack's JSON
//! shapes, an event log holding dstack's boot events, and RTMR3 kept by replay. Modes
//! reproduce the agents the launcher meets (stripped logs, no `EmitEvent`, the simulator)
//! and malicious or broken ones (garbage, oversized, silent, protobuf replies). Every request
//! is recorded so tests can check what the launcher sent.
//!
//! Written on std and `sha2` only, independently of the crate's own digest and quote code,
//! so a shared mistake cannot hide.

use std::io::{self, BufRead as _, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest as _, Sha384};

/// dstack's event type for runtime (RTMR3) events.
pub const EVENT_TYPE: u32 = 0x0800_0001;
/// Size of the body of an [`Mode::Oversized`] reply.
pub const OVERSIZED_BYTES: usize = 64 * 1024 * 1024;
/// The simulator's answer to `EmitEvent` (dstack 0.5.9+).
pub const SIMULATOR_ERROR: &str = "runtime event emission is unavailable in simulator mode";
/// Length of a v4 quote with an empty signature: header, TD report body, signature length.
pub const QUOTE_LEN: usize = 48 + 584 + 4;
/// Absolute offsets in a v4 quote (DESIGN §5).
pub const QUOTE_MRTD: usize = 48 + 136;
pub const QUOTE_RTMR0: usize = 48 + 328;
pub const QUOTE_RTMR3: usize = 48 + 472;
pub const QUOTE_REPORT_DATA: usize = 48 + 520;

/// How long the fake waits on a peer: a stuck client never stalls the fake for long.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_REQUEST_HEAD: usize = 64 * 1024;
const MAX_REQUEST_BODY: usize = 1024 * 1024;

const MRTD: [u8; 48] = [0x11; 48];
const APP_ID: [u8; 20] = [
    0x94, 0x4e, 0xda, 0xb7, 0x71, 0x28, 0x0e, 0xde, 0x41, 0x0e, 0x7b, 0x9e, 0x66, 0xfc, 0xae, 0xe6,
    0xb2, 0xc4, 0xa1, 0x2c,
];
const INSTANCE_ID: [u8; 20] = [
    0xce, 0x0b, 0x8b, 0x91, 0x9d, 0xcf, 0x82, 0xcd, 0xcd, 0x06, 0xce, 0xd4, 0x6d, 0x28, 0xc9, 0x11,
    0x31, 0x37, 0xfc, 0x3d,
];
const COMPOSE_HASH: [u8; 32] = [0x60; 32];
const OS_IMAGE_HASH: [u8; 32] = [0xde; 32];
const MR_KMS: [u8; 32] = [0x7e; 32];
const DEVICE_ID: [u8; 32] = [0xe3; 32];
const KEY_PROVIDER: &str = r#"{"name":"kms","id":"3059301306072a8648ce3d020106082a8648ce3d030107034200048844eb42ccdf8c52fd4f174f36"}"#;

/// How the fake behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A dstack 0.5.x agent before 0.5.6: full digests everywhere, `EmitEvent` works.
    Normal,
    /// As agents from 0.5.6 on: `GetQuote`'s log has `"digest":""` on RTMR3 entries and
    /// empty payloads on RTMR0–2 entries. `Info` is unchanged.
    Stripped,
    /// The next dstack release: `EmitEvent` answers 400 `Service not found: EmitEvent`.
    NoEmitEvent,
    /// The dstack simulator (0.5.9+): `EmitEvent` answers 400 with [`SIMULATOR_ERROR`].
    Simulator,
    /// Older simulators: `EmitEvent` answers 200 `null` but records nothing.
    DropsEvents,
    /// Every reply is 200 with a body that is not JSON.
    Garbage,
    /// Every reply is the normal one, padded with leading whitespace to a 64 MiB body.
    Oversized,
    /// Reads the request and never answers; the connection stays open until drop.
    Silent,
    /// Answers in protobuf when the request's content type is not JSON, as dstack does.
    Protobuf,
    /// Answers in protobuf to every request.
    AlwaysProtobuf,
}

/// One event-log entry, as the agent holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub imr: u32,
    pub event_type: u32,
    pub digest: [u8; 48],
    pub event: String,
    pub payload: Vec<u8>,
    /// `Some(2)` for a v2 entry of the `next` dstack (see `next_agent`); `None` for v1.
    pub version: Option<u32>,
}

impl Entry {
    /// A runtime (RTMR3) event, with its v1 digest.
    #[must_use]
    pub fn runtime(event: &str, payload: &[u8]) -> Self {
        Self {
            imr: 3,
            event_type: EVENT_TYPE,
            digest: v1_digest(event, payload),
            event: event.to_owned(),
            payload: payload.to_vec(),
            version: None,
        }
    }

    /// A firmware/kernel event for RTMR0–2; its digest is arbitrary (derived from `seed`).
    fn boot(imr: u32, event_type: u32, seed: &str, payload: &[u8]) -> Self {
        Self {
            imr,
            event_type,
            digest: Sha384::digest(seed.as_bytes()).into(),
            event: String::new(),
            payload: payload.to_vec(),
            version: None,
        }
    }

    #[must_use]
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }

    #[must_use]
    pub fn payload_hex(&self) -> String {
        hex(&self.payload)
    }

    /// dstack's JSON, field order included. `stripped` is what `GetQuote` does from 0.5.6 on.
    fn json(&self, stripped: bool) -> EntryJson<'_> {
        let (digest, payload) = match (stripped, self.imr) {
            (true, 3) => (String::new(), self.payload_hex()),
            (true, _) => (self.digest_hex(), String::new()),
            (false, _) => (self.digest_hex(), self.payload_hex()),
        };
        EntryJson {
            imr: self.imr,
            event_type: self.event_type,
            digest,
            event: &self.event,
            event_payload: payload,
            version: self.version,
        }
    }
}

#[derive(Serialize)]
struct EntryJson<'a> {
    imr: u32,
    event_type: u32,
    digest: String,
    event: &'a str,
    event_payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
}

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

    fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        })
    }
}

/// The `next` dstack's RTMR3 entries, read at each request from its runtime event log (an
/// error is the agent failing to read that log). See `next_agent`.
pub type RuntimeLog = Arc<dyn Fn() -> Result<Vec<Entry>, String> + Send + Sync>;

struct State {
    log: Vec<Entry>,
    rtmr3: [u8; 48],
    boot_len: usize,
    requests: Vec<Request>,
}

struct Shared {
    mode: Mode,
    stop: AtomicBool,
    state: Mutex<State>,
    /// The fake sysfs file linked to this register ([`FakeRtmr3::start_linked`]).
    native: Mutex<Option<NativeLink>>,
    /// Set for a `next` agent: its log is `state.log` (firmware only) followed by these.
    runtime_log: Option<RuntimeLog>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic on the serving thread must not hide the state from the test.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The register as the hardware holds it when asked: bytes a writer already wrote to the
    /// linked fake sysfs file are extended first, as the kernel's synchronous write has done
    /// by the time the writer can ask for a quote. (The fake's reader thread alone may not
    /// have run yet.)
    fn settle_native(&self) {
        let link = lock(&self.native).clone();
        if let Some(link) = link {
            let mut fifo = lock(&link.fifo);
            let pending = read_pending(&link.path);
            fifo.absorb(&pending, |digest| self.extend(digest));
            fifo.drain(|digest| self.extend(digest));
        }
    }

    /// The whole log as the agent reports it.
    fn full_log(&self, state: &State) -> Result<Vec<Entry>, String> {
        let mut log = state.log.clone();
        if let Some(read) = &self.runtime_log {
            log.extend(read()?);
        }
        Ok(log)
    }

    fn extend(&self, digest: &[u8; 48]) {
        let mut state = self.state();
        state.rtmr3 = extend(&state.rtmr3, digest);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A [`FakeRtmr3`] linked to an agent's register.
#[derive(Clone)]
struct NativeLink {
    path: PathBuf,
    fifo: Arc<Mutex<FifoState>>,
}

/// What the fake sysfs file has received, and how much of it has extended the register.
/// Bytes are read from the FIFO only while this is locked, so they are taken in order.
#[derive(Default)]
struct FifoState {
    received: Vec<u8>,
    extended: usize,
    /// A read end held open for the FIFO's whole life. Without it, a writer that opens and
    /// writes just after the reader thread saw end-of-file, and before it closed, writes into
    /// a pipe whose last reader then closes: the kernel frees the buffer and the bytes are
    /// lost (seen under load). The kernel's sysfs file never loses a write.
    keeper: Option<std::fs::File>,
}

impl FifoState {
    /// Takes whatever sits in the pipe now, without blocking, through the keeper.
    fn drain(&mut self, extend: impl FnMut(&[u8; 48])) {
        let mut pending = Vec::new();
        if let Some(keeper) = &mut self.keeper {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = keeper.read(&mut buf) {
                pending.extend_from_slice(&buf[..n]);
            }
        }
        self.absorb(&pending, extend);
    }

    fn absorb(&mut self, bytes: &[u8], mut extend: impl FnMut(&[u8; 48])) {
        self.received.extend_from_slice(bytes);
        while self.received.len() >= self.extended + 48 {
            let digest: [u8; 48] = self.received[self.extended..self.extended + 48]
                .try_into()
                .unwrap();
            extend(&digest);
            self.extended += 48;
        }
    }
}

/// Whatever is waiting in the FIFO at `path`, without blocking: opened `O_NONBLOCK`, read until
/// it would block (a writer is open) or ends (none is).
fn read_pending(path: &Path) -> Vec<u8> {
    use std::os::unix::fs::OpenOptionsExt as _;
    const O_NONBLOCK: i32 = 0o4000; // Linux
    let mut pending = Vec::new();
    if let Ok(mut fifo) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
    {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = fifo.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
        }
    }
    pending
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A stream the fake serves on.
trait Conn: Read + Write + Send {
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

impl Listener {
    fn accept(&self) -> io::Result<Box<dyn Conn>> {
        Ok(match self {
            Self::Unix(l) => Box::new(l.accept()?.0),
            Self::Tcp(l) => Box::new(l.accept()?.0),
        })
    }
}

/// The fake agent; serves on a background thread until dropped.
pub struct FakeAgent {
    shared: Arc<Shared>,
    endpoint: String,
    socket: Option<PathBuf>,
    thread: Option<JoinHandle<()>>,
}

impl FakeAgent {
    /// Serves on a unix socket at `dir/dstack.sock`.
    pub fn start(dir: &Path, mode: Mode) -> Self {
        let socket = dir.join("dstack.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake agent socket");
        let endpoint = socket.display().to_string();
        Self::serve(Listener::Unix(listener), mode, endpoint, Some(socket))
    }

    /// A `next` agent at `dir/dstack.sock`: no `EmitEvent`; its log is the firmware entries
    /// followed by `runtime_log`; its RTMR3 starts at `rtmr3` (the boot events already in
    /// that log) and moves only through a linked [`FakeRtmr3`].
    pub fn start_next(dir: &Path, rtmr3: [u8; 48], runtime_log: RuntimeLog) -> Self {
        let socket = dir.join("dstack.sock");
        let listener = UnixListener::bind(&socket).expect("bind fake agent socket");
        let endpoint = socket.display().to_string();
        let agent = Self::serve_with(
            Listener::Unix(listener),
            Mode::NoEmitEvent,
            endpoint,
            Some(socket),
            Some(runtime_log),
        );
        {
            let mut state = agent.shared.state();
            state.log.retain(|e| e.imr != 3);
            state.boot_len = state.log.len();
            state.rtmr3 = rtmr3;
        }
        agent
    }

    /// Serves on loopback TCP, as the simulator does (`DSTACK_SIMULATOR_ENDPOINT=http://..`).
    pub fn start_tcp(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake agent port");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        Self::serve(Listener::Tcp(listener), mode, endpoint, None)
    }

    fn serve(listener: Listener, mode: Mode, endpoint: String, socket: Option<PathBuf>) -> Self {
        Self::serve_with(listener, mode, endpoint, socket, None)
    }

    fn serve_with(
        listener: Listener,
        mode: Mode,
        endpoint: String,
        socket: Option<PathBuf>,
        runtime_log: Option<RuntimeLog>,
    ) -> Self {
        let (log, boot_len) = boot_log();
        let rtmr3 = replay_imr(&log, 3);
        let shared = Arc::new(Shared {
            mode,
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                log,
                rtmr3,
                boot_len,
                requests: Vec::new(),
            }),
            native: Mutex::new(None),
            runtime_log,
        });
        // Non-blocking accept polled with a short sleep: drop stops the thread without a
        // wake-up connection that could itself block.
        match &listener {
            Listener::Unix(l) => l.set_nonblocking(true).unwrap(),
            Listener::Tcp(l) => l.set_nonblocking(true).unwrap(),
        }
        let thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        Self {
            shared,
            endpoint,
            socket,
            thread: Some(thread),
        }
    }

    /// The unix socket path (panics for a TCP fake).
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        self.socket.as_deref().expect("a unix-socket fake")
    }

    /// What to put in `DSTACK_SIMULATOR_ENDPOINT`: the socket path or `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Entries added after boot (the runtime events the launcher emitted).
    #[must_use]
    pub fn events(&self) -> Vec<Entry> {
        let state = self.shared.state();
        state.log[state.boot_len..].to_vec()
    }

    /// The whole log: RTMR0–2 entries, dstack's boot events, then emitted events.
    #[must_use]
    pub fn all_events(&self) -> Vec<Entry> {
        let state = self.shared.state();
        self.shared
            .full_log(&state)
            .expect("the agent reads its log")
    }

    /// The register as the "hardware" holds it.
    #[must_use]
    pub fn rtmr3(&self) -> [u8; 48] {
        self.shared.settle_native();
        self.shared.state().rtmr3
    }

    /// Replay of every RTMR3 entry in the log equals the register.
    #[must_use]
    pub fn replay_ok(&self) -> bool {
        self.shared.settle_native();
        let state = self.shared.state();
        self.shared
            .full_log(&state)
            .is_ok_and(|log| replay_imr(&log, 3) == state.rtmr3)
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The register as the kernel sees it: what [`FakeRtmr3`] extends when linked to this
    /// agent. A native extension changes RTMR3 but not the agent's log, as on a real host.
    #[must_use]
    pub fn register(&self) -> Register {
        Register(Arc::clone(&self.shared))
    }

    /// Names of the methods called so far, in order.
    #[must_use]
    pub fn methods(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.method).collect()
    }
}

/// A handle on a fake agent's RTMR3 for native (kernel) extension.
#[derive(Clone)]
pub struct Register(Arc<Shared>);

impl Register {
    /// Extends RTMR3 with `digest` without a log entry: what writing the sysfs file does.
    pub fn extend_natively(&self, digest: &[u8; 48]) {
        self.0.extend(digest);
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
    }
}

fn accept_loop(listener: &Listener, shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(mut conn) => {
                if conn.set_timeouts(PEER_TIMEOUT).is_ok() {
                    handle(&mut *conn, shared);
                }
                conn.close();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// One connection: read one request, answer per mode, return (the caller closes).
fn handle(conn: &mut dyn Conn, shared: &Shared) {
    let Ok(request) = read_request(conn) else {
        return;
    };
    shared.state().requests.push(request.clone());
    match shared.mode {
        Mode::Silent => {
            while !shared.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(10));
            }
        }
        Mode::Garbage => {
            respond_raw(conn, "200 OK", "application/json", b"<html>oops</html>");
        }
        Mode::AlwaysProtobuf => respond_protobuf(conn),
        Mode::Protobuf if !request.is_json() => respond_protobuf(conn),
        Mode::Oversized => {
            let (status, body) = dispatch(&request, shared);
            respond_oversized(conn, status, &body, &shared.stop);
        }
        _ => {
            let (status, body) = dispatch(&request, shared);
            respond_raw(conn, status, "application/json", body.as_bytes());
        }
    }
}

/// The agent's answer: status line text and JSON body.
fn dispatch(request: &Request, shared: &Shared) -> (&'static str, String) {
    let body: serde_json::Value = if request.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(value) => value,
            Err(e) => return error(&format!("failed to decode request: {e}")),
        }
    };
    let mode = shared.mode;
    match request.method.as_str() {
        "Version" => ok(&serde_json::json!({"version": "0.5.11", "rev": "fake"})),
        "Info" => {
            shared.settle_native();
            let state = shared.state();
            match shared.full_log(&state) {
                Ok(log) => ok(&info(&state, &log)),
                Err(e) => error(&e),
            }
        }
        "GetQuote" => {
            let Some(report_data) = hex_field(&body, "report_data") else {
                return error("invalid report_data: not hex");
            };
            if report_data.len() > 64 {
                return error("report_data must be at most 64 bytes");
            }
            let mut padded = [0u8; 64];
            padded[..report_data.len()].copy_from_slice(&report_data);
            shared.settle_native();
            let state = shared.state();
            let stripped = mode == Mode::Stripped;
            let full = match shared.full_log(&state) {
                Ok(log) => log,
                Err(e) => return error(&e),
            };
            let log: Vec<EntryJson<'_>> = full.iter().map(|e| e.json(stripped)).collect();
            ok(&serde_json::json!({
                "quote": hex(&quote(&state, &padded)),
                "event_log": serde_json::to_string(&log).unwrap(),
                "report_data": hex(&padded),
                "vm_config": "{}",
            }))
        }
        "EmitEvent" => match mode {
            Mode::NoEmitEvent => error("Service not found: EmitEvent"),
            Mode::Simulator => error(SIMULATOR_ERROR),
            _ => {
                let Some(name) = body.get("event").and_then(serde_json::Value::as_str) else {
                    return error("invalid event: expected a string");
                };
                let Some(payload) = hex_field(&body, "payload") else {
                    return error("invalid payload: not hex");
                };
                if mode != Mode::DropsEvents {
                    let mut state = shared.state();
                    let entry = Entry::runtime(name, &payload);
                    state.rtmr3 = extend(&state.rtmr3, &entry.digest);
                    state.log.push(entry);
                }
                ("200 OK", "null".to_owned())
            }
        },
        other => error(&format!("Service not found: {other}")),
    }
}

fn ok(value: &serde_json::Value) -> (&'static str, String) {
    ("200 OK", value.to_string())
}

fn error(message: &str) -> (&'static str, String) {
    (
        "400 Bad Request",
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// A hex byte field; absent means empty (protobuf defaults), anything else not hex is `None`.
fn hex_field(body: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    match body.get(name) {
        None | Some(serde_json::Value::Null) => Some(Vec::new()),
        Some(serde_json::Value::String(text)) => unhex(text),
        Some(_) => None,
    }
}

fn info(state: &State, log: &[Entry]) -> serde_json::Value {
    let log: Vec<EntryJson<'_>> = log.iter().map(|e| e.json(false)).collect();
    let tcb_info = serde_json::json!({
        "mrtd": hex(&MRTD),
        "rtmr0": hex(&replay_imr(&state.log, 0)),
        "rtmr1": hex(&replay_imr(&state.log, 1)),
        "rtmr2": hex(&replay_imr(&state.log, 2)),
        "rtmr3": hex(&state.rtmr3),
        "event_log": log,
        "app_compose": "{}",
        "compose_hash": hex(&COMPOSE_HASH),
    });
    serde_json::json!({
        "app_id": hex(&APP_ID),
        "instance_id": hex(&INSTANCE_ID),
        "app_cert": "",
        "tcb_info": tcb_info.to_string(),
        "app_name": "fake",
        "device_id": hex(&DEVICE_ID),
        "key_provider_info": "",
        "compose_hash": hex(&COMPOSE_HASH),
    })
}

/// A v4 TDX quote with an empty signature: the registers as they are now.
fn quote(state: &State, report_data: &[u8; 64]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_MRTD..QUOTE_MRTD + 48].copy_from_slice(&MRTD);
    for (at, imr) in [
        (QUOTE_RTMR0, 0),
        (QUOTE_RTMR0 + 48, 1),
        (QUOTE_RTMR0 + 96, 2),
    ] {
        quote[at..at + 48].copy_from_slice(&replay_imr(&state.log, imr));
    }
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(&state.rtmr3);
    quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64].copy_from_slice(report_data);
    quote[632..636].copy_from_slice(&0u32.to_le_bytes());
    quote
}

/// dstack's boot events (name, payload), in the order an agent logs them.
#[must_use]
pub fn boot_runtime_events() -> Vec<(String, Vec<u8>)> {
    boot_log()
        .0
        .into_iter()
        .filter(|e| e.imr == 3)
        .map(|e| (e.event, e.payload))
        .collect()
}

/// RTMR0–2 entries (arbitrary digests, real event types) and dstack's boot events, in the
/// order a 0.5.x agent logs them; returns the log and its length.
fn boot_log() -> (Vec<Entry>, usize) {
    let log = vec![
        Entry::boot(0, 0x8000_000b, "td-hob", b"\x09TdxTable"),
        Entry::boot(0, 0x8000_000a, "cfv", b"XXXX-XXXX"),
        Entry::boot(0, 4, "separator-0", &[0, 0, 0, 0]),
        Entry::boot(1, 0x8000_0003, "efi-app", b"\x18\x60\xfd\x7a"),
        Entry::boot(
            1,
            0x8000_0007,
            "efi-action",
            b"Calling EFI Application from Boot Option",
        ),
        Entry::boot(2, 6, "kernel", b"LOADED_IMAGE::LoadOptions"),
        Entry::boot(2, 6, "initrd", b"Linux initrd"),
        Entry::runtime("system-preparing", b""),
        Entry::runtime("app-id", &APP_ID),
        Entry::runtime("compose-hash", &COMPOSE_HASH),
        Entry::runtime("instance-id", &INSTANCE_ID),
        Entry::runtime("boot-mr-done", b""),
        Entry::runtime("mr-kms", &MR_KMS),
        Entry::runtime("os-image-hash", &OS_IMAGE_HASH),
        Entry::runtime("key-provider", KEY_PROVIDER.as_bytes()),
        Entry::runtime("storage-fs", b"zfs"),
        Entry::runtime("system-ready", b""),
    ];
    let len = log.len();
    (log, len)
}

/// `SHA384(le_u32(0x08000001) || ":" || name || ":" || payload)` (DESIGN §4, v1).
#[must_use]
pub fn v1_digest(name: &str, payload: &[u8]) -> [u8; 48] {
    let mut hasher = Sha384::new();
    hasher.update(EVENT_TYPE.to_le_bytes());
    hasher.update(b":");
    hasher.update(name.as_bytes());
    hasher.update(b":");
    hasher.update(payload);
    hasher.finalize().into()
}

/// `SHA384(register || digest)`.
#[must_use]
pub fn extend(register: &[u8; 48], digest: &[u8; 48]) -> [u8; 48] {
    let mut hasher = Sha384::new();
    hasher.update(register);
    hasher.update(digest);
    hasher.finalize().into()
}

/// Replay from zeros over the digests, in order.
#[must_use]
pub fn replay<'a>(digests: impl IntoIterator<Item = &'a [u8; 48]>) -> [u8; 48] {
    digests
        .into_iter()
        .fold([0u8; 48], |acc, d| extend(&acc, d))
}

fn replay_imr(log: &[Entry], imr: u32) -> [u8; 48] {
    replay(log.iter().filter(|e| e.imr == imr).map(|e| &e.digest))
}

/// Replays a dstack JSON event log (as `GetQuote` returns it): RTMR3 entries only, an empty
/// digest recomputed from name and payload, as a verifier must for stripped logs.
#[must_use]
pub fn replay_json_log(log: &[serde_json::Value]) -> [u8; 48] {
    let digests: Vec<[u8; 48]> = log
        .iter()
        .filter(|e| e["imr"] == 3)
        .map(|e| {
            let digest = e["digest"].as_str().unwrap();
            if digest.is_empty() {
                let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
                v1_digest(e["event"].as_str().unwrap(), &payload)
            } else {
                unhex(digest).unwrap().try_into().unwrap()
            }
        })
        .collect();
    replay(&digests)
}

/// Lowercase hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Hex to bytes; either case, even length, or `None`.
#[must_use]
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Reads one HTTP/1.1 request: head, then a `Content-Length` or chunked body.
fn read_request(conn: &mut dyn Conn) -> io::Result<Request> {
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

fn respond_raw(conn: &mut dyn Conn, status: &str, content_type: &str, body: &[u8]) {
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
fn respond_protobuf(conn: &mut dyn Conn) {
    respond_raw(
        conn,
        "200 OK",
        "application/protobuf",
        b"\x0a\x060.5.11\x12\x04fake",
    );
}

/// Declares and sends [`OVERSIZED_BYTES`]: whitespace, then the normal body. A client
/// without a size cap would accept it; stops writing when the client hangs up.
fn respond_oversized(conn: &mut dyn Conn, status: &str, body: &str, stop: &AtomicBool) {
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

/// A named pipe standing in for sysfs `rtmr3:sha384`: a thread reads whatever each writer
/// sends, so every write is recorded, in order; linked to a [`Register`], each 48 bytes
/// extend it, as the kernel does. Stopped on drop.
pub struct FakeRtmr3 {
    path: PathBuf,
    register: Option<Register>,
    stop: Arc<AtomicBool>,
    fifo: Arc<Mutex<FifoState>>,
    opens: Arc<Mutex<Vec<Open>>>,
    thread: Option<JoinHandle<()>>,
}

/// What was true when a writer opened the fake file: how many bytes had been written before,
/// and how many lines the watched event log held at that moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Open {
    pub bytes_before: usize,
    pub log_lines: usize,
}

impl FakeRtmr3 {
    pub fn start(path: &Path) -> Self {
        Self::start_with(path, None, None)
    }

    /// As [`FakeRtmr3::start`], extending `register` with every 48 bytes written, and
    /// noting how many lines `event_log` has each time a writer opens the file (see
    /// [`FakeRtmr3::opens`]).
    pub fn start_linked(path: &Path, register: Register, event_log: &Path) -> Self {
        Self::start_with(path, Some(register), Some(event_log.to_owned()))
    }

    fn start_with(path: &Path, register: Option<Register>, event_log: Option<PathBuf>) -> Self {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("spawn mkfifo");
        assert!(status.success(), "mkfifo {}", path.display());
        let stop = Arc::new(AtomicBool::new(false));
        let keeper = {
            use std::os::unix::fs::OpenOptionsExt as _;
            const O_NONBLOCK: i32 = 0o4000; // Linux
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(O_NONBLOCK)
                .open(path)
                .expect("open the FIFO's keeper read end")
        };
        let fifo = Arc::new(Mutex::new(FifoState {
            keeper: Some(keeper),
            ..FifoState::default()
        }));
        let opens = Arc::new(Mutex::new(Vec::new()));
        if let Some(register) = &register {
            *lock(&register.0.native) = Some(NativeLink {
                path: path.to_owned(),
                fifo: Arc::clone(&fifo),
            });
        }
        let register_handle = register.clone();
        let thread = {
            let (path, stop, fifo, opens) = (
                path.to_owned(),
                Arc::clone(&stop),
                Arc::clone(&fifo),
                Arc::clone(&opens),
            );
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // Counted before the next writer can write (the agent may drain it).
                    let bytes_before = lock(&fifo).received.len();
                    // Blocks until a writer opens; reads until every writer has closed.
                    let Ok(mut reader) = std::fs::File::open(&path) else {
                        return;
                    };
                    // The writer is now extending: whatever it logs first is already there.
                    if let Some(log) = &event_log {
                        let log_lines =
                            std::fs::read_to_string(log).map_or(0, |t| t.lines().count());
                        lock(&opens).push(Open {
                            bytes_before,
                            log_lines,
                        });
                    }
                    // Read under the lock: the agent may drain the FIFO itself, in order.
                    let mut state = lock(&fifo);
                    let mut chunk = Vec::new();
                    let _ = reader.read_to_end(&mut chunk);
                    state.absorb(&chunk, |digest| {
                        if let Some(register) = &register {
                            register.extend_natively(digest);
                        }
                    });
                }
            })
        };
        Self {
            path: path.to_owned(),
            register: register_handle,
            stop,
            fifo,
            opens,
            thread: Some(thread),
        }
    }

    /// One record per reader session that a writer opened (writers that open while the
    /// reader is still reading share one record).
    #[must_use]
    pub fn opens(&self) -> Vec<Open> {
        lock(&self.opens).clone()
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every byte written so far, in order.
    #[must_use]
    pub fn received(&self) -> Vec<u8> {
        let mut fifo = lock(&self.fifo);
        let register = self.register.clone();
        fifo.drain(|digest| {
            if let Some(register) = &register {
                register.extend_natively(digest);
            }
        });
        fifo.received.clone()
    }
}

impl Drop for FakeRtmr3 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Bounded: a reader that never ends is left behind rather than hanging the test.
            for _ in 0..500 {
                if thread.is_finished() {
                    let _ = thread.join();
                    return;
                }
                // On Linux opening a FIFO read-write never blocks, and it releases a reader
                // blocked in open; closing it at once gives that reader end-of-file.
                let _ = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path);
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}
