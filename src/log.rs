//! The launcher's own log on stderr (stdout belongs to the workload): text or JSON lines.

use std::io::Write as _;

use serde::Serialize;

/// `--log-format text|json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Debug, Default)]
pub struct Logger {
    format: LogFormat,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    level: Level,
    message: &'a str,
}

impl Logger {
    #[must_use]
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }

    pub fn info(&self, message: &str) {
        self.write(Level::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.write(Level::Warning, message);
    }

    pub fn error(&self, message: &str) {
        self.write(Level::Error, message);
    }

    fn write(&self, level: Level, message: &str) {
        let line = match self.format {
            LogFormat::Text => match level {
                Level::Info => format!("trusted-launcher: {message}\n"),
                Level::Warning => format!("trusted-launcher: warning: {message}\n"),
                Level::Error => format!("trusted-launcher: error: {message}\n"),
            },
            LogFormat::Json => {
                let mut line = serde_json::to_string(&JsonLine { level, message })
                    .unwrap_or_else(|_| String::from("{}"));
                line.push('\n');
                line
            }
        };
        // Nothing useful can be done if stderr is gone.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}
