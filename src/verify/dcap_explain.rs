//! Why Intel DCAP refused a quote, in words a person can act on.
//!
//! dcap-qvl reports its failures as `anyhow` messages, some of which carry webpki's `Debug`
//! text (`CrlExpired { time: UnixTime(..), .. }`); there is no error type to match. The dates
//! that decide most refusals are in the collateral itself, so they are read from there, typed:
//! the TCB info's and QE identity's `issueDate`/`nextUpdate`, both CRLs' `thisUpdate`/
//! `nextUpdate`, and every certificate's validity in the issuer chains. When `now` is outside
//! one of them, that is the explanation, with RFC 3339 dates and the window in which the
//! collateral is valid as a whole. Windows are taken as half-open, `[start, end)`: webpki
//! refuses a CRL at its `nextUpdate` itself.

use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use der::DateTime;
use der::Decode as _;
use serde_json::Value;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

/// One dated part of the collateral: valid from `start` to `end` (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub what: String,
    pub start: u64,
    pub end: u64,
}

/// A Unix time as RFC 3339 (`2025-07-19T10:16:03Z`), or the number when out of range.
#[must_use]
pub fn rfc3339(secs: u64) -> String {
    DateTime::from_unix_duration(Duration::from_secs(secs))
        .map_or_else(|_| format!("Unix time {secs}"), |t| t.to_string())
}

fn parse_rfc3339(text: &str) -> Option<u64> {
    text.parse::<DateTime>()
        .ok()
        .map(|t| t.unix_duration().as_secs())
}

/// Every dated part of `collateral` that could be read.
#[must_use]
pub fn windows(collateral: &QuoteCollateralV3) -> Vec<Window> {
    let mut found = Vec::new();
    for (what, json) in [
        ("TCB info", &collateral.tcb_info),
        ("QE identity", &collateral.qe_identity),
    ] {
        let value: Option<Value> = serde_json::from_str(json).ok();
        let date = |key: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .and_then(parse_rfc3339)
        };
        if let (Some(start), Some(end)) = (date("issueDate"), date("nextUpdate")) {
            found.push(Window {
                what: what.to_owned(),
                start,
                end,
            });
        }
    }
    for (what, der) in [
        ("root CA CRL", &collateral.root_ca_crl),
        ("PCK CRL", &collateral.pck_crl),
    ] {
        if let Ok(crl) = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der) {
            let start = crl.tbs_cert_list.this_update.to_unix_duration().as_secs();
            if let Some(next) = crl.tbs_cert_list.next_update {
                found.push(Window {
                    what: what.to_owned(),
                    start,
                    end: next.to_unix_duration().as_secs(),
                });
            }
        }
    }
    for (what, pem) in [
        ("TCB info signing chain", &collateral.tcb_info_issuer_chain),
        (
            "QE identity signing chain",
            &collateral.qe_identity_issuer_chain,
        ),
        ("PCK CRL issuer chain", &collateral.pck_crl_issuer_chain),
    ] {
        for certificate in Certificate::load_pem_chain(pem.as_bytes()).unwrap_or_default() {
            let validity = certificate.tbs_certificate().validity();
            found.push(Window {
                what: format!(
                    "{what} certificate {}",
                    certificate.tbs_certificate().subject()
                ),
                start: validity.not_before.to_unix_duration().as_secs(),
                end: validity.not_after.to_unix_duration().as_secs(),
            });
        }
    }
    found
}

/// The explanation of a DCAP failure at `now`: a date problem when the collateral's dates
/// show one, else dcap-qvl's own words.
#[must_use]
pub fn explain(collateral: &QuoteCollateralV3, now: u64, dcap_message: &str) -> String {
    explain_windows(&windows(collateral), now, dcap_message)
}

fn explain_windows(windows: &[Window], now: u64, dcap_message: &str) -> String {
    let at = rfc3339(now);
    let expired = windows
        .iter()
        .filter(|w| now >= w.end)
        .min_by_key(|w| w.end);
    let early = windows
        .iter()
        .filter(|w| now < w.start)
        .max_by_key(|w| w.start);
    let cause = match (expired, early) {
        (Some(w), _) => format!("the collateral's {} expired on {}", w.what, rfc3339(w.end)),
        (None, Some(w)) => format!(
            "the collateral's {} is not valid before {}",
            w.what,
            rfc3339(w.start)
        ),
        (None, None) => {
            return format!("Intel DCAP refused the quote at {at} (--now {now}): {dcap_message}");
        }
    };
    let start = windows.iter().map(|w| w.start).max().unwrap_or(0);
    let end = windows.iter().map(|w| w.end).min().unwrap_or(0);
    let next = if start < end {
        format!(
            "the collateral is valid as a whole from {} until {} (--now {start} to {}): pass --now with a time in it to repeat an old verdict, or fetch fresh collateral",
            rfc3339(start),
            rfc3339(end),
            end - 1
        )
    } else {
        "its parts have no time in common: fetch fresh collateral".to_owned()
    };
    format!("Intel DCAP refused the quote at {at} (--now {now}): {cause}; {next}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(what: &str, start: u64, end: u64) -> Window {
        Window {
            what: what.into(),
            start,
            end,
        }
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_751_624_655), "2025-07-04T10:24:15Z");
        assert_eq!(parse_rfc3339("2025-07-04T10:24:15Z"), Some(1_751_624_655));
    }

    #[test]
    fn the_earliest_expiry_or_latest_start_is_named() {
        let windows = [window("PCK CRL", 100, 200), window("TCB info", 50, 300)];
        let late = explain_windows(&windows, 250, "x");
        assert!(
            late.contains("PCK CRL expired on 1970-01-01T00:03:20Z"),
            "{late}"
        );
        assert!(late.contains("--now 100 to 199"), "{late}");
        assert!(explain_windows(&windows, 200, "x").contains("PCK CRL expired"));
        let early = explain_windows(&windows, 70, "x");
        assert!(early.contains("PCK CRL is not valid before"), "{early}");
        let inside = explain_windows(&windows, 150, "Fmspc mismatch");
        assert!(inside.ends_with("Fmspc mismatch"), "{inside}");
    }
}
