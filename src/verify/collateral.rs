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

/// `collateral` in the shape [`parse`] reads (byte fields as hex): what `--save-collateral`
/// and the cache write, so `--collateral` reads them back.
#[must_use]
pub fn to_json(collateral: &QuoteCollateralV3) -> Value {
    let mut value = serde_json::json!({
        "pck_crl_issuer_chain": collateral.pck_crl_issuer_chain,
        "root_ca_crl": hex::encode(&collateral.root_ca_crl),
        "pck_crl": hex::encode(&collateral.pck_crl),
        "tcb_info_issuer_chain": collateral.tcb_info_issuer_chain,
        "tcb_info": collateral.tcb_info,
        "tcb_info_signature": hex::encode(&collateral.tcb_info_signature),
        "qe_identity_issuer_chain": collateral.qe_identity_issuer_chain,
        "qe_identity": collateral.qe_identity,
        "qe_identity_signature": hex::encode(&collateral.qe_identity_signature),
    });
    if let (Some(chain), Some(object)) = (&collateral.pck_certificate_chain, value.as_object_mut())
    {
        object.insert("pck_certificate_chain".into(), Value::String(chain.clone()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written and read back, every fixture collateral is the same collateral.
    #[test]
    fn round_trip() {
        for name in [
            "dcap-qvl_sample_tdx_quote_collateral.json",
            "dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json",
        ] {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            let parsed = parse(&value).unwrap();
            assert_eq!(parse(&to_json(&parsed)).unwrap(), parsed, "{name}");
        }
    }
}
