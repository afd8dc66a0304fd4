//! `[image.signature]` with a Sigstore bundle attached as an OCI 1.1 referrer (cosign v3's
//! layout), the real binary against the in-process registry: sigstore-rs' real cosign-v3
//! bundle for `ghcr.io/kubewarden/kubewarden-controller:v1.34.0` (tests/fixtures/sigstore/).
//!
//! Only the bundle is in the fixtures, not the image's manifest: an accepted bundle is seen
//! passing and the launch then stopping at the manifest (404), before anything is measured.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use serde_json::{Value, json};

use common::Fixture;
use common::fake_docker::FakeDocker;
use common::fake_registry::{Blob, FakeRegistry, Mode};

const BUNDLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/sigstore/sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json"
);
/// The bundle's in-toto subject: kubewarden-controller v1.34.0's manifest digest.
const DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const IDENTITY: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How the registry offers the referrer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// `GET /v2/<name>/referrers/<digest>` (OCI distribution 1.1).
    Api,
    /// The referrers tag schema: the index tagged `sha256-<hex>`, for registries without it.
    Tag,
}

/// A referrer manifest as cosign v3 pushes it: artifact type and layer the bundle's media
/// type, `subject` the signed image (OCI image-spec 1.1 `manifest.md`, "Guidelines for
/// Artifact Usage"), listed in the subject's referrers index.
fn serve(registry: &FakeRegistry, bundle: &[u8], offer: Offer) {
    let layer = Blob {
        media_type: BUNDLE_TYPE.into(),
        bytes: bundle.to_vec(),
    };
    registry.push_blob(&layer);
    let empty = Blob {
        media_type: "application/vnd.oci.empty.v1+json".into(),
        bytes: b"{}".to_vec(),
    };
    registry.push_blob(&empty);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": empty.media_type, "digest": empty.digest(), "size": 2},
        "layers": [{"mediaType": BUNDLE_TYPE, "digest": layer.digest(), "size": layer.bytes.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1234},
    });
    let manifest = Blob {
        media_type: OCI_MANIFEST.into(),
        bytes: serde_json::to_vec(&manifest).unwrap(),
    };
    registry.push_manifest(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest.digest(),
                       "size": manifest.bytes.len(), "artifactType": BUNDLE_TYPE}],
    });
    let index = Blob {
        media_type: OCI_INDEX.into(),
        bytes: serde_json::to_vec(&index).unwrap(),
    };
    match offer {
        Offer::Api => registry.push_referrers(DIGEST, &index),
        Offer::Tag => registry.push_tag(&DIGEST.replace(':', "-"), &index),
    }
}

fn launch(bundle: &[u8], offer: Offer, identity: &str) -> (common::Run, Fixture) {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    serve(&registry, bundle, offer);
    let docker = FakeDocker::new(&fx);
    let config = fx.write(
        "image.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{DIGEST}\"\ncompose_file = \"{}\"\n\
             [image.signature]\nissuer = \"https://token.actions.githubusercontent.com\"\nidentity = \"{identity}\"\n",
            registry.reference(),
            fx.path().join("compose.yaml").display()
        ),
    );
    let run = fx
        .launcher()
        .args(["--docker", docker.script.to_str().unwrap()])
        .arg(config.to_str().unwrap())
        .run();
    assert_eq!(docker.calls(), Vec::<String>::new());
    assert_eq!(fx.events(), Vec::<Value>::new(), "nothing measured");
    (run, fx)
}

#[test]
fn a_referrer_bundle_with_the_policys_identity_passes_by_api_or_tag() {
    let bundle = std::fs::read(BUNDLE).unwrap();
    for offer in [Offer::Api, Offer::Tag] {
        let (run, _fx) = launch(&bundle, offer, IDENTITY);
        // Accepted, then resolution stops at the manifest the fixtures do not have.
        run.fails(1, &format!("{DIGEST} not found"));
        assert!(
            run.stderr.contains(&format!(
                "signature verified: {{\"identity\":\"{IDENTITY}\",\"issuer\":\"https://token.actions.githubusercontent.com\",\"source_commit\":\""
            )),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(
            "\"source_repository\":\"https://github.com/kubewarden/kubewarden-controller\""
        ));
    }
}

#[test]
fn a_referrer_bundle_for_another_signer_or_tampered_is_refused() {
    let bundle = std::fs::read(BUNDLE).unwrap();
    let (run, _fx) = launch(
        &bundle,
        Offer::Api,
        "https://github.com/org/app/.github/workflows/release.yml@refs/heads/main",
    );
    run.fails(1, "referrer bundle 1: certificate identity");
    assert!(
        run.stderr
            .contains("no signature verifies under [image.signature]")
    );

    // The DSSE statement re-pointed at another image (a signature moved to an image it was
    // not made for): the approved digest is no longer a subject.
    let text = String::from_utf8(bundle).unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    let payload =
        common::fake_registry::base64_decode(json["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
    let other = String::from_utf8(payload)
        .unwrap()
        .replace(DIGEST.trim_start_matches("sha256:"), &"11".repeat(32));
    json["dsseEnvelope"]["payload"] = common::next_agent::base64(other.as_bytes()).into();
    let (run, _fx) = launch(&serde_json::to_vec(&json).unwrap(), Offer::Api, IDENTITY);
    run.fails(
        1,
        &format!(
            "referrer bundle 1: no statement subject has sha256 {}",
            DIGEST.trim_start_matches("sha256:")
        ),
    );
}
