//! Registry manifests, indexes / manifest lists and image config blobs: `manifest::parse`
//! (with each media type the client accepts, or none) and `manifest::config_platform`, as the
//! registry client reads them. Invariants: a digest picked from an index or named as a
//! config is written in the body; an index's pick is for the platform asked for; a config
//! matches the platform it reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::registry::Platform;
use trusted_launcher::registry::manifest::{
    self, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Parsed,
};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    for platform in ["linux/amd64", "linux/arm64/v8", "linux/arm"] {
        let platform = Platform::parse(platform).expect("platform");
        for content_type in [
            None,
            Some(OCI_INDEX),
            Some(OCI_MANIFEST),
            Some(DOCKER_LIST),
            Some(DOCKER_MANIFEST),
        ] {
            let digest = match manifest::parse(bytes, content_type, &platform) {
                Ok(Parsed::Index {
                    platform_manifest: Some(digest),
                }) => digest,
                Ok(Parsed::Manifest { config }) => config,
                _ => continue,
            };
            // JSON may escape the digest's characters; the plain spelling is the common one.
            let hex = digest.to_string();
            let hex = &hex["sha256:".len()..];
            if !text.contains('\\') {
                assert!(text.contains(hex), "digest {digest} is not in the body");
            }
        }
        if let Ok((matches, actual)) = manifest::config_platform(bytes, &platform) {
            let reported = Platform::parse(&actual);
            if let (true, Ok(reported)) = (matches, reported) {
                assert_eq!(reported.os, platform.os);
                assert_eq!(reported.architecture, platform.architecture);
            }
        }
    }
});
