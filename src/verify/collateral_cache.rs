//! Fetched collateral kept on disk, one file per FMSPC and PCK CA, so the next `verify` (or an
//! `--offline` one) needs no network.
//!
//! The cache is not trusted more than the network it stands in for: an entry is only a
//! candidate, checked by DCAP like fetched collateral, and one past its `nextUpdate` is never
//! used silently (see `collateral_source.rs`). Only collateral that verified a quote is
//! written, atomically (`atomic_file`), so a hostile PCCS cannot park junk here.

use std::path::{Path, PathBuf};

use dcap_qvl::QuoteCollateralV3;

use super::collateral;
use crate::capped_read::{CappedReadError, read_capped};

/// An entry is a few tens of kilobytes.
const MAX_ENTRY_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `--cache-dir DIR`, else `$XDG_CACHE_HOME/trusted-launcher/collateral` (an absolute
    /// path only, as the XDG base directory spec says), else
    /// `$HOME/.cache/trusted-launcher/collateral`; `None` when none of them is known.
    #[must_use]
    pub fn locate(dir: Option<&Path>) -> Option<Self> {
        if let Some(dir) = dir {
            return Some(Self {
                dir: dir.to_owned(),
            });
        }
        let absolute = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let base =
            absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
        Some(Self {
            dir: base.join("trusted-launcher").join("collateral"),
        })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `fmspc` (hex) and `ca` (`processor`/`platform`) lives.
    #[must_use]
    pub fn path(&self, fmspc: &str, ca: &str) -> PathBuf {
        let safe = |text: &str| -> String {
            text.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        };
        self.dir
            .join(format!("tdx-{}-{}.json", safe(fmspc), safe(ca)))
    }

    /// The entry, `Ok(None)` if there is none, or why it is unusable.
    pub fn load(&self, fmspc: &str, ca: &str) -> Result<Option<QuoteCollateralV3>, String> {
        let path = self.path(fmspc, ca);
        let bytes = match read_capped(&path, MAX_ENTRY_BYTES) {
            Ok(bytes) => bytes,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(CappedReadError::TooLarge) => {
                return Err(format!(
                    "cached collateral {} is larger than {MAX_ENTRY_BYTES} bytes",
                    path.display()
                ));
            }
            Err(error) => {
                return Err(format!(
                    "cannot read cached collateral {}: {error}",
                    path.display()
                ));
            }
        };
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("cached collateral {} is not JSON: {e}", path.display()))?;
        collateral::parse(&value)
            .map(Some)
            .map_err(|e| format!("cached collateral {}: {e}", path.display()))
    }

    /// Writes the entry atomically; returns its path.
    pub fn store(
        &self,
        fmspc: &str,
        ca: &str,
        collateral: &QuoteCollateralV3,
    ) -> Result<PathBuf, String> {
        let path = self.path(fmspc, ca);
        write_json(&path, collateral)?;
        Ok(path)
    }
}

/// `collateral` as `--collateral` reads it, written atomically to `path`.
pub fn write_json(path: &Path, collateral: &QuoteCollateralV3) -> Result<(), String> {
    let mut text = serde_json::to_string_pretty(&collateral::to_json(collateral))
        .map_err(|e| format!("cannot encode collateral: {e}"))?;
    text.push('\n');
    crate::atomic_file::write(path, text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QuoteCollateralV3 {
        let path = format!(
            "{}/tests/fixtures/dcap-qvl_sample_tdx_quote_collateral.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        collateral::parse(&value).unwrap()
    }

    #[test]
    fn stores_and_loads_by_fmspc_and_ca() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::locate(Some(&dir.path().join("c"))).unwrap();
        assert_eq!(cache.load("B0C06F000000", "platform"), Ok(None));
        let path = cache.store("B0C06F000000", "platform", &sample()).unwrap();
        assert_eq!(path, dir.path().join("c/tdx-b0c06f000000-platform.json"));
        assert_eq!(cache.load("B0C06F000000", "platform"), Ok(Some(sample())));
        assert_eq!(cache.load("B0C06F000000", "processor"), Ok(None));
        // A name cannot leave the directory.
        assert_eq!(
            cache.path("../../x", "p/q"),
            dir.path().join("c/tdx-x-pq.json")
        );
        std::fs::write(&path, "{}").unwrap();
        let broken = cache.load("B0C06F000000", "platform").unwrap_err();
        assert!(
            broken.ends_with("collateral field pck_crl_issuer_chain is missing or not a string"),
            "{broken}"
        );
    }
}
