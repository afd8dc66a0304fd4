//! `[image.signature]` (issue 17), the real binary against the in-process registry serving
//! real cosign signatures (tests/fixtures/sigstore/): the signed manifest's exact bytes under
//! its digest, and cosign's `sha256-<hex>.sig` tag whose layer is the fixture's signature.
//!
//! The signed images' config blobs are not part of the fixtures (containers/image kept only
//! the manifest), so an accepted signature is seen passing and the launch then stopping at
//! the config blob, still before anything is measured or started. The measured signer event
//! and `verify --expect-signer` are then checked on a log holding the payload the launcher
//! printed.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use common::fake_docker::FakeDocker;
use common::fake_registry::{Blob, FakeRegistry, Flavor, Image, Mode, sha256_digest};
use common::forged_log::{COMPOSE, CONFIG, READY, WORKLOAD};
use common::{Fixture, Run};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");
const FULCIO: &str = "dir-img-cosign-fulcio-rekor-valid";
const KEY_REKOR: &str = "dir-img-cosign-key-rekor-valid";
const KEYLESS: &str = "[image.signature]\nissuer = \"https://github.com/login/oauth\"\nidentity = \"mitr@redhat.com\"\n";
/// The signed manifest's config blob: absent from the fixtures, so resolution stops there.
const CONFIG_BLOB: &str = "sha256:3b0f78b718417dfa432fd8da26d0e3ac4ca3566d0825b0d2b056ccc4dd29e644";

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// `signature-1.json` as cosign stores it in a registry: an OCI manifest tagged
/// `sha256-<hex>.sig` whose layer (media type simple signing) is the payload, with the
/// signature, certificate and Rekor bundle as the layer's annotations
/// (sigstore/cosign `specs/SIGNATURE_SPEC.md`).
fn signature_manifest(registry: &FakeRegistry, dir: &str, edit: impl FnOnce(&mut Value)) {
    let mut signature: Value =
        serde_json::from_slice(&read(&format!("{dir}/signature-1.json"))).unwrap();
    edit(&mut signature["annotations"]);
    let payload = Blob {
        media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
        bytes: b64(signature["payload"].as_str().unwrap()),
    };
    registry.push_blob(&payload);
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(signature["annotations"].clone()).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": sha256_digest(b"{}")},
        "layers": [{"mediaType": payload.media_type, "size": payload.bytes.len(),
                    "digest": payload.digest(), "annotations": annotations}],
    });
    let manifest = Blob {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: serde_json::to_vec(&manifest).unwrap(),
    };
    let signed = signed_manifest(dir);
    registry.push_tag(
        &format!("{}.sig", signed.digest().replace(':', "-")),
        &manifest,
    );
}

fn signed_manifest(dir: &str) -> Blob {
    Blob {
        media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
        bytes: read(&format!("{dir}/manifest.json")),
    }
}

/// A change to the signature layer's annotations.
type Edit = Box<dyn FnOnce(&mut Value)>;

fn b64(text: &str) -> Vec<u8> {
    common::fake_registry::base64_decode(text).unwrap()
}

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    docker: FakeDocker,
    digest: String,
}

/// The registry serving `dir`'s signed manifest and its signature (after `edit`).
fn signed(dir: &str, edit: impl FnOnce(&mut Value)) -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let manifest = signed_manifest(dir);
    registry.push_manifest(&manifest);
    signature_manifest(&registry, dir, edit);
    let docker = FakeDocker::new(&fx);
    Setup {
        fx,
        registry,
        docker,
        digest: manifest.digest(),
    }
}

impl Setup {
    fn config(&self, extra: &str) -> PathBuf {
        self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n{extra}",
                self.registry.reference(),
                self.digest,
                self.fx.path().join("compose.yaml").display()
            ),
        )
    }

    fn run(&self, extra: &str) -> Run {
        self.fx
            .launcher()
            .args(["--docker", self.docker.script.to_str().unwrap()])
            .arg(self.config(extra).to_str().unwrap())
            .run()
    }

    /// Nothing measured, docker never called, no compose file written.
    #[track_caller]
    fn nothing_done(&self) {
        assert_eq!(self.fx.events(), Vec::<Value>::new());
        assert_eq!(self.docker.calls(), Vec::<String>::new());
        assert!(!self.fx.path().join("compose.yaml").exists());
    }

    /// Whether resolution (the manifest chain) was started: the signed manifest requested.
    fn resolution_started(&self) -> bool {
        self.registry
            .manifest_requests()
            .iter()
            .any(|r| r.path().ends_with(&format!("/manifests/{}", self.digest)))
    }
}

/// The signer payload the launcher logged as verified.
fn verified_payload(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| {
            l.split_once("signature verified: ")
                .map(|(_, p)| p.to_owned())
        })
        .unwrap_or_else(|| panic!("no verified signature:\n{}", run.stderr))
}

#[test]
fn a_keyless_signature_with_the_policys_identity_passes_before_resolution() {
    let setup = signed(FULCIO, |_| {});
    let run = setup.run(KEYLESS);
    // Accepted: resolution goes on and stops only at the config blob the fixture lacks.
    run.fails(1, CONFIG_BLOB);
    let payload = verified_payload(&run);
    let signer: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(signer["identity"], "mitr@redhat.com");
    assert_eq!(signer["issuer"], "https://github.com/login/oauth");
    assert!(
        signer["trusted_root"]
            .as_str()
            .unwrap()
            .starts_with("sha256:6494e21e")
    );
    assert!(setup.resolution_started());
    setup.nothing_done();
}

#[test]
fn a_key_signature_with_its_rekor_entry_passes_and_another_key_is_refused() {
    let setup = signed(KEY_REKOR, |_| {});
    let key = format!("{FIXTURES}/cosign2.pub");
    let run = setup.run(&format!("[image.signature]\npublic_key = \"{key}\"\n"));
    run.fails(1, CONFIG_BLOB);
    assert!(verified_payload(&run).starts_with(r#"{"identity":"key:sha256:"#));

    let setup = signed(KEY_REKOR, |_| {});
    let other = format!("{FIXTURES}/cosign.pub");
    setup
        .run(&format!("[image.signature]\npublic_key = \"{other}\"\n"))
        .fails(
            1,
            ".sig layer 1: Rekor: the entry records a different signer",
        );
    assert!(!setup.resolution_started());
    setup.nothing_done();
}

#[test]
fn another_identity_or_issuer_is_refused_with_nothing_done() {
    for (policy, reason) in [
        (
            KEYLESS.replace("mitr@redhat.com", "release@example.com"),
            "certificate identity \"mitr@redhat.com\" does not match the policy's \"release@example.com\"",
        ),
        (
            KEYLESS.replace("github.com/login/oauth", "accounts.google.com"),
            "certificate issuer \"https://github.com/login/oauth\" is not the policy's \"https://accounts.google.com\"",
        ),
    ] {
        let setup = signed(FULCIO, |_| {});
        let run = setup.run(&policy);
        run.fails(1, reason);
        assert!(
            run.stderr.contains(&format!(
                "{}@{}: no signature verifies under [image.signature], so it is not started: {}.sig layer 1: ",
                setup.registry.reference(),
                setup.digest,
                setup.digest.replace(':', "-")
            )),
            "{}",
            run.stderr
        );
        assert!(!setup.resolution_started(), "refused before resolution");
        setup.nothing_done();
    }
}

#[test]
fn a_mutated_signature_certificate_or_set_is_refused() {
    let flip = |name: &'static str| {
        move |annotations: &mut Value| {
            let mut bytes = b64(annotations[name].as_str().unwrap());
            bytes[20] ^= 1;
            annotations[name] = common::next_agent::base64(&bytes).into();
        }
    };
    let cases: [(Edit, &str); 3] = [
        (
            Box::new(flip("dev.cosignproject.cosign/signature")),
            "Rekor: the entry records a different signature",
        ),
        (
            Box::new(|a: &mut Value| {
                let mut bundle: Value =
                    serde_json::from_str(a["dev.sigstore.cosign/bundle"].as_str().unwrap())
                        .unwrap();
                bundle["Payload"]["logIndex"] = 1.into();
                a["dev.sigstore.cosign/bundle"] = bundle.to_string().into();
            }),
            "Rekor: the signed entry timestamp does not verify with the log key",
        ),
        (
            Box::new(|a: &mut Value| {
                a.as_object_mut()
                    .unwrap()
                    .remove("dev.sigstore.cosign/certificate");
            }),
            "no dev.sigstore.cosign/certificate annotation",
        ),
    ];
    for (edit, reason) in cases {
        let setup = signed(FULCIO, edit);
        setup.run(KEYLESS).fails(1, reason);
        setup.nothing_done();
    }
}

/// The attack: an image nobody signed. Without a policy it launches (the old behaviour);
/// with one it is refused, nothing measured or started.
#[test]
fn an_unsigned_image_runs_without_a_policy_and_is_refused_with_one() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "unsigned");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    docker.answer_inspect(
        &format!("{}@{}", registry.reference(), image.digest()),
        &image.config_digest(),
    );
    let config = |extra: &str| {
        fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n{extra}",
                registry.reference(),
                image.digest(),
                fx.path().join("compose.yaml").display()
            ),
        )
    };
    let run = |extra: &str| {
        fx.launcher()
            .args(["--docker", docker.script.to_str().unwrap()])
            .arg(config(extra).to_str().unwrap())
            .run()
    };
    run("").success();
    let names: Vec<String> = fx
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        [CONFIG, WORKLOAD, COMPOSE, READY],
        "no policy: no signer event"
    );
    std::fs::remove_file(fx.event_log()).unwrap();
    let calls = docker.calls().len();

    run(KEYLESS).fails(
        1,
        &format!(
            "{}@{}: no signature verifies under [image.signature], so it is not started: no sha256-{}.sig tag; no Sigstore bundle among its referrers",
            registry.reference(),
            image.digest(),
            image.digest_hex()
        ),
    );
    assert_eq!(fx.events(), Vec::<Value>::new());
    assert_eq!(docker.calls().len(), calls, "docker not called again");
}

/// `verify` is in the default build only (the `verify` feature).
#[cfg(feature = "verify")]
mod expect_signer {
    use super::*;
    use common::forged_log::{boot, ev, verify};

    const SIGNER: &str = "trusted-launcher.signer";

    /// The payload the launcher verified, measured as `trusted-launcher.signer` after
    /// `workload`: `verify --expect-signer` accepts its identity only.
    #[test]
    fn verify_expect_signer_checks_the_measured_signer() {
        let setup = signed(FULCIO, |_| {});
        let run = setup.run(KEYLESS);
        run.fails(1, CONFIG_BLOB);
        let payload = verified_payload(&run);
        let image = setup.digest.trim_start_matches("sha256:").to_owned();
        let launch = |signer: Option<&str>| {
            let mut events = boot(&[0x11; 32]);
            events.push(ev(CONFIG, format!("sha256:{}", "c0".repeat(32))));
            events.push(ev(WORKLOAD, format!("oci:sha256:{image}")));
            if let Some(signer) = signer {
                events.push(ev(SIGNER, signer));
            }
            events.push(ev(COMPOSE, format!("sha256:{}", "d0".repeat(32))));
            events.push(ev(READY, b""));
            events
        };
        let signed = launch(Some(&payload));
        let verdict = verify(&signed, &["--expect-signer", "mitr@redhat.com"]);
        verdict.passes_unsigned();
        assert_eq!(
            verdict.json["launches"][0]["signer"]["identity"],
            "mitr@redhat.com"
        );
        verify(&signed, &["--expect-signer", "release@example.com"]).fails(&["launch.1"]);
        // A launch without the signer event (no policy, or a launcher that skipped it).
        let unsigned = launch(None);
        let verdict = verify(&unsigned, &["--expect-signer", "mitr@redhat.com"]);
        verdict.fails(&["launch.1"]);
        assert!(
            verdict
                .detail("launch.1")
                .contains("no trusted-launcher.signer event")
        );
        // Without --expect-signer the signer constrains nothing, and an unsigned log passes as before.
        verify(&unsigned, &[]).passes_unsigned();
    }
}
