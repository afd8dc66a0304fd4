//! `[image.workload_config]`: the workload's own config, carried in the (measured) launcher
//! config, completed with what the launcher decided, and written atomically before `ready`.

use std::path::Path;

use crate::atomic_file;
use crate::config::{LauncherTable, WorkloadConfigFormat, WorkloadConfigSpec};
use crate::config_value::{self, ConfigTable, ConfigValue};
use crate::workload::Workload;

/// The table the launcher adds; a config may not set it.
pub const RESERVED_TABLE: &str = "trusted_launcher";
/// NEAR's table, which its launcher injects into the node config.
pub const NEAR_TEE_TABLE: &str = "tee";
/// Where NEAR's node finds the approved list (`[tee] latest_allowed_hash_file_path`).
pub const NEAR_APPROVED_LIST: &str = "/mnt/shared/image-digest.bin";
/// The dstack agent's socket, as NEAR's node reaches it.
pub const DSTACK_ENDPOINT: &str = "/var/run/dstack.sock";

/// Mode of the written file: the workload may run as another user, and the content is in
/// the attested config anyway (not a place for secrets).
const FILE_MODE: u32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadConfigError {
    #[error("cannot write workload config {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("workload config {path}: {detail}")]
    Encode { path: String, detail: &'static str },
    /// NEAR's launcher refuses a GCP key source inside a TEE (the node would not use dstack).
    #[error(
        "mpc_node_config.gcp is not allowed in tee mode (NEAR's launcher refuses it too); not starting the node"
    )]
    NearGcpInTee,
}

/// What the launcher decided, as the reserved table tells the workload.
#[derive(Debug)]
pub struct Decision<'a> {
    pub workload: Workload,
    /// `repository@digest` as Docker runs it.
    pub image: &'a str,
    pub approved_list: Option<&'a Path>,
    /// Tee mode (`--platform tee`): NEAR's `[tee] authority` is dstack, else local.
    pub tee: bool,
}

/// What the platform forbids in the content, checked before anything is measured.
pub fn check_platform(spec: &WorkloadConfigSpec, tee: bool) -> Result<(), WorkloadConfigError> {
    if spec.table == LauncherTable::NearTee && tee && spec.content.contains_key("gcp") {
        return Err(WorkloadConfigError::NearGcpInTee);
    }
    Ok(())
}

/// NEAR's `[tee]` table, as its launcher writes it.
fn near_tee(decision: &Decision<'_>) -> ConfigTable {
    let text = |s: &str| ConfigValue::String(s.to_owned());
    let authority = if decision.tee {
        ConfigTable::from([
            ("type".to_owned(), text("dstack")),
            ("dstack_endpoint".to_owned(), text(DSTACK_ENDPOINT)),
        ])
    } else {
        ConfigTable::from([("type".to_owned(), text("local"))])
    };
    let digest = match decision.workload {
        Workload::Image(digest) => digest.to_string(),
        Workload::Git(commit) => commit.to_string(),
    };
    ConfigTable::from([
        ("authority".to_owned(), ConfigValue::Table(authority)),
        ("image_hash".to_owned(), ConfigValue::String(digest)),
        // The node's view of the list, whatever the launcher's (`--near-shared-dir`).
        (
            "latest_allowed_hash_file_path".to_owned(),
            text(NEAR_APPROVED_LIST),
        ),
    ])
}

/// The file's text: the configured table plus the reserved one.
pub fn render(
    spec: &WorkloadConfigSpec,
    decision: &Decision<'_>,
) -> Result<String, WorkloadConfigError> {
    let mut table = spec.content.clone();
    if spec.table == LauncherTable::NearTee {
        table.insert(
            NEAR_TEE_TABLE.to_owned(),
            ConfigValue::Table(near_tee(decision)),
        );
        return encode(spec, table);
    }
    let mut launcher = ConfigTable::from([
        (
            "workload".to_owned(),
            ConfigValue::String(decision.workload.identity()),
        ),
        (
            "image".to_owned(),
            ConfigValue::String(decision.image.to_owned()),
        ),
    ]);
    if let Some(list) = decision.approved_list {
        launcher.insert(
            "approved_list".to_owned(),
            ConfigValue::String(list.display().to_string()),
        );
    }
    table.insert(RESERVED_TABLE.to_owned(), ConfigValue::Table(launcher));
    encode(spec, table)
}

fn encode(spec: &WorkloadConfigSpec, table: ConfigTable) -> Result<String, WorkloadConfigError> {
    match spec.format {
        WorkloadConfigFormat::Toml => Ok(config_value::to_toml(&table)),
        WorkloadConfigFormat::Json => ConfigValue::Table(table)
            .to_json()
            .and_then(|json| serde_json::to_string_pretty(&json).ok())
            .map(|text| text + "\n")
            .ok_or_else(|| WorkloadConfigError::Encode {
                path: spec.path.display().to_string(),
                detail: "a float JSON cannot hold (inf or nan)",
            }),
    }
}

/// Writes `text` to `path` atomically (see [`atomic_file::write`]), mode 0644.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), WorkloadConfigError> {
    atomic_file::write(path, text.as_bytes(), FILE_MODE).map_err(|source| {
        WorkloadConfigError::Write {
            path: path.display().to_string(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt as _;
    use std::path::PathBuf;

    use super::*;
    use crate::atomic_file::temporary_path;
    use crate::digest::ImageDigest;

    const DIGEST: &str = "sha256:4f9a8c4d2e1b0a6c8f7e3d5b9a1c2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d";

    fn spec(path: PathBuf, format: WorkloadConfigFormat) -> WorkloadConfigSpec {
        let mut value = toml_span::parse("a = 1\n[b]\nc = \"d\"\n").unwrap();
        let ConfigValue::Table(content) = ConfigValue::from_toml(&mut value) else {
            panic!("not a table")
        };
        WorkloadConfigSpec {
            path,
            format,
            content,
            table: LauncherTable::TrustedLauncher,
        }
    }

    fn decision() -> Decision<'static> {
        Decision {
            workload: Workload::Image(ImageDigest::parse(DIGEST).unwrap()),
            image: "r.example/app@sha256:4f9a",
            approved_list: Some(Path::new("/mnt/shared/approved.json")),
            tee: false,
        }
    }

    #[test]
    fn writes_toml_and_json_with_the_reserved_table() {
        let dir = tempfile::tempdir().unwrap();
        let toml_spec = spec(dir.path().join("c.toml"), WorkloadConfigFormat::Toml);
        let text = render(&toml_spec, &decision()).unwrap();
        let mut parsed = toml_span::parse(&text).unwrap();
        let ConfigValue::Table(table) = ConfigValue::from_toml(&mut parsed) else {
            panic!("not a table")
        };
        let launcher = ConfigValue::Table(ConfigTable::from([
            (
                "workload".into(),
                ConfigValue::String(format!("oci:{DIGEST}")),
            ),
            (
                "image".into(),
                ConfigValue::String("r.example/app@sha256:4f9a".into()),
            ),
            (
                "approved_list".into(),
                ConfigValue::String("/mnt/shared/approved.json".into()),
            ),
        ]));
        let mut expected = toml_spec.content.clone();
        expected.insert(RESERVED_TABLE.into(), launcher);
        assert_eq!(table, expected);

        let json_spec = spec(dir.path().join("c.json"), WorkloadConfigFormat::Json);
        let json: serde_json::Value =
            serde_json::from_str(&render(&json_spec, &decision()).unwrap()).unwrap();
        assert_eq!(json["a"], 1);
        assert_eq!(json["b"]["c"], "d");
        assert_eq!(json[RESERVED_TABLE]["workload"], format!("oci:{DIGEST}"));
    }

    #[test]
    fn atomic_write_replaces_a_planted_link_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("sub").join("c.toml");
        fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        // A naive `fs::write` follows the link and overwrites what it points at.
        let naive = dir.path().join("naive");
        std::os::unix::fs::symlink(&victim, &naive).unwrap();
        fs::write(&naive, "clobbered").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "clobbered");
        fs::write(&victim, "keep").unwrap();

        write_atomically(&path, "a = 1\n").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(
            !fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), "a = 1\n");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, FILE_MODE);
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c.toml"]);
    }

    #[test]
    fn a_planted_temp_file_stops_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, temporary_path(&path)).unwrap();
        let error = write_atomically(&path, "a = 1\n").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot write workload config ")
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(!path.exists());
    }
}
