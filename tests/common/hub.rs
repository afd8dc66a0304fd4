//! A Docker Hub stand-in on `127.0.0.1:443` (TLS, one certificate naming every host, from
//! a CA made at test time) and `127.0.0.1:80` (plain), routed by `Host`, for a launcher
//! whose `/etc/hosts` maps Hub's names here. What it emulates, and where that is from:
//! - `registry-1.docker.io` serves `/v2/` with token auth: a 401 carrying
//!   `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope=…`
//!   (Docker's registry token spec, distribution `docs/spec/auth/token.md`); blobs are
//!   answered with a 307 to object storage (Hub's CDN, `production.cloudflare.docker.com`);
//!   rate limits are a 429 with `Retry-After` (Docker docs, "Docker Hub usage and limits").
//! - `auth.docker.io` issues tokens only for service `registry.docker.io`.
//! - `docker.io` and `index.docker.io` answer everything with a 301 to the web site, as
//!   `https://docker.io/v2/` does.
//! - The storage host refuses any request carrying `Authorization` with S3's 400
//!   "Only one auth mechanism allowed" (S3 error `InvalidArgument` for a presigned URL
//!   plus an `Authorization` header).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::fake_registry::{Blob, Image};

pub const REGISTRY: &str = "registry-1.docker.io";
pub const AUTH: &str = "auth.docker.io";
pub const STORAGE: &str = "production.cloudflare.docker.com";
/// Every name the launcher's `/etc/hosts` maps to 127.0.0.1.
pub const HOSTS: [&str; 5] = [REGISTRY, AUTH, "docker.io", "index.docker.io", STORAGE];
pub const TOKEN: &str = "hub-test-token";
pub const S3_REFUSAL: &str = "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified</Message></Error>";

/// Where blob downloads are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `n` redirects over HTTPS, the last one landing on storage.
    Hops(usize),
    /// One redirect to storage over plain HTTP.
    PlainHttp,
}

/// One request as the stand-in saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub tls: bool,
    pub host: String,
    pub target: String,
    pub authorization: Option<String>,
    pub at: Instant,
}

struct State {
    repositories: HashSet<String>,
    blobs: HashMap<String, Blob>,
    seen: Vec<Seen>,
    route: Route,
    redirect_manifests: bool,
    /// Manifest requests are answered 429 with this `Retry-After` until the instant passes.
    rate_limit: Option<(String, Duration)>,
    limited_until: Option<Instant>,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

pub struct Hub {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    ca: PathBuf,
}

/// Hub tests share ports 443 and 80: one at a time.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static PORTS: Mutex<()> = Mutex::new(());
    PORTS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// Serves until dropped; certificates are made in `dir`.
    pub fn start(dir: &Path) -> Self {
        let ca = certificates(dir);
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(dir.join("hub.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(dir.join("hub.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        );
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                repositories: HashSet::new(),
                blobs: HashMap::new(),
                seen: Vec::new(),
                route: Route::Hops(1),
                redirect_manifests: false,
                rate_limit: None,
                limited_until: None,
            }),
        });
        let mut threads = Vec::new();
        for (port, tls) in [(443, Some(tls)), (80, None)] {
            let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind a Hub port");
            listener.set_nonblocking(true).unwrap();
            let shared = Arc::clone(&shared);
            threads.push(thread::spawn(move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (shared, tls) = (Arc::clone(&shared), tls.clone());
                            thread::spawn(move || serve(stream, tls, &shared));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            }));
        }
        Self {
            shared,
            threads,
            ca,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// Stores `image` under `repository` (as Hub spells it: `library/nginx`).
    pub fn push(&self, repository: &str, image: &Image) {
        let mut state = self.state();
        state.repositories.insert(repository.to_owned());
        for blob in [&image.manifest, &image.config, &image.layer] {
            state.blobs.insert(blob.digest(), blob.clone());
        }
    }

    pub fn route(&self, route: Route, manifests_too: bool) {
        let mut state = self.state();
        state.route = route;
        state.redirect_manifests = manifests_too;
    }

    /// Manifest requests get 429 with `retry_after` for `window` from the first one.
    pub fn rate_limit(&self, retry_after: &str, window: Duration) {
        self.state().rate_limit = Some((retry_after.to_owned(), window));
    }

    pub fn limited_until(&self) -> Option<Instant> {
        self.state().limited_until
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args:?}");
}

/// A CA (`hub-ca.pem`) and, signed by it, `hub.pem`/`hub.key` naming every host.
fn certificates(dir: &Path) -> PathBuf {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=hub-test-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "hub-ca.key", "-out", "hub-ca.pem"]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-subj", "/CN=registry-1.docker.io"];
    csr.extend(ec);
    csr.extend(["-keyout", "hub.key", "-out", "hub.csr"]);
    openssl(dir, &csr);
    let names: Vec<String> = HOSTS.iter().map(|h| format!("DNS:{h}")).collect();
    std::fs::write(
        dir.join("ext.cnf"),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            names.join(",")
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "hub.csr",
            "-CA",
            "hub-ca.pem",
            "-CAkey",
            "hub-ca.key",
            "-CAcreateserial",
            "-extfile",
            "ext.cnf",
            "-out",
            "hub.pem",
        ],
    );
    dir.join("hub-ca.pem")
}

fn serve(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    if let Some(config) = tls {
        let Ok(connection) = rustls::ServerConnection::new(config) else {
            return;
        };
        let mut stream = rustls::StreamOwned::new(connection, stream);
        exchange(&mut stream, true, shared);
        stream.conn.send_close_notify();
        let _ = stream.flush();
    } else {
        let mut stream = stream;
        exchange(&mut stream, false, shared);
    }
}

/// Reads one request head, answers it, and closes.
fn exchange(stream: &mut impl ReadWrite, tls: bool, shared: &Shared) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let host = header("Host")
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let seen = Seen {
        tls,
        host,
        target,
        authorization: header("Authorization"),
        at: Instant::now(),
    };
    let (status, headers, body) = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.seen.push(seen.clone());
        answer(&mut state, &seen)
    };
    let mut reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        reply = reply + &name + ": " + &value + "\r\n";
    }
    reply.push_str("\r\n");
    let _ = stream.write_all(reply.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.flush();
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);

fn text(status: u16, body: &str) -> Reply {
    (status, Vec::new(), body.as_bytes().to_vec())
}

fn redirect(to: String) -> Reply {
    (307, vec![("Location".to_owned(), to)], Vec::new())
}

fn answer(state: &mut State, seen: &Seen) -> Reply {
    let path = seen.target.split('?').next().unwrap_or_default();
    match seen.host.as_str() {
        "docker.io" | "index.docker.io" => (
            301,
            vec![("Location".into(), "https://www.docker.com/".into())],
            Vec::new(),
        ),
        AUTH if path == "/token" => {
            if seen.target.contains("service=registry.docker.io") {
                text(
                    200,
                    &format!("{{\"token\":\"{TOKEN}\",\"access_token\":\"{TOKEN}\"}}"),
                )
            } else {
                text(400, "{\"details\":\"unknown service\"}")
            }
        }
        STORAGE => {
            if seen.authorization.is_some() {
                return text(400, S3_REFUSAL);
            }
            // `/hop/<n>/<digest>`: n more redirects before the content.
            let mut parts = path.trim_start_matches('/').splitn(3, '/');
            let (_, hops, digest) = (parts.next(), parts.next(), parts.next().unwrap_or_default());
            match hops.and_then(|h| h.parse::<usize>().ok()) {
                Some(n) if n > 1 => redirect(format!("https://{STORAGE}/hop/{}/{digest}", n - 1)),
                _ => match state.blobs.get(digest) {
                    Some(blob) => (
                        200,
                        vec![("Content-Type".into(), blob.media_type.clone())],
                        blob.bytes.clone(),
                    ),
                    None => text(404, "no such object"),
                },
            }
        }
        REGISTRY => registry(state, seen, path),
        _ => text(421, "misdirected"),
    }
}

fn registry(state: &mut State, seen: &Seen, path: &str) -> Reply {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return text(404, "not found");
    };
    let (repository, kind, digest) =
        match (rest.rsplit_once("/manifests/"), rest.rsplit_once("/blobs/")) {
            (Some((r, d)), _) => (r, "manifests", d),
            (None, Some((r, d))) => (r, "blobs", d),
            _ => return text(404, "not found"),
        };
    if seen.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        let challenge = format!(
            "Bearer realm=\"https://{AUTH}/token\",service=\"registry.docker.io\",scope=\"repository:{repository}:pull\""
        );
        return (
            401,
            vec![("WWW-Authenticate".into(), challenge)],
            Vec::new(),
        );
    }
    if kind == "manifests"
        && let Some((retry_after, window)) = state.rate_limit.clone()
    {
        let until = *state.limited_until.get_or_insert(seen.at + window);
        if seen.at < until {
            return (
                429,
                vec![("Retry-After".into(), retry_after)],
                b"{\"errors\":[{\"code\":\"TOOMANYREQUESTS\"}]}".to_vec(),
            );
        }
    }
    if !state.repositories.contains(repository) {
        return text(404, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}");
    }
    if kind == "blobs" || state.redirect_manifests {
        return match state.route {
            Route::Hops(n) => redirect(format!(
                "https://{STORAGE}/hop/{n}/{digest}?X-Amz-Signature=sig"
            )),
            Route::PlainHttp => redirect(format!("http://{STORAGE}/hop/1/{digest}")),
        };
    }
    match state.blobs.get(digest) {
        Some(blob) => (
            200,
            vec![("Content-Type".into(), blob.media_type.clone())],
            blob.bytes.clone(),
        ),
        None => text(404, "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\"}]}"),
    }
}
