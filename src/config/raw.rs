//! The unvalidated config both formats parse into: each value with its key and line.

use crate::config_value::ConfigTable;

/// A value as written, with the key that set it and its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<T> {
    pub key: &'static str,
    pub line: usize,
    pub value: T,
}

/// The fields of a config before validation. Both parsers fill it; `LaunchConfig`'s
/// `TryFrom` checks it and reports every problem at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawConfig {
    pub repo: Option<Located<String>>,
    pub commit: Option<Located<String>>,
    pub work_dir: Option<Located<String>>,
    pub subdir: Option<Located<String>>,
    pub entrypoint: Option<Located<String>>,
    pub install: Option<Located<String>>,
    pub run: Option<Located<String>>,
    pub approved_list: Option<Located<String>>,
    pub override_commit: Option<Located<String>>,
    pub allow_env: Option<Located<Vec<String>>>,
    pub pass_env: Option<Located<Vec<String>>>,
    /// `git.env` (TOML only): fixed values for the workload's environment.
    pub env: Option<Located<Vec<(String, String)>>>,
    pub event_log: Option<Located<String>>,
    pub backend: Option<Located<String>>,
    pub dstack_socket: Option<Located<String>>,
    pub rtmr3_path: Option<Located<String>>,
    pub dstack_runtime_dir: Option<Located<String>>,
    /// Seconds, as written (TOML: an integer).
    pub install_timeout: Option<Located<String>>,
    /// Line of the `[git]` table (TOML); the line format is always git.
    pub git_section: Option<usize>,
    /// `[git.signature]` (TOML only).
    pub git_signature: Option<super::signature::RawSignature>,
    pub image: Option<RawImage>,
}

/// `[image]` as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawImage {
    pub line: usize,
    pub reference: Option<Located<String>>,
    pub digest: Option<Located<String>>,
    pub approved_list: Option<Located<String>>,
    pub override_digest: Option<Located<String>>,
    pub platform: Option<Located<String>>,
    pub insecure: Option<Located<bool>>,
    pub username: Option<Located<String>>,
    pub password_env: Option<Located<String>>,
    pub ca_file: Option<Located<String>>,
    pub near_compat: Option<Located<bool>>,
    pub project: Option<Located<String>>,
    pub compose_template: Option<Located<String>>,
    pub compose_file: Option<Located<String>>,
    pub detach: Option<Located<bool>>,
    pub command: Option<Located<Vec<String>>>,
    pub environment: Option<Located<Vec<(String, String)>>>,
    pub ports: Option<Located<Vec<String>>>,
    pub volumes: Option<Located<Vec<String>>>,
    pub cap_add: Option<Located<Vec<String>>>,
    pub restart: Option<Located<String>>,
    pub dstack_socket: Option<Located<bool>>,
    pub docker_socket: Option<Located<bool>>,
    pub docker_host: Option<Located<String>>,
    /// Seconds, as written (an integer).
    pub pull_timeout: Option<Located<String>>,
    /// Seconds, as written (an integer).
    pub watch_interval: Option<Located<String>>,
    pub watch_switch: Option<Located<bool>>,
    pub workload_config: Option<RawWorkloadConfig>,
    /// `[image.signature]`.
    pub signature: Option<super::signature::RawSignature>,
}

/// `[image.workload_config]` as written; `content` is opaque.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawWorkloadConfig {
    pub line: usize,
    pub path: Option<Located<String>>,
    pub format: Option<Located<String>>,
    pub content: Option<Located<ConfigTable>>,
}

/// How a format names each field, so messages use the spelling the user wrote.
#[derive(Clone, Copy, Debug)]
pub struct KeyNames {
    pub repo: &'static str,
    pub commit: &'static str,
    pub work_dir: &'static str,
    pub subdir: &'static str,
    pub entrypoint: &'static str,
    pub install: &'static str,
    pub run: &'static str,
    pub approved_list: &'static str,
    pub override_commit: &'static str,
    pub allow_env: &'static str,
    pub pass_env: &'static str,
    pub event_log: &'static str,
    pub backend: &'static str,
    pub dstack_socket: &'static str,
    pub rtmr3_path: &'static str,
    pub dstack_runtime_dir: &'static str,
    pub install_timeout: &'static str,
}
