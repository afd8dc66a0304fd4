//! cosign's signatures of an image, from the registry: the manifest tagged
//! `sha256-<hex>.sig` in the image's repository, and its simple-signing layers.
//!
//! Where cosign puts them: sigstore/cosign `pkg/oci/remote/remote.go` (`SignatureTag`: the
//! digest with `:` replaced by `-`, plus `.sig`). Everything fetched here is untrusted; the
//! layers are only handed to the Sigstore verification.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Client, Credentials, ImageReference, RegistryError};
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
    reference: &ImageReference,
    digest: &ImageDigest,
    insecure: bool,
    credentials: Option<Credentials>,
    ca_file: Option<&Path>,
) -> Result<Option<Vec<Layer>>, RegistryError> {
    let mut client = Client::new(reference, insecure, credentials, ca_file)?;
    let tag = signature_tag(digest);
    let manifest = match client.manifest_by_tag(&tag) {
        Ok(manifest) => manifest,
        Err(RegistryError::NotFound { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    let malformed = |detail: String| RegistryError::Malformed {
        digest: tag.clone(),
        detail,
    };
    let parsed: SignatureManifest = serde_json::from_slice(&manifest.body)
        .map_err(|e| malformed(format!("not a signature manifest: {e}")))?;
    if parsed.layers.len() > MAX_LAYERS {
        return Err(malformed(format!(
            "{} layers (at most {MAX_LAYERS})",
            parsed.layers.len()
        )));
    }
    let mut layers = Vec::new();
    for descriptor in parsed.layers {
        if descriptor.media_type != SIMPLE_SIGNING {
            continue;
        }
        let blob = ImageDigest::parse(&descriptor.digest).ok_or_else(|| {
            malformed(format!(
                "layer digest {:?} is not sha256",
                descriptor.digest
            ))
        })?;
        layers.push(Layer {
            payload: client.blob(&blob)?,
            annotations: descriptor.annotations,
        });
    }
    Ok(Some(layers))
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
