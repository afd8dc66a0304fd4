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

mod auth;
mod content;
mod reply;
mod request;
mod routes;
mod server;

// The fake's API, as when it was one file: a test binary may use only part of it.
#[allow(unused_imports)]
pub use content::{Blob, Flavor, Image, MultiArch, index, sha256_digest};
#[allow(unused_imports)]
pub use request::{Request, base64_decode};
#[allow(unused_imports)]
pub use server::FakeRegistry;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

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
