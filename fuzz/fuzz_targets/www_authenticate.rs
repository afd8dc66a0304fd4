//! `WWW-Authenticate` values from a registry's 401 through `parse_challenges`, as the
//! registry client reads them. Invariant: the challenges written back (schemes, token68s,
//! parameters as quoted strings) parse to the same challenges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trusted_launcher::fuzzing::www_authenticate;

fuzz_target!(|bytes: &[u8]| {
    let Ok(header) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(challenges) = www_authenticate(header) else {
        return;
    };
    let mut written = Vec::new();
    for challenge in &challenges {
        assert!(!challenge.scheme.is_empty());
        let mut text = challenge.scheme.clone();
        if let Some(token) = &challenge.token68 {
            assert!(challenge.params.is_empty(), "a token68 with parameters");
            text.push(' ');
            text.push_str(token);
        }
        let params: Vec<String> = challenge
            .params
            .iter()
            .map(|(name, value)| {
                // RFC 9110 §5.6.4: quoted-pair escapes `"` and `\`.
                let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                format!("{name}=\"{escaped}\"")
            })
            .collect();
        if !params.is_empty() {
            text.push(' ');
            text.push_str(&params.join(", "));
        }
        written.push(text);
    }
    let written = written.join(", ");
    let again = www_authenticate(&written)
        .unwrap_or_else(|e| panic!("written challenges {written:?} refused: {e}"));
    assert_eq!(again, challenges, "round trip through {written:?}");
});
