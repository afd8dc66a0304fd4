//! Sigstore verification, offline: a workload runs only when a signature the attested policy
//! names verifies against the trusted root, and the signer it proves is measured.
//!
//! Written on ring and x509-cert (both already in the launcher) rather than sigstore-rust's
//! `sigstore-verify`, whose crypto is aws-lc-rs only (a C/cmake build) and which pulls a
//! second x509-cert/der/spki generation; see Cargo.toml.
//!
//! Checked, in order: the Rekor SET with the trusted root's log key (valid at the integrated
//! time), the entry body against the payload, signature and signer; for a certificate, its
//! chain to a Fulcio CA of the trusted root at the integrated time (never the wall clock:
//! Fulcio leaves live 10 minutes), code-signing use, and the policy's issuer and identity;
//! the signature over the exact payload; and the payload's digest against the approved one.
//! For a certificate, one embedded SCT must verify with a CT log of the trusted root (when
//! the root lists any). Not checked: RFC 3161 timestamps (a Rekor v1 entry is required
//! instead) and inclusion proofs (the SET is the log's promise).

pub mod bundle;
pub mod certificate;
pub mod commit;
pub mod cosign;
pub mod encoding;
pub mod gitsign;
pub mod image;
pub mod key;
pub mod policy;
pub mod rekor;
pub mod sct;
pub mod trusted_root;

use std::path::Path;

pub use policy::{Identity, SignaturePolicy, Signer, SignerPolicy};
pub use trusted_root::TrustedRoot;

use crate::capped_read::read_capped;
use crate::digest::ImageDigest;

/// Trusted roots are kilobytes.
const MAX_TRUSTED_ROOT_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read trusted root {path} (signature.trusted_root): {detail}")]
    TrustedRoot { path: String, detail: String },
    #[error(
        "{image}: no signature verifies under [image.signature], so it is not started: {reasons}"
    )]
    Refused { image: String, reasons: String },
    #[error(
        "commit {commit}: its gitsign signature does not verify under [git.signature], so it is not started: {reason}"
    )]
    CommitRefused { commit: String, reason: String },
}

/// The policy's trusted root: the file it names, or the built-in public-good root.
pub fn load_root(policy: &SignaturePolicy) -> Result<TrustedRoot, SignatureError> {
    let Some(path) = &policy.trusted_root else {
        return TrustedRoot::public_good().map_err(|detail| SignatureError::TrustedRoot {
            path: "(built-in)".into(),
            detail,
        });
    };
    let error = |detail: String| SignatureError::TrustedRoot {
        path: path.display().to_string(),
        detail,
    };
    let bytes =
        read_capped(Path::new(path), MAX_TRUSTED_ROOT_BYTES).map_err(|e| error(e.to_string()))?;
    TrustedRoot::parse(&bytes).map_err(error)
}

/// The first layer that verifies as a signature of `digest`; every layer's reason otherwise.
pub fn verify_layers(
    layers: &[cosign::Layer],
    digest: &ImageDigest,
    policy: &SignaturePolicy,
    root: &TrustedRoot,
) -> Result<Signer, Vec<String>> {
    let mut reasons = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        match cosign::verify(layer, digest, policy, root) {
            Ok(signer) => return Ok(signer),
            Err(reason) => reasons.push(format!("layer {}: {reason}", index + 1)),
        }
    }
    if reasons.is_empty() {
        reasons.push("it has no signature layers".into());
    }
    Err(reasons)
}

#[cfg(test)]
mod tests;
