//! The signature policy of the attested config, and the signer a verification proved.

use std::path::PathBuf;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::certificate::CertifiedIdentity;
use super::key::PublicKey;
use crate::hex;

/// `[image.signature]` / `[git.signature]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignaturePolicy {
    pub signer: SignerPolicy,
    /// A trusted root file; the built-in public-good root when `None`.
    pub trusted_root: Option<PathBuf>,
    /// Whether a transparency-log entry (Rekor SET) is required; always for keyless.
    pub transparency_log: bool,
}

/// Who must have signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerPolicy {
    /// cosign key-based: this key.
    Key(PublicKey),
    /// Keyless: a Fulcio certificate for this OIDC issuer and identity.
    Keyless { issuer: String, identity: Identity },
}

/// The certificate identity (SAN): exact, or a regular expression matching all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Exact(String),
    Regex(String),
}

impl Identity {
    /// The pattern anchored at both ends, compiled; the config check compiles it first.
    pub fn compile(pattern: &str) -> Result<regex_lite::Regex, regex_lite::Error> {
        regex_lite::Regex::new(&format!("^(?:{pattern})$"))
    }

    #[must_use]
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            Self::Exact(expected) => expected == identity,
            Self::Regex(pattern) => Self::compile(pattern).is_ok_and(|re| re.is_match(identity)),
        }
    }
}

/// `key:sha256:<hex of the key's DER SubjectPublicKeyInfo>`: a key signer's identity.
#[must_use]
pub fn key_identity(key: &PublicKey) -> String {
    format!("key:sha256:{}", hex::encode(&Sha256::digest(key.der())))
}

impl SignerPolicy {
    /// What `plan --json` shows as the expected signer.
    #[must_use]
    pub fn expected_json(&self) -> serde_json::Value {
        match self {
            Self::Key(key) => serde_json::json!({ "identity": key_identity(key) }),
            Self::Keyless {
                issuer,
                identity: Identity::Exact(identity),
            } => serde_json::json!({ "identity": identity, "issuer": issuer }),
            Self::Keyless {
                issuer,
                identity: Identity::Regex(pattern),
            } => serde_json::json!({ "identity_regex": pattern, "issuer": issuer }),
        }
    }

    /// Checks a certificate's identity against a keyless policy.
    pub fn admits(&self, certified: &CertifiedIdentity) -> Result<(), String> {
        let Self::Keyless { issuer, identity } = self else {
            return Err("the policy names a key, not a certificate identity".into());
        };
        if certified.issuer.as_deref() != Some(issuer.as_str()) {
            return Err(format!(
                "certificate issuer {:?} is not the policy's {issuer:?}",
                certified.issuer.as_deref().unwrap_or("(none)")
            ));
        }
        if !identity.matches(&certified.identity) {
            let wanted = match identity {
                Identity::Exact(exact) => format!("{exact:?}"),
                Identity::Regex(pattern) => format!("/^(?:{pattern})$/"),
            };
            return Err(format!(
                "certificate identity {:?} does not match the policy's {wanted}",
                certified.identity
            ));
        }
        Ok(())
    }
}

/// The verified signer: the `trusted-launcher.signer` event's payload. Fields are in
/// lexicographic order and absent ones omitted, so the compact JSON is canonical (JCS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signer {
    /// The certificate's SAN, or `key:sha256:<hex>` for a key.
    pub identity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_repository: Option<String>,
    /// `sha256:<hex>` of the trusted root the chain or log entry was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<String>,
}

impl Signer {
    #[must_use]
    pub fn from_certificate(certified: CertifiedIdentity, root_sha256: &str) -> Self {
        Self {
            identity: certified.identity,
            issuer: certified.issuer,
            source_commit: certified.source_commit,
            source_repository: certified.source_repository,
            trusted_root: Some(format!("sha256:{root_sha256}")),
        }
    }

    /// The event payload: compact JSON, keys sorted.
    #[must_use]
    pub fn payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a payload back (verify); `None` unless it is exactly the canonical form.
    #[must_use]
    pub fn parse(payload: &[u8]) -> Option<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            identity: String,
            issuer: Option<String>,
            source_commit: Option<String>,
            source_repository: Option<String>,
            trusted_root: Option<String>,
        }
        let raw: Raw = serde_json::from_slice(payload).ok()?;
        let signer = Self {
            identity: raw.identity,
            issuer: raw.issuer,
            source_commit: raw.source_commit,
            source_repository: raw.source_repository,
            trusted_root: raw.trusted_root,
        };
        (signer.payload().as_bytes() == payload).then_some(signer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_canonical_and_parses_back() {
        let signer = Signer {
            identity: "https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1".into(),
            issuer: Some("https://token.actions.githubusercontent.com".into()),
            source_commit: None,
            source_repository: Some("https://github.com/o/r".into()),
            trusted_root: Some("sha256:00".into()),
        };
        let payload = signer.payload();
        assert_eq!(
            payload,
            r#"{"identity":"https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1","issuer":"https://token.actions.githubusercontent.com","source_repository":"https://github.com/o/r","trusted_root":"sha256:00"}"#
        );
        assert_eq!(Signer::parse(payload.as_bytes()), Some(signer));
        // Not canonical (spaces, reordered) or with extra keys: refused.
        assert_eq!(Signer::parse(br#"{"identity": "a"}"#), None);
        assert_eq!(Signer::parse(br#"{"issuer":"b","identity":"a"}"#), None);
        assert_eq!(Signer::parse(br#"{"identity":"a","x":"b"}"#), None);
    }

    #[test]
    fn identity_regex_is_anchored() {
        let id = Identity::Regex(r"https://github\.com/org/app/\.github/workflows/.*".into());
        assert!(
            id.matches("https://github.com/org/app/.github/workflows/release.yml@refs/tags/v1")
        );
        // Unanchored, this naive match would accept another repository's workflow.
        let naive =
            regex_lite::Regex::new(r"https://github\.com/org/app/\.github/workflows/.*").unwrap();
        let evil = "https://github.com/evil/x?https://github.com/org/app/.github/workflows/a";
        assert!(naive.is_match(evil));
        assert!(!id.matches(evil));
    }
}
