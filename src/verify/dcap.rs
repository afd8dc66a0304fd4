//! The quote's signature, certificate chain and TCB status (Intel DCAP, dcap-qvl), with the
//! collateral obtained for it (`quote.collateral`: where it came from, until when it is valid).
//!
//! Before dcap-qvl runs, the collateral is checked for what dcap-qvl would report
//! misleadingly: a date outside its validity (named, in RFC 3339, with the next step) and
//! another machine's PCK chain. These checks only ever add failures; dcap-qvl stays the judge.

use std::fmt::Write as _;

use serde::Serialize;

use super::VerifyOptions;
use super::collateral_cache::write_json;
use super::collateral_source::{self, Obtained, Origin};
use super::collateral_time::{self, rfc3339};
use super::input::Evidence;
use super::pck_chain::{self, Platform};
use super::report::Report;

/// `collateral` in `--json`: where the collateral came from and until when it is valid.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CollateralJson {
    /// `file`, `input`, `cache` or `fetched`.
    pub source: String,
    /// The file, cache entry or base URL (empty for the input's own).
    pub location: String,
    /// The earliest `nextUpdate` of TCB info, QE identity and the CRLs (RFC 3339).
    pub valid_until: Option<String>,
    pub valid_until_unix: Option<u64>,
    /// Which item expires first.
    pub expires_first: Option<String>,
    /// Where fetched collateral was cached, once it verified the quote.
    pub cached: Option<String>,
    /// `--save-collateral FILE`.
    pub saved: Option<String>,
}

pub fn check_signature(
    report: &mut Report,
    evidence: &Evidence,
    options: &VerifyOptions,
    signed: &[u8],
) {
    if options.skip_dcap {
        report.skip(
            "quote.signature",
            "--skip-dcap: the quote's signature and TCB were NOT verified; nothing here proves the quote came from a TDX machine (exit 3 at best)",
        );
        report.skip("quote.tcb_status", "--skip-dcap");
        return;
    }
    let platform = Platform::of_quote(signed);
    let obtained = match collateral_source::obtain(evidence, options, platform.as_ref()) {
        Ok(obtained) => obtained,
        Err(why) => return unusable(report, why),
    };
    let mut json = CollateralJson {
        source: obtained.origin.kind().into(),
        location: obtained.origin.location(),
        ..CollateralJson::default()
    };
    let mut detail = obtained.origin.to_string();
    if let Ok(platform) = &platform {
        let _ = write!(detail, " for FMSPC {} ({} CA)", platform.fmspc, platform.ca);
    }
    let windows = collateral_time::windows(&obtained.collateral);
    if let Some((item, at)) = windows
        .as_deref()
        .ok()
        .and_then(collateral_time::valid_until)
    {
        let _ = write!(detail, "; valid until {} ({item} nextUpdate)", rfc3339(at));
        json.valid_until = Some(rfc3339(at));
        json.valid_until_unix = Some(at);
        json.expires_first = Some(item.into());
    }
    // What was used is saved whatever the verdict, so an offline run can repeat it.
    if let Some(path) = &options.save_collateral {
        match write_json(path, &obtained.collateral) {
            Ok(()) => {
                let _ = write!(detail, "; saved to {}", path.display());
                json.saved = Some(path.display().to_string());
            }
            Err(why) => {
                report.collateral = Some(json);
                return unusable(report, format!("--save-collateral: {why}"));
            }
        }
    }
    report.collateral = Some(json);
    if let Err(why) = windows.and_then(|w| {
        collateral_time::check(&w, options.now, &collateral_source::now_source(options))
    }) {
        return unusable(report, format!("{}: {why}", obtained.origin));
    }
    let foreign = match (&obtained.collateral.pck_certificate_chain, &platform) {
        (Some(chain), Ok(platform)) => pck_chain::foreign_leaf(platform, chain),
        _ => None,
    };
    if let (Some(why), Ok(platform)) = (foreign, &platform) {
        return unusable(
            report,
            format!(
                "the pck_certificate_chain of {} is another machine's: {why}; remove pck_certificate_chain from it (the quote carries its own chain), or leave out --collateral to fetch collateral for FMSPC {}",
                obtained.origin, platform.fmspc
            ),
        );
    }
    verify(
        report,
        options,
        signed,
        &obtained,
        platform.ok().as_ref(),
        detail,
    );
}

/// dcap-qvl on the quote and the collateral; fetched collateral that verified is cached.
fn verify(
    report: &mut Report,
    options: &VerifyOptions,
    signed: &[u8],
    obtained: &Obtained,
    platform: Option<&Platform>,
    mut detail: String,
) {
    let verified = match dcap_qvl::verify::verify(signed, &obtained.collateral, options.now) {
        Ok(verified) => verified,
        Err(error) => {
            report.pass("quote.collateral", detail);
            report.fail(
                "quote.signature",
                format!(
                    "Intel DCAP refused the quote at {} ({}): {}",
                    rfc3339(options.now),
                    collateral_source::now_source(options),
                    collateral_time::explain_dcap_error(&format!("{error:#}"))
                ),
            );
            report.skip("quote.tcb_status", "signature not verified");
            return;
        }
    };
    if let (Origin::Fetched(_), Some(cache), Some(platform)) =
        (&obtained.origin, &obtained.cache, platform)
    {
        match cache.store(&platform.fmspc, platform.ca, &obtained.collateral) {
            Ok(path) => {
                let _ = write!(detail, "; cached in {}", path.display());
                if let Some(json) = &mut report.collateral {
                    json.cached = Some(path.display().to_string());
                }
            }
            Err(why) => {
                let _ = write!(detail, "; not cached ({why})");
            }
        }
    }
    report.pass("quote.collateral", detail);
    report.signature_verified = true;
    report.pass(
        "quote.signature",
        format!(
            "Intel DCAP: quote signature, certificate chain and collateral valid at {} ({})",
            rfc3339(options.now),
            collateral_source::now_source(options)
        ),
    );
    let allowed = options.allowed_tcb.contains(&verified.status);
    let advisories = if verified.advisory_ids.is_empty() {
        "none".to_owned()
    } else {
        verified.advisory_ids.join(", ")
    };
    report.check(
        "quote.tcb_status",
        allowed,
        format!(
            "{} (advisories: {advisories}; accepted: {})",
            verified.status,
            options.allowed_tcb.join(", ")
        ),
    );
    report.tcb_status = Some(verified.status);
    report.advisory_ids = verified.advisory_ids;
}

/// No collateral to verify with: `quote.collateral` says why, the signature is not checked.
fn unusable(report: &mut Report, why: String) {
    report.fail("quote.collateral", why);
    report.fail(
        "quote.signature",
        "not verified: no usable collateral (see quote.collateral; --skip-dcap skips the signature check explicitly)",
    );
    report.skip("quote.tcb_status", "signature not verified");
}
