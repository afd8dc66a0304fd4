//! The quote's platform as its PCK certificate names it (FMSPC, issuing CA, the leaf itself),
//! and whether a collateral's own `pck_certificate_chain` is that platform's.
//!
//! dcap-qvl verifies with the collateral's PCK chain when it has one, in place of the quote's
//! (0.7.1 `verify.rs`, `verify_pck_cert_chain`). Another machine's chain (NEAR's collateral
//! carries its own machine's, and is reusable for the same FMSPC without it) then fails as
//! `Signature is invalid for qe_report`, which points the wrong way; it is named here instead.

use der::Decode as _;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use x509_cert::Certificate;

use crate::hex;

/// What the quote's PCK certificate says about its platform.
#[derive(Clone, Debug)]
pub struct Platform {
    /// Upper-case hex, as Intel writes it in TCB info.
    pub fmspc: String,
    /// `processor` or `platform`.
    pub ca: &'static str,
    /// The PCK leaf certificate (DER) from the quote's certification data.
    pub leaf: Vec<u8>,
}

impl Platform {
    /// Reads the PCK leaf in the quote's certification data (type 5, a PEM chain: what every
    /// TDX quote carries).
    pub fn of_quote(signed: &[u8]) -> Result<Self, String> {
        let quote = dcap_qvl::quote::Quote::parse(signed)
            .map_err(|e| format!("cannot read the quote's certification data: {e:#}"))?;
        let chain = dcap_qvl::intel::extract_cert_chain(&quote)
            .map_err(|e| format!("the quote carries no PCK certificate chain: {e:#}"))?;
        let leaf = chain
            .into_iter()
            .next()
            .ok_or("the quote's PCK certificate chain is empty")?;
        let extension = dcap_qvl::intel::parse_pck_extension(&leaf).map_err(|e| {
            format!("the quote's PCK certificate has no Intel SGX extension: {e:#}")
        })?;
        let ca = dcap_qvl::intel::pck_ca(&leaf)
            .map_err(|e| format!("the quote's PCK certificate is unreadable: {e:#}"))?;
        Ok(Self {
            fmspc: hex::encode(&extension.fmspc).to_ascii_uppercase(),
            ca: ca.as_id_str(),
            leaf,
        })
    }
}

/// Why `chain` (a collateral's `pck_certificate_chain`, PEM) cannot verify a quote of
/// `platform`: its leaf is another certificate. `None` when it is the quote's own leaf.
#[must_use]
pub fn foreign_leaf(platform: &Platform, chain: &str) -> Option<String> {
    let leaf = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .and_then(Result::ok);
    match leaf {
        Some(leaf) if leaf.as_ref() == platform.leaf.as_slice() => None,
        Some(leaf) => Some(match dcap_qvl::intel::parse_pck_extension(leaf.as_ref()) {
            Ok(extension) => format!(
                "its PCK certificate (FMSPC {}, serial {}) is not the one in the quote (FMSPC {}, serial {})",
                hex::encode(&extension.fmspc).to_ascii_uppercase(),
                serial(leaf.as_ref()),
                platform.fmspc,
                serial(&platform.leaf),
            ),
            Err(_) => format!(
                "its first certificate is not the quote's PCK certificate (FMSPC {}, serial {})",
                platform.fmspc,
                serial(&platform.leaf)
            ),
        }),
        None => Some("it holds no readable PEM certificate".into()),
    }
}

fn serial(der: &[u8]) -> String {
    Certificate::from_der(der).map_or_else(
        |_| "unreadable".into(),
        |c| hex::encode(c.tbs_certificate().serial_number().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::ext::pkix::CrlDistributionPoints;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};

    /// CRL distribution points (RFC 5280 §4.2.1.13).
    const CRL_DISTRIBUTION_POINTS: der::asn1::ObjectIdentifier =
        der::asn1::ObjectIdentifier::new_unwrap("2.5.29.31");

    /// The https CRL distribution point of the last (root) certificate of a PEM chain.
    fn root_crl_url(chain: &str) -> Option<String> {
        let root = CertificateDer::pem_slice_iter(chain.as_bytes())
            .filter_map(Result::ok)
            .last()?;
        let certificate = Certificate::from_der(root.as_ref()).ok()?;
        let extensions = certificate.tbs_certificate().extensions()?;
        let extension = extensions
            .iter()
            .find(|e| e.extn_id == CRL_DISTRIBUTION_POINTS)?;
        let points = CrlDistributionPoints::from_der(extension.extn_value.as_bytes()).ok()?;
        points
            .0
            .iter()
            .filter_map(|point| match &point.distribution_point {
                Some(DistributionPointName::FullName(names)) => Some(names),
                _ => None,
            })
            .flatten()
            .find_map(|name| match name {
                GeneralName::UniformResourceIdentifier(uri) => Some(uri.to_string()),
                _ => None,
            })
            .filter(|uri| uri.starts_with("https://"))
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn collateral(name: &str) -> serde_json::Value {
        serde_json::from_slice(&fixture(name)).unwrap()
    }

    /// Known answer: dcap-qvl's sample quote is a platform-CA PCK of FMSPC B0C06F000000
    /// (the FMSPC of its collateral's TCB info).
    #[test]
    fn reads_the_quote_platform() {
        let platform = Platform::of_quote(&fixture("dcap-qvl_sample_tdx_quote")).unwrap();
        assert_eq!(platform.fmspc, "B0C06F000000");
        assert_eq!(platform.ca, "platform");
        assert!(Platform::of_quote(b"not a quote").is_err());
    }

    /// The td15ex collateral carries its own quote's chain: it matches that quote, and is
    /// another machine's for the sample quote of the same FMSPC.
    #[test]
    fn tells_a_foreign_chain() {
        let own = Platform::of_quote(&fixture("dcap-qvl-0.7.1_sample_tdx_quote_td15ex")).unwrap();
        let other = Platform::of_quote(&fixture("dcap-qvl_sample_tdx_quote")).unwrap();
        let value = collateral("dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json");
        let chain = value["pck_certificate_chain"].as_str().unwrap();
        assert_eq!(foreign_leaf(&own, chain), None);
        let why = foreign_leaf(&other, chain).unwrap();
        assert!(
            why.starts_with("its PCK certificate (FMSPC B0C06F000000, serial "),
            "{why}"
        );
        assert_eq!(
            foreign_leaf(&own, "garbage").as_deref(),
            Some("it holds no readable PEM certificate")
        );
    }

    /// Intel's root CA names its CRL where `pcs.rs` fetches it from Intel's PCS.
    #[test]
    fn root_crl_from_the_issuer_chain() {
        let value = collateral("dcap-qvl_sample_tdx_quote_collateral.json");
        let chain = value["qe_identity_issuer_chain"].as_str().unwrap();
        assert_eq!(
            root_crl_url(chain).as_deref(),
            Some(crate::verify::pcs::INTEL_ROOT_CA_CRL_URL)
        );
        assert_eq!(root_crl_url("nothing"), None);
    }
}
