//! Command-line arguments: clap types only, no logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "trusted-launcher",
    version,
    about = "Start exactly the approved workload inside a TEE, measure it into RTMR3, and exec it",
    override_usage = "trusted-launcher [OPTIONS] [CONFIG]\n       trusted-launcher [OPTIONS] <COMMAND>",
    after_help = "`trusted-launcher CONFIG` is the same as `trusted-launcher run CONFIG` (a drop-in for git-launcher).\n\
Exit codes: 0 success, 2 usage or config error, 1 any other launcher failure; after exec, the workload's own."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Names of the subcommands, and the options that take a value: what the bare
/// `trusted-launcher [OPTIONS] CONFIG` form is rewritten around (see `bare_form_as_run`).
pub const SUBCOMMANDS: &[&str] = &["run", "plan", "help"];
pub const VALUE_OPTIONS: &[&str] = &[
    "--platform",
    "--event-log",
    "--log-format",
    "--format",
    "--measurement-backend",
    "--dstack-socket",
    "--rtmr3-path",
];

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// `tee` measures into RTMR3, `nontee` into the local event log [env: PLATFORM] [default: tee]
    #[arg(long, global = true, value_name = "tee|nontee")]
    pub platform: Option<String>,

    /// Where the local event log is written [default: /run/trusted-launcher/events.jsonl]
    #[arg(long, global = true, value_name = "PATH")]
    pub event_log: Option<PathBuf>,

    /// Format of the launcher's own log on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,

    /// Where tee mode measures [default: auto: the dstack agent, else the kernel's RTMR3 file]
    #[arg(long, global = true, value_enum)]
    pub measurement_backend: Option<BackendArg>,

    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "dstack guest-agent socket [default: $DSTACK_SIMULATOR_ENDPOINT, else the first of /var/run/dstack.sock, /run/dstack.sock, /var/run/dstack/dstack.sock, /run/dstack/dstack.sock]"
    )]
    pub dstack_socket: Option<PathBuf>,

    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "The kernel's RTMR3 measurement file, for tdx-sysfs [default: /sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384]"
    )]
    pub rtmr3_path: Option<PathBuf>,

    /// Config format [default: `.toml` extension, else by content]
    #[arg(long, global = true, value_enum)]
    pub format: Option<ConfigFormatArg>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, resolve, measure, check out and exec the workload
    Run {
        /// Config file [default: /etc/trusted-launcher/config.toml]
        config: Option<PathBuf>,
    },
    /// Validate and resolve with no side effects; print the workload and every event `run` would measure
    Plan {
        /// Config file [default: /etc/trusted-launcher/config.toml]
        config: Option<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BackendArg {
    Auto,
    Dstack,
    TdxSysfs,
    Local,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ConfigFormatArg {
    Line,
    Toml,
}
