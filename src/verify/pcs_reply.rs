//! One answer of a PCS or PCCS and what is read from it: an issuer-chain header
//! (URL-encoded PEM), a signed JSON object kept as the exact bytes Intel signed, a CRL as
//! DER or hex. Shapes as in dcap-qvl 0.7.1 `src/collateral.rs` (see `pcs.rs`).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::pcs::PcsError;
use crate::hex;

/// One answer: the headers asked for and the capped body.
pub struct Reply {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, names: &[&'static str]) -> Result<String, PcsError> {
        let value = names
            .iter()
            .find_map(|name| {
                self.headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| PcsError::MissingHeader {
                url: self.url.clone(),
                header: names.first().copied().unwrap_or_default(),
            })?;
        percent_decode(value)
            .ok_or_else(|| self.malformed("an issuer chain header is not URL-encoded UTF-8"))
    }

    pub fn malformed(&self, detail: impl Into<String>) -> PcsError {
        PcsError::Malformed {
            url: self.url.clone(),
            detail: detail.into(),
        }
    }
}

/// `{"tcbInfo": .., "signature": ..}` and `{"enclaveIdentity": .., "signature": ..}`: the
/// signed object is kept as the exact bytes it was signed as.
#[derive(Deserialize)]
struct Signed<'a> {
    #[serde(borrow, alias = "tcbInfo", alias = "enclaveIdentity")]
    body: &'a RawValue,
    signature: String,
}

/// The signed object (exact bytes) and its signature, with `id` as expected.
pub fn signed_json(reply: &Reply, id: &str) -> Result<(String, Vec<u8>), PcsError> {
    let signed: Signed<'_> = serde_json::from_slice(&reply.body)
        .map_err(|e| reply.malformed(format!("not the signed JSON expected: {e}")))?;
    let actual = serde_json::from_str::<serde_json::Value>(signed.body.get())
        .ok()
        .and_then(|v| v.get("id").and_then(|i| i.as_str().map(str::to_owned)))
        .unwrap_or_default();
    if actual != id {
        return Err(reply.malformed(format!("its id is {actual:?}, not {id:?}")));
    }
    let signature = hex::decode(&signed.signature.to_ascii_lowercase())
        .ok_or_else(|| reply.malformed("its signature is not hex"))?;
    Ok((signed.body.get().to_owned(), signature))
}

/// A CRL as DER (Intel's PCS with `encoding=der`) or hex text (a PCCS): DER bytes, if it is
/// either.
pub fn crl_bytes(body: &[u8]) -> Option<Vec<u8>> {
    if body.first() == Some(&0x30) {
        return Some(body.to_vec());
    }
    let text = std::str::from_utf8(body).ok()?.trim().to_ascii_lowercase();
    hex::decode(&text).filter(|der| der.first() == Some(&0x30))
}

/// `%XX` escapes decoded (a `+` stays a `+`: it is base64 in a PEM); `None` if the result is
/// not UTF-8 or an escape is malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let pair = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(pair, 16).ok()?);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("-----BEGIN%20CERTIFICATE-----%0AMII+a/b=%0A").as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nMII+a/b=\n")
        );
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn crls_as_der_or_hex() {
        assert_eq!(crl_bytes(&[0x30, 0x01, 0x00]), Some(vec![0x30, 0x01, 0x00]));
        assert_eq!(crl_bytes(b"300100\n"), Some(vec![0x30, 0x01, 0x00]));
        assert_eq!(crl_bytes(b"3A0100"), None);
        assert_eq!(crl_bytes(b"<html>"), None);
    }

    #[test]
    fn signed_objects_keep_their_bytes() {
        let reply = |body: &str| Reply {
            url: "u".into(),
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        };
        let (body, signature) = signed_json(
            &reply(r#"{"tcbInfo":{"id":"TDX", "b":1},"signature":"0aFF"}"#),
            "TDX",
        )
        .unwrap();
        assert_eq!(body, r#"{"id":"TDX", "b":1}"#);
        assert_eq!(signature, vec![0x0a, 0xff]);
        let wrong = signed_json(
            &reply(r#"{"enclaveIdentity":{"id":"QE"},"signature":""}"#),
            "TD_QE",
        );
        assert_eq!(
            wrong.unwrap_err().to_string(),
            r#"u: its id is "QE", not "TD_QE""#
        );
    }
}
