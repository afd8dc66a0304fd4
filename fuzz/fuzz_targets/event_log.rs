//! Event logs: the launcher's own JSON-lines log (`LocalEventLog::this_boot`, through
//! `event_log::events_of_boot`), a log given to `verify --event-log` (JSON array or lines,
//! replayed by `replay::rtmr3`, as the agent's log is), and dstack-native's
//! `runtime_event_version` file. Invariants: parse → write → parse gives the same events and
//! the replay of their recomputed digests; a version is read only from `1` or `2`.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::verify_event_log;
use trusted_launcher::measure::Event;
use trusted_launcher::measure::dstack_native::{DigestVersion, parse_version};
use trusted_launcher::measure::event::replay;
use trusted_launcher::measure::event_log::{LogEntry, events_of_boot};

const BOOT: &str = "2f3c1f7e-6a57-4c3e-9d55-6f0d7a1b2c3d";

fn lines(events: &[Event], boot_id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    for event in events {
        out.extend(serde_json::to_vec(&LogEntry::of(event, boot_id)).expect("entry serialises"));
        out.push(b'\n');
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("/run/trusted-launcher/events.jsonl");
    if let Ok(events) = events_of_boot(path, bytes, BOOT) {
        let again = events_of_boot(path, &lines(&events, Some(BOOT)), BOOT)
            .expect("a log written from read events is refused");
        assert_eq!(again, events, "launcher log round trip");
    }

    if let Ok(log) = verify_event_log(bytes) {
        let again = verify_event_log(&lines(&log.events, None))
            .expect("a log written from replayed events is refused");
        assert_eq!(again.events, log.events, "verify log round trip");
        let digests: Vec<[u8; 48]> = log.events.iter().map(Event::digest).collect();
        assert_eq!(
            again.rtmr3,
            replay(&digests),
            "replay of recomputed digests"
        );
    }

    let version = parse_version(
        PathBuf::from("/run/log/dstack/runtime_event_version"),
        bytes,
    );
    let text = String::from_utf8_lossy(bytes);
    match version {
        Ok(DigestVersion::V1) => assert_eq!(text.trim(), "1"),
        Ok(DigestVersion::V2) => assert_eq!(text.trim(), "2"),
        Err(_) => assert!(!["1", "2"].contains(&text.trim())),
    }
});
