//! `[image.signature]` (issue 17) all the way to `ready`: an image the in-process registry
//! fully serves (manifest, config blob, layer) signed in the test with a cosign key exactly
//! as `cosign sign --key` signs it, launched by the real binary with the recording docker;
//! the event log it writes is then checked by `verify --expect-signer`.
//!
//! The real cosign signatures (`tests/image_signature.rs`) sign manifests whose config blobs
//! are not in the fixtures, so they stop before `ready`; here the key is made in the test.
//! What cosign makes, emulated:
//! - the payload: sigstore/sigstore `pkg/signature/payload/payload.go` (`Cosign.MarshalJSON`:
//!   Go's `json.Marshal` of `{"critical":{"identity":{"docker-reference"},"image":
//!   {"docker-manifest-digest"},"type":"cosign container image signature"},"optional":null}`,
//!   struct order, compact, no annotations → `null`); checked byte for byte against the real
//!   `dir-img-cosign-valid` payload below;
//! - the signature: ECDSA P-256 over SHA-256 of the payload bytes, ASN.1 DER, base64 in the
//!   layer annotation `dev.cosignproject.cosign/signature`; the manifest tagged
//!   `sha256-<hex>.sig` with the payload as its `application/vnd.dev.cosign.simplesigning.v1+json`
//!   layer (sigstore/cosign `specs/SIGNATURE_SPEC.md`, "Storage" and "Signature Schemes");
//! - key-only, no Rekor entry: `transparency_log = false`, as containers/image's
//!   `dir-img-cosign-valid` fixture (signed with `cosign sign --key … --tlog-upload=false`).

// Test code: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde_json::{Value, json};

use common::fake_agent::unhex;
use common::fake_docker::FakeDocker;
use common::fake_registry::{Blob, FakeRegistry, Flavor, Image, Mode, sha256_digest};
use common::forged_log::{COMPOSE, CONFIG, READY, WORKLOAD, boot};
use common::next_agent::base64;
use common::{Fixture, Run};

const SIGNER: &str = "trusted-launcher.signer";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigstore");
/// DER `SubjectPublicKeyInfo` header of an uncompressed P-256 point (RFC 5480: id-ecPublicKey,
/// prime256v1, a 66-byte BIT STRING); the real `cosign.pub` starts with it (checked below).
const P256_SPKI_PREFIX: &str = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

/// A cosign key pair (`cosign generate-key-pair` makes ECDSA P-256).
struct CosignKey {
    pair: EcdsaKeyPair,
}

impl CosignKey {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self { pair }
    }

    fn spki_der(&self) -> Vec<u8> {
        let mut der = unhex(P256_SPKI_PREFIX).unwrap();
        der.extend_from_slice(self.pair.public_key().as_ref());
        der
    }

    /// `cosign.pub`: the PEM `PUBLIC KEY` document.
    fn pem(&self) -> String {
        let body = base64(&self.spki_der());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The signer identity the launcher measures: `key:sha256:<hex of the DER>`.
    fn identity(&self) -> String {
        format!("key:{}", sha256_digest(&self.spki_der()))
    }

    /// ECDSA P-256 SHA-256, ASN.1 DER, base64: the signature annotation's value.
    fn sign(&self, payload: &[u8]) -> String {
        let signature = self.pair.sign(&SystemRandom::new(), payload).unwrap();
        base64(signature.as_ref())
    }
}

/// The simple-signing payload cosign signs for `reference@digest`.
fn simple_signing(reference: &str, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

/// Attaches a signature to `subject` as cosign does: the payload blob, and an OCI manifest
/// tagged `sha256-<hex>.sig` whose one layer is that payload with the signature annotation.
fn attach(registry: &FakeRegistry, subject: &str, payload: &[u8], signature: &str) {
    let layer = Blob {
        media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
        bytes: payload.to_vec(),
    };
    registry.push_blob(&layer);
    let config = Blob {
        media_type: "application/vnd.oci.image.config.v1+json".into(),
        bytes: b"{}".to_vec(),
    };
    registry.push_blob(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config.media_type, "size": config.bytes.len(),
                   "digest": config.digest()},
        "layers": [{"mediaType": layer.media_type, "size": layer.bytes.len(),
                    "digest": layer.digest(),
                    "annotations": {"dev.cosignproject.cosign/signature": signature}}],
    });
    let manifest = Blob {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        bytes: serde_json::to_vec(&manifest).unwrap(),
    };
    registry.push_tag(&format!("{}.sig", subject.replace(':', "-")), &manifest);
}

struct Setup {
    fx: Fixture,
    registry: FakeRegistry,
    image: Image,
    docker: FakeDocker,
    /// The key the config's policy names.
    key: CosignKey,
}

fn setup() -> Setup {
    let fx = Fixture::new();
    let registry = FakeRegistry::start(Mode::Normal);
    let image = Image::new(Flavor::Oci, "linux/amd64", "signed");
    registry.push_image(&image);
    let docker = FakeDocker::new(&fx);
    docker.answer_inspect(
        &format!("{}@{}", registry.reference(), image.digest()),
        &image.config_digest(),
    );
    Setup {
        fx,
        registry,
        image,
        docker,
        key: CosignKey::new(),
    }
}

impl Setup {
    /// What cosign signs for the approved image.
    fn payload(&self) -> Vec<u8> {
        simple_signing(&self.registry.reference(), &self.image.digest())
    }

    /// Launches with `[image.signature]` naming `self.key` inline, key-only.
    fn run(&self) -> Run {
        let config = self.fx.write(
            "image.toml",
            &format!(
                "[image]\nreference = \"{}\"\ndigest = \"{}\"\ncompose_file = \"{}\"\n\
                 [image.signature]\npublic_key = \"\"\"\n{}\"\"\"\ntransparency_log = false\n",
                self.registry.reference(),
                self.image.digest(),
                self.fx.path().join("compose.yaml").display(),
                self.key.pem()
            ),
        );
        self.fx
            .launcher()
            .args(["--docker", self.docker.script.to_str().unwrap()])
            .arg(config.to_str().unwrap())
            .run()
    }

    /// The measured events as `(name, payload)`, after dstack's boot events.
    fn measured(&self) -> Vec<(String, Vec<u8>)> {
        let mut events = boot(&[0x11; 32]);
        for e in self.fx.events() {
            let payload = unhex(e["event_payload"].as_str().unwrap()).unwrap();
            events.push((e["event"].as_str().unwrap().to_owned(), payload));
        }
        events
    }

    /// Refused: nothing measured, docker never called, no compose file written.
    #[track_caller]
    fn nothing_done(&self, run: &Run, reason: &str) {
        run.fails(
            1,
            &format!(
                "{}@{}: no signature verifies under [image.signature], so it is not started: {}.sig layer 1: {reason}",
                self.registry.reference(),
                self.image.digest(),
                self.image.digest().replace(':', "-")
            ),
        );
        assert_eq!(self.fx.events(), Vec::<Value>::new());
        assert_eq!(self.docker.calls(), Vec::<String>::new());
        assert!(!self.fx.path().join("compose.yaml").exists());
    }
}

/// A naive check that trusts a `.sig` layer whose payload names the approved digest, without
/// checking who signed it (the signature annotation is merely present).
fn naive_payload_only(payload: &[u8], digest: &str) -> bool {
    let value: Value = serde_json::from_slice(payload).unwrap();
    value["critical"]["image"]["docker-manifest-digest"] == digest
}

/// A naive check that verifies the key's signature but not what the payload signs.
fn naive_signature_only(key: &CosignKey, payload: &[u8], signature: &str) -> bool {
    let signature = common::fake_registry::base64_decode(signature).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        key.pair.public_key().as_ref(),
    )
    .verify(payload, &signature)
    .is_ok()
}

/// The emulation is cosign's: the real key-only signature's payload is what
/// `simple_signing` makes for its reference and digest, and the real key's DER starts with
/// the SPKI header used here.
#[test]
fn the_emulated_payload_and_key_are_cosigns() {
    let real: Value = serde_json::from_slice(
        &std::fs::read(format!("{FIXTURES}/dir-img-cosign-valid/signature-1.json")).unwrap(),
    )
    .unwrap();
    let payload = common::fake_registry::base64_decode(real["payload"].as_str().unwrap()).unwrap();
    assert_eq!(
        String::from_utf8(simple_signing(
            "192.168.64.2:5000/cosign-signed-single-sample",
            "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
        ))
        .unwrap(),
        String::from_utf8(payload).unwrap()
    );
    let pem = std::fs::read_to_string(format!("{FIXTURES}/cosign.pub")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = common::fake_registry::base64_decode(&body).unwrap();
    assert_eq!(common::hex(&der[..26]), P256_SPKI_PREFIX);
    assert_eq!(der.len(), 26 + 65);
    let key = CosignKey::new();
    assert_eq!(key.spki_der().len(), der.len());
}

#[test]
fn a_key_signed_image_reaches_ready_with_its_signer_measured_and_verified() {
    let s = setup();
    let payload = s.payload();
    attach(
        &s.registry,
        &s.image.digest(),
        &payload,
        &s.key.sign(&payload),
    );
    let run = s.run();
    run.success()
        .stderr_has(&format!(
            "signature verified: {{\"identity\":\"{}\"}}",
            s.key.identity()
        ))
        .stderr_has("image verified")
        .stdout_has(&format!(
            "    image: \"{}@{}\"",
            s.registry.reference(),
            s.image.digest()
        ));
    assert!(
        s.docker
            .calls()
            .last()
            .unwrap()
            .ends_with("up --remove-orphans")
    );

    let measured = s.measured();
    let ours: Vec<&(String, Vec<u8>)> = measured
        .iter()
        .filter(|(n, _)| n.starts_with("trusted-launcher."))
        .collect();
    let names: Vec<&str> = ours.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [CONFIG, WORKLOAD, SIGNER, COMPOSE, READY]);
    assert_eq!(ours[1].1, format!("oci:{}", s.image.digest()).as_bytes());
    // Key-only (no Rekor entry): no trusted root was used, so none is named.
    let signer = format!("{{\"identity\":\"{}\"}}", s.key.identity());
    assert_eq!(String::from_utf8(ours[2].1.clone()).unwrap(), signer);
    let handed = std::fs::read(s.fx.path().join("compose.yaml")).unwrap();
    assert_eq!(ours[3].1, sha256_digest(&handed).as_bytes());

    // `verify` on exactly what was measured (the quote's RTMR3 is its replay; no DCAP); the
    // verifier is in the default build only (the `verify` feature).
    #[cfg(feature = "verify")]
    verify_expects_the_signer(&s, &measured);
}

#[cfg(feature = "verify")]
fn verify_expects_the_signer(s: &Setup, measured: &[(String, Vec<u8>)]) {
    use common::forged_log::verify;
    let identity = s.key.identity();
    let verdict = verify(measured, &["--expect-signer", &identity]);
    verdict.passes_unsigned();
    let launch = &verdict.json["launches"][0];
    assert_eq!(launch["signer"]["identity"], identity.as_str());
    assert_eq!(
        launch["workload"],
        format!("oci:{}", s.image.digest()).as_str()
    );
    let other = CosignKey::new().identity();
    let refused = verify(measured, &["--expect-signer", &other]);
    refused.fails(&["launch.1"]);
    assert!(
        refused.detail("launch.1").contains(&identity),
        "{}",
        refused.detail("launch.1")
    );
}

/// The attack: the image's `.sig` tag holds a signature by someone else's key. A check that
/// only reads the payload would run it; the launcher refuses before anything is measured.
#[test]
fn another_keys_signature_is_refused_with_nothing_done() {
    let s = setup();
    let payload = s.payload();
    let attacker = CosignKey::new();
    let signature = attacker.sign(&payload);
    attach(&s.registry, &s.image.digest(), &payload, &signature);
    assert!(naive_payload_only(&payload, &s.image.digest()));
    assert!(!naive_signature_only(&s.key, &payload, &signature));
    let run = s.run();
    s.nothing_done(&run, "the signature does not verify over the payload");
}

/// The attack: a real signature by the policy's key, but of another image (replayed under
/// this digest's `.sig` tag). A check of the signature alone accepts it; the launcher
/// compares the signed digest with the approved one.
#[test]
fn the_keys_signature_of_another_image_is_refused_with_nothing_done() {
    let s = setup();
    let other = Image::new(Flavor::Oci, "linux/amd64", "other");
    let payload = simple_signing(&s.registry.reference(), &other.digest());
    let signature = s.key.sign(&payload);
    attach(&s.registry, &s.image.digest(), &payload, &signature);
    assert!(naive_signature_only(&s.key, &payload, &signature));
    assert!(!naive_payload_only(&payload, &s.image.digest()));
    let run = s.run();
    s.nothing_done(
        &run,
        &format!(
            "the payload signs {}, not {}",
            other.digest(),
            s.image.digest()
        ),
    );
}
