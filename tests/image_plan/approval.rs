//! Approval of digests: the approved list selects, overrides must be listed, a bad list
//! is an error, a missing one falls back to the pinned digest with a warning.

use serde_json::Value;

use crate::common::Fixture;
use crate::common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use crate::{hex_of, image_config, plan, plan_json, refused, requested_references};

// ---------------------------------------------------------------------------------------
// Approval

/// A registry holding three single-platform images; returns their digests.
fn three_images(registry: &FakeRegistry) -> [String; 3] {
    ["one", "two", "three"].map(|seed| {
        let image = Image::new(Flavor::Oci, "linux/amd64", seed);
        registry.push_image(&image);
        image.digest()
    })
}

#[test]
fn approved_list_selects_the_newest() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let [pinned, newest, older] = three_images(&registry);
    let list = fx.write(
        "approved.json",
        &format!(r#"{{"approved_hashes":["{newest}","{older}"]}}"#),
    );
    let config = image_config(
        &fx,
        &registry,
        &pinned,
        &format!("approved_list = \"{}\"\n", list.display()),
    );
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["workload"], format!("oci:{newest}"), "{plan:#}");
    assert_eq!(plan["selection"], "newest entry of the approved list");
    assert_eq!(plan["image"]["requested"], newest);
    assert_eq!(requested_references(&registry), [newest]);
}

#[test]
fn listed_override_is_selected() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let [pinned, newest, older] = three_images(&registry);
    let list = fx.write(
        "approved.json",
        &format!(r#"{{"approved_hashes":["{newest}","{older}"]}}"#),
    );
    let config = image_config(
        &fx,
        &registry,
        &pinned,
        &format!(
            "approved_list = \"{}\"\noverride = \"{older}\"\n",
            list.display()
        ),
    );
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["workload"], format!("oci:{older}"), "{plan:#}");
    assert_eq!(plan["selection"], "override, found in the approved list");
    assert_eq!(plan["image"]["manifest"], older);
}

#[test]
fn unlisted_override_is_not_approved_and_never_fetched() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let [pinned, newest, older] = three_images(&registry);
    let list = fx.write(
        "approved.json",
        &format!(r#"{{"approved_hashes":["{newest}"]}}"#),
    );
    let config = image_config(
        &fx,
        &registry,
        &pinned,
        &format!(
            "approved_list = \"{}\"\noverride = \"{older}\"\n",
            list.display()
        ),
    );
    let run = plan(&fx, &config, true);
    refused(&fx, &run, "is not approved", &[hex_of(&older)]);
    assert!(
        registry.manifest_requests().is_empty(),
        "a refused override reached the registry: {:?}",
        requested_references(&registry)
    );
}

/// A list that is malformed, empty, or in git mode's format is an error, never a silent
/// fallback to the pinned digest.
#[test]
fn malformed_approved_list_is_an_error() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let [pinned, newest, _] = three_images(&registry);
    let sha = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
    for text in [
        r#"{"approved_hashes":[]}"#.to_owned(),
        format!(r#"{{"approved_hashes":["{}"]}}"#, newest.to_uppercase()),
        format!(r#"{{"approved_hashes":["{}"]}}"#, hex_of(&newest)),
        format!(r#"{{"approved_commits":["{sha}"]}}"#),
        format!(r#"{{"approved_hashes":["{newest}"],"extra":1}}"#),
        "not json".to_owned(),
    ] {
        let list = fx.write("approved.json", &text);
        let config = image_config(
            &fx,
            &registry,
            &pinned,
            &format!("approved_list = \"{}\"\n", list.display()),
        );
        let run = plan(&fx, &config, true);
        refused(&fx, &run, "approved list", &["approved.json"]);
    }
    assert!(
        registry.manifest_requests().is_empty(),
        "a malformed list still reached the registry"
    );
}

#[test]
fn missing_approved_list_falls_back_to_the_pinned_digest_with_a_warning() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let [pinned, ..] = three_images(&registry);
    let list = fx.path().join("no-such-list.json");
    let config = image_config(
        &fx,
        &registry,
        &pinned,
        &format!("approved_list = \"{}\"\n", list.display()),
    );
    let run = plan(&fx, &config, true);
    run.success().stderr_has("does not exist");
    assert!(run.stderr.contains("no-such-list.json"), "{}", run.stderr);
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["workload"], format!("oci:{pinned}"), "{plan:#}");
    assert_eq!(plan["selection"], "pinned in the config");
}
