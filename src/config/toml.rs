//! The TOML config format, read with spans so every problem names its line.
//!
//! ```toml
//! [git]
//! repo = "https://github.com/org/app.git"
//! commit = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"
//! work_dir = "/srv/app"
//! [measurement]
//! event_log = "/run/trusted-launcher/events.jsonl"
//! ```
//! Unknown sections and keys are errors everywhere.

use toml_span::de_helpers::TableHelper;
use toml_span::value::{Table, Value, ValueInner};
use toml_span::{ErrorKind, Span};

use super::problem::{Problem, ProblemKind, line_of};
use super::raw::{KeyNames, Located, RawConfig, RawImage, RawWorkloadConfig};
use crate::config_value::ConfigValue;
use crate::workload_config::RESERVED_TABLE;

pub const KEYS: KeyNames = KeyNames {
    repo: "git.repo",
    commit: "git.commit",
    work_dir: "git.work_dir",
    subdir: "git.subdir",
    entrypoint: "git.entrypoint",
    install: "git.install",
    run: "git.run",
    approved_list: "git.approved_list",
    override_commit: "git.override",
    allow_env: "git.allow_env",
    pass_env: "git.pass_env",
    event_log: "measurement.event_log",
    backend: "measurement.backend",
    dstack_socket: "measurement.dstack_socket",
    rtmr3_path: "measurement.rtmr3_path",
    dstack_runtime_dir: "measurement.dstack_runtime_dir",
    install_timeout: "git.install_timeout",
};

/// Parses TOML into a raw config, collecting every problem.
pub fn parse(text: &str) -> (RawConfig, Vec<Problem>) {
    let mut raw = RawConfig::default();
    let mut problems = Vec::new();
    let mut reader = Reader {
        text,
        problems: &mut problems,
    };
    let Some(mut root) = reader.document() else {
        return (raw, problems);
    };
    raw.git_section = root.get("git").map(|v| line_of(text, v.span.start));
    if let Some(mut git) = reader.section(&mut root, "git") {
        raw.repo = reader.string(&mut git, "repo", KEYS.repo);
        raw.commit = reader.string(&mut git, "commit", KEYS.commit);
        raw.work_dir = reader.string(&mut git, "work_dir", KEYS.work_dir);
        raw.subdir = reader.string(&mut git, "subdir", KEYS.subdir);
        raw.entrypoint = reader.string(&mut git, "entrypoint", KEYS.entrypoint);
        raw.install = reader.string(&mut git, "install", KEYS.install);
        raw.run = reader.string(&mut git, "run", KEYS.run);
        raw.approved_list = reader.string(&mut git, "approved_list", KEYS.approved_list);
        raw.override_commit = reader.string(&mut git, "override", KEYS.override_commit);
        raw.allow_env = reader.strings(&mut git, "allow_env", KEYS.allow_env);
        raw.pass_env = reader.strings(&mut git, "pass_env", KEYS.pass_env);
        raw.env = reader.string_map(&mut git, "env", "git.env");
        raw.install_timeout = reader.integer(&mut git, "install_timeout", KEYS.install_timeout);
        raw.git_signature = reader.signature(&mut git, &super::signature::GIT_KEYS);
        reader.unknown_keys(git, "git.");
    }
    let image_line = root.get("image").map(|v| line_of(text, v.span.start));
    if let Some(mut image) = reader.section(&mut root, "image") {
        raw.image = Some(RawImage {
            line: image_line.unwrap_or(1),
            reference: reader.string(&mut image, "reference", "image.reference"),
            digest: reader.string(&mut image, "digest", "image.digest"),
            approved_list: reader.string(&mut image, "approved_list", "image.approved_list"),
            override_digest: reader.string(&mut image, "override", "image.override"),
            platform: reader.string(&mut image, "platform", "image.platform"),
            insecure: reader.boolean(&mut image, "insecure", "image.insecure"),
            username: reader.string(&mut image, "username", "image.username"),
            password_env: reader.string(&mut image, "password_env", "image.password_env"),
            ca_file: reader.string(&mut image, "ca_file", "image.ca_file"),
            near_compat: reader.boolean(&mut image, "near_compat", "image.near_compat"),
            project: reader.string(&mut image, "project", "image.project"),
            compose_template: reader.string(
                &mut image,
                "compose_template",
                "image.compose_template",
            ),
            compose_file: reader.string(&mut image, "compose_file", "image.compose_file"),
            detach: reader.boolean(&mut image, "detach", "image.detach"),
            docker_host: reader.string(&mut image, "docker_host", "image.docker_host"),
            pull_timeout: reader.integer(&mut image, "pull_timeout", "image.pull_timeout"),
            watch_interval: reader.integer(&mut image, "watch_interval", "image.watch_interval"),
            watch_switch: reader.boolean(&mut image, "watch_switch", "image.watch_switch"),
            ..RawImage::default()
        });
        if let Some(raw_image) = raw.image.as_mut() {
            reader.service(&mut image, raw_image);
        }
        if let Some(raw_image) = raw.image.as_mut() {
            raw_image.workload_config = reader.workload_config(&mut image);
            raw_image.signature = reader.signature(&mut image, &super::signature::IMAGE_KEYS);
        }
        reader.unknown_keys(image, "image.");
    }
    if let Some(mut measurement) = reader.section(&mut root, "measurement") {
        raw.event_log = reader.string(&mut measurement, "event_log", KEYS.event_log);
        raw.backend = reader.string(&mut measurement, "backend", KEYS.backend);
        raw.dstack_socket = reader.string(&mut measurement, "dstack_socket", KEYS.dstack_socket);
        raw.rtmr3_path = reader.string(&mut measurement, "rtmr3_path", KEYS.rtmr3_path);
        raw.dstack_runtime_dir = reader.string(
            &mut measurement,
            "dstack_runtime_dir",
            KEYS.dstack_runtime_dir,
        );
        reader.unknown_keys(measurement, "measurement.");
    }
    reader.unknown_keys(root, "");
    (raw, problems)
}

/// Reads typed values out of a parsed TOML document, recording a problem with its line for
/// each one of the wrong type; shared by this format and NEAR's (`near.rs`).
pub(super) struct Reader<'a, 'p> {
    pub(super) text: &'a str,
    pub(super) problems: &'p mut Vec<Problem>,
}

impl<'de> Reader<'de, '_> {
    /// The whole text as a TOML table, or `None` with the syntax problem recorded.
    pub(super) fn document(&mut self) -> Option<Table<'de>> {
        let mut root = match toml_span::parse(self.text) {
            Ok(root) => root,
            Err(error) => {
                self.problems.push(Problem::at(
                    line_of(self.text, error.span.start),
                    ProblemKind::Syntax {
                        detail: format!("invalid TOML: {error}"),
                    },
                ));
                return None;
            }
        };
        self.table(&mut root, "the document")
    }

    /// `[image.service]`, into the image section being read.
    fn service(&mut self, image: &mut Table<'de>, raw_image: &mut RawImage) {
        let Some(mut service) = self.section(image, "service") else {
            return;
        };
        raw_image.command = self.strings(&mut service, "command", "image.service.command");
        raw_image.environment =
            self.string_map(&mut service, "environment", "image.service.environment");
        raw_image.ports = self.strings(&mut service, "ports", "image.service.ports");
        raw_image.volumes = self.strings(&mut service, "volumes", "image.service.volumes");
        raw_image.cap_add = self.strings(&mut service, "cap_add", "image.service.cap_add");
        raw_image.restart = self.string(&mut service, "restart", "image.service.restart");
        raw_image.dstack_socket =
            self.boolean(&mut service, "dstack_socket", "image.service.dstack_socket");
        raw_image.docker_socket =
            self.boolean(&mut service, "docker_socket", "image.service.docker_socket");
        self.unknown_keys(service, "image.service.");
    }

    pub(super) fn line(&self, value: &Value<'_>) -> usize {
        line_of(self.text, value.span.start)
    }

    /// `value` as a table (toml-span's `TableHelper::new`), or `None` with a problem naming
    /// `name`.
    pub(super) fn table(&mut self, value: &mut Value<'de>, name: &str) -> Option<Table<'de>> {
        let line = self.line(value);
        if let Ok(helper) = TableHelper::new(value) {
            return Some(helper.table);
        }
        self.problems.push(Problem::at(
            line,
            ProblemKind::WrongType {
                key: name.to_owned(),
                expected: "a table",
            },
        ));
        None
    }

    pub(super) fn section(
        &mut self,
        root: &mut Table<'de>,
        name: &'static str,
    ) -> Option<Table<'de>> {
        let mut value = root.remove(name)?;
        self.table(&mut value, name)
    }

    /// Takes `name` out of `table` and converts it with `convert`; a value of another type is
    /// a problem at its line naming `key` and what was `expected`. (toml-span's
    /// `TableHelper::optional` does the same take-and-convert, but its error is a span with
    /// "expected …, found …" and no key: every message here names the dotted key.)
    fn typed<T>(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
        expected: &'static str,
        convert: impl FnOnce(ValueInner<'de>) -> Option<T>,
    ) -> Option<Located<T>> {
        let mut value = table.remove(name)?;
        let line = self.line(&value);
        if let Some(value) = convert(value.take()) {
            return Some(Located { key, line, value });
        }
        self.problems.push(Problem::at(
            line,
            ProblemKind::WrongType {
                key: key.to_owned(),
                expected,
            },
        ));
        None
    }

    pub(super) fn string(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
    ) -> Option<Located<String>> {
        self.typed(table, name, key, "a string", string)
    }

    pub(super) fn boolean(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
    ) -> Option<Located<bool>> {
        self.typed(table, name, key, "true or false", |inner| match inner {
            ValueInner::Boolean(flag) => Some(flag),
            _ => None,
        })
    }

    /// An integer, kept as its decimal text: validation checks the range for both formats.
    fn integer(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
    ) -> Option<Located<String>> {
        self.typed(table, name, key, "an integer", |inner| match inner {
            ValueInner::Integer(number) => Some(number.to_string()),
            _ => None,
        })
    }

    fn string_map(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
    ) -> Option<Located<Vec<(String, String)>>> {
        self.typed(
            table,
            name,
            key,
            "a table of strings",
            |inner| match inner {
                ValueInner::Table(entries) => entries
                    .into_iter()
                    .map(|(k, mut v)| Some((k.name.into_owned(), string(v.take())?)))
                    .collect(),
                _ => None,
            },
        )
    }

    fn strings(
        &mut self,
        table: &mut Table<'de>,
        name: &str,
        key: &'static str,
    ) -> Option<Located<Vec<String>>> {
        self.typed(
            table,
            name,
            key,
            "an array of strings",
            |inner| match inner {
                ValueInner::Array(items) => items
                    .into_iter()
                    .map(|mut item| string(item.take()))
                    .collect(),
                _ => None,
            },
        )
    }

    /// `[image.workload_config]`: `path`, `format`, and the opaque `content` table, which
    /// must not set the launcher's reserved table.
    fn workload_config(&mut self, image: &mut Table<'de>) -> Option<RawWorkloadConfig> {
        let line = image
            .get("workload_config")
            .map(|v| line_of(self.text, v.span.start))?;
        let mut section = self.section(image, "workload_config")?;
        let path = self.string(&mut section, "path", "image.workload_config.path");
        let format = self.string(&mut section, "format", "image.workload_config.format");
        let content = section.remove("content").and_then(|mut value| {
            let line = self.line(&value);
            let mut table = self.table(&mut value, "image.workload_config.content")?;
            if let Some((key, _)) = table.get_key_value(RESERVED_TABLE) {
                self.problems.push(Problem::at(
                    line_of(self.text, key.span.start),
                    ProblemKind::Reserved {
                        key: format!("image.workload_config.content.{RESERVED_TABLE}"),
                    },
                ));
                table.remove(RESERVED_TABLE);
            }
            let mut value = Value::new(ValueInner::Table(table));
            match ConfigValue::from_toml(&mut value) {
                ConfigValue::Table(value) => Some(Located {
                    key: "image.workload_config.content",
                    line,
                    value,
                }),
                _ => None,
            }
        });
        self.unknown_keys(section, "image.workload_config.");
        Some(RawWorkloadConfig {
            line,
            path,
            format,
            content,
        })
    }

    /// Every key left in `table` after its known keys were taken is a problem, at its own
    /// line: toml-span's `TableHelper::finalize` (serde's `deny_unknown_fields`) lists them
    /// with their spans. Only the key names are toml-span's; the message is ours.
    pub(super) fn unknown_keys(&mut self, table: Table<'de>, prefix: &str) {
        let Err(error) = TableHelper::from((table, Span::default())).finalize(None) else {
            return;
        };
        for error in error.errors {
            if let ErrorKind::UnexpectedKeys { keys, .. } = error.kind {
                for (name, span) in keys {
                    self.problems.push(Problem::at(
                        line_of(self.text, span.start),
                        ProblemKind::UnknownKey {
                            key: format!("{prefix}{name}"),
                        },
                    ));
                }
            }
        }
    }
}

fn string(inner: ValueInner<'_>) -> Option<String> {
    match inner {
        ValueInner::String(text) => Some(text.into_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        super::super::problem::render(&parse(text).1)
    }

    #[test]
    fn reads_all_keys_with_lines() {
        let (raw, problems) = parse(
            "[git]\nrepo = \"r\"\ncommit = \"c\"\nwork_dir = \"/w\"\nsubdir = \"s\"\nentrypoint = \"e.sh\"\ninstall = \"i\"\nrun = \"x\"\napproved_list = \"/a.json\"\noverride = \"o\"\nallow_env = [\"A\", \"B\"]\n[measurement]\nevent_log = \"/l\"\nbackend = \"dstack-native\"\ndstack_runtime_dir = \"/run/log/dstack\"\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(raw.commit.as_ref().unwrap().line, 3);
        assert_eq!(raw.allow_env.unwrap().value, ["A", "B"]);
        assert_eq!(raw.event_log.unwrap().value, "/l");
        assert_eq!(raw.backend.unwrap().value, "dstack-native");
        let dir = raw.dstack_runtime_dir.unwrap();
        assert_eq!((dir.key, dir.line), ("measurement.dstack_runtime_dir", 15));
        assert_eq!(dir.value, "/run/log/dstack");
        assert_eq!(raw.override_commit.unwrap().value, "o");
    }

    #[test]
    fn reject_table() {
        for (text, expected) in [
            (
                "[git]\nbranch = \"main\"\n",
                vec!["2: unknown key git.branch"],
            ),
            ("[gitt]\n", vec!["1: unknown key gitt"]),
            ("top = 1\n", vec!["1: unknown key top"]),
            (
                "[measurement]\nevent_log = \"/l\"\nbackends = \"x\"\n",
                vec!["3: unknown key measurement.backends"],
            ),
            (
                "[git]\ncommit = 7\n",
                vec!["2: git.commit must be a string"],
            ),
            (
                "[git]\nallow_env = \"A\"\n",
                vec!["2: git.allow_env must be an array of strings"],
            ),
            ("git = 1\n", vec!["1: git must be a table"]),
            (
                "[git]\nrepo = \"a\"\nrepo = \"b\"\n",
                vec!["3: invalid TOML: duplicate key: `repo`"],
            ),
            (
                "[git]\nrepo = \"a\n",
                vec!["2: invalid TOML: invalid character in string: `\\n`"],
            ),
        ] {
            assert_eq!(messages(text), expected, "{text:?}");
        }
    }

    #[test]
    fn each_value_type_names_its_key_and_line() {
        for (text, expected) in [
            (
                "[git]\n\ninstall_timeout = \"9\"\n",
                "3: git.install_timeout must be an integer",
            ),
            (
                "[git]\nenv = [\"A=1\"]\n",
                "2: git.env must be a table of strings",
            ),
            (
                "[git]\nenv = { A = 1 }\n",
                "2: git.env must be a table of strings",
            ),
            (
                "[git]\nallow_env = [\"A\", 2]\n",
                "2: git.allow_env must be an array of strings",
            ),
            (
                "[image]\ninsecure = \"yes\"\n",
                "2: image.insecure must be true or false",
            ),
            (
                "[image]\nreference = []\n",
                "2: image.reference must be a string",
            ),
        ] {
            let got = messages(text);
            assert!(got.contains(&expected.to_owned()), "{text:?}: {got:?}");
        }
        let (raw, problems) = parse("[git]\nenv = { A = \"1\", B = \"2\" }\ninstall_timeout = 9\n");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            raw.env.unwrap().value,
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(raw.install_timeout.unwrap().value, "9");
    }

    #[test]
    fn reports_every_unknown_key() {
        assert_eq!(
            messages("[git]\na = 1\nb = 2\n[other]\n"),
            vec![
                "2: unknown key git.a",
                "3: unknown key git.b",
                "4: unknown key other"
            ]
        );
    }
}
