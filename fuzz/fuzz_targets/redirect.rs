//! A registry redirect's `Location` through `redirect::next_url`, as the registry client
//! follows it. Invariants: a URL it follows is https (or plain http to loopback from a
//! plain-HTTP loopback registry), carries no user info, and is followed as itself when
//! given again as an absolute location.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::redirect;

fuzz_target!(|bytes: &[u8]| {
    let Ok(location) = std::str::from_utf8(bytes) else {
        return;
    };
    for (current, plain_http) in [
        (
            "https://registry.example/v2/team/app/blobs/sha256:00",
            false,
        ),
        (
            "http://127.0.0.1:5000/v2/team/app/manifests/sha256:00",
            true,
        ),
    ] {
        let Ok(next) = redirect(current, location, plain_http) else {
            continue;
        };
        let lower = next.to_ascii_lowercase();
        assert!(
            lower.starts_with("https://") || (plain_http && lower.starts_with("http://")),
            "{location:?} from {current} led to {next:?}"
        );
        let authority = next.split_once("://").map_or("", |(_, rest)| {
            rest.split(['/', '?']).next().unwrap_or_default()
        });
        assert!(!authority.contains('@'), "user info in {next:?}");
        assert_eq!(
            redirect(current, &next, plain_http).as_deref(),
            Ok(next.as_str())
        );
    }
});
