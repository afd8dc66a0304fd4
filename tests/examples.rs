//! The dstack examples under `examples/dstack/`: each app-compose.json carries its compose
//! file byte for byte, every image is pinned by digest, only the launcher gets the dstack
//! socket, and the inline launcher config parses with the launcher's own loader into the
//! workload the example says it runs. The packaging contract is here too: every `FROM` in
//! `docker/Dockerfile` is pinned by digest and every Debian package by version.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

use trusted_launcher::config::{self, LaunchMode, WorkloadSpec};
use yaml_rust2::{Yaml, YamlLoader};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dstack");
/// What the release workflow replaces with the published digest.
const LAUNCHER_PLACEHOLDER: &str = "ghcr.io/trusted-launcher/trusted-launcher@sha256:0000000000000000000000000000000000000000000000000000000000000000";
const DSTACK_SOCKET: &str = "/var/run/dstack.sock";

struct Example {
    dir: PathBuf,
    compose: Yaml,
}

impl Example {
    fn load(name: &str) -> Self {
        let dir = Path::new(EXAMPLES).join(name);
        let text = fs::read_to_string(dir.join("docker-compose.yaml")).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("app-compose.json")).unwrap()).unwrap();
        assert_eq!(
            manifest["docker_compose_file"].as_str(),
            Some(text.as_str()),
            "{name}: app-compose.json is stale; run examples/dstack/render-app-compose.py"
        );
        assert_eq!(manifest["manifest_version"], 2, "{name}");
        assert_eq!(manifest["runner"], "docker-compose", "{name}");
        assert_eq!(
            manifest["allowed_envs"],
            serde_json::json!([]),
            "{name}: no operator-supplied environment"
        );
        let mut docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("{name}/docker-compose.yaml: {e}"));
        assert_eq!(docs.len(), 1, "{name}: one YAML document");
        Self {
            dir,
            compose: docs.remove(0),
        }
    }

    fn service(&self, name: &str) -> &Yaml {
        let service = &self.compose["services"][name];
        assert!(!service.is_badvalue(), "no service {name}");
        service
    }

    fn strings(yaml: &Yaml) -> Vec<&str> {
        yaml.as_vec()
            .map(|v| v.iter().map(|s| s.as_str().unwrap()).collect())
            .unwrap_or_default()
    }

    /// The launcher's config: the inline `configs` content mounted at the path the
    /// launcher's `command:` names, written to a file and loaded by the launcher's loader.
    fn launcher_config(&self, scratch: &Path) -> config::LaunchConfig {
        let launcher = self.service("launcher");
        let command = Self::strings(&launcher["command"]);
        let path = *command.last().expect("launcher command names the config");
        let mount = launcher["configs"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|c| c["target"].as_str() == Some(path))
            .unwrap_or_else(|| panic!("{}: nothing mounted at {path}", self.dir.display()));
        let source = mount["source"].as_str().unwrap();
        let content = self.compose["configs"][source]["content"].as_str().unwrap();
        let name = Path::new(path).file_name().unwrap();
        let file = scratch.join(name);
        fs::write(&file, content).unwrap();
        config::load(&file, None).unwrap_or_else(|e| panic!("{}: {e}", self.dir.display()))
    }

    fn check_pins_and_sockets(&self) {
        let services = self.compose["services"].as_hash().unwrap();
        for (name, service) in services {
            let name = name.as_str().unwrap();
            let image = service["image"].as_str().unwrap();
            let (_, digest) = image
                .split_once("@sha256:")
                .unwrap_or_else(|| panic!("{name}: image {image} is not pinned by digest"));
            assert!(
                digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "{image}"
            );
            let mounts_agent = Self::strings(&service["volumes"])
                .iter()
                .any(|v| v.starts_with(&format!("{DSTACK_SOCKET}:")));
            assert_eq!(
                mounts_agent,
                name == "launcher",
                "{}: the dstack socket goes to the launcher and only to it",
                self.dir.display()
            );
        }
        assert_eq!(
            self.service("launcher")["image"].as_str(),
            Some(LAUNCHER_PLACEHOLDER),
            "the release workflow fills in this exact placeholder"
        );
    }

    /// A volume the launcher mounts that holds `path`.
    fn launcher_volume_holding(&self, path: &Path) -> Option<String> {
        Self::strings(&self.service("launcher")["volumes"])
            .into_iter()
            .find(|v| {
                v.split(':')
                    .nth(1)
                    .is_some_and(|target| path.starts_with(target))
            })
            .map(str::to_owned)
    }
}

#[test]
fn git_mode_example_pins_a_commit_in_the_attested_config() {
    let example = Example::load("git-mode");
    example.check_pins_and_sockets();
    let scratch = tempfile::tempdir().unwrap();
    let config = example.launcher_config(scratch.path());
    let WorkloadSpec::Git(git) = config.workload else {
        panic!("git-mode example is not git mode")
    };
    assert_eq!(git.repo_url, "https://github.com/octocat/Hello-World.git");
    assert_eq!(
        git.commit.to_string(),
        "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"
    );
    assert!(matches!(git.launch, LaunchMode::Commands { .. }));
    assert!(
        example.launcher_volume_holding(&git.work_dir).is_some(),
        "WORK_DIR {} is on a volume",
        git.work_dir.display()
    );
    // Git mode runs the workload in the launcher's own container: no docker socket.
    assert!(
        !Example::strings(&example.service("launcher")["volumes"])
            .iter()
            .any(|v| v.contains("docker.sock"))
    );
}

/// The `next` dstack variant: `dstack-native` in the attested config, and the mounts it
/// needs (dstack's runtime directory read-write, the measurement directory writable).
#[test]
fn git_mode_next_example_measures_as_dstack_does() {
    let example = Example::load("git-mode-next");
    example.check_pins_and_sockets();
    let scratch = tempfile::tempdir().unwrap();
    let config = example.launcher_config(scratch.path());
    assert_eq!(
        config.measurement.backend,
        Some(trusted_launcher::measure::BackendChoice::DstackNative)
    );
    assert_eq!(
        config.measurement.dstack_runtime_dir.as_deref(),
        Some(Path::new("/run/log/dstack"))
    );
    let volumes = Example::strings(&example.service("launcher")["volumes"]);
    for wanted in [
        "/run/log/dstack:/run/log/dstack",
        "/sys/devices/virtual/misc/tdx_guest/measurements:/sys/devices/virtual/misc/tdx_guest/measurements:rw",
    ] {
        assert!(volumes.contains(&wanted), "{wanted} not in {volumes:?}");
    }
    let WorkloadSpec::Git(git) = config.workload else {
        panic!("git-mode-next example is not git mode")
    };
    assert!(example.launcher_volume_holding(&git.work_dir).is_some());
}

#[test]
fn image_mode_example_reads_its_approved_list_from_a_volume() {
    let example = Example::load("image-mode");
    example.check_pins_and_sockets();
    let scratch = tempfile::tempdir().unwrap();
    let config = example.launcher_config(scratch.path());
    let WorkloadSpec::Image(image) = config.workload else {
        panic!("image-mode example is not image mode")
    };
    assert_eq!(
        image.digest.to_string(),
        "sha256:200689790a0a0ea48ca45992e0450bc26ccab5307375b41c84dfc4f2475937ab"
    );
    let list = image.approved_list.expect("an approved list");
    let volume = example
        .launcher_volume_holding(&list)
        .unwrap_or_else(|| panic!("approved list {} is on no volume", list.display()));
    assert!(
        volume.ends_with(":ro"),
        "{volume}: the launcher only reads it"
    );
    assert!(!image.service.dstack_socket && !image.service.docker_socket);
    let launcher = example.service("launcher");
    // The rendered compose file and docker's credentials live on a tmpfs, never on disk.
    assert!(Example::strings(&launcher["tmpfs"]).contains(&"/run"));
    assert!(image.compose_file.starts_with("/run"));
    // `docker login` writes the launcher's private DOCKER_CONFIG, under /run by default
    // (src/docker.rs); the launcher ignores a DOCKER_CONFIG in its environment, so the
    // example sets none that would suggest otherwise.
    assert!(trusted_launcher::docker::DEFAULT_CONFIG_DIR.starts_with("/run/"));
    assert!(launcher["environment"]["DOCKER_CONFIG"].is_badvalue());
    // compose copies inline configs into the container: a read-only root refuses them.
    assert!(launcher["read_only"].is_badvalue());
}

/// The NEAR migration runs NEAR's user config, unchanged, with NEAR's environment from the
/// example's own (attested) `environment:`: the `near` format reads it as NEAR's launcher
/// would, keeping NEAR's digest, approved list, event and shared volume.
#[test]
fn near_migration_example_runs_near_s_file_with_near_s_environment() {
    let example = Example::load("near-migration");
    example.check_pins_and_sockets();
    let launcher = example.service("launcher");
    let environment: Vec<(String, String)> = Example::strings(&launcher["environment"])
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let command = Example::strings(&launcher["command"]);
    assert_eq!(command[..2], ["--format", "near"]);
    let path = *command.last().unwrap();
    let source = launcher["configs"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|c| c["target"].as_str() == Some(path))
        .unwrap()["source"]
        .as_str()
        .unwrap();
    let content = example.compose["configs"][source]["content"]
        .as_str()
        .unwrap();
    // NEAR's two tables and nothing of ours.
    assert!(content.starts_with("[launcher_config]\n"));
    assert!(!content.contains("[image"), "{content}");
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("user_config");
    fs::write(&file, content).unwrap();
    let lookup = |name: &str| {
        environment
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let config = config::load_with_env(&file, Some(config::ConfigFormat::Near), &lookup)
        .unwrap_or_else(|e| panic!("near-migration: {e:?}"));
    let WorkloadSpec::Image(image) = config.workload else {
        panic!("not image mode")
    };
    let near_digest = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/near-mpc_mpc_image_digest.txt"
    ))
    .unwrap();
    assert_eq!(
        image.digest.to_string(),
        format!("sha256:{}", near_digest.trim())
    );
    assert_eq!(lookup("PLATFORM").as_deref(), Some("TEE"));
    assert!(image.near_compat, "NEAR's mpc-image-digest event is kept");
    assert_eq!(image.project, "mpc-node");
    // The launcher reads the list and writes the node config on the shared volume: rw.
    let list = Path::new("/mnt/shared/image-digest.bin");
    assert_eq!(image.approved_list.as_deref(), Some(list));
    let volume = example.launcher_volume_holding(list).unwrap();
    assert_eq!(volume, "shared-volume:/mnt/shared");
    let node_config = image.workload_config.unwrap();
    assert_eq!(node_config.path, Path::new("/mnt/shared/mpc-config.toml"));
    assert!(!node_config.content.is_empty());
    // The node and the launcher share NEAR's volume by its real name.
    assert!(
        image
            .service
            .volumes
            .contains(&"shared-volume:/mnt/shared".to_owned())
    );
    assert_eq!(
        example.compose["volumes"]["shared-volume"]["name"].as_str(),
        Some("shared-volume")
    );
}

#[test]
fn every_example_directory_is_tested_and_linked_from_the_readme() {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut names: Vec<String> = fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["git-mode", "git-mode-next", "image-mode", "near-migration"]
    );
    for name in names {
        let link = format!("examples/dstack/{name}/");
        assert!(readme.contains(&link), "README does not link {link}");
    }
}

/// Every `FROM` is pinned by digest (or is `scratch`, or an earlier stage), and every
/// package the runtime installs names its exact version; the archive is a dated snapshot.
#[test]
fn dockerfile_pins_every_base_image_and_package() {
    let text =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/Dockerfile")).unwrap();
    let problems = dockerfile_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        !dockerfile_packages(&text).is_empty(),
        "the runtime installs its packages"
    );
    // The checker itself catches each kind of unpinned input.
    for (bad, needle) in [
        ("FROM debian:trixie-slim AS runtime\n", "not pinned"),
        ("FROM debian@sha256:abc\n", "not pinned"),
        ("FROM later\n", "not pinned"),
        (
            "FROM x@sha256:0000000000000000000000000000000000000000000000000000000000000000\nRUN apt-get install -y git\n",
            "git",
        ),
        (
            "FROM x@sha256:0000000000000000000000000000000000000000000000000000000000000000\nRUN apt-get update\n",
            "snapshot",
        ),
    ] {
        let found = dockerfile_problems(bad);
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "{bad:?}: {found:?}"
        );
    }
}

/// Instructions with their continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// The `name=version` words of every `apt-get install` in the Dockerfile.
fn dockerfile_packages(text: &str) -> Vec<String> {
    let mut packages = Vec::new();
    for instruction in instructions(text) {
        for command in instruction.split("&&") {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                packages.extend(
                    words[at + 2..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(|w| (*w).to_owned()),
                );
            }
        }
    }
    packages
}

fn dockerfile_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    let mut uses_apt = false;
    for instruction in instructions(text) {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        if words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            let image = words
                .iter()
                .skip(1)
                .find(|w| !w.starts_with("--"))
                .copied()
                .unwrap_or("");
            let pinned = image
                .split_once("@sha256:")
                .is_some_and(|(_, d)| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()));
            if !(pinned || image == "scratch" || stages.iter().any(|s| s == image)) {
                problems.push(format!("{instruction}: base image not pinned by digest"));
            }
            if let Some(at) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                stages.extend(words.get(at + 1).map(|s| (*s).to_owned()));
            }
        }
        uses_apt |= instruction.contains("apt-get");
    }
    for package in dockerfile_packages(text) {
        if !package.contains('=') {
            problems.push(format!("package {package} has no pinned version"));
        }
    }
    if uses_apt && !text.contains("snapshot.debian.org/archive/") {
        problems.push("apt sources are not a dated snapshot".to_owned());
    }
    problems
}
