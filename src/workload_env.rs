//! The environment the workload receives: the launcher's own, minus variables that change
//! what a loader, shell or interpreter runs, unless the attested config allows them by name.
//!
//! The launcher cannot tell a variable from the attested app-compose from one an operator
//! injected, so only the config's allow-list is trusted.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt as _;

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

/// The filtered environment and the names that were dropped.
#[derive(Debug, Default)]
pub struct WorkloadEnv {
    pub vars: Vec<(OsString, OsString)>,
    pub dropped: Vec<String>,
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
