//! `[image]` config errors: refused with exit 2 before any registry request.

use crate::common::Fixture;
use crate::common::fake_registry::{FakeRegistry, Mode, sha256_digest};
use crate::{hex_of, plan};

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
