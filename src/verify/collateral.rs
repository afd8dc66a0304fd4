//! DCAP collateral in dcap-qvl's `QuoteCollateralV3` shape, with its byte fields given either
//! as hex strings (dcap-qvl's samples) or as arrays of numbers (NEAR's public data).

use dcap_qvl::QuoteCollateralV3;
use serde_json::Value;

use super::input::bytes_of;
use crate::hex;

pub fn parse(value: &Value) -> Result<QuoteCollateralV3, String> {
    let text = |name: &str| {
        value
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("collateral field {name} is missing or not a string"))
    };
    let bytes = |name: &str| match value.get(name) {
        Some(Value::String(text)) => hex::decode(&text.to_ascii_lowercase())
            .ok_or_else(|| format!("collateral field {name} is not hex")),
        Some(array @ Value::Array(_)) => bytes_of(array)
            .ok_or_else(|| format!("collateral field {name} is not an array of bytes")),
        _ => Err(format!("collateral field {name} is missing")),
    };
    Ok(QuoteCollateralV3 {
        pck_crl_issuer_chain: text("pck_crl_issuer_chain")?,
        root_ca_crl: bytes("root_ca_crl")?,
        pck_crl: bytes("pck_crl")?,
        tcb_info_issuer_chain: text("tcb_info_issuer_chain")?,
        tcb_info: text("tcb_info")?,
        tcb_info_signature: bytes("tcb_info_signature")?,
        qe_identity_issuer_chain: text("qe_identity_issuer_chain")?,
        qe_identity: text("qe_identity")?,
        qe_identity_signature: bytes("qe_identity_signature")?,
        pck_certificate_chain: value
            .get("pck_certificate_chain")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}
