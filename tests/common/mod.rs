//! Test harness: fixture repositories built with real git in a temp dir, and a builder that
//! runs the real `trusted-launcher` binary with a controlled environment.

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(dead_code)]

#[cfg(feature = "verify")]
pub mod collateral_run;
pub mod fake_agent;
pub mod fake_docker;
pub mod fake_registry;
pub mod forged_log;
pub mod hub;
pub mod next_agent;
pub mod pcs;
pub mod verdict;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_trusted-launcher");

/// Longest any single launcher run may take in a test.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Runs git in `dir` with a fixed identity and dates, ignoring the host's config.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = git_command(dir).args(args).output().expect("spawn git");
    assert!(
        output.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// A plain git command as a naive launcher would run it (host env, repo config honoured),
/// except for a fixed identity. Used to show an attack works against plain git.
pub fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    command
}

/// A file to put in a commit.
pub enum Item<'a> {
    File(&'a str, &'a str),
    Exec(&'a str, &'a str),
    Symlink(&'a str, &'a str),
}

/// A temp dir holding a bare `origin.git` and a scratch clone to make commits from.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "--quiet", "--bare", "origin.git"]);
        git(dir.path(), &["init", "--quiet", "scratch"]);
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn origin(&self) -> PathBuf {
        self.path().join("origin.git")
    }

    /// `file://` URL of the origin (shallow fetches need the URL form).
    pub fn url(&self) -> String {
        format!("file://{}", self.origin().display())
    }

    pub fn work_dir(&self) -> PathBuf {
        self.path().join("work")
    }

    pub fn event_log(&self) -> PathBuf {
        self.path().join("events.jsonl")
    }

    /// Replaces the scratch tree with `items`, commits, pushes to `branch`; returns the id.
    pub fn commit_on(&self, branch: &str, items: &[Item<'_>]) -> String {
        let scratch = self.path().join("scratch");
        for entry in fs::read_dir(&scratch).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != ".git" {
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    fs::remove_dir_all(path).unwrap();
                } else {
                    fs::remove_file(path).unwrap();
                }
            }
        }
        for item in items {
            let (path, content) = match item {
                Item::File(p, c) | Item::Exec(p, c) | Item::Symlink(p, c) => (scratch.join(p), c),
            };
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            match item {
                Item::Symlink(..) => std::os::unix::fs::symlink(content, &path).unwrap(),
                _ => fs::write(&path, content).unwrap(),
            }
            let mode = if matches!(item, Item::Exec(..)) {
                0o755
            } else {
                0o644
            };
            if !matches!(item, Item::Symlink(..)) {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        git(&scratch, &["add", "--all"]);
        git(
            &scratch,
            &["commit", "--quiet", "--allow-empty", "-m", "fixture"],
        );
        git(
            &scratch,
            &[
                "push",
                "--quiet",
                "--force",
                &self.origin().display().to_string(),
                &format!("HEAD:refs/heads/{branch}"),
            ],
        );
        git(&scratch, &["rev-parse", "HEAD"])
    }

    pub fn commit(&self, items: &[Item<'_>]) -> String {
        self.commit_on("main", items)
    }

    /// Writes a line-format config naming this fixture's origin and work dir.
    pub fn line_config(&self, commit: &str, extra: &str) -> PathBuf {
        let text = format!(
            "REPO_URL={}\nCOMMIT_SHA={commit}\nWORK_DIR={}\n{extra}",
            self.url(),
            self.work_dir().display()
        );
        self.write("launcher.conf", &text)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        fs::write(&path, text).unwrap();
        path
    }

    /// The launcher with `--platform nontee` and this fixture's event log.
    pub fn launcher(&self) -> Launcher {
        let mut launcher = Launcher::new(self.path());
        launcher.args(["--platform", "nontee", "--event-log"]);
        launcher.arg(self.event_log().to_str().unwrap());
        launcher
    }

    /// Event log entries written so far, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        match fs::read_to_string(self.event_log()) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// A marker path for attacks to write to; tests assert it never appears.
    pub fn marker(&self, name: &str) -> PathBuf {
        self.path().join(format!("marker-{name}"))
    }
}

/// Builder for one run of the real binary. The environment is cleared except for what the
/// test sets, plus a fixed PATH and a private HOME.
pub struct Launcher {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    cwd: PathBuf,
    /// A program (and its arguments) that runs the launcher as its last arguments, such as
    /// `unshare -m sh -c SETUP` to give it a private view of `/dev`, `/sys` or `/run`.
    wrapper: Vec<String>,
}

pub struct Run {
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Launcher {
    pub fn new(cwd: &Path) -> Self {
        let home = cwd.join("home");
        fs::create_dir_all(&home).unwrap();
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("HOME".into(), home.display().to_string());
        Self {
            args: Vec::new(),
            env,
            cwd: cwd.to_owned(),
            wrapper: Vec::new(),
        }
    }

    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, args: I) -> &mut Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Runs the launcher through `wrapper`, which gets the binary and its arguments last.
    pub fn wrapped<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, wrapper: I) -> &mut Self {
        self.wrapper = wrapper.into_iter().map(Into::into).collect();
        self
    }

    pub fn command(&self) -> Command {
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .args(&self.args)
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.cwd);
        command
    }

    /// Runs to completion, killing the launcher if it outlives [`RUN_LIMIT`]: a hang is a
    /// failed test, not a stuck CI job.
    pub fn run(&self) -> Run {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn trusted-launcher");
        let stdout = drain(child.stdout.take().unwrap());
        let stderr = drain(child.stderr.take().unwrap());
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("trusted-launcher ran longer than {RUN_LIMIT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let run = Run {
            status: status.code(),
            stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked"),
            "launcher panicked:\n{}",
            run.stderr
        );
        run
    }
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.status,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// A failure with `code`, whose error lines contain `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.status,
            Some(code),
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains("error:"),
            "no error line:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.stderr.contains(needle),
            "stderr has {needle:?}:\n{}",
            self.stderr
        );
        self
    }
}

/// An entry script that proves which commit ran: prints a marker and the working directory.
pub fn entry(marker: &str) -> String {
    format!("echo \"RAN {marker} in $(pwd)\"\n")
}

/// Lowercase hex of `bytes`, written independently of the crate's own encoder.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}
