//! Checks on the boot identity: the boot part's soundness, MRCONFIGID, the expected compose
//! hash and app id. All of them read the boot part only (see `boot.rs`); the app-compose
//! checks are in `app_compose.rs`.

use crate::hex;
use crate::tdx_quote::TdQuote;

use super::Expectations;
use super::boot::Boot;
use super::report::Report;

const NO_LOG: &str = "no verified event log (see rtmr3.replay)";

/// `boot.events`, `mrconfigid.compose_hash`, `expect.compose_hash`, `expect.app_id`.
pub fn check(
    report: &mut Report,
    quote: Option<&TdQuote>,
    boot: Option<&Boot<'_>>,
    expect: &Expectations,
) {
    let Some(boot) = boot else {
        report.skip("boot.events", NO_LOG);
        report.skip("mrconfigid.compose_hash", NO_LOG);
        for (check, wanted) in [
            ("expect.compose_hash", expect.compose_hash.is_some()),
            ("expect.app_id", expect.app_id.is_some()),
        ] {
            if wanted {
                report.fail(check, NO_LOG);
            }
        }
        return;
    };
    if boot.problems.is_empty() {
        report.pass("boot.events", boot.summary());
    } else {
        let problems: Vec<String> = boot.problems.iter().map(ToString::to_string).collect();
        report.fail("boot.events", problems.join("; "));
    }
    let compose_hash = boot.payload("compose-hash");
    check_mrconfigid(report, quote, compose_hash);
    for (check, event, expected) in [
        (
            "expect.compose_hash",
            "compose-hash",
            expect.compose_hash.map(|h| h.to_vec()),
        ),
        ("expect.app_id", "app-id", expect.app_id.clone()),
    ] {
        let Some(expected) = expected else { continue };
        match boot.payload(event) {
            Err(why) => report.fail(check, why),
            Ok(None) => report.fail(check, format!("the boot part has no {event} event")),
            Ok(Some(actual)) => report.check(
                check,
                actual == expected.as_slice(),
                format!(
                    "expected {}, the boot's {event} event has {}",
                    hex::encode(&expected),
                    hex::encode(actual)
                ),
            ),
        }
    }
}

fn check_mrconfigid(
    report: &mut Report,
    quote: Option<&TdQuote>,
    compose_hash: Result<Option<&[u8]>, &'static str>,
) {
    let check = "mrconfigid.compose_hash";
    match quote.map(|q| q.mr_config_id) {
        Some(id) if id.iter().all(|&b| b == 0) => {
            report.skip(check, "MRCONFIGID is zero (not bound)");
        }
        Some(id) if id.first() == Some(&1) => {
            let bound = id.get(1..33).unwrap_or_default();
            match compose_hash {
                Err(why) => report.fail(check, why),
                Ok(Some(hash)) => report.check(
                    check,
                    bound == hash,
                    format!(
                        "MRCONFIGID binds {}; the boot's compose-hash event {}",
                        hex::encode(bound),
                        hex::encode(hash)
                    ),
                ),
                Ok(None) => report.fail(
                    check,
                    "MRCONFIGID is set but the boot part has no compose-hash event",
                ),
            }
        }
        Some(_) => report.skip(check, "MRCONFIGID is not dstack's v1 form"),
        None => report.skip(check, "no readable quote"),
    }
}
