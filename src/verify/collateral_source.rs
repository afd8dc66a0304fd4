//! Where the collateral for the quote comes from, in this order: `--collateral FILE`, the
//! collateral the input carries (NEAR's public data), the cache when it is valid at the
//! verification time, else Intel's PCS or `--pccs-url` (never with `--offline`).

use std::fmt;
use std::path::PathBuf;

use dcap_qvl::QuoteCollateralV3;

use super::collateral_cache::Cache;
use super::input::Evidence;
use super::pck_chain::Platform;
use super::pcs::Pcs;
use super::{VerifyOptions, collateral, collateral_time};

/// Where the collateral used came from.
#[derive(Clone, Debug)]
pub enum Origin {
    File(PathBuf),
    Input,
    Cache(PathBuf),
    Fetched(String),
}

impl Origin {
    /// `file`, `input`, `cache` or `fetched`: the `source` of `--json`'s `collateral`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File(_) => "file",
            Self::Input => "input",
            Self::Cache(_) => "cache",
            Self::Fetched(_) => "fetched",
        }
    }

    /// The file, cache entry or base URL; empty for the input's own.
    #[must_use]
    pub fn location(&self) -> String {
        match self {
            Self::File(path) | Self::Cache(path) => path.display().to_string(),
            Self::Input => String::new(),
            Self::Fetched(url) => url.clone(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "--collateral {}", path.display()),
            Self::Input => f.write_str("the input's collateral"),
            Self::Cache(path) => write!(f, "cached {}", path.display()),
            Self::Fetched(url) => write!(f, "fetched from {url}"),
        }
    }
}

/// The collateral to verify with, and where it came from.
#[derive(Debug)]
pub struct Obtained {
    pub collateral: QuoteCollateralV3,
    pub origin: Origin,
    /// Where fetched collateral is cached once it verified the quote.
    pub cache: Option<Cache>,
}

/// How `now` was chosen, for messages: `--now N` or `now`.
#[must_use]
pub fn now_source(options: &VerifyOptions) -> String {
    if options.now_given {
        format!("--now {}", options.now)
    } else {
        "now".into()
    }
}

/// The collateral for the quote of `platform`, or one line saying why there is none.
pub fn obtain(
    evidence: &Evidence,
    options: &VerifyOptions,
    platform: Result<&Platform, &String>,
) -> Result<Obtained, String> {
    if let Some(value) = &evidence.collateral {
        let origin = options
            .collateral
            .as_ref()
            .map_or(Origin::Input, |path| Origin::File(path.clone()));
        let collateral = collateral::parse(value).map_err(|e| format!("{origin}: {e}"))?;
        return Ok(Obtained {
            collateral,
            origin,
            cache: None,
        });
    }
    let platform = platform.map_err(|why| {
        format!("no collateral given and none can be fetched: {why} (pass --collateral FILE)")
    })?;
    let (fmspc, ca) = (platform.fmspc.as_str(), platform.ca);
    let cache = Cache::locate(options.cache_dir.as_deref());
    let mut unusable = None;
    if let Some(cache) = &cache {
        let path = cache.path(fmspc, ca);
        match cache.load(fmspc, ca) {
            Ok(Some(collateral)) => {
                let valid = collateral_time::windows(&collateral)
                    .and_then(|w| collateral_time::check(&w, options.now, &now_source(options)));
                match valid {
                    Ok(()) => {
                        return Ok(Obtained {
                            collateral,
                            origin: Origin::Cache(path),
                            cache: None,
                        });
                    }
                    Err(why) => unusable = Some(format!("cached {}: {why}", path.display())),
                }
            }
            Ok(None) => {}
            Err(why) => unusable = Some(why),
        }
    }
    if options.offline {
        return Err(match (unusable, &cache) {
            (Some(why), _) => format!("--offline: {why}"),
            (None, Some(cache)) => format!(
                "--offline and no collateral for FMSPC {fmspc} ({ca} CA) cached in {}: run once without --offline, or pass --collateral FILE",
                cache.dir().display()
            ),
            (None, None) => "--offline and no collateral: no cache directory (no --cache-dir, XDG_CACHE_HOME or HOME); pass --collateral FILE".into(),
        });
    }
    let pcs = Pcs::new(options.pccs_url.as_deref(), options.pccs_ca_file.as_deref())
        .map_err(|e| e.to_string())?;
    let collateral = pcs
        .fetch(fmspc, ca)
        .map_err(|e| format!("fetching collateral for FMSPC {fmspc} ({ca} CA): {e}"))?;
    Ok(Obtained {
        collateral,
        origin: Origin::Fetched(pcs.base().to_owned()),
        cache,
    })
}
