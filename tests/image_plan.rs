//! Image mode, `plan`: the `[image]` config, approval of digests, and resolution through an
//! in-process registry (`common::fake_registry`) that can be hostile — mismatching bodies,
//! oversized manifests, 401 loops, silence, 503s, 404s, index rewriting. `plan` resolves
//! without pulling, measuring or starting anything; every expected digest is computed here,
//! from the bytes the fake stores.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use common::fake_agent::v1_digest;
use common::fake_registry::{
    ACCEPT_TYPES, Auth, Blob, FakeRegistry, Flavor, Image, Mode, MultiArch, OCI_INDEX,
    OCI_MANIFEST, REPOSITORY, Request, SERVICE, index, sha256_digest,
};
use common::{Fixture, Run, hex};

/// How long a refusal for a silent or slow registry may take ("timed out within ~60 s").
const TIMEOUT_BOUND: Duration = Duration::from_secs(75);
/// Most manifest attempts a persistently failing registry may see.
const MAX_ATTEMPTS: usize = 5;

/// What `plan --json` must report under `"image"`.
struct Expect<'a> {
    requested: &'a str,
    kind: &'a str,
    platform: &'a str,
    manifest: &'a str,
    config: &'a str,
}

/// An `[image]` config for `registry`, pinned to `digest`, plus `extra` lines.
fn image_config(fx: &Fixture, registry: &FakeRegistry, digest: &str, extra: &str) -> PathBuf {
    fx.write(
        "c.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{digest}\"\n{extra}",
            registry.reference()
        ),
    )
}

fn plan(fx: &Fixture, config: &Path, json: bool) -> Run {
    let mut launcher = fx.launcher();
    launcher.arg("plan");
    if json {
        launcher.arg("--json");
    }
    launcher.arg(config.to_str().unwrap()).run()
}

/// Runs `plan --json`, expects success, returns the parsed object.
#[track_caller]
fn plan_json(fx: &Fixture, config: &Path) -> Value {
    let run = plan(fx, config, true);
    run.success();
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", run.stdout))
}

/// Runs `plan --json`, timing it.
fn timed_plan(fx: &Fixture, config: &Path) -> (Run, Duration) {
    let started = Instant::now();
    let run = plan(fx, config, true);
    (run, started.elapsed())
}

/// The image facts, the workload identity, the measured events, and no side effects.
#[track_caller]
fn assert_image_plan(
    fx: &Fixture,
    config: &Path,
    registry: &FakeRegistry,
    plan: &Value,
    e: &Expect<'_>,
) {
    let image = &plan["image"];
    assert_eq!(image["reference"], registry.reference(), "{plan:#}");
    assert_eq!(image["requested"], e.requested, "{plan:#}");
    assert_eq!(image["kind"], e.kind, "{plan:#}");
    assert_eq!(image["platform"], e.platform, "{plan:#}");
    assert_eq!(image["manifest"], e.manifest, "{plan:#}");
    assert_eq!(image["config"], e.config, "{plan:#}");
    let identity = format!("oci:{}", e.requested);
    assert_eq!(plan["workload"], identity, "{plan:#}");

    let events = plan["events"].as_array().unwrap();
    let event = |name: &str| {
        events
            .iter()
            .find(|ev| ev["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event: {plan:#}"))
    };
    let workload = event("trusted-launcher.workload");
    assert_eq!(workload["event_payload"], hex(identity.as_bytes()));
    assert_eq!(
        workload["digest"],
        hex(&v1_digest("trusted-launcher.workload", identity.as_bytes()))
    );
    let config_payload = format!("sha256:{}", hex(&Sha256::digest(fs::read(config).unwrap())));
    assert_eq!(
        event("trusted-launcher.config")["event_payload"],
        hex(config_payload.as_bytes())
    );
    assert_nothing_else_touched(fx, registry, plan["image"]["config"].as_str().unwrap());
}

/// `plan` measured nothing and pulled nothing: no event log, and no blob requested but the
/// image config `config` (read to check the image's own platform; layers never).
#[track_caller]
fn assert_nothing_else_touched(fx: &Fixture, registry: &FakeRegistry, config: &str) {
    assert!(
        !fx.event_log().exists(),
        "plan wrote an event log: {:?}",
        fs::read_to_string(fx.event_log())
    );
    let blobs: Vec<String> = registry
        .requests()
        .into_iter()
        .filter(Request::is_blob)
        .map(|r| r.target)
        .filter(|target| !target.ends_with(&format!("/blobs/{config}")))
        .collect();
    assert!(
        blobs.is_empty(),
        "plan pulled blobs other than the config {config}: {blobs:?}"
    );
}

/// Exit 1 with an `error:` line containing `needle` (case-insensitive) and at least one of
/// `names` (the digest or the registry), and nothing measured.
#[track_caller]
fn refused(fx: &Fixture, run: &Run, needle: &str, names: &[&str]) {
    assert_eq!(
        run.status,
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let stderr = run.stderr.to_lowercase();
    assert!(stderr.contains("error:"), "no error line:\n{}", run.stderr);
    assert!(
        stderr.contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}:\n{}",
        run.stderr
    );
    assert!(
        names.iter().any(|n| run.stderr.contains(n)),
        "stderr names none of {names:?}:\n{}",
        run.stderr
    );
    assert!(!fx.event_log().exists(), "a refusal measured something");
    // Shown with --nocapture: the error text a user gets.
    eprintln!("refusal: {}", run.stderr.trim_end());
}

fn hex_of(digest: &str) -> &str {
    digest.trim_start_matches("sha256:")
}

/// Every manifest request carried all four Accept types.
#[track_caller]
fn assert_all_accept_types(registry: &FakeRegistry) {
    let requests = registry.manifest_requests();
    assert!(!requests.is_empty(), "no manifest request");
    for request in requests {
        let accepted = request.accept_types();
        for wanted in ACCEPT_TYPES {
            assert!(
                accepted.iter().any(|a| a == wanted),
                "{} {} lacks Accept {wanted}: {:?}",
                request.method,
                request.target,
                request.headers
            );
        }
    }
}

/// Manifest references the launcher asked for, in order, deduplicated.
fn requested_references(registry: &FakeRegistry) -> Vec<String> {
    let mut references: Vec<String> = Vec::new();
    for request in registry.manifest_requests() {
        let reference = request.manifest_reference().unwrap().to_owned();
        if !references.contains(&reference) {
            references.push(reference);
        }
    }
    references
}

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

// ---------------------------------------------------------------------------------------
// Token auth

#[test]
fn token_auth_with_password_from_the_named_env_var() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    registry.set_auth(Auth::password("alice", "s3cret-pw"));
    let multi = MultiArch::buildkit("auth");
    registry.push_multi(&multi);
    let digest = multi.digest();
    let config = image_config(
        &fx,
        &registry,
        &digest,
        "username = \"alice\"\npassword_env = \"REGISTRY_PASSWORD\"\n",
    );
    let run = fx
        .launcher()
        .env("REGISTRY_PASSWORD", "s3cret-pw")
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    run.success();
    assert!(
        !run.stdout.contains("s3cret-pw") && !run.stderr.contains("s3cret-pw"),
        "the password was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let plan: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(plan["image"]["manifest"], multi.amd64.digest(), "{plan:#}");

    let tokens = registry.token_requests();
    assert!(!tokens.is_empty(), "no token was requested");
    assert!(tokens.len() <= 3, "{} token requests", tokens.len());
    for token in &tokens {
        assert_eq!(
            token.basic_credentials(),
            Some(("alice".to_owned(), "s3cret-pw".to_owned())),
            "{token:?}"
        );
        assert_eq!(token.query("service"), [SERVICE], "{}", token.target);
    }
    assert!(
        tokens
            .iter()
            .any(|t| t.query("scope") == [format!("repository:{REPOSITORY}:pull")]),
        "no token asked for the repository's pull scope: {tokens:?}"
    );
    for request in registry.requests().iter().filter(|r| !r.is_token()) {
        assert!(
            request.basic_credentials().is_none(),
            "the password went to the registry itself: {request:?}"
        );
    }
    let served: Vec<_> = registry
        .manifest_requests()
        .into_iter()
        .filter(|r| r.bearer().is_some())
        .collect();
    assert!(served.len() >= 2, "manifests were not fetched with a token");
}

/// A configured password variable that is not set is an error naming it, not a silent
/// anonymous attempt.
#[test]
fn unset_password_env_is_an_error_naming_the_variable() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    registry.set_auth(Auth::password("alice", "s3cret-pw"));
    let image = Image::new(Flavor::Oci, "linux/amd64", "unset-env");
    registry.push_image(&image);
    let config = image_config(
        &fx,
        &registry,
        &image.digest(),
        "username = \"alice\"\npassword_env = \"REGISTRY_PASSWORD\"\n",
    );
    let run = plan(&fx, &config, true);
    assert!(
        matches!(run.status, Some(1 | 2)),
        "expected a failure\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run.stderr_has("error:").stderr_has("REGISTRY_PASSWORD");
    assert!(!fx.event_log().exists());
}

#[test]
fn anonymous_token_auth() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    registry.set_auth(Auth::anonymous());
    let image = Image::new(Flavor::Oci, "linux/amd64", "anonymous");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let plan = plan_json(&fx, &config);
    assert_eq!(plan["image"]["manifest"], digest, "{plan:#}");
    let tokens = registry.token_requests();
    assert!(!tokens.is_empty(), "no token was requested");
    for token in tokens {
        assert_eq!(token.header("authorization"), None, "{token:?}");
    }
}

#[test]
fn wrong_password_is_an_authentication_error() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    registry.set_auth(Auth::password("alice", "right-pw"));
    let image = Image::new(Flavor::Oci, "linux/amd64", "wrong-pw");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(
        &fx,
        &registry,
        &digest,
        "username = \"alice\"\npassword_env = \"REGISTRY_PASSWORD\"\n",
    );
    let run = fx
        .launcher()
        .env("REGISTRY_PASSWORD", "wrong-pw")
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    refused(
        &fx,
        &run,
        "authentication",
        &[&registry.host(), hex_of(&digest)],
    );
    assert!(!run.stderr.contains("wrong-pw"), "password printed");
    let tokens = registry.token_requests().len();
    assert!((1..=3).contains(&tokens), "{tokens} token requests");
}

#[test]
fn auth_loop_fails_after_the_token_retry() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::AuthLoop);
    registry.set_auth(Auth::anonymous());
    let image = Image::new(Flavor::Oci, "linux/amd64", "loop");
    registry.push_image(&image);
    let digest = image.digest();
    let config = image_config(&fx, &registry, &digest, "");
    let (run, elapsed) = timed_plan(&fx, &config);
    refused(
        &fx,
        &run,
        "authentication",
        &[&registry.host(), hex_of(&digest)],
    );
    assert!(elapsed < TIMEOUT_BOUND, "took {elapsed:?}");
    let tokens = registry.token_requests().len();
    let manifests = registry.manifest_requests().len();
    assert!((1..=3).contains(&tokens), "{tokens} token requests");
    assert!(manifests <= MAX_ATTEMPTS, "{manifests} manifest requests");
    assert!(!run.stderr.contains("fake-token-"), "a token was printed");
}

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

// ---------------------------------------------------------------------------------------
// Plain HTTP off loopback

/// A loopback registry whose token realm is plain HTTP on another host: credentials must
/// not travel there in clear. The realm's host is unresolvable (`.invalid`), so a launcher
/// that failed this check could not send anything anywhere either; the scheme rules
/// themselves are unit-tested in src/registry/client.rs. (No test here binds or dials a
/// non-loopback address: this machine's network rules allow loopback only.)
#[test]
fn plain_http_token_realm_off_loopback_is_refused() {
    let fx = Fixture::new();
    let local = FakeRegistry::start(Mode::Normal);
    local.set_auth(Auth::password("alice", "s3cret-pw"));
    local.set_realm("http://auth.registry.invalid/token");
    let image = Image::new(Flavor::Oci, "linux/amd64", "realm");
    local.push_image(&image);
    let digest = image.digest();
    let config = image_config(
        &fx,
        &local,
        &digest,
        "username = \"alice\"\npassword_env = \"REGISTRY_PASSWORD\"\n",
    );
    let run = fx
        .launcher()
        .env("REGISTRY_PASSWORD", "s3cret-pw")
        .args(["plan", "--json", config.to_str().unwrap()])
        .run();
    refused(
        &fx,
        &run,
        "plain HTTP",
        &["auth.registry.invalid", hex_of(&digest)],
    );
}

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

// ---------------------------------------------------------------------------------------
// Config errors

/// `text` must be refused with exit 2, before any registry request, with `needles` in stderr.
#[track_caller]
fn config_rejected(text: &str, needles: &[&str]) {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let text = text.replace("@REGISTRY@", &registry.host());
    let config = fx.write("c.toml", &text);
    let run = plan(&fx, &config, true);
    assert_eq!(
        run.status,
        Some(2),
        "expected exit 2 for {text:?}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.contains("error:"),
        "no error line:\n{}",
        run.stderr
    );
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr lacks {needle:?} for {text:?}:\n{}",
            run.stderr
        );
    }
    assert!(
        registry.requests().is_empty(),
        "a rejected config reached the registry ({text:?})"
    );
    assert!(!fx.event_log().exists());
}

/// A digest that parses.
fn good_digest() -> String {
    sha256_digest(b"config errors")
}

#[test]
fn reference_with_tag_or_digest_or_uppercase_is_a_config_error() {
    let digest = good_digest();
    for (reference, why) in [
        ("@REGISTRY@/team/app:latest", "tag"),
        ("@REGISTRY@/team/app:v1.2", "tag"),
        (&format!("@REGISTRY@/team/app@{digest}") as &str, "digest"),
        ("@REGISTRY@/Team/App", "lowercase"),
    ] {
        config_rejected(
            &format!("[image]\nreference = \"{reference}\"\ndigest = \"{digest}\"\n"),
            &["c.toml:2:", why],
        );
    }
}

#[test]
fn malformed_digests_are_config_errors() {
    let hex64 = hex_of(&good_digest()).to_owned();
    for bad in [
        hex64.clone(),
        format!("sha256:{}", hex64.to_uppercase()),
        format!("sha256:{}", &hex64[..63]),
        format!("sha256:{hex64}0"),
        format!("sha512:{hex64}"),
        format!("SHA256:{hex64}"),
        "latest".to_owned(),
        String::new(),
    ] {
        config_rejected(
            &format!("[image]\nreference = \"@REGISTRY@/team/app\"\ndigest = \"{bad}\"\n"),
            &["c.toml:3:"],
        );
        config_rejected(
            &format!(
                "[image]\nreference = \"@REGISTRY@/team/app\"\ndigest = \"{}\"\noverride = \"{bad}\"\n",
                good_digest()
            ),
            &["c.toml:4:"],
        );
    }
}

#[test]
fn unknown_image_keys_are_config_errors() {
    let digest = good_digest();
    config_rejected(
        &format!(
            "[image]\nreference = \"@REGISTRY@/team/app\"\ndigest = \"{digest}\"\ntag = \"latest\"\n"
        ),
        &["c.toml:4: unknown key image.tag"],
    );
    config_rejected(
        &format!(
            "[image]\nreference = \"@REGISTRY@/team/app\"\ndigest = \"{digest}\"\npassword = \"inline\"\n"
        ),
        &["c.toml:4: unknown key image.password"],
    );
}

#[test]
fn both_or_neither_of_git_and_image_is_a_config_error() {
    let digest = good_digest();
    let sha = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
    config_rejected(
        &format!(
            "[git]\nrepo = \"/r\"\ncommit = \"{sha}\"\nwork_dir = \"/tmp/w\"\n[image]\nreference = \"@REGISTRY@/team/app\"\ndigest = \"{digest}\"\n"
        ),
        &["c.toml:"],
    );
    let both = {
        let fx = Fixture::new();
        let config = fx.write(
            "c.toml",
            &format!(
                "[git]\nrepo = \"/r\"\ncommit = \"{sha}\"\nwork_dir = \"/tmp/w\"\n[image]\nreference = \"127.0.0.1:1/team/app\"\ndigest = \"{digest}\"\n"
            ),
        );
        plan(&fx, &config, true)
    };
    let line = both
        .stderr
        .split("c.toml:")
        .nth(1)
        .and_then(|rest| rest.chars().next());
    assert!(
        line.is_some_and(|c| c.is_ascii_digit()),
        "no file:line for both sections:\n{}",
        both.stderr
    );
    config_rejected("# nothing here\n", &["c.toml"]);
    config_rejected("[measurement]\nbackend = \"auto\"\n", &["c.toml"]);
}

// ---------------------------------------------------------------------------------------
// The fake itself: what it does to a naive client, checked with raw HTTP

/// One raw HTTP/1.1 GET: status code, headers, body.
fn raw_get(
    registry: &FakeRegistry,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(registry.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n", registry.host());
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(reply[..split].to_vec()).unwrap();
    let body = reply[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The fake punishes a client that sends one Accept type: an OCI index is 404, a manifest
/// list comes back as the amd64 manifest (another digest). All four get the exact bytes.
#[test]
fn fake_registry_punishes_a_single_accept_type() {
    let all = ACCEPT_TYPES.join(", ");
    let docker_only = "application/vnd.docker.distribution.manifest.v2+json";

    let normal = FakeRegistry::start(Mode::Normal);
    let buildkit = MultiArch::buildkit("self-test");
    normal.push_multi(&buildkit);
    let path = format!("/v2/{REPOSITORY}/manifests/{}", buildkit.digest());
    let (status, _, _) = raw_get(&normal, &path, &[("Accept", docker_only)]);
    assert_eq!(status, 404);
    let (status, headers, body) = raw_get(&normal, &path, &[("Accept", &all)]);
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&body), buildkit.digest());
    assert_eq!(header(&headers, "content-type"), Some(ACCEPT_TYPES[0]));
    assert_eq!(
        header(&headers, "docker-content-digest"),
        Some(buildkit.digest().as_str())
    );

    let rewriting = FakeRegistry::start(Mode::RewriteToPlatform);
    let list = MultiArch::docker("self-test");
    rewriting.push_multi(&list);
    let path = format!("/v2/{REPOSITORY}/manifests/{}", list.digest());
    let (status, headers, body) = raw_get(&rewriting, &path, &[("Accept", docker_only)]);
    assert_eq!(status, 200);
    assert_eq!(body, list.amd64.manifest.bytes);
    assert_eq!(
        header(&headers, "docker-content-digest"),
        Some(list.amd64.digest().as_str())
    );
    let (status, _, body) = raw_get(&rewriting, &path, &[("Accept", &all)]);
    assert_eq!(status, 200);
    assert_eq!(sha256_digest(&body), list.digest());
}

/// Challenge, token, retry, as a registry with token auth does it.
#[test]
fn fake_registry_token_flow() {
    let registry = FakeRegistry::start(Mode::Normal);
    registry.set_auth(Auth::password("alice", "pw"));
    let image = Image::new(Flavor::Docker, "linux/amd64", "self-test-auth");
    registry.push_image(&image);
    let path = format!("/v2/{REPOSITORY}/manifests/{}", image.digest());
    let accept = ACCEPT_TYPES.join(",");
    let (status, headers, _) = raw_get(&registry, &path, &[("Accept", &accept)]);
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate").unwrap(),
        format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"{SERVICE}\",scope=\"repository:{REPOSITORY}:pull\"",
            registry.addr().port()
        )
    );
    let token_path = format!("/token?service={SERVICE}&scope=repository%3A{REPOSITORY}%3Apull");
    // "alice:pw" and "alice:no" in base64.
    let (status, _, _) = raw_get(
        &registry,
        &token_path,
        &[("Authorization", "Basic YWxpY2U6bm8=")],
    );
    assert_eq!(status, 401);
    let (status, _, _) = raw_get(&registry, &token_path, &[]);
    assert_eq!(status, 401, "anonymous is off");
    let (status, _, body) = raw_get(
        &registry,
        &token_path,
        &[("Authorization", "Basic YWxpY2U6cHc=")],
    );
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["token"], reply["access_token"]);
    assert_eq!(reply["expires_in"], 300);
    let bearer = format!("Bearer {}", reply["token"].as_str().unwrap());
    let (status, _, body) = raw_get(
        &registry,
        &path,
        &[("Accept", &accept), ("Authorization", &bearer)],
    );
    assert_eq!(status, 200);
    assert_eq!(body, image.manifest.bytes);
    let tokens = registry.token_requests();
    assert_eq!(tokens.len(), 3);
    assert_eq!(
        tokens[2].basic_credentials(),
        Some(("alice".to_owned(), "pw".to_owned()))
    );
    assert_eq!(
        tokens[2].query("scope"),
        [format!("repository:{REPOSITORY}:pull")]
    );
}

/// Dropping the fake with a silent reply in progress returns promptly.
#[test]
fn fake_registry_drop_does_not_hang_on_a_silent_connection() {
    use std::io::Write as _;
    let registry = FakeRegistry::start(Mode::Slow);
    let image = Image::new(Flavor::Oci, "linux/amd64", "self-test-slow");
    registry.push_image(&image);
    let mut stream = std::net::TcpStream::connect(registry.addr()).unwrap();
    write!(
        stream,
        "GET /v2/{REPOSITORY}/manifests/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        image.digest()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while registry.manifest_requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(registry.manifest_requests().len(), 1);
    let started = Instant::now();
    drop(registry);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop took {:?}",
        started.elapsed()
    );
}
