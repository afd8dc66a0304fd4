//! The signed certificate timestamps (SCTs) Fulcio embeds in its certificates: proof that the
//! certificate was submitted to a Certificate Transparency log of the trusted root.
//!
//! RFC 6962: §3.3 (the extension `1.3.6.1.4.1.11129.2.4.2`, an OCTET STRING holding the
//! TLS-encoded `SignedCertificateTimestampList`), §3.2 (what an SCT for a precertificate
//! signs: version 0, signature type 0, timestamp, entry type 1 `precert_entry`, the SHA-256
//! of the issuer's `SubjectPublicKeyInfo`, the `TBSCertificate` without the SCT extension, and
//! the SCT's extensions), §3.2 `DigitallySigned` (hash 4 = SHA-256, signature 3 = ECDSA).

use sha2::{Digest as _, Sha256};

use super::certificate::tlv;
use super::key::Hash;
use super::trusted_root::TrustedRoot;

/// DER of the SCT list extension's OID, 1.3.6.1.4.1.11129.2.4.2.
const SCT_LIST_OID: &[u8] = &[
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02,
];

/// At least one embedded SCT verifies with a CT log of `root` valid at its timestamp.
pub fn verify(leaf_der: &[u8], issuer_spki_der: &[u8], root: &TrustedRoot) -> Result<(), String> {
    let (tbs, list) = split_tbs(leaf_der).ok_or("the certificate has no embedded SCT")?;
    let issuer_key_hash = Sha256::digest(issuer_spki_der);
    let mut reasons = Vec::new();
    for sct in tls_vector(list).ok_or("malformed SCT list")? {
        match check_one(sct, &tbs, &issuer_key_hash, root) {
            Ok(()) => return Ok(()),
            Err(reason) => reasons.push(reason),
        }
    }
    Err(format!(
        "no embedded SCT verifies with a CT log of the trusted root ({})",
        if reasons.is_empty() {
            "the list is empty".to_owned()
        } else {
            reasons.join("; ")
        }
    ))
}

/// One SCT's fields (RFC 6962 §3.2 `SignedCertificateTimestamp`).
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp: u64,
    extensions: &'a [u8],
    hash: u8,
    algorithm: u8,
    signature: &'a [u8],
}

impl<'a> Sct<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        if *bytes.first()? != 0 {
            return None;
        }
        let log_id = bytes.get(1..33)?;
        let timestamp = u64::from_be_bytes(bytes.get(33..41)?.try_into().ok()?);
        let extensions_len = usize::from(u16::from_be_bytes(bytes.get(41..43)?.try_into().ok()?));
        let extensions = bytes.get(43..43 + extensions_len)?;
        let signed = bytes.get(43 + extensions_len..)?;
        let signature_len = usize::from(u16::from_be_bytes(signed.get(2..4)?.try_into().ok()?));
        let signature = signed.get(4..4 + signature_len)?;
        Some(Self {
            log_id,
            timestamp,
            extensions,
            hash: *signed.first()?,
            algorithm: *signed.get(1)?,
            signature,
        })
    }
}

fn check_one(
    sct: &[u8],
    precert_tbs: &[u8],
    issuer_key_hash: &[u8],
    root: &TrustedRoot,
) -> Result<(), String> {
    let sct = Sct::parse(sct).ok_or("malformed SCT")?;
    if (sct.hash, sct.algorithm) != (4, 3) {
        return Err(format!(
            "SCT signature algorithm {}/{} (only ECDSA SHA-256)",
            sct.hash, sct.algorithm
        ));
    }
    let log = root
        .ct_logs
        .iter()
        .find(|l| l.id == sct.log_id)
        .ok_or("an SCT from a CT log not in the trusted root")?;
    let seconds = i64::try_from(sct.timestamp / 1000).map_err(|_| "malformed SCT")?;
    if !log.valid.contains(seconds) {
        return Err("the CT log's key is not valid at the SCT's time".into());
    }
    let message = signed_data(&sct, precert_tbs, issuer_key_hash).ok_or("oversized SCT input")?;
    if log.key.verifies(Hash::Sha256, &message, sct.signature) {
        Ok(())
    } else {
        Err("an SCT's signature does not verify".into())
    }
}

/// What the log signed for a precertificate entry.
fn signed_data(sct: &Sct<'_>, precert_tbs: &[u8], issuer_key_hash: &[u8]) -> Option<Vec<u8>> {
    let tbs_len = u32::try_from(precert_tbs.len()).ok()?.to_be_bytes();
    let mut message = vec![0u8, 0u8];
    message.extend_from_slice(&sct.timestamp.to_be_bytes());
    message.extend_from_slice(&[0, 1]);
    message.extend_from_slice(issuer_key_hash);
    message.extend_from_slice(tbs_len.get(1..)?);
    message.extend_from_slice(precert_tbs);
    message.extend_from_slice(&u16::try_from(sct.extensions.len()).ok()?.to_be_bytes());
    message.extend_from_slice(sct.extensions);
    Some(message)
}

/// The items of a TLS vector (2-byte total length) of 2-byte-length items.
pub(crate) fn tls_vector(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let total = usize::from(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?));
    let mut rest = bytes.get(2..2 + total)?;
    if bytes.len() != 2 + total {
        return None;
    }
    let mut items = Vec::new();
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
        items.push(rest.get(2..2 + len)?);
        rest = rest.get(2 + len..)?;
    }
    Some(items)
}

/// The precertificate's `TBSCertificate` (the leaf's, without the SCT extension, re-encoded)
/// and the SCT list's TLS bytes.
pub(crate) fn split_tbs(cert: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let (_, cert_content) = tlv(cert)?;
    let (_, tbs_content) = tlv(cert_content)?;
    let mut fields = Vec::new();
    let mut rest = tbs_content;
    let mut list = None;
    while !rest.is_empty() {
        let (whole, content) = tlv(rest)?;
        rest = rest.get(whole.len()..)?;
        if whole.first() != Some(&0xa3) {
            fields.extend_from_slice(whole);
            continue;
        }
        let (_, extensions) = tlv(content)?;
        let mut kept = Vec::new();
        let mut remaining = extensions;
        while !remaining.is_empty() {
            let (extension, extension_content) = tlv(remaining)?;
            remaining = remaining.get(extension.len()..)?;
            if extension_content.starts_with(SCT_LIST_OID) {
                // [critical BOOLEAN,] extnValue: an OCTET STRING holding the list's OCTET STRING.
                let mut value = extension_content.get(SCT_LIST_OID.len()..)?;
                if value.first() == Some(&0x01) {
                    value = value.get(tlv(value)?.0.len()..)?;
                }
                let (_, outer) = tlv(value)?;
                list = Some(tlv(outer)?.1);
            } else {
                kept.extend_from_slice(extension);
            }
        }
        fields.extend_from_slice(&wrap(0xa3, &wrap(0x30, &kept)));
    }
    Some((wrap(0x30, &fields), list?))
}

/// A DER TLV: `tag`, the definite length, `content`.
pub(crate) fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | u8::try_from(significant.len()).unwrap_or(0));
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use der::{Decode as _, Encode as _};
    use x509_cert::Certificate;

    use super::*;

    /// The keyless containers/image fixture's Fulcio leaf (2023-01-20) and its issuer,
    /// `sigstore-intermediate` of the public-good root.
    fn leaf_and_issuer(root: &TrustedRoot) -> (Vec<u8>, Vec<u8>) {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sigstore/dir-img-cosign-fulcio-rekor-valid/signature-1.json"
        ))
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pem = json["annotations"]["dev.sigstore.cosign/certificate"]
            .as_str()
            .unwrap();
        let (_, leaf) = der::pem::decode_vec(pem.trim().as_bytes()).unwrap();
        let issuer = Certificate::from_der(&root.authorities[1].chain[0]).unwrap();
        let spki = issuer
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap();
        (leaf, spki)
    }

    #[test]
    fn the_real_embedded_sct_verifies_with_the_ct_log_of_its_day() {
        let root = TrustedRoot::public_good().unwrap();
        let (leaf, issuer) = leaf_and_issuer(&root);
        verify(&leaf, &issuer, &root).unwrap();
        // The SCT signs the TBS without the SCT extension: a naive check over the leaf's TBS
        // as it is fails, the rebuilt precertificate TBS verifies.
        let (precert, list) = split_tbs(&leaf).unwrap();
        let sct = Sct::parse(tls_vector(list).unwrap()[0]).unwrap();
        let log = root.ct_logs.iter().find(|l| l.id == sct.log_id).unwrap();
        let issuer_hash = Sha256::digest(&issuer);
        let whole_tbs = tlv(tlv(&leaf).unwrap().1).unwrap().0;
        let naive = signed_data(&sct, whole_tbs, &issuer_hash).unwrap();
        assert!(!log.key.verifies(Hash::Sha256, &naive, sct.signature));
        let rebuilt = signed_data(&sct, &precert, &issuer_hash).unwrap();
        assert!(log.key.verifies(Hash::Sha256, &rebuilt, sct.signature));
    }

    #[test]
    fn an_unknown_log_a_wrong_key_or_another_issuer_is_refused() {
        let root = TrustedRoot::public_good().unwrap();
        let (leaf, issuer) = leaf_and_issuer(&root);
        let mut no_logs = root.clone();
        no_logs.ct_logs.clear();
        assert!(
            verify(&leaf, &issuer, &no_logs)
                .unwrap_err()
                .contains("an SCT from a CT log not in the trusted root")
        );
        let mut wrong_key = root.clone();
        let rekor = root.logs[0].key.clone();
        for log in &mut wrong_key.ct_logs {
            log.key = rekor.clone();
        }
        assert!(
            verify(&leaf, &issuer, &wrong_key)
                .unwrap_err()
                .contains("an SCT's signature does not verify")
        );
        // The issuer key hash is signed too: the root's key in its place does not verify.
        let other = Certificate::from_der(&root.authorities[1].chain[1]).unwrap();
        let other = other
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap();
        assert!(verify(&leaf, &other, &root).is_err());
    }

    #[test]
    fn wrap_encodes_der_lengths() {
        assert_eq!(wrap(0x30, &[1, 2]), [0x30, 2, 1, 2]);
        let long = wrap(0x30, &[0; 200]);
        assert_eq!(long[..3], [0x30, 0x81, 200]);
        let longer = wrap(0x30, &[0; 300]);
        assert_eq!(longer[..4], [0x30, 0x82, 0x01, 0x2c]);
    }
}
