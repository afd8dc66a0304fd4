//! A recording `docker` CLI for image-mode tests, handed to the launcher with `--docker`.
//! Each test chooses what its `image inspect` answers.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use super::Fixture;

/// A fake docker CLI: records every call, answers `image inspect` from `inspect.json`,
/// and `compose ... up` by printing its arguments and the compose file it was given.
pub struct FakeDocker {
    pub script: PathBuf,
    calls: PathBuf,
    inspect: PathBuf,
}

impl FakeDocker {
    #[must_use]
    pub fn new(fx: &Fixture) -> Self {
        let script = fx.path().join("docker");
        let calls = fx.path().join("docker-calls.log");
        let inspect = fx.path().join("inspect.json");
        fs::write(
            &script,
            format!(
                r#"#!/bin/bash
echo "$*" >> {calls}
case "$1" in
  login) cat > /dev/null; exit 0 ;;
  pull) [ -e {pull_fail} ] && {{ echo "pull denied" >&2; exit 1; }}; exit 0 ;;
  image) cat {inspect} ;;
  compose)
    [ "$2" = version ] && {{ echo "Docker Compose version v2.fake"; exit 0; }}
    file=""; prev=""
    for a in "$@"; do [ "$prev" = "--file" ] && file=$a; prev=$a; done
    echo "COMPOSE-UP $*"; cat "$file"; exit 0 ;;
  *) exit 3 ;;
esac
"#,
                calls = calls.display(),
                inspect = inspect.display(),
                // A file, not a variable: docker runs with a cleared environment.
                pull_fail = fx.path().join("pull-fail").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        Self {
            script,
            calls,
            inspect,
        }
    }

    pub fn answer_inspect(&self, repo_digest: &str, id: &str) {
        fs::write(
            &self.inspect,
            format!(r#"{{"Id":"{id}","RepoDigests":["{repo_digest}"],"Os":"linux"}}"#),
        )
        .unwrap();
    }

    #[must_use]
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}
