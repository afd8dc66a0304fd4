//! The launch's one call into signature checking for an image: fetch cosign's signature
//! tag for the approved digest and verify it under the config's policy.

use super::{SignatureError, Signer, load_root, verify_layers};
use crate::config::ImageSpec;
use crate::digest::ImageDigest;
use crate::error::Error;
use crate::log::Logger;
use crate::registry::Credentials;
use crate::registry::signatures::{cosign_layers, signature_tag};

/// `None` without a policy; the verified signer with one; an error (nothing measured,
/// nothing started) when no signature verifies.
pub fn verify(
    spec: &ImageSpec,
    digest: &ImageDigest,
    credentials: Option<Credentials>,
    log: &Logger,
) -> Result<Option<Signer>, Error> {
    let Some(policy) = &spec.signature else {
        return Ok(None);
    };
    let root = load_root(policy)?;
    let location = format!("{}:{}", spec.reference.docker_name(), signature_tag(digest));
    let image = format!("{}@{digest}", spec.reference.docker_name());
    let layers = cosign_layers(
        &spec.reference,
        digest,
        spec.insecure,
        credentials,
        spec.ca_file.as_deref(),
    )?
    .ok_or_else(|| SignatureError::Missing {
        image: image.clone(),
        location: location.clone(),
        detail: "the registry has no such tag".into(),
    })?;
    let signer = verify_layers(&layers, digest, policy, &root).map_err(|reasons| {
        SignatureError::Refused {
            image,
            location,
            reasons: reasons.join("; "),
        }
    })?;
    log.info(&format!("signature verified: {}", signer.payload()));
    Ok(Some(signer))
}
