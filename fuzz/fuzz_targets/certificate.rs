//! The dstack app certificate (PEM chain) of an `Info` reply: `quote_from_certificate` finds
//! the leaf, decodes its DER and takes the quote extension, as `verify` does. Invariant: a
//! quote it returns is bytes of the certificate's DER (an OCTET STRING's content).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::certificate_quote;

fuzz_target!(|bytes: &[u8]| {
    let Ok(pem) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(quote) = certificate_quote(pem) {
        assert!(pem.contains("-----END CERTIFICATE-----"));
        assert!(
            quote.len() < pem.len(),
            "a quote longer than its certificate"
        );
    }
});
