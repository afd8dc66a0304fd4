//! The `near` format: NEAR tee-launcher's `/tapp/user_config`, accepted as it is.
//!
//! ```toml
//! [launcher_config]
//! image_reference = "nearone/mpc-node:3.0.0"   # a tag may be written; only the digest decides
//! mpc_hash_override = "sha256:<hex>"           # optional, must be in the approved list
//! port_mappings = [{ host = 8080, container = 8080 }]
//! pull_max_retries = 10
//! pull_retry_interval_secs = 1
//! pull_max_delay_secs = 60
//! [mpc_node_config]                            # opaque: the node's config
//! ```
//! It becomes an image config with NEAR's choices: approved list
//! `/mnt/shared/image-digest.bin`, pinned digest `DEFAULT_IMAGE_DIGEST` from the environment
//! (it only runs while that list is absent, and is measured), project and container
//! `mpc-node`, `[mpc_node_config]` plus NEAR's `[tee]` written to
//! `/mnt/shared/mpc-config.toml`, and NEAR's `mpc-image-digest` event.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_span::value::{Table, Value, ValueInner};

use super::problem::{Problem, ProblemKind, line_of};
use super::toml::Reader;
use super::workload_config::{LauncherTable, WorkloadConfigFormat, WorkloadConfigSpec};
use super::{
    DEFAULT_COMPOSE_FILE, DEFAULT_DOCKER_HOST, DEFAULT_PLATFORM, DEFAULT_PULL_TIMEOUT, ImageSpec,
    MAX_TIMEOUT_SECONDS, MeasurementSpec, ServiceSpec, WorkloadSpec,
};
use crate::compose::NEAR_MPC_NODE;
use crate::config_value::ConfigValue;
use crate::digest::ImageDigest;
use crate::registry::{ImageReference, Platform};
use crate::workload_config::{DSTACK_ENDPOINT, NEAR_APPROVED_LIST, NEAR_TEE_TABLE};

/// The environment variable NEAR's launcher takes its default digest from.
pub const DEFAULT_DIGEST_ENV: &str = "DEFAULT_IMAGE_DIGEST";
const DEFAULT_DIGEST_KEY: &str = "DEFAULT_IMAGE_DIGEST (environment)";
pub const NODE_CONFIG_PATH: &str = "/mnt/shared/mpc-config.toml";
const NODE_CONFIG_NAME: &str = "mpc-config.toml";
const APPROVED_LIST_NAME: &str = "image-digest.bin";
const PROJECT: &str = "mpc-node";
const SECTIONS: [&str; 2] = ["launcher_config", "mpc_node_config"];
/// Bounds of NEAR's pull retry keys: retries, and seconds of one wait.
const MAX_RETRIES: i64 = 100;
const MAX_DELAY_SECONDS: i64 = 3600;

/// A TOML document whose top-level tables are NEAR's (and `launcher_config` among them).
#[must_use]
pub fn looks_like_near(text: &str) -> bool {
    let Ok(mut root) = toml_span::parse(text) else {
        return false;
    };
    match root.take() {
        ValueInner::Table(table) => {
            table.contains_key("launcher_config")
                && table.keys().all(|k| SECTIONS.contains(&k.name.as_ref()))
        }
        _ => false,
    }
}

/// Reads a NEAR user config; `None` with problems recorded if anything is wrong.
pub(super) fn parse(
    text: &str,
    default_digest: Option<&str>,
    problems: &mut Vec<Problem>,
) -> Option<(WorkloadSpec, MeasurementSpec)> {
    let before = problems.len();
    let mut r = Reader { text, problems };
    let mut root = r.document()?;
    let launcher = r.required_section(&mut root, "launcher_config");
    let node = r.required_section(&mut root, "mpc_node_config");
    r.unknown_keys(root, "");
    let (mut launcher, node) = (launcher?, node?);

    let reference = r
        .required_string(&mut launcher, "image_reference")
        .and_then(|(line, text)| r.reference(line, &text));
    let override_digest = r
        .optional_string(&mut launcher, "mpc_hash_override")
        .and_then(|(line, text)| r.digest(Some(line), "launcher_config.mpc_hash_override", &text));
    let ports = r.ports(&mut launcher);
    let retries = r.bounded(&mut launcher, "pull_max_retries", MAX_RETRIES);
    let _interval = r.bounded(&mut launcher, "pull_retry_interval_secs", MAX_DELAY_SECONDS);
    let delay = r.bounded(&mut launcher, "pull_max_delay_secs", MAX_DELAY_SECONDS);
    r.unknown_keys(launcher, "launcher_config.");
    let content = r.node_config(node);
    let digest = if let Some(text) = default_digest {
        r.digest(None, DEFAULT_DIGEST_KEY, text)
    } else {
        r.problems.push(Problem::unlocated(ProblemKind::MissingKey {
            key: DEFAULT_DIGEST_KEY,
        }));
        None
    };
    if r.problems.len() > before {
        return None;
    }
    // NEAR retries a failed pull `pull_max_retries` times, waiting up to
    // `pull_max_delay_secs` between; one bounded pull gets that budget on top of its own.
    let extra = retries.unwrap_or(0).saturating_mul(delay.unwrap_or(0));
    let pull_timeout = DEFAULT_PULL_TIMEOUT
        .saturating_add(Duration::from_secs(extra.unsigned_abs()))
        .min(Duration::from_secs(MAX_TIMEOUT_SECONDS));
    let spec = ImageSpec {
        reference: reference?,
        digest: digest?,
        approved_list: Some(PathBuf::from(NEAR_APPROVED_LIST)),
        override_digest,
        platform: Platform::parse(DEFAULT_PLATFORM).ok()?,
        insecure: false,
        ca_file: None,
        near_compat: true,
        username: None,
        password_env: None,
        project: PROJECT.to_owned(),
        compose_template: None,
        built_in_template: NEAR_MPC_NODE,
        compose_file: PathBuf::from(DEFAULT_COMPOSE_FILE),
        detach: true,
        docker_host: DEFAULT_DOCKER_HOST.to_owned(),
        pull_timeout,
        watch: None,
        signature: None,
        service: ServiceSpec {
            command: Some(
                ["/app/mpc-node", "start-with-config-file", NODE_CONFIG_PATH]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            environment: vec![("DSTACK_ENDPOINT".to_owned(), DSTACK_ENDPOINT.to_owned())],
            ports,
            volumes: [
                "/tapp:/tapp:ro",
                "shared-volume:/mnt/shared",
                "mpc-data:/data",
            ]
            .map(str::to_owned)
            .to_vec(),
            cap_add: Vec::new(),
            restart: "on-failure".to_owned(),
            dstack_socket: true,
            docker_socket: false,
        },
        workload_config: Some(WorkloadConfigSpec {
            path: PathBuf::from(NODE_CONFIG_PATH),
            format: WorkloadConfigFormat::Toml,
            content,
            table: LauncherTable::NearTee,
        }),
    };
    Some((
        WorkloadSpec::Image(Box::new(spec)),
        MeasurementSpec::default(),
    ))
}

/// The launcher's own view of NEAR's shared volume (`--near-shared-dir`): where it reads
/// the approved list and writes the node config. The node still sees `/mnt/shared`.
pub fn relocate_shared(spec: &mut ImageSpec, dir: &Path) {
    spec.approved_list = Some(dir.join(APPROVED_LIST_NAME));
    if let Some(config) = spec.workload_config.as_mut() {
        config.path = dir.join(NODE_CONFIG_NAME);
    }
}

/// NEAR's keys, read with the TOML format's reader.
impl<'de> Reader<'de, '_> {
    fn wrong(&mut self, line: usize, key: &str, expected: &'static str) {
        self.problems.push(Problem::at(
            line,
            ProblemKind::WrongType {
                key: key.to_owned(),
                expected,
            },
        ));
    }

    fn required_section(
        &mut self,
        root: &mut Table<'de>,
        name: &'static str,
    ) -> Option<Table<'de>> {
        let Some(mut value) = root.remove(name) else {
            self.problems
                .push(Problem::unlocated(ProblemKind::MissingSection {
                    section: name,
                }));
            return None;
        };
        self.table(&mut value, name)
    }

    fn optional_string(&mut self, table: &mut Table<'de>, name: &str) -> Option<(usize, String)> {
        let mut value = table.remove(name)?;
        let line = self.line(&value);
        if let ValueInner::String(text) = value.take() {
            return Some((line, text.into_owned()));
        }
        self.wrong(line, &format!("launcher_config.{name}"), "a string");
        None
    }

    fn required_string(
        &mut self,
        table: &mut Table<'de>,
        name: &'static str,
    ) -> Option<(usize, String)> {
        if !table.contains_key(name) {
            self.problems
                .push(Problem::unlocated(ProblemKind::MissingKey {
                    key: "launcher_config.image_reference",
                }));
            return None;
        }
        self.optional_string(table, name)
    }

    /// NEAR's `image_reference` may carry a tag (or a digest): dropped, the digest decides.
    fn reference(&mut self, line: usize, text: &str) -> Option<ImageReference> {
        let name = text.split_once('@').map_or(text, |(name, _)| name);
        let last = name.rfind('/').map_or(0, |i| i + 1);
        let name = match name.get(last..).and_then(|tail| tail.find(':')) {
            Some(colon) => name.get(..last + colon).unwrap_or(name),
            None => name,
        };
        match ImageReference::parse(name) {
            Ok(reference) => Some(reference),
            Err(reason) => {
                self.problems.push(Problem::at(
                    line,
                    ProblemKind::InvalidReference {
                        key: "launcher_config.image_reference",
                        value: text.to_owned(),
                        reason,
                    },
                ));
                None
            }
        }
    }

    fn digest(
        &mut self,
        line: Option<usize>,
        key: &'static str,
        text: &str,
    ) -> Option<ImageDigest> {
        let digest = ImageDigest::parse(text);
        if digest.is_none() {
            let kind = ProblemKind::InvalidChoice {
                key,
                value: text.to_owned(),
                expected: "sha256:<64 lowercase hex>",
            };
            self.problems.push(match line {
                Some(line) => Problem::at(line, kind),
                None => Problem::unlocated(kind),
            });
        }
        digest
    }

    /// An integer from 0 to `max`, when set.
    fn bounded(&mut self, table: &mut Table<'de>, name: &str, max: i64) -> Option<i64> {
        let mut value = table.remove(name)?;
        let line = self.line(&value);
        match value.take() {
            ValueInner::Integer(n) if (0..=max).contains(&n) => Some(n),
            _ => {
                self.wrong(
                    line,
                    &format!("launcher_config.{name}"),
                    if max == MAX_RETRIES {
                        "an integer from 0 to 100"
                    } else {
                        "an integer from 0 to 3600 (seconds)"
                    },
                );
                None
            }
        }
    }

    /// `port_mappings = [{host = u16, container = u16}]`, both non-zero, as `host:container`.
    fn ports(&mut self, table: &mut Table<'de>) -> Vec<String> {
        let Some(mut value) = table.remove("port_mappings") else {
            return Vec::new();
        };
        let line = self.line(&value);
        let port = |value: Option<Value<'_>>| match value.map(|mut v| v.take()) {
            Some(ValueInner::Integer(n)) => u16::try_from(n).ok().filter(|p| *p > 0),
            _ => None,
        };
        let mappings = match value.take() {
            ValueInner::Array(items) => items
                .into_iter()
                .map(|mut item| match item.take() {
                    ValueInner::Table(mut entry) => {
                        let host = port(entry.remove("host"));
                        let container = port(entry.remove("container"));
                        match (host, container, entry.is_empty()) {
                            (Some(h), Some(c), true) => Some(format!("{h}:{c}")),
                            _ => None,
                        }
                    }
                    _ => None,
                })
                .collect::<Option<Vec<_>>>(),
            _ => None,
        };
        mappings.unwrap_or_else(|| {
            self.wrong(
                line,
                "launcher_config.port_mappings",
                "an array of { host = <1-65535>, container = <1-65535> }",
            );
            Vec::new()
        })
    }

    /// The node's table, opaque, except NEAR's `[tee]`, which only the launcher writes.
    fn node_config(&mut self, mut node: Table<'de>) -> crate::config_value::ConfigTable {
        if let Some((key, _)) = node.get_key_value(NEAR_TEE_TABLE) {
            self.problems.push(Problem::at(
                line_of(self.text, key.span.start),
                ProblemKind::Reserved {
                    key: format!("mpc_node_config.{NEAR_TEE_TABLE}"),
                },
            ));
            node.remove(NEAR_TEE_TABLE);
        }
        match ConfigValue::from_toml(&mut Value::new(ValueInner::Table(node))) {
            ConfigValue::Table(table) => table,
            _ => crate::config_value::ConfigTable::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:564a5aebc33495d5610626d23cb9e3da8e9d531d0edff9e38aa1ccaf059c15d3";

    fn parsed(text: &str) -> Result<Box<ImageSpec>, Vec<String>> {
        let mut problems = Vec::new();
        match parse(text, Some(DIGEST), &mut problems) {
            Some((WorkloadSpec::Image(spec), _)) => Ok(spec),
            _ => Err(super::super::problem::render(&problems)),
        }
    }

    #[test]
    fn detects_only_near_s_two_tables() {
        assert!(looks_like_near("[launcher_config]\n[mpc_node_config]\n"));
        assert!(!looks_like_near("[image]\n[launcher_config]\n"));
        assert!(!looks_like_near("[mpc_node_config]\n"));
        assert!(!looks_like_near("REPO_URL=x\n"));
    }

    #[test]
    fn a_tag_or_digest_in_image_reference_is_dropped() {
        for reference in [
            "nearone/mpc-node:3.0.0",
            "nearone/mpc-node",
            "docker.io/nearone/mpc-node:latest@sha256:00",
        ] {
            let spec = parsed(&format!(
                "[launcher_config]\nimage_reference = \"{reference}\"\n[mpc_node_config]\n"
            ))
            .unwrap();
            assert_eq!(
                spec.reference.docker_name(),
                "nearone/mpc-node",
                "{reference}"
            );
            assert_eq!(spec.digest.to_string(), DIGEST);
        }
        let spec = parsed(
            "[launcher_config]\nimage_reference = \"localhost:5000/mpc:1\"\n[mpc_node_config]\n",
        )
        .unwrap();
        assert_eq!(spec.reference.docker_name(), "localhost:5000/mpc");
    }

    #[test]
    fn pull_retries_extend_the_bounded_pull() {
        let spec = parsed(
            "[launcher_config]\nimage_reference = \"a/b\"\npull_max_retries = 10\npull_max_delay_secs = 60\n[mpc_node_config]\n",
        )
        .unwrap();
        assert_eq!(spec.pull_timeout, Duration::from_secs(600 + 600));
    }

    #[test]
    fn reject_table() {
        let head = "[launcher_config]\nimage_reference = \"a/b\"\n";
        for (extra, expected) in [
            (
                "port_mappings = [{ host = 0, container = 80 }]\n",
                "3: launcher_config.port_mappings must be an array of { host = <1-65535>, container = <1-65535> }",
            ),
            (
                "port_mappings = [{ host = 80, container = 80, proto = \"udp\" }]\n",
                "3: launcher_config.port_mappings must be an array of { host = <1-65535>, container = <1-65535> }",
            ),
            (
                "pull_max_retries = 1000\n",
                "3: launcher_config.pull_max_retries must be an integer from 0 to 100",
            ),
            (
                "pull_max_delay_secs = -1\n",
                "3: launcher_config.pull_max_delay_secs must be an integer from 0 to 3600 (seconds)",
            ),
            (
                "mpc_hash_override = \"latest\"\n",
                "3: launcher_config.mpc_hash_override must be one of sha256:<64 lowercase hex> (got \"latest\")",
            ),
            ("extra = 1\n", "3: unknown key launcher_config.extra"),
        ] {
            assert_eq!(
                parsed(&format!("{head}{extra}[mpc_node_config]\n")).unwrap_err(),
                vec![expected],
                "{extra:?}"
            );
        }
        assert_eq!(
            parsed("[launcher_config]\n[mpc_node_config]\n").unwrap_err(),
            vec!["0: missing required key launcher_config.image_reference"]
        );
    }
}
