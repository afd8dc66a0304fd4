//! Rendering a compose file from a template, with values that cannot change its structure.
//!
//! A placeholder `{{ name }}` may only stand as a whole YAML value: after `key:` or a list
//! dash, with nothing but a comment after it. Each value is written as a JSON literal (a
//! double-quoted scalar, a flow list or a flow map), which YAML reads as exactly one node:
//! a newline, quote, colon or `#` inside a value stays inside its string.

use std::collections::BTreeMap;

use serde_json::Value;

/// The template shipped in the binary.
pub const BUILT_IN: &str = include_str!("../assets/compose.yaml");
/// The template of the `near` config format: service and container `mpc-node`, as NEAR's.
pub const NEAR_MPC_NODE: &str = include_str!("../assets/near-mpc-node-compose.yaml");

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template line {line}: unknown placeholder {{{{ {name} }}}} (known: {known})")]
    Unknown {
        line: usize,
        name: String,
        known: String,
    },
    #[error(
        "template line {line}: a placeholder must stand alone as a value (`key: {{{{ name }}}}` or `- {{{{ name }}}}`)"
    )]
    NotAValue { line: usize },
    #[error("template line {line}: unterminated placeholder")]
    Unterminated { line: usize },
}

/// Compose interpolates `$VAR` and `${VAR}` inside values from its own environment; `$$`
/// is a literal `$`. Every string in `value` is escaped so it reaches the workload as written.
#[must_use]
pub fn literal(value: Value) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace('$', "$$")),
        Value::Array(items) => Value::Array(items.into_iter().map(literal).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, literal(v))).collect())
        }
        other => other,
    }
}

/// Fills `template` with `values`. Every placeholder must be known and in value position.
pub fn render(template: &str, values: &BTreeMap<&str, Value>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len() + 256);
    for (index, line) in template.split_inclusive('\n').enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let Some(start) = line.find("{{") else {
            if line.contains("}}") {
                return Err(TemplateError::NotAValue { line: number });
            }
            out.push_str(line);
            continue;
        };
        let (before, rest) = line.split_at(start);
        let rest = rest.get(2..).unwrap_or_default();
        let end = rest
            .find("}}")
            .ok_or(TemplateError::Unterminated { line: number })?;
        let name = rest.get(..end).unwrap_or_default().trim();
        let after = rest.get(end + 2..).unwrap_or_default();
        let lead = before.trim_end();
        let in_value_position =
            lead.ends_with(':') || lead.trim_start() == "-" || lead.ends_with(" -");
        let tail = after.trim();
        if !in_value_position || !(tail.is_empty() || tail.starts_with('#')) || after.contains("{{")
        {
            return Err(TemplateError::NotAValue { line: number });
        }
        let value = values.get(name).ok_or_else(|| TemplateError::Unknown {
            line: number,
            name: name.to_owned(),
            known: values.keys().copied().collect::<Vec<_>>().join(", "),
        })?;
        out.push_str(before);
        // serde_json escapes control characters, quotes and backslashes: one flow node.
        out.push_str(&value.to_string());
        out.push_str(after);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(image: &str) -> BTreeMap<&'static str, Value> {
        BTreeMap::from([
            ("project", json!("tl")),
            ("image", json!(image)),
            ("container_name", json!("tl-workload")),
            ("restart", json!("no")),
            ("command", json!(["serve", "--port", "8080"])),
            ("environment", json!({"MODE": "prod"})),
            ("ports", json!(["8080:8080"])),
            ("volumes", json!([])),
            ("named_volumes", json!({})),
            ("cap_add", json!([])),
        ])
    }

    #[test]
    fn built_in_template_renders_json_values() {
        let text = render(BUILT_IN, &values("r/x@sha256:00")).unwrap();
        assert!(text.contains("    image: \"r/x@sha256:00\"\n"), "{text}");
        assert!(text.contains("    command: [\"serve\",\"--port\",\"8080\"]\n"));
        assert!(text.contains("    environment: {\"MODE\":\"prod\"}\n"));
        assert!(text.contains("      - no-new-privileges:true\n"));
        assert!(
            text.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .all(|l| !l.contains("{{"))
        );
    }

    /// Injection attempts stay inside one JSON string: the rendered document has exactly the
    /// template's lines, and the hostile text appears only escaped.
    #[test]
    fn values_cannot_change_structure() {
        let template_lines: Vec<&str> = BUILT_IN.lines().collect();
        for hostile in [
            "x\n    privileged: true",
            "x\"\n    privileged: true\n    #",
            "x: y",
            "x # comment",
            "'x'\n- y",
            "x\r\n    network_mode: host",
            "{{ image }}",
            "\u{2028}privileged: true",
        ] {
            let text = render(BUILT_IN, &values(hostile)).unwrap();
            let rendered: Vec<&str> = text.lines().collect();
            assert_eq!(rendered.len(), template_lines.len(), "{hostile:?}");
            for (out, template) in rendered.iter().zip(&template_lines) {
                if template.contains("{{ image }}") && !template.trim_start().starts_with('#') {
                    assert_eq!(
                        *out,
                        format!("    image: {}", json!(hostile)),
                        "{hostile:?}"
                    );
                } else if !template.contains("{{") || template.trim_start().starts_with('#') {
                    assert_eq!(out, template, "{hostile:?}");
                }
            }
        }
    }

    #[test]
    fn dollar_signs_are_not_interpolated() {
        let value = literal(json!({"A": "$HOME", "B": ["${X}", "a$$b"], "C": 1}));
        assert_eq!(
            value,
            json!({"A": "$$HOME", "B": ["$${X}", "a$$$$b"], "C": 1})
        );
    }

    #[test]
    fn template_errors() {
        let v = values("i");
        for (template, expected) in [
            (
                "image: {{ nope }}\n",
                TemplateError::Unknown {
                    line: 1,
                    name: "nope".into(),
                    known: v.keys().copied().collect::<Vec<_>>().join(", "),
                },
            ),
            (
                "image: \"{{ image }}\"\n",
                TemplateError::NotAValue { line: 1 },
            ),
            (
                "image: x-{{ image }}\n",
                TemplateError::NotAValue { line: 1 },
            ),
            ("{{ image }}: x\n", TemplateError::NotAValue { line: 1 }),
            (
                "image: {{ image }} {{ image }}\n",
                TemplateError::NotAValue { line: 1 },
            ),
            ("image: {{ image\n", TemplateError::Unterminated { line: 1 }),
            ("a: 1\nimage: }}\n", TemplateError::NotAValue { line: 2 }),
        ] {
            assert_eq!(render(template, &v), Err(expected), "{template:?}");
        }
        assert_eq!(
            render("cmd:\n  - {{ image }} # the image\n", &v).unwrap(),
            "cmd:\n  - \"i\" # the image\n"
        );
    }
}
