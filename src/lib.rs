//! trusted-launcher: start exactly the approved workload inside a TEE and prove it.
//!
//! The pipeline lives in `launch`; [`run`] is the only place that prints errors and
//! chooses exit codes.
//!
//! Modules are private to the crate except the parsers of untrusted bytes (approved lists,
//! configs, digests, hex, registry replies and references, compose documents, strict JSON,
//! event logs and agent replies, TDX quotes, `verify`'s inputs), which the integration tests
//! and the fuzz targets call as the binary does, the measurement contract, and `docker`'s
//! defaults the tests check.

pub mod approval;
mod atomic_file;
mod base64;
mod capped_read;
mod cli;
mod compose;
pub mod compose_document;
pub mod config;
mod config_value;
pub mod contract;
pub mod digest;
pub mod docker;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod git;
pub mod hex;
mod image_store;
mod launch;
mod log;
pub mod measure;
mod plan;
mod platform;
pub mod registry;
mod sigstore;
mod stop_signal;
pub mod strict_json;
mod subprocess;
pub mod tdx_quote;
mod tee_presence;
#[cfg(feature = "verify")]
pub mod verify;
mod work_dir;
mod workload;
mod workload_config;
mod workload_env;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;

use clap::{CommandFactory as _, FromArgMatches as _};

#[cfg(feature = "verify")]
use cli::VerifyArgs;
use cli::{BackendArg, Cli, Command, ConfigFormatArg, LaunchArgs, LogFormatArg};
use config::ConfigFormat;
use error::{EXIT_OK, EXIT_USAGE, Error};
use launch::Options;
use log::{LogFormat, Logger};
use measure::BackendChoice;
use platform::Platform;
#[cfg(feature = "verify")]
use verify::{Expectations, VerifyOptions};
#[cfg(feature = "verify")]
use workload::Workload;

/// Runs the command line and returns the process exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::command()
        .try_get_matches_from(&args)
        .and_then(|mut matches| Cli::from_arg_matches_mut(&mut matches))
    {
        Ok(cli) => cli,
        Err(error) => return clap_error(&error, &args),
    };
    let log = Logger::new(match cli.log_format {
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

/// Help and version requests print as clap renders them (stdout, exit 0); an argument error
/// is one line in the launcher's log form (`trusted-launcher: error: ...`, or a JSON line with
/// `--log-format json`), exit 2.
fn clap_error(error: &clap::Error, args: &[OsString]) -> i32 {
    if !error.use_stderr() {
        let _ = error.print();
        return EXIT_OK;
    }
    let json = args.windows(2).any(|pair| {
        pair.first().is_some_and(|flag| flag == "--log-format")
            && pair.get(1).is_some_and(|value| value == "json")
    }) || args.iter().any(|arg| arg == "--log-format=json");
    let log = Logger::new(if json {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    log.error(&one_line(&error.to_string()));
    EXIT_USAGE
}

/// clap's multi-line error as one line: the message, its tip, and where help is.
fn one_line(rendered: &str) -> String {
    let mut message = String::new();
    let mut hint = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(text) = line.strip_prefix("error: ") {
            text.clone_into(&mut message);
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            message.push_str("; ");
            message.push_str(tip);
        } else if let Some(usage) = line.strip_prefix("Usage: ") {
            hint = format!(" (usage: {usage}; see --help)");
        }
    }
    if message.is_empty() {
        message = rendered.trim().replace('\n', "; ");
    }
    format!("{message}{hint}")
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
    let before = cli.launch;
    match cli.command {
        None => launch::run(&config_or_default(cli.config)?, &options(before)?, log),
        Some(command) => {
            if let Some(config) = &cli.config {
                return Err(Error::Usage(format!(
                    "{} is a CONFIG of the bare form; with a command, give it after the command",
                    config.display()
                )));
            }
            match command {
                Command::Run { launch, config } => {
                    let options = options(launch.or(before))?;
                    launch::run(&config_or_default(config)?, &options, log)
                }
                Command::Plan {
                    launch,
                    config,
                    json,
                } => {
                    let options = options(launch.or(before))?;
                    let resolved = launch::resolve(&config_or_default(config)?, &options, log)?;
                    print(&plan::render(&resolved, json))?;
                    Ok(EXIT_OK)
                }
                #[cfg(feature = "verify")]
                Command::Verify(args) => {
                    if let Some(flag) = before.first_given() {
                        return Err(Error::Usage(format!(
                            "{flag} is an option of run and plan, not of verify (see trusted-launcher verify --help)"
                        )));
                    }
                    let json = args.json;
                    let options = verify_options(*args)?;
                    let report = verify::verify(&options);
                    print(&if json { report.json() } else { report.text() })?;
                    Ok(report.exit_code())
                }
                #[cfg(not(feature = "verify"))]
                Command::Verify { .. } => Err(Error::Usage(
                    "verify is not in this build: the launcher image's binary is built without the verify feature; use the release's trusted-launcher-verifier (or a default cargo build)".into(),
                )),
                Command::Help { command } => help(command.as_deref()),
            }
        }
    }
}

/// `help [COMMAND]`: the help of the program or of one command, on stdout.
fn help(command: Option<&str>) -> Result<i32, Error> {
    let mut program = Cli::command();
    let commands: Vec<String> = program
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let text = match command {
        None => program.render_help(),
        Some(name) => program
            .find_subcommand_mut(name)
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| {
                let mut sub = sub.clone().bin_name(format!("trusted-launcher {name}"));
                sub.render_help()
            })
            .ok_or_else(|| {
                Error::Usage(format!(
                    "help: no command {name:?} (commands: {})",
                    commands.join(", ")
                ))
            })?,
    };
    print(&text.to_string())?;
    Ok(EXIT_OK)
}

/// The launch options as the pipeline takes them.
fn options(launch: LaunchArgs) -> Result<Options, Error> {
    let (platform, platform_source) = platform(launch.platform.as_deref())?;
    Ok(Options {
        platform,
        platform_source,
        event_log: launch.event_log,
        backend: launch.measurement_backend.map(|b| match b {
            BackendArg::Auto => BackendChoice::Auto,
            BackendArg::Dstack => BackendChoice::Dstack,
            BackendArg::DstackNative => BackendChoice::DstackNative,
            BackendArg::TdxSysfs => BackendChoice::TdxSysfs,
            BackendArg::Local => BackendChoice::Local,
        }),
        dstack_socket: launch.dstack_socket,
        rtmr3_path: launch.rtmr3_path,
        dstack_runtime_dir: launch.dstack_runtime_dir,
        docker: launch.docker,
        docker_config: launch.docker_config,
        near_shared_dir: launch.near_shared_dir,
        compose_file: launch.compose_file,
        format: launch.format.map(|f| match f {
            ConfigFormatArg::Line => ConfigFormat::Line,
            ConfigFormatArg::Toml => ConfigFormat::Toml,
            ConfigFormatArg::Near => ConfigFormat::Near,
        }),
    })
}

/// Writes the output; a failed write (a closed pipe, a full disk) is [`Error::Output`].
fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Output)
}

#[cfg(feature = "verify")]
/// `verify`'s typed flags as its options; the files they name (`--expect-file`, `--plan`)
/// add to the accepted sets.
fn verify_options(args: VerifyArgs) -> Result<VerifyOptions, Error> {
    if args.input.is_none() && args.quote.is_none() {
        return Err(Error::Usage("verify needs INPUT or --quote FILE".into()));
    }
    let mut allowed_tcb = vec!["UpToDate".to_owned()];
    allowed_tcb.extend(args.allow_tcb_status);
    let mut expect = Expectations {
        events: args.expect_event,
        workloads: (args.expect_image.into_iter().map(Workload::Image))
            .chain(args.expect_commit.into_iter().map(Workload::Git))
            .collect(),
        configs: args.expect_config_sha256,
        composes: args.expect_compose_sha256,
        signers: args.expect_signer,
        compose_hash: args.expect_compose_hash,
        app_id: args.expect_app_id,
        mrtd: args.expect_mrtd,
        rtmr: [args.expect_rtmr0, args.expect_rtmr1, args.expect_rtmr2],
        report_data: args.expect_report_data,
    };
    for path in &args.expect_file {
        let file = verify::ExpectFile::read(path).map_err(|e| Error::Usage(e.to_string()))?;
        expect.workloads.extend(file.workloads);
        expect.configs.extend(file.configs);
        expect.composes.extend(file.composes);
    }
    for path in &args.plan {
        let plan = verify::PlanFile::read(path).map_err(|e| Error::Usage(e.to_string()))?;
        expect.workloads.push(plan.workload);
        expect.configs.push(plan.config);
        expect.composes.extend(plan.compose);
    }
    if let Some(url) = &args.pccs_url {
        verify::check_url(url).map_err(|e| Error::Usage(e.to_string()))?;
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
        event_log: args.event_log,
        collateral: args.collateral,
        app_compose: args.app_compose,
        now,
        now_given: args.now.is_some(),
        offline: args.offline,
        pccs_url: args.pccs_url,
        pccs_ca_file: args.pccs_ca_file,
        cache_dir: args.cache_dir,
        save_collateral: args.save_collateral,
        skip_dcap: args.skip_dcap,
        allow_no_launch: args.allow_no_launch,
        allowed_tcb,
        expect,
    })
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
    use clap::Parser as _;

    /// clap 4's rendering (error, tip, usage, "For more information") becomes one line.
    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: trusted-launcher verify [OPTIONS] [INPUT]\n\nFor more information, try '--help'.\n";
        assert_eq!(
            one_line(rendered),
            "unexpected argument '--bogus' found; to pass '--bogus' as a value, use '-- --bogus' (usage: trusted-launcher verify [OPTIONS] [INPUT]; see --help)"
        );
        assert_eq!(one_line("odd\ntext"), "odd; text");
    }

    /// The bare form needs no list of subcommands or value options: clap tells a CONFIG from
    /// a command, and options before either.
    #[test]
    fn the_bare_form_is_parsed_by_clap() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).unwrap();
        let bare = parse(&["tl", "--platform", "nontee", "c.conf"]);
        assert!(bare.command.is_none());
        assert_eq!(bare.config, Some(PathBuf::from("c.conf")));
        assert_eq!(bare.launch.platform.as_deref(), Some("nontee"));
        let run = parse(&["tl", "--format", "line", "run", "c"]);
        assert!(matches!(run.command, Some(Command::Run { .. })));
        assert!(run.config.is_none());
        let dashed = parse(&["tl", "--", "-weird.conf"]);
        assert_eq!(dashed.config, Some(PathBuf::from("-weird.conf")));
        assert!(parse(&["tl"]).config.is_none());
    }
}
