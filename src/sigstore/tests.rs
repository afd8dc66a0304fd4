//! The real cosign signatures of containers/image's fixtures (tests/fixtures/sigstore/README.md),
//! each accepted with its stated signer and refused after a mutation of each part.

use std::collections::BTreeMap;

use super::cosign::{BUNDLE, CERTIFICATE, Layer, SIGNATURE};
use super::key::PublicKey;
use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");
const MITR: &str = "mitr@redhat.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// The `.sig` layer a registry serves for a containers/image `signature-1.json`: the decoded
/// payload blob and the annotations.
pub(crate) fn layer(dir: &str) -> Layer {
    let json: serde_json::Value =
        serde_json::from_str(&read(&format!("{dir}/signature-1.json"))).unwrap();
    let payload = encoding::base64_decode(json["payload"].as_str().unwrap()).unwrap();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(json["annotations"].clone()).unwrap();
    Layer {
        payload,
        annotations,
    }
}

fn manifest_digest(dir: &str) -> ImageDigest {
    ImageDigest::of(read(&format!("{dir}/manifest.json")).as_bytes())
}

fn key_policy(key: &str, transparency_log: bool) -> SignaturePolicy {
    SignaturePolicy {
        signer: SignerPolicy::Key(PublicKey::from_pem(&read(key)).unwrap()),
        trusted_root: None,
        transparency_log,
    }
}

fn keyless(issuer: &str, identity: Identity) -> SignaturePolicy {
    SignaturePolicy {
        signer: SignerPolicy::Keyless {
            issuer: issuer.into(),
            identity,
        },
        trusted_root: None,
        transparency_log: true,
    }
}

fn check(dir: &str, layer: &Layer, policy: &SignaturePolicy) -> Result<Signer, String> {
    let root = TrustedRoot::public_good().unwrap();
    cosign::verify(layer, &manifest_digest(dir), policy, &root)
}

const KEY_ONLY: &str = "dir-img-cosign-valid";
const KEY_REKOR: &str = "dir-img-cosign-key-rekor-valid";
const FULCIO: &str = "dir-img-cosign-fulcio-rekor-valid";

#[test]
fn the_manifests_hash_to_the_signed_digests() {
    assert_eq!(
        manifest_digest(KEY_ONLY).to_string(),
        "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    );
    assert_eq!(
        manifest_digest(FULCIO).to_string(),
        "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
    );
}

#[test]
fn key_only_signature_is_accepted_with_its_key_and_refused_with_another() {
    let signer = check(KEY_ONLY, &layer(KEY_ONLY), &key_policy("cosign.pub", false)).unwrap();
    assert!(
        signer.identity.starts_with("key:sha256:"),
        "{}",
        signer.identity
    );
    assert_eq!(signer.issuer, None);
    assert_eq!(signer.trusted_root, None, "no log was consulted");
    let wrong = check(
        KEY_ONLY,
        &layer(KEY_ONLY),
        &key_policy("cosign2.pub", false),
    );
    assert_eq!(
        wrong.unwrap_err(),
        "the signature does not verify over the payload"
    );
    // Without a Rekor entry, the default policy (transparency_log = true) refuses it.
    let wrong = check(KEY_ONLY, &layer(KEY_ONLY), &key_policy("cosign.pub", true));
    assert_eq!(wrong.unwrap_err(), format!("no {BUNDLE} annotation"));
}

#[test]
fn key_signature_with_rekor_set_is_accepted() {
    let signer = check(
        KEY_REKOR,
        &layer(KEY_REKOR),
        &key_policy("cosign2.pub", true),
    )
    .unwrap();
    let root = TrustedRoot::public_good().unwrap();
    assert_eq!(signer.trusted_root, Some(format!("sha256:{}", root.sha256)));
    // The SET is over cosign2's entry: grafted onto a policy with cosign.pub, the body names
    // another key.
    let wrong = check(
        KEY_REKOR,
        &layer(KEY_REKOR),
        &key_policy("cosign.pub", true),
    );
    assert_eq!(
        wrong.unwrap_err(),
        "Rekor: the entry records a different signer"
    );
}

#[test]
fn keyless_signature_is_accepted_with_its_identity() {
    let policy = keyless(GITHUB_OAUTH, Identity::Exact(MITR.into()));
    let signer = check(FULCIO, &layer(FULCIO), &policy).unwrap();
    assert_eq!(signer.identity, MITR);
    assert_eq!(signer.issuer.as_deref(), Some(GITHUB_OAUTH));
    assert_eq!(signer.source_repository, None);
    let regex = keyless(GITHUB_OAUTH, Identity::Regex(r"[a-z]+@redhat\.com".into()));
    assert_eq!(check(FULCIO, &layer(FULCIO), &regex).unwrap(), signer);
}

#[test]
fn keyless_identity_or_issuer_mismatch_is_refused() {
    for (policy, reason) in [
        (
            keyless(
                GITHUB_OAUTH,
                Identity::Exact("this-does-not-match@example.com".into()),
            ),
            "certificate identity \"mitr@redhat.com\" does not match the policy's \"this-does-not-match@example.com\"",
        ),
        (
            keyless(GITHUB_OAUTH, Identity::Regex("mitr@redhat".into())),
            "certificate identity \"mitr@redhat.com\" does not match the policy's /^(?:mitr@redhat)$/",
        ),
        (
            keyless("https://accounts.google.com", Identity::Exact(MITR.into())),
            "certificate issuer \"https://github.com/login/oauth\" is not the policy's \"https://accounts.google.com\"",
        ),
    ] {
        assert_eq!(check(FULCIO, &layer(FULCIO), &policy).unwrap_err(), reason);
    }
}

/// Flips one bit of the base64-decoded annotation `name` (or of the payload) in place.
fn flip(layer: &mut Layer, name: &str, index: usize) {
    let value = layer.annotations.get_mut(name).unwrap();
    let mut bytes = encoding::base64_decode(value).unwrap();
    bytes[index] ^= 1;
    *value = crate::base64::encode(&bytes);
}

#[test]
fn every_mutated_part_is_refused() {
    let policy = keyless(GITHUB_OAUTH, Identity::Exact(MITR.into()));
    let mut signature = layer(FULCIO);
    flip(&mut signature, SIGNATURE, 20);
    // The entry records the original signature, so the SET check catches it first.
    assert_eq!(
        check(FULCIO, &signature, &policy).unwrap_err(),
        "Rekor: the entry records a different signature"
    );

    let mut certificate = layer(FULCIO);
    let pem = certificate.annotations[CERTIFICATE].clone();
    // One base64 character of the certificate's body changed (inside the SAN extension's
    // neighbourhood, past the header): the chain signature no longer verifies, and the
    // Rekor body records the original certificate.
    let mutated = pem.replacen(
        "YzeG1TB0CKogFvhlIlOq2pqC3Dww",
        "YzeG1TB0CKogFvhlIlOq2pqC3Dwx",
        1,
    );
    assert_ne!(mutated, pem);
    certificate.annotations.insert(CERTIFICATE.into(), mutated);
    assert!(check(FULCIO, &certificate, &policy).is_err());

    let mut set = layer(FULCIO);
    let mut bundle: serde_json::Value = serde_json::from_str(&set.annotations[BUNDLE]).unwrap();
    let mut sig =
        encoding::base64_decode(bundle["SignedEntryTimestamp"].as_str().unwrap()).unwrap();
    sig[30] ^= 1;
    bundle["SignedEntryTimestamp"] = crate::base64::encode(&sig).into();
    set.annotations.insert(BUNDLE.into(), bundle.to_string());
    assert_eq!(
        check(FULCIO, &set, &policy).unwrap_err(),
        "Rekor: the signed entry timestamp does not verify with the log key"
    );

    // The integrated time moved (to make an expired leaf look current): the SET covers it.
    let mut time = layer(FULCIO);
    let mut bundle: serde_json::Value = serde_json::from_str(&time.annotations[BUNDLE]).unwrap();
    bundle["Payload"]["integratedTime"] = 1_674_248_000.into();
    time.annotations.insert(BUNDLE.into(), bundle.to_string());
    assert_eq!(
        check(FULCIO, &time, &policy).unwrap_err(),
        "Rekor: the signed entry timestamp does not verify with the log key"
    );

    for missing in [SIGNATURE, CERTIFICATE, BUNDLE] {
        let mut without = layer(FULCIO);
        without.annotations.remove(missing);
        assert_eq!(
            check(FULCIO, &without, &policy).unwrap_err(),
            format!("no {missing} annotation")
        );
    }

    let mut payload = layer(FULCIO);
    payload.payload[10] ^= 1;
    assert_eq!(
        check(FULCIO, &payload, &policy).unwrap_err(),
        "Rekor: the entry records a different payload hash"
    );
}

#[test]
fn a_signature_of_another_digest_is_refused() {
    // The same real signature presented for the key-only image's digest.
    let root = TrustedRoot::public_good().unwrap();
    let policy = keyless(GITHUB_OAUTH, Identity::Exact(MITR.into()));
    let other = manifest_digest(KEY_ONLY);
    assert_eq!(
        cosign::verify(&layer(FULCIO), &other, &policy, &root).unwrap_err(),
        format!(
            "the payload signs sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a, not {other}"
        )
    );
}

#[test]
fn a_root_without_the_log_or_the_ca_is_refused() {
    let policy = keyless(GITHUB_OAUTH, Identity::Exact(MITR.into()));
    // GitHub's real trusted root: its own Fulcio, no Rekor.
    let github = TrustedRoot::parse(read("trusted_root.github.json").as_bytes()).unwrap();
    assert_eq!(
        cosign::verify(&layer(FULCIO), &manifest_digest(FULCIO), &policy, &github).unwrap_err(),
        "Rekor: the entry's log c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d is not a log of the trusted root"
    );
    // The public-good root with its Rekor but without its CAs.
    let mut no_ca = TrustedRoot::public_good().unwrap();
    no_ca.authorities.clear();
    let refused = cosign::verify(&layer(FULCIO), &manifest_digest(FULCIO), &policy, &no_ca);
    assert!(
        refused
            .unwrap_err()
            .starts_with("the certificate does not chain to a Fulcio CA"),
    );
}

#[test]
fn the_leaf_is_checked_at_the_integrated_time_not_the_wall_clock() {
    // The leaf was valid for ten minutes in January 2023: checked against today it is
    // expired (what a naive chain check at "now" would do), at the SET's time it verifies.
    let root = TrustedRoot::public_good().unwrap();
    let layer = layer(FULCIO);
    let (_, der) = der::pem::decode_vec(layer.annotations[CERTIFICATE].trim().as_bytes()).unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert!(certificate::verify(&der, &root, now).is_err());
    let (_, identity) = certificate::verify(&der, &root, 1_674_247_893).unwrap();
    assert_eq!(identity.identity, MITR);
}

#[test]
fn verify_layers_takes_any_verifying_layer_and_reports_each_failure() {
    let root = TrustedRoot::public_good().unwrap();
    let policy = key_policy("cosign2.pub", true);
    let digest = manifest_digest(KEY_REKOR);
    let layers = [layer(FULCIO), layer(KEY_REKOR)];
    assert!(verify_layers(&layers, &digest, &policy, &root).is_ok());
    let reasons = verify_layers(&layers[..1], &digest, &policy, &root).unwrap_err();
    assert_eq!(
        reasons,
        ["layer 1: Rekor: the entry records a different signer"]
    );
    assert_eq!(
        verify_layers(&[], &digest, &policy, &root).unwrap_err(),
        ["it has no signature layers"]
    );
}
