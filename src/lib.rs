//! trusted-launcher: start exactly the approved workload inside a TEE and prove it.
//!
//! The pipeline lives in [`launch`]; [`run`] is the only place that prints errors and
//! chooses exit codes.

pub mod approval;
pub mod atomic_file;
pub mod base64;
pub mod capped_read;
pub mod cli;
pub mod compose;
pub mod compose_document;
pub mod config;
pub mod config_value;
pub mod digest;
pub mod docker;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod git;
pub mod git_launch;
pub mod hex;
pub mod image_launch;
pub mod image_store;
pub mod launch;
pub mod log;
pub mod measure;
pub mod plan;
pub mod platform;
pub mod registry;
pub mod strict_json;
pub mod subprocess;
pub mod tdx_quote;
pub mod tee_presence;
pub mod verify;
pub mod watch;
pub mod work_dir;
pub mod workload;
pub mod workload_config;
pub mod workload_env;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Parser as _;

use cli::{BackendArg, Cli, Command, ConfigFormatArg, LogFormatArg, VerifyArgs};
use config::ConfigFormat;
use digest::{CommitId, ImageDigest};
use error::{EXIT_OK, EXIT_USAGE, Error};
use launch::Options;
use log::{LogFormat, Logger};
use measure::BackendChoice;
use platform::Platform;
use verify::{Expectations, VerifyOptions};
use workload::Workload;

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
        Ok(code) => code,
        Err(error) => {
            for line in error.lines() {
                log.error(&line);
            }
            error.exit_code()
        }
    }
}

fn dispatch(cli: Cli, log: &Logger) -> Result<i32, Error> {
    let config_or_default = |config: Option<PathBuf>| -> Result<PathBuf, Error> {
        if let Some(config) = config {
            return Ok(config);
        }
        let chosen = config::default_config()?;
        log.info(&format!(
            "config: {} ({})",
            chosen.path.display(),
            chosen.reason
        ));
        Ok(chosen.path)
    };
    let global = cli.global;
    let options = || -> Result<Options, Error> {
        let (platform, platform_source) = platform(global.platform.as_deref())?;
        Ok(Options {
            platform,
            platform_source,
            event_log: global.event_log.clone(),
            backend: global.measurement_backend.map(|b| match b {
                BackendArg::Auto => BackendChoice::Auto,
                BackendArg::Dstack => BackendChoice::Dstack,
                BackendArg::DstackNative => BackendChoice::DstackNative,
                BackendArg::TdxSysfs => BackendChoice::TdxSysfs,
                BackendArg::Local => BackendChoice::Local,
            }),
            dstack_socket: global.dstack_socket.clone(),
            rtmr3_path: global.rtmr3_path.clone(),
            dstack_runtime_dir: global.dstack_runtime_dir.clone(),
            docker: global.docker.clone(),
            docker_config: global.docker_config.clone(),
            near_shared_dir: global.near_shared_dir.clone(),
            compose_file: global.compose_file.clone(),
            format: global.format.map(|f| match f {
                ConfigFormatArg::Line => ConfigFormat::Line,
                ConfigFormatArg::Toml => ConfigFormat::Toml,
                ConfigFormatArg::Near => ConfigFormat::Near,
            }),
        })
    };
    match cli.command {
        Command::Plan { config, json } => {
            let options = options()?;
            let resolved = launch::resolve(&config_or_default(config)?, &options, log)?;
            print(&plan::render(&resolved, json))?;
            Ok(EXIT_OK)
        }
        Command::Verify(args) => {
            let json = args.json;
            let options = verify_options(*args, global.event_log.clone())?;
            let report = verify::verify(&options);
            print(&if json { report.json() } else { report.text() })?;
            Ok(report.exit_code())
        }
        Command::Run { config } => {
            let options = options()?;
            launch::run(&config_or_default(config)?, &options, log)
        }
    }
}

fn print(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(|e| Error::Usage(format!("cannot write to stdout: {e}")))
}

/// A hex flag value of exactly `N` bytes.
fn exact<const N: usize>(flag: &str, text: &str) -> Result<[u8; N], Error> {
    hex::decode_exact::<N>(text).ok_or_else(|| {
        Error::Usage(format!(
            "{flag} must be {} lowercase hex digits (got {text:?})",
            N * 2
        ))
    })
}

/// A hex flag of exactly `N` bytes.
fn fixed<const N: usize>(flag: &str, value: Option<String>) -> Result<Option<[u8; N]>, Error> {
    value.map(|text| exact::<N>(flag, &text)).transpose()
}

/// A repeatable hex flag of exactly `N` bytes.
fn many<const N: usize>(flag: &str, values: &[String]) -> Result<Vec<[u8; N]>, Error> {
    values.iter().map(|text| exact::<N>(flag, text)).collect()
}

/// A hex flag of at most `max` bytes.
fn bytes(flag: &str, value: Option<String>, max: usize) -> Result<Option<Vec<u8>>, Error> {
    value
        .map(|text| {
            hex::decode(&text)
                .filter(|b| b.len() <= max)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{flag} must be lowercase hex of at most {max} bytes (got {text:?})"
                    ))
                })
        })
        .transpose()
}

/// Checks `verify`'s flag values; a malformed expectation is a usage error.
fn verify_options(args: VerifyArgs, event_log: Option<PathBuf>) -> Result<VerifyOptions, Error> {
    if args.input.is_none() && args.quote.is_none() {
        return Err(Error::Usage("verify needs INPUT or --quote FILE".into()));
    }
    let mut allowed_tcb = vec!["UpToDate".to_owned()];
    for status in args.allow_tcb_status {
        if !verify::TCB_STATUSES.contains(&status.as_str()) {
            return Err(Error::Usage(format!(
                "--allow-tcb-status {status:?} is not a TCB status (one of {})",
                verify::TCB_STATUSES.join(", ")
            )));
        }
        allowed_tcb.push(status);
    }
    let mut events = Vec::new();
    for item in args.expect_event {
        let parsed = item
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .and_then(|(name, payload)| hex::decode(payload).map(|p| (name.to_owned(), p)));
        events.push(parsed.ok_or_else(|| {
            Error::Usage(format!(
                "--expect-event must be NAME=HEXPAYLOAD (got {item:?})"
            ))
        })?);
    }
    let mut workloads = Vec::new();
    for text in args.expect_image {
        let image = ImageDigest::parse(&text).ok_or_else(|| {
            Error::Usage(format!(
                "--expect-image must be sha256:<64 lowercase hex> (got {text:?})"
            ))
        })?;
        workloads.push(Workload::Image(image));
    }
    for text in args.expect_commit {
        let commit = CommitId::parse(&text).ok_or_else(|| {
            Error::Usage(format!(
                "--expect-commit must be 40 or 64 lowercase hex digits (got {text:?})"
            ))
        })?;
        workloads.push(Workload::Git(commit));
    }
    let mut configs = many::<32>("--expect-config-sha256", &args.expect_config_sha256)?;
    let mut composes = many::<32>("--expect-compose-sha256", &args.expect_compose_sha256)?;
    for path in &args.expect_file {
        let file = verify::ExpectFile::read(path).map_err(|e| Error::Usage(e.to_string()))?;
        workloads.extend(file.workloads);
        configs.extend(file.configs);
        composes.extend(file.composes);
    }
    let now = match args.now {
        Some(now) => now,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Usage("the clock is before 1970; pass --now".into()))?
            .as_secs(),
    };
    Ok(VerifyOptions {
        input: args.input,
        quote: args.quote,
        event_log,
        collateral: args.collateral,
        app_compose: args.app_compose,
        now,
        skip_dcap: args.skip_dcap,
        allow_no_launch: args.allow_no_launch,
        allowed_tcb,
        expect: Expectations {
            events,
            workloads,
            configs,
            composes,
            compose_hash: fixed("--expect-compose-hash", args.expect_compose_hash)?,
            app_id: bytes("--expect-app-id", args.expect_app_id, 64)?,
            mrtd: fixed("--expect-mrtd", args.expect_mrtd)?,
            rtmr: [
                fixed("--expect-rtmr0", args.expect_rtmr0)?,
                fixed("--expect-rtmr1", args.expect_rtmr1)?,
                fixed("--expect-rtmr2", args.expect_rtmr2)?,
            ],
            report_data: bytes("--expect-report-data", args.expect_report_data, 64)?,
        },
    })
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

/// `--platform` wins over `PLATFORM`; both are case-insensitive; `tee` by default. Returns
/// the platform and where it came from.
fn platform(flag: Option<&str>) -> Result<(Platform, &'static str), Error> {
    let (value, source) = match flag {
        Some(value) => (value.to_owned(), "--platform"),
        None => match std::env::var_os("PLATFORM") {
            None => return Ok((Platform::Tee, "the default")),
            Some(value) => (
                value.to_string_lossy().into_owned(),
                "environment variable PLATFORM",
            ),
        },
    };
    Platform::parse(&value)
        .map(|platform| (platform, source))
        .ok_or_else(|| {
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
