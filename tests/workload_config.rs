//! `[image.workload_config]`: the workload's config, carried in the measured launcher
//! config, completed with the launcher's `trusted_launcher` table and written atomically
//! once the image is confirmed. The real binary against the in-process registry and the
//! recording `docker`.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use common::fake_docker::FakeDocker;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Run};
use toml_span::value::ValueInner;

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    image: Image,
    docker: FakeDocker,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "workload-config");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    Setup {
        fx,
        registry,
        image,
        docker,
    }
}

/// A node-config-like table: nested tables, arrays of tables, every scalar type, and
/// strings TOML must escape.
const CONTENT: &str = r#"
my_near_account_id = "node.near"
cores = 12
ratio = 0.5
debug = false
quote = "say \"hi\"\\n\ttab"
peers = ["a:1", "b:2"]
[indexer]
validate_genesis = true
sync_mode = "Latest"
[indexer.nested]
deep = [{ x = 1 }, { x = 2 }]
"#;

impl Setup {
    fn target(&self) -> PathBuf {
        self.fx.path().join("shared").join("app-config")
    }

    fn config(&self, format: &str, content: &str) -> PathBuf {
        self.docker.answer_inspect(
            &format!("{}@{}", self.registry.reference(), self.image.digest()),
            &self.image.config_digest(),
        );
        let content = content.replace("\n[", "\n[image.workload_config.content.");
        self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n\
                 [image.workload_config]\npath = \"{}\"\nformat = \"{format}\"\n\
                 [image.workload_config.content]\n{content}",
                self.registry.reference(),
                self.image.digest(),
                self.fx.path().join("compose.yaml").display(),
                self.target().display(),
            ),
        )
    }

    fn run(&self, config: &Path) -> Run {
        self.fx
            .launcher()
            .args(["--docker", self.docker.script.to_str().unwrap()])
            .args([
                "--docker-config",
                &self.fx.path().join("docker-config").display().to_string(),
            ])
            .arg(config.to_str().unwrap())
            .run()
    }

    fn measured(&self) -> Vec<String> {
        self.fx
            .events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// toml-span's value as plain JSON, so a TOML file and a JSON file compare alike.
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

fn expected(s: &Setup) -> serde_json::Value {
    serde_json::json!({
        "my_near_account_id": "node.near",
        "cores": 12,
        "ratio": 0.5,
        "debug": false,
        "quote": "say \"hi\"\\n\ttab",
        "peers": ["a:1", "b:2"],
        "indexer": {
            "validate_genesis": true,
            "sync_mode": "Latest",
            "nested": {"deep": [{"x": 1}, {"x": 2}]}
        },
        "trusted_launcher": {
            "workload": format!("oci:{}", s.image.digest()),
            "image": format!("{}@{}", s.registry.reference(), s.image.digest()),
        }
    })
}

fn assert_written_cleanly(s: &Setup) {
    let mode = std::fs::metadata(s.target()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let names: Vec<_> = std::fs::read_dir(s.target().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["app-config"], "a temp file was left behind");
    assert_eq!(
        s.measured(),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.compose",
            "trusted-launcher.ready"
        ]
    );
}

#[test]
fn toml_config_is_written_with_the_launcher_table() {
    let s = setup();
    let config = s.config("toml", CONTENT);
    s.run(&config).success().stderr_has(&format!(
        "workload config written to {}",
        s.target().display()
    ));
    let text = std::fs::read_to_string(s.target()).unwrap();
    let parsed = as_json(&mut toml_span::parse(&text).unwrap());
    assert_eq!(parsed, expected(&s), "{text}");
    assert_written_cleanly(&s);
}

#[test]
fn json_config_is_written_with_the_launcher_table() {
    let s = setup();
    let config = s.config("json", CONTENT);
    s.run(&config).success();
    let text = std::fs::read_to_string(s.target()).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed, expected(&s), "{text}");
    assert_written_cleanly(&s);
}

/// A config that sets `trusted_launcher` itself could tell the workload it runs some other
/// (approved-looking) image. A naive merge that keeps the user's table would pass the
/// forgery on; the launcher refuses the config with the line, and nothing happens.
#[test]
fn a_user_trusted_launcher_table_is_refused() {
    let s = setup();
    let forged = "[trusted_launcher]\nworkload = \"oci:sha256:forged\"\n";
    // Naive: the user's table first, the launcher's only where absent.
    let mut naive = as_json(&mut toml_span::parse(forged).unwrap());
    naive["trusted_launcher"]
        .as_object_mut()
        .unwrap()
        .entry("workload")
        .or_insert("oci:the-real-one".into());
    assert_eq!(naive["trusted_launcher"]["workload"], "oci:sha256:forged");

    let config = s.config("toml", &format!("a = 1\n{forged}"));
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.ends_with(".trusted_launcher]"))
        .unwrap()
        + 1;
    s.run(&config).fails(
        2,
        &format!("image.toml:{line}: image.workload_config.content.trusted_launcher is reserved"),
    );
    assert!(!s.target().exists());
    assert!(s.measured().is_empty());
    assert!(s.docker.calls().is_empty());
}

#[test]
fn bad_sections_are_config_errors_with_nothing_done() {
    let s = setup();
    for (format, content, needle) in [
        (
            "yaml",
            "a = 1\n",
            "image.workload_config.format must be one of toml, json (got \"yaml\")",
        ),
        (
            "json",
            "a = [1.0, nan]\n",
            "image.workload_config.content holds a float JSON cannot encode (inf or nan) (got \"image.workload_config.content.a[1]\")",
        ),
    ] {
        let config = s.config(format, content);
        s.run(&config).fails(2, needle);
        assert!(!s.target().exists());
        assert!(s.measured().is_empty());
    }
    let relative = s.fx.write(
        "rel.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{}\"\n[image.workload_config]\npath = \"app.toml\"\nmode = 1\n",
            s.registry.reference(),
            s.image.digest()
        ),
    );
    s.run(&relative)
        .fails(
            2,
            "image.workload_config.path must be an absolute path (got \"app.toml\")",
        )
        .stderr_has("rel.toml:6: unknown key image.workload_config.mode");
    assert!(s.measured().is_empty());
}

/// The file is written only for a confirmed image: an engine holding another image under
/// the approved name stops the launch before the workload's config exists.
#[test]
fn not_written_when_the_image_is_not_confirmed() {
    let s = setup();
    let config = s.config("toml", CONTENT);
    s.docker.answer_inspect(
        &format!("{}@{}", s.registry.reference(), s.image.digest()),
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    );
    s.run(&config)
        .fails(1, "the pulled image is not what was approved");
    assert!(!s.target().exists());
    assert!(!s.measured().contains(&"trusted-launcher.ready".to_owned()));
}
