//! Fulcio signing certificates: the chain to a CA of the trusted root at the signing time,
//! the code-signing purpose, and the identity Fulcio wrote into it.
//!
//! Fulcio's certificate profile (sigstore/fulcio `docs/oid-info.md`): the identity is the only
//! Subject Alternative Name (an email or a URI); the OIDC issuer is extension
//! `1.3.6.1.4.1.57264.1.8` (a DER `UTF8String`) or, in older certificates, `…1.1` (raw UTF-8
//! bytes); `…1.12` is the source repository URI and `…1.13` its commit digest.

use der::asn1::{ObjectIdentifier, Utf8StringRef};
use der::{Decode as _, Encode as _};
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use super::key::{Hash, PublicKey};
use super::trusted_root::TrustedRoot;

const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const SOURCE_REPOSITORY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.12");
const SOURCE_COMMIT: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.13");

/// What a verified Fulcio certificate says about its holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedIdentity {
    /// The SAN: an email or a URI (for GitHub Actions, the workflow ref).
    pub identity: String,
    pub issuer: Option<String>,
    pub source_repository: Option<String>,
    pub source_commit: Option<String>,
}

/// A leaf that chains to a Fulcio CA of `root` at `time`: its key and identity.
pub fn verify(
    leaf_der: &[u8],
    root: &TrustedRoot,
    time: i64,
) -> Result<(PublicKey, CertifiedIdentity), String> {
    let leaf = Certificate::from_der(leaf_der).map_err(|e| format!("not a certificate: {e}"))?;
    if !valid_at(&leaf, time) {
        return Err(format!(
            "the certificate is not valid at the signing time {time} (valid {} to {})",
            leaf.tbs_certificate().validity().not_before,
            leaf.tbs_certificate().validity().not_after
        ));
    }
    let issuer = root
        .authorities
        .iter()
        .filter(|ca| ca.valid.contains(time))
        .find(|ca| chains(leaf_der, &ca.chain, time))
        .and_then(|ca| ca.chain.first())
        .ok_or_else(|| {
            format!(
                "the certificate does not chain to a Fulcio CA of the trusted root valid at {time}"
            )
        })?;
    // A root without CT logs (GitHub's, a private one) has no SCT to check against.
    if !root.ct_logs.is_empty() {
        let issuer_spki = Certificate::from_der(issuer)
            .ok()
            .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
            .ok_or("unreadable issuer certificate")?;
        super::sct::verify(leaf_der, &issuer_spki, root)?;
    }
    let eku = leaf
        .tbs_certificate()
        .get_extension::<ExtendedKeyUsage>()
        .map_err(|e| format!("bad extended key usage: {e}"))?;
    if !eku.is_some_and(|(_, eku)| eku.0.contains(&CODE_SIGNING)) {
        return Err("the certificate is not for code signing".into());
    }
    let spki = leaf
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| e.to_string())?;
    let key = PublicKey::from_spki_der(&spki).ok_or("unsupported certificate key")?;
    Ok((key, identity(&leaf)?))
}

/// `cert` (DER) is signed by `chain[0]`, each link by the next, all valid at `time`.
fn chains(cert: &[u8], chain: &[Vec<u8>], time: i64) -> bool {
    let mut child = cert;
    for issuer in chain {
        let Ok(parsed) = Certificate::from_der(issuer) else {
            return false;
        };
        if !valid_at(&parsed, time) || !signed_by(child, &parsed) {
            return false;
        }
        child = issuer;
    }
    true
}

fn valid_at(cert: &Certificate, time: i64) -> bool {
    let validity = cert.tbs_certificate().validity();
    let seconds = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    matches!(
        (seconds(validity.not_before), seconds(validity.not_after)),
        (Some(start), Some(end)) if start <= time && time <= end
    )
}

/// Whether `child` (DER) carries a valid signature by `issuer`'s key.
fn signed_by(child: &[u8], issuer: &Certificate) -> bool {
    let Ok(parsed) = Certificate::from_der(child) else {
        return false;
    };
    let hash = match parsed.signature_algorithm().oid {
        oid if oid == ECDSA_SHA256 => Hash::Sha256,
        oid if oid == ECDSA_SHA384 => Hash::Sha384,
        _ => return false,
    };
    let (Some(tbs), Some(signature)) = (tbs_bytes(child), parsed.signature().as_bytes()) else {
        return false;
    };
    issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()
        .and_then(|der| PublicKey::from_spki_der(&der))
        .is_some_and(|key| key.verifies(hash, tbs, signature))
}

/// The exact `TBSCertificate` bytes: the first element of the outer SEQUENCE.
fn tbs_bytes(cert: &[u8]) -> Option<&[u8]> {
    let (_, content) = tlv(cert)?;
    let (whole, _) = tlv(content)?;
    Some(whole)
}

/// Splits one DER TLV at the start of `bytes`: (the whole TLV, its content).
pub(crate) fn tlv(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *bytes.get(1)?;
    let (header, length) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let length = bytes
            .get(2..2 + count)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + count, length)
    };
    let end = header.checked_add(length)?;
    Some((bytes.get(..end)?, bytes.get(header..end)?))
}

pub(crate) fn identity(leaf: &Certificate) -> Result<CertifiedIdentity, String> {
    let san = leaf
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .map_err(|e| format!("bad subject alternative name: {e}"))?
        .ok_or("the certificate has no subject alternative name")?
        .1;
    let identity = san
        .0
        .iter()
        .find_map(|name| match name {
            GeneralName::Rfc822Name(email) => Some(email.to_string()),
            GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
            _ => None,
        })
        .ok_or("the certificate names no email or URI identity")?;
    let extension = |oid: ObjectIdentifier| {
        leaf.tbs_certificate()
            .extensions()
            .and_then(|all| all.iter().find(|e| e.extn_id == oid))
            .map(|e| e.extn_value.as_bytes().to_vec())
    };
    let utf8 = |oid| {
        extension(oid).and_then(|bytes| {
            Utf8StringRef::from_der(&bytes)
                .ok()
                .map(|s| s.as_str().to_owned())
        })
    };
    let issuer = utf8(ISSUER_V2)
        .or_else(|| extension(ISSUER_V1).and_then(|bytes| String::from_utf8(bytes).ok()));
    Ok(CertifiedIdentity {
        identity,
        issuer,
        source_repository: utf8(SOURCE_REPOSITORY),
        source_commit: utf8(SOURCE_COMMIT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlv_splits_short_and_long_forms_and_refuses_truncation() {
        assert_eq!(
            tlv(&[0x30, 0x01, 0xaa, 0xbb]),
            Some((&[0x30, 0x01, 0xaa][..], &[0xaa][..]))
        );
        let long = [&[0x30, 0x81, 0x02][..], &[1, 2]].concat();
        assert_eq!(tlv(&long).map(|(_, c)| c), Some(&[1u8, 2][..]));
        assert_eq!(tlv(&[0x30, 0x05, 0x00]), None);
        assert_eq!(tlv(&[0x30]), None);
    }
}
