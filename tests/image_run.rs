//! Image mode `run`, fast tier: the real binary against the in-process registry and a
//! recording `docker` (via `--docker`) whose `image inspect` answer each test chooses. The
//! real engine and registry are exercised by tests/e2e/launch.sh.

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
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};
use common::{Fixture, Run};

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    image: Image,
    docker: FakeDocker,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "run");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    Setup {
        fx,
        registry,
        image,
        docker,
    }
}

impl Setup {
    fn config(&self, extra: &str) -> PathBuf {
        self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n{extra}",
                self.registry.reference(),
                self.image.digest(),
                self.fx.path().join("compose.yaml").display()
            ),
        )
    }

    fn run(&self, config: &std::path::Path) -> Run {
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

    fn approved_image(&self) -> String {
        format!("{}@{}", self.registry.reference(), self.image.digest())
    }

    fn measured(&self) -> Vec<String> {
        self.fx
            .events()
            .iter()
            .map(|e| e["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[test]
fn pulls_confirms_renders_measures_and_execs_compose() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    let config = s.config(
        "[image.service]\nenvironment = { MODE = \"prod $HOME\" }\nports = [\"8080:80\"]\n\
         volumes = [\"data:/data\", \"/srv/in:/in:ro\"]\n",
    );
    let run = s.run(&config);
    // Compose reads no `.env` beside the compose file: an empty one of the launcher's own
    // replaces it (a `.env` can set DOCKER_HOST and COMPOSE_FILE for compose).
    let env_file = s.fx.path().join("docker-config/empty.env");
    run.success()
        .stdout_has(&format!(
            "COMPOSE-UP compose --project-name trusted-launcher --env-file {} --file",
            env_file.display()
        ))
        .stdout_has(&format!("    image: \"{}\"", s.approved_image()))
        .stdout_has("    environment: {\"MODE\":\"prod $$HOME\"}")
        .stdout_has("      - no-new-privileges:true")
        .stdout_has("    volumes: [\"data:/data\",\"/srv/in:/in:ro\"]")
        // compose refuses an undeclared named volume: declared by its own name, binds not
        .stdout_has("\nvolumes: {\"data\":{\"name\":\"data\"}}\n")
        .stderr_has("image verified");
    assert_eq!(std::fs::read(&env_file).unwrap(), b"");
    let calls = s.docker.calls();
    assert_eq!(calls[0], format!("pull --quiet {}", s.approved_image()));
    assert_eq!(
        calls[1],
        format!(
            "image inspect --format {{{{json .}}}} {}",
            s.approved_image()
        )
    );
    assert!(
        calls.last().unwrap().ends_with("up --remove-orphans"),
        "{calls:?}"
    );
    assert_eq!(
        s.measured(),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.compose",
            "trusted-launcher.ready"
        ]
    );
    let workload = common::hex(format!("oci:{}", s.image.digest()).as_bytes());
    assert_eq!(s.fx.events()[1]["event_payload"], workload);
    // The measured digest is that of the exact file compose was handed.
    let handed = std::fs::read(s.fx.path().join("compose.yaml")).unwrap();
    let compose = common::hex(common::fake_registry::sha256_digest(&handed).as_bytes());
    assert_eq!(s.fx.events()[2]["event_payload"], compose);
}

/// An engine that holds another image under the approved name is refused: nothing starts,
/// and `ready` is never measured.
#[test]
fn engine_reporting_another_image_is_refused() {
    for (repo_digest, id) in [
        (None, Some("sha256:".to_owned() + &"e".repeat(64))),
        (
            Some(format!("{}@sha256:{}", "127.0.0.1:1/other", "0".repeat(64))),
            None,
        ),
    ] {
        let s = setup();
        s.docker.answer_inspect(
            &repo_digest.unwrap_or_else(|| s.approved_image()),
            &id.unwrap_or_else(|| s.image.config_digest()),
        );
        let run = s.run(&s.config(""));
        run.fails(1, "the pulled image is not what was approved");
        assert!(!run.stdout.contains("COMPOSE-UP"));
        assert!(
            !s.docker.calls().iter().any(|c| c.contains(" up")),
            "{:?}",
            s.docker.calls()
        );
        assert_eq!(
            s.measured(),
            [
                "trusted-launcher.config",
                "trusted-launcher.workload",
                "trusted-launcher.compose"
            ]
        );
    }
}

#[test]
fn failed_pull_starts_nothing() {
    let s = setup();
    s.fx.write("pull-fail", "");
    let run = s.run(&s.config(""));
    run.fails(1, "pull denied");
    assert!(!s.docker.calls().iter().any(|c| c.starts_with("compose")));
    assert!(!s.measured().contains(&"trusted-launcher.ready".to_owned()));
}

/// Problems found without side effects stop the launch before anything is measured.
#[test]
fn bad_template_or_missing_docker_measure_nothing() {
    let s = setup();
    let template =
        s.fx.write("t.yaml", "services:\n  w:\n    image: {{ nope }}\n");
    let run = s.run(&s.config(&format!("compose_template = \"{}\"\n", template.display())));
    run.fails(1, "unknown placeholder {{ nope }}");
    assert!(s.fx.events().is_empty());
    assert!(s.docker.calls().is_empty(), "{:?}", s.docker.calls());

    let run =
        s.fx.launcher()
            .args(["--docker", "/nonexistent/docker"])
            .arg(s.config("").to_str().unwrap())
            .run();
    run.fails(1, "docker not found");
    assert!(s.fx.events().is_empty());
}

#[test]
fn detached_runs_compose_up_detach_and_returns() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    let run = s.run(&s.config("detach = true\nproject = \"svc\"\n"));
    run.success()
        .stdout_has("COMPOSE-UP compose --project-name svc --env-file")
        .stdout_has("up --detach --remove-orphans")
        .stderr_has("starting svc detached");
    assert_eq!(s.measured().len(), 4);
}

/// Credentials: `docker login` gets the password on stdin, never as an argument.
#[test]
fn login_takes_the_password_on_stdin() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    s.registry
        .set_auth(common::fake_registry::Auth::password("robot", "pa55word"));
    let run =
        s.fx.launcher()
            .env("REG_PW", "pa55word")
            .args(["--docker", s.docker.script.to_str().unwrap()])
            .args([
                "--docker-config",
                &s.fx.path().join("docker-config").display().to_string(),
            ])
            .arg(
                s.config("username = \"robot\"\npassword_env = \"REG_PW\"\n")
                    .to_str()
                    .unwrap(),
            )
            .run();
    run.success();
    let calls = s.docker.calls();
    assert_eq!(
        calls[0],
        format!(
            "login {} --username robot --password-stdin",
            s.registry.host()
        )
    );
    assert!(calls.iter().all(|c| !c.contains("pa55word")), "{calls:?}");
}

/// NEAR compatibility: `mpc-image-digest` with the 32 raw digest bytes, between the
/// workload event and `ready`, as NEAR's verifier expects; `plan` lists it too.
#[test]
fn near_compat_measures_mpc_image_digest() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    let config = s.config("near_compat = true\n");
    s.run(&config).success();
    assert_eq!(
        s.measured(),
        [
            "trusted-launcher.config",
            "trusted-launcher.workload",
            "trusted-launcher.compose",
            "mpc-image-digest",
            "trusted-launcher.ready"
        ]
    );
    assert_eq!(s.fx.events()[3]["event_payload"], s.image.digest_hex());
    let plan =
        s.fx.launcher()
            .args(["plan", "--json", config.to_str().unwrap()])
            .run();
    plan.success();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(plan["events"][3]["event"], "mpc-image-digest");
    assert_eq!(plan["events"][3]["digest"], s.fx.events()[3]["digest"]);
    // A restart in the same boot measures nothing again, extra event included.
    let before = s.fx.events().len();
    s.run(&config)
        .success()
        .stderr_has("already measured in this boot");
    assert_eq!(s.fx.events().len(), before);
}

/// Writes the config a case runs with; returns its path.
type ConfigMaker = Box<dyn Fn(&Setup) -> String>;

/// Registry refusals during `run`: the image is resolved before anything is measured, so a
/// hostile or unreachable registry ends with one error, no event and no docker call.
#[test]
fn registry_refusals_measure_and_start_nothing() {
    let cases: [(&str, ConfigMaker); 3] = [
        (
            "does not match",
            Box::new(|s: &Setup| {
                s.registry.set_mode(Mode::WrongBody);
                s.config("").to_str().unwrap().to_owned()
            }),
        ),
        (
            "not for platform linux/arm64",
            Box::new(|s: &Setup| {
                s.config("platform = \"linux/arm64\"\n")
                    .to_str()
                    .unwrap()
                    .to_owned()
            }),
        ),
        (
            "cannot reach",
            Box::new(|s: &Setup| {
                let closed = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap();
                s.fx.write(
                    "image.toml",
                    &format!(
                        "[image]\nreference = \"{closed}/team/app\"\ndigest = \"{}\"\n",
                        s.image.digest()
                    ),
                )
                .to_str()
                .unwrap()
                .to_owned()
            }),
        ),
    ];
    for (needle, make_config) in cases {
        let s = setup();
        let config = make_config(&s);
        s.run(std::path::Path::new(&config)).fails(1, needle);
        assert!(s.fx.events().is_empty(), "{needle}: measured something");
        assert!(
            s.docker.calls().is_empty(),
            "{needle}: {:?}",
            s.docker.calls()
        );
    }
}

/// Class 7 of issue 10: a custom template is read from disk and need not contain
/// `{{ image }}`. The old launcher rendered it, measured `ready`, and handed compose whatever
/// it said — here a privileged busybox. Every service must now run the approved image, and the
/// refusal comes before anything is measured or pulled.
#[test]
fn a_template_that_runs_another_image_is_refused_before_measuring() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    let hostile =
        "name: {{ project }}\nservices:\n  workload:\n    image: busybox\n    privileged: true\n";
    let template = s.fx.write("hostile.yaml", hostile);
    // What the old pipeline handed compose: the template with its (one) placeholder filled.
    let old_render = hostile.replace("{{ project }}", "\"trusted-launcher\"");
    assert!(old_render.contains("image: busybox") && !old_render.contains("{{"));

    let run = s.run(&s.config(&format!("compose_template = \"{}\"\n", template.display())));
    run.fails(
        1,
        &format!(
            "rendered compose document: service \"workload\" runs image \"busybox\", not the approved {}",
            s.approved_image()
        ),
    );
    assert!(s.fx.events().is_empty(), "nothing measured");
    assert!(s.docker.calls().is_empty(), "{:?}", s.docker.calls());

    // An alias or a second service is no way around it.
    for text in [
        "x-i: &i busybox\nservices:\n  workload:\n    image: {{ image }}\n  side:\n    image: *i\n",
        "services:\n  workload:\n    image: {{ image }}\n    build: .\n",
        "include: [/mnt/shared/more.yaml]\nservices:\n  workload:\n    image: {{ image }}\n",
    ] {
        let template = s.fx.write("sneaky.yaml", text);
        let run = s.run(&s.config(&format!("compose_template = \"{}\"\n", template.display())));
        run.fails(1, "rendered compose document:");
        assert!(s.fx.events().is_empty(), "{text}");
    }
}

/// What the approved image's service may do is the template's business, but it is bound by
/// the measured digest: `plan --json` prints the exact document, whose SHA-256 is the
/// `trusted-launcher.compose` payload `run` measures.
#[test]
fn the_measured_compose_digest_is_the_planned_document() {
    let s = setup();
    s.docker
        .answer_inspect(&s.approved_image(), &s.image.config_digest());
    let template = s.fx.write(
        "custom.yaml",
        "name: {{ project }}\nservices:\n  workload:\n    image: {{ image }}\n    privileged: true\n",
    );
    let config = s.config(&format!("compose_template = \"{}\"\n", template.display()));
    let plan =
        s.fx.launcher()
            .args(["plan", "--json", config.to_str().unwrap()])
            .run();
    let plan: serde_json::Value = serde_json::from_str(&plan.success().stdout).unwrap();
    let document = plan["compose"]["document"].as_str().unwrap();
    assert!(document.contains("    privileged: true\n"), "{document}");
    let digest = common::fake_registry::sha256_digest(document.as_bytes());
    assert_eq!(plan["compose"]["sha256"], digest);
    assert_eq!(plan["events"][2]["event"], "trusted-launcher.compose");
    assert_eq!(
        plan["events"][2]["event_payload"],
        common::hex(digest.as_bytes())
    );

    s.run(&config).success();
    assert_eq!(
        s.fx.events()[2]["event_payload"],
        common::hex(digest.as_bytes())
    );
    assert_eq!(
        std::fs::read_to_string(s.fx.path().join("compose.yaml")).unwrap(),
        document
    );
}
