//! The dstack guest agent as an RTMR3 backend: `EmitEvent` to extend, `GetQuote` to check.
//!
//! Wire types are defined here rather than taken from `dstack-sdk-types` 0.1.3, which would
//! add anyhow, bon (a proc-macro builder), pkcs8 and hex to the TEE binary for the two
//! fields of two replies read here; `dstack-sdk` itself would add an Ethereum stack.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::event::{Event, replay_from};
use super::http::{Endpoint, HttpError, Response, post_json};
use super::replay::{self, LogEntry, ReplayError};
use super::{MeasureError, Measurer};
use crate::contract::launches::last_launch;
use crate::hex;
use crate::tdx_quote::{QuoteError, TdQuote};

/// Sockets dstack-sdk tries, in order, after an explicit path and `DSTACK_SIMULATOR_ENDPOINT`.
pub const DEFAULT_SOCKETS: &[&str] = &[
    "/var/run/dstack.sock",
    "/run/dstack.sock",
    "/var/run/dstack/dstack.sock",
    "/run/dstack/dstack.sock",
];

/// The variable dstack-sdk reads for a simulator endpoint (a socket path or `http://host:port`).
pub const SIMULATOR_ENV: &str = "DSTACK_SIMULATOR_ENDPOINT";

/// Every agent call finishes within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A `GetQuote` reply carries the quote and the whole event log: kilobytes; cap generously.
const MAX_REPLY: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DstackError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("dstack agent {method} failed: {message}")]
    Agent {
        method: &'static str,
        message: String,
    },
    #[error("dstack agent {method} answered HTTP {status}: {body}")]
    Status {
        method: &'static str,
        status: u16,
        body: String,
    },
    #[error("dstack agent {method} answered with content type {content_type:?}, not JSON")]
    NotJson {
        method: &'static str,
        content_type: String,
    },
    #[error("dstack agent {method} reply is malformed: {detail}")]
    Malformed {
        method: &'static str,
        detail: String,
    },
    #[error("dstack agent's quote is unreadable: {0}")]
    Quote(#[from] QuoteError),
    #[error("dstack agent's event log is inconsistent: {0}")]
    Replay(#[from] ReplayError),
    #[error("dstack agent's event log replays to RTMR3 {replayed}, but its quote says {quoted}")]
    RegisterMismatch { replayed: String, quoted: String },
    #[error(
        "dstack agent accepted {event} but its quoted event log does not end with this launch's events (got {found}); it is not recording events"
    )]
    NotRecorded { event: String, found: String },
}

impl DstackError {
    /// The answer of an agent whose release removed `EmitEvent` (dstack PR #768).
    #[must_use]
    pub fn is_emit_event_missing(&self) -> bool {
        matches!(self, Self::Agent { method: "EmitEvent", message } if message.contains("Service not found: EmitEvent"))
    }
}

/// Where the agent is: the explicit socket, else the simulator endpoint (only when the
/// launcher decided to honour `DSTACK_SIMULATOR_ENDPOINT`, see `tee_presence`), else the first
/// default socket that exists. Returns what was tried when nothing is found.
pub fn discover(
    explicit: Option<&Path>,
    simulator: Option<&OsStr>,
) -> Result<(Endpoint, &'static str), Vec<String>> {
    if let Some(path) = explicit {
        return if path.exists() {
            Ok((Endpoint::Unix(path.to_owned()), "configured socket"))
        } else {
            Err(vec![format!(
                "configured socket {} (missing)",
                path.display()
            )])
        };
    }
    if let Some(value) = simulator {
        let value = value.to_string_lossy();
        return Ok(match value.strip_prefix("http://") {
            Some(address) => (
                Endpoint::Tcp(address.trim_end_matches('/').to_owned()),
                SIMULATOR_ENV,
            ),
            None => (Endpoint::Unix(PathBuf::from(value.as_ref())), SIMULATOR_ENV),
        });
    }
    DEFAULT_SOCKETS
        .iter()
        .find(|path| Path::new(path).exists())
        .map(|path| (Endpoint::Unix(PathBuf::from(path)), "default socket"))
        .ok_or_else(|| vec![format!("dstack sockets {}", DEFAULT_SOCKETS.join(", "))])
}

#[derive(Deserialize)]
struct ErrorReply {
    error: String,
}

#[derive(Deserialize)]
struct QuoteReply {
    quote: String,
    event_log: String,
}

/// A client of one agent.
#[derive(Debug)]
pub struct Dstack {
    endpoint: Endpoint,
}

impl Dstack {
    #[must_use]
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        body: &serde_json::Value,
    ) -> Result<T, DstackError> {
        let body = serde_json::to_vec(body).map_err(|e| DstackError::Malformed {
            method,
            detail: e.to_string(),
        })?;
        let reply = post_json(
            &self.endpoint,
            &format!("/{method}"),
            &body,
            TIMEOUT,
            MAX_REPLY,
        )?;
        interpret(method, reply)
    }

    /// `EmitEvent`: the agent appends to its log and extends RTMR3.
    pub fn emit(&self, event: &Event) -> Result<(), DstackError> {
        let body = serde_json::json!({
            "event": event.name,
            "payload": hex::encode(&event.payload),
        });
        self.call::<serde_json::Value>("EmitEvent", &body)
            .map(|_| ())
    }

    /// A fresh quote and its event log: the RTMR3 events (digests recomputed, never
    /// trusted), their replay, and the RTMR3 inside the quote.
    pub fn quoted_log(&self) -> Result<QuotedLog, DstackError> {
        let body = serde_json::json!({ "report_data": hex::encode(&[0u8; 64]) });
        let reply: QuoteReply = self.call("GetQuote", &body)?;
        quoted_log(&reply)
    }
}

/// The RTMR3 events of a `GetQuote` reply, digests recomputed, and the quote's RTMR3.
fn quoted_log(reply: &QuoteReply) -> Result<QuotedLog, DstackError> {
    let malformed = |detail: &str| DstackError::Malformed {
        method: "GetQuote",
        detail: detail.to_owned(),
    };
    let quote = hex::decode(&reply.quote).ok_or_else(|| malformed("quote is not hex"))?;
    let quote = TdQuote::parse(&quote)?;
    let entries: Vec<LogEntry> = serde_json::from_str(&reply.event_log)
        .map_err(|e| malformed(&format!("event_log: {e}")))?;
    let log = replay::rtmr3(&entries)?;
    Ok(QuotedLog {
        events: log.events,
        replayed: log.rtmr3,
        quoted: quote.rtmr[3],
    })
}

/// What the agent's reply to `method` says: its JSON body on `200`, else its error.
fn interpret<T: DeserializeOwned>(method: &'static str, reply: Response) -> Result<T, DstackError> {
    let is_json = reply.content_type.as_deref().is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if reply.status != 200 {
        if let Ok(error) = serde_json::from_slice::<ErrorReply>(&reply.body) {
            return Err(DstackError::Agent {
                method,
                message: error.error,
            });
        }
        return Err(DstackError::Status {
            method,
            status: reply.status,
            body: String::from_utf8_lossy(reply.body.get(..200).unwrap_or(&reply.body))
                .into_owned(),
        });
    }
    if !is_json {
        return Err(DstackError::NotJson {
            method,
            content_type: reply.content_type.unwrap_or_default(),
        });
    }
    serde_json::from_slice(&reply.body).map_err(|e| DstackError::Malformed {
        method,
        detail: e.to_string(),
    })
}

/// An agent's raw `GetQuote` reply (HTTP head and body) read as the measurer reads it:
/// framing, status, JSON, quote, event log and replay.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn quoted_log_of_reply(reply: Vec<u8>) -> Result<QuotedLog, DstackError> {
    let endpoint = Endpoint::Unix(PathBuf::from("/fuzz/dstack.sock"));
    let reply = super::http::read_reply(&endpoint, reply, MAX_REPLY)?;
    quoted_log(&interpret("GetQuote", reply)?)
}

/// What a fresh quote says about RTMR3.
#[derive(Debug)]
pub struct QuotedLog {
    pub events: Vec<Event>,
    /// Replay of the agent's RTMR3 entries.
    pub replayed: [u8; 48],
    /// RTMR3 inside the quote.
    pub quoted: [u8; 48],
}

impl QuotedLog {
    /// The agent's events, if its log alone accounts for the register.
    pub fn require_complete(self) -> Result<Vec<Event>, DstackError> {
        if self.replayed == self.quoted {
            return Ok(self.events);
        }
        Err(DstackError::RegisterMismatch {
            replayed: hex::encode(&self.replayed),
            quoted: hex::encode(&self.quoted),
        })
    }

    /// Whether the agent's log followed by `native` (events extended outside the agent)
    /// accounts for the register.
    #[must_use]
    pub fn extended_by(&self, native: &[Event]) -> bool {
        let digests: Vec<[u8; 48]> = native.iter().map(Event::digest).collect();
        replay_from(self.replayed, &digests) == self.quoted
    }
}

impl Measurer for Dstack {
    fn prior_launch(&mut self) -> Result<Vec<Event>, MeasureError> {
        Ok(last_launch(&self.quoted_log()?.require_complete()?))
    }

    fn extend(&mut self, event: &Event) -> Result<(), MeasureError> {
        Ok(self.emit(event)?)
    }

    fn confirm(&mut self, expected: &[Event]) -> Result<(), MeasureError> {
        let found = last_launch(&self.quoted_log()?.require_complete()?);
        Ok(require_recorded(&found, expected)?)
    }

    fn describe(&self) -> String {
        format!("dstack agent at {}", self.endpoint)
    }
}

/// The last launch found in a log must be exactly the events measured so far.
pub fn require_recorded(found: &[Event], expected: &[Event]) -> Result<(), DstackError> {
    if found == expected {
        return Ok(());
    }
    Err(DstackError::NotRecorded {
        event: expected.last().map(|e| e.name.clone()).unwrap_or_default(),
        found: if found.is_empty() {
            "no launcher events".to_owned()
        } else {
            found
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}
