//! Image references (`[registry/]repository`, Docker Hub's short names) through
//! `ImageReference::parse`, and platforms through `Platform::parse`, as the config reads
//! them (NEAR's user config takes them from an untrusted-shaped file). Invariants: Docker's
//! name for a reference, and its `registry/repository`, parse back to the same reference; a
//! platform written back parses to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::registry::{ImageReference, Platform};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(reference) = ImageReference::parse(text) {
        assert!(!reference.repository().is_empty());
        let docker = reference.docker_name();
        let again = ImageReference::parse(&docker)
            .unwrap_or_else(|e| panic!("docker name {docker:?} refused: {e}"));
        assert_eq!(again, reference, "docker name {docker:?}");
        let full = format!("{}/{}", reference.registry(), reference.repository());
        let again = ImageReference::parse(&full)
            .unwrap_or_else(|e| panic!("full name {full:?} refused: {e}"));
        assert_eq!(again, reference, "full name {full:?}");
        let _ = (reference.login_server(), reference.is_loopback());
    }
    if let Ok(platform) = Platform::parse(text) {
        assert_eq!(Platform::parse(&platform.to_string()), Ok(platform));
    }
});
