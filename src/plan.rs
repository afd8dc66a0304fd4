//! `plan`: the workload identity and every event `run` would measure, as text or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::contract;
use crate::hex;
use crate::launch::{Resolved, Target};
use crate::measure::event::digest_hex;

#[derive(Serialize)]
struct PlanJson<'a> {
    config: ConfigJson,
    workload: String,
    selection: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<ImageJson>,
    /// Image mode: the exact document compose gets, so a verifier can read it and rebuild
    /// the `trusted-launcher.compose` digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    compose: Option<ComposeJson<'a>>,
    events: Vec<EventJson<'a>>,
}

#[derive(Serialize)]
struct ComposeJson<'a> {
    sha256: String,
    document: &'a str,
}

#[derive(Serialize)]
struct ConfigJson {
    path: String,
    format: String,
    sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    approved_list: Option<String>,
}

#[derive(Serialize)]
struct ImageJson {
    reference: String,
    requested: String,
    kind: String,
    platform: String,
    manifest: String,
    config: String,
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
    let (repo, approved_list, image, compose) = match &resolved.target {
        Target::Git { spec, .. } => (
            Some(spec.repo_url.as_str()),
            spec.approved_list.as_ref(),
            None,
            None,
        ),
        Target::Image {
            spec,
            resolution,
            compose,
            ..
        } => (
            None,
            spec.approved_list.as_ref(),
            Some(ImageJson {
                reference: resolution.reference.to_string(),
                requested: resolution.requested.to_string(),
                kind: resolution.kind.to_string(),
                platform: resolution.platform.to_string(),
                manifest: resolution.manifest.to_string(),
                config: resolution.config.to_string(),
            }),
            Some(ComposeJson {
                sha256: contract::sha256_payload(compose.sha256().as_bytes()),
                document: compose.text(),
            }),
        ),
    };
    if json {
        let plan = PlanJson {
            config: ConfigJson {
                path: config.path.display().to_string(),
                format: config.format.to_string(),
                sha256: config.sha256.to_string(),
                approved_list: approved_list.map(|p| p.display().to_string()),
            },
            workload: resolved.approved.value().identity(),
            selection: resolved.approved.selection().to_string(),
            repo,
            image,
            compose,
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
        "config:   {} ({} format) sha256:{}\nworkload: {} ({})\n",
        config.path.display(),
        config.format,
        config.sha256,
        resolved.approved.value(),
        resolved.approved.selection(),
    );
    if let Some(repo) = repo {
        let _ = writeln!(out, "repo:     {repo}");
    }
    if let Some(image) = &image {
        let _ = writeln!(
            out,
            "image:    {} ({}, {})\nmanifest: {} (config {})",
            image.reference, image.kind, image.platform, image.manifest, image.config
        );
    }
    if let Some(compose) = &compose {
        let _ = writeln!(
            out,
            "compose:  {} ({} bytes; `plan --json` prints the document)",
            compose.sha256,
            compose.document.len()
        );
    }
    out.push_str("events (RTMR3, event type 0x08000001, v1 digests), in order:\n");
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
