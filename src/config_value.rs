//! An opaque TOML table carried for the workload, and its two output encodings.
//!
//! toml-span only parses, so TOML output is a small emitter of its own. It covers every
//! value toml-span reads: strings, integers, floats (with `inf`/`nan`), booleans, arrays
//! and tables (toml-span has no datetimes). Scalars and arrays of a table come first, then
//! each sub-table under its `[dotted.header]`; tables inside arrays are inline tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use toml_span::value::{Value, ValueInner};

/// A table: keys in sorted order, so the output is the same for the same config.
pub type ConfigTable = BTreeMap<String, ConfigValue>;

/// One value of the opaque table.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Array(Vec<ConfigValue>),
    Table(ConfigTable),
}

impl ConfigValue {
    /// Takes a parsed toml-span value into an owned one.
    pub fn from_toml(value: &mut Value<'_>) -> Self {
        match value.take() {
            ValueInner::String(text) => Self::String(text.into_owned()),
            ValueInner::Integer(number) => Self::Integer(number),
            ValueInner::Float(number) => Self::Float(number),
            ValueInner::Boolean(flag) => Self::Boolean(flag),
            ValueInner::Array(mut items) => {
                Self::Array(items.iter_mut().map(Self::from_toml).collect())
            }
            ValueInner::Table(entries) => Self::Table(
                entries
                    .into_iter()
                    .map(|(key, mut v)| (key.name.into_owned(), Self::from_toml(&mut v)))
                    .collect(),
            ),
        }
    }

    /// The dotted path of the first float JSON cannot hold (`inf`, `nan`), if any.
    #[must_use]
    pub fn first_non_finite(&self, path: &str) -> Option<String> {
        match self {
            Self::Float(number) if !number.is_finite() => Some(path.to_owned()),
            Self::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| item.first_non_finite(&format!("{path}[{i}]"))),
            Self::Table(table) => table
                .iter()
                .find_map(|(key, item)| item.first_non_finite(&format!("{path}.{key}"))),
            _ => None,
        }
    }

    /// The JSON value; `None` only for a non-finite float (checked when the config is read).
    #[must_use]
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Self::String(text) => J::String(text.clone()),
            Self::Integer(number) => J::from(*number),
            Self::Float(number) => J::Number(serde_json::Number::from_f64(*number)?),
            Self::Boolean(flag) => J::Bool(*flag),
            Self::Array(items) => J::Array(
                items
                    .iter()
                    .map(Self::to_json)
                    .collect::<Option<Vec<_>>>()?,
            ),
            Self::Table(table) => J::Object(
                table
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.to_json()?)))
                    .collect::<Option<serde_json::Map<_, _>>>()?,
            ),
        })
    }
}

/// The table as a TOML document.
#[must_use]
pub fn to_toml(table: &ConfigTable) -> String {
    let mut out = String::new();
    emit_table(&mut out, &[], table);
    out
}

fn emit_table(out: &mut String, path: &[&str], table: &ConfigTable) {
    for (key, value) in table {
        if !matches!(value, ConfigValue::Table(_)) {
            let _ = writeln!(out, "{} = {}", key_text(key), inline(value));
        }
    }
    for (key, value) in table {
        if let ConfigValue::Table(inner) = value {
            let mut inner_path = path.to_vec();
            inner_path.push(key);
            let header: Vec<String> = inner_path.iter().map(|k| key_text(k)).collect();
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "[{}]", header.join("."));
            emit_table(out, &inner_path, inner);
        }
    }
}

/// A value on one line: arrays and tables inline.
fn inline(value: &ConfigValue) -> String {
    match value {
        ConfigValue::String(text) => quoted(text),
        ConfigValue::Integer(number) => number.to_string(),
        ConfigValue::Float(number) => float(*number),
        ConfigValue::Boolean(flag) => flag.to_string(),
        ConfigValue::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        ConfigValue::Table(table) => {
            let entries: Vec<String> = table
                .iter()
                .map(|(k, v)| format!("{} = {}", key_text(k), inline(v)))
                .collect();
            if entries.is_empty() {
                "{}".to_owned()
            } else {
                format!("{{ {} }}", entries.join(", "))
            }
        }
    }
}

/// TOML float spelling. Rust's `Debug` is the shortest text that reads back to the same
/// bits and always has a `.` or an exponent (`1.0`, `1e300`), so it never reads as an
/// integer; TOML spells the specials `inf`, `-inf`, `nan`.
fn float(number: f64) -> String {
    if number.is_nan() {
        if number.is_sign_negative() {
            "-nan".to_owned()
        } else {
            "nan".to_owned()
        }
    } else if number.is_infinite() {
        if number > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{number:?}")
    }
}

/// A bare key when TOML allows one (`A-Za-z0-9_-`), else a quoted key.
fn key_text(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_owned() } else { quoted(key) }
}

/// A TOML basic string: `"` and `\` escaped, every control character (tab included, and
/// DEL, which TOML also forbids raw) as an escape.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigTable {
        let mut value = toml_span::parse(text).unwrap();
        match ConfigValue::from_toml(&mut value) {
            ConfigValue::Table(table) => table,
            other => panic!("not a table: {other:?}"),
        }
    }

    /// Parse, emit, parse again: the same values (NaN compared by its text).
    fn round_trip(text: &str) -> String {
        let first = parse(text);
        let emitted = to_toml(&first);
        let second = parse(&emitted);
        assert_eq!(format!("{first:?}"), format!("{second:?}"), "{emitted}");
        emitted
    }

    #[test]
    fn round_trips_every_value_type() {
        let emitted = round_trip(
            r#"
top = "x"
int = -9223372036854775808
big = 9223372036854775807
f = 1.0
g = 0.1
h = 1e300
i = -0.0
j = 5e-324
k = inf
l = -inf
m = nan
yes = true
no = false
empty = []
mixed = [1, "a", [true], { x = 1, y = { z = "w" } }]
[a.b.c]
d = 1
[a]
e = [{ f = 2 }]
[[arr]]
n = 1
[[arr]]
n = 2
[empty_table]
"#,
        );
        // Sub-tables come after their parent's plain values, as headers.
        assert!(emitted.contains("[a]\ne = [{ f = 2 }]\n\n[a.b]\n\n[a.b.c]\nd = 1\n"));
        assert!(emitted.contains("f = 1.0\n"), "{emitted}");
    }

    #[test]
    fn strings_and_keys_are_escaped() {
        let mut table = ConfigTable::new();
        let nasty = "q\"b\\s\n\r\t\u{0}\u{1b}\u{7f}é'''\"\"\"";
        table.insert(nasty.to_owned(), ConfigValue::String(nasty.to_owned()));
        table.insert(String::new(), ConfigValue::Integer(1));
        table.insert("a.b".to_owned(), ConfigValue::Integer(2));
        table.insert(
            "t]x".to_owned(),
            ConfigValue::Table(ConfigTable::from([(
                "k".to_owned(),
                ConfigValue::String("v".to_owned()),
            )])),
        );
        let emitted = to_toml(&table);
        assert!(!emitted.chars().any(|c| c.is_control() && c != '\n'));
        // A naive emitter (`format!("{k} = \"{v}\"")`) writes a document TOML refuses.
        let naive = format!("{nasty} = \"{nasty}\"\n");
        assert!(toml_span::parse(&naive).is_err());
        assert_eq!(parse(&emitted), table, "{emitted}");
    }

    #[test]
    fn json_refuses_only_non_finite_floats() {
        let table = parse("a = 1\nb = [1.5, { c = \"d\" }]\n[e]\nf = true\n");
        assert_eq!(
            ConfigValue::Table(table).to_json().unwrap(),
            serde_json::json!({"a": 1, "b": [1.5, {"c": "d"}], "e": {"f": true}})
        );
        let bad = ConfigValue::Table(parse("[x]\ny = [1.0, nan]\n"));
        assert_eq!(bad.first_non_finite("c").as_deref(), Some("c.x.y[1]"));
        assert!(bad.to_json().is_none());
        // serde_json alone would have written null for it, silently.
        assert_eq!(serde_json::json!(f64::NAN), serde_json::Value::Null);
    }
}
