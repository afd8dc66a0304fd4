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
