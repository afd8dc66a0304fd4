//! An image reference without tag or digest: `registry[:port]/repository`.
//!
//! Docker Hub goes by several names. Docker's own normalisation (distribution/reference,
//! `normalize.go` `splitDockerDomain`) reads a bare name as `docker.io/…`, maps
//! `index.docker.io` to `docker.io`, and puts one-component names under `library/`; the API
//! itself is served by `registry-1.docker.io` (`https://docker.io/v2/` only redirects to the
//! web site). Here `docker.io`, `index.docker.io`, `registry-1.docker.io` and bare names are
//! one registry, always reached at [`DOCKER_HUB`]; nothing is ever sent to `docker.io`.

use std::fmt;

/// Docker Hub's API host: where every request for a Hub image goes.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// The names a reference may give Docker Hub by (compared after lowercasing the host).
const HUB_NAMES: [&str; 3] = ["docker.io", "index.docker.io", DOCKER_HUB];

/// `registry/repository`, validated; the digest comes from the approved list, never a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
    /// The host (and port) requests go to, lowercase; [`DOCKER_HUB`] for any Hub name.
    registry: String,
    repository: String,
}

impl ImageReference {
    /// Parses `host[:port]/path` (or a Docker Hub name). Tags and digests are refused: the
    /// workload is chosen by digest through approval, never by a mutable name.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.contains('@') {
            return Err("must not carry a digest (set digest separately)");
        }
        let (first, rest) = text.split_once('/').unwrap_or(("", text));
        // Docker's rule: the first component is a registry when it has a dot or a port or is
        // `localhost` (Docker also takes one with an uppercase letter as a host; here that
        // is a Hub repository, refused below as not lowercase).
        let first_is_registry = !first.is_empty()
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let (registry, path) = if first_is_registry {
            (first.to_ascii_lowercase(), rest)
        } else {
            (DOCKER_HUB.to_owned(), text)
        };
        let host = registry
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(registry.as_str(), |(host, _)| host);
        if host != registry && HUB_NAMES.contains(&host) {
            return Err(
                "Docker Hub is named without a port (docker.io, index.docker.io or registry-1.docker.io)",
            );
        }
        let hub = HUB_NAMES.contains(&registry.as_str());
        let registry = if hub { DOCKER_HUB.to_owned() } else { registry };
        let repository = if hub && !path.is_empty() && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        if repository.contains(':') {
            return Err("must not carry a tag (images are chosen by digest)");
        }
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_alphanumeric())
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err("repository must be lowercase letters, digits and . _ - separated by /");
        }
        // Docker Hub namespaces are lowercase letters and digits; one that looks like a host
        // would be read as a registry in Docker's short spelling (`docker.io/a.b/c` is
        // written `a.b/c`), so compose would pull from somewhere else than was resolved.
        let first = repository.split('/').next().unwrap_or_default();
        if hub && (first.contains('.') || first == "localhost") {
            return Err(
                "a Docker Hub namespace cannot look like a registry host (Docker would read it as one)",
            );
        }
        let valid_host = registry
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ".-:[]".contains(ch));
        if !valid_host {
            return Err("registry host has characters a host cannot have");
        }
        Ok(Self {
            registry,
            repository,
        })
    }

    #[must_use]
    pub fn registry(&self) -> &str {
        &self.registry
    }

    #[must_use]
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The name Docker uses for this repository, in pulls, `RepoDigests` and the compose
    /// file: Docker Hub images without the registry, official ones without `library/`
    /// (`nginx`, `traefik/whoami`), as Docker's `FamiliarName` spells them. `library/` stays
    /// on a nested path (`library/a/b`): without it, Docker reads `a/b` as user `a`'s
    /// repository (distribution/reference, `familiarizeName`: the prefix goes only when the
    /// rest has no `/`).
    #[must_use]
    pub fn docker_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|official| !official.contains('/'))
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The server name for `docker login`: `docker.io` for Hub. The docker CLI takes
    /// `docker.io` as Hub and files the credentials under Hub's key
    /// (`https://index.docker.io/v1/`), where a pull of a Hub image looks them up; a login
    /// to the API host would be filed under that host and never used by the pull.
    #[must_use]
    pub fn login_server(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "docker.io"
        } else {
            &self.registry
        }
    }

    /// Whether the registry is this machine: plain HTTP is allowed only there.
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(self.registry.as_str(), |(host, _)| host);
        host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_table() {
        for (text, registry, repository) in [
            ("ghcr.io/org/app", "ghcr.io", "org/app"),
            ("127.0.0.1:5000/e2e/marker", "127.0.0.1:5000", "e2e/marker"),
            ("localhost/app", "localhost", "app"),
            ("GHCR.io/org/app", "ghcr.io", "org/app"),
            // Every spelling of Docker Hub is its API host; one component goes under library/.
            ("nearone/mpc-node", DOCKER_HUB, "nearone/mpc-node"),
            ("ubuntu", DOCKER_HUB, "library/ubuntu"),
            ("docker.io/traefik/whoami", DOCKER_HUB, "traefik/whoami"),
            ("docker.io/nginx", DOCKER_HUB, "library/nginx"),
            ("docker.io/library/nginx", DOCKER_HUB, "library/nginx"),
            (
                "index.docker.io/traefik/whoami",
                DOCKER_HUB,
                "traefik/whoami",
            ),
            ("index.docker.io/nginx", DOCKER_HUB, "library/nginx"),
            (
                "registry-1.docker.io/traefik/whoami",
                DOCKER_HUB,
                "traefik/whoami",
            ),
            ("registry-1.docker.io/nginx", DOCKER_HUB, "library/nginx"),
            ("Docker.IO/nginx", DOCKER_HUB, "library/nginx"),
            ("docker.io/a/b/c", DOCKER_HUB, "a/b/c"),
        ] {
            let parsed = ImageReference::parse(text).unwrap();
            assert_eq!(
                (parsed.registry(), parsed.repository()),
                (registry, repository),
                "{text}"
            );
        }
        assert!(
            ImageReference::parse("127.0.0.1:5000/x")
                .unwrap()
                .is_loopback()
        );
        assert!(
            ImageReference::parse("localhost:5000/x")
                .unwrap()
                .is_loopback()
        );
        assert!(!ImageReference::parse("ghcr.io/x").unwrap().is_loopback());
        assert!(
            !ImageReference::parse("127.0.0.1.evil.com/x")
                .unwrap()
                .is_loopback()
        );
    }

    /// Docker's spellings: what `docker login`, `docker pull`, `RepoDigests` and the compose
    /// file use, for every way of writing the same Hub image.
    #[test]
    fn docker_spellings() {
        for (text, docker_name, login_server, display) in [
            (
                "ubuntu",
                "ubuntu",
                "docker.io",
                "registry-1.docker.io/library/ubuntu",
            ),
            (
                "docker.io/nginx",
                "nginx",
                "docker.io",
                "registry-1.docker.io/library/nginx",
            ),
            (
                "docker.io/library/nginx",
                "nginx",
                "docker.io",
                "registry-1.docker.io/library/nginx",
            ),
            (
                "index.docker.io/nginx",
                "nginx",
                "docker.io",
                "registry-1.docker.io/library/nginx",
            ),
            (
                "registry-1.docker.io/library/nginx",
                "nginx",
                "docker.io",
                "registry-1.docker.io/library/nginx",
            ),
            (
                "docker.io/traefik/whoami",
                "traefik/whoami",
                "docker.io",
                "registry-1.docker.io/traefik/whoami",
            ),
            (
                "index.docker.io/traefik/whoami",
                "traefik/whoami",
                "docker.io",
                "registry-1.docker.io/traefik/whoami",
            ),
            (
                "registry-1.docker.io/traefik/whoami",
                "traefik/whoami",
                "docker.io",
                "registry-1.docker.io/traefik/whoami",
            ),
            (
                "nearone/mpc-node",
                "nearone/mpc-node",
                "docker.io",
                "registry-1.docker.io/nearone/mpc-node",
            ),
            ("ghcr.io/o/a", "ghcr.io/o/a", "ghcr.io", "ghcr.io/o/a"),
            (
                "ghcr.io/library/a",
                "ghcr.io/library/a",
                "ghcr.io",
                "ghcr.io/library/a",
            ),
            (
                "127.0.0.1:5000/a",
                "127.0.0.1:5000/a",
                "127.0.0.1:5000",
                "127.0.0.1:5000/a",
            ),
        ] {
            let parsed = ImageReference::parse(text).unwrap();
            assert_eq!(parsed.docker_name(), docker_name, "{text}");
            assert_eq!(parsed.login_server(), login_server, "{text}");
            assert_eq!(parsed.to_string(), display, "{text}");
        }
    }

    #[test]
    fn reject_table() {
        for (text, reason) in [
            (
                "ghcr.io/org/app:latest",
                "must not carry a tag (images are chosen by digest)",
            ),
            (
                "ubuntu:22.04",
                "must not carry a tag (images are chosen by digest)",
            ),
            (
                "docker.io/nginx:latest",
                "must not carry a tag (images are chosen by digest)",
            ),
            (
                "ghcr.io/org/app@sha256:00",
                "must not carry a digest (set digest separately)",
            ),
            (
                "ghcr.io/Org/App",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "ghcr.io/",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "docker.io/",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "ghcr.io/a//b",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "Org/app",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "ev il.io/app",
                "registry host has characters a host cannot have",
            ),
            // With a port these would be other hosts, and docker.io:443 is docker.io itself.
            (
                "docker.io:443/nginx",
                "Docker Hub is named without a port (docker.io, index.docker.io or registry-1.docker.io)",
            ),
            (
                "registry-1.docker.io:443/library/nginx",
                "Docker Hub is named without a port (docker.io, index.docker.io or registry-1.docker.io)",
            ),
            (
                "index.docker.io:5000/x/y",
                "Docker Hub is named without a port (docker.io, index.docker.io or registry-1.docker.io)",
            ),
        ] {
            assert_eq!(ImageReference::parse(text), Err(reason), "{text}");
        }
    }
}
