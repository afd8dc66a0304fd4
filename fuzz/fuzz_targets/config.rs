//! Config files (TOML, git-launcher's `KEY=VALUE` lines, NEAR's user config): every format,
//! detected and explicit, through `config::parse_bytes`, the parser `config::load` runs.
//! Invariants: the measured hash is the hash of the exact bytes; refusals name the file on
//! every line; the same bytes always give the same answer.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use trusted_launcher::config::{ConfigFormat, parse_bytes};
use trusted_launcher::digest::Sha256Digest;

/// NEAR's launcher reads `DEFAULT_IMAGE_DIGEST` from its environment (compose file).
fn env(name: &str) -> Option<String> {
    (name == "DEFAULT_IMAGE_DIGEST").then(|| format!("sha256:{}", "ab".repeat(32)))
}

fuzz_target!(|bytes: &[u8]| {
    for (path, format) in [
        ("launcher.conf", None),
        ("config.toml", None),
        ("user_config", Some(ConfigFormat::Line)),
        ("user_config", Some(ConfigFormat::Toml)),
        ("user_config", Some(ConfigFormat::Near)),
    ] {
        let path = Path::new(path);
        let first = parse_bytes(path, bytes, format, &env);
        match &first {
            Ok(config) => {
                assert_eq!(config.sha256, Sha256Digest::of(bytes), "config hash");
                if let Some(format) = format {
                    assert_eq!(config.format, format, "explicit format ignored");
                }
            }
            Err(error) => {
                let lines = error.lines();
                assert!(!lines.is_empty(), "a refusal without a message");
                for line in &lines {
                    assert!(line.contains(path.to_str().unwrap_or_default()), "{line}");
                    assert!(!line.contains('\n'), "multi-line message {line:?}");
                }
            }
        }
        let second = parse_bytes(path, bytes, format, &env);
        assert_eq!(
            format!("{first:?}"),
            format!("{second:?}"),
            "not deterministic"
        );
    }
});
