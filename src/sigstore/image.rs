//! The launch's one call into signature checking for an image: cosign's signature tag for
//! the approved digest, then Sigstore bundles among its OCI 1.1 referrers, each verified
//! under the config's policy until one passes.

use super::bundle::{self, Artifact};
use super::{SignatureError, Signer, load_root, verify_layers};
use crate::config::ImageSpec;
use crate::digest::ImageDigest;
use crate::error::Error;
use crate::log::Logger;
use crate::registry::signatures::{cosign_layers, signature_tag, sigstore_bundles};
use crate::registry::{Client, Credentials};

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
    let mut client = Client::new(
        &spec.reference,
        spec.insecure,
        credentials,
        spec.ca_file.as_deref(),
    )?;
    let tag = signature_tag(digest);
    let mut reasons = Vec::new();
    match cosign_layers(&mut client, digest)? {
        Some(layers) => match verify_layers(&layers, digest, policy, &root) {
            Ok(signer) => return Ok(Some(verified(signer, log))),
            Err(each) => reasons.extend(each.into_iter().map(|r| format!("{tag} {r}"))),
        },
        None => reasons.push(format!("no {tag} tag")),
    }
    let bundles = sigstore_bundles(&mut client, digest)?;
    let artifact = Artifact {
        sha256: *digest.as_bytes(),
        bytes: None,
    };
    for (index, json) in bundles.iter().enumerate() {
        match bundle::verify(json, &artifact, policy, &root) {
            Ok(signer) => return Ok(Some(verified(signer, log))),
            Err(reason) => reasons.push(format!("referrer bundle {}: {reason}", index + 1)),
        }
    }
    if bundles.is_empty() {
        reasons.push("no Sigstore bundle among its referrers".into());
    }
    Err(SignatureError::Refused {
        image: format!("{}@{digest}", spec.reference.docker_name()),
        reasons: reasons.join("; "),
    }
    .into())
}

fn verified(signer: Signer, log: &Logger) -> Signer {
    log.info(&format!("signature verified: {}", signer.payload()));
    signer
}
