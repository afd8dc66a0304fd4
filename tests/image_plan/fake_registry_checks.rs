//! The fake registry itself: what it does to a naive client, checked with raw HTTP.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::fake_registry::{
    ACCEPT_TYPES, Auth, FakeRegistry, Flavor, Image, Mode, MultiArch, REPOSITORY, SERVICE,
    sha256_digest,
};

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
