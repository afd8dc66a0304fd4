//! cosign's classic image signatures: the layers of the `sha256-<hex>.sig` tag, each a
//! simple-signing payload with its signature, certificate and Rekor bundle in annotations.
//!
//! Formats: sigstore/cosign `specs/SIGNATURE_SPEC.md` (payload
//! `{"critical":{"identity":{"docker-reference"},"image":{"docker-manifest-digest"},"type":
//! "cosign container image signature"},"optional":…}`; annotations
//! `dev.cosignproject.cosign/signature` (base64 ECDSA signature over the payload bytes),
//! `dev.sigstore.cosign/certificate` (PEM Fulcio leaf), `dev.sigstore.cosign/bundle` (the
//! Rekor SET and entry)). The `…/chain` annotation is not used: the chain comes from the
//! trusted root.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::encoding::base64_decode;
use super::key::Hash;
use super::policy::{SignaturePolicy, Signer, SignerPolicy, key_identity};
use super::rekor::{self, Entry, Expected};
use super::trusted_root::TrustedRoot;
use super::{certificate, key::PublicKey};
use crate::digest::ImageDigest;
use crate::hex;

pub const SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const BUNDLE: &str = "dev.sigstore.cosign/bundle";
/// The media type of a simple-signing layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// One signature layer: the payload blob and the layer's annotations.
#[derive(Clone, Debug)]
pub struct Layer {
    pub payload: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyBundle {
    signed_entry_timestamp: String,
    payload: LegacyPayload,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyPayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct SimpleSigning {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: CriticalImage,
}

#[derive(Deserialize)]
struct CriticalImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Verifies one layer as a signature of `digest` under `policy`; the signer it proves.
pub fn verify(
    layer: &Layer,
    digest: &ImageDigest,
    policy: &SignaturePolicy,
    root: &TrustedRoot,
) -> Result<Signer, String> {
    let annotation = |name: &str| {
        layer
            .annotations
            .get(name)
            .ok_or_else(|| format!("no {name} annotation"))
    };
    let signature = base64_decode(annotation(SIGNATURE)?)
        .ok_or_else(|| format!("{SIGNATURE} is not base64"))?;
    let keyless = matches!(policy.signer, SignerPolicy::Keyless { .. });
    let certificate_der = if keyless {
        let pem = annotation(CERTIFICATE)?;
        let (label, der) = der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| format!("{CERTIFICATE} is not PEM: {e}"))?;
        if label != "CERTIFICATE" {
            return Err(format!("{CERTIFICATE} is a {label}, not a CERTIFICATE"));
        }
        Some(der)
    } else {
        None
    };
    let signer_der = match (&certificate_der, &policy.signer) {
        (Some(der), _) => der.clone(),
        (None, SignerPolicy::Key(key)) => key.der().to_vec(),
        (None, SignerPolicy::Keyless { .. }) => return Err("no certificate".into()),
    };
    let integrated_time = if keyless || policy.transparency_log {
        let bundle: LegacyBundle = serde_json::from_str(annotation(BUNDLE)?)
            .map_err(|e| format!("{BUNDLE} is not a Rekor bundle: {e}"))?;
        let set = base64_decode(&bundle.signed_entry_timestamp)
            .ok_or("the SignedEntryTimestamp is not base64")?;
        let entry = Entry {
            body: bundle.payload.body,
            integrated_time: bundle.payload.integrated_time,
            log_index: bundle.payload.log_index,
            log_id: hex::decode(&bundle.payload.log_id).ok_or("the logID is not hex")?,
        };
        let expected = Expected {
            payload: &layer.payload,
            signature: &signature,
            signer_der: &signer_der,
        };
        Some(rekor::verify(&entry, &set, root, &expected).map_err(|e| format!("Rekor: {e}"))?)
    } else {
        None
    };
    let (key, signer) = match (&policy.signer, certificate_der) {
        (SignerPolicy::Key(key), _) => (
            key.clone(),
            Signer {
                identity: key_identity(key),
                issuer: None,
                source_commit: None,
                source_repository: None,
                trusted_root: integrated_time.map(|_| format!("sha256:{}", root.sha256)),
            },
        ),
        (SignerPolicy::Keyless { .. }, Some(der)) => {
            let time = integrated_time.ok_or("no signing time")?;
            let (key, certified): (PublicKey, _) = certificate::verify(&der, root, time)?;
            policy.signer.admits(&certified)?;
            (key, Signer::from_certificate(certified, &root.sha256))
        }
        (SignerPolicy::Keyless { .. }, None) => return Err("no certificate".into()),
    };
    if !key.verifies(Hash::Sha256, &layer.payload, &signature) {
        return Err("the signature does not verify over the payload".into());
    }
    let payload: SimpleSigning = serde_json::from_slice(&layer.payload)
        .map_err(|e| format!("the payload is not simple signing: {e}"))?;
    if payload.critical.kind != "cosign container image signature" {
        return Err(format!(
            "the payload type is {:?}, not a cosign container image signature",
            payload.critical.kind
        ));
    }
    if payload.critical.image.digest != digest.to_string() {
        return Err(format!(
            "the payload signs {}, not {digest}",
            payload.critical.image.digest
        ));
    }
    Ok(signer)
}
