//! The Sigstore targets' checks on their committed seeds (fuzz/seeds/, made from the real
//! fixtures by `fuzz/make_seeds.py`): every real signature is accepted, so the invariants on
//! what is accepted run and hold; and each invariant catches what it is there to catch.

use super::*;
use crate::fuzzing::sigstore_parsers::{certificate, encodings, walkers};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/fuzz/seeds/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("crash-")
        })
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{dir}");
    out
}

#[test]
fn every_real_bundle_and_rekor_body_is_accepted_once() {
    for (name, bytes) in seeds("sigstore_bundle") {
        if name.contains(".body") {
            let managed_or_dsse = name.contains("managed-key") || name.contains("kubewarden");
            assert_eq!(
                rekor_body(&bytes),
                Ok(usize::from(managed_or_dsse)),
                "{name}"
            );
        } else {
            // The in-toto bundle over a.txt passes both as a file and as its digest.
            let subjects = if name.contains("intoto") { 2 } else { 1 };
            assert_eq!(bundle(&bytes), Ok(subjects), "{name}");
        }
    }
}

#[test]
fn every_real_cosign_layer_and_gitsign_commit_is_accepted() {
    for (name, bytes) in seeds("cosign_signature") {
        assert_eq!(cosign_layer(&bytes), Ok(1), "{name}");
    }
    for (name, bytes) in seeds("gitsign_commit") {
        walkers(&bytes).unwrap();
        let commit = !name.contains(".cms") && !name.contains(".rekor-entry");
        assert_eq!(gitsign_commit(&bytes), Ok(commit), "{name}");
        // The CMS is checked over the offline commit's bytes.
        assert_eq!(
            gitsign_cms(&bytes),
            Ok(name.ends_with("offline.commit.cms")),
            "{name}"
        );
    }
}

#[test]
fn certificates_keys_and_encodings_hold_their_invariants() {
    for (name, bytes) in seeds("sigstore_certificate") {
        certificate(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, bytes) in seeds("sigstore_encoding") {
        encodings(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn a_split_that_loses_or_keeps_a_signature_line_does_not_rejoin() {
    let commit = fixture!("gitsign/offline.commit");
    let (signed, signature) = gitsign::split_signature(commit).unwrap();
    rejoins(commit, &signed, &signature).unwrap();
    // A naive split taking only the first gpgsig line as the signature, the continuation
    // lines left in the signed bytes (the signature would then not cover what git hashes).
    let text = String::from_utf8(commit.to_vec()).unwrap();
    let first = text.lines().find(|l| l.starts_with("gpgsig ")).unwrap();
    let naive_signed = text.replacen(&format!("{first}\n"), "", 1);
    let naive_signature = first.trim_start_matches("gpgsig ");
    assert!(rejoins(commit, naive_signed.as_bytes(), naive_signature).is_ok());
    assert!(rejoins(commit, &signed, naive_signature).is_err());
    assert!(rejoins(commit, naive_signed.as_bytes(), &signature).is_err());
}

#[test]
fn the_spec_pae_is_the_dsse_example() {
    // secure-systems-lab/dsse protocol.md's test vector.
    assert_eq!(
        spec_pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}
