//! TDX quotes (v4, v5) through `TdQuote::parse` and `signed_len`, as the agent measurer and
//! `verify` read them. Invariants: the signed length fits the bytes; the registers of the
//! signed part are the registers of the whole (padding, as in a certificate, changes
//! nothing); they are the bytes at the documented offsets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::tdx_quote::{TdQuote, signed_len};

fuzz_target!(|bytes: &[u8]| {
    let parsed = TdQuote::parse(bytes);
    if let Ok(len) = signed_len(bytes) {
        assert!(len <= bytes.len(), "signed length past the end");
        if let Ok(quote) = &parsed {
            let signed = TdQuote::parse(&bytes[..len]).expect("the signed part is refused");
            assert_eq!(&signed, quote, "padding changed the quote");
        }
    }
    if let Ok(quote) = parsed {
        // Intel TDX DCAP Quoting Library API, Appendix A: header 48 bytes; v5 adds a u16 type
        // and u32 size before the body; RTMR3 at body offset 472, REPORTDATA at 520.
        let body = if quote.version == 4 { 48 } else { 54 };
        assert_eq!(&quote.rtmr[3][..], &bytes[body + 472..body + 520]);
        assert_eq!(&quote.report_data[..], &bytes[body + 520..body + 584]);
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&[0u8; 64]);
        assert_eq!(
            TdQuote::parse(&padded).as_ref(),
            Ok(&quote),
            "trailing bytes changed it"
        );
    }
});
