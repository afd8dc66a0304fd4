//! Both Docker image stores: the classic store's `image inspect` shows the config digest as
//! the image ID, the containerd image store (Docker Desktop; new Docker Engine installs from
//! v29) the digest of the manifest or index that was pulled (docker/cli#5526: "Docker CLI
//! shows digest instead of actual image id ... when we use ... containerd snapshotter";
//! DataBiosphere/azul#6656 prints such an `inspect` whose `Id` equals its `RepoDigests`
//! digest). The launcher accepts either shape for the approved image and nothing else.
//! Driven through `--docker` with the recording fake docker, against a multi-platform index
//! in the in-process registry.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;

use common::fake_docker::FakeDocker;
use common::fake_registry::{FakeRegistry, MultiArch};
use common::{Fixture, Run};

const ALL_FOUR: [&str; 4] = [
    "trusted-launcher.config",
    "trusted-launcher.workload",
    "trusted-launcher.compose",
    "trusted-launcher.ready",
];

/// An approved multi-platform index (buildkit's shape, with attestation manifests), run on
/// linux/amd64.
struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    multi: MultiArch,
    docker: FakeDocker,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(common::fake_registry::Mode::Normal);
    let multi = MultiArch::buildkit("store");
    registry.push_multi(&multi);
    let docker = FakeDocker::new(&fx);
    Setup {
        fx,
        registry,
        multi,
        docker,
    }
}

impl Setup {
    fn config(&self) -> PathBuf {
        self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\nplatform = \"linux/amd64\"\n\
                 compose_file = \"{}\"\n",
                self.registry.reference(),
                self.multi.digest(),
                self.fx.path().join("compose.yaml").display()
            ),
        )
    }

    fn run(&self) -> Run {
        self.fx
            .launcher()
            .args(["--docker", self.docker.script.to_str().unwrap()])
            .args([
                "--docker-config",
                &self.fx.path().join("docker-config").display().to_string(),
            ])
            .arg(self.config().to_str().unwrap())
            .run()
    }

    /// `repository@digest` of the approved index, as `RepoDigests` lists it.
    fn approved_image(&self) -> String {
        format!("{}@{}", self.registry.reference(), self.multi.digest())
    }

    fn measured(&self) -> Vec<String> {
        self.fx
            .events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }

    fn started(&self) -> bool {
        self.docker.calls().iter().any(|c| c.contains(" up"))
    }
}

/// The launcher's check before this change: the ID must be the config digest.
fn old_confirm(id: &str, config: &str) -> bool {
    id == config
}

/// A naive fix for the containerd store: trust `RepoDigests` alone and ignore the ID.
fn naive_repo_digests_only(repo_digests: &[String], approved: &str) -> bool {
    repo_digests.iter().any(|d| d == approved)
}

/// The containerd store's shapes for a correct pull: the ID is the pulled index's digest, or
/// the platform manifest's. The old check refused both; both now run, measuring all four.
#[test]
fn containerd_store_ids_of_the_approved_image_are_accepted() {
    for which in ["index", "platform manifest"] {
        let s = setup();
        let id = match which {
            "index" => s.multi.digest(),
            _ => s.multi.amd64.digest(),
        };
        assert!(
            !old_confirm(&id, &s.multi.amd64.config_digest()),
            "{which}: the old check would have accepted it"
        );
        s.docker.answer_inspect(&s.approved_image(), &id);
        s.run()
            .success()
            .stderr_has("image verified")
            .stderr_has("containerd image store")
            .stdout_has(&format!("    image: \"{}\"", s.approved_image()));
        assert!(s.started(), "{which}: {:?}", s.docker.calls());
        assert_eq!(s.measured(), ALL_FOUR, "{which}");
    }
}

/// The classic store's shape for the same index: the amd64 config digest.
#[test]
fn classic_store_config_id_is_still_accepted() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.multi.amd64.config_digest());
    s.run().success().stderr_has("classic image store");
    assert_eq!(s.measured(), ALL_FOUR);
}

/// An engine holding something else under the approved name: an ID that is some other
/// digest — even one from the approved index (the arm64 manifest or config, an attestation
/// manifest) — or unrelated. A launcher trusting `RepoDigests` alone would start it; this one
/// refuses with the ID seen and the acceptable ones, starts nothing, measures no `ready`.
#[test]
fn any_other_image_id_is_refused() {
    let others: [fn(&MultiArch) -> String; 5] = [
        |m| m.arm64.digest(),
        |m| m.arm64.config_digest(),
        |m| m.attestations[0].digest(),
        |m| m.amd64.layer.digest(),
        |_| format!("sha256:{}", "e".repeat(64)),
    ];
    for (n, other) in others.iter().enumerate() {
        let s = setup();
        let id = &other(&s.multi);
        let repo_digests = vec![s.approved_image()];
        assert!(naive_repo_digests_only(&repo_digests, &s.approved_image()));
        s.docker.answer_inspect(&s.approved_image(), id);
        let run = s.run();
        run.fails(
            1,
            &format!(
                "the pulled image is not what was approved: image ID \"{id}\" is neither the \
                 verified config digest {} (classic store) nor the approved digest {} or its \
                 platform manifest {} (containerd store); not starting it",
                s.multi.amd64.config_digest(),
                s.multi.digest(),
                s.multi.amd64.digest()
            ),
        );
        assert!(!run.stdout.contains("COMPOSE-UP"), "case {n}");
        assert!(!s.started(), "case {n}: {:?}", s.docker.calls());
        assert_eq!(s.measured(), &ALL_FOUR[..3], "case {n}");
    }
}

/// `RepoDigests` must name the approved repository: the same digest under another
/// repository does not count, whichever store's ID comes with it.
#[test]
fn another_repositorys_repo_digest_is_refused() {
    for containerd in [false, true] {
        let s = setup();
        let elsewhere = format!("127.0.0.1:1/other/app@{}", s.multi.digest());
        let id = if containerd {
            s.multi.digest()
        } else {
            s.multi.amd64.config_digest()
        };
        // What the old check looked at for the ID alone would pass.
        assert_eq!(
            old_confirm(&id, &s.multi.amd64.config_digest()),
            !containerd
        );
        s.docker.answer_inspect(&elsewhere, &id);
        s.run().fails(
            1,
            &format!(
                "RepoDigests [\"{elsewhere}\"] do not include {}",
                s.approved_image()
            ),
        );
        assert!(!s.started(), "{:?}", s.docker.calls());
        assert_eq!(s.measured(), &ALL_FOUR[..3]);
    }
}
