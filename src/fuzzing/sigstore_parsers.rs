//! The Sigstore verifier's lower parsers, for the fuzz targets: the DER and protobuf walkers
//! of gitsign's CMS, Fulcio certificates (identity extensions, embedded SCTs, the chain),
//! public keys (PEM and SPKI), trusted roots, signer payloads, base64 and RFC 3339 times.
//! `Err` names a broken invariant; a refusal is `Ok`.

use der::{Decode as _, Encode as _};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::sigstore::certificate::{self, tlv};
use crate::sigstore::encoding::{base64_decode, rfc3339_seconds};
use crate::sigstore::gitsign::{self, Field};
use crate::sigstore::key::PublicKey;
use crate::sigstore::{Signer, TrustedRoot, sct};

/// gitsign's DER walkers (`tlv`, `children`, `attributes`) and protobuf reader
/// (`protobuf_fields`, `read_varint`) on `bytes`. Invariants: a TLV is a prefix of its input
/// whose content ends it; a content's children put end to end are the content; protobuf
/// fields written back (canonical varints) read back the same and are no longer than what
/// they were read from; a varint written from the first 8 bytes reads back whole.
pub fn walkers(bytes: &[u8]) -> Result<(), String> {
    if let Some((whole, content)) = tlv(bytes) {
        let header = whole.len() - content.len();
        if !bytes.starts_with(whole) || !whole.ends_with(content) || !(2..=6).contains(&header) {
            return Err(format!("tlv split {bytes:02x?} wrongly"));
        }
        if let Some(children) = gitsign::children(content) {
            let joined: Vec<u8> = children
                .iter()
                .flat_map(|(_, t)| t.iter().copied())
                .collect();
            if joined != content || children.iter().any(|(tag, t)| t.first() != Some(tag)) {
                return Err(format!("children of {content:02x?} are not its content"));
            }
        }
        let _ = gitsign::attributes(whole);
    }
    if let Some(fields) = gitsign::protobuf_fields(bytes) {
        let written = write_fields(&fields);
        if written.len() > bytes.len() {
            return Err("protobuf fields written back are longer than their input".into());
        }
        let again = gitsign::protobuf_fields(&written).ok_or("written fields do not read")?;
        if summary(&again) != summary(&fields) {
            return Err(format!("protobuf round trip differs on {bytes:02x?}"));
        }
    }
    let value = u64::from_le_bytes(
        bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    );
    let written = varint(value);
    let mut rest = &written[..];
    if gitsign::read_varint(&mut rest) != Some(value) || !rest.is_empty() {
        return Err(format!("varint {value} does not read back"));
    }
    Ok(())
}

/// protobuf.dev "Encoding": base-128 little-endian groups, high bit = more.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let low = u8::try_from(value & 0x7f).unwrap_or_default();
        value >>= 7;
        if value == 0 {
            out.push(low);
            return out;
        }
        out.push(low | 0x80);
    }
}

fn write_fields(fields: &[(u64, Field<'_>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, field) in fields {
        match field {
            Field::Varint(value) => {
                out.extend(varint(number << 3));
                out.extend(varint(*value));
            }
            Field::Bytes(bytes) => {
                out.extend(varint((number << 3) | 2));
                out.extend(varint(bytes.len() as u64));
                out.extend_from_slice(bytes);
            }
            Field::Other => {}
        }
    }
    out
}

/// Varint and byte fields, in order (other wire types are not kept by the reader).
fn summary(fields: &[(u64, Field<'_>)]) -> Vec<(u64, Option<u64>, Vec<u8>)> {
    fields
        .iter()
        .filter_map(|(n, f)| match f {
            Field::Varint(v) => Some((*n, Some(*v), Vec::new())),
            Field::Bytes(b) => Some((*n, None, b.to_vec())),
            Field::Other => None,
        })
        .collect()
}

/// A DER certificate from a bundle, an annotation or a CMS, through what the verifier runs
/// on a Fulcio leaf, at one minute after its notBefore: the chain to the built-in root, the
/// SCT list parser (each CA of the root as the issuer), the identity extensions; and the
/// same bytes as a public key. Invariants: an identity (SAN) and issuer read from a
/// certificate are spelt in its DER; a verified leaf yields that identity and its own key;
/// the precertificate TBS rebuilt for an SCT is one well-formed TLV; see [`public_key`].
pub fn certificate(der_bytes: &[u8]) -> Result<(), String> {
    public_key(der_bytes)?;
    if let Some((tbs, list)) = sct::split_tbs(der_bytes) {
        if tlv(&tbs).map(|(whole, _)| whole.len()) != Some(tbs.len()) {
            return Err("the rebuilt precertificate TBS is not one TLV".into());
        }
        let within = der_bytes.as_ptr_range();
        let list_at = list.as_ptr_range();
        if list_at.start < within.start || list_at.end > within.end {
            return Err("the SCT list is not bytes of the certificate".into());
        }
        let _ = sct::tls_vector(list);
    }
    let Ok(leaf) = Certificate::from_der(der_bytes) else {
        return Ok(());
    };
    let root = super::sigstore::root()?;
    for ca in &root.authorities {
        let issuer_spki = ca
            .chain
            .first()
            .and_then(|c| Certificate::from_der(c).ok())
            .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
            .ok_or("built-in CA")?;
        let _ = sct::verify(der_bytes, &issuer_spki, root);
    }
    let identity = certificate::identity(&leaf);
    if let Ok(identity) = &identity {
        let spelt = |text: &str| der_bytes.windows(text.len()).any(|w| w == text.as_bytes());
        if !spelt(&identity.identity) || !identity.issuer.as_deref().is_none_or(spelt) {
            return Err(format!("{identity:?} is not spelt in the certificate"));
        }
    }
    let not_before = leaf
        .tbs_certificate()
        .validity()
        .not_before
        .to_unix_duration();
    let time = i64::try_from(not_before.as_secs()).unwrap_or(i64::MAX - 60) + 60;
    if let Ok((key, certified)) = certificate::verify(der_bytes, root, time) {
        let own = leaf
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .ok()
            .and_then(|spki| PublicKey::from_spki_der(&spki));
        if identity.as_ref().ok() != Some(&certified) || own != Some(key) {
            return Err("a verified leaf's identity or key is not its own".into());
        }
    }
    Ok(())
}

/// `bytes` as a DER `SubjectPublicKeyInfo` and as PEM text, as a policy's or a root's key is
/// read. Invariants: a key keeps its DER; PEM → DER → key and back gives the same key.
pub fn public_key(bytes: &[u8]) -> Result<(), String> {
    let through_pem = |key: &PublicKey| -> Result<(), String> {
        let pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, key.der())
            .map_err(|e| e.to_string())?;
        if PublicKey::from_pem(&pem).as_ref() != Some(key) {
            return Err("a key written as PEM does not read back".into());
        }
        Ok(())
    };
    if let Some(key) = PublicKey::from_spki_der(bytes) {
        if key.der() != bytes {
            return Err("a key does not keep its DER".into());
        }
        through_pem(&key)?;
    }
    if let Some(key) = std::str::from_utf8(bytes)
        .ok()
        .and_then(PublicKey::from_pem)
    {
        through_pem(&key)?;
    }
    Ok(())
}

/// `bytes` as base64, as an RFC 3339 time, as a trusted root and as a signer payload.
/// Invariants: base64 encode → decode is the identity, and what decodes re-encodes to text
/// that decodes the same; seconds → RFC 3339 text → seconds is the identity (for years 0 to
/// 9999, the text written here from Hinnant's `civil_from_days`), and a time that parses
/// writes back to text that parses to it (the same text, without fraction or leap second); a parsed root's digest is of its bytes and its
/// log keys keep their ids' length; a signer payload that parses is its own canonical form.
pub fn encodings(bytes: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    let encoded = crate::base64::encode(bytes);
    if base64_decode(&encoded).as_deref() != Some(bytes)
        || base64_decode(encoded.trim_end_matches('=')).as_deref() != Some(bytes)
    {
        return Err("base64 encode then decode is not the identity".into());
    }
    if let Some(decoded) = base64_decode(&text)
        && base64_decode(&crate::base64::encode(&decoded)) != Some(decoded)
    {
        return Err(format!("{text:?} decodes to bytes that do not round trip"));
    }
    // Years 0000 to 9999: what RFC 3339's four-digit year can write.
    let span = 253_402_300_800 + 62_167_219_200;
    let seconds = i64::from_le_bytes(
        bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    )
    .rem_euclid(span)
        - 62_167_219_200;
    let written = rfc3339(seconds);
    if rfc3339_seconds(&written) != Some(seconds) {
        return Err(format!("{seconds} written as {written} does not read back"));
    }
    if let Some(parsed) = rfc3339_seconds(&text) {
        let again = rfc3339(parsed);
        if rfc3339_seconds(&again) != Some(parsed) {
            return Err(format!(
                "{text:?} read as {parsed}, written {again}, differs"
            ));
        }
        // Without a fraction or a leap second, RFC 3339's grammar has one spelling per time.
        if text.len() == 20 && !text.ends_with(":60Z") && again != text {
            return Err(format!("{text:?} read as {parsed}, which is {again}"));
        }
    }
    if let Ok(root) = TrustedRoot::parse(bytes) {
        if root.sha256 != crate::hex::encode(&Sha256::digest(bytes)) {
            return Err("a root's digest is not of its bytes".into());
        }
        for log in root.logs.iter().chain(&root.ct_logs) {
            if PublicKey::from_spki_der(log.key.der()).as_ref() != Some(&log.key) {
                return Err("a root's log key does not read back".into());
            }
        }
        if root.authorities.iter().any(|ca| ca.chain.is_empty()) {
            return Err("a root's CA has no certificate".into());
        }
    }
    if let Some(signer) = Signer::parse(bytes)
        && signer.payload().as_bytes() != bytes
    {
        return Err("a signer payload parsed from a non-canonical form".into());
    }
    Ok(())
}

/// `seconds` since the epoch as `YYYY-MM-DDThh:mm:ssZ` (Hinnant's `civil_from_days`).
fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}
