//! The real bundles of tests/fixtures/sigstore/ (sigstore-conformance, sigstore-rs, cosign):
//! each accepted with the identity its upstream test states, and refused after a mutation.

use super::*;
use crate::sigstore::Identity;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");
const GHA: &str = "https://token.actions.githubusercontent.com";
/// sigstore-conformance's README default identity.
const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const KUBEWARDEN: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn policy(issuer: &str, identity: &str) -> SignaturePolicy {
    SignaturePolicy {
        signer: SignerPolicy::Keyless {
            issuer: issuer.into(),
            identity: Identity::Exact(identity.into()),
        },
        trusted_root: None,
        transparency_log: true,
    }
}

fn digest(text: &str) -> [u8; 32] {
    hex::decode_exact(text).unwrap()
}

fn a_txt() -> Vec<u8> {
    read("conformance.a.txt")
}

fn check(
    bundle: &[u8],
    artifact: &Artifact<'_>,
    policy: &SignaturePolicy,
) -> Result<Signer, String> {
    verify(
        bundle,
        artifact,
        policy,
        &TrustedRoot::public_good().unwrap(),
    )
}

fn file_artifact(bytes: &[u8]) -> Artifact<'_> {
    Artifact {
        sha256: Sha256::digest(bytes).into(),
        bytes: Some(bytes),
    }
}

#[test]
fn conformance_message_signatures_v01_and_v03_pass_with_the_beacon_identity() {
    let bytes = a_txt();
    for name in [
        "conformance.happy-path-v0.1.sigstore.json",
        "conformance.happy-path-v0.3.sigstore.json",
    ] {
        let signer = check(&read(name), &file_artifact(&bytes), &policy(GHA, BEACON)).unwrap();
        assert_eq!(signer.identity, BEACON, "{name}");
        assert_eq!(signer.issuer.as_deref(), Some(GHA));
        assert_eq!(
            signer.source_repository.as_deref(),
            Some("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon"),
            "{name}"
        );
        assert_eq!(
            signer.source_commit.as_ref().map(String::len),
            Some(40),
            "{name}"
        );
        // A wrong SAN fails (the fixtures README's check).
        let wrong = check(
            &read(name),
            &file_artifact(&bytes),
            &policy(GHA, KUBEWARDEN),
        );
        assert!(
            wrong.unwrap_err().starts_with("certificate identity"),
            "{name}"
        );
    }
}

/// sigstore-conformance's managed-key case: a key-based hashedrekord bundle (a `publicKey`
/// hint, no certificate), verified with `key.pub` as the conformance README prescribes.
#[test]
fn a_key_based_bundle_passes_with_its_key_only() {
    let bundle = read("conformance.managed-key-happy-path.sigstore.json");
    let bytes = a_txt();
    let key_policy = |file: &str| SignaturePolicy {
        signer: SignerPolicy::Key(
            super::super::key::PublicKey::from_pem(&String::from_utf8(read(file)).unwrap())
                .unwrap(),
        ),
        trusted_root: None,
        transparency_log: true,
    };
    let signer = check(
        &bundle,
        &file_artifact(&bytes),
        &key_policy("conformance.managed-key-happy-path.key.pub"),
    )
    .unwrap();
    assert!(signer.identity.starts_with("key:sha256:"));
    assert_eq!(
        check(&bundle, &file_artifact(&bytes), &key_policy("cosign.pub")).unwrap_err(),
        "Rekor: the entry records a different signer"
    );
    // A keyless policy needs a certificate, which a key-based bundle does not have.
    assert_eq!(
        check(&bundle, &file_artifact(&bytes), &policy(GHA, BEACON)).unwrap_err(),
        "the bundle has no certificate for a keyless policy"
    );
}

#[test]
fn a_message_signature_needs_the_artifacts_own_bytes() {
    let bundle = read("conformance.happy-path-v0.3.sigstore.json");
    let bytes = a_txt();
    let digest_only = Artifact {
        sha256: Sha256::digest(&bytes).into(),
        bytes: None,
    };
    assert!(
        check(&bundle, &digest_only, &policy(GHA, BEACON))
            .unwrap_err()
            .contains("which are not available")
    );
    let other = b"another artifact".to_vec();
    assert_eq!(
        check(&bundle, &file_artifact(&other), &policy(GHA, BEACON)).unwrap_err(),
        "the message digest is not the artifact's"
    );
}

#[test]
fn dsse_bundles_pass_for_their_subject_digest_only() {
    let a = digest("a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf");
    let kube = digest("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172");
    let empty = digest("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4");
    for (name, subject, policy) in [
        (
            "conformance.happy-path-intoto-in-dsse-v3.sigstore.json",
            a,
            policy(GHA, BEACON),
        ),
        (
            // cosign v3's image signature (predicate cosign/sign/v1) of kubewarden-controller v1.34.0.
            "sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json",
            kube,
            policy(GHA, KUBEWARDEN),
        ),
        (
            // in-toto Statement v0.1, GitHub OAuth identity.
            "cosign.oci-attestation.sigstore.json",
            empty,
            policy("https://github.com/login/oauth", "cody@soyland.com"),
        ),
    ] {
        let bundle = read(name);
        let image = Artifact {
            sha256: subject,
            bytes: None,
        };
        check(&bundle, &image, &policy).unwrap_or_else(|e| panic!("{name}: {e}"));
        // sigstore-rs' `from_sigstore_bundle` case: another digest is refused.
        let other = Artifact {
            sha256: [0; 32],
            bytes: None,
        };
        assert_eq!(
            check(&bundle, &other, &policy).unwrap_err(),
            format!("no statement subject has sha256 {}", "00".repeat(32)),
            "{name}"
        );
    }
}

#[test]
fn kubewarden_signer_carries_its_source_repository() {
    let bundle = read("sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json");
    let image = Artifact {
        sha256: digest("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"),
        bytes: None,
    };
    let signer = check(&bundle, &image, &policy(GHA, KUBEWARDEN)).unwrap();
    assert_eq!(
        signer.source_repository.as_deref(),
        Some("https://github.com/kubewarden/kubewarden-controller")
    );
}

/// A change to a bundle's JSON.
type Edit = fn(&mut serde_json::Value);

/// Edits the bundle's JSON and re-serializes it.
fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(&read(name)).unwrap();
    edit(&mut json);
    serde_json::to_vec(&json).unwrap()
}

fn flip_b64(value: &mut serde_json::Value, index: usize) {
    let mut bytes = base64_decode(value.as_str().unwrap()).unwrap();
    bytes[index] ^= 1;
    *value = crate::base64::encode(&bytes).into();
}

#[test]
fn every_mutated_part_of_a_bundle_is_refused() {
    const DSSE: &str = "sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json";
    let image = Artifact {
        sha256: digest("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"),
        bytes: None,
    };
    let policy = policy(GHA, KUBEWARDEN);
    let cases: [(&str, Edit); 4] = [
        (
            "Rekor: the entry records a different signature or signer",
            |j| {
                flip_b64(&mut j["dsseEnvelope"]["signatures"][0]["sig"], 12);
            },
        ),
        (
            "Rekor: the entry records a different signature or signer",
            |j| {
                flip_b64(
                    &mut j["verificationMaterial"]["certificate"]["rawBytes"],
                    300,
                );
            },
        ),
        (
            "Rekor: the signed entry timestamp does not verify with the log key",
            |j| {
                flip_b64(
                    &mut j["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]["signedEntryTimestamp"],
                    40,
                );
            },
        ),
        (
            "Rekor: the signed entry timestamp does not verify with the log key",
            |j| {
                j["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1775719500".into();
            },
        ),
    ];
    for (reason, edit) in cases {
        assert_eq!(
            check(&edited(DSSE, edit), &image, &policy).unwrap_err(),
            reason
        );
    }
    // The payload changed (a subject swapped in): its hash no longer matches the entry, and
    // the signature no longer covers it.
    let swapped = edited(DSSE, |j| {
        let payload = base64_decode(j["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let text = String::from_utf8(payload).unwrap().replace(
            "c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172",
            &"11".repeat(32),
        );
        j["dsseEnvelope"]["payload"] = crate::base64::encode(text.as_bytes()).into();
    });
    let swapped_image = Artifact {
        sha256: [0x11; 32],
        bytes: None,
    };
    assert_eq!(
        check(&swapped, &swapped_image, &policy).unwrap_err(),
        "Rekor: the entry records a different payload hash"
    );
    // GitHub's trusted root has no Rekor log: nothing proves when it was signed.
    let github = TrustedRoot::parse(&read("trusted_root.github.json")).unwrap();
    assert!(
        verify(&read(DSSE), &image, &policy, &github)
            .unwrap_err()
            .contains("is not a log of the trusted root")
    );
}

#[test]
fn pae_known_answer() {
    // secure-systems-lab/dsse protocol.md's example: PAE("http://example.com/HelloWorld", "hello world").
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    );
}

/// Found by the `sigstore_bundle` fuzz target (its reproducer is the seed
/// `crash-not-utf8`): raw 0xff bytes in an inclusion proof hash, a field the verifier does
/// not read, left the bundle accepted although it is not JSON (RFC 8259 §8.1: UTF-8), since
/// `serde_json` skips unread fields without checking their bytes.
#[test]
fn a_bundle_that_is_not_utf8_is_refused() {
    let name = "cosign.oci-attestation.sigstore.json";
    let good = read(name);
    let at = good
        .windows(23)
        .position(|w| w == b"315PrxqKtUW8bpqBdn6SMyj")
        .unwrap()
        + 23;
    let bad = [&good[..at], &[0xff; 8], &good[at..]].concat();
    // The old path, the typed parse alone, reads it (the fuzzer's reproducer passed whole).
    assert!(serde_json::from_slice::<Bundle>(&bad).is_ok());
    let image = Artifact {
        sha256: digest("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"),
        bytes: None,
    };
    let policy = policy("https://github.com/login/oauth", "cody@soyland.com");
    check(&good, &image, &policy).unwrap();
    assert!(
        check(&bad, &image, &policy)
            .unwrap_err()
            .starts_with("not a Sigstore bundle: not UTF-8")
    );
}
