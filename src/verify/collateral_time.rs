//! When collateral is valid: each item's issue date and `nextUpdate` (TCB info, QE identity,
//! the PCK CRL and the root CA CRL) and the validity of every certificate of its signing
//! chains, the earliest end being when the whole set expires, and the one-line explanation
//! (with the window in which the set is valid as a whole) when the verification time is
//! outside. Windows are half-open, `[issued, next_update)`: webpki refuses a CRL at its
//! `nextUpdate` itself.
//!
//! DCAP (dcap-qvl) checks the same dates and stays the judge; this names the item, the dates
//! in RFC 3339 and the next step, where dcap-qvl prints `TCBInfo expired` or
//! `CrlExpired { time: UnixTime(..), next_update: UnixTime(..) }`.

use std::fmt::Write as _;
use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use der::Decode as _;
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

/// One item's validity, Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub item: String,
    pub issued: u64,
    /// `None`: a CRL without `nextUpdate`.
    pub next_update: Option<u64>,
}

/// The validity of every dated item, or what is unreadable.
pub fn windows(collateral: &QuoteCollateralV3) -> Result<Vec<Window>, String> {
    let mut found = vec![
        json_window("TCB info", &collateral.tcb_info)?,
        json_window("QE identity", &collateral.qe_identity)?,
        crl_window("PCK CRL", &collateral.pck_crl)?,
        crl_window("root CA CRL", &collateral.root_ca_crl)?,
    ];
    for (chain, pem) in [
        ("TCB info signing chain", &collateral.tcb_info_issuer_chain),
        (
            "QE identity signing chain",
            &collateral.qe_identity_issuer_chain,
        ),
        ("PCK CRL issuer chain", &collateral.pck_crl_issuer_chain),
    ] {
        // An unreadable chain is DCAP's to refuse; only readable dates are explained.
        for certificate in Certificate::load_pem_chain(pem.as_bytes()).unwrap_or_default() {
            let tbs = certificate.tbs_certificate();
            found.push(Window {
                item: format!("{chain} certificate {}", tbs.subject()),
                issued: tbs.validity().not_before.to_unix_duration().as_secs(),
                next_update: Some(tbs.validity().not_after.to_unix_duration().as_secs()),
            });
        }
    }
    Ok(found)
}

/// The earliest `nextUpdate`: when the set stops being valid, and which item decides.
#[must_use]
pub fn valid_until(windows: &[Window]) -> Option<(&str, u64)> {
    windows
        .iter()
        .filter_map(|w| w.next_update.map(|at| (w.item.as_str(), at)))
        .min_by_key(|(_, at)| *at)
}

/// Whether every item is valid at `now`; if not, one line naming the item, its date, the
/// time verified at (`now_source`: `--now N` or `now`), the window in which the whole set is
/// valid, and what to do.
pub fn check(windows: &[Window], now: u64, now_source: &str) -> Result<(), String> {
    // The item that expired first: verifying before its end is what would help.
    let expired = windows
        .iter()
        .filter_map(|w| w.next_update.filter(|at| now >= *at).map(|at| (w, at)))
        .min_by_key(|(_, at)| *at);
    let early = windows
        .iter()
        .filter(|w| now < w.issued)
        .max_by_key(|w| w.issued);
    let cause = match (expired, early) {
        (Some((w, at)), _) => format!(
            "collateral expired: the {} was valid until {}, not after the verification time {} ({now_source})",
            w.item,
            rfc3339(at),
            rfc3339(now),
        ),
        (None, Some(w)) => format!(
            "collateral not yet valid: the {} was issued at {}, after the verification time {} ({now_source})",
            w.item,
            rfc3339(w.issued),
            rfc3339(now),
        ),
        (None, None) => return Ok(()),
    };
    Err(format!("{cause}; {}", next_step(windows)))
}

/// The window in which every item is valid, as `--now` values that repeat a verdict.
fn next_step(windows: &[Window]) -> String {
    let start = windows.iter().map(|w| w.issued).max().unwrap_or(0);
    let end = windows.iter().filter_map(|w| w.next_update).min();
    match end {
        Some(end) if start < end => format!(
            "the collateral is valid as a whole from {} until {} (--now {start} to {}): pass --now with a time in it to repeat an old verdict, or fetch current collateral (leave out --collateral and --offline)",
            rfc3339(start),
            rfc3339(end),
            end - 1
        ),
        Some(_) => "its parts have no time in common: fetch current collateral (leave out --collateral and --offline)".to_owned(),
        None => "fetch current collateral (leave out --collateral and --offline)".to_owned(),
    }
}

/// `2025-07-19T10:16:03Z`; a time past what that can spell stays a number.
#[must_use]
pub fn rfc3339(unix: u64) -> String {
    der::DateTime::from_unix_duration(Duration::from_secs(unix))
        .map_or_else(|_| format!("unix time {unix}"), |t| t.to_string())
}

/// dcap-qvl's error text with every `UnixTime(N)` (webpki's debug form) followed by its
/// RFC 3339 date.
#[must_use]
pub fn explain_dcap_error(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("UnixTime(") {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let digits_end = after
            .get(9..)
            .and_then(|tail| tail.find(|c: char| !c.is_ascii_digit()).map(|i| i + 9))
            .unwrap_or(after.len());
        let number = after.get(9..digits_end).unwrap_or_default();
        if let (Ok(unix), Some(")")) = (number.parse::<u64>(), after.get(digits_end..=digits_end)) {
            let _ = write!(out, "{} ({unix})", rfc3339(unix));
            rest = after.get(digits_end + 1..).unwrap_or_default();
        } else {
            out.push_str("UnixTime(");
            rest = after.get(9..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    if text.contains("Expired") || text.contains("expired") {
        out.push_str("; fetch current collateral (leave out --collateral and --offline) or pass --now inside its validity");
    } else if text.contains("in the future") || text.contains("NotValidYet") {
        out.push_str("; pass a later --now");
    }
    out
}

fn json_window(item: &str, text: &str) -> Result<Window, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("the {item} is not JSON: {e}"))?;
    let date = |field: &str| -> Result<u64, String> {
        value
            .get(field)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<der::DateTime>().ok())
            .map(|t| t.unix_duration().as_secs())
            .ok_or_else(|| format!("the {item} has no {field} in the form YYYY-MM-DDTHH:MM:SSZ"))
    };
    Ok(Window {
        item: item.to_owned(),
        issued: date("issueDate")?,
        next_update: Some(date("nextUpdate")?),
    })
}

fn crl_window(item: &str, der: &[u8]) -> Result<Window, String> {
    let crl = <CertificateList>::from_der(der)
        .map_err(|e| format!("the {item} is not a DER CRL: {e}"))?;
    let list = &crl.tbs_cert_list;
    Ok(Window {
        item: item.to_owned(),
        issued: list.this_update.to_unix_duration().as_secs(),
        next_update: list.next_update.map(|t| t.to_unix_duration().as_secs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QuoteCollateralV3 {
        let path = format!(
            "{}/tests/fixtures/dcap-qvl_sample_tdx_quote_collateral.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        super::super::collateral::parse(&value).unwrap()
    }

    /// Known answer: the sample collateral's TCB info runs 2025-06-19T10:16:03Z to
    /// 2025-07-19T10:16:03Z; its PCK CRL expires first, at 2025-07-19T10:00:35Z.
    #[test]
    fn sample_windows() {
        let windows = windows(&sample()).unwrap();
        assert!(windows.len() > 4, "items and their signing certificates");
        assert_eq!(windows.first().unwrap().issued, 1_750_328_163);
        assert_eq!(valid_until(&windows), Some(("PCK CRL", 1_752_919_235)));
        assert_eq!(rfc3339(1_752_920_163), "2025-07-19T10:16:03Z");
        assert!(check(&windows, 1_751_624_655, "--now 1751624655").is_ok());
        assert!(check(&windows, 1_752_919_234, "--now 1752919234").is_ok());
        let late = check(&windows, 1_752_919_235, "--now 1752919235").unwrap_err();
        assert!(
            late.starts_with("collateral expired: the PCK CRL was valid until 2025-07-19T10:00:35Z, not after the verification time 2025-07-19T10:00:35Z (--now 1752919235); the collateral is valid as a whole from "),
            "{late}"
        );
        assert!(late.contains(" to 1752919234): pass --now"), "{late}");
        let early = check(&windows, 1_700_000_000, "now").unwrap_err();
        assert!(
            early.starts_with("collateral not yet valid: the "),
            "{early}"
        );
        assert!(
            early.contains("(now); the collateral is valid as a whole"),
            "{early}"
        );
    }

    #[test]
    fn dcap_debug_times_become_dates() {
        assert_eq!(
            explain_dcap_error(
                "CrlExpired { time: UnixTime(1791624655), next_update: UnixTime(1775215317) }"
            ),
            "CrlExpired { time: 2026-10-10T09:30:55Z (1791624655), next_update: 2026-04-03T11:21:57Z (1775215317) }; fetch current collateral (leave out --collateral and --offline) or pass --now inside its validity"
        );
        assert_eq!(explain_dcap_error("UnixTime(x"), "UnixTime(x");
        assert_eq!(
            explain_dcap_error("QE report hash mismatch"),
            "QE report hash mismatch"
        );
    }
}
