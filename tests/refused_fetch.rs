//! A server that refuses fetch-by-id (smart HTTP, protocol v0, no `uploadpack.allow*`):
//! the launcher fetches the advertised ref naming the commit, or the recent history of the
//! branches, shallow, before it falls back to everything. Each case first shows the server
//! refusing plain git's fetch by id, and what the old fallback (all branches and tags)
//! brings in, then that the launcher got the commit without it.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use common::{Fixture, Item, entry, git, git_command};

/// `git-http-backend` as a CGI program under Python's `http.server --cgi`. Python's CGI
/// handler passes no `Git-Protocol` header on (it sets only the `HTTP_*` variables it lists,
/// `CGIHTTPRequestHandler.run_cgi` in `CPython`'s `Lib/http/server.py`), so the backend speaks
/// protocol v0, where upload-pack refuses an unadvertised commit unless configured to allow
/// it (git-config(1), `uploadpack.allowReachableSHA1InWant`, default false).
struct SmartHttp {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    port: u16,
}

impl SmartHttp {
    fn serve(fx: &Fixture) -> Self {
        // Run as root, Python's CGI handler drops to `nobody` for the script (`run_cgi`):
        // it must be able to read the repository, owned by another uid.
        fs::set_permissions(fx.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = fx.path().join("http");
        let bin = root.join("cgi-bin");
        fs::create_dir_all(&bin).unwrap();
        let exec_path = git(fx.path(), &["--exec-path"]);
        let script = bin.join("git");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nexport GIT_PROJECT_ROOT='{}' GIT_HTTP_EXPORT_ALL=1 GIT_CONFIG_COUNT=1 \
                 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'\n\
                 exec '{exec_path}/git-http-backend'\n",
                fx.path().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--cgi",
                "0",
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for a smart HTTP server");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        // "Serving HTTP on 127.0.0.1 port 43117 (http://127.0.0.1:43117/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|word| *word != "port")
            .nth(1)
            .and_then(|p| p.parse().ok());
        let mut server = Self {
            child,
            _stdout: stdout,
            port: 0,
        };
        match (read, port) {
            (Ok(_), Some(port)) => server.port = port,
            _ => panic!("http.server did not announce a port: {line:?}"),
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/git/origin.git", self.port)
    }
}

impl Drop for SmartHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Random bytes (so no pack can shrink them), as a file's content.
fn noise(len: usize) -> String {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

/// History: an old commit holding a big file, `extra` empty commits, the target, `after`
/// more empty commits on `main`; and a tag on the old commit. Returns (target, old blob).
fn history(fx: &Fixture, extra: usize, after: usize) -> (String, String) {
    let big = noise(1 << 20);
    fx.commit(&[Item::File("big.bin", &big)]);
    let scratch = fx.path().join("scratch");
    let old_blob = git(&scratch, &["rev-parse", "HEAD:big.bin"]);
    git(&scratch, &["tag", "old"]);
    git(&scratch, &["rm", "--quiet", "big.bin"]);
    git(&scratch, &["commit", "--quiet", "-m", "drop big"]);
    for n in 0..extra {
        git(
            &scratch,
            &["commit", "--quiet", "--allow-empty", "-m", &n.to_string()],
        );
    }
    fs::write(scratch.join("entrypoint.sh"), entry("TARGET")).unwrap();
    git(&scratch, &["add", "--all"]);
    git(&scratch, &["commit", "--quiet", "-m", "target"]);
    let target = git(&scratch, &["rev-parse", "HEAD"]);
    for n in 0..after {
        git(
            &scratch,
            &["commit", "--quiet", "--allow-empty", "-m", &n.to_string()],
        );
    }
    let origin = fx.origin().display().to_string();
    git(
        &scratch,
        &[
            "push",
            "--quiet",
            "--force",
            &origin,
            "HEAD:refs/heads/main",
        ],
    );
    git(&scratch, &["push", "--quiet", &origin, "refs/tags/old"]);
    (target, old_blob)
}

/// Plain git asking this server for the commit by id (v0, as the server speaks), and the
/// old fallback's fetch of all branches and tags, in a probe repository.
fn naive(fx: &Fixture, url: &str, target: &str, old_blob: &str) {
    let probe = fx.path().join("probe");
    git(fx.path(), &["init", "--quiet", probe.to_str().unwrap()]);
    let by_id = git_command(&probe)
        .args(["fetch", "--quiet", "--depth=1", url, target])
        .output()
        .unwrap();
    assert!(!by_id.status.success(), "the server served a commit by id");
    let everything = [
        "fetch",
        "--quiet",
        url,
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/tags/*:refs/tags/*",
    ];
    git(&probe, &everything);
    assert!(
        has_object(&probe, old_blob),
        "the full fetch lacks the old blob {old_blob}: {}",
        git(&probe, &["count-objects", "-v"])
    );
}

fn has_object(repo: &Path, oid: &str) -> bool {
    git_command(repo)
        .args(["cat-file", "-e", oid])
        .status()
        .unwrap()
        .success()
}

fn run(fx: &Fixture, url: &str, target: &str) -> common::Run {
    let config = fx.write(
        "http.conf",
        &format!(
            "REPO_URL={url}\nCOMMIT_SHA={target}\nWORK_DIR={}\n",
            fx.work_dir().display()
        ),
    );
    let mut launcher = fx.launcher();
    launcher.arg(config.to_str().unwrap());
    launcher.run()
}

/// A release: an annotated tag on the commit, the branch moved on. The server advertises the
/// commit only as the tag's peeled value, which v0 upload-pack does not accept as a want.
#[test]
fn a_commit_advertised_as_a_tag_is_fetched_alone() {
    let fx = Fixture::new();
    let (target, old_blob) = history(&fx, 3, 3);
    let scratch = fx.path().join("scratch");
    git(
        &scratch,
        &["tag", "--annotate", "-m", "release", "v1", &target],
    );
    let origin = fx.origin().display().to_string();
    git(&scratch, &["push", "--quiet", &origin, "refs/tags/v1"]);
    let server = SmartHttp::serve(&fx);
    naive(&fx, &server.url(), &target, &old_blob);

    run(&fx, &server.url(), &target)
        .success()
        .stdout_has("RAN TARGET")
        .stderr_has("fetch by commit id failed")
        .stderr_has(&format!(
            "the server advertises {target} as refs/tags/v1; fetching it (shallow)"
        ))
        .stderr_lacks("commits of every branch")
        .stderr_lacks("fetching all branches and tags")
        .stderr_has(&format!("HEAD verified: {target}"));
    assert!(!has_object(&fx.work_dir(), &old_blob));
}

#[test]
fn a_commit_below_the_tips_comes_with_recent_history_only() {
    let fx = Fixture::new();
    let (target, old_blob) = history(&fx, 80, 5);
    let server = SmartHttp::serve(&fx);
    naive(&fx, &server.url(), &target, &old_blob);

    run(&fx, &server.url(), &target)
        .success()
        .stdout_has("RAN TARGET")
        .stderr_has("fetch by commit id failed")
        .stderr_lacks(&format!("advertises {target}"))
        .stderr_has("fetching the last 64 commits of every branch")
        .stderr_lacks("fetching all branches and tags")
        .stderr_has(&format!("HEAD verified: {target}"));
    assert!(!has_object(&fx.work_dir(), &old_blob));
}

/// A commit no branch holds and no ref names (below a tag on a side line): no shallow step
/// finds it, and everything is fetched, as before.
#[test]
fn a_commit_no_shallow_step_finds_gets_a_full_fetch() {
    let fx = Fixture::new();
    let (_, old_blob) = history(&fx, 0, 0);
    let scratch = fx.path().join("scratch");
    git(&scratch, &["checkout", "--quiet", "--detach"]);
    fs::write(scratch.join("entrypoint.sh"), entry("SIDE")).unwrap();
    git(&scratch, &["add", "--all"]);
    git(&scratch, &["commit", "--quiet", "-m", "side"]);
    let target = git(&scratch, &["rev-parse", "HEAD"]);
    git(
        &scratch,
        &["commit", "--quiet", "--allow-empty", "-m", "release"],
    );
    git(&scratch, &["tag", "release"]);
    let origin = fx.origin().display().to_string();
    git(&scratch, &["push", "--quiet", &origin, "refs/tags/release"]);
    let server = SmartHttp::serve(&fx);
    naive(&fx, &server.url(), &target, &old_blob);

    run(&fx, &server.url(), &target)
        .success()
        .stdout_has("RAN SIDE")
        .stderr_lacks(&format!("advertises {target}"))
        .stderr_has("fetching the last 1024 commits of every branch")
        .stderr_has("fetching all branches and tags")
        .stderr_has(&format!("HEAD verified: {target}"));
}
