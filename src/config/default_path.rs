//! Which config `run` and `plan` read when the command line names none.
//!
//! Ours first; else git-launcher's, so a deployment that mounts its config where git-launcher
//! reads it (`/etc/git-launcher/config.conf`, DESIGN §7) works unchanged. The two paths are
//! fixed here, never taken from the environment.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where `run` and `plan` read the config from when none is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/trusted-launcher/config.toml";

/// git-launcher's default config, read when ours does not exist.
pub const GIT_LAUNCHER_CONFIG_PATH: &str = "/etc/git-launcher/config.conf";

/// The config chosen without a command-line argument, and why (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultConfig {
    pub path: PathBuf,
    pub reason: String,
}

/// Chooses between the two fixed default paths.
pub fn default_config() -> Result<DefaultConfig, ConfigError> {
    choose(
        Path::new(DEFAULT_CONFIG_PATH),
        Path::new(GIT_LAUNCHER_CONFIG_PATH),
    )
}

/// `primary` unless it is absent, then `fallback` unless it is absent too. Anything present
/// at a path (a directory, a dangling symlink, a file we may not read) counts: reading it
/// then fails with an error naming it, rather than silently falling through to the other.
pub(super) fn choose(primary: &Path, fallback: &Path) -> Result<DefaultConfig, ConfigError> {
    if !absent(primary) {
        return Ok(DefaultConfig {
            path: primary.to_owned(),
            reason: "no config argument".to_owned(),
        });
    }
    if !absent(fallback) {
        return Ok(DefaultConfig {
            path: fallback.to_owned(),
            reason: format!(
                "no config argument and no {}; git-launcher's default",
                primary.display()
            ),
        });
    }
    Err(ConfigError::NoDefault {
        primary: primary.to_owned(),
        fallback: fallback.to_owned(),
    })
}

fn absent(path: &Path) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(_) => false,
        Err(error) => matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_wins_then_git_launchers_then_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("trusted-launcher/config.toml");
        let theirs = dir.path().join("git-launcher/config.conf");

        let error = choose(&ours, &theirs).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "no config argument given, and neither {} nor {} exists",
                ours.display(),
                theirs.display()
            )
        );

        std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
        std::fs::write(&theirs, "").unwrap();
        assert_eq!(
            choose(&ours, &theirs).unwrap(),
            DefaultConfig {
                path: theirs.clone(),
                reason: format!(
                    "no config argument and no {}; git-launcher's default",
                    ours.display()
                ),
            }
        );

        std::fs::create_dir_all(ours.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/nonexistent", &ours).unwrap();
        assert_eq!(
            choose(&ours, &theirs).unwrap().path,
            ours,
            "a dangling link counts"
        );
    }

    #[test]
    fn a_file_where_a_directory_should_be_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        let theirs = dir.path().join("c.conf");
        std::fs::write(&theirs, "").unwrap();
        assert_eq!(
            choose(&file.join("config.toml"), &theirs).unwrap().path,
            theirs
        );
    }
}
