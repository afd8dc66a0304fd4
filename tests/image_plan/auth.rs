//! Token auth: passwords from the named variable, anonymous tokens, wrong passwords,
//! auth loops, and a plain-HTTP token realm off loopback.

use serde_json::Value;

use crate::common::Fixture;
use crate::common::fake_registry::{
    Auth, FakeRegistry, Flavor, Image, Mode, MultiArch, REPOSITORY, SERVICE,
};
use crate::{
    MAX_ATTEMPTS, TIMEOUT_BOUND, hex_of, image_config, plan, plan_json, refused, timed_plan,
};

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
