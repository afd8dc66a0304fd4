//! The Sigstore trusted root (`application/vnd.dev.sigstore.trustedroot+json`): the
//! transparency-log keys and Fulcio CA chains a signature is checked against, each with the
//! time window it is trusted for.
//!
//! The built-in root is the public-good instance's TUF target `trusted_root.json` from
//! sigstore/root-signing (`targets/trusted_root.json` at c9bda74a, 2025-09-22; sha256
//! `6494e21e…0b66`, length 6787, as listed by its signed `targets.json` v14). A config may
//! name another file with `trusted_root`.

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::encoding::{base64_decode, rfc3339_seconds};
use super::key::PublicKey;
use crate::hex;

/// The public-good trusted root, byte for byte.
pub const PUBLIC_GOOD: &[u8] =
    include_bytes!("../../assets/sigstore/trusted_root.public-good.json");

/// A validity window in Unix seconds; `end` open when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: Option<i64>,
}

impl Window {
    #[must_use]
    pub fn contains(&self, time: i64) -> bool {
        time >= self.start && self.end.is_none_or(|end| time <= end)
    }
}

/// A transparency log: its id (SHA-256 of its key's DER) and key.
#[derive(Clone, Debug)]
pub struct Log {
    pub id: [u8; 32],
    pub key: PublicKey,
    pub valid: Window,
}

/// A Fulcio CA: its chain (DER, issuing certificate first, root last).
#[derive(Clone, Debug)]
pub struct CertificateAuthority {
    pub chain: Vec<Vec<u8>>,
    pub valid: Window,
}

/// A parsed trusted root and the SHA-256 of its bytes (named in the signer event).
#[derive(Clone, Debug)]
pub struct TrustedRoot {
    pub sha256: String,
    pub logs: Vec<Log>,
    /// Certificate Transparency logs: the keys of the SCTs Fulcio embeds.
    pub ct_logs: Vec<Log>,
    pub authorities: Vec<CertificateAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    media_type: String,
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawAuthority>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    public_key: RawKey,
    log_id: RawLogId,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    valid_for: RawWindow,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLogId {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAuthority {
    cert_chain: RawChain,
    valid_for: RawWindow,
}

#[derive(Deserialize)]
struct RawChain {
    certificates: Vec<RawCertificate>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCertificate {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct RawWindow {
    start: String,
    end: Option<String>,
}

impl RawWindow {
    fn parse(&self) -> Result<Window, String> {
        let time = |text: &str| {
            rfc3339_seconds(text).ok_or_else(|| format!("validFor time {text:?} is not RFC 3339"))
        };
        Ok(Window {
            start: time(&self.start)?,
            end: self.end.as_deref().map(time).transpose()?,
        })
    }
}

/// Transparency or CT logs: key, id, validity.
fn parse_logs(raw: &[RawLog], kind: &str) -> Result<Vec<Log>, String> {
    let mut logs = Vec::new();
    for log in raw {
        let der = base64_decode(&log.public_key.raw_bytes)
            .ok_or_else(|| format!("a {kind} publicKey is not base64"))?;
        let key = PublicKey::from_spki_der(&der)
            .ok_or_else(|| format!("a {kind} publicKey is not a P-256, P-384 or Ed25519 key"))?;
        let id: [u8; 32] = base64_decode(&log.log_id.key_id)
            .and_then(|id| id.try_into().ok())
            .ok_or_else(|| format!("a {kind} logId is not 32 base64 bytes"))?;
        logs.push(Log {
            id,
            key,
            valid: log.public_key.valid_for.parse()?,
        });
    }
    Ok(logs)
}

impl TrustedRoot {
    /// Parses a trusted root; every log key and CA certificate must decode.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let raw: RawRoot = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if !raw
            .media_type
            .starts_with("application/vnd.dev.sigstore.trustedroot")
        {
            return Err(format!(
                "mediaType {:?} is not a trusted root",
                raw.media_type
            ));
        }
        let logs = parse_logs(&raw.tlogs, "tlog")?;
        let ct_logs = parse_logs(&raw.ctlogs, "ctlog")?;
        let mut authorities = Vec::new();
        for ca in &raw.certificate_authorities {
            let chain = ca
                .cert_chain
                .certificates
                .iter()
                .map(|c| base64_decode(&c.raw_bytes).ok_or("a CA certificate is not base64"))
                .collect::<Result<Vec<_>, _>>()?;
            if chain.is_empty() {
                return Err("a certificate authority has no certificates".into());
            }
            authorities.push(CertificateAuthority {
                chain,
                valid: ca.valid_for.parse()?,
            });
        }
        Ok(Self {
            sha256: hex::encode(&Sha256::digest(bytes)),
            logs,
            ct_logs,
            authorities,
        })
    }

    /// The built-in public-good root.
    pub fn public_good() -> Result<Self, String> {
        Self::parse(PUBLIC_GOOD)
    }

    /// The log with this id.
    #[must_use]
    pub fn log(&self, id: &[u8]) -> Option<&Log> {
        self.logs.iter().find(|log| log.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_root_is_the_tuf_target_and_parses() {
        // sha256 and length as sigstore/root-signing's metadata/targets.json v14 lists them.
        let root = TrustedRoot::public_good().unwrap();
        assert_eq!(PUBLIC_GOOD.len(), 6787);
        assert!(root.sha256.starts_with("6494e21e"), "{}", root.sha256);
        assert!(root.sha256.ends_with("0b66"), "{}", root.sha256);
        assert_eq!(root.logs.len(), 2);
        assert_eq!(root.authorities.len(), 2);
        // Rekor v1's log id is the SHA-256 of its key's DER (RFC 6962 §3.2 LogID).
        let rekor = base64_decode("wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=").unwrap();
        let log = root.log(&rekor).unwrap();
        assert_eq!(Sha256::digest(log.key.der()).as_slice(), log.id);
    }

    #[test]
    fn a_root_that_is_not_one_is_refused() {
        assert!(TrustedRoot::parse(b"{}").is_err());
        assert!(TrustedRoot::parse(br#"{"mediaType":"application/json"}"#).is_err());
        let tampered = String::from_utf8(PUBLIC_GOOD.to_vec()).unwrap().replacen(
            "\"rawBytes\": \"MFkw",
            "\"rawBytes\": \"!Fkw",
            1,
        );
        assert!(TrustedRoot::parse(tampered.as_bytes()).is_err());
    }
}
