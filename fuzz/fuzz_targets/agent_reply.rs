//! The dstack agent's `GetQuote` reply as raw HTTP (status line, headers, chunked or sized
//! body) through `measure::dstack::quoted_log_of_reply`: the reader `post_json` uses, then the
//! JSON reply, the quote, the event log and its replay, as the agent and dstack-native
//! measurers read them. Invariants: the register check agrees with the replay; the events
//! read, written back as an agent reply (v1 entries, as dstack's `EmitEvent` logs them),
//! read back to the same events replaying to their recomputed digests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::hex;
use trusted_launcher::measure::Event;
use trusted_launcher::measure::dstack::quoted_log_of_reply;
use trusted_launcher::measure::event::replay;
use trusted_launcher::measure::event_log::LogEntry;

/// Intel's sample v4 quote shipped with dcap-qvl (tests/fixtures).
const QUOTE: &[u8] = include_bytes!("../../tests/fixtures/dcap-qvl_sample_tdx_quote");

fn reply_of(events: &[Event]) -> Vec<u8> {
    let entries: Vec<LogEntry> = events.iter().map(|e| LogEntry::of(e, None)).collect();
    let body = serde_json::json!({
        "quote": hex::encode(QUOTE),
        "event_log": serde_json::to_string(&entries).expect("entries serialise"),
    })
    .to_string();
    let mut reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reply.extend_from_slice(body.as_bytes());
    reply
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(log) = quoted_log_of_reply(bytes.to_vec()) else {
        return;
    };
    let complete = log.replayed == log.quoted;
    assert_eq!(log.extended_by(&[]), complete, "register check");
    let events = log.events.clone();
    assert_eq!(log.require_complete().is_ok(), complete, "require_complete");

    let again = quoted_log_of_reply(reply_of(&events)).expect("a written reply is refused");
    assert_eq!(again.events, events, "events round trip");
    let digests: Vec<[u8; 48]> = events.iter().map(Event::digest).collect();
    assert_eq!(
        again.replayed,
        replay(&digests),
        "replay of recomputed digests"
    );
});
