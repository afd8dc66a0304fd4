//! The image workload's section: reference, digest, registry access, compose and the
//! service values, each checked by its grammar.

use std::path::PathBuf;

use super::problem::Invalid;
use super::raw::{Located, RawImage};
use super::{
    Checker, DEFAULT_COMPOSE_FILE, DEFAULT_DOCKER_HOST, DEFAULT_PLATFORM, DEFAULT_PROJECT,
    DEFAULT_PULL_TIMEOUT, ImageSpec, ProblemKind, ServiceSpec, WATCH_INTERVAL_SECONDS, WatchSpec,
    is_env_name,
};
use crate::registry::{ImageReference, Platform};

/// `[image.service] restart` when the config sets none.
pub const DEFAULT_RESTART: &str = "on-failure";

/// Checks the `[image]` section; `None` (with problems recorded) if anything is wrong.
pub(super) fn validate(raw: RawImage, check: &mut Checker<'_>) -> Option<ImageSpec> {
    let before = check.problems.len();
    let reference = check
        .required(raw.reference, "image.reference")
        .and_then(|v| check.parsed(&v, Invalid::Reference, ImageReference::parse));
    let digest = check
        .required(raw.digest, "image.digest")
        .and_then(|v| check.image_digest(&v));
    let override_digest = raw
        .override_digest
        .and_then(|v| check.non_empty(v))
        .and_then(|v| check.image_digest(&v));
    let platform = match raw.platform.and_then(|v| check.non_empty(v)) {
        Some(v) => check.parsed(&v, Invalid::Platform, Platform::parse),
        None => Platform::parse(DEFAULT_PLATFORM).ok(),
    };
    let approved_list = raw
        .approved_list
        .and_then(|v| check.non_empty(v))
        .map(|v| PathBuf::from(v.value));
    let username = raw
        .username
        .and_then(|v| check.non_empty(v))
        .map(|v| v.value);
    let password_env = password_env(check, raw.password_env);
    let project = match raw.project.and_then(|v| check.non_empty(v)) {
        Some(v) => check.parsed(&v, Invalid::Value, project_name),
        None => Some(DEFAULT_PROJECT.to_owned()),
    };
    let path = |check: &mut Checker<'_>, value: Option<Located<String>>| {
        value
            .and_then(|v| check.non_empty(v))
            .map(|v| PathBuf::from(v.value))
    };
    let docker_host = match raw.docker_host.and_then(|v| check.non_empty(v)) {
        Some(v) => check.parsed(&v, Invalid::Value, docker_host),
        None => Some(DEFAULT_DOCKER_HOST.to_owned()),
    };
    let pull_timeout = check.seconds(raw.pull_timeout, DEFAULT_PULL_TIMEOUT);
    let has_list = approved_list.is_some();
    let watch = watch(check, raw.watch_interval, raw.watch_switch, has_list);
    let compose_template = path(check, raw.compose_template);
    let ca_file = path(check, raw.ca_file);
    let compose_file =
        path(check, raw.compose_file).unwrap_or_else(|| PathBuf::from(DEFAULT_COMPOSE_FILE));
    let service = service(
        check,
        RawService {
            command: raw.command,
            environment: raw.environment,
            ports: raw.ports,
            volumes: raw.volumes,
            cap_add: raw.cap_add,
            restart: raw.restart,
        },
    );
    let workload_config = raw
        .workload_config
        .map(|w| super::workload_config::validate(w, check));
    let signature = raw
        .signature
        .map(|s| super::signature::validate(s, &super::signature::IMAGE_KEYS, check));
    if check.problems.len() > before {
        return None;
    }
    Some(ImageSpec {
        reference: reference?,
        digest: digest?,
        approved_list,
        override_digest,
        platform: platform?,
        insecure: raw.insecure.is_some_and(|v| v.value),
        ca_file,
        near_compat: raw.near_compat.is_some_and(|v| v.value),
        username,
        password_env,
        project: project?,
        compose_template,
        built_in_template: crate::compose::BUILT_IN,
        compose_file,
        // A supervisor must get `up`'s exit back: watch implies detach.
        detach: raw.detach.is_some_and(|v| v.value) || watch.is_some(),
        watch,
        docker_host: docker_host?,
        pull_timeout: pull_timeout?,
        service: ServiceSpec {
            dstack_socket: raw.dstack_socket.is_some_and(|v| v.value),
            docker_socket: raw.docker_socket.is_some_and(|v| v.value),
            ..service
        },
        workload_config: workload_config.flatten(),
        signature: signature.flatten(),
    })
}

/// The name of the variable holding the registry password (the value stays out of the config).
fn password_env(check: &mut Checker<'_>, value: Option<Located<String>>) -> Option<String> {
    let value = value.and_then(|v| check.non_empty(v))?;
    if is_env_name(&value.value) {
        return Some(value.value);
    }
    check.push(
        value.line,
        ProblemKind::InvalidEnvName {
            key: value.key,
            value: value.value,
        },
    );
    None
}

/// `watch_interval` (seconds, 5 to 86400) and `watch_switch`, which needs it; watching
/// needs an approved list, or there is nothing that could change.
fn watch(
    check: &mut Checker<'_>,
    interval: Option<Located<String>>,
    switch: Option<Located<bool>>,
    has_list: bool,
) -> Option<WatchSpec> {
    let Some(interval) = interval.and_then(|v| check.non_empty(v)) else {
        if let Some(switch) = switch {
            check.push(
                switch.line,
                ProblemKind::Requires {
                    key: switch.key,
                    needs: "image.watch_interval",
                },
            );
        }
        return None;
    };
    if !has_list {
        check.push(
            interval.line,
            ProblemKind::Requires {
                key: interval.key,
                needs: "image.approved_list",
            },
        );
    }
    let seconds = check.parsed(&interval, Invalid::Value, |text| {
        text.parse::<u64>()
            .ok()
            .filter(|s| WATCH_INTERVAL_SECONDS.contains(s) && !text.starts_with('+'))
            .ok_or("must be a whole number of seconds from 5 to 86400")
    })?;
    Some(WatchSpec {
        interval: std::time::Duration::from_secs(seconds),
        switch: switch.is_some_and(|v| v.value),
    })
}

/// `DOCKER_HOST` as the docker CLI reads it: a unix socket, TCP, or SSH endpoint.
fn docker_host(text: &str) -> Result<String, &'static str> {
    let valid = ["unix:///", "tcp://", "ssh://"].iter().any(|scheme| {
        text.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
    });
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be unix:///<socket path>, tcp://<host>:<port> or ssh://<host>")
    }
}

/// A compose project name: lowercase letters, digits, `-` and `_`, starting alphanumeric.
fn project_name(text: &str) -> Result<String, &'static str> {
    let valid = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be lowercase letters, digits, - and _")
    }
}

struct RawService {
    command: Option<Located<Vec<String>>>,
    environment: Option<Located<Vec<(String, String)>>>,
    ports: Option<Located<Vec<String>>>,
    volumes: Option<Located<Vec<String>>>,
    cap_add: Option<Located<Vec<String>>>,
    restart: Option<Located<String>>,
}

/// Every service value is checked by grammar; compose would read a bad one some other way.
fn service(check: &mut Checker<'_>, raw: RawService) -> ServiceSpec {
    let mut each = |value: Option<Located<Vec<String>>>,
                    what: Invalid,
                    valid: fn(&str) -> bool,
                    reason: &'static str| {
        let Some(value) = value else {
            return Vec::new();
        };
        for item in &value.value {
            if !valid(item) {
                check.push(value.line, what.problem(value.key, item.clone(), reason));
            }
        }
        value.value
    };
    let ports = each(
        raw.ports,
        Invalid::Port,
        is_port_mapping,
        "entry must be [ip:]host:container[/tcp|/udp] with ports 1-65535",
    );
    let volumes = each(
        raw.volumes,
        Invalid::Value,
        is_volume,
        "entry must be source:/absolute/target[:ro|:rw]",
    );
    let cap_add = each(
        raw.cap_add,
        Invalid::Value,
        |c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
        "entry must be a capability name like NET_ADMIN",
    );
    let command = raw
        .command
        .map(|v| each(Some(v), Invalid::Value, |_| true, ""));
    let environment = match raw.environment {
        Some(env) => {
            for (name, _) in &env.value {
                if !is_env_name(name) {
                    check.push(
                        env.line,
                        ProblemKind::InvalidEnvName {
                            key: env.key,
                            value: name.clone(),
                        },
                    );
                }
            }
            env.value
        }
        None => Vec::new(),
    };
    let restart = match raw.restart {
        Some(v) if ["no", "always", "on-failure", "unless-stopped"].contains(&v.value.as_str()) => {
            v.value
        }
        Some(v) => {
            check.push(
                v.line,
                ProblemKind::InvalidChoice {
                    key: v.key,
                    value: v.value,
                    expected: "no, always, on-failure, unless-stopped",
                },
            );
            String::new()
        }
        // Restarted when it fails, not when it (or the watch) stops it.
        None => DEFAULT_RESTART.to_owned(),
    };
    ServiceSpec {
        command,
        environment,
        ports,
        volumes,
        cap_add,
        restart,
        dstack_socket: false,
        docker_socket: false,
    }
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok_and(|p| p > 0)
}

/// `[ip:]host:container[/tcp|/udp]`.
fn is_port_mapping(text: &str) -> bool {
    let (ports, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
    if protocol != "tcp" && protocol != "udp" {
        return false;
    }
    match ports.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [container, host] => is_port(container) && is_port(host),
        [container, host, ip] => {
            is_port(container) && is_port(host) && ip.parse::<std::net::IpAddr>().is_ok()
        }
        _ => false,
    }
}

/// `source:/target[:ro|:rw]`, source an absolute path or a named volume.
fn is_volume(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, "rw"),
        [s, t, m] => (*s, *t, *m),
        _ => return false,
    };
    let named = source
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    (source.starts_with('/') || named)
        && target.starts_with('/')
        && (mode == "ro" || mode == "rw")
        && !text.chars().any(|c| c.is_control() || c == '$')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::WorkloadSpec;
    use super::super::load::load_text;
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn load_image(extra: &str) -> Result<ImageSpec, Vec<String>> {
        let config = load_text(
            "c.toml",
            &format!("[image]\nreference = \"ghcr.io/org/app\"\ndigest = \"{DIGEST}\"\n{extra}"),
        )?;
        match config.workload {
            WorkloadSpec::Image(spec) => Ok(*spec),
            WorkloadSpec::Git(_) => panic!("not an image config"),
        }
    }

    const LIST: &str = "approved_list = \"/shared/list.json\"\n";

    #[test]
    fn restart_defaults_to_on_failure_and_watch_to_off() {
        let spec = load_image("").unwrap();
        assert_eq!(spec.service.restart, "on-failure");
        assert_eq!(spec.watch, None);
        assert!(!spec.detach);
    }

    #[test]
    fn watch_interval_bounds_and_implied_detach() {
        for (seconds, switch) in [("5", false), ("86400", true)] {
            let spec = load_image(&format!(
                "{LIST}watch_interval = {seconds}\nwatch_switch = {switch}\n"
            ))
            .unwrap();
            assert_eq!(
                spec.watch,
                Some(WatchSpec {
                    interval: Duration::from_secs(seconds.parse().unwrap()),
                    switch,
                })
            );
            assert!(spec.detach, "watch implies detach");
        }
    }

    #[test]
    fn watch_interval_out_of_bounds_or_mistyped_is_refused() {
        for (value, message) in [
            (
                "4",
                "c.toml:7: image.watch_interval must be a whole number of seconds from 5 to 86400 (got \"4\")",
            ),
            (
                "86401",
                "c.toml:7: image.watch_interval must be a whole number of seconds from 5 to 86400 (got \"86401\")",
            ),
            (
                "0",
                "c.toml:7: image.watch_interval must be a whole number of seconds from 5 to 86400 (got \"0\")",
            ),
            (
                "\"60\"",
                "c.toml:7: image.watch_interval must be an integer",
            ),
        ] {
            let problems =
                load_image(&format!("\n\n{LIST}watch_interval = {value}\n")).expect_err(value);
            assert_eq!(problems, [message], "{value}");
        }
    }

    #[test]
    fn watch_needs_a_list_and_switch_needs_watch() {
        assert_eq!(
            load_image("watch_interval = 30\n").unwrap_err(),
            ["c.toml:4: image.watch_interval requires image.approved_list"]
        );
        assert_eq!(
            load_image(&format!("{LIST}watch_switch = true\n")).unwrap_err(),
            ["c.toml:5: image.watch_switch requires image.watch_interval"]
        );
        assert_eq!(
            load_image(&format!(
                "{LIST}watch_interval = 30\nwatch_switch = \"yes\"\n"
            ))
            .unwrap_err(),
            ["c.toml:6: image.watch_switch must be true or false"]
        );
    }
}
