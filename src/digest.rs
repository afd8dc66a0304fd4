//! Parsed identities: a Git commit id and a SHA-256 digest, each holding raw bytes.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::hex;

/// A full Git commit id: 20 bytes (SHA-1 repositories) or 32 bytes (SHA-256 repositories).
///
/// The only constructor parses exactly 40 or 64 lowercase hex digits, so branches, tags,
/// short ids and uppercase spellings never become a `CommitId`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommitId {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl CommitId {
    pub fn parse(text: &str) -> Option<Self> {
        match text.len() {
            40 => hex::decode_exact(text).map(Self::Sha1),
            64 => hex::decode_exact(text).map(Self::Sha256),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Sha1(bytes) => bytes,
            Self::Sha256(bytes) => bytes,
        }
    }

    #[must_use]
    pub fn object_format(&self) -> ObjectFormat {
        match self {
            Self::Sha1(_) => ObjectFormat::Sha1,
            Self::Sha256(_) => ObjectFormat::Sha256,
        }
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({self})")
    }
}

/// The hash function of a Git repository's object names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl ObjectFormat {
    /// Length in bytes of an object name.
    #[must_use]
    pub fn id_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// The name `git init --object-format` takes.
    #[must_use]
    pub fn git_name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }
}

/// An OCI content digest, `sha256:<64 lowercase hex>`: a manifest or index by content.
///
/// Only SHA-256 is accepted (what every registry and the approved lists use); equality is
/// on the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageDigest([u8; 32]);

impl ImageDigest {
    pub fn parse(text: &str) -> Option<Self> {
        text.strip_prefix("sha256:")
            .and_then(hex::decode_exact::<32>)
            .map(Self)
    }

    /// The digest of `bytes` (a manifest body).
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for ImageDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageDigest({self})")
    }
}

/// A SHA-256 digest, e.g. of the exact bytes of the config file.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_id_accepts_full_lowercase_hex() {
        let sha1 = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
        let id = CommitId::parse(sha1).unwrap();
        assert_eq!(id.to_string(), sha1);
        assert_eq!(id.object_format(), ObjectFormat::Sha1);
        let sha256 = "a".repeat(64);
        assert_eq!(
            CommitId::parse(&sha256).unwrap().object_format(),
            ObjectFormat::Sha256
        );
    }

    #[test]
    fn commit_id_rejects_names_and_short_ids() {
        for bad in [
            "main",
            "v1.0.0",
            "7fd1a60",
            "7FD1A60B01F91B314F59955A4E4D4E80D8EDF11D",
            "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d ",
            "7fd1a60b01f91b314f59955a4e4d4e80d8edf11",
            &"a".repeat(41),
            &"a".repeat(63),
            "",
        ] {
            assert_eq!(CommitId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn image_digest_accepts_only_sha256_lowercase() {
        let text = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(ImageDigest::parse(&text).unwrap().to_string(), text);
        for bad in [
            "ab".repeat(32),
            format!("sha512:{}", "ab".repeat(32)),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("SHA256:{}", "ab".repeat(32)),
            "latest".to_owned(),
        ] {
            assert_eq!(ImageDigest::parse(&bad), None, "{bad}");
        }
        assert_eq!(
            ImageDigest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            Sha256Digest::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
