//! `verify --plan` in image mode (issue 13): an image plan's `compose.sha256` is a reference
//! value too. The plan comes from `plan --json` against the tests' registry; the launch log is
//! the plan's own events (what `run` measures, DESIGN §4) after dstack's boot events, with an
//! unsigned quote whose RTMR3 is their replay (so `--skip-dcap`, exit 3 at best). A launch
//! whose compose file differs from the planned one is not accepted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;

use serde_json::Value;

use common::Fixture;
use common::fake_agent::unhex;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode, sha256_digest};
use common::verdict::{get_quote, verify};

/// The events of a plan as (name, payload).
fn planned_events(plan: &Value) -> Vec<(String, Vec<u8>)> {
    plan["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
            (e["event"].as_str().unwrap().to_owned(), payload)
        })
        .collect()
}

#[test]
fn an_image_plan_checks_the_compose_digest() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "planned-image");
    registry.push_image(&image);
    let digest = sha256_digest(&image.manifest.bytes);
    let config = fx.write(
        "c.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{digest}\"\n",
            registry.reference()
        ),
    );
    let run = fx
        .launcher()
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    let plan_path = fx.path().join("plan.json");
    fs::write(&plan_path, &run.stdout).unwrap();
    let plan_path = plan_path.to_str().unwrap();
    let compose = plan["compose"]["sha256"].as_str().unwrap().to_owned();
    assert!(compose.starts_with("sha256:"));

    let events = planned_events(&plan);
    assert!(events.iter().any(|(n, _)| n == "trusted-launcher.compose"));
    let good = fx.path().join("good.json");
    fs::write(&good, get_quote(&events).to_string()).unwrap();
    verify(
        fx.path(),
        &[good.to_str().unwrap(), "--skip-dcap", "--plan", plan_path],
    )
    .says(3, "NOT VERIFIED: the quote's signature was not checked")
    .mentions(&format!("runs oci:{digest} (config sha256:"))
    .mentions(&format!(", compose {compose})"));

    // The same image and config with another compose document: not accepted.
    let other = format!("sha256:{}", "5".repeat(64));
    let changed: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|(name, payload)| {
            if name == "trusted-launcher.compose" {
                (name.clone(), other.clone().into_bytes())
            } else {
                (name.clone(), payload.clone())
            }
        })
        .collect();
    let bad = fx.path().join("bad.json");
    fs::write(&bad, get_quote(&changed).to_string()).unwrap();
    let refused = verify(
        fx.path(),
        &[bad.to_str().unwrap(), "--skip-dcap", "--plan", plan_path],
    );
    refused.says(1, "NOT VERIFIED: launch 1 is not accepted: ");
    assert!(
        refused.detail("launch.1").contains("compose"),
        "{}",
        refused.detail("launch.1")
    );
    // Without the plan, the changed compose is shown, not compared: the plan is what refuses it.
    let shown = verify(fx.path(), &[bad.to_str().unwrap(), "--skip-dcap"]);
    shown.says(3, "NOT VERIFIED: the quote's signature was not checked");
}
