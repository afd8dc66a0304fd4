//! Which launches the verifier accepts: every launch that counts must be, and at least one
//! must be complete.
//!
//! Expectations are sets: a launch's config must be one of the expected configs, its workload
//! one of the expected workloads, an image launch's compose digest one of the expected
//! compose digests. A set left empty constrains nothing (the report still shows the values).

use crate::contract::launches::Launch;
use crate::contract::sha256_payload;
use crate::workload::Workload;

use super::Expectations;
use super::report::{LaunchJson, Outcome, Report};

/// Judges one launch: its outcome and, when not accepted, why.
#[must_use]
pub fn judge(launch: &Launch, expect: &Expectations) -> (Outcome, Vec<String>) {
    let Some(workload) = launch.workload else {
        // Only a config was measured: the launcher stopped before choosing a workload, so
        // nothing from this attempt ran.
        return (Outcome::Incomplete, Vec::new());
    };
    let mut problems = Vec::new();
    if !expect.configs.is_empty() && !expect.configs.contains(&launch.config) {
        problems.push(format!(
            "config {} is not one of the expected ({})",
            sha256_payload(&launch.config),
            list(expect.configs.iter().map(sha256_payload))
        ));
    }
    if !expect.workloads.is_empty() && !expect.workloads.contains(&workload) {
        problems.push(format!(
            "workload {workload} is not one of the expected ({})",
            list(expect.workloads.iter().map(Workload::identity))
        ));
    }
    if let (Some(compose), false) = (launch.compose, expect.composes.is_empty())
        && !expect.composes.contains(&compose)
    {
        problems.push(format!(
            "compose {} is not one of the expected ({})",
            sha256_payload(&compose),
            list(expect.composes.iter().map(sha256_payload))
        ));
    }
    let outcome = match (problems.is_empty(), launch.complete) {
        (false, _) => Outcome::NotAccepted,
        (true, true) => Outcome::Accepted,
        (true, false) => Outcome::Incomplete,
    };
    (outcome, problems)
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Adds one `launch.N` check per launch and the `launches` list of the report.
pub fn check(report: &mut Report, launches: &[Launch], expect: &Expectations) {
    for launch in launches {
        let (outcome, problems) = judge(launch, expect);
        let json = LaunchJson {
            number: launch.number,
            complete: launch.complete,
            config: sha256_payload(&launch.config),
            workload: launch.workload.map(|w| w.identity()),
            compose: launch.compose.as_ref().map(sha256_payload),
            outcome,
            problems: problems.clone(),
        };
        let mut detail = format!(
            "{}: config {}, workload {}, compose {}",
            outcome.as_str(),
            json.config,
            json.workload
                .as_deref()
                .unwrap_or("(none: stopped before choosing)"),
            json.compose.as_deref().unwrap_or("-"),
        );
        if !launch.complete {
            detail.push_str(if launch.workload.is_some() {
                "; never reached ready, but its workload counts (INSTALL_CMD runs before ready)"
            } else {
                "; stopped before naming a workload: nothing ran"
            });
        }
        for problem in &problems {
            detail.push_str("; ");
            detail.push_str(problem);
        }
        report.check(
            &format!("launch.{}", launch.number),
            outcome != Outcome::NotAccepted,
            detail,
        );
        report.launches.push(json);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{CommitId, ImageDigest};

    fn git(byte: &str) -> Workload {
        Workload::Git(CommitId::parse(&byte.repeat(20)).unwrap())
    }

    fn image(byte: &str) -> Workload {
        Workload::Image(ImageDigest::parse(&format!("sha256:{}", byte.repeat(32))).unwrap())
    }

    fn launch(workload: Option<Workload>, compose: Option<[u8; 32]>, complete: bool) -> Launch {
        Launch {
            number: 1,
            events: 0..4,
            config: [0xc0; 32],
            workload,
            compose,
            complete,
        }
    }

    #[test]
    fn launches_are_judged_against_every_set() {
        let expect = Expectations {
            workloads: vec![git("1f"), image("5a")],
            configs: vec![[0xc0; 32]],
            composes: vec![[0xd0; 32]],
            ..Expectations::default()
        };
        let judged = |l: &Launch| judge(l, &expect);
        assert_eq!(
            judged(&launch(Some(git("1f")), None, true)),
            (Outcome::Accepted, vec![])
        );
        assert_eq!(
            judged(&launch(Some(image("5a")), Some([0xd0; 32]), true)).0,
            Outcome::Accepted
        );
        assert_eq!(
            judged(&launch(Some(git("1f")), None, false)).0,
            Outcome::Incomplete
        );
        assert_eq!(judged(&launch(None, None, false)).0, Outcome::Incomplete);
        assert_eq!(
            judged(&launch(Some(git("2f")), None, false)),
            (
                Outcome::NotAccepted,
                vec![format!(
                    "workload git:{} is not one of the expected (git:{}, oci:sha256:{})",
                    "2f".repeat(20),
                    "1f".repeat(20),
                    "5a".repeat(32)
                )]
            )
        );
        assert_eq!(
            judged(&launch(Some(image("5a")), Some([0xd1; 32]), true)).1,
            [format!(
                "compose sha256:{} is not one of the expected (sha256:{})",
                "d1".repeat(32),
                "d0".repeat(32)
            )]
        );
        let mut other_config = launch(Some(git("1f")), None, true);
        other_config.config = [0xc1; 32];
        assert_eq!(
            judged(&other_config).1,
            [format!(
                "config sha256:{} is not one of the expected (sha256:{})",
                "c1".repeat(32),
                "c0".repeat(32)
            )]
        );
    }

    #[test]
    fn empty_sets_constrain_nothing() {
        let any = Expectations::default();
        assert_eq!(
            judge(&launch(Some(git("2f")), None, true), &any).0,
            Outcome::Accepted
        );
    }
}
