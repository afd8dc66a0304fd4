//! What runs: the identity the launcher approves, measures and launches.

use std::fmt;

use crate::digest::{CommitId, ImageDigest};

/// A workload identity: a Git commit, or an OCI image (manifest or index) by digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Git(CommitId),
    Image(ImageDigest),
}

impl Workload {
    /// The payload of the `trusted-launcher.workload` event: `git:<full commit hex>` or
    /// `oci:sha256:<hex>`.
    #[must_use]
    pub fn identity(&self) -> String {
        match self {
            Self::Git(commit) => format!("git:{commit}"),
            Self::Image(digest) => format!("oci:{digest}"),
        }
    }

    /// The workload an identity names: the inverse of [`Self::identity`], with the same
    /// strict parsing as the config (lowercase hex of the full length).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if let Some(commit) = text.strip_prefix("git:") {
            return CommitId::parse(commit).map(Self::Git);
        }
        text.strip_prefix("oci:")
            .and_then(ImageDigest::parse)
            .map(Self::Image)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identity())
    }
}
