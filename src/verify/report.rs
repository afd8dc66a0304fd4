//! The verification result: a checklist for people, or one JSON object for programs.

use std::fmt::Write as _;

use serde::Serialize;

use super::verdict;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// `true` passed, `false` failed, `null` skipped.
    pub ok: Option<bool>,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, status: Status, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            status,
            ok: match status {
                Status::Passed => Some(true),
                Status::Failed => Some(false),
                Status::Skipped => None,
            },
            detail: detail.into(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Measurements {
    pub mrtd: String,
    pub mr_config_id: String,
    pub rtmr0: String,
    pub rtmr1: String,
    pub rtmr2: String,
    pub rtmr3: String,
    pub report_data: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventJson {
    pub imr: u32,
    pub event: String,
    pub event_payload: String,
    pub digest: String,
}

/// What became of one launch attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Complete, and everything it names is expected.
    #[serde(rename = "accepted")]
    Accepted,
    /// Something it names (complete or not) is not expected: the verification fails.
    #[serde(rename = "not accepted")]
    NotAccepted,
    /// Never reached `ready`; what it names (if anything) is expected.
    #[serde(rename = "incomplete")]
    Incomplete,
}

impl Outcome {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::NotAccepted => "not accepted",
            Self::Incomplete => "incomplete",
        }
    }
}

/// One launch attempt as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LaunchJson {
    pub number: usize,
    pub complete: bool,
    pub config: String,
    pub workload: Option<String>,
    pub compose: Option<String>,
    pub outcome: Outcome,
    pub problems: Vec<String>,
    /// The `trusted-launcher.signer` event's signer, when the launch measured one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<crate::sigstore::Signer>,
}

/// Exit code of `verify` when every check passed but the quote's signature was not checked
/// (`--skip-dcap`): never 0, so a script cannot mistake it for a verified quote.
pub const EXIT_SIGNATURE_NOT_CHECKED: i32 = 3;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `true` only when every check passed AND the quote's signature was verified (exit 0).
    pub ok: bool,
    /// Intel DCAP verified the quote's signature, certificate chain and collateral.
    pub signature_verified: bool,
    /// The verdict in one line: `VERIFIED: runs ...` or `NOT VERIFIED: ...` (the text
    /// report's first line).
    pub verdict: String,
    pub checks: Vec<Check>,
    /// Every launch attempt in the log, in order.
    pub launches: Vec<LaunchJson>,
    pub tcb_status: Option<String>,
    pub advisory_ids: Vec<String>,
    /// Where the DCAP collateral came from and until when it is valid (`null` without DCAP).
    pub collateral: Option<super::dcap::CollateralJson>,
    pub measurements: Option<Measurements>,
    pub events: Vec<EventJson>,
    /// The boot's app id (hex), for the verdict.
    #[serde(skip)]
    pub app_id: Option<String>,
}

impl Report {
    pub fn pass(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check::new(name, Status::Passed, detail));
    }

    pub fn fail(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check::new(name, Status::Failed, detail));
    }

    pub fn skip(&mut self, name: &str, detail: impl Into<String>) {
        self.checks.push(Check::new(name, Status::Skipped, detail));
    }

    /// Passes when `ok`, else fails; the detail says which.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        if ok {
            self.pass(name, detail);
        } else {
            self.fail(name, detail);
        }
    }

    /// No check failed (the signature may still be unchecked).
    fn all_passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Failed)
    }

    /// Sets `ok` and the verdict from the checks and the signature; returns `ok`.
    pub fn finish(&mut self) -> bool {
        self.ok = self.all_passed() && self.signature_verified;
        self.verdict = verdict::line(&verdict::Facts {
            checks: &self.checks,
            signature_verified: self.signature_verified,
            launches: &self.launches,
            tcb_status: self.tcb_status.as_deref(),
            app_id: self.app_id.as_deref(),
        });
        self.ok
    }

    /// 0 verified; `EXIT_SIGNATURE_NOT_CHECKED` (3) every check passed but the signature was
    /// not checked; 1 a check failed.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match (self.ok, self.all_passed()) {
            (true, _) => 0,
            (false, true) => EXIT_SIGNATURE_NOT_CHECKED,
            (false, false) => 1,
        }
    }

    #[must_use]
    pub fn text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.verdict);
        for check in &self.checks {
            let mark = match check.status {
                Status::Passed => "PASS",
                Status::Failed => "FAIL",
                Status::Skipped => "SKIP",
            };
            let _ = writeln!(out, "{mark}  {:<width$}  {}", check.name, check.detail);
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .count();
        let skipped = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Skipped)
            .count();
        if self.ok {
            let _ = writeln!(
                out,
                "verification passed ({} checks, {skipped} skipped)",
                self.checks.len()
            );
        } else if failed == 0 {
            let _ = writeln!(
                out,
                "verification INCOMPLETE: every check passed but the quote's signature was NOT checked ({} checks, {skipped} skipped; exit {EXIT_SIGNATURE_NOT_CHECKED})",
                self.checks.len()
            );
        } else {
            let _ = writeln!(
                out,
                "verification FAILED ({failed} of {} checks failed)",
                self.checks.len()
            );
        }
        out
    }

    #[must_use]
    pub fn json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }
}
