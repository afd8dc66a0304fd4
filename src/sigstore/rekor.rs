//! Rekor v1 entries: the signed entry timestamp (SET) that proves the log accepted an entry
//! at its integrated time, and the entry body's match with what was verified.
//!
//! The SET is the log key's signature over the canonical JSON of
//! `{"body","integratedTime","logID","logIndex"}` (keys sorted, no spaces, `logID` in hex):
//! sigstore/rekor `pkg/generated/models` + cosign `pkg/cosign/tlog.go` `VerifySET`, and
//! containers/image `signature/internal/rekor_set.go`.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::encoding::base64_decode;
use super::key::Hash;
use super::trusted_root::TrustedRoot;
use crate::hex;

/// A Rekor entry as a SET covers it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The canonicalized body, base64 as the log serves it.
    pub body: String,
    pub integrated_time: i64,
    pub log_index: i64,
    pub log_id: Vec<u8>,
}

/// What the entry body must record: the signed bytes' hash, the signature, and the signer's
/// certificate or key (DER).
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub payload: &'a [u8],
    pub signature: &'a [u8],
    pub signer_der: &'a [u8],
}

/// Verifies `set` over `entry` with the trusted root's log key (valid at the integrated
/// time) and that the body records `expected`; returns the integrated time.
pub fn verify(
    entry: &Entry,
    set: &[u8],
    root: &TrustedRoot,
    expected: &Expected<'_>,
) -> Result<i64, String> {
    let log = root.log(&entry.log_id).ok_or_else(|| {
        format!(
            "the entry's log {} is not a log of the trusted root",
            hex::encode(&entry.log_id)
        )
    })?;
    if !log.valid.contains(entry.integrated_time) {
        return Err(format!(
            "the log key is not valid at the integrated time {}",
            entry.integrated_time
        ));
    }
    let canonical = format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":\"{}\",\"logIndex\":{}}}",
        serde_json::to_string(&entry.body).map_err(|e| e.to_string())?,
        entry.integrated_time,
        hex::encode(&entry.log_id),
        entry.log_index
    );
    if !log.key.verifies(Hash::Sha256, canonical.as_bytes(), set) {
        return Err("the signed entry timestamp does not verify with the log key".into());
    }
    let body = base64_decode(&entry.body).ok_or("the entry body is not base64")?;
    check_body(&body, expected)?;
    Ok(entry.integrated_time)
}

#[derive(Deserialize)]
struct Body {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
    spec: serde_json::Value,
}

/// The body (hashedrekord 0.0.1 or dsse 0.0.1) records exactly `expected`.
pub(crate) fn check_body(body: &[u8], expected: &Expected<'_>) -> Result<(), String> {
    let body: Body = serde_json::from_slice(body).map_err(|e| format!("entry body: {e}"))?;
    let str_at = |pointer: &str| body.spec.pointer(pointer).and_then(|v| v.as_str());
    let payload_hash = hex::encode(&Sha256::digest(expected.payload));
    match (body.kind.as_str(), body.api_version.as_str()) {
        ("hashedrekord", "0.0.1") => {
            if str_at("/data/hash/algorithm") != Some("sha256")
                || str_at("/data/hash/value") != Some(payload_hash.as_str())
            {
                return Err("the entry records a different payload hash".into());
            }
            if str_at("/signature/content")
                .and_then(base64_decode)
                .as_deref()
                != Some(expected.signature)
            {
                return Err("the entry records a different signature".into());
            }
            if !same_signer(str_at("/signature/publicKey/content"), expected.signer_der) {
                return Err("the entry records a different signer".into());
            }
            Ok(())
        }
        ("dsse", "0.0.1") => {
            if str_at("/payloadHash/algorithm") != Some("sha256")
                || str_at("/payloadHash/value") != Some(payload_hash.as_str())
            {
                return Err("the entry records a different payload hash".into());
            }
            let signatures = body
                .spec
                .get("signatures")
                .and_then(|v| v.as_array())
                .ok_or("the dsse entry has no signatures")?;
            let recorded = signatures.iter().any(|s| {
                s.get("signature")
                    .and_then(|v| v.as_str())
                    .and_then(base64_decode)
                    .as_deref()
                    == Some(expected.signature)
                    && same_signer(
                        s.get("verifier").and_then(|v| v.as_str()),
                        expected.signer_der,
                    )
            });
            if recorded {
                Ok(())
            } else {
                Err("the entry records a different signature or signer".into())
            }
        }
        (kind, version) => Err(format!("unsupported entry kind {kind} {version}")),
    }
}

/// A body's base64 PEM (certificate or public key) has the DER `der`.
fn same_signer(pem_b64: Option<&str>, der: &[u8]) -> bool {
    pem_b64
        .and_then(base64_decode)
        .and_then(|pem| der::pem::decode_vec(&pem).ok().map(|(_, decoded)| decoded))
        .is_some_and(|decoded| decoded == der)
}
