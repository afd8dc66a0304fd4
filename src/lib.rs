//! trusted-launcher: start exactly the approved workload inside a TEE and prove it.
//!
//! The pipeline lives in [`launch`]; [`run`] is the only place that prints errors and
//! chooses exit codes.

pub mod approval;
pub mod capped_read;
pub mod cli;
pub mod config;
pub mod digest;
pub mod error;
pub mod git;
pub mod hex;
pub mod launch;
pub mod log;
pub mod measure;
pub mod plan;
pub mod platform;
pub mod tdx_quote;
pub mod workload;
pub mod workload_env;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Parser as _;

use cli::{BackendArg, Cli, Command, ConfigFormatArg, LogFormatArg};
use config::{ConfigFormat, DEFAULT_CONFIG_PATH};
use error::{EXIT_OK, EXIT_USAGE, Error};
use launch::Options;
use log::{LogFormat, Logger};
use measure::BackendChoice;
use platform::Platform;

/// Runs the command line and returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = bare_form_as_run(args.into_iter().map(Into::into).collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            };
        }
    };
    let log = Logger::new(match cli.global.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    match dispatch(cli, &log) {
        Ok(()) => EXIT_OK,
        Err(error) => {
            for line in error.lines() {
                log.error(&line);
            }
            error.exit_code()
        }
    }
}

fn dispatch(cli: Cli, log: &Logger) -> Result<(), Error> {
    let options = Options {
        platform: platform(cli.global.platform.as_deref())?,
        event_log: cli.global.event_log,
        backend: cli.global.measurement_backend.map(|b| match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Dstack => BackendChoice::Dstack,
            BackendArg::TdxSysfs => BackendChoice::TdxSysfs,
            BackendArg::Local => BackendChoice::Local,
        }),
        dstack_socket: cli.global.dstack_socket,
        rtmr3_path: cli.global.rtmr3_path,
        format: cli.global.format.map(|f| match f {
            ConfigFormatArg::Line => ConfigFormat::Line,
            ConfigFormatArg::Toml => ConfigFormat::Toml,
        }),
    };
    let config_or_default =
        |config: Option<PathBuf>| config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    match cli.command {
        Command::Plan { config, json } => {
            let resolved = launch::resolve(&config_or_default(config), &options, log)?;
            let text = plan::render(&resolved, json);
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::Usage(format!("cannot write plan to stdout: {e}")))
        }
        Command::Run { config } => match launch::run(&config_or_default(config), &options, log)? {},
    }
}

/// `trusted-launcher [OPTIONS] [CONFIG]` (git-launcher's form) means `run`: inserts `run`
/// before the first positional argument unless it names a subcommand. Help and version
/// requests are left alone.
fn bare_form_as_run(mut args: Vec<OsString>) -> Vec<OsString> {
    let wants_info = args
        .iter()
        .skip(1)
        .any(|a| ["-h", "--help", "-V", "--version"].contains(&a.to_string_lossy().as_ref()));
    let mut index = 1;
    while let Some(arg) = args.get(index) {
        let text = arg.to_string_lossy();
        if text == "--" || !text.starts_with('-') {
            if cli::SUBCOMMANDS.contains(&text.as_ref()) {
                return args;
            }
            break;
        }
        index += if cli::VALUE_OPTIONS.contains(&text.as_ref()) {
            2
        } else {
            1
        };
    }
    if index >= args.len() && wants_info {
        return args;
    }
    args.insert(index.min(args.len()), OsString::from("run"));
    args
}

/// `--platform` wins over `PLATFORM`; both are case-insensitive; `tee` by default.
fn platform(flag: Option<&str>) -> Result<Platform, Error> {
    let (value, source) = match flag {
        Some(value) => (value.to_owned(), "--platform"),
        None => match std::env::var_os("PLATFORM") {
            None => return Ok(Platform::Tee),
            Some(value) => (
                value.to_string_lossy().into_owned(),
                "environment variable PLATFORM",
            ),
        },
    };
    Platform::parse(&value).ok_or_else(|| {
        Error::Usage(format!(
            "invalid {source} value {value:?} (expected tee or nontee)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        bare_form_as_run(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn bare_form_becomes_run() {
        for (input, expected) in [
            (&["tl"][..], &["tl", "run"][..]),
            (&["tl", "c.conf"], &["tl", "run", "c.conf"]),
            (
                &["tl", "--platform", "nontee", "c.conf"],
                &["tl", "--platform", "nontee", "run", "c.conf"],
            ),
            (
                &["tl", "--platform=nontee", "c.conf"],
                &["tl", "--platform=nontee", "run", "c.conf"],
            ),
            (
                &["tl", "--platform", "nontee"],
                &["tl", "--platform", "nontee", "run"],
            ),
            (&["tl", "plan", "c.conf"], &["tl", "plan", "c.conf"]),
            (
                &["tl", "--format", "line", "run", "c"],
                &["tl", "--format", "line", "run", "c"],
            ),
            (&["tl", "--help"], &["tl", "--help"]),
            (&["tl", "-V"], &["tl", "-V"]),
            (
                &["tl", "--", "-weird.conf"],
                &["tl", "run", "--", "-weird.conf"],
            ),
        ] {
            assert_eq!(rewrite(input), expected, "{input:?}");
        }
    }
}
