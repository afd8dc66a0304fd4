//! Strict JSON (`strict_json::from_slice`: no repeated key at any depth), the reader of
//! approved lists and other untrusted JSON. Invariants: what it accepts, serde_json reads
//! to the same value; written back, it reads again to the same value; a document serde_json
//! reads and it refuses is refused for a repeated key, and serde_json's value of it (the
//! last of each repeat) has none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trusted_launcher::strict_json::from_slice;

fuzz_target!(|bytes: &[u8]| {
    let strict = from_slice(bytes);
    let loose = serde_json::from_slice::<Value>(bytes);
    match (&strict, &loose) {
        (Ok(strict), Ok(loose)) => assert_eq!(strict, loose, "strict and serde_json differ"),
        (Ok(strict), Err(e)) => panic!("strict accepted what serde_json refuses ({e}): {strict}"),
        (Err(error), Ok(loose)) => {
            // Refused only for a repeated key: the loose value, written out, has none, and
            // strict accepts that.
            assert!(error.to_string().starts_with("duplicate key"), "{error}");
            let written = serde_json::to_vec(loose).expect("serialise");
            let again = from_slice(&written).expect("a value without repeats is refused");
            assert_eq!(&again, loose);
        }
        (Err(_), Err(_)) => {}
    }
    if let Ok(value) = strict {
        let written = serde_json::to_vec(&value).expect("serialise");
        assert_eq!(from_slice(&written).expect("round trip refused"), value);
    }
});
