//! `verify --plan FILE`: the reference values of a launch read from `plan --json` output.
//!
//! A plan names one launch: its workload (`workload`: `git:<hex>` or `oci:sha256:<hex>`), the
//! SHA-256 of its config (`config.sha256`, hex) and, in image mode, of its rendered compose
//! file (`compose.sha256`, `sha256:<hex>`). Each is cross-checked with the plan's own `events`
//! (the payloads `run` measures), so a hand-edited plan whose summary and events disagree is
//! refused rather than half believed. Fields the verifier does not use are ignored (the plan
//! may gain fields).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::capped_read::{CappedReadError, read_capped};
use crate::contract::{self, COMPOSE_EVENT, CONFIG_EVENT, WORKLOAD_EVENT};
use crate::hex;
use crate::workload::Workload;

/// A plan is a few kilobytes (plus the compose document); anything larger is not one.
pub const MAX_PLAN_BYTES: u64 = 4 * 1024 * 1024;

/// The accepted values one plan gives.
#[derive(Debug, PartialEq, Eq)]
pub struct PlanFile {
    pub workload: Workload,
    pub config: [u8; 32],
    pub compose: Option<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read --plan {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("--plan {path} is larger than {MAX_PLAN_BYTES} bytes: not `plan --json` output")]
    TooLarge { path: PathBuf },
    #[error("--plan {path} is not JSON: {detail}")]
    NotJson { path: PathBuf, detail: String },
    #[error("--plan {path}: field {field} {problem} (expected `plan --json` output)")]
    Field {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

impl PlanFile {
    /// Reads `path` (a regular file, capped) and parses it.
    pub fn read(path: &Path) -> Result<Self, PlanFileError> {
        let bytes = read_capped(path, MAX_PLAN_BYTES).map_err(|e| match e {
            CappedReadError::TooLarge => PlanFileError::TooLarge {
                path: path.to_owned(),
            },
            other => PlanFileError::Read {
                path: path.to_owned(),
                detail: other.to_string(),
            },
        })?;
        let value = crate::strict_json::from_slice(&bytes).map_err(|e| PlanFileError::NotJson {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        Self::parse(&value).map_err(|(field, problem)| PlanFileError::Field {
            path: path.to_owned(),
            field,
            problem,
        })
    }

    /// The values of a parsed plan, or the field that is wrong and how.
    fn parse(plan: &Value) -> Result<Self, (&'static str, String)> {
        if !plan.is_object() {
            return Err(("(top level)", "is not an object".into()));
        }
        let workload_text = string(plan, "/workload", "workload")?;
        let workload = Workload::parse(workload_text).ok_or((
            "workload",
            format!("is not git:<40 or 64 lowercase hex> or oci:sha256:<64 lowercase hex> (got {workload_text:?})"),
        ))?;
        let config_text = string(plan, "/config/sha256", "config.sha256")?;
        let config = hex::decode_exact::<32>(config_text).ok_or((
            "config.sha256",
            format!("is not 64 lowercase hex digits (got {config_text:?})"),
        ))?;
        let compose = match plan.get("compose") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let text = string(plan, "/compose/sha256", "compose.sha256")?;
                let digest = contract::parse_sha256(text).ok_or((
                    "compose.sha256",
                    format!("is not sha256:<64 lowercase hex> (got {text:?})"),
                ))?;
                Some(digest)
            }
        };
        let parsed = Self {
            workload,
            config,
            compose,
        };
        parsed.agrees_with_events(plan)?;
        Ok(parsed)
    }

    /// The plan's `events` measure exactly these values.
    fn agrees_with_events(&self, plan: &Value) -> Result<(), (&'static str, String)> {
        let events = plan
            .get("events")
            .and_then(Value::as_array)
            .ok_or(("events", "is missing or not an array".to_owned()))?;
        let payload_of = |name: &str| -> Result<Option<Vec<u8>>, (&'static str, String)> {
            let mut found = None;
            for event in events {
                if event.get("event").and_then(Value::as_str) != Some(name) {
                    continue;
                }
                let payload = event
                    .get("event_payload")
                    .and_then(Value::as_str)
                    .and_then(hex::decode)
                    .ok_or((
                        "events",
                        format!("has a {name} event without a hex payload"),
                    ))?;
                if found.replace(payload).is_some() {
                    return Err(("events", format!("has {name} twice")));
                }
            }
            Ok(found)
        };
        let expected = [
            (
                CONFIG_EVENT,
                "config.sha256",
                Some(contract::sha256_payload(&self.config)),
            ),
            (WORKLOAD_EVENT, "workload", Some(self.workload.identity())),
            (
                COMPOSE_EVENT,
                "compose.sha256",
                self.compose.as_ref().map(contract::sha256_payload),
            ),
        ];
        for (event, field, value) in expected {
            let actual = payload_of(event)?;
            if actual.as_deref() != value.as_ref().map(String::as_bytes) {
                return Err((
                    field,
                    format!(
                        "disagrees with the plan's {event} event ({})",
                        actual.map_or("none".to_owned(), |p| String::from_utf8_lossy(&p)
                            .into_owned())
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn string<'a>(
    plan: &'a Value,
    pointer: &str,
    field: &'static str,
) -> Result<&'a str, (&'static str, String)> {
    plan.pointer(pointer)
        .and_then(Value::as_str)
        .ok_or((field, "is missing or not a string".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Value {
        crate::strict_json::from_slice(include_bytes!("../../tests/fixtures/hello.plan.json"))
            .unwrap()
    }

    #[test]
    fn the_example_plan_gives_its_values() {
        let plan = PlanFile::parse(&hello()).unwrap();
        assert_eq!(
            plan.workload.identity(),
            "git:23139dff75edd9a9a1078b3142a716925181e1ca"
        );
        assert_eq!(
            hex::encode(&plan.config),
            "aa006be9f16abd8869d8652fcdbf78822436bbc843fb33189e15112fb817145b"
        );
        assert_eq!(plan.compose, None);
    }

    #[test]
    fn a_summary_that_disagrees_with_the_events_is_refused() {
        let mut plan = hello();
        plan["config"]["sha256"] = Value::String("0".repeat(64));
        assert_eq!(PlanFile::parse(&plan).unwrap_err().0, "config.sha256");
        // A compose digest the events do not measure.
        let mut plan = hello();
        plan["compose"] = serde_json::json!({"sha256": format!("sha256:{}", "1".repeat(64))});
        assert_eq!(PlanFile::parse(&plan).unwrap_err().0, "compose.sha256");
        // A measured workload event given twice.
        let mut plan = hello();
        let events = plan["events"].as_array_mut().unwrap();
        let workload = events[1].clone();
        events.push(workload);
        assert_eq!(PlanFile::parse(&plan).unwrap_err().0, "events");
    }
}
