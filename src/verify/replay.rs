//! The event log against the quote: every RTMR3 digest recomputed, every register replayed.

use crate::hex;
use crate::measure::event::{Event, replay};
use crate::measure::replay as log_replay;
use crate::tdx_quote::TdQuote;

use super::input::Evidence;
use super::quote::check_reported;
use super::report::{EventJson, Report};

/// Recomputes RTMR3 digests, replays every register, compares with the quote. Returns the
/// RTMR3 events when their digests are sound.
pub fn check_log(
    report: &mut Report,
    evidence: &Evidence,
    quote: Option<&TdQuote>,
) -> Option<Vec<Event>> {
    for (index, name) in ["rtmr0", "rtmr1", "rtmr2"].into_iter().enumerate() {
        let imr = u32::try_from(index).unwrap_or_default();
        let digests: Option<Vec<[u8; 48]>> = evidence
            .entries
            .iter()
            .filter(|e| e.imr == imr)
            .map(|e| hex::decode_exact::<48>(&e.digest.to_ascii_lowercase()))
            .collect();
        let check = format!("{name}.replay");
        match (digests, quote) {
            (Some(d), _) if d.is_empty() => {
                report.skip(&check, format!("no IMR {imr} entries in the log"));
            }
            (None, _) => report.fail(
                &check,
                format!("an IMR {imr} entry has no 48-byte hex digest"),
            ),
            (Some(_), None) => report.skip(&check, "no readable quote"),
            (Some(d), Some(q)) => {
                let replayed = replay(&d);
                let quoted = q.rtmr.get(index).copied().unwrap_or([0; 48]);
                report.check(
                    &check,
                    replayed == quoted,
                    format!(
                        "{} entries replay to {}; quote has {}",
                        d.len(),
                        hex::encode(&replayed),
                        hex::encode(&quoted)
                    ),
                );
            }
        }
    }
    let rtmr3_entries = evidence.entries.iter().filter(|e| e.imr == 3).count();
    if !evidence.has_log {
        report.skip("event_log.digests", "no event log given");
        report.skip("rtmr3.replay", "no event log given: nothing says what runs");
        check_reported(report, evidence, quote);
        return None;
    }
    let log = match log_replay::rtmr3(&evidence.entries) {
        Ok(log) => log,
        Err(error) => {
            report.fail("event_log.digests", error.to_string());
            report.fail("rtmr3.replay", "cannot replay a log with a wrong digest");
            check_reported(report, evidence, quote);
            return None;
        }
    };
    let supplied = evidence
        .entries
        .iter()
        .filter(|e| e.imr == 3 && !e.digest.is_empty())
        .count();
    let supplied = if supplied == 0 {
        "no digests supplied (stripped log)".to_owned()
    } else {
        format!("the {supplied} supplied digests all match")
    };
    report.pass(
        "event_log.digests",
        format!("{rtmr3_entries} RTMR3 entries recomputed from name and payload; {supplied}"),
    );
    report.events = log
        .events
        .iter()
        .zip(evidence.entries.iter().filter(|e| e.imr == 3))
        .map(|(event, entry)| EventJson {
            imr: 3,
            event: event.name.clone(),
            event_payload: hex::encode(&event.payload),
            digest: hex::encode(&match entry.version {
                Some(2) => event.digest_v2(),
                _ => event.digest(),
            }),
        })
        .collect();
    match quote {
        Some(q) => report.check(
            "rtmr3.replay",
            log.rtmr3 == q.rtmr[3],
            format!(
                "{rtmr3_entries} events replay to {}; quote has {}",
                hex::encode(&log.rtmr3),
                hex::encode(&q.rtmr[3])
            ),
        ),
        None => report.skip("rtmr3.replay", "no readable quote"),
    }
    check_reported(report, evidence, quote);
    (quote.is_some_and(|q| log.rtmr3 == q.rtmr[3])).then_some(log.events)
}
