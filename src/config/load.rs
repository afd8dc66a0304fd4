//! Reading a config: the file (size-capped, regular, UTF-8), its format, a format parser that
//! fills a [`RawConfig`], then validation into a [`LaunchConfig`] that collects every problem
//! with its line, so a user fixes them all in one go.

use std::path::{Path, PathBuf};

use super::checker::Checker;
use super::raw::{KeyNames, Located, RawConfig};
use super::{
    ConfigFormat, LaunchConfig, MeasurementSpec, Problem, ProblemKind, WorkloadSpec, git, image,
    line, near, toml,
};
use crate::capped_read::{CappedReadError, read_capped};
use crate::digest::Sha256Digest;

/// Configs are small; anything larger is not a config.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no config argument given, and neither {} nor {} exists", primary.display(), fallback.display())]
    NoDefault { primary: PathBuf, fallback: PathBuf },
    #[error("config {path} is a {kind}, not a regular file; refusing to wait on it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("config {path} is larger than {max} bytes")]
    TooLarge { path: PathBuf, max: u64 },
    #[error("config {path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("config {path} ({format} format) has {} problem(s)", problems.len())]
    Invalid {
        path: PathBuf,
        format: ConfigFormat,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// One line per problem, each naming the file and line: what the user reads.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        match self {
            Self::Invalid { path, problems, .. } => problems
                .iter()
                .map(|problem| match problem.line {
                    Some(line) => format!("{}:{line}: {}", path.display(), problem.kind),
                    None => format!("{}: {}", path.display(), problem.kind),
                })
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads, parses and validates a config file; the `near` format takes
/// `DEFAULT_IMAGE_DIGEST` from the process environment.
pub fn load(path: &Path, explicit: Option<ConfigFormat>) -> Result<LaunchConfig, ConfigError> {
    load_with_env(path, explicit, &|name| std::env::var(name).ok())
}

/// [`load`] with the environment given: what a compose file's `environment:` would set.
pub fn load_with_env(
    path: &Path,
    explicit: Option<ConfigFormat>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchConfig, ConfigError> {
    let bytes = read_config(path)?;
    parse_bytes(path, &bytes, explicit, env)
}

/// [`load_with_env`] on bytes already read from `path` (which names the file in messages and,
/// by its extension, may choose the format): the parser every config goes through.
pub fn parse_bytes(
    path: &Path,
    bytes: &[u8],
    explicit: Option<ConfigFormat>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<LaunchConfig, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_owned(),
    })?;
    let format = ConfigFormat::detect(explicit, path, text);
    if format == ConfigFormat::Near {
        let mut problems = Vec::new();
        let default_digest = env(near::DEFAULT_DIGEST_ENV);
        let parsed = near::parse(text, default_digest.as_deref(), &mut problems);
        return finish(path, format, bytes, parsed, problems);
    }
    let (raw, keys, mut problems) = match format {
        ConfigFormat::Line => {
            let (raw, problems) = line::parse(text);
            (raw, line::KEYS, problems)
        }
        ConfigFormat::Toml | ConfigFormat::Near => {
            let (raw, problems) = toml::parse(text);
            (raw, toml::KEYS, problems)
        }
    };
    let syntax_failed = problems
        .iter()
        .any(|p| matches!(p.kind, ProblemKind::Syntax { .. }) && format == ConfigFormat::Toml);
    let validated = if syntax_failed {
        None
    } else {
        validate(raw, &keys, &mut problems)
    };
    finish(path, format, bytes, validated, problems)
}

fn finish(
    path: &Path,
    format: ConfigFormat,
    bytes: &[u8],
    validated: Option<(WorkloadSpec, MeasurementSpec)>,
    mut problems: Vec<Problem>,
) -> Result<LaunchConfig, ConfigError> {
    match validated {
        Some((workload, measurement)) if problems.is_empty() => Ok(LaunchConfig {
            path: path.to_owned(),
            format,
            sha256: Sha256Digest::of(bytes),
            workload,
            measurement,
        }),
        _ => {
            // Top to bottom, problems without a line (missing keys) last.
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                format,
                problems,
            })
        }
    }
}

fn read_config(path: &Path) -> Result<Vec<u8>, ConfigError> {
    read_capped(path, MAX_CONFIG_BYTES).map_err(|error| match error {
        CappedReadError::Io(source) => ConfigError::Read {
            path: path.to_owned(),
            source,
        },
        CappedReadError::NotRegular(kind) => ConfigError::NotRegular {
            path: path.to_owned(),
            kind,
        },
        CappedReadError::TooLarge => ConfigError::TooLarge {
            path: path.to_owned(),
            max: MAX_CONFIG_BYTES,
        },
    })
}

/// Checks every field; returns `None` (with problems recorded) if anything is wrong.
fn validate(
    mut raw: RawConfig,
    keys: &KeyNames,
    problems: &mut Vec<Problem>,
) -> Option<(WorkloadSpec, MeasurementSpec)> {
    let before = problems.len();
    let image = raw.image.take();
    let mut check = Checker { problems };
    let measurement = measurement(&mut raw, &mut check);
    let workload = match (raw.git_section, image) {
        (Some(_), Some(image)) => {
            check.push(image.line, ProblemKind::BothSections);
            None
        }
        (None, None) => {
            check
                .problems
                .push(Problem::unlocated(ProblemKind::MissingSection {
                    section: "git] or [image",
                }));
            None
        }
        (Some(_), None) => {
            git::validate(raw, keys, &mut check).map(|spec| WorkloadSpec::Git(Box::new(spec)))
        }
        (None, Some(image)) => {
            image::validate(image, &mut check).map(|spec| WorkloadSpec::Image(Box::new(spec)))
        }
    };
    if check.problems.len() > before {
        return None;
    }
    Some((workload?, measurement))
}

fn measurement(raw: &mut RawConfig, check: &mut Checker<'_>) -> MeasurementSpec {
    let path = |check: &mut Checker<'_>, value: Option<Located<String>>| {
        value
            .and_then(|v| check.non_empty(v))
            .map(|v| PathBuf::from(v.value))
    };
    MeasurementSpec {
        event_log: path(check, raw.event_log.take()),
        backend: raw
            .backend
            .take()
            .and_then(|v| check.non_empty(v))
            .and_then(|v| check.backend(&v)),
        dstack_socket: path(check, raw.dstack_socket.take()),
        rtmr3_path: path(check, raw.rtmr3_path.take()),
        dstack_runtime_dir: path(check, raw.dstack_runtime_dir.take()),
    }
}

/// Tests' loader: `text` written to a file named `name`, its problems' lines with the
/// temporary path shortened to `name`.
#[cfg(test)]
pub(super) fn load_text(name: &str, text: &str) -> Result<LaunchConfig, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    load(&path, None).map_err(|e| {
        e.lines()
            .into_iter()
            .map(|l| l.replace(&path.display().to_string(), name))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::checker::uses_remote_helper;
    use crate::config::{LaunchMode, RelativePath};

    const SHA: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";

    #[test]
    fn line_config_defaults_to_entrypoint_mode() {
        let config = load_text(
            "c.conf",
            &format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n"),
        )
        .unwrap();
        assert_eq!(config.format, ConfigFormat::Line);
        let WorkloadSpec::Git(git) = &config.workload else {
            panic!("not git")
        };
        assert_eq!(git.commit.to_string(), SHA);
        assert_eq!(
            git.launch,
            LaunchMode::Entrypoint(RelativePath::parse("entrypoint.sh").unwrap())
        );
        assert_eq!(
            config.sha256,
            Sha256Digest::of(
                format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n").as_bytes()
            )
        );
    }

    #[test]
    fn toml_detected_by_extension_and_content() {
        let text = format!(
            "[git]\nrepo = \"file:///r\"\ncommit = \"{SHA}\"\nwork_dir = \"/w\"\nrun = \"x\"\n"
        );
        assert_eq!(
            load_text("c.toml", &text).unwrap().format,
            ConfigFormat::Toml
        );
        assert_eq!(
            load_text("c.conf", &text).unwrap().format,
            ConfigFormat::Toml
        );
    }

    #[test]
    fn reject_table() {
        let base = format!("REPO_URL=file:///r\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n");
        for (extra, expected) in [
            ("RUN_CMD=\n", "c.conf:4: RUN_CMD must not be empty"),
            (
                "INSTALL_CMD=make\n",
                "c.conf:4: INSTALL_CMD requires RUN_CMD",
            ),
            (
                "REPO_SUBDIR=../x\n",
                r#"c.conf:4: REPO_SUBDIR must not contain '..' (got "../x")"#,
            ),
            (
                "REPO_SUBDIR=/abs\n",
                r#"c.conf:4: REPO_SUBDIR must be a relative path (got "/abs")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=a/../../b.sh\n",
                r#"c.conf:4: ENTRYPOINT_SCRIPT must not contain '..' (got "a/../../b.sh")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=.git/hooks/x\n",
                r#"c.conf:4: ENTRYPOINT_SCRIPT must not point into .git (got ".git/hooks/x")"#,
            ),
            (
                "ENTRYPOINT_SCRIPT=e.sh\nRUN_CMD=x\n",
                "c.conf:5: ENTRYPOINT_SCRIPT and RUN_CMD cannot both be set (default mode runs the entry script, advanced mode runs RUN_CMD)",
            ),
            (
                "OVERRIDE_COMMIT=main\n",
                r#"c.conf:4: OVERRIDE_COMMIT must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got "main")"#,
            ),
            (
                "ALLOW_ENV=LD_PRELOAD,A=B\n",
                r#"c.conf:4: ALLOW_ENV entry is not an environment variable name (got "A=B")"#,
            ),
            (
                "RUN_CMD=a\u{1b}b\n",
                "c.conf:4: RUN_CMD contains a control character",
            ),
            (
                "MEASUREMENT_BACKEND=tpm\n",
                r#"c.conf:4: MEASUREMENT_BACKEND must be one of auto, dstack, dstack-native, tdx-sysfs, local (got "tpm")"#,
            ),
        ] {
            assert_eq!(
                load_text("c.conf", &format!("{base}{extra}")).unwrap_err(),
                vec![expected],
                "{extra:?}"
            );
        }
    }

    #[test]
    fn reports_all_problems_with_lines() {
        let errors = load_text(
            "c.conf",
            "REPO_URL=ext::sh -c evil\nCOMMIT_SHA=main\nFOO=1\n",
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                r#"c.conf:1: repository URL must not contain whitespace (got "ext::sh -c evil")"#,
                r#"c.conf:2: COMMIT_SHA must be 40 or 64 lowercase hex digits, not a branch, tag or short id (got "main")"#,
                "c.conf:3: unknown key FOO",
                "c.conf: missing required key WORK_DIR",
            ]
        );
    }

    #[test]
    fn repo_url_rejects_remote_helpers() {
        let errors = load_text(
            "c.conf",
            &format!("REPO_URL=ext::evil\nCOMMIT_SHA={SHA}\nWORK_DIR=/w\n"),
        )
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                r#"c.conf:1: repository URL must not use the <transport>::<address> remote-helper syntax (it runs a helper program) (got "ext::evil")"#
            ]
        );
        for ok in [
            "https://h/r.git",
            "git@github.com:o/r.git",
            "/srv/r.git",
            "file:///r",
            "ssh://h:22/r",
        ] {
            assert!(!uses_remote_helper(ok), "{ok}");
        }
    }

    #[test]
    fn toml_missing_section_and_keys() {
        assert_eq!(
            load_text("c.toml", "").unwrap_err(),
            vec!["c.toml: missing required section [git] or [image]"]
        );
        assert_eq!(
            load_text("c.toml", "[git]\nrepo = \"r\"\n").unwrap_err(),
            vec![
                "c.toml: missing required key git.commit",
                "c.toml: missing required key git.work_dir"
            ]
        );
    }

    #[test]
    fn rejects_non_utf8_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.conf");
        std::fs::write(&path, b"REPO_URL=\xff\n").unwrap();
        assert!(matches!(
            load(&path, None),
            Err(ConfigError::NotUtf8 { .. })
        ));
        std::fs::write(&path, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(
            load(&path, None),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
