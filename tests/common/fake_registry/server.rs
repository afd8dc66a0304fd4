//! The server: a loopback listener, its accept loop and connections, the registry's
//! lifetime, and what tests read back (recorded requests).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::content::{Blob, Image, MultiArch};
use super::request::{Request, read_request};
use super::routes::handle;
use super::{Auth, Mode, PEER_TIMEOUT, REPOSITORY, Shared, State};

/// The fake registry; serves on background threads until dropped.
pub struct FakeRegistry {
    pub(super) shared: Arc<Shared>,
    pub(super) addr: SocketAddr,
    pub(super) thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    /// Serves on `127.0.0.1:<free port>`.
    #[must_use]
    pub fn start(mode: Mode) -> Self {
        Self::start_on("127.0.0.1:0", mode)
    }

    /// Serves on `bind` (another loopback address, say; tests here never leave loopback).
    pub fn start_on(bind: impl ToSocketAddrs, mode: Mode) -> Self {
        let listener = TcpListener::bind(bind).expect("bind fake registry port");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                mode,
                auth: None,
                realm: None,
                manifests: HashMap::new(),
                blobs: HashMap::new(),
                tokens: HashMap::new(),
                requests: Vec::new(),
                garbage: 0,
                manifest_hits: 0,
            }),
        });
        // Non-blocking accept polled with a short sleep: drop stops the thread without a
        // wake-up connection that could itself block.
        listener.set_nonblocking(true).unwrap();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || accept_loop(&listener, &shared))
        };
        Self {
            shared,
            addr,
            thread: Some(thread),
        }
    }

    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port`, as it appears in an image reference.
    #[must_use]
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `host:port/team/app`: the `reference` of an `[image]` config.
    #[must_use]
    pub fn reference(&self) -> String {
        format!("{}/{REPOSITORY}", self.host())
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.state().mode = mode;
    }

    /// Requires bearer tokens from `/token` on every `/v2` request.
    pub fn set_auth(&self, auth: Auth) {
        self.shared.state().auth = Some(auth);
    }

    /// Names another token realm in challenges (default: this registry's `/token`).
    pub fn set_realm(&self, realm: &str) {
        self.shared.state().realm = Some(realm.to_owned());
    }

    pub fn push_manifest(&self, manifest: &Blob) {
        self.shared
            .state()
            .manifests
            .insert(manifest.digest(), manifest.clone());
    }

    /// Serves `manifest` under a tag as well (cosign's `sha256-<hex>.sig`, say).
    pub fn push_tag(&self, tag: &str, manifest: &Blob) {
        self.shared
            .state()
            .manifests
            .insert(tag.to_owned(), manifest.clone());
    }

    /// Answers the referrers API for `subject` with `index`.
    pub fn push_referrers(&self, subject: &str, index: &Blob) {
        self.shared
            .state()
            .manifests
            .insert(format!("referrers/{subject}"), index.clone());
    }

    /// Stores one blob (a signature payload, say).
    pub fn push_blob(&self, blob: &Blob) {
        self.shared
            .state()
            .blobs
            .insert(blob.digest(), blob.clone());
    }

    /// Stores the image's manifest, config and layer.
    pub fn push_image(&self, image: &Image) {
        self.push_manifest(&image.manifest);
        let mut state = self.shared.state();
        for blob in [&image.config, &image.layer] {
            state.blobs.insert(blob.digest(), blob.clone());
        }
    }

    /// Stores the index and every image it lists.
    pub fn push_multi(&self, multi: &MultiArch) {
        self.push_manifest(&multi.index);
        for image in [&multi.amd64, &multi.arm64]
            .into_iter()
            .chain(&multi.attestations)
        {
            self.push_image(image);
        }
    }

    /// Every request received so far, in order.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    #[must_use]
    pub fn manifest_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_manifest)
            .collect()
    }

    #[must_use]
    pub fn token_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(Request::is_token)
            .collect()
    }

    /// Connections that did not start with an HTTP request line (a TLS handshake, say).
    #[must_use]
    pub fn garbage_connections(&self) -> usize {
        self.shared.state().garbage
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub(super) fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(shared);
                connections.push(thread::spawn(move || serve_connection(stream, &shared)));
                connections.retain(|c| !c.is_finished());
            }
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    // Every connection thread watches `stop`; wait a bounded time, then leave stragglers
    // (a peer stuck in a write times out on its own after PEER_TIMEOUT).
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && connections.iter().any(|c| !c.is_finished()) {
        thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(PEER_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(PEER_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(request) = read_request(&mut stream) else {
        shared.state().garbage += 1;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    };
    shared.state().requests.push(request.clone());
    handle(&mut stream, &request, shared);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Let the client read to end-of-file before the socket is closed under it.
    let mut sink = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}
