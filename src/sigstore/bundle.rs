//! Sigstore bundles (protobuf-specs `dev.sigstore.bundle.v1.Bundle`, JSON, media types
//! v0.1 to v0.3): a message signature (hashedrekord) or a DSSE in-toto envelope, with its
//! certificate (or a key hint) and Rekor v1 entry.
//!
//! Formats: sigstore/protobuf-specs `protos/sigstore_bundle.proto`; DSSE's pre-authentication
//! encoding from secure-systems-lab/dsse `protocol.md` (`"DSSEv1" SP len(type) SP type SP
//! len(body) SP body`, lengths in ASCII decimal); in-toto Statement v0.1 / v1 `subject[].digest`.
//! The first transparency-log entry with an inclusion promise (SET) is the one checked; an
//! entry without a SET (Rekor v2, or a TSA-only bundle) is not accepted.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::certificate;
use super::encoding::base64_decode;
use super::key::Hash;
use super::policy::{SignaturePolicy, Signer, SignerPolicy, key_identity};
use super::rekor::{self, Entry, Expected};
use super::trusted_root::TrustedRoot;
use crate::hex;

/// What was signed: its SHA-256 and, when the verifier has them, its bytes (a message
/// signature signs the bytes themselves; an image is known by its digest only).
#[derive(Clone, Copy, Debug)]
pub struct Artifact<'a> {
    pub sha256: [u8; 32],
    pub bytes: Option<&'a [u8]>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    media_type: String,
    verification_material: Material,
    message_signature: Option<MessageSignature>,
    dsse_envelope: Option<Envelope>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Material {
    certificate: Option<RawBytes>,
    x509_certificate_chain: Option<Chain>,
    #[serde(default)]
    tlog_entries: Vec<TlogEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct Chain {
    certificates: Vec<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogEntry {
    log_index: String,
    log_id: LogId,
    integrated_time: String,
    inclusion_promise: Option<Promise>,
    canonicalized_body: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Promise {
    signed_entry_timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSignature {
    message_digest: Option<MessageDigest>,
    signature: String,
}

#[derive(Deserialize)]
struct MessageDigest {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    payload: String,
    payload_type: String,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    subject: Vec<Subject>,
}

#[derive(Deserialize)]
struct Subject {
    digest: std::collections::BTreeMap<String, String>,
}

const BUNDLE_TYPES: [&str; 4] = [
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
];
const IN_TOTO: &str = "application/vnd.in-toto+json";
const STATEMENTS: [&str; 2] = [
    "https://in-toto.io/Statement/v0.1",
    "https://in-toto.io/Statement/v1",
];

/// DSSE's pre-authentication encoding: what an envelope's signature signs.
#[must_use]
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Verifies a bundle as a signature of `artifact` under `policy`; the signer it proves.
pub fn verify(
    json: &[u8],
    artifact: &Artifact<'_>,
    policy: &SignaturePolicy,
    root: &TrustedRoot,
) -> Result<Signer, String> {
    // RFC 8259 §8.1: JSON is UTF-8. serde_json skips the fields it does not read (inclusion
    // proofs, timestamps) without checking their bytes, so a bundle is checked whole first.
    let json =
        std::str::from_utf8(json).map_err(|e| format!("not a Sigstore bundle: not UTF-8 ({e})"))?;
    let bundle: Bundle =
        serde_json::from_str(json).map_err(|e| format!("not a Sigstore bundle: {e}"))?;
    if !BUNDLE_TYPES.contains(&bundle.media_type.as_str()) {
        return Err(format!(
            "unsupported bundle media type {:?}",
            bundle.media_type
        ));
    }
    let material = &bundle.verification_material;
    let certificate_der = match (&material.certificate, &material.x509_certificate_chain) {
        (Some(leaf), _) => Some(b64(&leaf.raw_bytes, "certificate")?),
        (None, Some(chain)) => Some(b64(
            &chain
                .certificates
                .first()
                .ok_or("empty certificate chain")?
                .raw_bytes,
            "certificate",
        )?),
        (None, None) => None,
    };
    let Signed {
        message,
        signature,
        logged,
    } = signed_content(&bundle, artifact)?;
    let signer_der = match (&certificate_der, &policy.signer) {
        (Some(der), SignerPolicy::Keyless { .. }) => der.clone(),
        (_, SignerPolicy::Key(key)) => key.der().to_vec(),
        (None, SignerPolicy::Keyless { .. }) => {
            return Err("the bundle has no certificate for a keyless policy".into());
        }
    };
    let entry = material
        .tlog_entries
        .iter()
        .find(|e| e.inclusion_promise.is_some())
        .ok_or("the bundle has no Rekor entry with a signed entry timestamp")?;
    let set = b64(
        &entry
            .inclusion_promise
            .as_ref()
            .ok_or("no inclusion promise")?
            .signed_entry_timestamp,
        "signedEntryTimestamp",
    )?;
    let number = |text: &str, what: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("the entry's {what} {text:?} is not a number"))
    };
    let log_entry = Entry {
        body: entry.canonicalized_body.clone(),
        integrated_time: number(&entry.integrated_time, "integratedTime")?,
        log_index: number(&entry.log_index, "logIndex")?,
        log_id: b64(&entry.log_id.key_id, "logId")?,
    };
    let expected = Expected {
        payload: &logged,
        signature: &signature,
        signer_der: &signer_der,
    };
    let time =
        rekor::verify(&log_entry, &set, root, &expected).map_err(|e| format!("Rekor: {e}"))?;
    let (key, signer) = match &policy.signer {
        SignerPolicy::Key(key) => (
            key.clone(),
            Signer {
                identity: key_identity(key),
                issuer: None,
                source_commit: None,
                source_repository: None,
                trusted_root: Some(format!("sha256:{}", root.sha256)),
            },
        ),
        SignerPolicy::Keyless { .. } => {
            let (key, certified) = certificate::verify(&signer_der, root, time)?;
            policy.signer.admits(&certified)?;
            (key, Signer::from_certificate(certified, &root.sha256))
        }
    };
    if !key.verifies(Hash::Sha256, &message, &signature) {
        return Err("the signature does not verify".into());
    }
    Ok(signer)
}

/// What a bundle's signature signs, the signature, and the bytes its Rekor entry hashes.
struct Signed {
    message: Vec<u8>,
    signature: Vec<u8>,
    logged: Vec<u8>,
}

fn signed_content(bundle: &Bundle, artifact: &Artifact<'_>) -> Result<Signed, String> {
    let (message, signature, logged) = match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(message), None) => {
            if let Some(digest) = &message.message_digest
                && (digest.algorithm != "SHA2_256"
                    || b64(&digest.digest, "messageDigest")? != artifact.sha256)
            {
                return Err("the message digest is not the artifact's".into());
            }
            let bytes = artifact.bytes.ok_or(
                "a message signature is checked over the artifact's bytes, which are not available",
            )?;
            if Sha256::digest(bytes).as_slice() != artifact.sha256 {
                return Err("the artifact's bytes do not hash to its digest".into());
            }
            (
                bytes.to_vec(),
                b64(&message.signature, "signature")?,
                bytes.to_vec(),
            )
        }
        (None, Some(envelope)) => {
            if envelope.payload_type != IN_TOTO {
                return Err(format!(
                    "DSSE payload type {:?} is not in-toto",
                    envelope.payload_type
                ));
            }
            let [signature] = envelope.signatures.as_slice() else {
                return Err("the DSSE envelope must carry exactly one signature".into());
            };
            let payload = b64(&envelope.payload, "DSSE payload")?;
            check_subject(&payload, &artifact.sha256)?;
            (
                pae(&envelope.payload_type, &payload),
                b64(&signature.sig, "DSSE signature")?,
                payload,
            )
        }
        _ => return Err("the bundle must hold one message signature or one DSSE envelope".into()),
    };
    Ok(Signed {
        message,
        signature,
        logged,
    })
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    base64_decode(text).ok_or_else(|| format!("the bundle's {what} is not base64"))
}

/// An in-toto statement one of whose subjects has the artifact's SHA-256.
fn check_subject(payload: &[u8], sha256: &[u8; 32]) -> Result<(), String> {
    let statement: Statement = serde_json::from_slice(payload)
        .map_err(|e| format!("the DSSE payload is not an in-toto statement: {e}"))?;
    if !STATEMENTS.contains(&statement.kind.as_str()) {
        return Err(format!("unsupported statement type {:?}", statement.kind));
    }
    let wanted = hex::encode(sha256);
    if statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256") == Some(&wanted))
    {
        Ok(())
    } else {
        Err(format!("no statement subject has sha256 {wanted}"))
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
