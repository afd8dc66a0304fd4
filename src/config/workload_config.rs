//! `[image.workload_config]`: where the workload's own config goes, in which format, and
//! its content (an opaque table, checked only for what the chosen format cannot hold).

use std::path::PathBuf;

use super::problem::Invalid;
use super::raw::RawWorkloadConfig;
use super::{Checker, ProblemKind};
use crate::config_value::ConfigValue;

pub use crate::config_value::ConfigTable;

/// The encodings a workload config can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadConfigFormat {
    Toml,
    Json,
}

/// The table the launcher adds to the workload's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LauncherTable {
    /// `[trusted_launcher]`: the approved identity, image and approved list.
    TrustedLauncher,
    /// NEAR's `[tee]`: authority (dstack in tee mode, local in nontee), `image_hash`,
    /// `latest_allowed_hash_file_path`.
    NearTee,
}

/// `[image.workload_config]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfigSpec {
    /// Absolute path the file is written to (atomically, before `ready`).
    pub path: PathBuf,
    pub format: WorkloadConfigFormat,
    /// The table as configured, without the launcher's reserved table.
    pub content: ConfigTable,
    pub table: LauncherTable,
}

pub(super) fn validate(
    raw: RawWorkloadConfig,
    check: &mut Checker<'_>,
) -> Option<WorkloadConfigSpec> {
    let path = check
        .required(raw.path, "image.workload_config.path")
        .and_then(|v| {
            check.parsed(&v, Invalid::Path, |text| {
                if text.starts_with('/') {
                    Ok(PathBuf::from(text))
                } else {
                    Err("must be an absolute path")
                }
            })
        });
    let format = match raw.format.and_then(|v| check.non_empty(v)) {
        None => Some(WorkloadConfigFormat::Toml),
        Some(v) => match v.value.as_str() {
            "toml" => Some(WorkloadConfigFormat::Toml),
            "json" => Some(WorkloadConfigFormat::Json),
            _ => {
                check.push(
                    v.line,
                    ProblemKind::InvalidChoice {
                        key: v.key,
                        value: v.value,
                        expected: "toml, json",
                    },
                );
                None
            }
        },
    };
    let content = raw.content.map(|c| (c.line, c.value));
    if let (Some(WorkloadConfigFormat::Json), Some((line, table))) = (format, &content)
        && let Some(at) =
            ConfigValue::Table(table.clone()).first_non_finite("image.workload_config.content")
    {
        check.push(
            *line,
            ProblemKind::InvalidValue {
                key: "image.workload_config.content",
                value: at,
                reason: "holds a float JSON cannot encode (inf or nan)",
            },
        );
        return None;
    }
    Some(WorkloadConfigSpec {
        path: path?,
        format: format?,
        content: content.map(|(_, table)| table).unwrap_or_default(),
        table: LauncherTable::TrustedLauncher,
    })
}
