//! The quote: its structure, its signature (Intel DCAP), register values reported beside it,
//! and expectations on its registers.

use crate::hex;
use crate::tdx_quote::{QuoteError, TdQuote, signed_len};

use super::input::Evidence;
use super::report::{Measurements, Report};
use super::{Expectations, VerifyOptions, collateral, dcap_explain, quote_text};

pub fn check_quote(
    report: &mut Report,
    evidence: &Evidence,
    options: &VerifyOptions,
) -> Option<TdQuote> {
    let Some(bytes) = evidence.quote.as_deref() else {
        report.fail("quote.structure", "no quote in the input");
        return None;
    };
    let parsed = signed_len(bytes).and_then(|len| {
        let signed = bytes.get(..len).unwrap_or(bytes);
        TdQuote::parse(signed).map(|quote| (quote, signed))
    });
    let (quote, signed) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let why = match error {
                QuoteError::Version(version) => quote_text::bad_version(bytes, version),
                other => other.to_string(),
            };
            report.fail("quote.structure", why);
            report.skip("quote.signature", "no readable quote");
            return None;
        }
    };
    report.pass(
        "quote.structure",
        format!(
            "TDX quote v{}, {} bytes signed",
            quote.version,
            signed.len()
        ),
    );
    report.measurements = Some(Measurements {
        mrtd: hex::encode(&quote.mrtd),
        mr_config_id: hex::encode(&quote.mr_config_id),
        rtmr0: hex::encode(&quote.rtmr[0]),
        rtmr1: hex::encode(&quote.rtmr[1]),
        rtmr2: hex::encode(&quote.rtmr[2]),
        rtmr3: hex::encode(&quote.rtmr[3]),
        report_data: hex::encode(&quote.report_data),
    });
    check_signature(report, evidence, options, signed);
    Some(quote)
}

fn check_signature(
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
    let Some(value) = &evidence.collateral else {
        report.fail(
            "quote.signature",
            "no collateral (pass --collateral FILE, or --skip-dcap to skip the signature check explicitly)",
        );
        report.skip("quote.tcb_status", "signature not verified");
        return;
    };
    let collateral = match collateral::parse(value) {
        Ok(collateral) => collateral,
        Err(problem) => {
            report.fail("quote.signature", problem);
            report.skip("quote.tcb_status", "signature not verified");
            return;
        }
    };
    match dcap_qvl::verify::verify(signed, &collateral, options.now) {
        Ok(verified) => {
            report.signature_verified = true;
            report.pass(
                "quote.signature",
                format!(
                    "Intel DCAP: quote signature, certificate chain and collateral valid at {} (--now {})",
                    dcap_explain::rfc3339(options.now),
                    options.now
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
        Err(error) => {
            report.fail(
                "quote.signature",
                dcap_explain::explain(&collateral, options.now, &format!("{error:#}")),
            );
            report.skip("quote.tcb_status", "signature not verified");
        }
    }
}

/// Register values reported beside the quote must be the quote's.
pub fn check_reported(report: &mut Report, evidence: &Evidence, quote: Option<&TdQuote>) {
    let (Some(quote), false) = (quote, evidence.reported.is_empty()) else {
        report.skip(
            "tcb_info.registers",
            "no reported register values, or no quote",
        );
        return;
    };
    let mismatched: Vec<&str> = evidence
        .reported
        .iter()
        .filter(|(name, value)| {
            let actual = match *name {
                "mrtd" => quote.mrtd,
                "rtmr0" => quote.rtmr[0],
                "rtmr1" => quote.rtmr[1],
                "rtmr2" => quote.rtmr[2],
                _ => quote.rtmr[3],
            };
            *value != hex::encode(&actual)
        })
        .map(|(name, _)| *name)
        .collect();
    let names: Vec<&str> = evidence.reported.iter().map(|(n, _)| *n).collect();
    if mismatched.is_empty() {
        report.pass(
            "tcb_info.registers",
            format!("{} equal the quote's", names.join(", ")),
        );
    } else {
        report.fail(
            "tcb_info.registers",
            format!("{} differ from the quote's", mismatched.join(", ")),
        );
    }
}

/// How an expectation reads a register from the quote.
type RegisterRead = fn(&TdQuote) -> [u8; 48];

pub fn check_register_expectations(
    report: &mut Report,
    expect: &Expectations,
    quote: Option<&TdQuote>,
) {
    let registers: [(&str, Option<[u8; 48]>, RegisterRead); 4] = [
        ("expect.mrtd", expect.mrtd, |q| q.mrtd),
        ("expect.rtmr0", expect.rtmr[0], |q| q.rtmr[0]),
        ("expect.rtmr1", expect.rtmr[1], |q| q.rtmr[1]),
        ("expect.rtmr2", expect.rtmr[2], |q| q.rtmr[2]),
    ];
    for (check, expected, read) in registers {
        let Some(expected) = expected else { continue };
        match quote {
            None => report.fail(check, "no readable quote"),
            Some(q) => report.check(
                check,
                read(q) == expected,
                format!(
                    "expected {}, quote has {}",
                    hex::encode(&expected),
                    hex::encode(&read(q))
                ),
            ),
        }
    }
    if let Some(expected) = &expect.report_data {
        let mut padded = [0u8; 64];
        for (slot, byte) in padded.iter_mut().zip(expected) {
            *slot = *byte;
        }
        match quote {
            None => report.fail("expect.report_data", "no readable quote"),
            Some(q) => report.check(
                "expect.report_data",
                q.report_data == padded,
                format!(
                    "expected {}, quote has {}",
                    hex::encode(&padded),
                    hex::encode(&q.report_data)
                ),
            ),
        }
    }
}
