//! trusted-launcher: start exactly the approved workload inside a TEE and prove it.
//!
//! The pipeline lives in [`launch`]; [`run`] is the only place that prints errors and
//! chooses exit codes.

pub mod approval;
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
pub mod workload;
pub mod workload_env;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Parser as _;

use cli::{Cli, Command, ConfigFormatArg, LogFormatArg};
use config::{ConfigFormat, DEFAULT_CONFIG_PATH};
use error::{EXIT_OK, EXIT_USAGE, Error};
use launch::Options;
use log::{LogFormat, Logger};
use platform::Platform;

/// Runs the command line and returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
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
        format: cli.global.format.map(|f| match f {
            ConfigFormatArg::Line => ConfigFormat::Line,
            ConfigFormatArg::Toml => ConfigFormat::Toml,
        }),
    };
    let config_or_default =
        |config: Option<PathBuf>| config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    match cli.command {
        Some(Command::Plan { config, json }) => {
            let resolved = launch::resolve(&config_or_default(config), &options, log)?;
            let text = plan::render(&resolved, json);
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(|e| Error::Usage(format!("cannot write plan to stdout: {e}")))
        }
        Some(Command::Run { config }) => {
            match launch::run(&config_or_default(config), &options, log)? {}
        }
        None => match launch::run(&config_or_default(cli.config), &options, log)? {},
    }
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
