//! The verdict: the one line a person reads first. `VERIFIED: runs <workload> (config ...) on a
//! genuine Intel TDX platform, TCB <status>, app <id>` only when every check passed and Intel
//! DCAP verified the quote; otherwise `NOT VERIFIED:` and the first failing check in words, or
//! that the signature was not checked.

use std::fmt::Write as _;

use super::report::{Check, LaunchJson, Outcome, Status};

/// What the verdict is made of.
#[derive(Debug)]
pub struct Facts<'a> {
    pub checks: &'a [Check],
    pub signature_verified: bool,
    pub launches: &'a [LaunchJson],
    pub tcb_status: Option<&'a str>,
    pub app_id: Option<&'a str>,
}

/// The verdict line (no newline).
#[must_use]
pub fn line(facts: &Facts<'_>) -> String {
    if let Some(failed) = facts.checks.iter().find(|c| c.status == Status::Failed) {
        return format!("NOT VERIFIED: {}", in_words(failed));
    }
    let runs = runs(facts.launches);
    if !facts.signature_verified {
        let shown = runs.as_deref().unwrap_or(NO_LAUNCH);
        return format!(
            "NOT VERIFIED: the quote's signature was not checked (--skip-dcap), so nothing proves it comes from a genuine TDX platform; every other check passed ({shown})"
        );
    }
    let tcb = facts.tcb_status.unwrap_or("unknown");
    let app = facts.app_id.map_or_else(
        || "unknown (no app-id event in the boot log)".to_owned(),
        str::to_owned,
    );
    match runs {
        Some(runs) => {
            format!("VERIFIED: {runs} on a genuine Intel TDX platform, TCB {tcb}, app {app}")
        }
        None => {
            format!("VERIFIED: a genuine Intel TDX platform, TCB {tcb}, app {app}; {NO_LAUNCH}")
        }
    }
}

const NO_LAUNCH: &str =
    "no launcher launch in the log (--allow-no-launch), so no workload is proven";

/// What the log shows running: the last complete launch (the one that was exec'd last).
fn runs(launches: &[LaunchJson]) -> Option<String> {
    let last = launches
        .iter()
        .rev()
        .find(|l| l.complete && l.outcome == Outcome::Accepted);
    let launch = last?;
    let workload = launch.workload.as_deref().unwrap_or("an unnamed workload");
    let mut identity = format!("config {}", launch.config);
    if let Some(compose) = &launch.compose {
        identity.push_str(", compose ");
        identity.push_str(compose);
    }
    let mut text = format!("runs {workload} ({identity})");
    if launches.len() > 1 {
        let _ = write!(text, ", the last of {} launch attempts", launches.len());
    }
    Some(text)
}

/// A failed check as a sentence.
fn in_words(check: &Check) -> String {
    let name = check.name.as_str();
    let detail = &check.detail;
    let register = name
        .strip_suffix(".replay")
        .filter(|r| r.starts_with("rtmr"));
    match name {
        "input" => format!("the input could not be read: {detail}"),
        "quote.structure" => format!("the quote is not readable: {detail}"),
        "quote.signature" => format!("the quote's signature did not verify: {detail}"),
        "quote.tcb_status" => format!("the platform's TCB status is not accepted: {detail}"),
        "tcb_info.registers" => {
            format!("the registers reported beside the quote are not the quote's: {detail}")
        }
        "event_log.digests" => format!("the event log's digests do not match its events: {detail}"),
        "boot.events" => format!("the boot part of the event log is not acceptable: {detail}"),
        "launcher.events" => format!("the launcher's events do not prove a launch: {detail}"),
        _ if register.is_some() => format!(
            "the event log does not replay to the quote's {}: {detail}",
            register.unwrap_or_default().to_uppercase()
        ),
        _ if name.starts_with("launch.") => format!(
            "launch {} is not accepted: {detail}",
            name.trim_start_matches("launch.")
        ),
        _ if name.starts_with("expect.") => format!(
            "the expected {} does not hold: {detail}",
            name.trim_start_matches("expect.")
        ),
        _ => format!("{name} failed: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(workload: &str, compose: Option<&str>) -> LaunchJson {
        LaunchJson {
            number: 1,
            complete: true,
            config: "sha256:cc".into(),
            workload: Some(workload.into()),
            compose: compose.map(str::to_owned),
            outcome: Outcome::Accepted,
            problems: Vec::new(),
        }
    }

    fn facts<'a>(checks: &'a [Check], launches: &'a [LaunchJson], dcap: bool) -> Facts<'a> {
        Facts {
            checks,
            signature_verified: dcap,
            launches,
            tcb_status: Some("UpToDate"),
            app_id: Some("ab12"),
        }
    }

    #[test]
    fn verified_names_what_runs_where() {
        let checks = [Check::new("quote.signature", Status::Passed, "ok")];
        let git = [launch("git:1f1f", None)];
        assert_eq!(
            line(&facts(&checks, &git, true)),
            "VERIFIED: runs git:1f1f (config sha256:cc) on a genuine Intel TDX platform, TCB UpToDate, app ab12"
        );
        let image = [launch("oci:sha256:dd", Some("sha256:ee"))];
        assert!(
            line(&facts(&checks, &image, true)).starts_with(
                "VERIFIED: runs oci:sha256:dd (config sha256:cc, compose sha256:ee) on"
            )
        );
    }

    #[test]
    fn not_verified_without_the_signature_or_with_a_failure() {
        let git = [launch("git:1f1f", None)];
        let skipped = [Check::new(
            "quote.signature",
            Status::Skipped,
            "--skip-dcap",
        )];
        let unsigned = line(&facts(&skipped, &git, false));
        assert!(unsigned.starts_with("NOT VERIFIED: the quote's signature was not checked"));
        let failed = [
            Check::new("quote.signature", Status::Passed, "ok"),
            Check::new("rtmr3.replay", Status::Failed, "differs"),
            Check::new("launch.1", Status::Failed, "other"),
        ];
        assert_eq!(
            line(&facts(&failed, &git, true)),
            "NOT VERIFIED: the event log does not replay to the quote's RTMR3: differs"
        );
    }
}
