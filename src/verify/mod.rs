//! `verify`: from a quote and its event log to "this workload runs here", offline.
//!
//! Nothing supplied beside the quote is trusted: event digests are recomputed, registers are
//! read from the quote, reported values are compared with it, and expectations are matched
//! against the replayed log.

mod collateral;
mod input;
mod report;

use std::path::PathBuf;

use sha2::{Digest as _, Sha256};

pub use report::{Report, Status};

use crate::digest::CommitId;
use crate::hex;
use crate::measure::event::{CONFIG_EVENT, Event, READY_EVENT, WORKLOAD_EVENT, replay};
use crate::measure::replay as log_replay;
use crate::tdx_quote::{TdQuote, signed_len};
use input::Evidence;
use report::{EventJson, Measurements};

/// TCB statuses a verifier may accept besides `UpToDate`.
pub const TCB_STATUSES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
];

/// What the verifier expects, parsed by the command line.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    pub events: Vec<(String, Vec<u8>)>,
    pub image: Option<[u8; 32]>,
    pub commit: Option<CommitId>,
    pub config_sha256: Option<[u8; 32]>,
    pub compose_hash: Option<[u8; 32]>,
    pub app_id: Option<Vec<u8>>,
    pub mrtd: Option<[u8; 48]>,
    pub rtmr: [Option<[u8; 48]>; 3],
    pub report_data: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    pub input: Option<PathBuf>,
    pub quote: Option<PathBuf>,
    pub event_log: Option<PathBuf>,
    pub collateral: Option<PathBuf>,
    pub app_compose: Option<PathBuf>,
    pub now: u64,
    pub skip_dcap: bool,
    pub allowed_tcb: Vec<String>,
    pub expect: Expectations,
}

/// Runs every check; never panics on malformed input.
#[must_use]
pub fn verify(options: &VerifyOptions) -> Report {
    let mut report = Report::default();
    let evidence = match gather(options) {
        Ok(evidence) => {
            report.pass(
                "input",
                format!(
                    "{}; {} event log entries",
                    evidence.kind,
                    evidence.entries.len()
                ),
            );
            evidence
        }
        Err(problem) => {
            report.fail("input", problem);
            report.finish();
            return report;
        }
    };
    let quote = check_quote(&mut report, &evidence, options);
    let events = check_log(&mut report, &evidence, quote.as_ref());
    check_compose(&mut report, &evidence, quote.as_ref(), events.as_deref());
    let launch = events
        .as_deref()
        .and_then(|e| check_launcher(&mut report, e, &options.expect));
    check_expectations(
        &mut report,
        options,
        quote.as_ref(),
        events.as_deref(),
        launch.as_ref(),
    );
    report.finish();
    report
}

fn gather(options: &VerifyOptions) -> Result<Evidence, String> {
    let mut evidence = match (&options.input, &options.quote) {
        (Some(path), _) => input::from_document(&input::read_source(path)?)?,
        (None, Some(path)) => Evidence {
            kind: format!("quote file {}", path.display()),
            quote: Some(input::quote_file(&input::read_source(path)?)),
            ..Evidence::default()
        },
        (None, None) => return Err("nothing to verify: give INPUT or --quote".into()),
    };
    if let Some(path) = &options.event_log {
        let extra = input::event_log_file(&input::read_source(path)?)?;
        evidence.kind = format!("{} + event log {}", evidence.kind, path.display());
        evidence.has_log = true;
        evidence.entries.extend(extra);
    }
    if let Some(path) = &options.app_compose {
        let bytes = input::read_source(path)?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8", path.display()))?;
        evidence.app_compose = Some(text);
    }
    if let Some(path) = &options.collateral {
        let bytes = input::read_source(path)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("collateral {} is not JSON: {e}", path.display()))?;
        evidence.collateral = Some(value);
    }
    Ok(evidence)
}

fn check_quote(
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
            report.fail("quote.structure", error.to_string());
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
            "--skip-dcap: the quote's signature and TCB were NOT verified; nothing here proves the quote came from a TDX machine",
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
            report.pass(
                "quote.signature",
                format!(
                    "Intel DCAP: quote signature, certificate chain and collateral valid at {}",
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
                format!("Intel DCAP verification failed: {error:#}"),
            );
            report.skip("quote.tcb_status", "signature not verified");
        }
    }
}

/// Recomputes RTMR3 digests, replays every register, compares with the quote. Returns the
/// RTMR3 events when their digests are sound.
fn check_log(
    report: &mut Report,
    evidence: &Evidence,
    quote: Option<&TdQuote>,
) -> Option<Vec<Event>> {
    for (index, name) in ["rtmr0", "rtmr1", "rtmr2"].into_iter().enumerate() {
        let imr = u32::try_from(index).unwrap_or_default();
        let digests: Option<Vec<[u8; 48]>> = evidence
            .entries
            .iter()
            .filter(|e| e.imr == imr)
            .map(|e| hex::decode_exact::<48>(&e.digest.to_ascii_lowercase()))
            .collect();
        let check = format!("{name}.replay");
        match (digests, quote) {
            (Some(d), _) if d.is_empty() => {
                report.skip(&check, format!("no IMR {imr} entries in the log"));
            }
            (None, _) => report.fail(
                &check,
                format!("an IMR {imr} entry has no 48-byte hex digest"),
            ),
            (Some(_), None) => report.skip(&check, "no readable quote"),
            (Some(d), Some(q)) => {
                let replayed = replay(&d);
                let quoted = q.rtmr.get(index).copied().unwrap_or([0; 48]);
                report.check(
                    &check,
                    replayed == quoted,
                    format!(
                        "{} entries replay to {}; quote has {}",
                        d.len(),
                        hex::encode(&replayed),
                        hex::encode(&quoted)
                    ),
                );
            }
        }
    }
    let rtmr3_entries = evidence.entries.iter().filter(|e| e.imr == 3).count();
    if !evidence.has_log {
        report.skip("event_log.digests", "no event log given");
        report.skip("rtmr3.replay", "no event log given: nothing says what runs");
        check_reported(report, evidence, quote);
        return None;
    }
    let log = match log_replay::rtmr3(&evidence.entries) {
        Ok(log) => log,
        Err(error) => {
            report.fail("event_log.digests", error.to_string());
            report.fail("rtmr3.replay", "cannot replay a log with a wrong digest");
            check_reported(report, evidence, quote);
            return None;
        }
    };
    let supplied = evidence
        .entries
        .iter()
        .filter(|e| e.imr == 3 && !e.digest.is_empty())
        .count();
    let supplied = if supplied == 0 {
        "no digests supplied (stripped log)".to_owned()
    } else {
        format!("the {supplied} supplied digests all match")
    };
    report.pass(
        "event_log.digests",
        format!("{rtmr3_entries} RTMR3 entries recomputed from name and payload; {supplied}"),
    );
    report.events = log
        .events
        .iter()
        .zip(evidence.entries.iter().filter(|e| e.imr == 3))
        .map(|(event, entry)| EventJson {
            imr: 3,
            event: event.name.clone(),
            event_payload: hex::encode(&event.payload),
            digest: hex::encode(&match entry.version {
                Some(2) => event.digest_v2(),
                _ => event.digest(),
            }),
        })
        .collect();
    match quote {
        Some(q) => report.check(
            "rtmr3.replay",
            log.rtmr3 == q.rtmr[3],
            format!(
                "{rtmr3_entries} events replay to {}; quote has {}",
                hex::encode(&log.rtmr3),
                hex::encode(&q.rtmr[3])
            ),
        ),
        None => report.skip("rtmr3.replay", "no readable quote"),
    }
    check_reported(report, evidence, quote);
    (quote.is_some_and(|q| log.rtmr3 == q.rtmr[3])).then_some(log.events)
}

/// Register values reported beside the quote must be the quote's.
fn check_reported(report: &mut Report, evidence: &Evidence, quote: Option<&TdQuote>) {
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

fn last_payload<'a>(events: &'a [Event], name: &str) -> Option<&'a [u8]> {
    events
        .iter()
        .rev()
        .find(|e| e.name == name)
        .map(|e| e.payload.as_slice())
}

fn check_compose(
    report: &mut Report,
    evidence: &Evidence,
    quote: Option<&TdQuote>,
    events: Option<&[Event]>,
) {
    let Some(events) = events else {
        let why = "no verified event log (see rtmr3.replay)";
        report.skip("mrconfigid.compose_hash", why);
        report.skip("compose_hash.app_compose", why);
        return;
    };
    let compose_hash = last_payload(events, "compose-hash");
    match quote.map(|q| q.mr_config_id) {
        Some(id) if id.iter().all(|&b| b == 0) => {
            report.skip("mrconfigid.compose_hash", "MRCONFIGID is zero (not bound)");
        }
        Some(id) if id.first() == Some(&1) => {
            let bound = id.get(1..33).unwrap_or_default();
            match compose_hash {
                Some(hash) => report.check(
                    "mrconfigid.compose_hash",
                    bound == hash,
                    format!(
                        "MRCONFIGID binds {}; compose-hash event {}",
                        hex::encode(bound),
                        hex::encode(hash)
                    ),
                ),
                None => report.fail(
                    "mrconfigid.compose_hash",
                    "MRCONFIGID is set but the replayed log has no compose-hash event",
                ),
            }
        }
        Some(_) => report.skip(
            "mrconfigid.compose_hash",
            "MRCONFIGID is not dstack's v1 form",
        ),
        None => report.skip("mrconfigid.compose_hash", "no readable quote"),
    }
    match (&evidence.app_compose, compose_hash) {
        (Some(compose), Some(hash)) => {
            let actual = Sha256::digest(compose.as_bytes());
            report.check(
                "compose_hash.app_compose",
                actual.as_slice() == hash,
                format!(
                    "sha256(app_compose) = {}; compose-hash event {}",
                    hex::encode(&actual),
                    hex::encode(hash)
                ),
            );
        }
        (Some(_), None) => report.fail(
            "compose_hash.app_compose",
            "app-compose given but no verified compose-hash event",
        ),
        (None, _) => report.skip("compose_hash.app_compose", "no app-compose given"),
    }
}

/// The payloads of the last launch.
struct Launch {
    config: Vec<u8>,
    workload: Vec<u8>,
}

/// Launcher events come after `system-ready`, in contract order, `ready` last; the last
/// launch is the one that counts.
fn check_launcher(report: &mut Report, events: &[Event], expect: &Expectations) -> Option<Launch> {
    let wants_launch =
        expect.image.is_some() || expect.commit.is_some() || expect.config_sha256.is_some();
    let ours: Vec<(usize, &Event)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name.starts_with("trusted-launcher."))
        .collect();
    if ours.is_empty() {
        if wants_launch {
            report.fail(
                "launcher.events",
                "no trusted-launcher events in the verified log",
            );
        } else {
            report.skip("launcher.events", "no trusted-launcher events in the log");
        }
        return None;
    }
    let system_ready = events.iter().position(|e| e.name == "system-ready");
    if let (Some(ready), Some((index, event))) = (system_ready, ours.first())
        && *index < ready
    {
        report.fail(
            "launcher.events",
            format!(
                "{} at position {index} comes before system-ready",
                event.name
            ),
        );
        return None;
    }
    let mut launches: Vec<Vec<&Event>> = Vec::new();
    for (index, event) in &ours {
        if event.name == CONFIG_EVENT {
            launches.push(vec![event]);
        } else if let Some(current) = launches.last_mut() {
            current.push(event);
        } else {
            report.fail(
                "launcher.events",
                format!(
                    "{} at position {index} comes before any {CONFIG_EVENT}",
                    event.name
                ),
            );
            return None;
        }
    }
    let contract = [CONFIG_EVENT, WORKLOAD_EVENT, READY_EVENT];
    let count = launches.len();
    for (number, launch) in launches.iter().enumerate() {
        let names: Vec<&str> = launch.iter().map(|e| e.name.as_str()).collect();
        let last = number + 1 == count;
        let valid = if last {
            names == contract
        } else {
            contract.starts_with(&names)
        };
        if !valid {
            let what = if last {
                "the last launch"
            } else {
                "an earlier launch"
            };
            report.fail(
                "launcher.events",
                format!(
                    "{what} (launch {} of {count}) has {}; expected {}",
                    number + 1,
                    names.join(", "),
                    contract.join(", ")
                ),
            );
            return None;
        }
    }
    let last = launches.last()?;
    let (config, workload) = (last.first()?, last.get(1)?);
    let context = if system_ready.is_some() {
        "after system-ready"
    } else {
        "(no system-ready in this log)"
    };
    report.pass(
        "launcher.events",
        format!(
            "launch {count} of {count} {context}: config {}, workload {}, ready",
            String::from_utf8_lossy(&config.payload),
            String::from_utf8_lossy(&workload.payload)
        ),
    );
    Some(Launch {
        config: config.payload.clone(),
        workload: workload.payload.clone(),
    })
}

fn check_expectations(
    report: &mut Report,
    options: &VerifyOptions,
    quote: Option<&TdQuote>,
    events: Option<&[Event]>,
    launch: Option<&Launch>,
) {
    let expect = &options.expect;
    let no_log = "no verified event log (see rtmr3.replay)";
    for (name, payload) in &expect.events {
        let check = format!("expect.event:{name}");
        match events.map(|e| last_payload(e, name)) {
            None => report.fail(&check, no_log),
            Some(None) => report.fail(&check, format!("no {name} event in the log")),
            Some(Some(actual)) => report.check(
                &check,
                actual == payload.as_slice(),
                format!(
                    "expected {}, log has {}",
                    hex::encode(payload),
                    hex::encode(actual)
                ),
            ),
        }
    }
    let launch_text =
        |check: &str, expected: String, actual: Option<&[u8]>, report: &mut Report| match actual {
            None => report.fail(
                check,
                "no valid launch in the verified log (see launcher.events)",
            ),
            Some(actual) => report.check(
                check,
                actual == expected.as_bytes(),
                format!(
                    "expected {expected}, log has {}",
                    String::from_utf8_lossy(actual)
                ),
            ),
        };
    if let Some(image) = &expect.image {
        launch_text(
            "expect.image",
            format!("oci:sha256:{}", hex::encode(image)),
            launch.map(|l| l.workload.as_slice()),
            report,
        );
    }
    if let Some(commit) = &expect.commit {
        launch_text(
            "expect.commit",
            format!("git:{commit}"),
            launch.map(|l| l.workload.as_slice()),
            report,
        );
    }
    if let Some(config) = &expect.config_sha256 {
        launch_text(
            "expect.config_sha256",
            format!("sha256:{}", hex::encode(config)),
            launch.map(|l| l.config.as_slice()),
            report,
        );
    }
    for (check, event, expected) in [
        (
            "expect.compose_hash",
            "compose-hash",
            expect.compose_hash.map(|h| h.to_vec()),
        ),
        ("expect.app_id", "app-id", expect.app_id.clone()),
    ] {
        let Some(expected) = expected else { continue };
        match events.map(|e| last_payload(e, event)) {
            None => report.fail(check, no_log),
            Some(None) => report.fail(check, format!("no {event} event in the log")),
            Some(Some(actual)) => report.check(
                check,
                actual == expected.as_slice(),
                format!(
                    "expected {}, {event} event has {}",
                    hex::encode(&expected),
                    hex::encode(actual)
                ),
            ),
        }
    }
    check_register_expectations(report, expect, quote);
}

/// How an expectation reads a register from the quote.
type RegisterRead = fn(&TdQuote) -> [u8; 48];

fn check_register_expectations(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events(names: &[&str]) -> Vec<Event> {
        names
            .iter()
            .map(|n| Event::new(n, format!("{n}-payload").into_bytes()))
            .collect()
    }

    fn launcher_verdict(names: &[&str]) -> (Status, String) {
        let mut report = Report::default();
        check_launcher(&mut report, &events(names), &Expectations::default());
        let check = report.checks.pop().unwrap();
        (check.status, check.detail)
    }

    const C: &str = "trusted-launcher.config";
    const W: &str = "trusted-launcher.workload";
    const R: &str = "trusted-launcher.ready";

    #[test]
    fn launcher_rules() {
        let pass = [
            &["system-ready", C, W, R][..],
            &["system-ready", C, W, R, "app-event"],
            &["system-ready", C, C, W, R],
            &["system-ready", C, W, C, W, R],
            &["system-ready", C, W, R, C, W, R],
            &[C, W, R],
        ];
        for names in pass {
            assert_eq!(launcher_verdict(names).0, Status::Passed, "{names:?}");
        }
        for (names, detail) in [
            (&[C, W, R, "system-ready"][..], "comes before system-ready"),
            (
                &["system-ready", W, C, R],
                "comes before any trusted-launcher.config",
            ),
            (
                &["system-ready", C, W],
                "the last launch (launch 1 of 1) has trusted-launcher.config, trusted-launcher.workload;",
            ),
            (
                &["system-ready", C, W, R, R],
                "the last launch (launch 1 of 1) has trusted-launcher.config, trusted-launcher.workload, trusted-launcher.ready, trusted-launcher.ready",
            ),
            (
                &["system-ready", C, W, R, "trusted-launcher.extra"],
                "has trusted-launcher.config, trusted-launcher.workload, trusted-launcher.ready, trusted-launcher.extra",
            ),
            (
                &["system-ready", C, R, C, W, R],
                "an earlier launch (launch 1 of 2)",
            ),
        ] {
            let (status, text) = launcher_verdict(names);
            assert_eq!(status, Status::Failed, "{names:?}");
            assert!(text.contains(detail), "{names:?}: {text}");
        }
        assert_eq!(
            launcher_verdict(&["system-ready", "app"]).0,
            Status::Skipped
        );
    }

    #[test]
    fn the_last_launch_is_compared() {
        let mut report = Report::default();
        let mut log = events(&["system-ready", C, W, R]);
        log.extend([
            Event::new(C, "sha256:second"),
            Event::new(W, "git:second"),
            Event::new(R, Vec::new()),
        ]);
        let launch = check_launcher(&mut report, &log, &Expectations::default()).unwrap();
        assert_eq!(launch.workload, b"git:second");
        assert_eq!(launch.config, b"sha256:second");
    }
}
