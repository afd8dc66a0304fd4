//! Reading a dstack event log: recompute every RTMR3 digest from name and payload (never
//! trusting a supplied one), replay, and list the runtime events in order.

use serde::Deserialize;

use super::event::{EVENT_TYPE, Event, replay};
use crate::hex;

/// One entry as dstack serialises it; unknown fields are ignored (newer agents add some).
#[derive(Clone, Debug, Deserialize)]
pub struct LogEntry {
    pub imr: u32,
    pub event_type: u32,
    #[serde(default)]
    pub digest: String,
    pub event: String,
    #[serde(default)]
    pub event_payload: String,
    /// `2` for v2 digests; absent for v1.
    #[serde(default)]
    pub version: Option<u32>,
}

/// The RTMR3 part of a log, checked.
#[derive(Debug)]
pub struct Rtmr3Log {
    pub events: Vec<Event>,
    pub rtmr3: [u8; 48],
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("event log entry {index} ({name}) has event type {event_type:#x}, not 0x08000001")]
    EventType {
        index: usize,
        name: String,
        event_type: u32,
    },
    #[error("event log entry {index} ({name}) has a payload that is not lowercase hex")]
    Payload { index: usize, name: String },
    #[error(
        "event log entry {index} ({name}) carries digest {supplied}, but its name and payload hash to {computed}"
    )]
    Digest {
        index: usize,
        name: String,
        supplied: String,
        computed: String,
    },
    #[error("event log entry {index} ({name}) has unknown digest version {version}")]
    Version {
        index: usize,
        name: String,
        version: u32,
    },
}

/// Recomputes and replays every IMR-3 entry.
pub fn rtmr3(entries: &[LogEntry]) -> Result<Rtmr3Log, ReplayError> {
    let mut events = Vec::new();
    let mut digests = Vec::new();
    for (index, entry) in entries.iter().enumerate().filter(|(_, e)| e.imr == 3) {
        let name = || entry.event.clone();
        if entry.event_type != EVENT_TYPE {
            return Err(ReplayError::EventType {
                index,
                name: name(),
                event_type: entry.event_type,
            });
        }
        let payload = hex::decode(&entry.event_payload).ok_or_else(|| ReplayError::Payload {
            index,
            name: name(),
        })?;
        let event = Event {
            name: entry.event.clone(),
            payload,
        };
        let computed = match entry.version {
            None | Some(1) => event.digest(),
            Some(2) => event.digest_v2(),
            Some(version) => {
                return Err(ReplayError::Version {
                    index,
                    name: name(),
                    version,
                });
            }
        };
        if !entry.digest.is_empty() && entry.digest != hex::encode(&computed) {
            return Err(ReplayError::Digest {
                index,
                name: name(),
                supplied: entry.digest.clone(),
                computed: hex::encode(&computed),
            });
        }
        digests.push(computed);
        events.push(event);
    }
    Ok(Rtmr3Log {
        rtmr3: replay(&digests),
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(imr: u32, name: &str, payload: &str, digest: &str) -> LogEntry {
        LogEntry {
            imr,
            event_type: if imr == 3 { EVENT_TYPE } else { 4 },
            digest: digest.into(),
            event: name.into(),
            event_payload: payload.into(),
            version: None,
        }
    }

    /// Real data: dstack's stripped tdx-lite log (RTMR3 digests empty) replays to the RTMR3
    /// of its quote once digests are recomputed.
    #[test]
    fn stripped_real_log_replays_to_its_quote() {
        let text = include_str!("../../tests/fixtures/dstack_verifier_tdx-lite-getquote.json");
        let response: serde_json::Value = serde_json::from_str(text).unwrap();
        let entries: Vec<LogEntry> =
            serde_json::from_str(response["event_log"].as_str().unwrap()).unwrap();
        assert!(entries.iter().any(|e| e.imr == 3 && e.digest.is_empty()));
        let quote = hex::decode(response["quote"].as_str().unwrap()).unwrap();
        let quote = crate::tdx_quote::TdQuote::parse(&quote).unwrap();
        let log = rtmr3(&entries).unwrap();
        assert_eq!(log.rtmr3, quote.rtmr[3]);
        assert_eq!(log.events.last().unwrap().name, "system-ready");
    }

    #[test]
    fn supplied_digests_must_match() {
        let good = Event::new("a", vec![1]);
        let ok = [
            entry(0, "boot", "", "ff"),
            entry(3, "a", "01", &hex::encode(&good.digest())),
        ];
        assert_eq!(rtmr3(&ok).unwrap().rtmr3, replay(&[good.digest()]));
        let bad = [entry(3, "a", "02", &hex::encode(&good.digest()))];
        assert!(matches!(
            rtmr3(&bad),
            Err(ReplayError::Digest { index: 0, .. })
        ));
        assert!(matches!(
            rtmr3(&[entry(3, "a", "0", "")]),
            Err(ReplayError::Payload { .. })
        ));
        let mut v9 = entry(3, "a", "", "");
        v9.version = Some(9);
        assert!(matches!(
            rtmr3(&[v9]),
            Err(ReplayError::Version { version: 9, .. })
        ));
    }

    #[test]
    fn v2_digest_is_sha384_of_canonical_json() {
        use sha2::{Digest as _, Sha384};
        let event = Event::new("app\"x", vec![0xab]);
        let expected: [u8; 48] =
            Sha384::digest(br#"{"name":"app\"x","payload":"ab","type":134217729}"#).into();
        assert_eq!(event.digest_v2(), expected);
    }
}
