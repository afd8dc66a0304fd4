//! Resolving an approved image digest through its registry, without pulling: the manifest
//! (or index, then the platform's manifest), each body checked against its digest.

pub(crate) mod challenge;
mod client;
pub(crate) mod http;
pub mod manifest;
pub(crate) mod redirect;
pub mod reference;
pub(crate) mod retry_after;
pub mod signatures;

use std::fmt;

pub use client::{Client, Credentials};
pub use manifest::Platform;
pub use reference::ImageReference;

use crate::digest::ImageDigest;
use manifest::Parsed;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "the registry returned a manifest whose sha256 is {actual}, which does not match the requested {requested}; refusing it"
    )]
    DigestMismatch { requested: String, actual: String },
    #[error("manifest at {url} is larger than {max} bytes; refusing it")]
    TooLarge { url: String, max: u64 },
    #[error("{digest} is an index with no manifest for platform {platform}")]
    NoPlatform { digest: String, platform: String },
    #[error("{digest} is an image for {actual}, not for platform {platform}")]
    WrongPlatform {
        digest: String,
        platform: String,
        actual: String,
    },
    #[error("{digest} is malformed: {detail}")]
    Malformed { digest: String, detail: String },
    #[error("authentication with {registry} failed: {detail}")]
    Unauthorized { registry: String, detail: String },
    #[error("{url} timed out after {seconds}s")]
    TimedOut { url: String, seconds: u64 },
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{digest} not found in {reference}")]
    NotFound { digest: String, reference: String },
    #[error(
        "refusing plain HTTP to {url} (allowed only for a loopback registry, or with insecure = true)"
    )]
    PlainHttp { url: String },
    #[error("CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error(
        "{registry} answered HTTP {status} and asks to wait {wait}s, past the {seconds}s the launcher gives a registry; giving up now"
    )]
    RetryAfterPastDeadline {
        registry: String,
        status: u16,
        wait: u64,
        seconds: u64,
    },
    #[error("{registry} did not finish within {seconds}s; giving up")]
    Deadline { registry: String, seconds: u64 },
    #[error("refusing the redirect from {from} to {to}: {reason}")]
    Redirect {
        from: String,
        to: String,
        reason: &'static str,
    },
    #[error("{url} redirected more than {max} times; refusing to follow further")]
    TooManyRedirects { url: String, max: usize },
    #[error("giving up after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<RegistryError>,
    },
}

/// Whether the approved digest named an index or a single manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Index => "index",
            Self::Manifest => "manifest",
        })
    }
}

/// What an approved digest resolves to on one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub reference: ImageReference,
    /// The approved digest (what is measured).
    pub requested: ImageDigest,
    pub kind: Kind,
    pub platform: Platform,
    /// The platform's image manifest (equal to `requested` for a single manifest).
    pub manifest: ImageDigest,
    /// The image config blob: the image ID Docker shows after pulling.
    pub config: ImageDigest,
}

/// Fetches and checks the manifest chain of `digest`.
pub fn resolve(
    reference: &ImageReference,
    digest: &ImageDigest,
    platform: &Platform,
    insecure: bool,
    credentials: Option<Credentials>,
    ca_file: Option<&std::path::Path>,
) -> Result<Resolution, RegistryError> {
    let mut client = Client::new(reference, insecure, credentials, ca_file)?;
    let malformed = |digest: &ImageDigest, detail: String| RegistryError::Malformed {
        digest: digest.to_string(),
        detail,
    };
    let top = client.manifest(digest)?;
    let parsed = manifest::parse(&top.body, top.content_type.as_deref(), platform)
        .map_err(|detail| malformed(digest, detail))?;
    let (kind, manifest, config) = match parsed {
        Parsed::Manifest { config } => (Kind::Manifest, *digest, config),
        Parsed::Index {
            platform_manifest: None,
        } => {
            return Err(RegistryError::NoPlatform {
                digest: digest.to_string(),
                platform: platform.to_string(),
            });
        }
        Parsed::Index {
            platform_manifest: Some(platform_digest),
        } => {
            let inner = client.manifest(&platform_digest)?;
            match manifest::parse(&inner.body, inner.content_type.as_deref(), platform)
                .map_err(|detail| malformed(&platform_digest, detail))?
            {
                Parsed::Manifest { config } => (Kind::Index, platform_digest, config),
                Parsed::Index { .. } => {
                    return Err(malformed(
                        &platform_digest,
                        "an index inside an index".into(),
                    ));
                }
            }
        }
    };
    // The image's own config says which platform it is for: a single manifest is checked
    // against the configured platform, an index entry's claim against the image itself.
    let config_body = client.blob(&config)?;
    let (matches, actual) = manifest::config_platform(&config_body, platform)
        .map_err(|detail| malformed(&config, detail))?;
    if !matches {
        return Err(RegistryError::WrongPlatform {
            digest: manifest.to_string(),
            platform: platform.to_string(),
            actual,
        });
    }
    Ok(Resolution {
        reference: reference.clone(),
        requested: *digest,
        kind,
        platform: platform.clone(),
        manifest,
        config,
    })
}
