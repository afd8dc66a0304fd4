//! The `near` config format: NEAR tee-launcher's `/tapp/user_config` run unchanged, with
//! NEAR's environment (`PLATFORM`, `DEFAULT_IMAGE_DIGEST`, `DOCKER_CONTENT_TRUST`). What
//! NEAR's launcher does is DESIGN.md §8 (near/mpc, tee-launcher, 2026-08): selection
//! override > newest of `/mnt/shared/image-digest.bin` > `DEFAULT_IMAGE_DIGEST`, the node
//! config with an injected `[tee]` at `/mnt/shared/mpc-config.toml`, project/service/container
//! `mpc-node`, and the `mpc-image-digest` event.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;

use common::fake_agent::{FakeAgent, Mode as AgentMode};
use common::fake_docker::FakeDocker;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Launcher, Run};
use toml_span::value::ValueInner;

/// NEAR's real default digest (tests/fixtures/near-mpc_mpc_image_digest.txt): not in the
/// approved list below, so the list decides.
const NEAR_DEFAULT: &str =
    "sha256:564a5aebc33495d5610626d23cb9e3da8e9d531d0edff9e38aa1ccaf059c15d3";

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    image: Image,
    docker: FakeDocker,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "mpc-node");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    std::fs::create_dir(fx.path().join("shared")).unwrap();
    Setup {
        fx,
        registry,
        image,
        docker,
    }
}

impl Setup {
    fn shared(&self) -> PathBuf {
        self.fx.path().join("shared")
    }

    fn approved(&self) -> String {
        format!("{}@{}", self.registry.reference(), self.image.digest())
    }

    /// A user config as NEAR's README writes it: a tagged `image_reference`, port mappings,
    /// pull retries, and the node's own table (DESIGN.md §8).
    fn user_config(&self, node_extra: &str) -> PathBuf {
        self.docker
            .answer_inspect(&self.approved(), &self.image.config_digest());
        std::fs::write(
            self.shared().join("image-digest.bin"),
            format!(r#"{{"approved_hashes":["{}"]}}"#, self.image.digest()),
        )
        .unwrap();
        self.fx.write(
            "user_config",
            &format!(
                r#"[launcher_config]
image_reference = "{}:3.0.0"
port_mappings = [{{ host = 8080, container = 8080 }}, {{ host = 24567, container = 24567 }}]
pull_max_retries = 10
pull_retry_interval_secs = 1
pull_max_delay_secs = 60

[mpc_node_config]
home_dir = "/data"
my_near_account_id = "mpc-node-1.testnet"
cores = 12
{node_extra}
[mpc_node_config.indexer]
validate_genesis = false
sync_mode = "Latest"
mpc_contract_id = "v1.signer-prod.testnet"
finality = "optimistic"
"#,
                self.registry.reference()
            ),
        )
    }

    fn launcher(&self, platform: &str) -> Launcher {
        let mut launcher = Launcher::new(self.fx.path());
        launcher
            .env("PLATFORM", platform)
            .env("DOCKER_CONTENT_TRUST", "1")
            .env("DEFAULT_IMAGE_DIGEST", NEAR_DEFAULT)
            .args(["--docker", self.docker.script.to_str().unwrap()])
            .arg("--docker-config")
            .arg(self.fx.path().join("docker-config").to_str().unwrap())
            .arg("--near-shared-dir")
            .arg(self.shared().to_str().unwrap())
            .arg("--compose-file")
            .arg(self.fx.path().join("compose.yaml").to_str().unwrap())
            .arg("--event-log")
            .arg(self.fx.event_log().to_str().unwrap());
        launcher
    }

    fn run(&self, launcher: &mut Launcher) -> Run {
        launcher
            .arg(self.fx.path().join("user_config").to_str().unwrap())
            .run()
    }
}

fn as_json(value: &mut toml_span::Value<'_>) -> serde_json::Value {
    match value.take() {
        ValueInner::String(s) => s.into_owned().into(),
        ValueInner::Integer(i) => i.into(),
        ValueInner::Float(f) => f.into(),
        ValueInner::Boolean(b) => b.into(),
        ValueInner::Array(mut items) => items.iter_mut().map(as_json).collect(),
        ValueInner::Table(table) => table
            .into_iter()
            .map(|(k, mut v)| (k.name.into_owned(), as_json(&mut v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[test]
fn near_user_config_runs_as_near_s_launcher_would() {
    let s = setup();
    s.user_config("");
    let run = s.run(&mut s.launcher("NONTEE"));
    run.success().stderr_has("(near format)");

    // The node config: NEAR's table, field by field, plus NEAR's `[tee]` (NONTEE: local).
    let text = std::fs::read_to_string(s.shared().join("mpc-config.toml")).unwrap();
    let node = as_json(&mut toml_span::parse(&text).unwrap());
    assert_eq!(node["home_dir"], "/data");
    assert_eq!(node["my_near_account_id"], "mpc-node-1.testnet");
    assert_eq!(node["cores"], 12);
    assert_eq!(
        node["indexer"],
        serde_json::json!({"validate_genesis": false, "sync_mode": "Latest",
            "mpc_contract_id": "v1.signer-prod.testnet", "finality": "optimistic"})
    );
    assert_eq!(
        node["tee"],
        serde_json::json!({
            "authority": {"type": "local"},
            "image_hash": s.image.digest(),
            "latest_allowed_hash_file_path": "/mnt/shared/image-digest.bin",
        })
    );
    assert_eq!(node.as_object().unwrap().len(), 5, "{text}");

    // The compose document: NEAR's names, restart, ports, volumes, env and command.
    let compose: serde_json::Value = serde_yaml_like(&s.fx.path().join("compose.yaml"));
    assert_eq!(compose["name"], "mpc-node");
    let service = &compose["services"]["mpc-node"];
    assert_eq!(service["container_name"], "mpc-node");
    assert_eq!(service["image"], s.approved());
    assert_eq!(service["restart"], "on-failure");
    assert_eq!(
        service["ports"],
        serde_json::json!(["8080:8080", "24567:24567"])
    );
    assert_eq!(
        service["volumes"],
        serde_json::json!([
            "/tapp:/tapp:ro",
            "shared-volume:/mnt/shared",
            "mpc-data:/data",
            "/var/run/dstack.sock:/var/run/dstack.sock"
        ])
    );
    assert_eq!(
        service["environment"],
        serde_json::json!({"DSTACK_ENDPOINT": "/var/run/dstack.sock"})
    );
    assert_eq!(
        service["command"],
        serde_json::json!([
            "/app/mpc-node",
            "start-with-config-file",
            "/mnt/shared/mpc-config.toml"
        ])
    );
    // `up -d`, as NEAR's launcher; the tag was dropped, the digest pulled.
    let calls = s.docker.calls();
    assert_eq!(calls[0], format!("pull --quiet {}", s.approved()));
    assert!(calls.last().unwrap().contains("up --detach"), "{calls:?}");

    // NEAR's event with ours; the list's newest entry, not DEFAULT_IMAGE_DIGEST, was chosen.
    let events = s.fx.events();
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.compose",
            "mpc-image-digest",
            "trusted-launcher.ready"
        ]
    );
    assert_eq!(events[3]["event_payload"], s.image.digest_hex());
}

/// The rendered compose file is block keys whose values are JSON literals (README, "Compose
/// rendering") or plain template text; reads the top-level `name` and each service's keys.
fn serde_yaml_like(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut root = serde_json::Map::new();
    let mut services = serde_json::Map::new();
    let mut service: Option<(String, serde_json::Map<String, serde_json::Value>)> = None;
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let depth = line.len() - line.trim_start().len();
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        let parsed = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        match depth {
            0 if key == "name" => {
                root.insert(key.into(), parsed);
            }
            2 => {
                if let Some((name, body)) = service.take() {
                    services.insert(name, body.into());
                }
                service = Some((key.to_owned(), serde_json::Map::new()));
            }
            4 => {
                if let Some((_, body)) = service.as_mut() {
                    body.insert(key.into(), parsed);
                }
            }
            _ => {}
        }
    }
    if let Some((name, body)) = service {
        services.insert(name, body.into());
    }
    root.insert("services".into(), services.into());
    root.into()
}

/// NEAR's launcher refuses a user `[tee]`: the node trusts that table for its authority and
/// approved list. A naive launcher that merged user tables first would pass a forged
/// `authority = {type = "local"}` to a node inside a TEE.
#[test]
fn a_user_tee_table_is_refused_with_nothing_done() {
    let s = setup();
    let forged = "[mpc_node_config.tee]\nauthority = { type = \"local\" }\n";
    let mut naive = as_json(&mut toml_span::parse(forged).unwrap());
    naive["mpc_node_config"]["tee"]
        .as_object_mut()
        .unwrap()
        .entry("authority")
        .or_insert(serde_json::json!({"type": "dstack"}));
    assert_eq!(
        naive["mpc_node_config"]["tee"]["authority"]["type"],
        "local"
    );

    let config = s.user_config(forged);
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l == "[mpc_node_config.tee]")
        .unwrap()
        + 1;
    s.run(&mut s.launcher("NONTEE")).fails(
        2,
        &format!("user_config:{line}: mpc_node_config.tee is reserved"),
    );
    assert!(!s.shared().join("mpc-config.toml").exists());
    assert!(s.fx.events().is_empty());
    assert!(s.docker.calls().is_empty());
}

/// In TEE mode NEAR's launcher refuses a `gcp` key in the node config; so does this one,
/// before anything is measured at the agent, pulled or started.
#[test]
fn gcp_in_tee_mode_is_refused_before_anything_is_measured() {
    let s = setup();
    let agent = FakeAgent::start(s.fx.path(), AgentMode::Normal);
    s.user_config("gcp = { project_id = \"p\", keyshare_secret_id = \"k\" }\n");
    let mut launcher = s.launcher("TEE");
    launcher
        .env("DSTACK_SIMULATOR_ENDPOINT", agent.endpoint())
        .arg("--rtmr3-path")
        .arg(s.fx.path().join("no-such-rtmr3:sha384").to_str().unwrap());
    s.run(&mut launcher)
        .fails(1, "mpc_node_config.gcp is not allowed in tee mode");
    assert!(agent.events().is_empty(), "{:?}", agent.events());
    assert!(s.docker.calls().is_empty());
    assert!(!s.shared().join("mpc-config.toml").exists());
}

/// The environment is not attested: `DEFAULT_IMAGE_DIGEST` cannot pick a digest while the
/// approved list exists and does not contain it (NEAR's list decides).
#[test]
fn default_digest_from_the_environment_does_not_override_the_list() {
    let s = setup();
    s.user_config("");
    let run = s.run(&mut s.launcher("NONTEE"));
    run.success();
    let workload = common::hex(format!("oci:{}", s.image.digest()).as_bytes());
    assert_eq!(s.fx.events()[1]["event_payload"], workload);
    assert!(!run.stderr.contains(NEAR_DEFAULT), "{}", run.stderr);
}

#[test]
fn a_missing_default_digest_is_a_config_error() {
    let s = setup();
    s.user_config("");
    let mut launcher = s.launcher("NONTEE");
    launcher.env("DEFAULT_IMAGE_DIGEST", "latest");
    s.run(&mut launcher).fails(
        2,
        "DEFAULT_IMAGE_DIGEST (environment) must be one of sha256:<64 lowercase hex> (got \"latest\")",
    );
    assert!(s.fx.events().is_empty());
}

/// Without the approved list (first boot, before the node wrote it) NEAR runs
/// `DEFAULT_IMAGE_DIGEST`. The environment is not attested, so the launcher says so loudly,
/// and the workload event measures the digest it ran: `verify` shows it.
#[test]
fn without_the_list_the_default_digest_runs_loudly_and_measured() {
    let s = setup();
    s.user_config("");
    std::fs::remove_file(s.shared().join("image-digest.bin")).unwrap();
    let mut launcher = s.launcher("NONTEE");
    launcher.env("DEFAULT_IMAGE_DIGEST", s.image.digest());
    s.run(&mut launcher)
        .success()
        .stderr_has("DEFAULT_IMAGE_DIGEST comes from the environment, which is not attested");
    let workload = common::hex(format!("oci:{}", s.image.digest()).as_bytes());
    assert_eq!(s.fx.events()[1]["event_payload"], workload);
}

/// In tee mode the same first boot is refused: an operator who can set the environment and
/// remove the list would otherwise choose what runs. Nothing is measured, pulled or written.
#[test]
fn in_tee_mode_an_environment_default_without_the_list_is_refused() {
    let s = setup();
    let agent = FakeAgent::start(s.fx.path(), AgentMode::Normal);
    s.user_config("");
    std::fs::remove_file(s.shared().join("image-digest.bin")).unwrap();
    let mut launcher = s.launcher("TEE");
    launcher
        .env("DEFAULT_IMAGE_DIGEST", s.image.digest())
        .env("DSTACK_SIMULATOR_ENDPOINT", agent.endpoint())
        .arg("--rtmr3-path")
        .arg(s.fx.path().join("no-such-rtmr3:sha384").to_str().unwrap());
    s.run(&mut launcher)
        .fails(2, "refusing DEFAULT_IMAGE_DIGEST sha256:");
    assert!(agent.events().is_empty(), "{:?}", agent.events());
    assert!(s.docker.calls().is_empty());
    assert!(!s.shared().join("mpc-config.toml").exists());
}
