//! When collateral is valid: each item's issue date and `nextUpdate` (TCB info, QE identity,
//! the PCK CRL and the root CA CRL), the earliest `nextUpdate` being when the whole set
//! expires, and the one-line explanation when the verification time is outside.
//!
//! DCAP (dcap-qvl) checks the same dates and stays the judge; this names the item, the dates
//! in RFC 3339 and the next step, where dcap-qvl prints `TCBInfo expired` or
//! `CrlExpired { time: UnixTime(..), next_update: UnixTime(..) }`.

use std::fmt::Write as _;
use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use der::Decode as _;
use serde_json::Value;
use x509_cert::crl::CertificateList;

/// One item's validity, Unix seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub item: &'static str,
    pub issued: u64,
    /// `None`: a CRL without `nextUpdate`.
    pub next_update: Option<u64>,
}

/// The validity of every dated item, or what is unreadable.
pub fn windows(collateral: &QuoteCollateralV3) -> Result<Vec<Window>, String> {
    Ok(vec![
        json_window("TCB info", &collateral.tcb_info)?,
        json_window("QE identity", &collateral.qe_identity)?,
        crl_window("PCK CRL", &collateral.pck_crl)?,
        crl_window("root CA CRL", &collateral.root_ca_crl)?,
    ])
}

/// The earliest `nextUpdate`: when the set stops being valid, and which item decides.
#[must_use]
pub fn valid_until(windows: &[Window]) -> Option<(&'static str, u64)> {
    windows
        .iter()
        .filter_map(|w| w.next_update.map(|at| (w.item, at)))
        .min_by_key(|(_, at)| *at)
}

/// Whether every item is valid at `now`; if not, one line naming the item, its date, the
/// time verified at (`now_source`: `--now N` or `now`) and what to do.
pub fn check(windows: &[Window], now: u64, now_source: &str) -> Result<(), String> {
    // The item that expired first: verifying before its nextUpdate is what would help.
    let expired = windows
        .iter()
        .filter_map(|w| w.next_update.filter(|at| now > *at).map(|at| (w, at)))
        .min_by_key(|(_, at)| *at);
    if let Some((w, at)) = expired {
        return Err(format!(
            "collateral expired: the {}'s nextUpdate {} is before the verification time {} ({now_source}); fetch current collateral (leave out --collateral and --offline) or verify at an earlier --now (at most {at})",
            w.item,
            rfc3339(at),
            rfc3339(now),
        ));
    }
    if let Some(w) = windows.iter().find(|w| now < w.issued) {
        return Err(format!(
            "collateral not yet valid: the {} was issued at {}, after the verification time {} ({now_source}); pass --now {} or later, or use collateral issued before that time",
            w.item,
            rfc3339(w.issued),
            rfc3339(now),
            w.issued,
        ));
    }
    Ok(())
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

fn json_window(item: &'static str, text: &str) -> Result<Window, String> {
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
        item,
        issued: date("issueDate")?,
        next_update: Some(date("nextUpdate")?),
    })
}

fn crl_window(item: &'static str, der: &[u8]) -> Result<Window, String> {
    let crl = <CertificateList>::from_der(der)
        .map_err(|e| format!("the {item} is not a DER CRL: {e}"))?;
    let list = &crl.tbs_cert_list;
    Ok(Window {
        item,
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
        assert_eq!(windows.len(), 4);
        assert_eq!(windows.first().unwrap().issued, 1_750_328_163);
        assert_eq!(valid_until(&windows), Some(("PCK CRL", 1_752_919_235)));
        assert_eq!(rfc3339(1_752_920_163), "2025-07-19T10:16:03Z");
        assert!(check(&windows, 1_751_624_655, "--now 1751624655").is_ok());
        assert_eq!(
            check(&windows, 1_752_919_236, "--now 1752919236").unwrap_err(),
            "collateral expired: the PCK CRL's nextUpdate 2025-07-19T10:00:35Z is before the verification time 2025-07-19T10:00:36Z (--now 1752919236); fetch current collateral (leave out --collateral and --offline) or verify at an earlier --now (at most 1752919235)"
        );
        let early = check(&windows, 1_700_000_000, "now").unwrap_err();
        assert!(
            early.starts_with("collateral not yet valid: the "),
            "{early}"
        );
        assert!(early.contains("(now); pass --now "), "{early}");
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
