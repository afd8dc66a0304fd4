//! The measurement registers of a TDX quote (v4 and v5), read with bounds checks.
//!
//! Layout (little-endian): a 48-byte header (version u16 @0, attestation key type u16 @2,
//! TEE type u32 @4 = 0x81 for TDX); the TD report body at 48 (v4) or at 54 after a u16 body
//! type and u32 body size (v5). Inside the body: MRTD @136, MRCONFIGID @184, RTMR0..3 @328,
//! 376, 424, 472, REPORTDATA @520. No signature is checked here (that is `verify`'s job).

const HEADER_LEN: usize = 48;
const TEE_TYPE_TDX: u32 = 0x81;
const BODY_MIN_LEN: usize = 584;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdQuote {
    pub version: u16,
    pub mrtd: [u8; 48],
    pub mr_config_id: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("quote is {len} bytes, too short for a TD report")]
    Truncated { len: usize },
    #[error("quote version {0} is not a TDX quote version (4 or 5)")]
    Version(u16),
    #[error("quote TEE type {0:#x} is not TDX (0x81)")]
    TeeType(u32),
    #[error("quote v5 body type {0} is not a TD report (2, 3 or 4)")]
    BodyType(u16),
    #[error("quote v5 body of type {body_type} declares {size} bytes, which that type cannot have")]
    BodySize { body_type: u16, size: u32 },
}

impl TdQuote {
    pub fn parse(bytes: &[u8]) -> Result<Self, QuoteError> {
        let truncated = QuoteError::Truncated { len: bytes.len() };
        let version = u16::from_le_bytes(array(bytes, 0).ok_or_else(|| truncated.clone())?);
        let tee_type = u32::from_le_bytes(array(bytes, 4).ok_or_else(|| truncated.clone())?);
        let body = match version {
            4 => HEADER_LEN,
            5 => {
                v5_body_size(bytes)?;
                HEADER_LEN + 6
            }
            other => return Err(QuoteError::Version(other)),
        };
        if tee_type != TEE_TYPE_TDX {
            return Err(QuoteError::TeeType(tee_type));
        }
        if bytes.len() < body + BODY_MIN_LEN {
            return Err(truncated);
        }
        let field =
            |offset: usize| array::<48>(bytes, body + offset).ok_or_else(|| truncated.clone());
        Ok(Self {
            version,
            mrtd: field(136)?,
            mr_config_id: field(184)?,
            rtmr: [field(328)?, field(376)?, field(424)?, field(472)?],
            report_data: array(bytes, body + 520).ok_or_else(|| truncated.clone())?,
        })
    }
}

/// The length of the quote as signed: body plus the signature data its length field names.
/// A quote carried in a certificate is zero-padded; this is where it really ends.
pub fn signed_len(bytes: &[u8]) -> Result<usize, QuoteError> {
    let truncated = || QuoteError::Truncated { len: bytes.len() };
    let version = u16::from_le_bytes(array(bytes, 0).ok_or_else(truncated)?);
    let signature_field = match version {
        4 => HEADER_LEN + BODY_MIN_LEN,
        5 => HEADER_LEN + 6 + usize::try_from(v5_body_size(bytes)?).map_err(|_| truncated())?,
        other => return Err(QuoteError::Version(other)),
    };
    let signature_len = u32::from_le_bytes(array(bytes, signature_field).ok_or_else(truncated)?);
    let total = signature_field
        .checked_add(4)
        .and_then(|n| n.checked_add(usize::try_from(signature_len).ok()?))
        .ok_or_else(truncated)?;
    if total > bytes.len() {
        return Err(truncated());
    }
    Ok(total)
}

/// A v5 body's declared size, checked against its type: TD report 1.0 (type 2) is 584
/// bytes, 1.5 (type 3) 648, 1.5 extended (type 4) at least 648.
fn v5_body_size(bytes: &[u8]) -> Result<u32, QuoteError> {
    let truncated = || QuoteError::Truncated { len: bytes.len() };
    let body_type = u16::from_le_bytes(array(bytes, HEADER_LEN).ok_or_else(truncated)?);
    let size = u32::from_le_bytes(array(bytes, HEADER_LEN + 2).ok_or_else(truncated)?);
    let fits = match body_type {
        2 => size == 584,
        3 => size == 648,
        4 => size >= 648,
        other => return Err(QuoteError::BodyType(other)),
    };
    if fits {
        Ok(size)
    } else {
        Err(QuoteError::BodySize { body_type, size })
    }
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    bytes.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real data: Intel's sample v4 quote shipped with dcap-qvl (tests/fixtures).
    #[test]
    fn reads_registers_of_a_real_quote() {
        let quote = include_bytes!("../tests/fixtures/dcap-qvl_sample_tdx_quote");
        let parsed = TdQuote::parse(quote).unwrap();
        assert_eq!(parsed.version, 4);
        assert_eq!(parsed.rtmr[3].as_slice(), &quote[520..568]);
        assert_eq!(parsed.report_data.as_slice(), &quote[568..632]);
        assert_eq!(parsed.mrtd.as_slice(), &quote[184..232]);
    }

    #[test]
    fn signed_length_ignores_padding() {
        let quote = include_bytes!("../tests/fixtures/dcap-qvl_sample_tdx_quote");
        // The sample file itself is 5006 bytes: 4936 signed, then padding.
        let len = signed_len(quote).unwrap();
        assert_eq!((len, quote.len()), (4936, 5006));
        let mut padded = quote.to_vec();
        padded.extend_from_slice(&[0; 70]);
        assert_eq!(signed_len(&padded).unwrap(), len);
        assert!(signed_len(&quote[..len - 1]).is_err());
    }

    #[test]
    fn v5_body_types_are_checked() {
        let quote = include_bytes!("../tests/fixtures/dcap-qvl-0.7.1_sample_tdx_quote_td15ex");
        assert_eq!(TdQuote::parse(quote).unwrap().version, 5);
        assert_eq!(signed_len(quote).unwrap(), quote.len());
        let mut other = quote.to_vec();
        other[48] = 9;
        assert_eq!(TdQuote::parse(&other), Err(QuoteError::BodyType(9)));
        let mut short = quote.to_vec();
        short[48] = 3;
        assert_eq!(
            TdQuote::parse(&short),
            Err(QuoteError::BodySize {
                body_type: 3,
                size: 885
            })
        );
    }

    #[test]
    fn rejects_short_and_foreign_quotes() {
        let quote = include_bytes!("../tests/fixtures/dcap-qvl_sample_tdx_quote");
        for len in [0, 1, 7, 48, 631] {
            assert_eq!(
                TdQuote::parse(&quote[..len]),
                Err(QuoteError::Truncated { len }),
                "{len}"
            );
        }
        let mut sgx = quote.to_vec();
        sgx[4] = 0;
        assert_eq!(TdQuote::parse(&sgx), Err(QuoteError::TeeType(0)));
        let mut v3 = quote.to_vec();
        v3[0] = 3;
        assert_eq!(TdQuote::parse(&v3), Err(QuoteError::Version(3)));
    }
}
