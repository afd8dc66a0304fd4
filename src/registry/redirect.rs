//! Where a registry's redirect may lead. Docker Hub, ghcr.io, ECR and GCR answer blob (and
//! sometimes manifest) downloads with a redirect to object storage on another host; the
//! client follows it itself (ureq's own following is off) so that only the registry's own
//! origin ever gets the registry's credentials, plain HTTP is never reached from HTTPS, and
//! the number of hops is bounded. Whatever comes back is still checked against its digest.

/// Redirects followed for one download; the next one is refused.
pub const MAX_REDIRECTS: usize = 3;

/// The statuses that are redirects to follow for a GET (RFC 9110 §15.4).
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// `scheme://authority`, lowercased: what decides whether a URL is the registry itself.
#[must_use]
pub fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}").to_ascii_lowercase())
}

/// The URL a redirect from `current` to `location` leads to, or why it must not be
/// followed. `plain_http` is whether the registry itself is plain-HTTP loopback; only then
/// may a redirect lead to plain HTTP, and only to this machine.
pub fn next_url(current: &str, location: &str, plain_http: bool) -> Result<String, &'static str> {
    let location = location.split('#').next().unwrap_or_default();
    if location.is_empty()
        || location
            .chars()
            .any(|c| c.is_ascii_control() || c.is_whitespace())
    {
        return Err("the location is not a URL");
    }
    let scheme = current.split_once("://").map_or("", |(s, _)| s);
    let target = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!(
            "{}{location}",
            origin(current).ok_or("the location is not a URL")?
        )
    } else if location.contains("://") {
        location.to_owned()
    } else {
        // Relative to the current path's directory.
        let path = current.split(['?', '#']).next().unwrap_or_default();
        let directory = path.rsplit_once('/').map_or(path, |(d, _)| d);
        format!("{directory}/{location}")
    };
    let (target_scheme, rest) = target
        .split_once("://")
        .ok_or("the location is not a URL")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("the location carries user info");
    }
    let host = host_of(authority);
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-[]:".contains(c))
    {
        return Err("the location has no valid host");
    }
    match target_scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(target),
        "http" if plain_http && is_loopback(host) => Ok(target),
        "http" => Err(
            "it leads to plain HTTP (allowed only from a plain-HTTP loopback registry to this machine)",
        ),
        _ => Err("only https locations are followed"),
    }
}

/// The host of `host[:port]` (an IPv6 literal keeps its brackets).
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `url` without its query: signed storage URLs carry short-lived signatures there, which
/// have no place in an error message.
#[must_use]
pub fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOB: &str = "https://registry-1.docker.io/v2/library/nginx/blobs/sha256:ab";

    #[test]
    fn accept_table() {
        for (current, location, plain, expected) in [
            (
                BLOB,
                "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/ab/data?verify=1",
                false,
                "https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/ab/data?verify=1",
            ),
            (BLOB, "//storage.test/x", false, "https://storage.test/x"),
            (
                BLOB,
                "/v2/other",
                false,
                "https://registry-1.docker.io/v2/other",
            ),
            (
                BLOB,
                "data#frag",
                false,
                "https://registry-1.docker.io/v2/library/nginx/blobs/data",
            ),
            (
                BLOB,
                "HTTPS://Storage.Test:8443/x",
                false,
                "HTTPS://Storage.Test:8443/x",
            ),
            (
                "http://127.0.0.1:5000/v2/a/blobs/sha256:ab",
                "http://127.0.0.1:6000/data",
                true,
                "http://127.0.0.1:6000/data",
            ),
            (
                "http://localhost:5000/v2/a/blobs/sha256:ab",
                "/data",
                true,
                "http://localhost:5000/data",
            ),
        ] {
            assert_eq!(
                next_url(current, location, plain),
                Ok(expected.to_owned()),
                "{location}"
            );
        }
    }

    #[test]
    fn reject_table() {
        let plain = "it leads to plain HTTP (allowed only from a plain-HTTP loopback registry to this machine)";
        for (current, location, allow_plain, reason) in [
            (BLOB, "http://storage.test/x", false, plain),
            (BLOB, "http://127.0.0.1/x", false, plain),
            (BLOB, "", false, "the location is not a URL"),
            (
                "http://127.0.0.1:5000/v2/a",
                "http://storage.test/x",
                true,
                plain,
            ),
            (
                BLOB,
                "ftp://storage.test/x",
                false,
                "only https locations are followed",
            ),
            (
                BLOB,
                "file:///etc/passwd",
                false,
                "the location has no valid host",
            ),
            (
                BLOB,
                "https://user:pw@storage.test/x",
                false,
                "the location carries user info",
            ),
            (
                BLOB,
                "https://storage.test/a b",
                false,
                "the location is not a URL",
            ),
            (
                BLOB,
                "https://sto\rrage.test/",
                false,
                "the location is not a URL",
            ),
            (BLOB, "https:///x", false, "the location has no valid host"),
            (
                BLOB,
                "https://ev%il.test/x",
                false,
                "the location has no valid host",
            ),
        ] {
            assert_eq!(
                next_url(current, location, allow_plain),
                Err(reason),
                "{location}"
            );
        }
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://Registry-1.docker.io/v2/x?y").as_deref(),
            Some("https://registry-1.docker.io")
        );
        assert_eq!(
            origin("http://127.0.0.1:5000").as_deref(),
            Some("http://127.0.0.1:5000")
        );
        assert_eq!(origin("nonsense"), None);
        assert_eq!(
            without_query("https://s.test/a?sig=secret"),
            "https://s.test/a"
        );
    }
}
