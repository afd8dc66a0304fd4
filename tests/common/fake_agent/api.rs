//! The agent's API: `Version`, `Info`, `GetQuote` and `EmitEvent` with dstack's JSON
//! shapes, per mode; and the quote it builds.

use super::event_log::{Entry, EntryJson, extend, hex, replay_imr, unhex};
use super::wire::Request;
use super::{
    APP_ID, COMPOSE_HASH, DEVICE_ID, INSTANCE_ID, MRTD, Mode, QUOTE_LEN, QUOTE_MRTD,
    QUOTE_REPORT_DATA, QUOTE_RTMR0, QUOTE_RTMR3, SIMULATOR_ERROR, Shared, State,
};

/// The agent's answer: status line text and JSON body.
pub(super) fn dispatch(request: &Request, shared: &Shared) -> (&'static str, String) {
    let body: serde_json::Value = if request.body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        match serde_json::from_slice(&request.body) {
            Ok(value) => value,
            Err(e) => return error(&format!("failed to decode request: {e}")),
        }
    };
    let mode = shared.mode;
    match request.method.as_str() {
        "Version" => ok(&serde_json::json!({"version": "0.5.11", "rev": "fake"})),
        "Info" => {
            shared.settle_native();
            let state = shared.state();
            match shared.full_log(&state) {
                Ok(log) => ok(&info(&state, &log)),
                Err(e) => error(&e),
            }
        }
        "GetQuote" => {
            let Some(report_data) = hex_field(&body, "report_data") else {
                return error("invalid report_data: not hex");
            };
            if report_data.len() > 64 {
                return error("report_data must be at most 64 bytes");
            }
            let mut padded = [0u8; 64];
            padded[..report_data.len()].copy_from_slice(&report_data);
            shared.settle_native();
            let state = shared.state();
            let stripped = mode == Mode::Stripped;
            let full = match shared.full_log(&state) {
                Ok(log) => log,
                Err(e) => return error(&e),
            };
            let log: Vec<EntryJson<'_>> = full.iter().map(|e| e.json(stripped)).collect();
            ok(&serde_json::json!({
                "quote": hex(&quote(&state, &padded)),
                "event_log": serde_json::to_string(&log).unwrap(),
                "report_data": hex(&padded),
                "vm_config": "{}",
            }))
        }
        "EmitEvent" => match mode {
            Mode::NoEmitEvent => error("Service not found: EmitEvent"),
            Mode::Simulator => error(SIMULATOR_ERROR),
            _ => {
                let Some(name) = body.get("event").and_then(serde_json::Value::as_str) else {
                    return error("invalid event: expected a string");
                };
                let Some(payload) = hex_field(&body, "payload") else {
                    return error("invalid payload: not hex");
                };
                if mode != Mode::DropsEvents {
                    let mut state = shared.state();
                    let entry = Entry::runtime(name, &payload);
                    state.rtmr3 = extend(&state.rtmr3, &entry.digest);
                    state.log.push(entry);
                }
                ("200 OK", "null".to_owned())
            }
        },
        other => error(&format!("Service not found: {other}")),
    }
}

pub(super) fn ok(value: &serde_json::Value) -> (&'static str, String) {
    ("200 OK", value.to_string())
}

pub(super) fn error(message: &str) -> (&'static str, String) {
    (
        "400 Bad Request",
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// A hex byte field; absent means empty (protobuf defaults), anything else not hex is `None`.
pub(super) fn hex_field(body: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    match body.get(name) {
        None | Some(serde_json::Value::Null) => Some(Vec::new()),
        Some(serde_json::Value::String(text)) => unhex(text),
        Some(_) => None,
    }
}

pub(super) fn info(state: &State, log: &[Entry]) -> serde_json::Value {
    let log: Vec<EntryJson<'_>> = log.iter().map(|e| e.json(false)).collect();
    let tcb_info = serde_json::json!({
        "mrtd": hex(&MRTD),
        "rtmr0": hex(&replay_imr(&state.log, 0)),
        "rtmr1": hex(&replay_imr(&state.log, 1)),
        "rtmr2": hex(&replay_imr(&state.log, 2)),
        "rtmr3": hex(&state.rtmr3),
        "event_log": log,
        "app_compose": "{}",
        "compose_hash": hex(&COMPOSE_HASH),
    });
    serde_json::json!({
        "app_id": hex(&APP_ID),
        "instance_id": hex(&INSTANCE_ID),
        "app_cert": "",
        "tcb_info": tcb_info.to_string(),
        "app_name": "fake",
        "device_id": hex(&DEVICE_ID),
        "key_provider_info": "",
        "compose_hash": hex(&COMPOSE_HASH),
    })
}

/// A v4 TDX quote with an empty signature: the registers as they are now.
pub(super) fn quote(state: &State, report_data: &[u8; 64]) -> Vec<u8> {
    let mut quote = vec![0u8; QUOTE_LEN];
    quote[0..2].copy_from_slice(&4u16.to_le_bytes());
    quote[2..4].copy_from_slice(&2u16.to_le_bytes());
    quote[4..8].copy_from_slice(&0x81u32.to_le_bytes());
    quote[QUOTE_MRTD..QUOTE_MRTD + 48].copy_from_slice(&MRTD);
    for (at, imr) in [
        (QUOTE_RTMR0, 0),
        (QUOTE_RTMR0 + 48, 1),
        (QUOTE_RTMR0 + 96, 2),
    ] {
        quote[at..at + 48].copy_from_slice(&replay_imr(&state.log, imr));
    }
    quote[QUOTE_RTMR3..QUOTE_RTMR3 + 48].copy_from_slice(&state.rtmr3);
    quote[QUOTE_REPORT_DATA..QUOTE_REPORT_DATA + 64].copy_from_slice(report_data);
    quote[632..636].copy_from_slice(&0u32.to_le_bytes());
    quote
}
