//! The server: the unix-socket or TCP listener, the agent's lifetime, its register handle,
//! and the accept loop that answers each connection.

use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::api::dispatch;
use super::event_log::{Entry, boot_log, replay_imr};
use super::wire::{Conn, Request, read_request, respond_oversized, respond_protobuf, respond_raw};
use super::{Mode, PEER_TIMEOUT, RuntimeLog, Shared, State};

pub(super) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    pub(super) fn accept(&self) -> io::Result<Box<dyn Conn>> {
        Ok(match self {
            Self::Unix(l) => Box::new(l.accept()?.0),
            Self::Tcp(l) => Box::new(l.accept()?.0),
        })
    }
}

/// The fake agent; serves on a background thread until dropped.
pub struct FakeAgent {
    pub(super) shared: Arc<Shared>,
    pub(super) endpoint: String,
    pub(super) socket: Option<PathBuf>,
    pub(super) thread: Option<JoinHandle<()>>,
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

    pub(super) fn serve(
        listener: Listener,
        mode: Mode,
        endpoint: String,
        socket: Option<PathBuf>,
    ) -> Self {
        Self::serve_with(listener, mode, endpoint, socket, None)
    }

    pub(super) fn serve_with(
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
pub struct Register(pub(super) Arc<Shared>);

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

pub(super) fn accept_loop(listener: &Listener, shared: &Shared) {
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
pub(super) fn handle(conn: &mut dyn Conn, shared: &Shared) {
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
