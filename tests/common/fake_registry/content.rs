//! What the fake stores: manifests, indexes and blobs as real JSON, with their SHA-256
//! digests.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, OVERSIZED_BYTES};

/// Manifest media types: OCI or Docker v2 schema 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Oci,
    Docker,
}

impl Flavor {
    pub(super) fn manifest(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
        }
    }

    pub(super) fn index(self) -> &'static str {
        match self {
            Self::Oci => OCI_INDEX,
            Self::Docker => DOCKER_LIST,
        }
    }

    pub(super) fn config(self) -> &'static str {
        match self {
            Self::Oci => "application/vnd.oci.image.config.v1+json",
            Self::Docker => "application/vnd.docker.container.image.v1+json",
        }
    }

    pub(super) fn layer(self) -> &'static str {
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
    pub(super) fn json(media_type: &str, value: &Value) -> Self {
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

    pub(super) fn descriptor(&self) -> Value {
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
    format!("sha256:{}", super::super::hex(&Sha256::digest(bytes)))
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

    pub(super) fn index_entry(&self) -> Value {
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
