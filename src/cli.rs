//! Command-line arguments: clap types and the value parsers that make them typed; no logic.
//!
//! Each subcommand owns its options, so `verify --help` lists only what `verify` reads. The
//! launch options (`--platform`, `--docker`, ...) belong to `run` and `plan`, and are also
//! accepted before the subcommand and in the bare form `trusted-launcher [OPTIONS] [CONFIG]`
//! (git-launcher's), which clap parses as a top-level CONFIG beside the optional subcommand.

use std::path::PathBuf;

#[cfg(feature = "verify")]
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(feature = "verify")]
use crate::digest::{CommitId, ImageDigest};
#[cfg(feature = "verify")]
use crate::hex;

/// `--version`: the package version, and the source commit when built from a git checkout
/// (build.rs; nothing when built without `.git`).
pub const VERSION: &str = env!("TRUSTED_LAUNCHER_VERSION");

#[derive(Debug, Parser)]
#[command(
    name = "trusted-launcher",
    version = VERSION,
    about = "Start exactly the approved workload inside a TEE, measure it into RTMR3, and exec it",
    override_usage = "trusted-launcher [OPTIONS] [CONFIG]\n       trusted-launcher <COMMAND> [OPTIONS]",
    disable_help_subcommand = true,
    after_help = "`trusted-launcher CONFIG` is the same as `trusted-launcher run CONFIG` (a drop-in for git-launcher); the options above are `run`'s and `plan`'s. Without CONFIG: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf (git-launcher's default) if only that exists; the log names the file read.\n\
Exit codes: 0 success, 2 usage or config error, 1 any other launcher failure (`verify`: 3 every check passed but the quote signature was not checked), 4 the output could not be written to stdout (a closed pipe, a full disk); watch mode stopped by SIGTERM/SIGINT after stopping its workload: 143/130; after exec, the workload's own."
)]
pub struct Cli {
    /// Format of the launcher's own log on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,

    #[command(flatten)]
    pub launch: LaunchArgs,

    /// Config file of the bare form (same as `run CONFIG`)
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The options of a launch (`run`) and of its dry run (`plan`).
#[derive(Debug, Args, Default)]
pub struct LaunchArgs {
    /// `tee` measures into RTMR3, `nontee` into the local event log (refused inside a TDX guest, where an agent answers, or when the config names a TEE backend) [env: PLATFORM] [default: tee]
    #[arg(long, value_name = "tee|nontee")]
    pub platform: Option<String>,

    /// Where the local event log is written [default: /run/trusted-launcher/events.jsonl]
    #[arg(long, value_name = "PATH")]
    pub event_log: Option<PathBuf>,

    /// Where tee mode measures [default: auto: the agent's `EmitEvent`, else dstack-native]
    #[arg(long, value_enum)]
    pub measurement_backend: Option<BackendArg>,

    #[arg(
        long,
        value_name = "PATH",
        help = "dstack guest-agent socket [default: $DSTACK_SIMULATOR_ENDPOINT where no TDX guest or default agent is found, else the first of /var/run/dstack.sock, /run/dstack.sock, /var/run/dstack/dstack.sock, /run/dstack/dstack.sock]"
    )]
    pub dstack_socket: Option<PathBuf>,

    #[arg(
        long,
        value_name = "PATH",
        help = "The kernel's RTMR3 measurement file, for tdx-sysfs [default: /sys/devices/virtual/misc/tdx_guest/measurements/rtmr3:sha384]"
    )]
    pub rtmr3_path: Option<PathBuf>,

    /// dstack's runtime event directory (lock, digest version, event log), for dstack-native [default: /run/log/dstack]
    #[arg(long, value_name = "DIR")]
    pub dstack_runtime_dir: Option<PathBuf>,

    /// The docker CLI for image mode [default: docker on the system PATH]
    #[arg(long, value_name = "PATH")]
    pub docker: Option<PathBuf>,

    /// The launcher's private `DOCKER_CONFIG`, recreated empty on each run [default: /run/trusted-launcher/docker-config]
    #[arg(long, value_name = "DIR")]
    pub docker_config: Option<PathBuf>,

    /// Image mode: where the rendered compose file is written, instead of the config's `compose_file`
    #[arg(long, value_name = "PATH")]
    pub compose_file: Option<PathBuf>,

    /// `near` format: where the launcher sees NEAR's shared volume (image-digest.bin is read, mpc-config.toml written there) [default: /mnt/shared]
    #[arg(long, value_name = "DIR")]
    pub near_shared_dir: Option<PathBuf>,

    /// Config format [default: NEAR's user config or a `.toml` extension, else by content]
    #[arg(long, value_enum)]
    pub format: Option<ConfigFormatArg>,
}

impl LaunchArgs {
    /// The first launch option given, by its flag: what `verify` refuses before its name.
    #[cfg(feature = "verify")]
    #[must_use]
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.platform.is_some(), "--platform"),
            (self.event_log.is_some(), "--event-log"),
            (self.measurement_backend.is_some(), "--measurement-backend"),
            (self.dstack_socket.is_some(), "--dstack-socket"),
            (self.rtmr3_path.is_some(), "--rtmr3-path"),
            (self.dstack_runtime_dir.is_some(), "--dstack-runtime-dir"),
            (self.docker.is_some(), "--docker"),
            (self.docker_config.is_some(), "--docker-config"),
            (self.compose_file.is_some(), "--compose-file"),
            (self.near_shared_dir.is_some(), "--near-shared-dir"),
            (self.format.is_some(), "--format"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// These options, each one given here replacing the one given before the subcommand.
    #[must_use]
    pub fn or(self, before: Self) -> Self {
        Self {
            platform: self.platform.or(before.platform),
            event_log: self.event_log.or(before.event_log),
            measurement_backend: self.measurement_backend.or(before.measurement_backend),
            dstack_socket: self.dstack_socket.or(before.dstack_socket),
            rtmr3_path: self.rtmr3_path.or(before.rtmr3_path),
            dstack_runtime_dir: self.dstack_runtime_dir.or(before.dstack_runtime_dir),
            docker: self.docker.or(before.docker),
            docker_config: self.docker_config.or(before.docker_config),
            compose_file: self.compose_file.or(before.compose_file),
            near_shared_dir: self.near_shared_dir.or(before.near_shared_dir),
            format: self.format.or(before.format),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, resolve, measure, check out and exec the workload
    Run {
        #[command(flatten)]
        launch: LaunchArgs,
        /// Config file [default: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf if only that exists]
        config: Option<PathBuf>,
    },
    /// Check a TDX quote and its event log offline: which workload runs there
    #[cfg(feature = "verify")]
    Verify(Box<VerifyArgs>),
    /// The launcher image's build has no `verify`: whatever follows is refused, one line
    #[cfg(not(feature = "verify"))]
    #[command(hide = true, disable_help_flag = true)]
    Verify {
        #[arg(num_args = 0.., allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Validate and resolve with no side effects; print the workload and every event `run` would measure
    Plan {
        #[command(flatten)]
        launch: LaunchArgs,
        /// Config file [default: /etc/trusted-launcher/config.toml, else /etc/git-launcher/config.conf if only that exists]
        config: Option<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Print the help of trusted-launcher or of one of its commands
    Help {
        /// The command whose options to show
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
    },
}

/// `verify`'s arguments.
#[cfg(feature = "verify")]
#[derive(Debug, Args)]
#[command(
    after_help = "Every launch attempt in the log must be accepted: with several --expect-commit/--expect-image (or --expect-file, --plan) values, each launch's workload must be one of them; likewise its config (--expect-config-sha256), for an image launch its compose digest (--expect-compose-sha256), and its measured signer (--expect-signer: a launch without trusted-launcher.signer fails).\n\
Boot events (app-id, compose-hash, instance-id, key-provider, os-image-hash, ...) are read only up to system-ready; --expect-event with a boot event name checks that boot value, with any other name the one event of that name after system-ready (none or several fail).\n\
The first line of the report is the verdict: `VERIFIED: runs ...` or `NOT VERIFIED: <the first failing check>`.\n\
Exit codes: 0 the quote's signature was verified (DCAP), the log shows at least one complete launch, and every check passed; 3 every check passed but the signature was NOT checked (--skip-dcap); 1 a check failed; 2 usage error; 4 the report could not be written to stdout. `ok` in --json is true only with exit 0."
)]
// Each bool is an independent command-line switch.
#[allow(clippy::struct_excessive_bools)]
pub struct VerifyArgs {
    #[arg(
        help = "A dstack GetQuote or Info reply, NEAR public data, or `phala cvms attestation --json` output; `-` reads stdin"
    )]
    pub input: Option<PathBuf>,
    /// A quote file instead of INPUT: binary, or hex (`0x` prefix and upper case allowed), or base64
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub quote: Option<PathBuf>,
    /// The event log to check (read, never written): a JSON array or JSON lines such as the launcher's own log; with INPUT its entries are appended to INPUT's log (the tdx-sysfs case), with --quote it is the log
    #[arg(long, value_name = "FILE")]
    pub event_log: Option<PathBuf>,

    /// An accepted signer: the `identity` of `trusted-launcher.signer` (a certificate's email or URI, or key:sha256:HEX); each launch must have measured one of them (repeatable)
    #[arg(long, value_name = "IDENTITY")]
    pub expect_signer: Vec<String>,
    #[arg(
        long,
        value_name = "FILE",
        help = "DCAP collateral (dcap-qvl's QuoteCollateralV3 JSON; byte fields hex or arrays) [default: the input's, else cached, else fetched for the quote's FMSPC]"
    )]
    pub collateral: Option<PathBuf>,
    /// Verification time, Unix seconds [default: now]
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,
    /// Without --collateral: use only cached collateral, never the network
    #[arg(long)]
    pub offline: bool,
    /// Without --collateral: fetch from this PCCS (e.g. `https://pccs.phala.network`) instead of Intel's PCS
    #[arg(long, value_name = "URL")]
    pub pccs_url: Option<String>,
    /// CA certificates (PEM) trusted for the PCS/PCCS's TLS, besides the built-in web roots
    #[arg(long, value_name = "FILE")]
    pub pccs_ca_file: Option<PathBuf>,
    /// Where fetched collateral is cached [default: $XDG_CACHE_HOME/trusted-launcher/collateral, else ~/.cache/trusted-launcher/collateral]
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Write the collateral used (the JSON --collateral reads) to FILE, so an offline run can repeat the verdict
    #[arg(long, value_name = "FILE")]
    pub save_collateral: Option<PathBuf>,
    /// Do not check the quote's signature (reported loudly; the exit code is then 3 at best, never 0)
    #[arg(long)]
    pub skip_dcap: bool,
    /// Let a log without any launcher event pass (a boot checked before the launcher ran)
    #[arg(long)]
    pub allow_no_launch: bool,
    /// Accept this TCB status besides `UpToDate` (repeatable)
    #[arg(long, value_name = "STATUS", value_parser = PossibleValuesParser::new(crate::verify::TCB_STATUSES))]
    pub allow_tcb_status: Vec<String>,
    /// The app-compose to hash against the boot's compose-hash event
    #[arg(long, value_name = "FILE")]
    pub app_compose: Option<PathBuf>,
    /// `plan --json` output: its workload, config digest and compose digest are accepted values, as with the --expect-* flags (repeatable, combinable with them)
    #[arg(long, value_name = "FILE")]
    pub plan: Vec<PathBuf>,
    /// A boot event NAME: the boot's value; any other NAME: its one event after system-ready (repeatable)
    #[arg(long, value_name = "NAME=HEX", value_parser = event_expectation)]
    pub expect_event: Vec<(String, Vec<u8>)>,
    /// An accepted image: `trusted-launcher.workload` = oci:sha256:HEX (repeatable)
    #[arg(long, value_name = "sha256:HEX", value_parser = image_digest)]
    pub expect_image: Vec<ImageDigest>,
    /// An accepted commit: `trusted-launcher.workload` = git:HEX (repeatable)
    #[arg(long, value_name = "HEX", value_parser = commit_id)]
    pub expect_commit: Vec<CommitId>,
    /// An accepted launcher config's SHA-256: `trusted-launcher.config` = sha256:HEX (repeatable)
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<32>)]
    pub expect_config_sha256: Vec<[u8; 32]>,
    /// An accepted rendered compose file's SHA-256: `trusted-launcher.compose` = sha256:HEX (repeatable)
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<32>)]
    pub expect_compose_sha256: Vec<[u8; 32]>,
    #[arg(
        long,
        value_name = "FILE",
        help = "Accepted values, one a line: git:HEX, oci:sha256:HEX, config:sha256:HEX, compose:sha256:HEX, # comments; or {\"approved_hashes\":[..]} / {\"approved_commits\":[..]} JSON (repeatable)"
    )]
    pub expect_file: Vec<PathBuf>,
    /// The boot's compose-hash event's payload
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<32>)]
    pub expect_compose_hash: Option<[u8; 32]>,
    /// The boot's app-id event's payload
    #[arg(long, value_name = "HEX", value_parser = report_data_hex)]
    // `::std::vec::Vec`: one value holding bytes, not clap's "many values" `Vec`.
    pub expect_app_id: Option<::std::vec::Vec<u8>>,
    /// MRTD in the quote
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<48>)]
    pub expect_mrtd: Option<[u8; 48]>,
    /// RTMR0 in the quote
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<48>)]
    pub expect_rtmr0: Option<[u8; 48]>,
    /// RTMR1 in the quote
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<48>)]
    pub expect_rtmr1: Option<[u8; 48]>,
    /// RTMR2 in the quote
    #[arg(long, value_name = "HEX", value_parser = exact_hex::<48>)]
    pub expect_rtmr2: Option<[u8; 48]>,
    /// REPORTDATA in the quote (up to 64 bytes, zero padded)
    #[arg(long, value_name = "HEX", value_parser = report_data_hex)]
    pub expect_report_data: Option<::std::vec::Vec<u8>>,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

/// `--expect-commit`: a full commit id.
#[cfg(feature = "verify")]
fn commit_id(text: &str) -> Result<CommitId, String> {
    CommitId::parse(text).ok_or_else(|| "must be 40 or 64 lowercase hex digits".to_owned())
}

/// `--expect-image`: an image digest.
#[cfg(feature = "verify")]
fn image_digest(text: &str) -> Result<ImageDigest, String> {
    ImageDigest::parse(text).ok_or_else(|| "must be sha256:<64 lowercase hex>".to_owned())
}

/// A hex value of exactly `N` bytes.
#[cfg(feature = "verify")]
fn exact_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    hex::decode_exact::<N>(text).ok_or_else(|| format!("must be {} lowercase hex digits", N * 2))
}

/// A hex value of at most 64 bytes (REPORTDATA's size; dstack's app id fits too).
#[cfg(feature = "verify")]
fn report_data_hex(text: &str) -> Result<Vec<u8>, String> {
    hex::decode(text)
        .filter(|bytes| bytes.len() <= 64)
        .ok_or_else(|| "must be lowercase hex of at most 64 bytes".to_owned())
}

/// `--expect-event NAME=HEX`.
#[cfg(feature = "verify")]
fn event_expectation(text: &str) -> Result<(String, Vec<u8>), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .and_then(|(name, payload)| hex::decode(payload).map(|p| (name.to_owned(), p)))
        .ok_or_else(|| "must be NAME=HEXPAYLOAD".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every typed `verify` flag parses and is read back as its type (a definition that clap
    /// cannot downcast panics here, not in a user's hands).
    #[cfg(feature = "verify")]
    #[test]
    fn every_verify_flag_reads_back_typed() {
        let h32 = "ab".repeat(32);
        let h48 = "cd".repeat(48);
        let commit = "1f".repeat(20);
        let image = format!("sha256:{}", "ee".repeat(32));
        let mut args = vec!["tl", "verify", "in.json", "--now", "5", "--skip-dcap"];
        args.extend(["--allow-tcb-status", "OutOfDate", "--expect-event", "x=01"]);
        args.extend(["--expect-image", &image, "--expect-commit", &commit]);
        args.extend([
            "--expect-config-sha256",
            &h32,
            "--expect-compose-sha256",
            &h32,
        ]);
        args.extend(["--expect-compose-hash", &h32, "--expect-app-id", "0102"]);
        args.extend(["--expect-mrtd", &h48, "--expect-rtmr0", &h48]);
        args.extend(["--expect-rtmr1", &h48, "--expect-rtmr2", &h48]);
        args.extend(["--expect-report-data", "03", "--plan", "p.json"]);
        args.extend(["--event-log", "e.jsonl", "--collateral", "c.json", "--json"]);
        let Some(Command::Verify(verify)) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not verify");
        };
        assert_eq!(verify.expect_app_id, Some(vec![1, 2]));
        assert_eq!(verify.expect_report_data, Some(vec![3]));
        assert_eq!(verify.expect_event, vec![("x".to_owned(), vec![1])]);
        assert_eq!(verify.expect_commit[0].to_string(), commit);
        assert_eq!(verify.expect_image[0].to_string(), image);
        assert_eq!(verify.expect_mrtd, Some([0xcd; 48]));
        assert_eq!(verify.expect_rtmr2, Some([0xcd; 48]));
        assert_eq!(verify.expect_config_sha256, vec![[0xab; 32]]);
        assert_eq!(verify.expect_compose_hash, Some([0xab; 32]));
        assert_eq!(verify.allow_tcb_status, vec!["OutOfDate".to_owned()]);
        assert_eq!(verify.plan, vec![PathBuf::from("p.json")]);
        assert_eq!(verify.event_log, Some(PathBuf::from("e.jsonl")));
    }

    #[cfg(feature = "verify")]
    #[test]
    fn value_parsers_type_the_values() {
        assert!(commit_id(&"a".repeat(40)).is_ok());
        assert!(commit_id(&"A".repeat(40)).is_err());
        assert!(commit_id("main").is_err());
        assert!(image_digest(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(image_digest("latest").is_err());
        assert_eq!(exact_hex::<2>("0aff"), Ok([0x0a, 0xff]));
        assert!(exact_hex::<2>("0a").is_err());
        assert_eq!(report_data_hex("01"), Ok(vec![1]));
        assert!(report_data_hex(&"ab".repeat(65)).is_err());
        assert_eq!(event_expectation("a=01"), Ok(("a".into(), vec![1])));
        assert!(event_expectation("=01").is_err());
        assert!(event_expectation("a=zz").is_err());
    }
}
