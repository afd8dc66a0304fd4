//! `verify`: from a quote and its event log to "this workload runs here", offline.
//!
//! Nothing supplied beside the quote is trusted: event digests are recomputed, registers are
//! read from the quote, reported values are compared with it, boot identity is read from the
//! boot part of the log only, and every launch in the log must be one the verifier accepts.

mod acceptance;
mod app_compose;
mod boot;
mod collateral;
mod collateral_cache;
mod collateral_source;
mod collateral_time;
mod dcap;
mod expect_file;
mod identity;
pub(crate) mod input;
mod pck_chain;
mod pcs;
mod pcs_reply;
mod plan_file;
mod quote;
pub(crate) mod quote_text;
mod replay;
mod report;
mod verdict;

use std::path::PathBuf;

pub use expect_file::ExpectFile;
pub use pcs::check_url;
pub use plan_file::PlanFile;
pub use report::Report;

use crate::contract::launches;
use crate::hex;
use crate::measure::event::Event;
use crate::workload::Workload;
use boot::Boot;
use input::Evidence;

/// TCB statuses a verifier may accept besides `UpToDate`.
pub const TCB_STATUSES: &[&str] = &[
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
];

/// What the verifier expects, parsed by the command line. The launch sets (`workloads`,
/// `configs`, `composes`) hold every acceptable value; an empty set constrains nothing.
#[derive(Clone, Debug, Default)]
pub struct Expectations {
    pub events: Vec<(String, Vec<u8>)>,
    pub workloads: Vec<Workload>,
    pub configs: Vec<[u8; 32]>,
    pub composes: Vec<[u8; 32]>,
    /// `--expect-signer`: accepted signer identities (`trusted-launcher.signer`'s `identity`).
    pub signers: Vec<String>,
    pub compose_hash: Option<[u8; 32]>,
    pub app_id: Option<Vec<u8>>,
    pub mrtd: Option<[u8; 48]>,
    pub rtmr: [Option<[u8; 48]>; 3],
    pub report_data: Option<Vec<u8>>,
}

impl Expectations {
    /// Something about a launch is expected, so a log without one cannot pass.
    fn wants_launch(&self) -> bool {
        !(self.workloads.is_empty()
            && self.configs.is_empty()
            && self.composes.is_empty()
            && self.signers.is_empty())
    }
}

// Each bool is an independent command-line switch.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    pub input: Option<PathBuf>,
    pub quote: Option<PathBuf>,
    pub event_log: Option<PathBuf>,
    pub collateral: Option<PathBuf>,
    pub app_compose: Option<PathBuf>,
    pub now: u64,
    /// `--now` was given (else `now` is the current time).
    pub now_given: bool,
    /// Collateral only from `--collateral`, the input or the cache: no network.
    pub offline: bool,
    /// The PCCS to fetch from instead of Intel's PCS.
    pub pccs_url: Option<String>,
    /// CA certificates (PEM) trusted for the PCS/PCCS's TLS besides the web roots.
    pub pccs_ca_file: Option<PathBuf>,
    /// Where fetched collateral is cached instead of the XDG cache directory.
    pub cache_dir: Option<PathBuf>,
    /// Where the collateral used is written.
    pub save_collateral: Option<PathBuf>,
    pub skip_dcap: bool,
    /// A log without any launcher event may pass (a boot before the launcher ran).
    pub allow_no_launch: bool,
    pub allowed_tcb: Vec<String>,
    pub expect: Expectations,
}

/// Runs every check; never panics on malformed input.
#[must_use]
pub fn verify(options: &VerifyOptions) -> Report {
    match gather(options) {
        Ok(evidence) => verify_evidence(&evidence, options),
        Err(problem) => {
            let mut report = Report::default();
            report.fail("input", problem);
            report.finish();
            report
        }
    }
}

/// Every check on evidence already read (the inputs' files are `options`' paths).
pub(crate) fn verify_evidence(evidence: &Evidence, options: &VerifyOptions) -> Report {
    let mut report = Report::default();
    report.pass(
        "input",
        format!(
            "{}; {} event log entries",
            evidence.kind,
            evidence.entries.len()
        ),
    );
    let quote = quote::check_quote(&mut report, evidence, options);
    let events = replay::check_log(&mut report, evidence, quote.as_ref());
    let boot = events.as_deref().map(Boot::read);
    report.app_id = boot
        .as_ref()
        .and_then(|b| b.payload("app-id").ok().flatten())
        .map(hex::encode);
    identity::check(&mut report, quote.as_ref(), boot.as_ref(), &options.expect);
    app_compose::check(
        &mut report,
        evidence.app_compose.as_ref(),
        evidence.audited_compose.as_ref(),
        quote.as_ref(),
        boot.as_ref(),
    );
    check_launcher(&mut report, events.as_deref(), boot.as_ref(), options);
    check_expected_events(
        &mut report,
        events.as_deref(),
        boot.as_ref(),
        &options.expect,
    );
    quote::check_register_expectations(&mut report, &options.expect, quote.as_ref());
    report.finish();
    report
}

fn gather(options: &VerifyOptions) -> Result<Evidence, String> {
    let mut evidence = match (&options.input, &options.quote) {
        (Some(path), _) => input::from_document(&input::read_source(path)?)?,
        (None, Some(path)) => {
            let (quote, encoding) = quote_text::decode(&input::read_source(path)?)
                .map_err(|why| format!("--quote {}: {why}", path.display()))?;
            Evidence {
                kind: format!("quote file {} ({})", path.display(), encoding.as_str()),
                quote: Some(quote),
                ..Evidence::default()
            }
        }
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
        evidence.audited_compose = Some(app_compose::AppCompose::new(
            path.display().to_string(),
            text,
        ));
    }
    if let Some(path) = &options.collateral {
        let bytes = input::read_source(path)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("collateral {} is not JSON: {e}", path.display()))?;
        evidence.collateral = Some(value);
    }
    Ok(evidence)
}

/// `launcher.events` (structure, and at least one complete launch) and one `launch.N` check
/// per attempt (acceptance).
fn check_launcher(
    report: &mut Report,
    events: Option<&[Event]>,
    boot: Option<&Boot<'_>>,
    options: &VerifyOptions,
) {
    let check = "launcher.events";
    let expect = &options.expect;
    let may_lack_launch = options.allow_no_launch && !expect.wants_launch();
    let Some(events) = events else {
        let why = "no verified event log (see rtmr3.replay): nothing shows which workload runs";
        if may_lack_launch {
            report.skip(check, format!("{why} (--allow-no-launch)"));
        } else {
            report.fail(check, why);
        }
        return;
    };
    let launches = match launches::read(events, boot.and_then(Boot::runtime_start)) {
        Ok(launches) => launches,
        Err(error) => {
            report.fail(check, error.to_string());
            return;
        }
    };
    if launches.is_empty() {
        if may_lack_launch {
            report.skip(
                check,
                "no trusted-launcher events in the log (--allow-no-launch)",
            );
        } else if options.allow_no_launch {
            report.fail(
                check,
                "a launch is expected (--expect-..., --plan) but the log has no trusted-launcher events",
            );
        } else {
            report.fail(
                check,
                "no trusted-launcher launch in the log: nothing shows which workload runs (--allow-no-launch accepts a boot before the launcher ran)",
            );
        }
        return;
    }
    let complete = launches.iter().filter(|l| l.complete).count();
    let mut detail = format!(
        "{} launch attempts after system-ready in contract order, {complete} complete",
        launches.len()
    );
    if expect.workloads.is_empty() {
        detail.push_str("; no workload expected (--plan, --expect-commit, --expect-image, --expect-file): workloads are shown, not compared");
    }
    if complete == 0 {
        detail.push_str("; no launch reached trusted-launcher.ready");
    }
    report.check(check, complete > 0, detail);
    acceptance::check(report, &launches, expect);
}

/// `--expect-event NAME=HEX`: a boot event name is read from the boot part; any other name
/// must occur exactly once after `system-ready`.
fn check_expected_events(
    report: &mut Report,
    events: Option<&[Event]>,
    boot: Option<&Boot<'_>>,
    expect: &Expectations,
) {
    for (name, payload) in &expect.events {
        let check = format!("expect.event:{name}");
        let (Some(events), Some(boot)) = (events, boot) else {
            report.fail(&check, "no verified event log (see rtmr3.replay)");
            continue;
        };
        let compare = |report: &mut Report, actual: &[u8], part: &str| {
            report.check(
                &check,
                actual == payload.as_slice(),
                format!(
                    "expected {}, {part} has {}",
                    hex::encode(payload),
                    hex::encode(actual)
                ),
            );
        };
        if boot::is_boot_event(name) {
            match boot.payload(name) {
                Err(why) => report.fail(&check, why),
                Ok(None) => report.fail(&check, format!("the boot part has no {name} event")),
                Ok(Some(actual)) => compare(report, actual, "the boot part"),
            }
            continue;
        }
        let Some(start) = boot.runtime_start() else {
            report.fail(&check, "the log has no system-ready (see boot.events)");
            continue;
        };
        let found: Vec<&Event> = events
            .iter()
            .skip(start)
            .filter(|e| e.name == *name)
            .collect();
        match found.as_slice() {
            [] => report.fail(&check, format!("no {name} event after system-ready")),
            [one] => compare(report, &one.payload, "the one after system-ready"),
            many => report.fail(
                &check,
                format!(
                    "{name} occurs {} times after system-ready: ambiguous, so it proves nothing",
                    many.len()
                ),
            ),
        }
    }
}
