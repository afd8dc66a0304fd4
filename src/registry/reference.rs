//! An image reference without tag or digest: `registry[:port]/repository`.

use std::fmt;

/// Docker Hub's API host, for references without a registry part.
const DOCKER_HUB: &str = "registry-1.docker.io";

/// `registry/repository`, validated; the digest comes from the approved list, never a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference {
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
        let first_is_registry = !first.is_empty()
            && (first.contains('.') || first.contains(':') || first == "localhost");
        let (registry, repository) = if first_is_registry {
            (first.to_owned(), rest.to_owned())
        } else if text.contains('/') {
            (DOCKER_HUB.to_owned(), text.to_owned())
        } else {
            (DOCKER_HUB.to_owned(), format!("library/{text}"))
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

    /// The name Docker uses for this repository (and shows in `RepoDigests`): Docker Hub
    /// images without the registry, official ones without `library/`.
    #[must_use]
    pub fn docker_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The server name for `docker login`: Docker files Hub credentials under `docker.io`,
    /// not under the API host, and looks them up there when pulling.
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
            ("nearone/mpc-node", DOCKER_HUB, "nearone/mpc-node"),
            ("ubuntu", DOCKER_HUB, "library/ubuntu"),
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

    #[test]
    fn login_servers() {
        assert_eq!(
            ImageReference::parse("org/app").unwrap().login_server(),
            "docker.io"
        );
        assert_eq!(
            ImageReference::parse("ghcr.io/o/a").unwrap().login_server(),
            "ghcr.io"
        );
    }

    #[test]
    fn docker_names() {
        assert_eq!(
            ImageReference::parse("ubuntu").unwrap().docker_name(),
            "ubuntu"
        );
        assert_eq!(
            ImageReference::parse("nearone/mpc-node")
                .unwrap()
                .docker_name(),
            "nearone/mpc-node"
        );
        assert_eq!(
            ImageReference::parse("ghcr.io/o/a").unwrap().docker_name(),
            "ghcr.io/o/a"
        );
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
                "ghcr.io/a//b",
                "repository must be lowercase letters, digits and . _ - separated by /",
            ),
            (
                "ev il.io/app",
                "registry host has characters a host cannot have",
            ),
        ] {
            assert_eq!(ImageReference::parse(text), Err(reason), "{text}");
        }
    }
}
