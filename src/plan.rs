//! `plan`: the workload identity and every event `run` would measure, as text or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::hex;
use crate::launch::Resolved;
use crate::measure::event::digest_hex;

#[derive(Serialize)]
struct PlanJson<'a> {
    config: ConfigJson<'a>,
    workload: String,
    selection: String,
    repo: &'a str,
    events: Vec<EventJson<'a>>,
}

#[derive(Serialize)]
struct ConfigJson<'a> {
    path: String,
    format: String,
    sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_list: Option<&'a str>,
}

#[derive(Serialize)]
struct EventJson<'a> {
    event: &'a str,
    event_payload: String,
    digest: String,
}

/// Renders a resolved plan.
#[must_use]
pub fn render(resolved: &Resolved, json: bool) -> String {
    let config = &resolved.config;
    if json {
        let plan = PlanJson {
            config: ConfigJson {
                path: config.path.display().to_string(),
                format: config.format.to_string(),
                sha256: config.sha256.to_string(),
                approved_list: config.git.approved_list.as_deref().and_then(|p| p.to_str()),
            },
            workload: resolved.approved.value().identity(),
            selection: resolved.approved.selection().to_string(),
            repo: &config.git.repo_url,
            events: resolved
                .events
                .iter()
                .map(|e| EventJson {
                    event: &e.name,
                    event_payload: hex::encode(&e.payload),
                    digest: digest_hex(&e.digest()),
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&plan).unwrap_or_default();
        text.push('\n');
        return text;
    }
    let mut out = format!(
        "config:   {} ({} format) sha256:{}\nworkload: {} ({})\nrepo:     {}\nevents (RTMR3, event type 0x08000001, v1 digests), in order:\n",
        config.path.display(),
        config.format,
        config.sha256,
        resolved.approved.value(),
        resolved.approved.selection(),
        config.git.repo_url,
    );
    for event in &resolved.events {
        let _ = write!(
            out,
            "  {}\n    payload: {} ({:?})\n    digest:  {}\n",
            event.name,
            hex::encode(&event.payload),
            String::from_utf8_lossy(&event.payload),
            digest_hex(&event.digest()),
        );
    }
    out
}
