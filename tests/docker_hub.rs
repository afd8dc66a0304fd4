//! Docker Hub by its real names. The launcher runs in a private mount namespace
//! (`unshare -m`, as root) whose `/etc/hosts` maps `registry-1.docker.io`, `auth.docker.io`,
//! `docker.io`, `index.docker.io` and Hub's storage host to 127.0.0.1, where a stand-in
//! (tests/common/hub.rs) serves them over TLS on port 443 with a CA given as `image.ca_file`.
//! Each case shows what the old or a naive client did against the same stand-in, then that
//! the launcher does not.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject as _;
use serde_json::Value;
use ureq::ResponseExt as _;

use common::fake_registry::{Flavor, Image};
use common::hub::{self, AUTH, HOSTS, Hub, REGISTRY, Route, S3_REFUSAL, STORAGE, TOKEN};
use common::{Fixture, Run};

/// A failure must come long before this; a wait within the deadline is far shorter.
const FAST: Duration = Duration::from_secs(30);

/// Namespaces and port 443 need root (CI runs as root); elsewhere these tests say why
/// they did nothing.
fn root() -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .unwrap();
    if uid != "0" {
        eprintln!("skipped: needs root for a private mount namespace and port 443");
    }
    uid == "0"
}

struct Case {
    fx: Fixture,
    hub: Hub,
    image: Image,
    _ports: std::sync::MutexGuard<'static, ()>,
}

/// The stand-in with one image under `traefik/whoami` and `library/nginx`.
fn start() -> Case {
    let ports = hub::exclusive();
    let fx = Fixture::new();
    let dir = fx.path().join("hub");
    std::fs::create_dir_all(&dir).unwrap();
    let hub = Hub::start(&dir);
    let image = Image::new(Flavor::Oci, "linux/amd64", "hub");
    hub.push("traefik/whoami", &image);
    hub.push("library/nginx", &image);
    Case {
        fx,
        hub,
        image,
        _ports: ports,
    }
}

impl Case {
    /// `plan --json` for `reference` inside the namespace whose hosts file points Hub here.
    fn plan(&self, reference: &str) -> Run {
        let hosts = self.fx.write(
            "hosts",
            &format!("127.0.0.1 localhost\n127.0.0.1 {}\n", HOSTS.join(" ")),
        );
        let config = self.fx.write(
            "hub.toml",
            &format!(
                "[image]\nreference = \"{reference}\"\ndigest = \"{}\"\nca_file = \"{}\"\n",
                self.image.digest(),
                self.hub.ca().display()
            ),
        );
        let setup = format!(
            "set -e\nmount --bind {} /etc/hosts\nexec \"$@\"\n",
            hosts.display()
        );
        let mut launcher = self.fx.launcher();
        launcher
            .wrapped(["unshare", "-m", "sh", "-c", &setup, "sh"])
            .args(["plan", "--json", config.to_str().unwrap()]);
        launcher.run()
    }

    fn plan_json(&self, reference: &str) -> Value {
        let run = self.plan(reference);
        run.success();
        serde_json::from_str(&run.stdout).unwrap()
    }
}

/// A plain ureq agent as a naive client would build it (ureq follows redirects by
/// default), trusting the stand-in's CA and resolving every name to it.
fn naive(hub: &Hub, redirects: u32) -> ureq::Agent {
    let pem = std::fs::read(hub.ca()).unwrap();
    let roots: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .map(|cert| ureq::tls::Certificate::from_der(cert.unwrap().as_ref()).to_owned())
        .collect();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(ureq::tls::RootCerts::Specific(Arc::new(roots)))
        .build();
    let config = ureq::config::Config::builder()
        .tls_config(tls)
        .max_redirects(redirects)
        // A 4xx is read as a response here, as ureq 2 let it be read from its error.
        .http_status_as_error(false)
        // Whatever proxy this machine's environment names has no part in these cases.
        .proxy(None)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        Loopback,
    )
}

/// Resolves every name to 127.0.0.1, at the URL's port.
#[derive(Debug)]
struct Loopback;

impl ureq::unversioned::resolver::Resolver for Loopback {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().unwrap_or(
            if uri
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("http"))
            {
                80
            } else {
                443
            },
        );
        let mut addrs = self.empty();
        addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        Ok(addrs)
    }
}

fn blob_url(case: &Case) -> String {
    format!(
        "https://{REGISTRY}/v2/traefik/whoami/blobs/{}",
        case.image.config.digest()
    )
}

#[test]
fn every_hub_spelling_resolves_at_registry_1_and_nothing_goes_to_docker_io() {
    if !root() {
        return;
    }
    let case = start();
    // The old parser took `docker.io` for the registry host, so the manifest request went to
    // https://docker.io/v2/…, which answers with a redirect to the web site, never a manifest.
    let old = naive(&case.hub, 0)
        .get(&format!(
            "https://docker.io/v2/traefik/whoami/manifests/{}",
            case.image.digest()
        ))
        .call()
        .unwrap();
    assert_eq!(old.status(), 301);
    assert_eq!(
        old.headers()["Location"].to_str().ok(),
        Some("https://www.docker.com/")
    );
    let before = case.hub.seen().len();

    for (reference, repository, docker_name) in [
        (
            "docker.io/traefik/whoami",
            "traefik/whoami",
            "traefik/whoami",
        ),
        (
            "index.docker.io/traefik/whoami",
            "traefik/whoami",
            "traefik/whoami",
        ),
        (
            "registry-1.docker.io/traefik/whoami",
            "traefik/whoami",
            "traefik/whoami",
        ),
        ("traefik/whoami", "traefik/whoami", "traefik/whoami"),
        ("nginx", "library/nginx", "nginx"),
        ("docker.io/nginx", "library/nginx", "nginx"),
        ("index.docker.io/library/nginx", "library/nginx", "nginx"),
        ("registry-1.docker.io/nginx", "library/nginx", "nginx"),
    ] {
        let plan = case.plan_json(reference);
        assert_eq!(
            plan["image"]["reference"],
            format!("{REGISTRY}/{repository}"),
            "{reference}"
        );
        assert_eq!(plan["image"]["config"], case.image.config.digest());
        // The compose file names the image as Docker spells it (and shows in RepoDigests).
        let document = plan["compose"]["document"].as_str().unwrap();
        assert!(
            document.contains(&format!("\"{docker_name}@{}\"", case.image.digest())),
            "{reference}: {document}"
        );
        assert!(!document.contains("docker.io"), "{reference}: {document}");
    }
    let seen = case.hub.seen().split_off(before);
    for request in &seen {
        assert!(
            [REGISTRY, AUTH, STORAGE].contains(&request.host.as_str()),
            "a request went to {}: {request:?}",
            request.host
        );
    }
    let tokens: Vec<_> = seen.iter().filter(|r| r.host == AUTH).collect();
    assert!(!tokens.is_empty());
    assert!(
        tokens
            .iter()
            .all(|r| r.target.contains("service=registry.docker.io"))
    );
}

#[test]
fn storage_never_sees_the_registry_credentials() {
    if !root() {
        return;
    }
    let case = start();
    case.hub.route(Route::Hops(1), true);
    // A client that keeps `Authorization` across the redirect (the behaviour ureq's
    // `RedirectAuthHeaders::SameHost`/older clients have for same-host hops, and what a
    // hand-rolled follow does) reaches storage with the token and is refused as S3 does.
    let storage = naive(&case.hub, 0)
        .get(&blob_url(&case))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(storage.status(), 307);
    let location = storage.headers()["Location"].to_str().unwrap().to_owned();
    match naive(&case.hub, 0)
        .get(&location)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
    {
        Ok(mut response) if response.status() == 400 => {
            assert_eq!(response.body_mut().read_to_string().unwrap(), S3_REFUSAL);
        }
        other => panic!("storage took credentials: {other:?}"),
    }
    let before = case.hub.seen().len();

    case.plan_json("docker.io/traefik/whoami");
    let seen = case.hub.seen().split_off(before);
    let at_storage: Vec<_> = seen.iter().filter(|r| r.host == STORAGE).collect();
    // Both manifests and the config blob came from storage, without credentials.
    assert_eq!(at_storage.len(), 2, "{seen:#?}");
    assert!(
        at_storage
            .iter()
            .all(|r| r.authorization.is_none() && r.tls)
    );
    assert!(
        seen.iter()
            .filter(|r| r.host == REGISTRY)
            .any(|r| r.authorization.as_deref() == Some(&format!("Bearer {TOKEN}")))
    );
}

#[test]
fn a_429_with_retry_after_is_waited_out() {
    if !root() {
        return;
    }
    let case = start();
    case.hub.rate_limit("1", Duration::from_secs(1));
    // The old client retried a 429 after its fixed backoff (200 ms, then 400 ms), inside the
    // window Hub asked to be left alone for: those retries would have been refused again.
    let old_retries = [Duration::from_millis(200), Duration::from_millis(600)];
    assert!(old_retries.iter().all(|at| *at < Duration::from_secs(1)));

    let started = Instant::now();
    case.plan_json("docker.io/traefik/whoami");
    assert!(started.elapsed() < FAST);
    let until = case.hub.limited_until().unwrap();
    let manifests: Vec<_> = case
        .hub
        .seen()
        .into_iter()
        .filter(|r| r.host == REGISTRY && r.target.contains("/manifests/"))
        .filter(|r| r.authorization.is_some())
        .collect();
    let early = manifests.iter().filter(|r| r.at < until).count();
    assert_eq!(
        early, 1,
        "only the first request inside the window: {manifests:#?}"
    );
    assert!(manifests.len() >= 2);
}

#[test]
fn a_retry_after_past_the_deadline_fails_at_once() {
    if !root() {
        return;
    }
    for (retry_after, shown) in [
        ("3600", "asks to wait 3600s"),
        ("Fri, 31 Dec 2100 23:59:59 GMT", "asks to wait"),
    ] {
        let case = start();
        case.hub.rate_limit(retry_after, Duration::from_secs(3600));
        let started = Instant::now();
        case.plan("docker.io/traefik/whoami")
            .fails(1, &format!("{REGISTRY} answered HTTP 429 and"))
            .stderr_has(shown)
            .stderr_has("past the 120s the launcher gives a registry; giving up now");
        assert!(started.elapsed() < FAST, "{retry_after}");
        let tries = case
            .hub
            .seen()
            .into_iter()
            .filter(|r| r.host == REGISTRY && r.authorization.is_some())
            .count();
        assert_eq!(tries, 1, "{retry_after}");
    }
}

#[test]
fn a_redirect_to_plain_http_is_refused() {
    if !root() {
        return;
    }
    let case = start();
    case.hub.route(Route::PlainHttp, false);
    // ureq on its own follows an https -> http redirect (ureq 2's unit.rs keeps following any
    // Location; ureq 3 too: ureq-proto 0.7.1 `client/redirect.rs` `as_new_call` takes any
    // scheme), so a naive client fetches the blob in the clear.
    let naive_reply = naive(&case.hub, 5)
        .get(&blob_url(&case))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert!(naive_reply.get_uri().to_string().starts_with("http://"));
    assert!(case.hub.seen().iter().any(|r| !r.tls));
    let before = case.hub.seen().len();

    case.plan("docker.io/traefik/whoami")
        .fails(
            1,
            "refusing the redirect from https://registry-1.docker.io/v2/traefik/whoami/blobs/",
        )
        .stderr_has(&format!("to http://{STORAGE}/hop/1/"))
        .stderr_has("it leads to plain HTTP");
    assert!(case.hub.seen().split_off(before).iter().all(|r| r.tls));
}

#[test]
fn a_fourth_redirect_is_refused() {
    if !root() {
        return;
    }
    let case = start();
    case.hub.route(Route::Hops(3), false);
    case.plan_json("traefik/whoami");
    case.hub.route(Route::Hops(4), false);
    // A naive client with ureq's usual limit follows all four.
    let naive_reply = naive(&case.hub, 10)
        .get(&blob_url(&case))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(naive_reply.status(), 200);
    let before = case.hub.seen().len();

    case.plan("traefik/whoami")
        .fails(1, "https://registry-1.docker.io/v2/traefik/whoami/blobs/")
        .stderr_has("redirected more than 3 times; refusing to follow further");
    let hops: Vec<_> = case
        .hub
        .seen()
        .split_off(before)
        .into_iter()
        .filter(|r| r.host == STORAGE)
        .collect();
    // Three redirects followed per attempt: storage saw hops 4, 3 and 2, never the content.
    assert!(
        hops.iter().all(|r| !r.target.starts_with("/hop/1/")),
        "{hops:#?}"
    );
}
