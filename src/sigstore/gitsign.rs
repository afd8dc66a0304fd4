//! gitsign commit signatures: a CMS `SignedData` (PEM `SIGNED MESSAGE`) in the commit's
//! `gpgsig` header, signed by a Fulcio certificate, with the Rekor entry embedded as an
//! unsigned attribute (gitsign's offline mode).
//!
//! Formats: git `commit.c` `parse_signed_commit` (the signed bytes are the commit object
//! without the `gpgsig` header and its continuation lines); RFC 5652 §5 (`SignedData`,
//! `SignerInfo`; the signature covers the DER of `signedAttrs` re-tagged as a SET, whose
//! `messageDigest` is the SHA-256 of the signed bytes); sigstore/gitsign
//! `internal/rekor/oid` (attribute `1.3.6.1.4.1.57264.3.1`: a protobuf
//! `dev.sigstore.rekor.v1.TransparencyLogEntry`, whose hashedrekord entry hashes the
//! signed attributes). Only entries embedded in the signature are used: no Rekor lookup.

use der::Decode as _;
use der::asn1::ObjectIdentifier;
use sha2::{Digest as _, Sha256};

use super::certificate::{self, tlv};
use super::key::Hash;
use super::policy::{SignaturePolicy, Signer, SignerPolicy};
use super::rekor::{self, Entry, Expected};
use super::trusted_root::TrustedRoot;

const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const REKOR_ENTRY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.3.1");

/// Splits a commit object into the signed bytes and the `gpgsig` value.
pub fn split_signature(commit: &[u8]) -> Result<(Vec<u8>, String), String> {
    let text = std::str::from_utf8(commit).map_err(|_| "the commit is not UTF-8")?;
    let header_end = text.find("\n\n").map_or(text.len(), |i| i + 1);
    let (headers, message) = text.split_at(header_end);
    let mut signed = String::with_capacity(text.len());
    let mut signature: Option<Vec<&str>> = None;
    let mut in_signature = false;
    for line in headers.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("gpgsig ") {
            if signature.is_some() {
                return Err("the commit has two gpgsig headers".into());
            }
            signature = Some(vec![rest.trim_end_matches('\n')]);
            in_signature = true;
        } else if in_signature && let Some(rest) = line.strip_prefix(' ') {
            if let Some(lines) = signature.as_mut() {
                lines.push(rest.trim_end_matches('\n'));
            }
        } else {
            in_signature = false;
            signed.push_str(line);
        }
    }
    signed.push_str(message);
    let signature = signature.ok_or("the commit is not signed (no gpgsig header)")?;
    Ok((signed.into_bytes(), signature.join("\n")))
}

/// Verifies a gitsign signature on `commit` (the raw object, as hashed into its id) under
/// a keyless `policy`; the signer it proves.
pub fn verify(
    commit: &[u8],
    policy: &SignaturePolicy,
    root: &TrustedRoot,
) -> Result<Signer, String> {
    if matches!(policy.signer, SignerPolicy::Key(_)) {
        return Err("gitsign signatures are keyless: the policy needs issuer and identity".into());
    }
    let (signed, armored) = split_signature(commit)?;
    let (label, cms) =
        der::pem::decode_vec(armored.as_bytes()).map_err(|e| format!("gpgsig is not PEM: {e}"))?;
    if label != "SIGNED MESSAGE" {
        return Err(format!("gpgsig is a {label}, not a gitsign SIGNED MESSAGE"));
    }
    verify_cms(&signed, &cms, policy, root)
}

/// Verifies `cms` (the gpgsig's DER `ContentInfo`) as a gitsign signature of `signed` (the
/// commit without its gpgsig header) under a keyless `policy`.
pub(crate) fn verify_cms(
    signed: &[u8],
    cms: &[u8],
    policy: &SignaturePolicy,
    root: &TrustedRoot,
) -> Result<Signer, String> {
    let parts = SignerParts::parse(cms).ok_or("gpgsig is not a CMS SignedData")?;
    let signed_attributes = attributes(parts.signed_attrs).ok_or("malformed signed attributes")?;
    let digest = signed_attributes
        .iter()
        .find(|(oid, _)| *oid == MESSAGE_DIGEST)
        .and_then(|(_, value)| tlv(value).map(|(_, content)| content))
        .ok_or("no messageDigest attribute")?;
    if digest != Sha256::digest(signed).as_slice() {
        return Err("the signature's messageDigest is not the commit's".into());
    }
    // What the signature signs: the attributes' DER with the [0] IMPLICIT tag made a SET.
    let mut signed_attrs = parts.signed_attrs.to_vec();
    if let Some(tag) = signed_attrs.first_mut() {
        *tag = 0x31;
    }
    let unsigned = parts
        .unsigned_attrs
        .and_then(attributes)
        .unwrap_or_default();
    let entry = unsigned
        .iter()
        .find(|(oid, _)| *oid == REKOR_ENTRY)
        .and_then(|(_, value)| tlv(value).map(|(_, content)| content))
        .ok_or("no embedded Rekor entry (sign with gitsign's offline mode)")?;
    let expected = Expected {
        payload: &signed_attrs,
        signature: parts.signature,
        signer_der: parts.certificate,
    };
    let (entry, set) =
        log_entry(entry, &expected).ok_or("the embedded Rekor entry is malformed")?;
    let time = rekor::verify(&entry, &set, root, &expected).map_err(|e| format!("Rekor: {e}"))?;
    let (key, certified) = certificate::verify(parts.certificate, root, time)?;
    policy.signer.admits(&certified)?;
    if !key.verifies(Hash::Sha256, &signed_attrs, parts.signature) {
        return Err("the signature does not verify".into());
    }
    Ok(Signer::from_certificate(certified, &root.sha256))
}

/// The pieces of a one-signer `SignedData` the check needs.
struct SignerParts<'a> {
    certificate: &'a [u8],
    signed_attrs: &'a [u8],
    signature: &'a [u8],
    unsigned_attrs: Option<&'a [u8]>,
}

impl<'a> SignerParts<'a> {
    fn parse(cms: &'a [u8]) -> Option<Self> {
        let (_, content_info) = tlv(cms)?;
        let [_, explicit] = children(content_info)?[..] else {
            return None;
        };
        let (_, signed_data) = tlv(explicit.1)?;
        let (_, signed_data) = tlv(signed_data)?;
        let fields = children(signed_data)?;
        let certificates = fields.iter().find(|(tag, _)| *tag == 0xa0)?;
        let certificate = children(tlv(certificates.1)?.1)?.first()?.1;
        let signer_infos = fields.iter().rfind(|(tag, _)| *tag == 0x31)?;
        let [(_, signer_info)] = children(tlv(signer_infos.1)?.1)?[..] else {
            return None;
        };
        let info = children(tlv(signer_info)?.1)?;
        let signed_attrs = info.iter().find(|(tag, _)| *tag == 0xa0)?.1;
        let signature = tlv(info.iter().find(|(tag, _)| *tag == 0x04)?.1)?.1;
        let unsigned_attrs = info.iter().find(|(tag, _)| *tag == 0xa1).map(|(_, t)| *t);
        Some(Self {
            certificate,
            signed_attrs,
            signature,
            unsigned_attrs,
        })
    }
}

/// The TLVs inside `content`, each as (tag, whole TLV).
pub(crate) fn children(mut content: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (whole, _) = tlv(content)?;
        out.push((*whole.first()?, whole));
        content = content.get(whole.len()..)?;
    }
    Some(out)
}

/// `Attribute ::= SEQUENCE { type OID, values SET OF ANY }` within a [0]/[1] attribute set:
/// each type with its first value (a whole TLV).
pub(crate) fn attributes(set: &[u8]) -> Option<Vec<(ObjectIdentifier, &[u8])>> {
    let (_, content) = tlv(set)?;
    children(content)?
        .into_iter()
        .map(|(_, attribute)| {
            let [(_, oid), (_, values)] = children(tlv(attribute)?.1)?[..] else {
                return None;
            };
            let oid = ObjectIdentifier::from_der(oid).ok()?;
            let first = children(tlv(values)?.1)?.first()?.1;
            Some((oid, first))
        })
        .collect()
}

/// The protobuf `TransparencyLogEntry`'s fields a SET check needs: `log_index` (1),
/// `log_id.key_id` (2.1), `integrated_time` (4), `inclusion_promise.signed_entry_timestamp`
/// (5.1), `canonicalized_body` (7). gitsign leaves the body out; it is then rebuilt from
/// what it must record (the SET covers it, so a wrong rebuild fails, it cannot pass).
fn log_entry(bytes: &[u8], expected: &Expected<'_>) -> Option<(Entry, Vec<u8>)> {
    let fields = protobuf_fields(bytes)?;
    let varint = |number| {
        fields.iter().find_map(|(n, v)| match v {
            Field::Varint(x) if *n == number => i64::try_from(*x).ok(),
            _ => None,
        })
    };
    let log_id = protobuf_fields(bytes_field(&fields, 2)?)?;
    let promise = protobuf_fields(bytes_field(&fields, 5)?)?;
    Some((
        Entry {
            body: match bytes_field(&fields, 7) {
                Some(body) => crate::base64::encode(body),
                None => crate::base64::encode(hashedrekord_body(expected)?.as_bytes()),
            },
            integrated_time: varint(4)?,
            log_index: varint(1)?,
            log_id: bytes_field(&log_id, 1)?.to_vec(),
        },
        bytes_field(&promise, 1)?.to_vec(),
    ))
}

/// Rekor's canonical hashedrekord 0.0.1 body (sorted keys, no spaces; the key or
/// certificate as base64 of its PEM, 64-column lines), as rekor
/// `pkg/types/hashedrekord/v0.0.1` writes it.
fn hashedrekord_body(expected: &Expected<'_>) -> Option<String> {
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, expected.signer_der)
        .ok()?;
    Some(format!(
        "{{\"apiVersion\":\"0.0.1\",\"kind\":\"hashedrekord\",\"spec\":{{\"data\":{{\"hash\":{{\"algorithm\":\"sha256\",\"value\":\"{}\"}}}},\"signature\":{{\"content\":\"{}\",\"publicKey\":{{\"content\":\"{}\"}}}}}}}}",
        crate::hex::encode(&Sha256::digest(expected.payload)),
        crate::base64::encode(expected.signature),
        crate::base64::encode(pem.as_bytes())
    ))
}

/// A protobuf field's value: a varint or a length-delimited byte string (other wire types
/// are skipped).
pub(crate) enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

fn bytes_field<'a>(fields: &[(u64, Field<'a>)], number: u64) -> Option<&'a [u8]> {
    fields.iter().find_map(|(n, v)| match v {
        Field::Bytes(b) if *n == number => Some(*b),
        _ => None,
    })
}

/// Protobuf wire format (protobuf.dev "Encoding"): `(field number << 3 | wire type)` varint
/// keys; wire types 0 (varint), 1 (8 bytes), 2 (length-delimited), 5 (4 bytes).
pub(crate) fn protobuf_fields(mut bytes: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = read_varint(&mut bytes)?;
        let field = match key & 7 {
            0 => Field::Varint(read_varint(&mut bytes)?),
            1 | 5 => {
                let size = if key & 7 == 1 { 8 } else { 4 };
                bytes = bytes.get(size..)?;
                Field::Other
            }
            2 => {
                let length = usize::try_from(read_varint(&mut bytes)?).ok()?;
                let value = bytes.get(..length)?;
                bytes = bytes.get(length..)?;
                Field::Bytes(value)
            }
            _ => return None,
        };
        out.push((key >> 3, field));
    }
    Some(out)
}

pub(crate) fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore::Identity;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sigstore/gitsign"
    );
    const BILLY: &str = "billy@chainguard.dev";
    const GOOGLE: &str = "https://accounts.google.com";

    fn read(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn policy(issuer: &str, identity: &str) -> SignaturePolicy {
        SignaturePolicy {
            signer: SignerPolicy::Keyless {
                issuer: issuer.into(),
                identity: Identity::Exact(identity.into()),
            },
            trusted_root: None,
            transparency_log: true,
        }
    }

    fn check(commit: &[u8], policy: &SignaturePolicy) -> Result<Signer, String> {
        verify(commit, policy, &TrustedRoot::public_good().unwrap())
    }

    #[test]
    fn real_gitsign_commits_verify_with_their_signer() {
        for name in ["offline.commit", "commit.txt"] {
            let signer = check(&read(name), &policy(GOOGLE, BILLY))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(signer.identity, BILLY);
            assert_eq!(signer.issuer.as_deref(), Some(GOOGLE));
        }
    }

    #[test]
    fn the_signed_bytes_are_the_commit_without_its_gpgsig_lines() {
        let commit = read("offline.commit");
        let (signed, armored) = split_signature(&commit).unwrap();
        let signed = String::from_utf8(signed).unwrap();
        assert!(signed.starts_with("tree 045f683042529876c1fe28f97f416c1501ffa433\nparent "));
        assert!(signed.contains("-0400\n\nMon Jun  5 12:11:17 EDT 2023\n"));
        assert!(!signed.contains("gpgsig"));
        assert!(armored.starts_with("-----BEGIN SIGNED MESSAGE-----\nMIIH"));
        assert!(armored.ends_with("-----END SIGNED MESSAGE-----"));
        assert_eq!(
            split_signature(b"tree 00\n\nunsigned\n").unwrap_err(),
            "the commit is not signed (no gpgsig header)"
        );
    }

    #[test]
    fn a_changed_commit_identity_or_signature_is_refused() {
        let commit = String::from_utf8(read("offline.commit")).unwrap();
        // Another tree under the same signature: the messageDigest no longer matches.
        let other_tree = commit.replacen("tree 045f", "tree 145f", 1);
        assert_eq!(
            check(other_tree.as_bytes(), &policy(GOOGLE, BILLY)).unwrap_err(),
            "the signature's messageDigest is not the commit's"
        );
        let message = commit.replacen("Mon Jun", "Tue Jun", 1);
        assert!(check(message.as_bytes(), &policy(GOOGLE, BILLY)).is_err());
        assert!(
            check(commit.as_bytes(), &policy(GOOGLE, "someone@example.com"))
                .unwrap_err()
                .starts_with("certificate identity")
        );
        assert!(
            check(
                commit.as_bytes(),
                &policy("https://github.com/login/oauth", BILLY)
            )
            .unwrap_err()
            .starts_with("certificate issuer")
        );
        // GitHub's root has no Rekor log and another Fulcio.
        let github = TrustedRoot::parse(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/sigstore/trusted_root.github.json"
            ))
            .unwrap(),
        )
        .unwrap();
        assert!(verify(commit.as_bytes(), &policy(GOOGLE, BILLY), &github).is_err());
        let unsigned = commit.split("gpgsig").next().unwrap().to_owned() + "\nmsg\n";
        assert!(check(unsigned.as_bytes(), &policy(GOOGLE, BILLY)).is_err());
    }

    /// The rebuilt body is byte for byte the one Rekor served for commit.txt (tlog.json).
    #[test]
    fn the_rebuilt_rekor_body_is_rekors() {
        let commit = read("commit.txt");
        let (_, armored) = split_signature(&commit).unwrap();
        let (_, cms) = der::pem::decode_vec(armored.as_bytes()).unwrap();
        let parts = SignerParts::parse(&cms).unwrap();
        let mut signed_attrs = parts.signed_attrs.to_vec();
        signed_attrs[0] = 0x31;
        let body = hashedrekord_body(&Expected {
            payload: &signed_attrs,
            signature: parts.signature,
            signer_der: parts.certificate,
        })
        .unwrap();
        let tlog: serde_json::Value = serde_json::from_slice(&read("tlog.json")).unwrap();
        assert_eq!(
            crate::base64::encode(body.as_bytes()),
            tlog["body"].as_str().unwrap()
        );
    }

    #[test]
    fn protobuf_reader_known_answer() {
        // protobuf.dev "Encoding": field 1 = 150 is 08 96 01; field 2 = "testing" is 12 07 74…
        let fields = protobuf_fields(&[0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i']).unwrap();
        assert!(matches!(fields[0], (1, Field::Varint(150))));
        assert_eq!(bytes_field(&fields, 2), Some(&b"hi"[..]));
        assert!(protobuf_fields(&[0x12, 0x05, b'h']).is_none(), "truncated");
    }
}
