//! The Sigstore parsers' way in for the fuzz targets: bundles, cosign signature layers, gitsign
//! commits and their CMS, Fulcio certificates and SCTs, public keys, Rekor bodies, trusted
//! roots and the encodings. Each function runs the verifier's own code on the bytes under a
//! fixed policy made from the real fixtures (tests/fixtures/sigstore/README.md names their
//! sources and signers) and re-checks what it accepts independently; `Err` names a broken
//! invariant. A refusal is `Ok`: refusing is what the verifier should do with almost all of it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use der::{Decode as _, Encode as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::digest::ImageDigest;
use crate::hex;
use crate::sigstore::bundle::{self, Artifact};
use crate::sigstore::cosign::{self, CERTIFICATE, Layer, SIGNATURE};
use crate::sigstore::key::{Hash, PublicKey};
use crate::sigstore::policy::key_identity;
use crate::sigstore::{Identity, SignaturePolicy, SignerPolicy, TrustedRoot, gitsign};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/sigstore/", $name))
    };
}

const GHA: &str = "https://token.actions.githubusercontent.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";
/// sigstore-conformance's identity (its README).
const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const KUBEWARDEN: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const A_TXT: &[u8] = fixture!("conformance.a.txt");

/// The fixed test setting: the built-in root and, per fixture family, what was signed and
/// the policy its signer passes.
struct Setting {
    root: TrustedRoot,
    bundles: Vec<(Artifact<'static>, SignaturePolicy)>,
    layers: Vec<(ImageDigest, SignaturePolicy)>,
    gitsign: SignaturePolicy,
    /// SHA-256 of each real gitsign commit's signed bytes: what any accepted commit signs.
    gitsign_signed: Vec<[u8; 32]>,
    /// What real Rekor bodies record: payload, signature, signer (DER).
    bodies: Vec<Recorded>,
}

/// What a Rekor body records: payload, signature, signer (DER).
type Recorded = (Vec<u8>, Vec<u8>, Vec<u8>);

fn setting() -> Result<&'static Setting, String> {
    static SETTING: OnceLock<Result<Setting, String>> = OnceLock::new();
    SETTING.get_or_init(build).as_ref().map_err(Clone::clone)
}

/// The built-in public-good root, parsed once.
pub(super) fn root() -> Result<&'static TrustedRoot, String> {
    setting().map(|s| &s.root)
}

fn keyless(issuer: &str, identity: &str) -> SignaturePolicy {
    SignaturePolicy {
        signer: SignerPolicy::Keyless {
            issuer: issuer.into(),
            identity: Identity::Exact(identity.into()),
        },
        trusted_root: None,
        transparency_log: true,
    }
}

fn key(pem: &[u8], transparency_log: bool) -> Result<SignaturePolicy, String> {
    let text = std::str::from_utf8(pem).map_err(|e| e.to_string())?;
    Ok(SignaturePolicy {
        signer: SignerPolicy::Key(PublicKey::from_pem(text).ok_or("fixture key")?),
        trusted_root: None,
        transparency_log,
    })
}

fn build() -> Result<Setting, String> {
    let sha = |text: &str| hex::decode_exact::<32>(text).ok_or("fixture digest");
    let file = Artifact {
        sha256: Sha256::digest(A_TXT).into(),
        bytes: Some(A_TXT),
    };
    let image = |text: &str| -> Result<Artifact<'static>, String> {
        Ok(Artifact {
            sha256: sha(text)?,
            bytes: None,
        })
    };
    // The subjects bundle_tests.rs checks each bundle against.
    let bundles = vec![
        (file, keyless(GHA, BEACON)),
        (
            file,
            key(fixture!("conformance.managed-key-happy-path.key.pub"), true)?,
        ),
        (
            image("a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf")?,
            keyless(GHA, BEACON),
        ),
        (
            image("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172")?,
            keyless(GHA, KUBEWARDEN),
        ),
        (
            image("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")?,
            keyless(GITHUB_OAUTH, "cody@soyland.com"),
        ),
    ];
    let key_only = ImageDigest::of(fixture!("dir-img-cosign-valid/manifest.json"));
    let rekor = ImageDigest::of(fixture!("dir-img-cosign-fulcio-rekor-valid/manifest.json"));
    let layers = vec![
        (key_only, key(fixture!("cosign.pub"), false)?),
        (rekor, key(fixture!("cosign2.pub"), true)?),
        (rekor, keyless(GITHUB_OAUTH, "mitr@redhat.com")),
    ];
    let mut gitsign_signed = Vec::new();
    for commit in [
        &fixture!("gitsign/offline.commit")[..],
        fixture!("gitsign/commit.txt"),
    ] {
        let (signed, _) = gitsign::split_signature(commit)?;
        gitsign_signed.push(Sha256::digest(&signed).into());
    }
    Ok(Setting {
        bodies: bodies()?,
        root: TrustedRoot::public_good()?,
        bundles,
        layers,
        gitsign: keyless("https://accounts.google.com", "billy@chainguard.dev"),
        gitsign_signed,
    })
}

/// What the managed-key bundle (hashedrekord over a.txt, its key) and the kubewarden bundle
/// (DSSE, its leaf certificate) record in their Rekor bodies.
fn bodies() -> Result<Vec<Recorded>, String> {
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).map_err(|e| e.to_string());
    let managed = parse(fixture!("conformance.managed-key-happy-path.sigstore.json"))?;
    let managed_key = key(fixture!("conformance.managed-key-happy-path.key.pub"), true)?;
    let SignerPolicy::Key(managed_key) = managed_key.signer else {
        return Err("fixture key".into());
    };
    let dsse = parse(fixture!(
        "sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json"
    ))?;
    let envelope = dsse.get("dsseEnvelope").ok_or("fixture envelope")?;
    Ok(vec![
        (
            A_TXT.to_vec(),
            b64(managed.pointer("/messageSignature/signature")).ok_or("fixture signature")?,
            managed_key.der().to_vec(),
        ),
        (
            b64(envelope.get("payload")).ok_or("fixture payload")?,
            b64(envelope.pointer("/signatures/0/sig")).ok_or("fixture signature")?,
            b64(dsse.pointer("/verificationMaterial/certificate/rawBytes"))
                .ok_or("fixture certificate")?,
        ),
    ])
}

/// The signer a policy admits is the one reported.
fn same_signer(policy: &SignaturePolicy, signer: &crate::sigstore::Signer) -> Result<(), String> {
    let ok = match &policy.signer {
        SignerPolicy::Key(key) => signer.identity == key_identity(key) && signer.issuer.is_none(),
        SignerPolicy::Keyless { issuer, identity } => {
            signer.issuer.as_deref() == Some(issuer.as_str()) && identity.matches(&signer.identity)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "accepted a signer the policy does not name: {signer:?}"
        ))
    }
}

/// The key that must have signed: the policy's, or the leaf certificate's (DER).
fn signing_key(policy: &SignaturePolicy, leaf: Option<&[u8]>) -> Result<PublicKey, String> {
    match (&policy.signer, leaf) {
        (SignerPolicy::Key(key), _) => Ok(key.clone()),
        (SignerPolicy::Keyless { .. }, Some(der)) => Certificate::from_der(der)
            .ok()
            .and_then(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
            .and_then(|spki| PublicKey::from_spki_der(&spki))
            .ok_or_else(|| "accepted with an unreadable leaf certificate".into()),
        (SignerPolicy::Keyless { .. }, None) => {
            Err("keyless acceptance without a certificate".into())
        }
    }
}

fn b64(value: Option<&Value>) -> Option<Vec<u8>> {
    crate::sigstore::encoding::base64_decode(value?.as_str()?)
}

/// DSSE's PAE as its spec writes it (secure-systems-lab/dsse `protocol.md`), built here
/// rather than with `bundle::pae` so the two are compared.
fn spec_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = b"DSSEv1 ".to_vec();
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// A Sigstore bundle (JSON) checked against every fixed subject and policy, as the image
/// launch checks a referrer's bundle. Invariant: an accepted bundle names the policy's
/// signer, its signature verifies with the signer's key over the artifact's bytes (message
/// signature) or over the PAE of a statement with the artifact's digest as a subject (DSSE),
/// and it carries an inclusion promise. Also: `bundle::pae` is the spec's PAE. Returns how
/// many subjects accepted it.
pub fn bundle(json: &[u8]) -> Result<usize, String> {
    let setting = setting()?;
    let payload_type = String::from_utf8_lossy(json.get(..json.len().min(40)).unwrap_or_default());
    if bundle::pae(&payload_type, json) != spec_pae(&payload_type, json) {
        return Err("bundle::pae differs from the DSSE spec's encoding".into());
    }
    let mut accepted = 0;
    for (artifact, policy) in &setting.bundles {
        let Ok(signer) = bundle::verify(json, artifact, policy, &setting.root) else {
            continue;
        };
        accepted += 1;
        same_signer(policy, &signer)?;
        let doc: Value =
            serde_json::from_slice(json).map_err(|e| format!("accepted non-JSON: {e}"))?;
        let material = doc
            .get("verificationMaterial")
            .ok_or("accepted without material")?;
        let leaf = b64(material.pointer("/certificate/rawBytes"))
            .or_else(|| b64(material.pointer("/x509CertificateChain/certificates/0/rawBytes")));
        let key = signing_key(policy, leaf.as_deref())?;
        let promised = material
            .get("tlogEntries")
            .and_then(Value::as_array)
            .is_some_and(|entries| entries.iter().any(|e| e.get("inclusionPromise").is_some()));
        if !promised {
            return Err("accepted without an inclusion promise".into());
        }
        let (message, signature) = if let Some(sig) = doc.get("messageSignature") {
            let bytes = artifact
                .bytes
                .ok_or("a message signature accepted without bytes")?;
            if Sha256::digest(bytes).as_slice() != artifact.sha256 {
                return Err("accepted bytes that are not the artifact's".into());
            }
            (bytes.to_vec(), b64(sig.get("signature")))
        } else {
            let envelope = doc
                .get("dsseEnvelope")
                .ok_or("accepted without a signature")?;
            let payload = b64(envelope.get("payload")).ok_or("DSSE payload not base64")?;
            let statement: Value = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
            let wanted = hex::encode(&artifact.sha256);
            let subjects = statement.get("subject").and_then(Value::as_array);
            let named = |s: &Value| s.pointer("/digest/sha256") == Some(&Value::from(&*wanted));
            if !subjects.is_some_and(|all| all.iter().any(named)) {
                return Err(format!("accepted a statement without subject {wanted}"));
            }
            let payload_type = envelope
                .get("payloadType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (
                spec_pae(payload_type, &payload),
                b64(envelope.pointer("/signatures/0/sig")),
            )
        };
        let signature = signature.ok_or("accepted without a base64 signature")?;
        if !key.verifies(Hash::Sha256, &message, &signature) {
            return Err("accepted a signature that does not verify over the artifact".into());
        }
    }
    Ok(accepted)
}

/// A Rekor entry body (a canonicalized body, decoded) checked against what the real
/// managed-key (hashedrekord) and kubewarden (DSSE) bundles signed, as `rekor::verify` checks
/// a body once its SET verified. Invariant: a body accepted as recording that signature
/// records it (its base64 signature decodes to it). Returns how many accepted it.
pub fn rekor_body(body: &[u8]) -> Result<usize, String> {
    let setting = setting()?;
    let mut accepted = 0;
    for (payload, signature, signer_der) in &setting.bodies {
        let expected = crate::sigstore::rekor::Expected {
            payload,
            signature,
            signer_der,
        };
        if crate::sigstore::rekor::check_body(body, &expected).is_err() {
            continue;
        }
        accepted += 1;
        // A body is under the log's signature, and serde_json skips the fields it does not
        // read unchecked: read the fields back from its UTF-8 text.
        let Ok(doc) = serde_json::from_str::<Value>(&String::from_utf8_lossy(body)) else {
            continue;
        };
        let single = b64(doc.pointer("/spec/signature/content"));
        let any = doc
            .pointer("/spec/signatures")
            .and_then(Value::as_array)
            .is_some_and(|all| {
                all.iter()
                    .any(|s| b64(s.get("signature")).as_ref() == Some(signature))
            });
        if !any && single.as_ref() != Some(signature) {
            return Err("a body accepted that does not record the signature".into());
        }
        let hash = hex::encode(&Sha256::digest(payload));
        if !String::from_utf8_lossy(body).contains(&hash) {
            return Err("a body accepted that does not record the payload hash".into());
        }
    }
    Ok(accepted)
}

/// A cosign signature layer in containers/image's `signature-1.json` shape (`payload` base64
/// and `annotations`, the form the seeds come in), checked as the launch checks each layer
/// of a `.sig` tag against each fixed digest and policy. Invariant: an accepted layer's
/// payload names that digest and the cosign type, its signature annotation verifies with
/// the signer's key over the payload, and the signer is the policy's. Returns how many
/// (digest, policy) pairs accepted it.
pub fn cosign_layer(json: &[u8]) -> Result<usize, String> {
    let setting = setting()?;
    let Ok(doc) = serde_json::from_slice::<Value>(json) else {
        return Ok(0);
    };
    let Some(payload) = b64(doc.get("payload")) else {
        return Ok(0);
    };
    let Ok(annotations) = serde_json::from_value::<BTreeMap<String, String>>(
        doc.get("annotations").cloned().unwrap_or_default(),
    ) else {
        return Ok(0);
    };
    let layer = Layer {
        payload,
        annotations,
    };
    let mut accepted = 0;
    for (digest, policy) in &setting.layers {
        let Ok(signer) = cosign::verify(&layer, digest, policy, &setting.root) else {
            continue;
        };
        accepted += 1;
        same_signer(policy, &signer)?;
        let payload: Value = serde_json::from_slice(&layer.payload)
            .map_err(|e| format!("accepted non-JSON: {e}"))?;
        let at = |pointer: &str| payload.pointer(pointer).and_then(Value::as_str);
        if at("/critical/image/docker-manifest-digest") != Some(digest.to_string().as_str())
            || at("/critical/type") != Some("cosign container image signature")
        {
            return Err(format!("accepted a payload that does not sign {digest}"));
        }
        let leaf = layer
            .annotations
            .get(CERTIFICATE)
            .and_then(|pem| der::pem::decode_vec(pem.trim().as_bytes()).ok())
            .map(|(_, der)| der);
        let key = signing_key(policy, leaf.as_deref())?;
        let signature = layer
            .annotations
            .get(SIGNATURE)
            .and_then(|s| crate::sigstore::encoding::base64_decode(s))
            .ok_or("accepted without a base64 signature")?;
        if !key.verifies(Hash::Sha256, &layer.payload, &signature) {
            return Err("accepted a signature that does not verify over the payload".into());
        }
    }
    Ok(accepted)
}

/// A commit object from a reused store, as the git launch checks its gitsign signature.
/// Invariants: the signed bytes and the gpgsig value `split_signature` returns put back
/// together (the header re-inserted with its continuation spaces) are the commit; an
/// accepted commit signs the same bytes as one of the real gitsign commits and names the
/// policy's signer.
pub fn gitsign_commit(commit: &[u8]) -> Result<bool, String> {
    let setting = setting()?;
    if let Ok((signed, signature)) = gitsign::split_signature(commit) {
        rejoins(commit, &signed, &signature)?;
    }
    let Ok(signer) = gitsign::verify(commit, &setting.gitsign, &setting.root) else {
        return Ok(false);
    };
    same_signer(&setting.gitsign, &signer)?;
    let (signed_bytes, _) = gitsign::split_signature(commit)?;
    let hash: [u8; 32] = Sha256::digest(&signed_bytes).into();
    if !setting.gitsign_signed.contains(&hash) {
        return Err("accepted a commit whose signed bytes no real signature covers".into());
    }
    Ok(true)
}

/// Some line boundary of the signed header part where `gpgsig <value>` (continuation lines
/// prefixed by a space) goes back gives the commit (git `commit.c` `parse_signed_commit`).
fn rejoins(commit: &[u8], signed: &[u8], signature: &str) -> Result<(), String> {
    let header = format!("gpgsig {}", signature.replace('\n', "\n "));
    let header_end = signed
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(signed.len(), |i| i + 1);
    let boundaries = std::iter::once(0).chain(
        signed
            .iter()
            .enumerate()
            .filter(|(i, b)| **b == b'\n' && *i < header_end)
            .map(|(i, _)| i + 1),
    );
    for at in boundaries {
        let (before, after) = signed.split_at(at.min(signed.len()));
        for newline in [&b"\n"[..], b""] {
            let rejoined = [before, header.as_bytes(), newline, after].concat();
            if rejoined == commit {
                return Ok(());
            }
        }
    }
    Err(format!(
        "the split of {:?} does not put back together",
        String::from_utf8_lossy(commit)
    ))
}

/// A gpgsig's DER `ContentInfo`, checked as a gitsign signature of the real offline commit's
/// signed bytes. Invariant: an accepted CMS names the policy's signer. The DER and protobuf
/// walkers it runs are checked on the same bytes by `sigstore_parsers::walkers`.
pub fn gitsign_cms(cms: &[u8]) -> Result<bool, String> {
    let setting = setting()?;
    let (signed_bytes, _) = gitsign::split_signature(fixture!("gitsign/offline.commit"))?;
    let Ok(signer) = gitsign::verify_cms(&signed_bytes, cms, &setting.gitsign, &setting.root)
    else {
        return Ok(false);
    };
    same_signer(&setting.gitsign, &signer)?;
    Ok(true)
}

#[cfg(test)]
#[path = "sigstore_tests.rs"]
mod tests;
