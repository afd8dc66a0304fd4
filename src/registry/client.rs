//! Fetching manifests by digest from an untrusted registry.
//!
//! The registry and the network are not trusted: every body is size-capped and must hash to
//! the digest asked for; auth is discovered from the registry's challenge, never hard-coded;
//! credentials go only to HTTPS (or loopback) realms; plain HTTP is used only for a loopback
//! registry or with an explicit `insecure`; transient failures are retried a few times with
//! backoff, timeouts and client errors are not. Redirects (to object storage) are followed
//! here, never by ureq, and only the registry's own origin gets its credentials. A 429 or
//! 503 with `Retry-After` is waited out when the wait fits in the client's deadline, and
//! refused at once when it does not: nothing here waits past [`DEADLINE`].

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

mod transport;

use super::RegistryError;
use super::challenge::{Challenge, parse_challenges};
use super::http;
use super::redirect;
use super::reference::ImageReference;
use crate::capped_read::CappedReadError;
use crate::digest::ImageDigest;
use transport::{Reply, read_body};

/// A manifest is kilobytes; anything near this is not one.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Everything one client does (every manifest, blob and token request, redirect, retry and
/// wait) ends within this; a registry asking for a longer wait is refused at once.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Registry credentials. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, <redacted>)", self.username)
    }
}

/// A bearer token: secret.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A fetched manifest whose bytes hash to the digest asked for.
#[derive(Debug)]
pub struct Manifest {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

#[derive(Debug)]
pub struct Client {
    reference: ImageReference,
    base: String,
    insecure: bool,
    credentials: Option<Credentials>,
    token: Option<Token>,
    /// Follows no redirects: [`Client::get_following`] does, choosing the headers per hop.
    agent: ureq::Agent,
    /// `scheme://authority` of the registry: the only origin its credentials go to.
    origin: String,
    /// Whether redirects may lead to plain HTTP (on this machine): only from a plain-HTTP
    /// loopback registry.
    plain_http_redirects: bool,
    deadline: Instant,
}

/// What a GET by digest fetches: a manifest (or index), asked for with the `Accept` header of
/// every manifest type the launcher reads, or a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    Manifest,
    Blob,
    /// OCI 1.1's referrers API (signatures attached to a digest).
    Referrers,
}

impl Object {
    /// The URL path segment: `/v2/<repository>/<segment>/<digest>`.
    fn path(self) -> &'static str {
        match self {
            Self::Manifest => "manifests",
            Self::Blob => "blobs",
            Self::Referrers => "referrers",
        }
    }
}

impl Client {
    /// A client for `reference`. HTTPS with the built-in web roots, plus the certificates
    /// of `ca_file` when given; plain HTTP for a loopback registry without a CA file, or
    /// with `insecure`.
    pub fn new(
        reference: &ImageReference,
        insecure: bool,
        credentials: Option<Credentials>,
        ca_file: Option<&Path>,
    ) -> Result<Self, RegistryError> {
        let scheme = if insecure || (reference.is_loopback() && ca_file.is_none()) {
            "http"
        } else {
            "https"
        };
        // Redirects are followed by hand (`transport.rs`), never by ureq, which would decide
        // alone which hop gets `Authorization` (and ureq 2 followed https -> http).
        let agent = http::agent(ca_file, CONNECT_TIMEOUT, REQUEST_TIMEOUT)?;
        let base = format!("{scheme}://{}", reference.registry());
        Ok(Self {
            reference: reference.clone(),
            origin: redirect::origin(&base).unwrap_or_else(|| base.clone()),
            plain_http_redirects: scheme == "http" && reference.is_loopback(),
            base,
            insecure,
            credentials,
            token: None,
            agent,
            deadline: Instant::now() + DEADLINE,
        })
    }

    /// GETs `/v2/<repository>/manifests/<digest>` and checks the body against the digest.
    pub fn manifest(&mut self, digest: &ImageDigest) -> Result<Manifest, RegistryError> {
        self.fetch(Object::Manifest, digest)
    }

    /// GETs `/v2/<repository>/blobs/<digest>` (a config blob) and checks it the same way.
    pub fn blob(&mut self, digest: &ImageDigest) -> Result<Vec<u8>, RegistryError> {
        self.fetch(Object::Blob, digest).map(|m| m.body)
    }

    /// GETs `/v2/<repository>/manifests/<tag>`: a tag names no digest, so the body is only
    /// size-capped; whoever reads it checks what it says (cosign's `sha256-<hex>.sig`).
    pub fn manifest_by_tag(&mut self, tag: &str) -> Result<Manifest, RegistryError> {
        self.fetch_reference(Object::Manifest, tag, None)
    }

    /// GETs `/v2/<repository>/referrers/<digest>` (OCI distribution 1.1): an index of the
    /// manifests whose `subject` is `digest`; only size-capped, like a tag.
    pub fn referrers(&mut self, digest: &ImageDigest) -> Result<Manifest, RegistryError> {
        self.fetch_reference(Object::Referrers, &digest.to_string(), None)
    }

    fn fetch(&mut self, object: Object, digest: &ImageDigest) -> Result<Manifest, RegistryError> {
        self.fetch_reference(object, &digest.to_string(), Some(digest))
    }

    fn fetch_reference(
        &mut self,
        object: Object,
        name: &str,
        expected: Option<&ImageDigest>,
    ) -> Result<Manifest, RegistryError> {
        let url = format!(
            "{}/v2/{}/{}/{name}",
            self.base,
            self.reference.repository(),
            object.path()
        );
        let mut authenticated = false;
        loop {
            let response = self.get_with_retries(&url, object == Object::Manifest)?;
            match response {
                Reply::Ok { body, content_type } => {
                    let actual = ImageDigest::of(&body);
                    if let Some(digest) = expected.filter(|d| **d != actual) {
                        return Err(RegistryError::DigestMismatch {
                            requested: digest.to_string(),
                            actual: actual.to_string(),
                        });
                    }
                    return Ok(Manifest { body, content_type });
                }
                Reply::Unauthorized { challenge } if !authenticated => {
                    self.authenticate(challenge.as_deref())?;
                    authenticated = true;
                }
                Reply::Unauthorized { .. } => {
                    return Err(RegistryError::Unauthorized {
                        registry: self.reference.registry().to_owned(),
                        detail: "the registry refused the credentials it asked for".into(),
                    });
                }
                Reply::Status { url, code, body } => {
                    return Err(if code == 404 {
                        RegistryError::NotFound {
                            digest: name.to_owned(),
                            reference: self.reference.to_string(),
                        }
                    } else {
                        RegistryError::Status {
                            url,
                            status: code,
                            body,
                        }
                    });
                }
            }
        }
    }

    /// Answers a `WWW-Authenticate` challenge: a bearer token from the realm, or basic auth.
    fn authenticate(&mut self, challenge: Option<&str>) -> Result<(), RegistryError> {
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            registry: self.reference.registry().to_owned(),
            detail,
        };
        let header = challenge
            .ok_or_else(|| unauthorized("401 without a WWW-Authenticate challenge".into()))?;
        let challenges = parse_challenges(header).map_err(|e| {
            unauthorized(format!(
                "cannot parse its WWW-Authenticate {:?}: {e}",
                header.chars().take(300).collect::<String>()
            ))
        })?;
        // Bearer (token) auth when offered, else Basic; other schemes are not spoken.
        let chosen: Option<&Challenge> = challenges
            .iter()
            .find(|c| c.is("bearer"))
            .or_else(|| challenges.iter().find(|c| c.is("basic")));
        let Some(challenge) = chosen else {
            let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
            return Err(unauthorized(format!(
                "unsupported auth scheme(s) {}",
                schemes.join(", ")
            )));
        };
        match challenge.scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let credentials = self.credentials.as_ref().ok_or_else(|| {
                    unauthorized("basic auth required and no credentials configured".into())
                })?;
                self.token = Some(Token(format!(
                    "Basic {}",
                    crate::base64::encode(
                        format!("{}:{}", credentials.username, credentials.password).as_bytes()
                    )
                )));
                Ok(())
            }
            "bearer" => {
                let realm = challenge
                    .param("realm")
                    .ok_or_else(|| unauthorized("bearer challenge without a realm".into()))?;
                self.check_realm(realm)?;
                let mut request = http::within(&self.agent, realm, self.request_timeout()?);
                if let Some(service) = challenge.param("service") {
                    request = request.query("service", service);
                }
                let scope = challenge.param("scope").map_or_else(
                    || format!("repository:{}:pull", self.reference.repository()),
                    str::to_owned,
                );
                request = request.query("scope", &scope);
                if let Some(credentials) = &self.credentials {
                    request = request.header(
                        "Authorization",
                        &format!(
                            "Basic {}",
                            crate::base64::encode(
                                format!("{}:{}", credentials.username, credentials.password)
                                    .as_bytes()
                            )
                        ),
                    );
                }
                let response = request.call().map_err(|error| {
                    unauthorized(format!("token service at {realm} unreachable: {error}"))
                })?;
                let code = response.status().as_u16();
                if code >= 400 {
                    return Err(unauthorized(format!(
                        "token service at {realm} answered HTTP {code} (wrong credentials?)"
                    )));
                }
                let body = read_body(response, MAX_TOKEN_BYTES).map_err(|e| {
                    unauthorized(match e {
                        CappedReadError::TooLarge => {
                            format!("larger than {MAX_TOKEN_BYTES} bytes")
                        }
                        other => other.to_string(),
                    })
                })?;
                let reply: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| unauthorized(format!("token reply is not JSON: {e}")))?;
                let token = reply
                    .get("token")
                    .or_else(|| reply.get("access_token"))
                    .and_then(serde_json::Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| unauthorized("token reply has no token".into()))?;
                self.token = Some(Token(format!("Bearer {token}")));
                Ok(())
            }
            other => Err(unauthorized(format!("unsupported auth scheme {other:?}"))),
        }
    }

    /// Credentials and tokens travel only over HTTPS, or to this machine.
    fn check_realm(&self, realm: &str) -> Result<(), RegistryError> {
        let plain = realm
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
        if !plain {
            return if realm
                .get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
            {
                Ok(())
            } else {
                Err(RegistryError::PlainHttp {
                    url: realm.to_owned(),
                })
            };
        }
        let host = realm
            .get(7..)
            .unwrap_or_default()
            .split(['/', '?'])
            .next()
            .unwrap_or_default();
        let loopback = ImageReference::parse(&format!("{host}/x")).is_ok_and(|r| r.is_loopback());
        if loopback || self.insecure {
            Ok(())
        } else {
            Err(RegistryError::PlainHttp {
                url: realm.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain HTTP only for a loopback registry or with `insecure`; never for a realm that
    /// would receive credentials off this machine.
    #[test]
    fn plain_http_only_where_allowed() {
        let remote = ImageReference::parse("registry.example.com/app").unwrap();
        let local = ImageReference::parse("127.0.0.1:5000/app").unwrap();
        assert!(
            Client::new(&remote, false, None, None)
                .unwrap()
                .base
                .starts_with("https://")
        );
        assert!(
            Client::new(&remote, true, None, None)
                .unwrap()
                .base
                .starts_with("http://")
        );
        assert!(
            Client::new(&local, false, None, None)
                .unwrap()
                .base
                .starts_with("http://")
        );
        // A CA file makes even a loopback registry HTTPS.
        let ca = std::env::temp_dir().join(format!("tl-ca-{}.pem", std::process::id()));
        std::fs::write(&ca, "not a certificate").unwrap();
        assert!(matches!(
            Client::new(&local, false, None, Some(&ca)),
            Err(RegistryError::CaFile { .. })
        ));
        let _ = std::fs::remove_file(&ca);
        let client = Client::new(&remote, false, None, None).unwrap();
        assert!(client.check_realm("https://auth.example.com/token").is_ok());
        assert!(client.check_realm("http://127.0.0.1:9/token").is_ok());
        for refused in [
            "http://auth.example.com/token",
            "http://127.0.0.1.evil.com/token",
            "ftp://x/token",
            "token",
        ] {
            assert!(
                matches!(
                    client.check_realm(refused),
                    Err(RegistryError::PlainHttp { .. })
                ),
                "{refused}"
            );
        }
        assert!(
            Client::new(&remote, true, None, None)
                .unwrap()
                .check_realm("http://auth.example.com/token")
                .is_ok()
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let credentials = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert!(!format!("{:?}", Token("Bearer abc".into())).contains("abc"));
    }
}
