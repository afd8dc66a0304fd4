//! Proxy variables in the launcher's environment are not obeyed: the environment is not
//! trusted (an operator can inject `HTTPS_PROXY` and read or answer every registry request
//! through it), and the launcher talks to the registry it was configured with, directly.
//! ureq 3 takes a proxy from the environment unless told otherwise (ureq 3.5.2
//! `src/config.rs`, `impl Default for Config`: `proxy: Proxy::try_from_env()`, which reads
//! `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` and their lower-case forms, `src/proxy.rs`); the
//! first case shows a default agent going through the injected proxy, then that the
//! launcher does not.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::Fixture;
use common::fake_registry::{FakeRegistry, Flavor, Image, Mode};

const VARIABLES: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// An HTTP proxy that records the first line of every request it gets and answers 502.
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        // Blocks in accept until the test process ends: a thread, never joined.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let _ = BufReader::new(&stream).read_line(&mut line);
                record.lock().unwrap().push(line.trim_end().to_owned());
                let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Self { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Run by [`an_injected_proxy_is_not_used`] in a child whose environment names the proxy: a
/// GET with ureq 3's default agent, as a client that keeps ureq's defaults would make it.
#[test]
#[ignore = "a helper: run in a child process by an_injected_proxy_is_not_used"]
fn default_agent_get() {
    let url = std::env::var("TARGET_URL").unwrap();
    let _ = ureq::Agent::new_with_defaults()
        .get(&url)
        .config()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .call();
}

#[test]
fn an_injected_proxy_is_not_used() {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "proxy-env");
    registry.push_image(&image);
    let url = format!("http://{}/v2/", registry.host());

    // A default ureq 3 agent, with only HTTPS_PROXY set, goes through the proxy.
    let naive = Proxy::start();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "default_agent_get",
            "--ignored",
            "--test-threads=1",
        ])
        .env_clear()
        .env("HTTPS_PROXY", &naive.url)
        .env("TARGET_URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let through = naive.seen();
    assert!(
        through.iter().any(|line| line.contains(&registry.host())),
        "{through:?}"
    );

    // The launcher, with every proxy variable set, asks the registry itself.
    let proxy = Proxy::start();
    let before = registry.requests().len();
    let config = fx.write(
        "c.toml",
        &format!(
            "[image]\nreference = \"{}\"\ndigest = \"{}\"\n",
            registry.reference(),
            image.digest()
        ),
    );
    let mut launcher = fx.launcher();
    launcher.args(["plan", "--json", config.to_str().unwrap()]);
    for variable in VARIABLES {
        launcher.env(variable, &proxy.url);
    }
    let run = launcher.run();
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["image"]["manifest"], image.digest());
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());
    assert!(registry.requests().len() > before);
}
