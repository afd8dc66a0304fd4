//! What runs: the identity the launcher approves, measures and launches.

use std::fmt;

use crate::digest::CommitId;

/// A workload identity. Image mode adds `oci:sha256:<hex>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Git(CommitId),
}

impl Workload {
    /// The payload of the `trusted-launcher.workload` event, e.g. `git:<full commit hex>`.
    #[must_use]
    pub fn identity(&self) -> String {
        match self {
            Self::Git(commit) => format!("git:{commit}"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identity())
    }
}
