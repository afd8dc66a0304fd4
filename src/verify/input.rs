//! What `verify` is given, recognised by shape: a `GetQuote` or `Info` reply, NEAR's public data,
//! `phala cvms attestation --json`, or a quote file with an event log.

use std::path::Path;

use der::Decode as _;
use der::DecodePem as _;
use der::asn1::{ObjectIdentifier, OctetString};
use serde_json::Value;
use x509_cert::Certificate;

use super::app_compose::AppCompose;
use crate::capped_read::{CappedReadError, open_regular, read_to_cap};
use crate::hex;
use crate::measure::replay::LogEntry;

/// Inputs larger than this are not attestations.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
/// dstack's certificate extension carrying the TDX quote.
const QUOTE_EXTENSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.62397.1.1");

/// Everything found in the inputs. Nothing here is trusted: every value is checked against
/// the quote by the checks.
#[derive(Debug, Default)]
pub struct Evidence {
    pub kind: String,
    pub quote: Option<Vec<u8>>,
    /// Whether an event log was given at all (a bare `--quote` has none).
    pub has_log: bool,
    pub entries: Vec<LogEntry>,
    /// Register values reported beside the quote (`tcb_info`), hex.
    pub reported: Vec<(&'static str, String)>,
    /// The app-compose the input document carries (exact bytes, as measured).
    pub app_compose: Option<AppCompose>,
    /// The app-compose given with `--app-compose FILE`, under audit.
    pub audited_compose: Option<AppCompose>,
    pub collateral: Option<Value>,
}

/// Reads a file (or stdin for `-`), capped.
pub fn read_source(path: &Path) -> Result<Vec<u8>, String> {
    let result = if path == Path::new("-") {
        read_to_cap(std::io::stdin().lock(), MAX_INPUT_BYTES)
    } else {
        // A FIFO or device given as evidence is refused, not waited on.
        open_regular(path).and_then(|file| read_to_cap(file, MAX_INPUT_BYTES))
    };
    result.map_err(|error| match error {
        CappedReadError::TooLarge => {
            format!("{} is larger than {MAX_INPUT_BYTES} bytes", path.display())
        }
        other => format!("cannot read {}: {other}", path.display()),
    })
}

/// Recognises a JSON attestation document.
pub fn from_document(bytes: &[u8]) -> Result<Evidence, String> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| super::quote_text::not_a_document(bytes, &e.to_string()))?;
    if let Some(dstack) = doc.pointer("/tee_participant_info/Dstack") {
        return near(dstack);
    }
    if doc.get("app_certificates").is_some() || doc.get("is_online").is_some() {
        return phala(&doc);
    }
    if doc.get("app_cert").is_some() && doc.get("tcb_info").is_some() {
        return info(&doc);
    }
    if doc.get("quote").is_some() && doc.get("event_log").is_some() {
        return get_quote(&doc);
    }
    Err("input matches no known shape (a GetQuote or Info reply, NEAR public data, `phala cvms attestation --json`); for a bare quote use --quote".into())
}

fn get_quote(doc: &Value) -> Result<Evidence, String> {
    let quote = hex_field(doc, "quote")?;
    Ok(Evidence {
        kind: "dstack GetQuote reply".into(),
        quote: Some(quote),
        has_log: true,
        entries: event_log(doc.get("event_log"))?,
        ..Evidence::default()
    })
}

fn info(doc: &Value) -> Result<Evidence, String> {
    let tcb = embedded_json(doc.get("tcb_info"), "tcb_info")?;
    let pem = doc
        .get("app_cert")
        .and_then(Value::as_str)
        .ok_or("app_cert is not a string")?;
    Ok(Evidence {
        kind: "dstack Info reply".into(),
        quote: Some(quote_from_certificate(pem)?),
        has_log: true,
        entries: event_log(tcb.get("event_log"))?,
        reported: registers(&tcb),
        app_compose: carried(&tcb, "tcb_info.app_compose"),
        ..Evidence::default()
    })
}

fn near(dstack: &Value) -> Result<Evidence, String> {
    let quote = byte_array(dstack.get("quote"), "tee_participant_info.Dstack.quote")?;
    let tcb = dstack
        .get("tcb_info")
        .ok_or("tee_participant_info.Dstack has no tcb_info")?;
    Ok(Evidence {
        kind: "NEAR public data".into(),
        quote: Some(quote),
        has_log: true,
        entries: event_log(tcb.get("event_log"))?,
        reported: registers(tcb),
        app_compose: carried(tcb, "tee_participant_info.Dstack.tcb_info.app_compose"),
        collateral: dstack.get("collateral").cloned(),
        ..Evidence::default()
    })
}

fn phala(doc: &Value) -> Result<Evidence, String> {
    let certificates = doc
        .get("app_certificates")
        .and_then(Value::as_array)
        .ok_or("app_certificates is missing or not an array")?;
    let leaf = certificates
        .iter()
        .filter(|c| {
            c.get("quote")
                .and_then(Value::as_str)
                .is_some_and(|q| !q.is_empty())
        })
        .min_by_key(|c| {
            c.get("position_in_chain")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX)
        })
        .ok_or("no certificate in app_certificates carries a quote")?;
    let quote = hex_field(leaf, "quote")?;
    let tcb = doc
        .get("tcb_info")
        .filter(|t| !t.is_null())
        .ok_or("tcb_info is missing")?;
    Ok(Evidence {
        kind: "phala cvms attestation".into(),
        quote: Some(quote),
        has_log: true,
        entries: event_log(tcb.get("event_log"))?,
        reported: registers(tcb),
        // The agent's `tcb_info.app_compose` is the measured document; Phala's API also has
        // a top-level `compose_file` (Phala's JS SDK, `CvmAttestationSchema`: both fields),
        // used only when the agent's is absent. Either way the hash check decides.
        app_compose: carried(tcb, "tcb_info.app_compose").or_else(|| {
            doc.get("compose_file")
                .and_then(Value::as_str)
                .map(|text| AppCompose::new("compose_file", text))
        }),
        ..Evidence::default()
    })
}

/// `tcb_info.app_compose` when it is a string: the exact text, never re-serialised.
fn carried(tcb: &Value, from: &str) -> Option<AppCompose> {
    tcb.get("app_compose")
        .and_then(Value::as_str)
        .map(|text| AppCompose::new(from, text))
}

/// `--event-log FILE`: a JSON array, or JSON lines (the launcher's own log).
pub fn event_log_file(bytes: &[u8]) -> Result<Vec<LogEntry>, String> {
    if let Ok(entries) = serde_json::from_slice::<Vec<LogEntry>>(bytes) {
        return known_registers(entries);
    }
    let mut entries = Vec::new();
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = serde_json::from_slice(line)
            .map_err(|e| format!("event log line {} is not an entry: {e}", index + 1))?;
        entries.push(entry);
    }
    known_registers(entries)
}

/// The quote in the leaf (first) certificate of a PEM chain.
pub fn quote_from_certificate(pem: &str) -> Result<Vec<u8>, String> {
    const END: &str = "-----END CERTIFICATE-----";
    let leaf_end = pem.find(END).ok_or("app_cert holds no PEM certificate")? + END.len();
    let leaf = pem.get(..leaf_end).unwrap_or(pem);
    let certificate = Certificate::from_pem(leaf.as_bytes())
        .map_err(|e| format!("app_cert leaf certificate is malformed: {e}"))?;
    let extension = certificate
        .tbs_certificate()
        .extensions()
        .and_then(|extensions| extensions.iter().find(|e| e.extn_id == QUOTE_EXTENSION))
        .ok_or("app_cert leaf has no quote extension (1.3.6.1.4.1.62397.1.1)")?;
    let quote = OctetString::from_der(extension.extn_value.as_bytes())
        .map_err(|e| format!("quote extension is not an OCTET STRING: {e}"))?;
    Ok(quote.as_bytes().to_vec())
}

fn hex_field(doc: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = doc
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{name} is missing or not a string"))?;
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex::decode(&digits.to_ascii_lowercase())
        .ok_or_else(|| format!("{name} is not hex ({})", super::quote_text::start_of(text)))
}

fn byte_array(value: Option<&Value>, name: &str) -> Result<Vec<u8>, String> {
    value
        .and_then(bytes_of)
        .ok_or_else(|| format!("{name} is not an array of bytes"))
}

/// A JSON array of numbers 0..=255 as bytes (how NEAR serialises byte fields).
pub fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    value
        .as_array()?
        .iter()
        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
        .collect()
}

/// A field holding JSON, either embedded as a string (dstack) or as an object.
fn embedded_json(value: Option<&Value>, name: &str) -> Result<Value, String> {
    match value {
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|e| format!("{name} is not JSON: {e}"))
        }
        Some(Value::Null) | None => Err(format!("{name} is missing")),
        Some(other) => Ok(other.clone()),
    }
}

fn event_log(value: Option<&Value>) -> Result<Vec<LogEntry>, String> {
    let log = embedded_json(value, "event_log")?;
    let entries: Vec<LogEntry> = serde_json::from_value(log)
        .map_err(|e| format!("event_log is not a list of entries: {e}"))?;
    known_registers(entries)
}

/// TDX has RTMR0..3 only: an entry for another register is malformed, not ignorable.
pub fn known_registers(entries: Vec<LogEntry>) -> Result<Vec<LogEntry>, String> {
    match entries.iter().position(|e| e.imr > 3) {
        Some(index) => Err(format!(
            "event log entry {index} names register {} (TDX has IMR 0 to 3)",
            entries.get(index).map_or(0, |e| e.imr)
        )),
        None => Ok(entries),
    }
}

fn registers(tcb: &Value) -> Vec<(&'static str, String)> {
    ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"]
        .into_iter()
        .filter_map(|name| {
            tcb.get(name)
                .and_then(Value::as_str)
                .map(|v| (name, v.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_recognised() {
        let near = from_document(include_bytes!(
            "../../tests/fixtures/near-mpc_public_data.json"
        ))
        .unwrap();
        assert_eq!(near.kind, "NEAR public data");
        assert!(near.collateral.is_some());
        assert_eq!(near.reported.len(), 5);
        let lite = from_document(include_bytes!(
            "../../tests/fixtures/dstack_verifier_tdx-lite-getquote.json"
        ))
        .unwrap();
        assert_eq!(lite.kind, "dstack GetQuote reply");
        assert!(from_document(b"{}").is_err());
        assert!(from_document(b"[1,2]").is_err());
        assert!(from_document(b"not json").is_err());
    }

    #[test]
    fn event_logs_as_array_or_lines() {
        let line = r#"{"imr":3,"event_type":134217729,"digest":"","event":"a","event_payload":"","boot_id":"x"}"#;
        assert_eq!(
            event_log_file(format!("[{line}]").as_bytes())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            event_log_file(format!("{line}\n\n{line}\n").as_bytes())
                .unwrap()
                .len(),
            2
        );
        assert!(event_log_file(b"{\"imr\":3}\n").is_err());
    }
}
