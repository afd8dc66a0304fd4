//! A fake OCI registry (DESIGN §6): HTTP/1.1 on loopback TCP serving the subset of the
//! distribution API a resolver uses (`/v2/`, manifests and blobs by digest), with bearer-token
//! auth discovered from `WWW-Authenticate`, and modes that reproduce hostile or broken
//! registries: a body that does not match the requested digest, oversized bodies, 401 loops,
//! silent or trickling replies, transient 503s, 404s, and a registry that rewrites an index to
//! one platform's manifest when the client's `Accept` lacks the index types. Every request is
//! recorded so tests can check what the launcher sent.
//!
//! Manifests are real JSON built here with `serde_json`; digests are SHA-256 of the exact
//! stored bytes, computed with `sha2` independently of the crate's own digest code.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The four types a client must always accept (DESIGN §6).
pub const ACCEPT_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];
/// The one repository this registry holds.
pub const REPOSITORY: &str = "team/app";
/// The `service` of the token challenge.
pub const SERVICE: &str = "fake-registry";
/// Size of an [`Mode::Oversized`] body: more than 8 MiB.
pub const OVERSIZED_BYTES: usize = 8 * 1024 * 1024 + 4096;

/// How long the fake waits on a peer: a stuck client never stalls the fake for long.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);
/// When a [`Mode::Slow`] registry finally answers.
const SLOW_REPLY_AFTER: Duration = Duration::from_secs(60);
/// Pause between bytes of a [`Mode::Trickle`] body.
const TRICKLE_EVERY: Duration = Duration::from_millis(500);
const MAX_REQUEST_HEAD: usize = 64 * 1024;
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// How the fake behaves on manifest requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A well-behaved registry (strict about `Accept`, as distribution is for OCI indexes:
    /// a manifest whose type the client did not accept is answered 404).
    Normal,
    /// Every manifest is served as different valid JSON (an extra annotation), with
    /// `Docker-Content-Digest` still claiming the requested digest.
    WrongBody,
    /// As [`Mode::WrongBody`], for one digest only (e.g. the platform manifest behind an index).
    WrongBodyFor(String),
    /// Every manifest is padded with leading whitespace to [`OVERSIZED_BYTES`], declared
    /// honestly in `Content-Length`.
    Oversized,
    /// 401 with a challenge on every `/v2` request, even with a valid token.
    AuthLoop,
    /// Manifest requests are read and not answered for 60 s (or until drop).
    Slow,
    /// Manifest replies send their head at once, then one body byte every 500 ms.
    Trickle,
    /// The first `n` manifest requests answer 503, later ones are normal.
    Flaky(usize),
    /// Every manifest request answers 404 with an OCI error body.
    NotFound,
    /// When `Accept` lacks an index's media type, answers with its linux/amd64 manifest
    /// instead (bytes, type and digest of that manifest), as Docker Hub does for manifest
    /// lists asked for with only the Docker v2 type.
    RewriteToPlatform,
}

/// Token auth settings: which Basic credentials the token endpoint accepts.
#[derive(Clone, Debug, Default)]
pub struct Auth {
    pub credentials: Option<(String, String)>,
    pub anonymous: bool,
}

impl Auth {
    /// Tokens only for `user`/`password`.
    #[must_use]
    pub fn password(user: &str, password: &str) -> Self {
        Self {
            credentials: Some((user.to_owned(), password.to_owned())),
            anonymous: false,
        }
    }

    /// Tokens for anyone (as Docker Hub and GHCR for public images).
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            credentials: None,
            anonymous: true,
        }
    }
}

/// Manifest media types: OCI or Docker v2 schema 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

impl Flavor {
    fn manifest(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
        }
    }

    fn index(self) -> &'static str {
        match self {
            Self::Oci => OCI_INDEX,
            Self::Docker => DOCKER_LIST,
        }
    }

    fn config(self) -> &'static str {
        match self {
            Self::Oci => "application/vnd.oci.image.config.v1+json",
            Self::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }

    fn layer(self) -> &'static str {
        match self {
            Self::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            Self::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// Stored bytes and their media type; the digest is SHA-256 of exactly these bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    fn json(media_type: &str, value: &Value) -> Self {
        Self {
            media_type: media_type.to_owned(),
            bytes: serde_json::to_vec(value).unwrap(),
        }
    }

    /// `sha256:<64 lowercase hex>` of the bytes.
    #[must_use]
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
        })
    }
}

/// `sha256:<hex>` of `bytes`.
#[must_use]
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", super::hex(&Sha256::digest(bytes)))
}

/// An image for one platform: manifest, config blob and one layer.
#[derive(Clone, Debug)]
pub struct Image {
    /// `os/architecture[/variant]`, as listed in an index.
    pub platform: String,
    pub manifest: Blob,
    pub config: Blob,
    pub layer: Blob,
    /// Annotations on this image's entry in an index.
    pub annotations: Option<Value>,
}

impl Image {
    /// A single-platform image whose content depends on `seed`.
    #[must_use]
    pub fn new(flavor: Flavor, platform: &str, seed: &str) -> Self {
        let layer = Blob {
            media_type: flavor.layer().to_owned(),
            bytes: format!("layer of {seed} for {platform}\n").into_bytes(),
        };
        let mut parts = platform.split('/');
        let os = parts.next().unwrap();
        let architecture = parts.next().unwrap();
        let mut config = json!({
            "architecture": architecture,
            "os": os,
            "config": {"Cmd": ["/bin/marker", seed], "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
            "history": [{"created_by": format!("fake-registry build {seed}")}],
        });
        if let Some(variant) = parts.next() {
            config["variant"] = json!(variant);
        }
        let config = Blob::json(flavor.config(), &config);
        let manifest = Blob::json(
            flavor.manifest(),
            &json!({
                "schemaVersion": 2,
                "mediaType": flavor.manifest(),
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }),
        );
        Self {
            platform: platform.to_owned(),
            manifest,
            config,
            layer,
            annotations: None,
        }
    }

    /// The attestation manifest buildkit adds to an index for `subject`: an OCI manifest with
    /// an in-toto layer, listed with platform `unknown/unknown`.
    #[must_use]
    pub fn attestation_for(subject: &Self) -> Self {
        let layer = Blob {
            media_type: "application/vnd.in-toto+json".to_owned(),
            bytes: serde_json::to_vec(&json!({
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://slsa.dev/provenance/v0.2",
                "subject": [{"name": "_", "digest": {"sha256": subject.digest_hex()}}],
                "predicate": {"builder": {"id": "fake-registry"}},
            }))
            .unwrap(),
        };
        let config = Blob::json(
            "application/vnd.oci.image.config.v1+json",
            &json!({
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest()]},
            }),
        );
        let mut layer_descriptor = layer.descriptor();
        layer_descriptor["annotations"] =
            json!({"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"});
        let manifest = Blob::json(
            OCI_MANIFEST,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer_descriptor],
            }),
        );
        Self {
            platform: "unknown/unknown".to_owned(),
            manifest,
            config,
            layer,
            annotations: Some(json!({
                "vnd.docker.reference.digest": subject.digest(),
                "vnd.docker.reference.type": "attestation-manifest",
            })),
        }
    }

    /// An image whose manifest is larger than [`OVERSIZED_BYTES`] yet honest: a huge
    /// annotation, and the digest of the whole body.
    #[must_use]
    pub fn oversized(flavor: Flavor, seed: &str) -> Self {
        let mut image = Self::new(flavor, "linux/amd64", seed);
        let mut manifest: Value = serde_json::from_slice(&image.manifest.bytes).unwrap();
        manifest["annotations"] = json!({"org.example.padding": "x".repeat(OVERSIZED_BYTES)});
        image.manifest = Blob::json(flavor.manifest(), &manifest);
        image
    }

    #[must_use]
    pub fn digest(&self) -> String {
        self.manifest.digest()
    }

    #[must_use]
    pub fn digest_hex(&self) -> String {
        self.digest().trim_start_matches("sha256:").to_owned()
    }

    #[must_use]
    pub fn config_digest(&self) -> String {
        self.config.digest()
    }

    fn index_entry(&self) -> Value {
        let mut parts = self.platform.split('/');
        let mut platform = json!({
            "architecture": parts.clone().nth(1).unwrap(),
            "os": parts.next().unwrap(),
        });
        if let Some(variant) = parts.nth(1) {
            platform["variant"] = json!(variant);
        }
        let mut entry = self.manifest.descriptor();
        entry["platform"] = platform;
        if let Some(annotations) = &self.annotations {
            entry["annotations"] = annotations.clone();
        }
        entry
    }
}

/// An index (OCI) or manifest list (Docker) over `images`, in the order given.
#[must_use]
pub fn index(flavor: Flavor, images: &[&Image]) -> Blob {
    Blob::json(
        flavor.index(),
        &json!({
            "schemaVersion": 2,
            "mediaType": flavor.index(),
            "manifests": images.iter().map(|i| i.index_entry()).collect::<Vec<_>>(),
        }),
    )
}

/// A multi-platform image: linux/amd64 and linux/arm64/v8, and with buildkit's provenance
/// an attestation manifest per platform, listed after them.
#[derive(Clone, Debug)]
pub struct MultiArch {
    pub index: Blob,
    pub amd64: Image,
    pub arm64: Image,
    pub attestations: Vec<Image>,
}

impl MultiArch {
    /// What `docker buildx build --platform linux/amd64,linux/arm64 --provenance` pushes: an
    /// OCI index with attestation manifests.
    #[must_use]
    pub fn buildkit(seed: &str) -> Self {
        let amd64 = Image::new(Flavor::Oci, "linux/amd64", seed);
        let arm64 = Image::new(Flavor::Oci, "linux/arm64/v8", seed);
        let attestations = vec![
            Image::attestation_for(&amd64),
            Image::attestation_for(&arm64),
        ];
        let index = index(
            Flavor::Oci,
            &[&amd64, &arm64, &attestations[0], &attestations[1]],
        );
        Self {
            index,
            amd64,
            arm64,
            attestations,
        }
    }

    /// A Docker manifest list over two Docker v2 schema 2 manifests.
    #[must_use]
    pub fn docker(seed: &str) -> Self {
        let amd64 = Image::new(Flavor::Docker, "linux/amd64", seed);
        let arm64 = Image::new(Flavor::Docker, "linux/arm64/v8", seed);
        let index = index(Flavor::Docker, &[&amd64, &arm64]);
        Self {
            index,
            amd64,
            arm64,
            attestations: Vec::new(),
        }
    }

    #[must_use]
    pub fn digest(&self) -> String {
        self.index.digest()
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
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

    /// The path without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// Every value of query parameter `key`, percent-decoded.
    #[must_use]
    pub fn query(&self, key: &str) -> Vec<String> {
        let Some((_, query)) = self.target.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(k, _)| percent_decode(k) == key)
            .map(|(_, v)| percent_decode(v))
            .collect()
    }

    /// Media types of every `Accept` header, parameters dropped.
    #[must_use]
    pub fn accept_types(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// `Authorization: Basic` credentials, decoded.
    #[must_use]
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// `Authorization: Bearer` token.
    #[must_use]
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    #[must_use]
    pub fn is_manifest(&self) -> bool {
        self.path().starts_with("/v2/") && self.path().contains("/manifests/")
    }

    #[must_use]
    pub fn is_blob(&self) -> bool {
        self.path().starts_with("/v2/") && self.path().contains("/blobs/")
    }

    #[must_use]
    pub fn is_token(&self) -> bool {
        self.path() == "/token"
    }

    /// The reference (digest or tag) of a manifest request.
    #[must_use]
    pub fn manifest_reference(&self) -> Option<&str> {
        self.path()
            .rsplit_once("/manifests/")
            .map(|(_, reference)| reference)
    }
}

struct State {
    mode: Mode,
    auth: Option<Auth>,
    realm: Option<String>,
    /// Manifests by digest.
    manifests: HashMap<String, Blob>,
    /// Config and layer blobs by digest.
    blobs: HashMap<String, Blob>,
    /// Issued tokens and the scope each was issued for.
    tokens: HashMap<String, String>,
    requests: Vec<Request>,
    /// Connections that did not open with an HTTP request (e.g. a TLS `ClientHello`).
    garbage: usize,
    /// Manifest requests that got past auth (what [`Mode::Flaky`] counts).
    manifest_hits: usize,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic on a serving thread must not hide the state from the test.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fake registry; serves on background threads until dropped.
pub struct FakeRegistry {
    shared: Arc<Shared>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
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

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
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

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
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

/// A reply about to be written.
struct Reply {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: &'static str, value: &Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type", "application/json".to_owned())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }

    /// An OCI distribution error body.
    fn error(status: &'static str, code: &str, message: &str, detail: &str) -> Self {
        Self::json(
            status,
            &json!({"errors": [{"code": code, "message": message, "detail": detail}]}),
        )
    }
}

fn handle(stream: &mut TcpStream, request: &Request, shared: &Shared) {
    let head_only = request.method == "HEAD";
    let path = request.path().to_owned();
    if request.is_token() {
        return write_reply(stream, &token(request, shared), head_only);
    }
    if !(path == "/v2" || path.starts_with("/v2/")) {
        return write_reply(
            stream,
            &Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            head_only,
        );
    }
    let rest = path.trim_start_matches("/v2").trim_start_matches('/');
    let (name, kind, reference) = if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        (name, "manifests", reference)
    } else if let Some((name, reference)) = rest.rsplit_once("/blobs/") {
        (name, "blobs", reference)
    } else if let Some((name, reference)) = rest.rsplit_once("/referrers/") {
        (name, "referrers", reference)
    } else {
        ("", "", rest)
    };
    if let Some(reply) = challenge(request, shared, (!name.is_empty()).then_some(name)) {
        return write_reply(stream, &reply, head_only);
    }
    if rest.is_empty() {
        return write_reply(stream, &Reply::json("200 OK", &json!({})), head_only);
    }
    if name != REPOSITORY {
        return write_reply(
            stream,
            &Reply::error(
                "404 Not Found",
                "NAME_UNKNOWN",
                "repository name not known to registry",
                name,
            ),
            head_only,
        );
    }
    match kind {
        "manifests" => manifest(stream, request, reference, shared),
        "blobs" => {
            let blob = shared.state().blobs.get(reference).cloned();
            let reply = match blob {
                Some(blob) => Reply {
                    status: "200 OK",
                    headers: vec![
                        ("Content-Type", "application/octet-stream".to_owned()),
                        ("Docker-Content-Digest", blob.digest()),
                    ],
                    body: blob.bytes,
                },
                None => Reply::error("404 Not Found", "BLOB_UNKNOWN", "blob unknown", reference),
            };
            write_reply(stream, &reply, head_only);
        }
        // OCI distribution 1.1's referrers API: an index, 200 even when empty; served only
        // for subjects given to `push_referrers` (else 404, as a registry without the API).
        "referrers" => {
            let index = shared
                .state()
                .manifests
                .get(&format!("referrers/{reference}"))
                .cloned();
            let reply = match index {
                Some(index) => Reply {
                    status: "200 OK",
                    headers: vec![("Content-Type", index.media_type.clone())],
                    body: index.bytes,
                },
                None => Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            };
            write_reply(stream, &reply, head_only);
        }
        _ => write_reply(
            stream,
            &Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            head_only,
        ),
    }
}

/// The 401 a request without a fitting token gets, or `None` when it may pass.
fn challenge(request: &Request, shared: &Shared, name: Option<&str>) -> Option<Reply> {
    let state = shared.state();
    let auth_loop = state.mode == Mode::AuthLoop;
    if state.auth.is_none() && !auth_loop {
        return None;
    }
    let scope = name.map(|n| format!("repository:{n}:pull"));
    let granted = request
        .bearer()
        .and_then(|token| state.tokens.get(token))
        .is_some_and(|issued| scope.as_deref().is_none_or(|s| scope_covers(issued, s)));
    if granted && !auth_loop {
        return None;
    }
    let port = request
        .header("host")
        .and_then(|h| h.rsplit_once(':'))
        .map_or_else(String::new, |(_, p)| p.to_owned());
    let realm = state
        .realm
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{port}/token"));
    let mut value = format!("Bearer realm=\"{realm}\",service=\"{SERVICE}\"");
    if let Some(scope) = &scope {
        let _ = write!(value, ",scope=\"{scope}\"");
    }
    let mut reply = Reply::error(
        "401 Unauthorized",
        "UNAUTHORIZED",
        "authentication required",
        "",
    );
    reply.headers.push(("WWW-Authenticate", value));
    Some(reply)
}

/// Whether a token issued for `issued` (space-separated scopes) grants `wanted`.
fn scope_covers(issued: &str, wanted: &str) -> bool {
    let Some((resource, actions)) = wanted.rsplit_once(':') else {
        return false;
    };
    issued.split(' ').any(|s| {
        s.rsplit_once(':')
            .is_some_and(|(r, a)| r == resource && a.split(',').any(|x| x == actions))
    })
}

/// `GET /token?service=..&scope=..`: Basic credentials checked, a token for the scope.
fn token(request: &Request, shared: &Shared) -> Reply {
    let mut state = shared.state();
    if request.method != "GET" {
        return Reply::error(
            "405 Method Not Allowed",
            "UNSUPPORTED",
            "use GET",
            &request.method,
        );
    }
    if request.query("service") != [SERVICE] {
        return Reply::error(
            "400 Bad Request",
            "UNSUPPORTED",
            "unknown service",
            &request.target,
        );
    }
    let auth = state.auth.clone().unwrap_or_else(Auth::anonymous);
    let allowed = match request.basic_credentials() {
        Some(given) => auth.credentials.as_ref() == Some(&given),
        None => auth.anonymous && request.header("authorization").is_none(),
    };
    if !allowed {
        let mut reply = Reply::error(
            "401 Unauthorized",
            "UNAUTHORIZED",
            "invalid username or password",
            "",
        );
        reply
            .headers
            .push(("WWW-Authenticate", format!("Basic realm=\"{SERVICE}\"")));
        return reply;
    }
    let token = format!("fake-token-{}", state.tokens.len() + 1);
    state
        .tokens
        .insert(token.clone(), request.query("scope").join(" "));
    Reply::json(
        "200 OK",
        &json!({
            "token": token,
            "access_token": token,
            "expires_in": 300,
            "issued_at": "2026-01-01T00:00:00Z",
        }),
    )
}

fn manifest(stream: &mut TcpStream, request: &Request, reference: &str, shared: &Shared) {
    let head_only = request.method == "HEAD";
    let (mode, hits, stored) = {
        let mut state = shared.state();
        state.manifest_hits += 1;
        (
            state.mode.clone(),
            state.manifest_hits,
            state.manifests.get(reference).cloned(),
        )
    };
    let not_found = || {
        Reply::error(
            "404 Not Found",
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            reference,
        )
    };
    match mode {
        Mode::Slow => {
            let until = Instant::now() + SLOW_REPLY_AFTER;
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Mode::Flaky(n) if hits <= n => {
            let reply = Reply::error(
                "503 Service Unavailable",
                "UNAVAILABLE",
                "service unavailable",
                "",
            );
            return write_reply(stream, &reply, head_only);
        }
        Mode::NotFound => return write_reply(stream, &not_found(), head_only),
        _ => {}
    }
    let Some(mut blob) = stored else {
        return write_reply(stream, &not_found(), head_only);
    };
    let accepted = request.accept_types();
    let accepts = |t: &str| accepted.iter().any(|a| a == t || a == "*/*");
    if mode == Mode::RewriteToPlatform && is_index(&blob.media_type) && !accepts(&blob.media_type) {
        match linux_amd64_of(&blob, shared) {
            Some(platform) => blob = platform,
            None => return write_reply(stream, &not_found(), head_only),
        }
    } else if !accepted.is_empty() && !accepts(&blob.media_type) {
        // As distribution: "OCI index found, but accept header does not support OCI indexes".
        return write_reply(stream, &not_found(), head_only);
    }
    let digest = blob.digest();
    let body = match &mode {
        Mode::WrongBody => tamper(&blob.bytes),
        Mode::WrongBodyFor(target) if target == reference => tamper(&blob.bytes),
        _ => blob.bytes.clone(),
    };
    let claimed = if body == blob.bytes {
        digest
    } else {
        // The lie a hostile registry tells: the header names what the client asked for.
        reference.to_owned()
    };
    let headers = vec![
        ("Content-Type", blob.media_type.clone()),
        ("Docker-Content-Digest", claimed),
        ("Docker-Distribution-Api-Version", "registry/2.0".to_owned()),
    ];
    match mode {
        Mode::Oversized => write_oversized(stream, &headers, &body, head_only, &shared.stop),
        Mode::Trickle => write_trickle(stream, &headers, &body, &shared.stop),
        _ => write_reply(
            stream,
            &Reply {
                status: "200 OK",
                headers,
                body,
            },
            head_only,
        ),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The stored linux/amd64 manifest an index lists.
fn linux_amd64_of(index: &Blob, shared: &Shared) -> Option<Blob> {
    let document: Value = serde_json::from_slice(&index.bytes).ok()?;
    let digest =
        document["manifests"]
            .as_array()?
            .iter()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")?
            ["digest"]
            .as_str()?
            .to_owned();
    shared.state().manifests.get(&digest).cloned()
}

/// Different, still valid JSON: the same document with one more annotation.
fn tamper(bytes: &[u8]) -> Vec<u8> {
    let mut document: Value = serde_json::from_slice(bytes).unwrap();
    document["annotations"] = json!({"org.example.tampered": "true"});
    serde_json::to_vec(&document).unwrap()
}

fn head(status: &str, headers: &[(&str, String)], length: usize) -> String {
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

fn write_reply(stream: &mut TcpStream, reply: &Reply, head_only: bool) {
    let mut bytes = head(reply.status, &reply.headers, reply.body.len()).into_bytes();
    if !head_only {
        bytes.extend_from_slice(&reply.body);
    }
    let _ = stream.write_all(&bytes);
}

/// [`OVERSIZED_BYTES`] declared and sent: whitespace, then the body. Stops writing when the
/// client hangs up or the fake is dropped.
fn write_oversized(
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
fn write_trickle(
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

/// Reads one request head (and discards a small body).
fn read_request(stream: &mut TcpStream) -> io::Result<Request> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut reader = BufReader::new(stream);
    let mut head_bytes = 0;
    let mut read_line = |reader: &mut BufReader<&mut TcpStream>| -> io::Result<String> {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_REQUEST_HEAD + 2) as u64)
            .read_until(b'\n', &mut line)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_REQUEST_HEAD {
            return Err(bad("request head missing or too long"));
        }
        let line = String::from_utf8(line).map_err(|_| bad("not UTF-8"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let request_line = read_line(&mut reader)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("bad request line"));
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(bad("not HTTP/1.x"));
    }
    let mut headers = Vec::new();
    loop {
        let header = read_line(&mut reader)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').ok_or_else(|| bad("bad header"))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
    };
    if let Some(length) = request.header("content-length") {
        let length: usize = length.parse().map_err(|_| bad("bad content-length"))?;
        if length > MAX_REQUEST_BODY {
            return Err(bad("body too large"));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
    }
    Ok(request)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(text.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding; `None` on anything else.
#[must_use]
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let value = u32::try_from(ALPHABET.iter().position(|&a| a == c)?).ok()?;
        buffer = (buffer << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}
