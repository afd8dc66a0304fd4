//! Signatures of an image, from the registry: cosign's manifest tagged `sha256-<hex>.sig` in
//! the image's repository (its simple-signing layers), and Sigstore bundles attached as OCI
//! 1.1 referrers.
//!
//! Where cosign puts them: sigstore/cosign `pkg/oci/remote/remote.go` (`SignatureTag`: the
//! digest with `:` replaced by `-`, plus `.sig`). Everything fetched here is untrusted; the
//! layers are only handed to the Sigstore verification.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Client, RegistryError};
use crate::digest::ImageDigest;
use crate::sigstore::cosign::{Layer, SIMPLE_SIGNING};

/// More signature layers than this on one tag is not a signature manifest.
const MAX_LAYERS: usize = 16;

#[derive(Deserialize)]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The tag cosign stores `digest`'s signatures under.
#[must_use]
pub fn signature_tag(digest: &ImageDigest) -> String {
    format!("{}.sig", digest.to_string().replace(':', "-"))
}

/// The simple-signing layers of `digest`'s signature tag; `None` when there is no such tag.
pub fn cosign_layers(
    client: &mut Client,
    digest: &ImageDigest,
) -> Result<Option<Vec<Layer>>, RegistryError> {
    let tag = signature_tag(digest);
    let manifest = match client.manifest_by_tag(&tag) {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    let parsed: SignatureManifest = parse(&manifest.body, &tag)?;
    if parsed.layers.len() > MAX_LAYERS {
        return Err(RegistryError::Malformed {
            digest: tag,
            detail: format!("{} layers (at most {MAX_LAYERS})", parsed.layers.len()),
        });
    }
    let mut layers = Vec::new();
    for descriptor in parsed.layers {
        if descriptor.media_type != SIMPLE_SIGNING {
            continue;
        }
        layers.push(Layer {
            payload: client.blob(&blob_digest(&descriptor.digest, &tag)?)?,
            annotations: descriptor.annotations,
        });
    }
    Ok(Some(layers))
}

#[derive(Deserialize)]
struct ReferrersIndex {
    #[serde(default)]
    manifests: Vec<Referrer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Referrer {
    digest: String,
    #[serde(default)]
    artifact_type: String,
}

/// The Sigstore bundles attached to `digest` as OCI 1.1 referrers (what cosign v3 and
/// `cosign attest --new-bundle-format` push): the referrers API, else the referrers tag
/// schema's `sha256-<hex>` index (OCI distribution-spec 1.1, "Referrers Tag Schema").
/// Each referrer manifest's bundle layer is returned as its JSON bytes.
pub fn sigstore_bundles(
    client: &mut Client,
    digest: &ImageDigest,
) -> Result<Vec<Vec<u8>>, RegistryError> {
    let fallback = digest.to_string().replace(':', "-");
    let index = match client.referrers(digest) {
        Ok(index) => index,
        Err(_) => match client.manifest_by_tag(&fallback) {
            Ok(index) => index,
            Err(RegistryError::NotFound { .. }) => return Ok(Vec::new()),
            Err(other) => return Err(other),
        },
    };
    let index: ReferrersIndex = parse(&index.body, &format!("referrers of {digest}"))?;
    let mut bundles = Vec::new();
    for referrer in index
        .manifests
        .iter()
        .filter(|r| r.artifact_type.starts_with(BUNDLE_PREFIX))
        .take(MAX_LAYERS)
    {
        let manifest_digest = blob_digest(&referrer.digest, "a referrer")?;
        let manifest = client.manifest(&manifest_digest)?;
        let parsed: SignatureManifest = parse(&manifest.body, &referrer.digest)?;
        if let Some(layer) = parsed
            .layers
            .iter()
            .find(|l| l.media_type.starts_with(BUNDLE_PREFIX))
        {
            bundles.push(client.blob(&blob_digest(&layer.digest, &referrer.digest)?)?);
        }
    }
    Ok(bundles)
}

/// Media types (and artifact types) of a Sigstore bundle: `…bundle.v0.3+json` and the like.
const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, RegistryError> {
    let parsed: T = serde_json::from_slice(body).map_err(|e| RegistryError::Malformed {
        digest: what.to_owned(),
        detail: format!("not a signature manifest or referrers index: {e}"),
    })?;
    Ok(parsed)
}

fn blob_digest(text: &str, what: &str) -> Result<ImageDigest, RegistryError> {
    ImageDigest::parse(text).ok_or_else(|| RegistryError::Malformed {
        digest: what.to_owned(),
        detail: format!("digest {text:?} is not sha256:<64 hex>"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_cosigns() {
        let digest = ImageDigest::parse(
            "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a",
        )
        .unwrap();
        assert_eq!(
            signature_tag(&digest),
            "sha256-0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a.sig"
        );
    }
}
