//! Fetching DCAP collateral for one FMSPC and PCK CA from Intel's PCS (v4 API) or a PCCS.
//!
//! Nothing fetched is trusted: every item is signed by Intel and checked by DCAP against the
//! pinned Intel root (dcap-qvl). What this file guards against is the transport: https only,
//! no redirects, a deadline for the whole fetch, a cap on every body, and answers that do not
//! fit the question (TCB info for another FMSPC, a missing issuer chain) refused by name.
//!
//! Paths, query strings, headers and body shapes are those of dcap-qvl 0.7.1
//! (`src/collateral.rs`, `PcsEndpoints` and `fetch_for_fmspc_without_pck_chain`), which
//! follows Intel's PCS v4 API:
//! - `GET /sgx/certification/v4/pckcrl?ca=processor|platform&encoding=der`: the PCK CRL (DER),
//!   issuer chain in `SGX-PCK-CRL-Issuer-Chain`;
//! - `GET /tdx/certification/v4/tcb?fmspc=HEX&update=standard`: `{"tcbInfo":{..},"signature":HEX}`,
//!   issuer chain in `TCB-Info-Issuer-Chain` (v3 and some PCCSes: `SGX-TCB-Info-Issuer-Chain`);
//! - `GET /tdx/certification/v4/qe/identity?update=standard`: `{"enclaveIdentity":{..},"signature":HEX}`,
//!   issuer chain in `SGX-Enclave-Identity-Issuer-Chain`;
//! - the root CA CRL: a PCCS serves it (hex) at `/sgx/certification/v4/rootcacrl`; Intel's PCS
//!   does not, so it comes from the CRL distribution point of Intel's root certificate.
//!
//! Issuer chains travel URL-encoded (PEM with `%0A`, `%20`, ...; a `+` is base64, not a space).

use std::path::Path;
use std::time::{Duration, Instant};

use dcap_qvl::QuoteCollateralV3;

use super::pcs_reply::{Reply, crl_bytes, signed_json};
use crate::capped_read::{CappedReadError, read_to_cap};
use crate::registry::http;

/// Intel's Provisioning Certification Service, the default source.
pub const INTEL_PCS_URL: &str = "https://api.trustedservices.intel.com";
/// The CRL distribution point of Intel's SGX root CA (the one DCAP pins), where dcap-qvl
/// fetches the root CA CRL from Intel's PCS. A fixed URL, not the one a certificate in an
/// answer names: the answer is not trusted to send the verifier anywhere.
pub const INTEL_ROOT_CA_CRL_URL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
/// TCB info is tens of kilobytes and a CRL a few; nothing collateral-shaped comes near this.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The whole fetch (five requests at most) ends within this.
pub const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PcsError {
    #[error(
        "--pccs-url {url:?} must be an https:// URL with a host and no credentials, query or fragment"
    )]
    BadUrl { url: String },
    #[error("--pccs-ca-file: {detail}")]
    CaFile { detail: String },
    #[error("{url} answered HTTP {status}{body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} answered HTTP {status} (a redirect); collateral is fetched only from the URL asked"
    )]
    Redirect { url: String, status: u16 },
    #[error("{url}: the body is larger than {max} bytes; refusing it")]
    TooLarge { url: String, max: u64 },
    #[error("{url} timed out after {seconds}s")]
    TimedOut { url: String, seconds: u64 },
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url} answered without the {header} header (the issuer chain)")]
    MissingHeader { url: String, header: &'static str },
    #[error("{url}: {detail}")]
    Malformed { url: String, detail: String },
    #[error("{url} returned TCB info for FMSPC {actual}, not the quote's {expected}; refusing it")]
    WrongFmspc {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("fetching collateral took longer than {seconds}s; giving up")]
    Deadline { seconds: u64 },
}

/// A PCS or PCCS, by its base URL.
#[derive(Debug)]
pub struct Pcs {
    base: String,
    /// Intel's own PCS has no `rootcacrl` endpoint.
    intel: bool,
    agent: ureq::Agent,
    deadline: Instant,
}

impl Pcs {
    /// A client for `url` (default: Intel's PCS), trusting the web roots plus the
    /// certificates of `ca_file` when given.
    pub fn new(url: Option<&str>, ca_file: Option<&Path>) -> Result<Self, PcsError> {
        let given = url.unwrap_or(INTEL_PCS_URL);
        let base = base_url(given).ok_or_else(|| PcsError::BadUrl {
            url: given.to_owned(),
        })?;
        // No redirects (ureq's own following would go https -> http): see registry/http.rs.
        let agent = http::agent(ca_file, CONNECT_TIMEOUT, REQUEST_TIMEOUT).map_err(|e| {
            PcsError::CaFile {
                detail: e.to_string(),
            }
        })?;
        Ok(Self {
            intel: base.eq_ignore_ascii_case(INTEL_PCS_URL),
            base,
            agent,
            deadline: Instant::now() + DEADLINE,
        })
    }

    /// The base URL collateral comes from.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The collateral for a TDX quote whose PCK certificate has `fmspc` (upper-case hex) and
    /// was issued by the `ca` (`processor` or `platform`) CA, without a PCK chain (the
    /// quote carries its own).
    pub fn fetch(&self, fmspc: &str, ca: &str) -> Result<QuoteCollateralV3, PcsError> {
        let pck = self.get(&self.url("sgx", &format!("pckcrl?ca={ca}&encoding=der")))?;
        let pck_crl_issuer_chain = pck.header(&["SGX-PCK-CRL-Issuer-Chain"])?;
        let pck_crl = crl_bytes(&pck.body)
            .ok_or_else(|| pck.malformed("the PCK CRL is neither DER nor hex"))?;

        let tcb = self.get(&self.url("tdx", &format!("tcb?fmspc={fmspc}&update=standard")))?;
        let tcb_info_issuer_chain =
            tcb.header(&["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])?;
        let (tcb_info, tcb_info_signature) = signed_json(&tcb, "TDX")?;
        let actual = serde_json::from_str::<serde_json::Value>(&tcb_info)
            .ok()
            .and_then(|v| v.get("fmspc").and_then(|f| f.as_str().map(str::to_owned)))
            .unwrap_or_default();
        if !actual.eq_ignore_ascii_case(fmspc) {
            return Err(PcsError::WrongFmspc {
                url: tcb.url,
                expected: fmspc.to_owned(),
                actual,
            });
        }

        let qe = self.get(&self.url("tdx", "qe/identity?update=standard"))?;
        let qe_identity_issuer_chain = qe.header(&["SGX-Enclave-Identity-Issuer-Chain"])?;
        let (qe_identity, qe_identity_signature) = signed_json(&qe, "TD_QE")?;

        let root_ca_crl = self.root_ca_crl()?;
        Ok(QuoteCollateralV3 {
            pck_crl_issuer_chain,
            root_ca_crl,
            pck_crl,
            tcb_info_issuer_chain,
            tcb_info,
            tcb_info_signature,
            qe_identity_issuer_chain,
            qe_identity,
            qe_identity_signature,
            pck_certificate_chain: None,
        })
    }

    /// A PCCS's `rootcacrl` (hex); for Intel's PCS, or a PCCS without it (404), Intel's own
    /// CRL of its root CA.
    fn root_ca_crl(&self) -> Result<Vec<u8>, PcsError> {
        if !self.intel {
            match self.get(&self.url("sgx", "rootcacrl")) {
                Ok(reply) => {
                    return crl_bytes(&reply.body)
                        .ok_or_else(|| reply.malformed("the root CA CRL is neither DER nor hex"));
                }
                Err(PcsError::Status { status: 404, .. }) => {}
                Err(other) => return Err(other),
            }
        }
        let reply = self.get(INTEL_ROOT_CA_CRL_URL)?;
        crl_bytes(&reply.body)
            .ok_or_else(|| reply.malformed("the root CA CRL is neither DER nor hex"))
    }

    fn url(&self, tee: &str, path: &str) -> String {
        format!("{}/{tee}/certification/v4/{path}", self.base)
    }

    /// One GET within what is left of the deadline; 2xx only, body capped.
    fn get(&self, url: &str) -> Result<Reply, PcsError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PcsError::Deadline {
                seconds: DEADLINE.as_secs(),
            });
        }
        let timeout = left.min(REQUEST_TIMEOUT);
        let timed_out = || PcsError::TimedOut {
            url: url.to_owned(),
            seconds: timeout.as_secs(),
        };
        let response = match http::within(&self.agent, url, timeout).call() {
            Ok(response) => response,
            Err(error) if http::timed_out(&error) => return Err(timed_out()),
            Err(error) => {
                return Err(PcsError::Transport {
                    url: url.to_owned(),
                    detail: error.to_string(),
                });
            }
        };
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            return Err(PcsError::Redirect {
                url: url.to_owned(),
                status,
            });
        }
        if status >= 400 {
            let body =
                read_to_cap(response.into_body().into_reader(), 64 * 1024).unwrap_or_default();
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Err(PcsError::Status {
                url: url.to_owned(),
                status,
                body: if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", text.trim())
                },
            });
        }
        let headers = response
            .headers()
            .keys()
            .filter_map(|name| {
                let value = http::header(&response, name.as_str())?.to_owned();
                Some((name.as_str().to_owned(), value))
            })
            .collect();
        let body = read_to_cap(response.into_body().into_reader(), MAX_BODY_BYTES).map_err(
            |e| match e {
                CappedReadError::TooLarge => PcsError::TooLarge {
                    url: url.to_owned(),
                    max: MAX_BODY_BYTES,
                },
                CappedReadError::Io(io) if http::body_timed_out(&io) => timed_out(),
                other => PcsError::Transport {
                    url: url.to_owned(),
                    detail: other.to_string(),
                },
            },
        )?;
        Ok(Reply {
            url: url.to_owned(),
            headers,
            body,
        })
    }
}

/// Checks a `--pccs-url` value before anything runs.
pub fn check_url(url: &str) -> Result<(), PcsError> {
    base_url(url).map(|_| ()).ok_or_else(|| PcsError::BadUrl {
        url: url.to_owned(),
    })
}

/// `https://host[:port][/path]` without a trailing slash or a `/{sgx,tdx}/certification/v4`
/// suffix (dcap-qvl accepts both forms).
fn base_url(url: &str) -> Option<String> {
    let rest = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .and_then(|_| url.get(8..))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty()
        || authority.contains('@')
        || rest.contains(['?', '#'])
        || rest
            .chars()
            .any(|c| c.is_ascii_control() || c.is_whitespace())
    {
        return None;
    }
    let trimmed = url
        .trim_end_matches('/')
        .trim_end_matches("/sgx/certification/v4")
        .trim_end_matches("/tdx/certification/v4")
        .trim_end_matches('/');
    Some(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for (given, expected) in [
            ("https://api.trustedservices.intel.com", Some(INTEL_PCS_URL)),
            (
                "https://pccs.phala.network/",
                Some("https://pccs.phala.network"),
            ),
            (
                "https://pccs.example/sgx/certification/v4/",
                Some("https://pccs.example"),
            ),
            (
                "https://pccs.example/tdx/certification/v4",
                Some("https://pccs.example"),
            ),
            ("HTTPS://127.0.0.1:8081", Some("HTTPS://127.0.0.1:8081")),
            ("http://pccs.example", None),
            ("https://", None),
            ("https://user:pw@pccs.example", None),
            ("https://pccs.example/?x=1", None),
            ("https://pccs.example/a b", None),
            ("pccs.example", None),
        ] {
            assert_eq!(base_url(given).as_deref(), expected, "{given}");
        }
    }
}
