//! The HTTP agent of the registry client and of `verify`'s collateral fetch (verify/pcs.rs):
//! ureq 3 on rustls with ring and Mozilla's root certificates, configured so that only the
//! caller decides where a request goes, what it carries and how long it may take.
//!
//! - No redirect is followed (`max_redirects(0)`: the 3xx comes back as the response). The
//!   registry client follows redirects by its own rules (`redirect.rs`); the collateral fetch
//!   refuses them.
//! - No proxy. ureq 3's `Config::default()`, the base of every `Agent::config_builder()`,
//!   takes one from `ALL_PROXY`/`HTTPS_PROXY`/`HTTP_PROXY` (ureq 3.5.2 `src/config.rs`,
//!   `impl Default for Config`: `proxy: Proxy::try_from_env()`); an operator's environment is
//!   not trusted, and ureq 2, used before, read none unless asked (`try_proxy_from_env`).
//! - A 4xx or 5xx is a response whose status the caller reads (`http_status_as_error(false)`).
//! - Deadlines: `connect` bounds the connection (every address tried and the TLS handshake);
//!   `request` bounds one exchange end to end (DNS, connect, headers and body: ureq's
//!   `timeout_global`, which keeps running while the body is read); callers lower it per
//!   request to what is left of their own deadline ([`within`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use super::RegistryError;
use crate::capped_read::{CappedReadError, is_timeout};

/// A CA bundle is a few certificates; the web's whole root set is ~200 KiB of PEM.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// An agent with the rules above: TLS trusts Mozilla's roots plus the certificates of
/// `ca_file` when given.
pub(crate) fn agent(
    ca_file: Option<&Path>,
    connect: Duration,
    request: Duration,
) -> Result<ureq::Agent, RegistryError> {
    Ok(ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .timeout_global(Some(request))
        .user_agent(concat!("trusted-launcher/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls(ca_file)?)
        .build()
        .into())
}

/// A GET of `url` that ends within `timeout` (DNS to the last byte of the body).
pub(crate) fn within(
    agent: &ureq::Agent,
    url: &str,
    timeout: Duration,
) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
    agent
        .get(url)
        .config()
        .timeout_global(Some(timeout))
        .build()
}

/// rustls with ring (set here, so no other provider is ever looked up) and Mozilla's roots
/// (webpki-root-certs: the list webpki-roots carries, as certificates, which is the form
/// ureq 3 takes alongside a private CA's) plus those of `ca_file`.
fn tls(ca_file: Option<&Path>) -> Result<TlsConfig, RegistryError> {
    let mut roots: Vec<Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|certificate| Certificate::from_der(certificate.as_ref()))
        .collect();
    if let Some(path) = ca_file {
        roots.extend(ca_certificates(path)?);
    }
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::Specific(Arc::new(roots)))
        .build())
}

/// Every certificate in the PEM file `path`, each one a valid trust anchor: ureq skips a
/// root it cannot parse, so a bad one is refused here, by name, instead.
fn ca_certificates(path: &Path) -> Result<Vec<Certificate<'static>>, RegistryError> {
    let bad = |detail: String| RegistryError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let pem = crate::capped_read::read_capped(path, MAX_CA_FILE_BYTES).map_err(|e| match e {
        CappedReadError::TooLarge => bad(format!("is larger than {MAX_CA_FILE_BYTES} bytes")),
        other => bad(other.to_string()),
    })?;
    let mut anchors = rustls::RootCertStore::empty();
    let mut certificates = Vec::new();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|e| bad(e.to_string()))?;
        certificates.push(Certificate::from_der(certificate.as_ref()).to_owned());
        anchors.add(certificate).map_err(|e| bad(e.to_string()))?;
    }
    if certificates.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    Ok(certificates)
}

/// Whether a request failed by running out of time: ureq's own deadlines, or a socket's.
pub(crate) fn timed_out(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(error) => is_timeout(error),
        _ => false,
    }
}

/// Whether reading a body failed by running out of time: the reader gives ureq's error
/// inside an I/O error (ureq 3.5.2 `Error::into_io`).
pub(crate) fn body_timed_out(error: &std::io::Error) -> bool {
    is_timeout(error)
        || error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(timed_out)
}

/// The first value of header `name` as text (surrounding whitespace trimmed), if it is
/// UTF-8.
pub(crate) fn header<'a>(
    response: &'a ureq::http::Response<ureq::Body>,
    name: &str,
) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn call(url: &str) -> ureq::Error {
        let agent = agent(None, Duration::from_secs(5), Duration::from_millis(300)).unwrap();
        match agent.get(url).call() {
            Err(error) => error,
            Ok(response) => panic!("expected an error, got {response:?}"),
        }
    }

    /// A server that accepts and never answers: ureq's timeout is told by type, not by its
    /// text; a refused connection is not a timeout.
    #[test]
    fn silent_server_is_a_timeout_and_refused_connection_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = format!("http://{}/v2/", listener.local_addr().unwrap());
        assert!(timed_out(&call(&silent)));

        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}/v2/", closed.local_addr().unwrap());
        drop(closed);
        assert!(!timed_out(&call(&refused)));
        drop(listener);
    }

    /// The roots are Mozilla's list, the same one webpki-roots holds as trust anchors.
    #[test]
    fn roots_are_the_web_roots_plus_the_ca_file() {
        let Ok(tls) = tls(None) else {
            panic!("the built-in roots load");
        };
        let RootCerts::Specific(roots) = tls.root_certs() else {
            panic!("specific roots");
        };
        assert_eq!(roots.len(), webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        assert!(roots.len() > 100);
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) =
            store.add_parsable_certificates(roots.iter().map(|c| CertificateDer::from(c.der())));
        assert_eq!((added, ignored), (roots.len(), 0));
    }
}
