//! Hostile and broken registries: bodies not matching the digest, oversized or garbage
//! manifests, missing platforms, silence, trickles, unreachable hosts, 404s and 503s.

use std::net::TcpListener;

use serde_json::Value;

use crate::common::Fixture;
use crate::common::fake_registry::{
    Blob, FakeRegistry, Flavor, Image, Mode, MultiArch, OCI_INDEX, OCI_MANIFEST, REPOSITORY, index,
    sha256_digest,
};
use crate::{
    MAX_ATTEMPTS, TIMEOUT_BOUND, hex_of, image_config, plan, refused, requested_references,
    timed_plan,
};

// ---------------------------------------------------------------------------------------
// Hostile and broken registries

#[test]
fn body_not_matching_the_digest_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::WrongBody);
    let image = Image::new(Flavor::Oci, "linux/amd64", "wrong-body");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(&fx, &run, "does not match", &[hex_of(&digest)]);
}

/// The index is genuine, the platform manifest it names is not: the second hop is checked
/// against the digest in the index.
#[test]
fn platform_manifest_not_matching_the_index_entry_is_refused() {
    let fx = Fixture::new();
    let multi = MultiArch::buildkit("second-hop");
    let amd64 = multi.amd64.digest();
    let registry = FakeRegistry::start(Mode::WrongBodyFor(amd64.clone()));
    registry.push_multi(&multi);
    let config = image_config(&fx, &registry, &multi.digest(), "");
    let run = plan(&fx, &config, true);
    refused(&fx, &run, "does not match", &[hex_of(&amd64)]);
}

#[test]
fn oversized_manifest_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Oversized);
    let image = Image::new(Flavor::Oci, "linux/amd64", "oversized");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(
        &fx,
        &run,
        "larger than",
        &[hex_of(&digest), &registry.host()],
    );
}

/// An 8 MiB manifest whose digest is genuine: only a size cap refuses it.
#[test]
fn honest_but_oversized_manifest_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::oversized(Flavor::Oci, "honest-big");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(
        &fx,
        &run,
        "larger than",
        &[hex_of(&digest), &registry.host()],
    );
}

#[test]
fn index_without_the_platform_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let arm64 = Image::new(Flavor::Oci, "linux/arm64/v8", "arm-only");
    let attestation = Image::attestation_for(&arm64);
    let only_arm = index(Flavor::Oci, &[&arm64, &attestation]);
    registry.push_manifest(&only_arm);
    registry.push_image(&arm64);
    registry.push_image(&attestation);
    let digest = only_arm.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(
        &fx,
        &run,
        "no manifest for platform linux/amd64",
        &[hex_of(&digest)],
    );
    assert_eq!(requested_references(&registry), [digest]);
}

/// Bytes that hash to the requested digest but are no manifest: refused, no panic.
#[test]
fn garbage_manifest_with_a_matching_digest_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    for (media_type, bytes) in [
        (OCI_MANIFEST, &b"<html>not json</html>"[..]),
        (OCI_MANIFEST, b"{\"schemaVersion\":2,\"layers\":[]}"),
        (OCI_INDEX, b"{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"sha256:zz\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}"),
        (OCI_MANIFEST, b"[]"),
    ] {
        let blob = Blob {
            media_type: media_type.to_owned(),
            bytes: bytes.to_vec(),
        };
        registry.push_manifest(&blob);
        let digest = sha256_digest(bytes);
        let config = image_config(&fx, &registry, &digest, "");
        let run = plan(&fx, &config, true);
        refused(&fx, &run, "", &[hex_of(&digest)]);
    }
}

#[test]
fn silent_registry_times_out() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Slow);
    let image = Image::new(Flavor::Oci, "linux/amd64", "slow");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let (run, elapsed) = timed_plan(&fx, &config);
    refused(&fx, &run, "timed out", &[&registry.host(), hex_of(&digest)]);
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
}

/// One byte every half second: every read makes progress, only a deadline on the whole
/// exchange ends it.
#[test]
fn trickling_registry_times_out() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Trickle);
    let image = Image::new(Flavor::Oci, "linux/amd64", "trickle");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let (run, elapsed) = timed_plan(&fx, &config);
    refused(&fx, &run, "timed out", &[&registry.host(), hex_of(&digest)]);
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
}

#[test]
fn unreachable_registry_is_refused() {
    let fx = Fixture::new();
    // A port that was free a moment ago: nothing listens there now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let digest = sha256_digest(b"unreachable");
    let config = fx.write(
        "c.toml",
        &format!("[image]\nreference = \"127.0.0.1:{port}/{REPOSITORY}\"\ndigest = \"{digest}\"\n"),
    );
    let (run, elapsed) = timed_plan(&fx, &config);
    refused(
        &fx,
        &run,
        "refused",
        &[&format!("127.0.0.1:{port}"), hex_of(&digest)],
    );
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
}

#[test]
fn manifest_not_found_is_refused() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::NotFound);
    let image = Image::new(Flavor::Oci, "linux/amd64", "gone");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(&fx, &run, "not found", &[hex_of(&digest)]);
    let attempts = registry.manifest_requests().len();
    assert!(attempts <= 2, "a 404 was retried {attempts} times");
}

#[test]
fn unknown_digest_is_not_found() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let digest = sha256_digest(b"never pushed");
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, true);
    refused(&fx, &run, "not found", &[hex_of(&digest)]);
}

#[test]
fn transient_503s_are_retried() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Flaky(2));
    let image = Image::new(Flavor::Oci, "linux/amd64", "flaky");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let (run, elapsed) = timed_plan(&fx, &config);
    run.success();
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["image"]["manifest"], digest, "{plan:#}");
    let attempts = registry.manifest_requests().len();
    assert_eq!(attempts, 3, "two 503s, then the manifest");
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
}

#[test]
fn persistent_503s_fail_after_a_capped_number_of_attempts() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Flaky(usize::MAX));
    let image = Image::new(Flavor::Oci, "linux/amd64", "down");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let (run, elapsed) = timed_plan(&fx, &config);
    refused(&fx, &run, "", &[&registry.host(), hex_of(&digest)]);
    let attempts = registry.manifest_requests().len();
    assert!(
        (2..=MAX_ATTEMPTS).contains(&attempts),
        "{attempts} attempts (expected retries, capped at {MAX_ATTEMPTS})"
    );
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
}
