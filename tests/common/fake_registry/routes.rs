//! Routing of `/v2/` requests: manifests by digest or tag (with the hostile modes), blobs,
//! and index rewriting by `Accept`.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::auth::{challenge, token};
use super::content::Blob;
use super::reply::{Reply, write_oversized, write_reply, write_trickle};
use super::request::Request;
use super::{DOCKER_LIST, Mode, OCI_INDEX, REPOSITORY, SLOW_REPLY_AFTER, Shared};

pub(super) fn handle(stream: &mut TcpStream, request: &Request, shared: &Shared) {
    let head_only = request.method == "HEAD";
    let path = request.path().to_owned();
    if request.is_token() {
        return write_reply(stream, &token(request, shared), head_only);
    }
    if !(path == "/v2" || path.starts_with("/v2/")) {
        return write_reply(
            stream,
            &Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            head_only,
        );
    }
    let rest = path.trim_start_matches("/v2").trim_start_matches('/');
    let (name, kind, reference) = if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        (name, "manifests", reference)
    } else if let Some((name, reference)) = rest.rsplit_once("/blobs/") {
        (name, "blobs", reference)
    } else if let Some((name, reference)) = rest.rsplit_once("/referrers/") {
        (name, "referrers", reference)
    } else {
        ("", "", rest)
    };
    if let Some(reply) = challenge(request, shared, (!name.is_empty()).then_some(name)) {
        return write_reply(stream, &reply, head_only);
    }
    if rest.is_empty() {
        return write_reply(stream, &Reply::json("200 OK", &json!({})), head_only);
    }
    if name != REPOSITORY {
        return write_reply(
            stream,
            &Reply::error(
                "404 Not Found",
                "NAME_UNKNOWN",
                "repository name not known to registry",
                name,
            ),
            head_only,
        );
    }
    match kind {
        "manifests" => manifest(stream, request, reference, shared),
        "blobs" => {
            let blob = shared.state().blobs.get(reference).cloned();
            let reply = match blob {
                Some(blob) => Reply {
                    status: "200 OK",
                    headers: vec![
                        ("Content-Type", "application/octet-stream".to_owned()),
                        ("Docker-Content-Digest", blob.digest()),
                    ],
                    body: blob.bytes,
                },
                None => Reply::error("404 Not Found", "BLOB_UNKNOWN", "blob unknown", reference),
            };
            write_reply(stream, &reply, head_only);
        }
        // OCI distribution 1.1's referrers API: an index, 200 even when empty; served only
        // for subjects given to `push_referrers` (else 404, as a registry without the API).
        "referrers" => {
            let index = shared
                .state()
                .manifests
                .get(&format!("referrers/{reference}"))
                .cloned();
            let reply = match index {
                Some(index) => Reply {
                    status: "200 OK",
                    headers: vec![("Content-Type", index.media_type.clone())],
                    body: index.bytes,
                },
                None => Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            };
            write_reply(stream, &reply, head_only);
        }
        _ => write_reply(
            stream,
            &Reply::error("404 Not Found", "NOT_FOUND", "no such endpoint", &path),
            head_only,
        ),
    }
}

pub(super) fn manifest(
    stream: &mut TcpStream,
    request: &Request,
    reference: &str,
    shared: &Shared,
) {
    let head_only = request.method == "HEAD";
    let (mode, hits, stored) = {
        let mut state = shared.state();
        state.manifest_hits += 1;
        (
            state.mode.clone(),
            state.manifest_hits,
            state.manifests.get(reference).cloned(),
        )
    };
    let not_found = || {
        Reply::error(
            "404 Not Found",
            "MANIFEST_UNKNOWN",
            "manifest unknown",
            reference,
        )
    };
    match mode {
        Mode::Slow => {
            let until = Instant::now() + SLOW_REPLY_AFTER;
            while Instant::now() < until {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        Mode::Flaky(n) if hits <= n => {
            let reply = Reply::error(
                "503 Service Unavailable",
                "UNAVAILABLE",
                "service unavailable",
                "",
            );
            return write_reply(stream, &reply, head_only);
        }
        Mode::NotFound => return write_reply(stream, &not_found(), head_only),
        _ => {}
    }
    let Some(mut blob) = stored else {
        return write_reply(stream, &not_found(), head_only);
    };
    let accepted = request.accept_types();
    let accepts = |t: &str| accepted.iter().any(|a| a == t || a == "*/*");
    if mode == Mode::RewriteToPlatform && is_index(&blob.media_type) && !accepts(&blob.media_type) {
        match linux_amd64_of(&blob, shared) {
            Some(platform) => blob = platform,
            None => return write_reply(stream, &not_found(), head_only),
        }
    } else if !accepted.is_empty() && !accepts(&blob.media_type) {
        // As distribution: "OCI index found, but accept header does not support OCI indexes".
        return write_reply(stream, &not_found(), head_only);
    }
    let digest = blob.digest();
    let body = match &mode {
        Mode::WrongBody => tamper(&blob.bytes),
        Mode::WrongBodyFor(target) if target == reference => tamper(&blob.bytes),
        _ => blob.bytes.clone(),
    };
    let claimed = if body == blob.bytes {
        digest
    } else {
        // The lie a hostile registry tells: the header names what the client asked for.
        reference.to_owned()
    };
    let headers = vec![
        ("Content-Type", blob.media_type.clone()),
        ("Docker-Content-Digest", claimed),
        ("Docker-Distribution-Api-Version", "registry/2.0".to_owned()),
    ];
    match mode {
        Mode::Oversized => write_oversized(stream, &headers, &body, head_only, &shared.stop),
        Mode::Trickle => write_trickle(stream, &headers, &body, &shared.stop),
        _ => write_reply(
            stream,
            &Reply {
                status: "200 OK",
                headers,
                body,
            },
            head_only,
        ),
    }
}

pub(super) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The stored linux/amd64 manifest an index lists.
pub(super) fn linux_amd64_of(index: &Blob, shared: &Shared) -> Option<Blob> {
    let document: Value = serde_json::from_slice(&index.bytes).ok()?;
    let digest =
        document["manifests"]
            .as_array()?
            .iter()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")?
            ["digest"]
            .as_str()?
            .to_owned();
    shared.state().manifests.get(&digest).cloned()
}

/// Different, still valid JSON: the same document with one more annotation.
pub(super) fn tamper(bytes: &[u8]) -> Vec<u8> {
    let mut document: Value = serde_json::from_slice(bytes).unwrap();
    document["annotations"] = json!({"org.example.tampered": "true"});
    serde_json::to_vec(&document).unwrap()
}
