//! What the fuzz targets in fuzz/ found, kept: each reproducer goes through the same entry
//! point its target feeds (and stays in fuzz/seeds/<target>/, so every fuzz run replays it).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use trusted_launcher::registry::ImageReference;

/// `image_reference` found it: a Docker Hub repository nested under `library/` lost the
/// prefix in Docker's spelling, and Docker reads `calh/ostry/nginx` as user `calh`'s
/// repository (distribution/reference `familiarizeName` keeps `library/` when the rest has a
/// `/`): the launcher resolved the digest in one repository and had compose pull it from
/// another (fuzz/seeds/image_reference/crash-nested-library).
#[test]
fn nested_library_repository_keeps_its_namespace_in_dockers_spelling() {
    let reproducer = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/image_reference/crash-nested-library"
    ))
    .unwrap();
    let text = std::str::from_utf8(&reproducer).unwrap();
    assert_eq!(text, "library/calh/ostry/nginx");
    let reference = ImageReference::parse(text).unwrap();
    assert_eq!(reference.registry(), "registry-1.docker.io");
    assert_eq!(reference.repository(), "library/calh/ostry/nginx");

    // The old spelling stripped `library/` whatever followed; read back, it names another
    // repository.
    let old = reference.repository().strip_prefix("library/").unwrap();
    let read_back = ImageReference::parse(old).unwrap();
    assert_eq!(read_back.repository(), "calh/ostry/nginx");
    assert_ne!(read_back, reference, "the old spelling's repository");

    // Now Docker's name is the same repository, and official images keep their short name.
    assert_eq!(reference.docker_name(), "library/calh/ostry/nginx");
    assert_eq!(
        ImageReference::parse(&reference.docker_name()).unwrap(),
        reference
    );
    assert_eq!(
        ImageReference::parse("library/nginx")
            .unwrap()
            .docker_name(),
        "nginx"
    );
}

/// `image_reference` found it: a Docker Hub namespace with a dot (`docker.io/library27.12i7..
/// 0.iieo/inx`) was accepted, and Docker's short spelling of it (`library27.12i7..0.iieo/inx`)
/// names a repository on the registry host `library27.12i7..0.iieo` (a first component with a
/// dot is a host: distribution/reference `splitDockerDomain`). Hub namespaces are letters and
/// digits only, so such a reference is now refused with a message
/// (fuzz/seeds/image_reference/crash-hub-namespace-like-a-host).
#[test]
fn hub_namespace_that_looks_like_a_host_is_refused() {
    let reproducer = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/image_reference/crash-hub-namespace-like-a-host"
    ))
    .unwrap();
    let text = std::str::from_utf8(&reproducer).unwrap();
    assert_eq!(text, "docker.io/library27.12i7..0.iieo/inx");

    // The old reading: a Hub repository, whose short name is then read as another registry.
    let path = text.strip_prefix("docker.io/").unwrap();
    let short_read_back = ImageReference::parse(path).unwrap();
    assert_eq!(short_read_back.registry(), "library27.12i7..0.iieo");
    assert_ne!(short_read_back.registry(), "registry-1.docker.io");

    let error = ImageReference::parse(text).unwrap_err();
    assert!(error.contains("Docker Hub namespace"), "{error}");
    for host_like in [
        "docker.io/evil.example/app",
        "index.docker.io/localhost/app",
    ] {
        assert!(ImageReference::parse(host_like).is_err(), "{host_like}");
    }
    // Ordinary Hub names are unchanged.
    for fine in [
        "docker.io/traefik/whoami",
        "nginx",
        "docker.io/library/nginx",
    ] {
        let reference = ImageReference::parse(fine).unwrap();
        assert_eq!(
            ImageReference::parse(&reference.docker_name()).unwrap(),
            reference
        );
    }
}
