//! Hardened checkout against a hostile host: each attack is first shown to fool plain git
//! (the naive launcher), then the real binary is shown not to be fooled.

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
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use common::{Fixture, Item, Run, entry};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Runs the launcher on `config` (bounded by the harness's run limit).
fn launch(fx: &Fixture, config: &Path) -> Run {
    let mut launcher = fx.launcher();
    launcher.arg(config.to_str().unwrap());
    launcher.run()
}

fn ready_events(fx: &Fixture) -> usize {
    fx.events()
        .iter()
        .filter(|e| e["event"] == "trusted-launcher.ready")
        .count()
}

/// Every `marker-*` file an attack managed to create in the fixture.
fn markers(fx: &Fixture) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(fx.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("marker-"))
        .collect();
    found.sort();
    found
}

fn clear_markers(fx: &Fixture) {
    for name in markers(fx) {
        fs::remove_file(fx.path().join(name)).unwrap();
    }
}

#[track_caller]
fn assert_no_markers(fx: &Fixture, run: &Run) {
    assert!(
        markers(fx).is_empty(),
        "attack code ran: {:?}\nstdout:\n{}\nstderr:\n{}",
        markers(fx),
        run.stdout,
        run.stderr
    );
}

/// Writes an executable shell script at `path` that touches `marker` and exits `code`.
fn marker_script(path: &Path, marker: &Path, code: i32) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(
        path,
        format!("#!/bin/sh\ntouch '{}'\nexit {code}\n", marker.display()),
    )
    .unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    path.to_owned()
}

/// An entry script that announces itself and leaves a marker file behind: used for content
/// that must never run.
fn evil_entry(fx: &Fixture, name: &str) -> String {
    format!(
        "echo \"RAN EVIL {name}\"\ntouch '{}'\n",
        fx.marker(name).display()
    )
}

/// A line config for an arbitrary repo URL and work dir.
fn config_for(fx: &Fixture, name: &str, url: &str, commit: &str, work: &Path) -> PathBuf {
    fx.write(
        name,
        &format!(
            "REPO_URL={url}\nCOMMIT_SHA={commit}\nWORK_DIR={}\n",
            work.display()
        ),
    )
}

/// Plain git as a naive launcher runs it, not asserting success.
fn plain(dir: &Path, args: &[&str]) -> Output {
    common::git_command(dir).args(args).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn scratch_objects(fx: &Fixture) -> PathBuf {
    fx.path().join("scratch/.git/objects")
}

fn loose(objects: &Path, oid: &str) -> PathBuf {
    objects.join(&oid[..2]).join(&oid[2..])
}

/// Stores the loose object file `source` (from `from`) in `to` under the name `name`: the
/// object then holds bytes that do not hash to its name.
fn plant_object(from: &Path, source: &str, to: &Path, name: &str) {
    let src = loose(from, source);
    assert!(
        src.is_file(),
        "{source} is not a loose object in {}",
        from.display()
    );
    let dst = loose(to, name);
    fs::create_dir_all(dst.parent().unwrap()).unwrap();
    if dst.exists() {
        fs::remove_file(&dst).unwrap();
    }
    fs::copy(src, dst).unwrap();
}

/// Copies the genuine loose object `oid` from `from` to `to`.
fn copy_object(from: &Path, to: &Path, oid: &str) {
    plant_object(from, oid, to, oid);
}

/// The object name of `rev` in the fixture's scratch repository.
fn rev(fx: &Fixture, rev: &str) -> String {
    common::git(&fx.path().join("scratch"), &["rev-parse", rev])
}

/// `cp -a`, so symlinks, modes and empty directories survive.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------
// 1. Hooks
// ---------------------------------------------------------------------------------------

const HOOKS: &[&str] = &[
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "post-index-change",
    "fsmonitor-watchman",
    "p4-pre-submit",
];

/// Plants every hook in `dir`, each touching `marker-hook-<where>-<name>`.
fn plant_hooks(fx: &Fixture, dir: &Path, place: &str) {
    for hook in HOOKS {
        marker_script(
            &dir.join(hook),
            &fx.marker(&format!("hook-{place}-{hook}")),
            0,
        );
    }
}

/// Hooks in `.git/hooks`, and a `core.hooksPath` (and an fsmonitor hook) in the reused
/// repository's config, which plain git honours.
fn plant_all_hooks(fx: &Fixture) {
    let work = fx.work_dir();
    plant_hooks(fx, &work.join(".git/hooks"), "githooks");
    let elsewhere = fx.path().join("evil-hooks");
    plant_hooks(fx, &elsewhere, "hookspath");
    common::git(
        &work,
        &["config", "core.hooksPath", elsewhere.to_str().unwrap()],
    );
    common::git(
        &work,
        &[
            "config",
            "core.fsmonitor",
            elsewhere.join("fsmonitor-watchman").to_str().unwrap(),
        ],
    );
}

#[test]
fn planted_hooks_do_not_run() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let b = fx.commit_on("b", &[Item::File("entrypoint.sh", &entry("B"))]);
    let work = fx.work_dir();
    launch(&fx, &fx.line_config(&a, "")).success();

    // Plain git runs a hook from .git/hooks ...
    plant_hooks(&fx, &work.join(".git/hooks"), "githooks");
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fx.marker("hook-githooks-post-checkout").exists(),
        "plain git did not run .git/hooks/post-checkout: {:?}",
        markers(&fx)
    );
    // ... and from core.hooksPath.
    plant_all_hooks(&fx);
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        fx.marker("hook-hookspath-post-checkout").exists(),
        "plain git did not run core.hooksPath/post-checkout: {:?}",
        markers(&fx)
    );
    clear_markers(&fx);

    // Same pin: nothing to fetch, only the checkout.
    plant_all_hooks(&fx);
    let run = launch(&fx, &fx.line_config(&a, ""));
    run.success().stdout_has("RAN A");
    assert_no_markers(&fx, &run);

    // New pin: a fetch and a checkout.
    plant_all_hooks(&fx);
    let run = launch(&fx, &fx.line_config(&b, ""));
    run.success()
        .stdout_has("RAN B")
        .stderr_has(&format!("HEAD verified: {b}"));
    assert_no_markers(&fx, &run);
}

// ---------------------------------------------------------------------------------------
// 2. Replace refs
// ---------------------------------------------------------------------------------------

#[test]
fn replace_ref_does_not_swap_the_commit() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let evil = fx.commit_on(
        "evil",
        &[Item::File("entrypoint.sh", &evil_entry(&fx, "evil"))],
    );
    let work = fx.work_dir();
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A");

    common::git(&work, &["fetch", "--quiet", "origin", "refs/heads/evil"]);
    common::git(&work, &["replace", "-f", &a, &evil]);

    // Plain git: HEAD "is" A, the bytes are the evil commit's.
    let out = plain(&work, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(common::git(&work, &["rev-parse", "HEAD"]), a);
    assert_eq!(
        fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
        evil_entry(&fx, "evil"),
        "plain git was not fooled by refs/replace"
    );

    let run = launch(&fx, &config);
    run.success()
        .stdout_has("RAN A")
        .stderr_has(&format!("HEAD verified: {a}"));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&fx, &run);
    assert_eq!(
        fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
        entry("A")
    );
}

// ---------------------------------------------------------------------------------------
// 3. Hostile environment
// ---------------------------------------------------------------------------------------

/// One way the launcher's environment could steer git.
struct EnvAttack {
    name: &'static str,
    env: Vec<(String, String)>,
    /// Variables the harness's plain git sets that would mask the attack.
    unmask: &'static [&'static str],
    /// How the naive launcher is seen to be fooled.
    naive_sign: Sign,
}

enum Sign {
    /// Its transcript says this (e.g. the evil repo refusing the pinned commit).
    Says(&'static str),
    /// The attack's marker file appeared.
    Marker(&'static str),
}

/// A naive launcher: plain git in a fresh `WORK_DIR` with the host environment, then bash.
/// Returns everything it printed; fooled unless it says `RAN <marker>` cleanly.
fn naive_launch(work: &Path, url: &str, sha: &str, attack: &EnvAttack) -> String {
    fs::create_dir_all(work).unwrap();
    let mut transcript = String::new();
    let steps: [&[&str]; 3] = [
        &["init", "--quiet"],
        &["fetch", "--quiet", url, sha],
        &["checkout", "--quiet", "--force", "--detach", sha],
    ];
    for args in steps {
        let mut git = common::git_command(work);
        for name in attack.unmask {
            git.env_remove(name);
        }
        git.envs(attack.env.iter().map(|(k, v)| (k, v)));
        let out = git.args(args).output().unwrap();
        transcript += &text(&out);
        if !out.status.success() {
            transcript += "[git ";
            transcript += &args.join(" ");
            transcript += " failed]\n";
            return transcript;
        }
    }
    let out = Command::new("bash")
        .arg("entrypoint.sh")
        .current_dir(work)
        .output()
        .unwrap();
    transcript + &text(&out)
}

impl EnvAttack {
    fn new(
        name: &'static str,
        env: &[(&str, &str)],
        unmask: &'static [&'static str],
        naive_sign: Sign,
    ) -> Self {
        Self {
            name,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            unmask,
            naive_sign,
        }
    }
}

/// Config from the environment or the user's files that sends the origin URL to `evil_url`.
/// Plain git then asks the evil repo for the pinned commit, which refuses it.
fn redirect_attacks(fx: &Fixture, evil_url: &str) -> Vec<EnvAttack> {
    let real = fx.url();
    let redirect = format!("[url \"{evil_url}\"]\n\tinsteadOf = {real}\n");
    let refused = || Sign::Says("not our ref");

    let home = fx.path().join("hostile-home");
    fs::create_dir_all(&home).unwrap();
    fs::write(home.join(".gitconfig"), &redirect).unwrap();
    let empty_home = fx.path().join("empty-home");
    fs::create_dir_all(&empty_home).unwrap();
    let xdg = fx.path().join("hostile-xdg");
    fs::create_dir_all(xdg.join("git")).unwrap();
    fs::write(xdg.join("git/config"), &redirect).unwrap();
    let global = fx.write("hostile-global.gitconfig", &redirect);
    let (home, empty_home) = (home.to_str().unwrap(), empty_home.to_str().unwrap());
    let (xdg, global) = (xdg.to_str().unwrap(), global.to_str().unwrap());
    let parameters = format!("'url.{evil_url}.insteadof'='{real}'");
    let key = format!("url.{evil_url}.insteadOf");

    vec![
        EnvAttack::new(
            "home-gitconfig",
            &[("HOME", home)],
            &["GIT_CONFIG_GLOBAL"],
            refused(),
        ),
        EnvAttack::new(
            "xdg-config-home",
            &[("HOME", empty_home), ("XDG_CONFIG_HOME", xdg)],
            &["GIT_CONFIG_GLOBAL"],
            refused(),
        ),
        EnvAttack::new(
            "git-config-global",
            &[("GIT_CONFIG_GLOBAL", global)],
            &[],
            refused(),
        ),
        EnvAttack::new(
            "git-config-system",
            &[("GIT_CONFIG_SYSTEM", global)],
            &["GIT_CONFIG_NOSYSTEM"],
            refused(),
        ),
        EnvAttack::new(
            "git-config-parameters",
            &[("GIT_CONFIG_PARAMETERS", &parameters)],
            &[],
            refused(),
        ),
        EnvAttack::new(
            "git-config-count",
            &[
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", &key),
                ("GIT_CONFIG_VALUE_0", &real),
            ],
            &[],
            refused(),
        ),
    ]
}

/// Variables that move the repository, or choose which programs git runs.
fn program_attacks(fx: &Fixture) -> Vec<EnvAttack> {
    let real = fx.url();
    let elsewhere_git = fx.path().join("elsewhere.git");
    let elsewhere_tree = fx.path().join("elsewhere-tree");
    fs::create_dir_all(&elsewhere_tree).unwrap();

    let exec_path = fx.path().join("hostile-exec-path");
    for program in ["git-upload-pack", "git-remote-http", "git-remote-https"] {
        marker_script(&exec_path.join(program), &fx.marker("exec-path"), 1);
    }
    let bin = fx.path().join("hostile-bin");
    marker_script(&bin.join("git"), &fx.marker("path-git"), 1);
    marker_script(&bin.join("bash"), &fx.marker("path-bash"), 1);
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let templates = fx.path().join("hostile-templates");
    for hook in [
        "post-checkout",
        "reference-transaction",
        "post-index-change",
    ] {
        let hook = templates.join("hooks").join(hook);
        marker_script(&hook, &fx.marker("template-hook"), 0);
    }
    let ssh = marker_script(&fx.path().join("evil-ssh"), &fx.marker("ssh"), 1);
    let proxy = marker_script(&fx.path().join("evil-proxy"), &fx.marker("proxy"), 1);
    let (ssh, proxy) = (ssh.to_str().unwrap(), proxy.to_str().unwrap());
    let to_proxy = format!("'url.git://127.0.0.1/evil.insteadof'='{real}'");

    vec![
        EnvAttack::new(
            "git-dir",
            &[
                ("GIT_DIR", elsewhere_git.to_str().unwrap()),
                ("GIT_WORK_TREE", elsewhere_tree.to_str().unwrap()),
            ],
            &[],
            Sign::Says("entrypoint.sh: No such file"),
        ),
        EnvAttack::new(
            "git-exec-path",
            &[("GIT_EXEC_PATH", exec_path.to_str().unwrap())],
            &[],
            Sign::Marker("exec-path"),
        ),
        EnvAttack::new("path", &[("PATH", &path)], &[], Sign::Marker("path-git")),
        EnvAttack::new(
            "git-template-dir",
            &[("GIT_TEMPLATE_DIR", templates.to_str().unwrap())],
            &[],
            Sign::Marker("template-hook"),
        ),
        EnvAttack::new(
            "git-ssh-command",
            &[
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "url.ssh://127.0.0.1/evil.insteadOf"),
                ("GIT_CONFIG_VALUE_0", &real),
                ("GIT_SSH_COMMAND", ssh),
                ("GIT_SSH", ssh),
            ],
            &[],
            Sign::Marker("ssh"),
        ),
        EnvAttack::new(
            "git-proxy-command",
            &[
                ("GIT_CONFIG_PARAMETERS", &to_proxy),
                ("GIT_PROXY_COMMAND", proxy),
            ],
            &[],
            Sign::Marker("proxy"),
        ),
    ]
}

#[test]
fn hostile_environment_does_not_redirect_git() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let evil = Fixture::new();
    evil.commit(&[Item::File("entrypoint.sh", &evil_entry(&fx, "evil-repo"))]);
    let mut attacks = redirect_attacks(&fx, &evil.url());
    attacks.extend(program_attacks(&fx));

    for attack in &attacks {
        let naive = naive_launch(
            &fx.path().join(format!("naive-{}", attack.name)),
            &fx.url(),
            &a,
            attack,
        );
        let fooled = match attack.naive_sign {
            Sign::Says(needle) => naive.contains(needle),
            Sign::Marker(name) => fx.marker(name).exists(),
        };
        assert!(
            fooled,
            "{}: plain git was not fooled (markers {:?}):\n{naive}",
            attack.name,
            markers(&fx)
        );
        clear_markers(&fx);
    }
    let elsewhere = fx.path().join("elsewhere-tree");
    assert!(
        elsewhere.join("entrypoint.sh").exists(),
        "plain git did not check out into GIT_WORK_TREE"
    );
    fs::remove_dir_all(&elsewhere).unwrap();
    fs::create_dir_all(&elsewhere).unwrap();

    for attack in &attacks {
        let work = fx.path().join(format!("work-{}", attack.name));
        let config = config_for(&fx, &format!("{}.conf", attack.name), &fx.url(), &a, &work);
        let mut launcher = fx.launcher();
        launcher.arg(config.to_str().unwrap());
        for (key, value) in &attack.env {
            launcher.env(key, value);
        }
        let run = launcher.run();
        assert_eq!(
            run.status,
            Some(0),
            "{}: launcher failed\nstdout:\n{}\nstderr:\n{}",
            attack.name,
            run.stdout,
            run.stderr
        );
        run.stdout_has("RAN A")
            .stderr_has(&format!("HEAD verified: {a}"));
        assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
        assert_no_markers(&fx, &run);
    }
    assert_eq!(
        fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "GIT_WORK_TREE received files"
    );
}

// ---------------------------------------------------------------------------------------
// 4. Hostile config in the reused repository
// ---------------------------------------------------------------------------------------

/// `url.*.insteadOf` to an evil repo, fsmonitor, a smudge filter on every path, a sparse
/// checkout without the entry script, and alternates into an evil object store.
fn plant_hostile_config(fx: &Fixture, evil: &Fixture, work: &Path) {
    let git_dir = work.join(".git");
    let fsmonitor = marker_script(
        &fx.path().join("evil-fsmonitor"),
        &fx.marker("fsmonitor"),
        0,
    );
    let url_key = format!("url.{}.insteadOf", evil.url());
    let smudge = format!(
        "touch '{}'; echo EVIL-SMUDGE",
        fx.marker("smudge").display()
    );
    for (key, value) in [
        (url_key.as_str(), fx.url()),
        ("core.fsmonitor", fsmonitor.display().to_string()),
        ("filter.x.smudge", smudge),
        ("filter.x.clean", "cat".to_owned()),
        ("core.sparseCheckout", "true".to_owned()),
    ] {
        common::git(work, &["config", key, &value]);
    }
    fs::create_dir_all(git_dir.join("info")).unwrap();
    fs::write(git_dir.join("info/attributes"), "* filter=x\n").unwrap();
    fs::write(
        git_dir.join("info/sparse-checkout"),
        "/*\n!/entrypoint.sh\n",
    )
    .unwrap();
    let alternates = git_dir.join("objects/info/alternates");
    fs::create_dir_all(alternates.parent().unwrap()).unwrap();
    fs::write(
        &alternates,
        format!("{}\n", scratch_objects(evil).display()),
    )
    .unwrap();
}

#[test]
fn hostile_reused_repo_config_is_discarded() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", &entry("A")),
        Item::File("data.txt", "A data\n"),
    ]);
    let b = fx.commit_on(
        "b",
        &[
            Item::File("entrypoint.sh", "echo \"RAN B data=$(cat data.txt)\"\n"),
            Item::File("data.txt", "B data\n"),
        ],
    );
    let evil = Fixture::new();
    let evil_sha = evil.commit(&[Item::File("entrypoint.sh", &evil_entry(&fx, "evil-repo"))]);
    let work = fx.work_dir();
    launch(&fx, &fx.line_config(&a, "")).success();
    plant_hostile_config(&fx, &evil, &work);

    // Plain git, in a copy so that B stays unfetched in WORK_DIR: origin is the evil repo,
    // the evil store is readable, and a checkout runs fsmonitor and the smudge filter and
    // leaves the entry script out.
    let naive = fx.path().join("naive");
    copy_tree(&work, &naive);
    let remote = text(&plain(&naive, &["ls-remote", "origin"]));
    assert!(
        remote.contains(&evil_sha),
        "insteadOf not honoured: {remote}"
    );
    assert!(!remote.contains(&a), "insteadOf not honoured: {remote}");
    assert!(
        plain(&naive, &["cat-file", "-e", &evil_sha])
            .status
            .success()
    );
    // (By path: the URL itself is redirected.)
    common::git(
        &naive,
        &["fetch", "--quiet", fx.origin().to_str().unwrap(), &b],
    );
    let out = plain(&naive, &["checkout", "--force", "--detach", &b]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!naive.join("entrypoint.sh").exists(), "sparse not honoured");
    assert_eq!(
        fs::read_to_string(naive.join("data.txt")).unwrap(),
        "EVIL-SMUDGE\n"
    );
    assert!(fx.marker("fsmonitor").exists(), "{:?}", markers(&fx));
    assert!(fx.marker("smudge").exists(), "{:?}", markers(&fx));
    clear_markers(&fx);

    assert!(
        !plain(&work, &["cat-file", "-e", &b]).status.success(),
        "B should not be in WORK_DIR's store yet"
    );
    let run = launch(&fx, &fx.line_config(&b, ""));
    run.success()
        .stdout_has("RAN B data=B data")
        .stderr_has(&format!("fetching {b}"))
        .stderr_has(&format!("HEAD verified: {b}"));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&fx, &run);
    // The evil store is no longer reachable from the reused repository.
    assert!(
        !plain(&work, &["cat-file", "-e", &evil_sha])
            .status
            .success()
    );
}

// ---------------------------------------------------------------------------------------
// 5. Alternates and tampered objects
// ---------------------------------------------------------------------------------------

/// A at `main` (checked out by a first run), B at `b` (the new pin, not yet fetched), and E
/// at `evil`, whose entry script must never run. B and E have one file each, so E's tree
/// stored under B's tree id reads as a well-formed tree.
struct Tamper {
    fx: Fixture,
    b: String,
    e: String,
}

impl Tamper {
    fn new() -> Self {
        let fx = Fixture::new();
        let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
        let b = fx.commit_on("b", &[Item::File("entrypoint.sh", &entry("B"))]);
        let e = fx.commit_on(
            "evil",
            &[Item::File("entrypoint.sh", &evil_entry(&fx, "evil"))],
        );
        launch(&fx, &fx.line_config(&a, ""))
            .success()
            .stdout_has("RAN A");
        assert!(
            !plain(&fx.work_dir(), &["cat-file", "-e", &b])
                .status
                .success(),
            "B must not be fetched by the first run"
        );
        Self { fx, b, e }
    }

    fn work_objects(&self) -> PathBuf {
        self.fx.work_dir().join(".git/objects")
    }

    /// Into `store`: the genuine commit B, E's tree under B's tree id, and E's blob.
    fn plant_fake_tree(&self, store: &Path) {
        let from = scratch_objects(&self.fx);
        copy_object(&from, store, &self.b);
        let b_tree = rev(&self.fx, &format!("{}^{{tree}}", self.b));
        let e_tree = rev(&self.fx, &format!("{}^{{tree}}", self.e));
        plant_object(&from, &e_tree, store, &b_tree);
        copy_object(
            &from,
            store,
            &rev(&self.fx, &format!("{}:entrypoint.sh", self.e)),
        );
    }

    /// Plain git checks B out and runs E's bytes while `rev-parse HEAD` says B.
    fn show_plain_git_fooled(&self) {
        let work = self.fx.work_dir();
        let out = plain(&work, &["checkout", "--force", "--detach", &self.b]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(common::git(&work, &["rev-parse", "HEAD"]), self.b);
        assert_eq!(
            fs::read_to_string(work.join("entrypoint.sh")).unwrap(),
            evil_entry(&self.fx, "evil"),
            "plain git was not fooled by the tampered tree"
        );
    }

    fn launch_b(&self) -> Run {
        launch(&self.fx, &self.fx.line_config(&self.b, ""))
    }

    /// Runs B, expecting a refusal with `needle` before anything ran or ready was measured.
    #[track_caller]
    fn assert_b_refused(&self, needle: &str) -> Run {
        let ready_before = ready_events(&self.fx);
        let run = self.launch_b();
        run.fails(1, needle);
        assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
        assert_no_markers(&self.fx, &run);
        assert_eq!(
            ready_events(&self.fx),
            ready_before,
            "ready measured after a refusal"
        );
        run
    }
}

#[test]
fn alternates_with_a_tampered_tree_are_dropped_and_the_real_commit_fetched() {
    let t = Tamper::new();
    let store = t.fx.path().join("evil-store");
    t.plant_fake_tree(&store);
    let alternates = t.work_objects().join("info/alternates");
    fs::create_dir_all(alternates.parent().unwrap()).unwrap();
    fs::write(&alternates, format!("{}\n", store.display())).unwrap();
    t.show_plain_git_fooled();

    let run = t.launch_b();
    run.success()
        .stdout_has("RAN B")
        .stderr_has(&format!("fetching {}", t.b))
        .stderr_has(&format!("HEAD verified: {}", t.b));
    assert!(!run.stdout.contains("EVIL"), "{}", run.stdout);
    assert_no_markers(&t.fx, &run);
}

#[test]
fn tampered_tree_in_the_object_store_is_refused() {
    let t = Tamper::new();
    t.plant_fake_tree(&t.work_objects());
    t.show_plain_git_fooled();

    let run = t.assert_b_refused("does not hash to its name");
    run.stderr_has("claims to be a tree");
}

#[test]
fn tampered_commit_in_the_object_store_is_refused() {
    let t = Tamper::new();
    let from = scratch_objects(&t.fx);
    let store = t.work_objects();
    // E's commit bytes under B's name, with everything E's commit needs.
    plant_object(&from, &t.e, &store, &t.b);
    copy_object(&from, &store, &rev(&t.fx, &format!("{}^{{tree}}", t.e)));
    copy_object(
        &from,
        &store,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.e)),
    );
    // Plain git's object reader serves E's commit as B; `git checkout` itself happens to
    // re-hash commits ("hash mismatch"), but anything reading through cat-file is fooled.
    let shown = common::git(&t.fx.work_dir(), &["cat-file", "commit", &t.b]);
    let e_tree = rev(&t.fx, &format!("{}^{{tree}}", t.e));
    assert!(shown.starts_with(&format!("tree {e_tree}")), "{shown}");

    let run = t.assert_b_refused("does not hash to its name");
    run.stderr_has("claims to be a commit");
}

#[test]
fn tampered_blob_in_the_object_store_is_refused() {
    let t = Tamper::new();
    let from = scratch_objects(&t.fx);
    let store = t.work_objects();
    copy_object(&from, &store, &t.b);
    copy_object(&from, &store, &rev(&t.fx, &format!("{}^{{tree}}", t.b)));
    plant_object(
        &from,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.e)),
        &store,
        &rev(&t.fx, &format!("{}:entrypoint.sh", t.b)),
    );
    t.show_plain_git_fooled();

    let run = t.assert_b_refused("content differs from the commit");
    run.stderr_has("entrypoint.sh");
}

// ---------------------------------------------------------------------------------------
// 6. Symlinks out of the checkout
// ---------------------------------------------------------------------------------------

/// Commits `items`, shows that plain git plus bash runs the outside script via the symlink,
/// then that the launcher refuses before measuring ready.
fn assert_escape_refused(fx: &Fixture, items: &[Item<'_>], extra: &str, entry_dir: &str) {
    let sha = fx.commit(items);
    let naive = fx.path().join("naive");
    common::git(
        fx.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "main",
            &fx.url(),
            naive.to_str().unwrap(),
        ],
    );
    let out = Command::new("bash")
        .arg("entrypoint.sh")
        .current_dir(naive.join(entry_dir))
        .output()
        .unwrap();
    assert!(
        fx.marker("outside").exists(),
        "plain git + bash did not escape: {}",
        text(&out)
    );
    clear_markers(fx);

    let run = launch(fx, &fx.line_config(&sha, extra));
    run.fails(1, "outside the checkout");
    assert!(!run.stdout.contains("RAN"), "{}", run.stdout);
    assert_no_markers(fx, &run);
    assert_eq!(ready_events(fx), 0);
}

fn outside_script(fx: &Fixture, path: &Path) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, evil_entry(fx, "outside")).unwrap();
    path.to_owned()
}

#[test]
fn entrypoint_symlink_to_an_absolute_outside_path_is_refused() {
    let fx = Fixture::new();
    let outside = outside_script(&fx, &fx.path().join("outside.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("entrypoint.sh", outside.to_str().unwrap())],
        "",
        "",
    );
}

#[test]
fn entrypoint_symlink_climbing_out_is_refused() {
    let fx = Fixture::new();
    outside_script(&fx, &fx.path().join("outside.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("entrypoint.sh", "../outside.sh")],
        "",
        "",
    );
}

#[test]
fn subdir_symlink_to_parent_is_refused() {
    let fx = Fixture::new();
    // WORK_DIR and the naive clone are both directly in the fixture: `app/..` is the fixture.
    outside_script(&fx, &fx.path().join("entrypoint.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("app", ".."), Item::File("README", "x\n")],
        "REPO_SUBDIR=app\n",
        "app",
    );
}

#[test]
fn subdir_symlink_to_an_outside_directory_is_refused() {
    let fx = Fixture::new();
    let dir = fx.path().join("outside-app");
    outside_script(&fx, &dir.join("entrypoint.sh"));
    assert_escape_refused(
        &fx,
        &[Item::Symlink("app", dir.to_str().unwrap())],
        "REPO_SUBDIR=app\n",
        "app",
    );
}

// ---------------------------------------------------------------------------------------
// 7. Origin unreachable on a later start
// ---------------------------------------------------------------------------------------

#[test]
fn present_commit_starts_without_origin() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A");
    fs::rename(fx.origin(), fx.path().join("origin-gone.git")).unwrap();

    // The naive launcher fetches first and dies with the origin.
    let out = plain(&fx.work_dir(), &["fetch", "--quiet", &fx.url(), &a]);
    assert!(!out.status.success(), "plain fetch worked without origin");

    launch(&fx, &config)
        .success()
        .stdout_has("RAN A")
        .stderr_has("already in the local object store; not fetching")
        .stderr_has(&format!("HEAD verified: {a}"));
}

// ---------------------------------------------------------------------------------------
// 8. Server that cannot serve a commit by id
// ---------------------------------------------------------------------------------------

/// A `python3 -m http.server` child on loopback, killed on drop.
struct DumbHttp {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    port: u16,
}

impl DumbHttp {
    fn serve(dir: &Path) -> Self {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 for a dumb HTTP server");
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

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for DumbHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn server_refusing_fetch_by_id_gets_a_full_fetch() {
    let fx = Fixture::new();
    let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
    fx.commit_on("later", &[Item::File("entrypoint.sh", &entry("later"))]);
    common::git(&fx.origin(), &["update-server-info"]);
    let server = DumbHttp::serve(fx.path());
    let url = server.url("origin.git");

    // The dumb protocol cannot do the shallow fetch by id.
    let probe = fx.path().join("probe");
    common::git(fx.path(), &["init", "--quiet", probe.to_str().unwrap()]);
    let out = plain(&probe, &["fetch", "--quiet", "--depth=1", &url, &a]);
    assert!(!out.status.success(), "dumb HTTP served a shallow fetch");

    let config = config_for(&fx, "http.conf", &url, &a, &fx.work_dir());
    launch(&fx, &config)
        .success()
        .stdout_has("RAN A")
        .stderr_has("fetch by commit id failed")
        .stderr_has("fetching all branches and tags")
        .stderr_has(&format!("HEAD verified: {a}"));
    drop(server);
}

// ---------------------------------------------------------------------------------------
// 9. Dirty checkout
// ---------------------------------------------------------------------------------------

/// Lists every path but `.git` with its type, then prints the files the test tampers with.
const LISTING: &str = r#"find . -path ./.git -prune -o -print | LC_ALL=C sort | while read -r p; do
  if [ -L "$p" ]; then t=link; elif [ -d "$p" ]; then t=dir; elif [ -x "$p" ]; then t=exec; else t=file; fi
  echo "ENTRY $t $p"
done
echo "DATA $(cat data.txt)"
echo "LINKME $(cat link-me.txt)"
echo "NESTED $(cat sub/nested.txt)"
"#;

#[test]
fn dirty_checkout_is_scrubbed_exactly() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", LISTING),
        Item::File("data.txt", "committed\n"),
        Item::File("link-me.txt", "regular\n"),
        Item::Exec("tool.sh", "echo tool\n"),
        Item::File("sub/nested.txt", "nested\n"),
        Item::File("other/file.txt", "other\n"),
        Item::File("dir-to-file/x.txt", "x\n"),
        Item::File(".gitignore", "ignored.txt\n*.log\n"),
    ]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success();
    let outside = fx.path().join("outside-dir");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), "keep\n").unwrap();

    let work = fx.work_dir();
    fs::write(work.join("data.txt"), "tampered\n").unwrap();
    fs::write(work.join("sub/nested.txt"), "tampered\n").unwrap();
    fs::write(work.join("untracked.txt"), "x").unwrap();
    fs::write(work.join("sub/untracked.txt"), "x").unwrap();
    fs::write(work.join("ignored.txt"), "x").unwrap();
    fs::write(work.join("sub/debug.log"), "x").unwrap();
    fs::create_dir_all(work.join("emptydir")).unwrap();
    fs::create_dir_all(work.join("sub/empty/deeper")).unwrap();
    fs::remove_file(work.join("link-me.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", work.join("link-me.txt")).unwrap();
    fs::set_permissions(work.join("tool.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    // A tracked directory replaced by a symlink out of the checkout: nothing may be removed
    // or written through it.
    fs::remove_dir_all(work.join("other")).unwrap();
    std::os::unix::fs::symlink(&outside, work.join("other")).unwrap();
    // A tracked directory replaced by a file, and a FIFO that would block a reader.
    fs::remove_dir_all(work.join("dir-to-file")).unwrap();
    fs::write(work.join("dir-to-file"), "x").unwrap();
    let fifo = Command::new("mkfifo")
        .arg(work.join("sub/pipe"))
        .status()
        .unwrap();
    assert!(fifo.success());

    // A plain checkout keeps everything it does not track.
    let naive = fx.path().join("naive");
    copy_tree(&work, &naive);
    let out = plain(&naive, &["checkout", "--force", "--detach", &a]);
    assert!(out.status.success(), "{}", text(&out));
    for leftover in [
        "untracked.txt",
        "sub/untracked.txt",
        "ignored.txt",
        "sub/debug.log",
        "emptydir",
    ] {
        assert!(
            naive.join(leftover).exists(),
            "plain checkout removed {leftover}"
        );
    }

    let run = launch(&fx, &config);
    run.success()
        .stdout_has("DATA committed\n")
        .stdout_has("LINKME regular\n")
        .stdout_has("NESTED nested\n");
    let listed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("ENTRY "))
        .collect();
    assert_eq!(
        listed,
        [
            "ENTRY dir .",
            "ENTRY file ./.gitignore",
            "ENTRY file ./data.txt",
            "ENTRY dir ./dir-to-file",
            "ENTRY file ./dir-to-file/x.txt",
            "ENTRY file ./entrypoint.sh",
            "ENTRY file ./link-me.txt",
            "ENTRY dir ./other",
            "ENTRY file ./other/file.txt",
            "ENTRY dir ./sub",
            "ENTRY file ./sub/nested.txt",
            "ENTRY exec ./tool.sh",
        ],
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("root:"), "{}", run.stdout);
    let mut outside_now: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside_now.sort();
    assert_eq!(
        outside_now,
        ["precious"],
        "wrote or deleted through a symlink"
    );
}

// ---------------------------------------------------------------------------------------
// 10. Attributes in the commit
// ---------------------------------------------------------------------------------------

#[test]
fn committed_attributes_do_not_change_checked_out_bytes() {
    let fx = Fixture::new();
    let files = [
        "data.txt",
        "sub/latin.txt",
        "entrypoint.sh",
        ".gitattributes",
    ];
    let a = fx.commit(&[
        Item::File(".gitattributes", "* text eol=crlf\n*.txt ident\n"),
        Item::File("data.txt", "line one\nline two\n$Id$\n"),
        Item::File(
            "sub/.gitattributes",
            "*.txt working-tree-encoding=ISO-8859-1\n",
        ),
        Item::File("sub/latin.txt", "caf\u{e9}\n"),
        Item::File("entrypoint.sh", &entry("A")),
    ]);
    let committed = |path: &str| {
        let out = plain(
            &fx.path().join("scratch"),
            &["cat-file", "blob", &format!("{a}:{path}")],
        );
        assert!(out.status.success(), "{}", text(&out));
        out.stdout
    };

    // Plain git converts line endings, expands $Id$ and re-encodes.
    let naive = fx.path().join("naive");
    common::git(
        fx.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "main",
            &fx.url(),
            naive.to_str().unwrap(),
        ],
    );
    for file in files {
        assert_ne!(
            fs::read(naive.join(file)).unwrap(),
            committed(file),
            "plain git checked {file} out unchanged"
        );
    }
    let plain_data = fs::read_to_string(naive.join("data.txt")).unwrap();
    assert!(
        plain_data.contains("\r\n") && plain_data.contains("$Id: "),
        "{plain_data:?}"
    );

    launch(&fx, &fx.line_config(&a, ""))
        .success()
        .stdout_has("RAN A in ");
    for file in files {
        assert_eq!(
            fs::read(fx.work_dir().join(file)).unwrap(),
            committed(file),
            "{file}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Extras: the reused repository's own layout
// ---------------------------------------------------------------------------------------

#[test]
fn entrypoint_symlink_into_the_kept_object_store_is_refused() {
    // The object store survives between runs, so a file planted there must not become the
    // entry script through an approved symlink into `.git`.
    let fx = Fixture::new();
    let a = fx.commit(&[Item::Symlink("entrypoint.sh", ".git/objects/run.sh")]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).fails(1, "does not exist");
    let planted = evil_entry(&fx, "in-git-dir");

    let naive = fx.path().join("naive");
    common::git(
        fx.path(),
        &[
            "clone",
            "--quiet",
            "--branch",
            "main",
            &fx.url(),
            naive.to_str().unwrap(),
        ],
    );
    fs::write(naive.join(".git/objects/run.sh"), &planted).unwrap();
    let out = Command::new("bash")
        .arg("entrypoint.sh")
        .current_dir(&naive)
        .output()
        .unwrap();
    assert!(fx.marker("in-git-dir").exists(), "{}", text(&out));
    clear_markers(&fx);

    fs::write(fx.work_dir().join(".git/objects/run.sh"), &planted).unwrap();
    let run = launch(&fx, &config);
    run.fails(1, "outside the checkout");
    assert_no_markers(&fx, &run);
    assert_eq!(ready_events(&fx), 0);
}

#[test]
fn git_dir_that_points_elsewhere_is_refused() {
    for kind in ["gitfile", "symlink"] {
        let fx = Fixture::new();
        let a = fx.commit(&[Item::File("entrypoint.sh", &entry("A"))]);
        let evil = Fixture::new();
        evil.commit(&[Item::File("entrypoint.sh", &evil_entry(&fx, "evil-repo"))]);
        let evil_git = evil.path().join("scratch/.git");
        let work = fx.work_dir();
        fs::create_dir_all(&work).unwrap();
        if kind == "gitfile" {
            fs::write(
                work.join(".git"),
                format!("gitdir: {}\n", evil_git.display()),
            )
            .unwrap();
        } else {
            std::os::unix::fs::symlink(&evil_git, work.join(".git")).unwrap();
        }
        // Plain git works on the other repository.
        let head = common::git(&work, &["rev-parse", "--absolute-git-dir"]);
        assert_eq!(Path::new(&head), evil_git.canonicalize().unwrap(), "{kind}");

        let run = launch(&fx, &fx.line_config(&a, ""));
        run.fails(1, "is not a directory");
        assert_no_markers(&fx, &run);
        assert!(
            evil_git.join("HEAD").is_file() && evil_git.join("config").is_file(),
            "{kind}: the other repository was modified"
        );
    }
}

#[test]
fn store_missing_a_blob_is_completed_by_fetching() {
    let fx = Fixture::new();
    let a = fx.commit(&[
        Item::File("entrypoint.sh", "echo \"RAN A $(cat data.txt)\"\n"),
        Item::File("data.txt", "payload\n"),
    ]);
    let config = fx.line_config(&a, "");
    launch(&fx, &config).success().stdout_has("RAN A payload");
    // Keep only the commit and its tree: the blobs are gone.
    let store = fx.work_dir().join(".git/objects");
    fs::remove_dir_all(store.join("pack")).unwrap();
    for dir in fs::read_dir(&store).unwrap() {
        let dir = dir.unwrap().path();
        if dir.file_name().unwrap().len() == 2 {
            fs::remove_dir_all(dir).unwrap();
        }
    }
    copy_object(&scratch_objects(&fx), &store, &a);
    copy_object(
        &scratch_objects(&fx),
        &store,
        &rev(&fx, &format!("{a}^{{tree}}")),
    );

    launch(&fx, &config)
        .success()
        .stdout_has("RAN A payload")
        .stderr_has(&format!("fetching {a}"))
        .stderr_has(&format!("HEAD verified: {a}"));
}
