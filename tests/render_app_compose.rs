//! `examples/dstack/render-app-compose.py` takes `--help`, `--check` and example names
//! without rewriting anything it was not asked to. The old script ignored its arguments and
//! rewrote every app-compose.json on any call, `--help` included — and app-compose.json is
//! what dstack measures (its SHA-256 is the compose-hash), so a stray rewrite changes the
//! attested identity. Runs the real script with python3 (on CI machines) against the
//! repository's examples and against a scratch copy with a stale file.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/dstack");
const SCRIPT: &str = "render-app-compose.py";
const NAMES: [&str; 4] = ["git-mode", "git-mode-next", "image-mode", "near-migration"];

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(dir.join(SCRIPT))
        .args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 on PATH")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch copy of the script and the examples' compose files, with `stale` app-compose
/// files holding something else.
fn scratch(stale: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(Path::new(EXAMPLES).join(SCRIPT), dir.path().join(SCRIPT)).unwrap();
    for name in NAMES {
        let from = Path::new(EXAMPLES).join(name);
        let to = dir.path().join(name);
        fs::create_dir(&to).unwrap();
        for file in ["docker-compose.yaml", "app-compose.json"] {
            fs::copy(from.join(file), to.join(file)).unwrap();
        }
        if stale.contains(&name) {
            fs::write(to.join("app-compose.json"), "{\"stale\": true}\n").unwrap();
        }
    }
    dir
}

/// On the repository's own examples: `--help` prints usage and exits 0, `--check` exits 0
/// (they are fresh), and neither changes a byte.
#[test]
fn help_and_check_touch_nothing_in_the_repository() {
    let before = snapshot(Path::new(EXAMPLES));
    let help = run(Path::new(EXAMPLES), &["--help"]);
    assert!(help.status.success(), "{}", text(&help.stderr));
    assert!(
        text(&help.stdout)
            .starts_with("usage: render-app-compose.py [-h] [--check] [EXAMPLE_DIR ...]"),
        "{}",
        text(&help.stdout)
    );
    let check = run(Path::new(EXAMPLES), &["--check"]);
    assert!(
        check.status.success(),
        "the examples are stale: {}",
        text(&check.stderr)
    );
    assert_eq!(snapshot(Path::new(EXAMPLES)), before);
}

/// With a stale file: `--help`, `--check`, a bad option and an unknown example leave it as
/// it is (`--check` names it and exits 1); only a plain run, which is what the old script did
/// whatever its arguments, rewrites it — and then `--check` passes.
#[test]
fn a_stale_file_is_reported_not_rewritten() {
    let dir = scratch(&["image-mode"]);
    let before = snapshot(dir.path());
    for (args, code, stderr) in [
        (&["--help"][..], 0, ""),
        (&["--check"], 1, "image-mode/app-compose.json is stale"),
        (&["--check", "git-mode"], 0, ""),
        (
            &["--check", "image-mode"],
            1,
            "image-mode/app-compose.json is stale",
        ),
        (&["--bogus"], 2, "unrecognized arguments: --bogus"),
        (&["nope"], 2, "'nope' is not an example"),
        (
            &["/elsewhere/image-mode"],
            2,
            "is not the example directory beside",
        ),
    ] {
        let out = run(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(stderr),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(snapshot(dir.path()), before, "{args:?} changed a file");
    }

    // Naming one example rewrites that one only.
    let other = scratch(&["image-mode", "git-mode"]);
    let out = run(other.path(), &["image-mode"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fs::read(other.path().join("image-mode/app-compose.json")).unwrap(),
        fs::read(Path::new(EXAMPLES).join("image-mode/app-compose.json")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(other.path().join("git-mode/app-compose.json")).unwrap(),
        "{\"stale\": true}\n"
    );

    // No arguments: every example, as tests/examples.rs and the release workflow expect.
    let out = run(dir.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "wrote image-mode/app-compose.json\n");
    for name in NAMES {
        assert_eq!(
            fs::read(dir.path().join(name).join("app-compose.json")).unwrap(),
            fs::read(Path::new(EXAMPLES).join(name).join("app-compose.json")).unwrap(),
            "{name}"
        );
    }
    assert!(run(dir.path(), &["--check"]).status.success());
}
