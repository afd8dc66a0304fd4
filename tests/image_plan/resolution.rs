//! Resolution of well-formed images: single manifests, indexes and lists by platform,
//! all four Accept types, and `plan` touching nothing but manifests.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::common::Fixture;
use crate::common::fake_registry::{
    FakeRegistry, Flavor, Image, Mode, MultiArch, REPOSITORY, index, sha256_digest,
};
use crate::{
    Expect, assert_all_accept_types, assert_image_plan, assert_nothing_else_touched, image_config,
    plan, plan_json, requested_references,
};

// ---------------------------------------------------------------------------------------
// Resolution of well-formed images

#[test]
fn single_oci_manifest_resolves_to_itself() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "single-oci");
    registry.push_image(&image);
    let digest = sha256_digest(&image.manifest.bytes);
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_image_plan(
        &fx,
        &config,
        &registry,
        &plan,
        &Expect {
            requested: &digest,
            kind: "manifest",
            platform: "linux/amd64",
            manifest: &digest,
            config: &sha256_digest(&image.config.bytes),
        },
    );
    assert_eq!(plan["selection"], "pinned in the config");
    assert_all_accept_types(&registry);
    assert_eq!(requested_references(&registry), [digest]);
}

#[test]
fn single_docker_manifest_resolves_to_itself() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Docker, "linux/amd64", "single-docker");
    assert_eq!(
        image.manifest.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    registry.push_image(&image);
    let digest = sha256_digest(&image.manifest.bytes);
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_image_plan(
        &fx,
        &config,
        &registry,
        &plan,
        &Expect {
            requested: &digest,
            kind: "manifest",
            platform: "linux/amd64",
            manifest: &digest,
            config: &sha256_digest(&image.config.bytes),
        },
    );
    assert_all_accept_types(&registry);
}

#[test]
fn oci_index_resolves_linux_amd64_and_skips_attestations() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let multi = MultiArch::buildkit("index");
    registry.push_multi(&multi);
    let digest = sha256_digest(&multi.index.bytes);
    let amd64 = sha256_digest(&multi.amd64.manifest.bytes);
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_image_plan(
        &fx,
        &config,
        &registry,
        &plan,
        &Expect {
            requested: &digest,
            kind: "index",
            platform: "linux/amd64",
            manifest: &amd64,
            config: &sha256_digest(&multi.amd64.config.bytes),
        },
    );
    // The index, then the platform manifest; never the other platform or an attestation.
    assert_eq!(requested_references(&registry), [digest, amd64]);
    assert_all_accept_types(&registry);
}

#[test]
fn docker_manifest_list_resolves_linux_amd64() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let multi = MultiArch::docker("list");
    assert_eq!(
        multi.index.media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    registry.push_multi(&multi);
    let digest = sha256_digest(&multi.index.bytes);
    let amd64 = sha256_digest(&multi.amd64.manifest.bytes);
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_image_plan(
        &fx,
        &config,
        &registry,
        &plan,
        &Expect {
            requested: &digest,
            kind: "index",
            platform: "linux/amd64",
            manifest: &amd64,
            config: &sha256_digest(&multi.amd64.config.bytes),
        },
    );
    assert_all_accept_types(&registry);
}

#[test]
fn platform_arm64_v8_selects_the_arm64_manifest() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let multi = MultiArch::buildkit("arm");
    registry.push_multi(&multi);
    let digest = sha256_digest(&multi.index.bytes);
    let arm64 = sha256_digest(&multi.arm64.manifest.bytes);
    let config = image_config(&fx, &registry, &digest, "platform = \"linux/arm64/v8\"\n");
    let plan = plan_json(&fx, &config);
    assert_image_plan(
        &fx,
        &config,
        &registry,
        &plan,
        &Expect {
            requested: &digest,
            kind: "index",
            platform: "linux/arm64/v8",
            manifest: &arm64,
            config: &sha256_digest(&multi.arm64.config.bytes),
        },
    );
    assert_eq!(requested_references(&registry), [digest, arm64]);
}

/// Many indexes list arm64 without a variant; `linux/arm64/v8` is that platform (arm64's
/// default variant is v8, as containerd normalizes it).
#[test]
fn platform_arm64_v8_matches_arm64_listed_without_variant() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let amd64 = Image::new(Flavor::Oci, "linux/amd64", "no-variant");
    let arm64 = Image::new(Flavor::Oci, "linux/arm64", "no-variant");
    let list = index(Flavor::Oci, &[&amd64, &arm64]);
    registry.push_manifest(&list);
    registry.push_image(&amd64);
    registry.push_image(&arm64);
    let config = image_config(
        &fx,
        &registry,
        &list.digest(),
        "platform = \"linux/arm64/v8\"\n",
    );
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["image"]["manifest"], arm64.digest(), "{plan:#}");
}

/// `localhost` is loopback by name: plain HTTP is allowed there too.
#[test]
fn localhost_reference_resolves_over_plain_http() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "localhost");
    registry.push_image(&image);
    let digest = image.digest();
    let config = fx.write(
        "c.toml",
        &format!(
            "[image]\nreference = \"localhost:{}/{REPOSITORY}\"\ndigest = \"{digest}\"\n",
            registry.addr().port()
        ),
    );
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["image"]["manifest"], digest, "{plan:#}");
}

/// A registry that answers an index request lacking the index types with one platform's
/// manifest (another digest): only a client sending all four types gets the index.
#[test]
fn all_four_accept_types_defeat_index_rewriting() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::RewriteToPlatform);
    let multi = MultiArch::docker("rewrite");
    registry.push_multi(&multi);
    let digest = multi.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["image"]["kind"], "index", "{plan:#}");
    assert_eq!(plan["image"]["manifest"], multi.amd64.digest(), "{plan:#}");
    assert_all_accept_types(&registry);
}

#[test]
fn text_plan_shows_the_platform_manifest() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let multi = MultiArch::buildkit("text");
    registry.push_multi(&multi);
    let digest = multi.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let run = plan(&fx, &config, false);
    run.success()
        .stdout_has(&format!("oci:{digest}"))
        .stdout_has("linux/amd64")
        .stdout_has("trusted-launcher.workload");
    let amd64 = multi.amd64.digest();
    assert!(
        run.stdout
            .lines()
            .any(|l| l.contains("manifest:") && l.contains(&amd64)),
        "no `manifest:` line naming {amd64}:\n{}",
        run.stdout
    );
    assert_nothing_else_touched(&fx, &registry, &multi.amd64.config_digest());
}

/// `plan` runs no docker, measures nothing, pulls no blob: a `docker` on PATH that would
/// leave a marker stays untouched.
#[test]
fn plan_touches_nothing_but_manifests() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let multi = MultiArch::buildkit("untouched");
    registry.push_multi(&multi);
    let bin = fx.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    for program in ["docker", "docker-compose"] {
        let path = bin.join(program);
        fs::write(
            &path,
            format!("#!/bin/sh\ntouch {}\n", fx.marker(program).display()),
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = image_config(&fx, &registry, &multi.digest(), "");
    fx.launcher()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        )
        .args(["plan", "--json", config.to_str().unwrap()])
        .run()
        .success();
    assert!(!fx.marker("docker").exists(), "plan ran docker");
    assert!(
        !fx.marker("docker-compose").exists(),
        "plan ran docker-compose"
    );
    let config_digest = multi.amd64.config_digest();
    assert_nothing_else_touched(&fx, &registry, &config_digest);
    for request in registry.requests() {
        assert!(
            request.method == "GET" || request.method == "HEAD",
            "plan sent {} {}",
            request.method,
            request.target
        );
        assert!(
            request.path() == "/v2/"
                || request.path() == "/v2"
                || request.is_manifest()
                || request.path().ends_with(&format!("/blobs/{config_digest}")),
            "plan asked for {}",
            request.target
        );
    }
}
