//! The environment the workload receives.
//!
//! The launcher cannot tell a variable from the attested app-compose from one an operator
//! injected into the CVM, so only the config decides:
//!
//! - **tee mode: an allowlist.** Exactly the names the config passes through (`PASS_ENV` /
//!   `git.pass_env`) if the launcher has them, the config's fixed values (`git.env`), and
//!   [`SAFE_PATH`] as `PATH` unless the config sets or passes `PATH` itself. Nothing else:
//!   a denylist cannot name every variable that makes some interpreter run other code
//!   (`PYTHONUSERBASE`, `GIT_CONFIG_*`, `OPENSSL_CONF`, `CLASSPATH`, `npm_config_*`, ...).
//! - **nontee mode: git-launcher's pass-through**, minus the variables below that change
//!   what a loader, shell or interpreter runs (unless `ALLOW_ENV` names them), plus the
//!   config's fixed values.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;

use crate::git::SAFE_PATH;
use crate::platform::Platform;

/// Exact names dropped by default.
const DROPPED_NAMES: &[&str] = &[
    // glibc's iconv loads modules from here.
    "GCONV_PATH",
    // bash: sourced at start-up, shell options, xtrace prompt (runs substitutions), cd search.
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "CDPATH",
    "GLOBIGNORE",
    "IFS",
    // Interpreters: extra code or module search paths loaded before the program.
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

/// Prefixes dropped by default: the dynamic loader (`LD_PRELOAD`, `LD_AUDIT`, ...) and bash's
/// exported functions (which override commands by name).
const DROPPED_PREFIXES: &[&str] = &["LD_", "BASH_FUNC_"];

/// The filtered environment, and the names (never values) passed and not passed.
#[derive(Debug, Default)]
pub struct WorkloadEnv {
    pub vars: Vec<(OsString, OsString)>,
    /// Names the launcher had and did not pass on.
    pub dropped: Vec<String>,
    /// Names the workload gets (tee mode; nontee passes everything not dropped).
    pub passed: Vec<String>,
}

/// What the attested config says about the workload's environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvPolicy<'a> {
    /// Dangerous names that may pass (`ALLOW_ENV` / `git.allow_env`).
    pub allow: &'a [String],
    /// Names passed through from the launcher's environment in tee mode (`PASS_ENV` /
    /// `git.pass_env`).
    pub pass: &'a [String],
    /// Fixed values (`git.env`), in both modes.
    pub fixed: &'a [(String, String)],
}

/// The workload's environment on `platform`, from the launcher's `vars`.
pub fn build(
    platform: Platform,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    policy: &EnvPolicy<'_>,
) -> WorkloadEnv {
    let fixed = |name: &[u8]| policy.fixed.iter().any(|(n, _)| n.as_bytes() == name);
    let mut env = match platform {
        Platform::Nontee => filter(vars, policy.allow),
        Platform::Tee => {
            let mut env = WorkloadEnv::default();
            for (name, value) in vars {
                let bytes = name.as_bytes();
                // The config refuses a dangerous name in pass_env unless allow_env has it
                // too; checked again here so this function holds the rule on its own.
                let named = policy.pass.iter().any(|p| p.as_bytes() == bytes)
                    && (!is_dangerous(bytes) || policy.allow.iter().any(|a| a.as_bytes() == bytes));
                if named && !fixed(bytes) {
                    env.passed.push(name.to_string_lossy().into_owned());
                    env.vars.push((name, value));
                } else if !fixed(bytes) {
                    env.dropped.push(name.to_string_lossy().into_owned());
                }
            }
            let has_path = env.vars.iter().any(|(n, _)| n == "PATH");
            if !has_path && !fixed(b"PATH") {
                env.passed.push("PATH".to_owned());
                env.vars.push(("PATH".into(), SAFE_PATH.into()));
            }
            env
        }
    };
    env.vars.retain(|(name, _)| !fixed(name.as_bytes()));
    for (name, value) in policy.fixed {
        if platform == Platform::Tee {
            env.passed.push(name.clone());
        }
        env.vars.push((name.into(), value.into()));
    }
    env
}

/// Whether a variable changes what a loader, shell or interpreter runs.
#[must_use]
pub fn is_dangerous(name: &[u8]) -> bool {
    DROPPED_NAMES.iter().any(|n| n.as_bytes() == name)
        || DROPPED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix.as_bytes()))
}

/// Filters `vars`, keeping dangerous ones only if named in `allow`.
pub fn filter(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    allow: &[String],
) -> WorkloadEnv {
    let mut env = WorkloadEnv::default();
    for (name, value) in vars {
        let bytes = name.as_bytes();
        if is_dangerous(bytes) && !allow.iter().any(|a| a.as_bytes() == bytes) {
            env.dropped.push(name.to_string_lossy().into_owned());
        } else {
            env.vars.push((name, value));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(env: &WorkloadEnv) -> Vec<(String, String)> {
        env.vars
            .iter()
            .map(|(n, v)| {
                (
                    n.to_str().unwrap().to_owned(),
                    v.to_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|&s| s.to_owned()).collect()
    }

    #[test]
    fn tee_passes_only_named_variables_fixed_values_and_a_safe_path() {
        let launcher = vars(&[
            "PATH",
            "HOME",
            "PYTHONUSERBASE",
            "GIT_CONFIG_COUNT",
            "LD_PRELOAD",
            "RUST_LOG",
            "MODE",
        ]);
        let pass = strings(&["RUST_LOG", "LD_PRELOAD", "MISSING"]);
        let fixed = vec![("MODE".to_owned(), "prod".to_owned())];
        let policy = EnvPolicy {
            allow: &[],
            pass: &pass,
            fixed: &fixed,
        };
        let env = build(Platform::Tee, launcher.clone(), &policy);
        assert_eq!(
            names(&env),
            [
                ("RUST_LOG".into(), "v".into()),
                ("PATH".into(), SAFE_PATH.into()),
                ("MODE".into(), "prod".into())
            ]
        );
        assert_eq!(env.passed, ["RUST_LOG", "PATH", "MODE"]);
        assert_eq!(
            env.dropped,
            [
                "PATH",
                "HOME",
                "PYTHONUSERBASE",
                "GIT_CONFIG_COUNT",
                "LD_PRELOAD"
            ]
        );

        // A dangerous name passes only when allow_env names it too.
        let allow = strings(&["LD_PRELOAD"]);
        let env = build(
            Platform::Tee,
            launcher,
            &EnvPolicy {
                allow: &allow,
                ..policy
            },
        );
        assert!(env.passed.contains(&"LD_PRELOAD".to_owned()));
    }

    #[test]
    fn tee_path_comes_from_the_config_when_it_names_one() {
        let fixed = vec![("PATH".to_owned(), "/opt/app/bin".to_owned())];
        let env = build(
            Platform::Tee,
            vars(&["PATH"]),
            &EnvPolicy {
                fixed: &fixed,
                ..EnvPolicy::default()
            },
        );
        assert_eq!(names(&env), [("PATH".into(), "/opt/app/bin".into())]);
        let pass = strings(&["PATH"]);
        let env = build(
            Platform::Tee,
            vars(&["PATH"]),
            &EnvPolicy {
                pass: &pass,
                ..EnvPolicy::default()
            },
        );
        assert_eq!(names(&env), [("PATH".into(), "v".into())]);
    }

    #[test]
    fn nontee_passes_through_minus_the_denylist_and_sets_fixed_values() {
        let fixed = vec![("HOME".to_owned(), "/srv".to_owned())];
        let env = build(
            Platform::Nontee,
            vars(&["PATH", "HOME", "LD_PRELOAD", "PYTHONUSERBASE"]),
            &EnvPolicy {
                fixed: &fixed,
                ..EnvPolicy::default()
            },
        );
        assert_eq!(
            names(&env),
            [
                ("PATH".into(), "v".into()),
                ("PYTHONUSERBASE".into(), "v".into()),
                ("HOME".into(), "/srv".into())
            ]
        );
        assert_eq!(env.dropped, ["LD_PRELOAD"]);
        assert!(env.passed.is_empty());
    }

    fn vars(names: &[&str]) -> Vec<(OsString, OsString)> {
        names
            .iter()
            .map(|n| (OsString::from(n), OsString::from("v")))
            .collect()
    }

    #[test]
    fn drops_loader_and_shell_variables() {
        let env = filter(
            vars(&[
                "PATH",
                "HOME",
                "LD_PRELOAD",
                "LD_LIBRARY_PATH",
                "LD_AUDIT",
                "BASH_ENV",
                "ENV",
                "BASH_FUNC_ls%%",
                "GIT_DIR",
                "NODE_OPTIONS",
                "FOO",
                "ENVIRONMENT",
                "MY_LD_X",
            ]),
            &[],
        );
        let kept: Vec<_> = env.vars.iter().map(|(n, _)| n.to_str().unwrap()).collect();
        assert_eq!(
            kept,
            ["PATH", "HOME", "GIT_DIR", "FOO", "ENVIRONMENT", "MY_LD_X"]
        );
        assert_eq!(
            env.dropped,
            [
                "LD_PRELOAD",
                "LD_LIBRARY_PATH",
                "LD_AUDIT",
                "BASH_ENV",
                "ENV",
                "BASH_FUNC_ls%%",
                "NODE_OPTIONS"
            ]
        );
    }

    #[test]
    fn allow_list_keeps_named_variables_only() {
        let env = filter(
            vars(&["LD_LIBRARY_PATH", "LD_PRELOAD"]),
            &["LD_LIBRARY_PATH".to_owned()],
        );
        assert_eq!(env.vars.len(), 1);
        assert_eq!(env.dropped, ["LD_PRELOAD"]);
    }
}
