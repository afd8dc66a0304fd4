//! Public keys as Sigstore uses them (DER `SubjectPublicKeyInfo`: ECDSA P-256/P-384, Ed25519)
//! and signature checks with ring.

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::SubjectPublicKeyInfoRef;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The hash a signature was made over (ECDSA); Ed25519 signs the message itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    Ed25519,
}

/// A parsed public key: its curve and raw point, plus the DER it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    curve: Curve,
    point: Vec<u8>,
    der: Vec<u8>,
}

impl PublicKey {
    /// Parses a DER `SubjectPublicKeyInfo`; `None` for anything but P-256, P-384 or Ed25519.
    #[must_use]
    pub fn from_spki_der(der: &[u8]) -> Option<Self> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).ok()?;
        let curve = if spki.algorithm.oid == ED25519 {
            Curve::Ed25519
        } else if spki.algorithm.oid == EC_PUBLIC_KEY {
            let named: ObjectIdentifier = spki.algorithm.parameters?.decode_as().ok()?;
            if named == P256 {
                Curve::P256
            } else if named == P384 {
                Curve::P384
            } else {
                return None;
            }
        } else {
            return None;
        };
        Some(Self {
            curve,
            point: spki.subject_public_key.as_bytes()?.to_vec(),
            der: der.to_vec(),
        })
    }

    /// Parses a `-----BEGIN PUBLIC KEY-----` PEM document.
    #[must_use]
    pub fn from_pem(text: &str) -> Option<Self> {
        let (label, der) = der::pem::decode_vec(text.trim().as_bytes()).ok()?;
        (label == "PUBLIC KEY").then_some(())?;
        Self::from_spki_der(&der)
    }

    /// The DER `SubjectPublicKeyInfo`.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether `sig` (ASN.1 DER for ECDSA) signs `message` hashed with `hash`.
    #[must_use]
    pub fn verifies(&self, hash: Hash, message: &[u8], sig: &[u8]) -> bool {
        let algorithm: &'static dyn VerificationAlgorithm = match (self.curve, hash) {
            (Curve::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
            (Curve::P256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
            (Curve::P384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
            (Curve::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
            (Curve::Ed25519, _) => &signature::ED25519,
        };
        UnparsedPublicKey::new(algorithm, &self.point)
            .verify(message, sig)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_real_cosign_keys_and_refuses_other_pem() {
        let key =
            PublicKey::from_pem(include_str!("../../tests/fixtures/sigstore/cosign.pub")).unwrap();
        assert_eq!(key.curve, Curve::P256);
        assert_eq!(key.point.len(), 65);
        assert!(
            PublicKey::from_pem(include_str!(
                "../../tests/fixtures/sigstore/fulcio_v1.crt.pem"
            ))
            .is_none(),
            "a certificate is not a public key"
        );
        assert!(PublicKey::from_pem("not pem").is_none());
    }
}
