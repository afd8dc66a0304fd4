//! Command-line arguments: clap types only, no logic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "trusted-launcher",
    version,
    about = "Start exactly the approved workload inside a TEE, measure it into RTMR3, and exec it",
    override_usage = "trusted-launcher [OPTIONS] [CONFIG]\n       trusted-launcher [OPTIONS] <COMMAND>",
    after_help = "`trusted-launcher CONFIG` is the same as `trusted-launcher run CONFIG` (a drop-in for git-launcher). Without CONFIG: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf (git-launcher's default) if only that exists; the log names the file read.\n\
Exit codes: 0 success, 2 usage or config error, 1 any other launcher failure (`verify`: 3 every check passed but the quote signature was not checked), 4 the output could not be written to stdout (a closed pipe, a full disk); after exec, the workload's own."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Names of the subcommands, and the options that take a value: what the bare
/// `trusted-launcher [OPTIONS] CONFIG` form is rewritten around (see `bare_form_as_run`).
pub const SUBCOMMANDS: &[&str] = &["run", "plan", "verify", "help"];
pub const VALUE_OPTIONS: &[&str] = &[
    "--platform",
    "--event-log",
    "--log-format",
    "--format",
    "--measurement-backend",
    "--dstack-socket",
    "--rtmr3-path",
    "--dstack-runtime-dir",
    "--docker",
    "--docker-config",
    "--compose-file",
    "--near-shared-dir",
];

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// `tee` measures into RTMR3, `nontee` into the local event log (refused inside a TDX guest, where an agent answers, or when the config names a TEE backend) [env: PLATFORM] [default: tee]
    #[arg(long, global = true, value_name = "tee|nontee")]
    pub platform: Option<String>,

    /// Where the local event log is written [default: /run/trusted-launcher/events.jsonl]
    #[arg(long, global = true, value_name = "PATH")]
    pub event_log: Option<PathBuf>,

    /// Format of the launcher's own log on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,

    /// Where tee mode measures [default: auto: the agent's `EmitEvent`, else dstack-native]
    #[arg(long, global = true, value_enum)]
    pub measurement_backend: Option<BackendArg>,

    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "dstack guest-agent socket [default: $DSTACK_SIMULATOR_ENDPOINT where no TDX guest or default agent is found, else the first of /var/run/dstack.sock, /run/dstack.sock, /var/run/dstack/dstack.sock, /run/dstack/dstack.sock]"
    )]
    pub dstack_socket: Option<PathBuf>,

    #[arg(
        long,
        global = true,
        value_name = "PATH",
        help = "The kernel's RTMR3 measurement file, for tdx-sysfs [default: /sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384]"
    )]
    pub rtmr3_path: Option<PathBuf>,

    /// dstack's runtime event directory (lock, digest version, event log), for dstack-native [default: /run/log/dstack]
    #[arg(long, global = true, value_name = "DIR")]
    pub dstack_runtime_dir: Option<PathBuf>,

    /// The docker CLI for image mode [default: docker on the system PATH]
    #[arg(long, global = true, value_name = "PATH")]
    pub docker: Option<PathBuf>,

    /// The launcher's private `DOCKER_CONFIG`, recreated empty on each run [default: /run/trusted-launcher/docker-config]
    #[arg(long, global = true, value_name = "DIR")]
    pub docker_config: Option<PathBuf>,

    /// Image mode: where the rendered compose file is written, instead of the config's `compose_file`
    #[arg(long, global = true, value_name = "PATH")]
    pub compose_file: Option<PathBuf>,

    /// `near` format: where the launcher sees NEAR's shared volume (image-digest.bin is read, mpc-config.toml written there) [default: /mnt/shared]
    #[arg(long, global = true, value_name = "DIR")]
    pub near_shared_dir: Option<PathBuf>,

    /// Config format [default: NEAR's user config or a `.toml` extension, else by content]
    #[arg(long, global = true, value_enum)]
    pub format: Option<ConfigFormatArg>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, resolve, measure, check out and exec the workload
    Run {
        /// Config file [default: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf if only that exists]
        config: Option<PathBuf>,
    },
    /// Check a TDX quote and its event log offline: which workload runs there
    #[cfg(feature = "verify")]
    Verify(Box<VerifyArgs>),
    /// Validate and resolve with no side effects; print the workload and every event `run` would measure
    Plan {
        /// Config file [default: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf if only that exists]
        config: Option<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

/// `verify`'s arguments. The event log to check is the global `--event-log`: with INPUT its
/// entries are appended to the input's log (the tdx-sysfs case), with `--quote` it is the log.
#[cfg(feature = "verify")]
#[derive(Debug, Args)]
#[command(
    after_help = "Every launch attempt in the log must be accepted: with several --expect-commit/--expect-image (or --expect-file) values, each launch's workload must be one of them; likewise its config (--expect-config-sha256) and, for an image launch, its compose digest (--expect-compose-sha256).\n\
Boot events (app-id, compose-hash, instance-id, key-provider, os-image-hash, ...) are read only up to system-ready; --expect-event with a boot event name checks that boot value, with any other name the one event of that name after system-ready (none or several fail).\n\
Exit codes: 0 the quote's signature was verified (DCAP), the log shows at least one complete launch, and every check passed; 3 every check passed but the signature was NOT checked (--skip-dcap); 1 a check failed; 2 usage error; 4 the report could not be written to stdout. `ok` in --json is true only with exit 0."
)]
pub struct VerifyArgs {
    #[arg(
        help = "A dstack GetQuote or Info reply, NEAR public data, or `phala cvms attestation --json` output; `-` reads stdin"
    )]
    pub input: Option<PathBuf>,
    /// A quote file (binary or hex) instead of INPUT
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub quote: Option<PathBuf>,
    #[arg(
        long,
        value_name = "FILE",
        help = "DCAP collateral (dcap-qvl's QuoteCollateralV3 JSON; byte fields hex or arrays)"
    )]
    pub collateral: Option<PathBuf>,
    /// Verification time, Unix seconds [default: now]
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,
    /// Do not check the quote's signature (reported loudly; the exit code is then 3 at best, never 0)
    #[arg(long)]
    pub skip_dcap: bool,
    /// Let a log without any launcher event pass (a boot checked before the launcher ran)
    #[arg(long)]
    pub allow_no_launch: bool,
    #[arg(
        long,
        value_name = "STATUS",
        help = "Accept this TCB status besides UpToDate (repeatable)"
    )]
    pub allow_tcb_status: Vec<String>,
    /// The app-compose to hash against the boot's compose-hash event
    #[arg(long, value_name = "FILE")]
    pub app_compose: Option<PathBuf>,
    /// A boot event NAME: the boot's value; any other NAME: its one event after system-ready (repeatable)
    #[arg(long, value_name = "NAME=HEX")]
    pub expect_event: Vec<String>,
    /// An accepted image: `trusted-launcher.workload` = oci:sha256:HEX (repeatable)
    #[arg(long, value_name = "sha256:HEX")]
    pub expect_image: Vec<String>,
    /// An accepted commit: `trusted-launcher.workload` = git:HEX (repeatable)
    #[arg(long, value_name = "HEX")]
    pub expect_commit: Vec<String>,
    /// An accepted launcher config's SHA-256: `trusted-launcher.config` = sha256:HEX (repeatable)
    #[arg(long, value_name = "HEX")]
    pub expect_config_sha256: Vec<String>,
    /// An accepted rendered compose file's SHA-256: `trusted-launcher.compose` = sha256:HEX (repeatable)
    #[arg(long, value_name = "HEX")]
    pub expect_compose_sha256: Vec<String>,
    #[arg(
        long,
        value_name = "FILE",
        help = "Accepted values, one a line: git:HEX, oci:sha256:HEX, config:sha256:HEX, compose:sha256:HEX, # comments; or {\"approved_hashes\":[..]} / {\"approved_commits\":[..]} JSON (repeatable)"
    )]
    pub expect_file: Vec<PathBuf>,
    /// The boot's compose-hash event's payload
    #[arg(long, value_name = "HEX")]
    pub expect_compose_hash: Option<String>,
    /// The boot's app-id event's payload
    #[arg(long, value_name = "HEX")]
    pub expect_app_id: Option<String>,
    /// MRTD in the quote
    #[arg(long, value_name = "HEX")]
    pub expect_mrtd: Option<String>,
    /// RTMR0 in the quote
    #[arg(long, value_name = "HEX")]
    pub expect_rtmr0: Option<String>,
    /// RTMR1 in the quote
    #[arg(long, value_name = "HEX")]
    pub expect_rtmr1: Option<String>,
    /// RTMR2 in the quote
    #[arg(long, value_name = "HEX")]
    pub expect_rtmr2: Option<String>,
    /// REPORTDATA in the quote (up to 64 bytes, zero padded)
    #[arg(long, value_name = "HEX")]
    pub expect_report_data: Option<String>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
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
    DstackNative,
    TdxSysfs,
    Local,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ConfigFormatArg {
    Line,
    Toml,
    /// NEAR tee-launcher's `/tapp/user_config` (`[launcher_config]` + `[mpc_node_config]`)
    Near,
}
