//! A hostile environment (git's variables, the user's config files) neither redirects
//! git nor chooses the programs it runs.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{Fixture, Item, entry};
use crate::{
    assert_no_markers, clear_markers, common, config_for, evil_entry, marker_script, markers, text,
};

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
