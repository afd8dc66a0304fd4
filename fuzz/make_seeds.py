#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/ from the project's real fixtures and test data.

Run from anywhere: `python3 fuzz/make_seeds.py`. The seeds are committed; rerun after a
fixture changes (it overwrites its own files and leaves the rest, such as reproducers). Every seed is a real input or one written in the exact shape the fakes in
tests/common produce (named beside it).
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
FIX = os.path.join(ROOT, "tests", "fixtures")
EVENT_TYPE = 0x08000001


def read(*path):
    with open(os.path.join(ROOT, *path), "rb") as f:
        return f.read()


def put(target, name, data):
    os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(SEEDS, target, name), "wb") as f:
        f.write(data)


def digest_v1(name, payload):
    # src/measure/event.rs: SHA384(le_u32(0x08000001) || ":" || name || ":" || payload).
    return hashlib.sha384(struct.pack("<I", EVENT_TYPE) + b":" + name.encode() + b":" + payload).hexdigest()


def entry(name, payload, boot_id=None):
    e = {"imr": 3, "event_type": EVENT_TYPE, "digest": digest_v1(name, payload),
         "event": name, "event_payload": payload.hex()}
    if boot_id:
        e["boot_id"] = boot_id
    return e


def compose_contents():
    """The `configs: content: |` blocks of the dstack examples (the attested configs)."""
    out = {}
    for example in sorted(os.listdir(os.path.join(ROOT, "examples", "dstack"))):
        path = os.path.join(ROOT, "examples", "dstack", example, "docker-compose.yaml")
        if not os.path.exists(path):
            continue
        lines = open(path).read().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "content: |":
                indent = None
                block = []
                for nxt in lines[i + 1:]:
                    if not nxt.strip():
                        block.append("")
                        continue
                    width = len(nxt) - len(nxt.lstrip())
                    if indent is None:
                        indent = width
                    if width < indent:
                        break
                    block.append(nxt[indent:])
                out[f"{example}-{len(out)}"] = "\n".join(block).rstrip() + "\n"
    return out


def main():
    # Files already there stay: fuzz findings' reproducers (crash-*) live beside the seeds.
    getquote = json.loads(read("tests", "fixtures", "dstack_verifier_tdx-lite-getquote.json"))
    quote = read("tests", "fixtures", "dcap-qvl_sample_tdx_quote")
    image = "sha256:" + "ab" * 32
    commit = "23139dff75edd9a9a1078b3142a716925181e1ca"

    # config: the examples' configs, both formats, and NEAR's user config (tests/near_user_config.rs).
    put("config", "hello.conf", read("examples", "hello", "launcher.conf"))
    put("config", "hello.toml", read("examples", "hello", "launcher.toml"))
    for name, text in compose_contents().items():
        put("config", name, text)
    put("config", "near-user-config", f"""[launcher_config]
image_reference = "registry.example/nearone/mpc-node:3.0.0"
port_mappings = [{{ host = 8080, container = 8080 }}, {{ host = 24567, container = 24567 }}]
pull_max_retries = 10
pull_retry_interval_secs = 1
pull_max_delay_secs = 60

[mpc_node_config]
home_dir = "/data"
my_near_account_id = "mpc-node-1.testnet"
cores = 12

[mpc_node_config.indexer]
validate_genesis = false
sync_mode = "Latest"
mpc_contract_id = "v1.signer-prod.testnet"
finality = "optimistic"
""")

    # approved_list: both list formats (git-launcher's, NEAR's approved_hashes).
    put("approved_list", "commits.json", json.dumps({"approved_commits": [commit, "c" * 40, "a" * 64]}))
    put("approved_list", "hashes.json", json.dumps({"approved_hashes": [image, "sha256:" + "cd" * 32]}))
    put("approved_list", "near-digest.json",
        json.dumps({"approved_hashes": [read("tests", "fixtures", "near-mpc_mpc_image_digest.txt").decode().strip()]}))

    # agent_reply: the real GetQuote reply as the agent sends it (tests/common/fake_agent/
    # answers with Content-Length; the agent's hyper may also chunk).
    body = json.dumps(getquote).encode()
    put("agent_reply", "getquote-sized",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096])
                       for i in range(0, len(body), 4096)) + b"0\r\n\r\n"
    put("agent_reply", "getquote-chunked",
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    small = json.dumps({"quote": quote.hex(), "event_log": json.dumps([entry("trusted-launcher.config", b"\x01" * 32)])}).encode()
    put("agent_reply", "small", b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(small) + small)
    err = b'{"error":"event log is full"}'
    put("agent_reply", "error", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n" % len(err) + err)

    # event_log: the launcher's own JSON lines, the agent's JSON array, a version file.
    boot = "2f3c1f7e-6a57-4c3e-9d55-6f0d7a1b2c3d"
    launch = [("trusted-launcher.config", b"\x11" * 32), ("trusted-launcher.workload", bytes.fromhex(commit)),
              ("trusted-launcher.ready", b"")]
    put("event_log", "launcher.jsonl", "".join(json.dumps(entry(n, p, boot)) + "\n" for n, p in launch))
    put("event_log", "agent-array.json", getquote["event_log"])
    put("event_log", "version-2", "2\n")

    # tdx_quote, verify_quote: every real quote.
    for name in ["dcap-qvl_sample_tdx_quote", "dcap-qvl-0.7.1_sample_tdx_quote_td15ex", "crabbox_real_tdx_quote.bin"]:
        put("tdx_quote", name, read("tests", "fixtures", name))
        put("verify_quote", name, read("tests", "fixtures", name))
    put("verify_quote", "sample-hex", quote.hex() + "\n")

    # verify_document: every real attestation document.
    for name in ["dstack_verifier_tdx-lite-getquote.json", "near-mpc_public_data.json",
                 "crabbox_real_attestation_info.json", "dstack_verifier_quote-report.json"]:
        put("verify_document", name, read("tests", "fixtures", name))

    # collateral: the real collateral files.
    for name in ["dcap-qvl_sample_tdx_quote_collateral.json", "dcap-qvl_sample_tdx_quote_outdated_collateral.json",
                 "dcap-qvl-0.7.1_sample_tdx_quote_td15ex_collateral.json"]:
        put("collateral", name, read("tests", "fixtures", name))

    # certificate: the real app certificate chain of an Info reply.
    info = json.loads(read("tests", "fixtures", "crabbox_real_attestation_info.json"))
    put("certificate", "crabbox-app-cert.pem", info["app_cert"])

    # registry_manifest: the shapes tests/common/fake_registry/ serves.
    digest = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
                           "layers": []}).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest),
                                       "size": len(manifest), "platform": {"architecture": "amd64", "os": "linux"}},
                                      {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(b"arm"),
                                       "size": 3, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}]}).encode()
    put("registry_manifest", "config.json", config)
    put("registry_manifest", "manifest.json", manifest)
    put("registry_manifest", "index.json", index)
    put("registry_manifest", "docker-list.json", index.replace(b"application/vnd.oci.image.index.v1+json",
                                                               b"application/vnd.docker.distribution.manifest.list.v2+json"))

    # www_authenticate: Docker Hub's and the fake registry's challenges (tests/common/hub.rs,
    # fake_registry/auth.rs), and RFC 9110's own example.
    put("www_authenticate", "hub", 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"')
    put("www_authenticate", "basic", 'Basic realm="fake-registry"')
    put("www_authenticate", "two", 'Basic realm="simple", Newauth realm="apps", type=1, title="Login to \\"apps\\""')
    put("www_authenticate", "token68", "Negotiate a87421000492aa874209af8bc028==")

    # retry_after: RFC 9110 §5.6.7's three date forms and delta-seconds.
    for name, value in [("imf", "Sun, 06 Nov 2044 08:49:37 GMT"), ("rfc850", "Sunday, 06-Nov-44 08:49:37 GMT"),
                        ("asctime", "Sun Nov  6 08:49:37 2044"), ("seconds", "120")]:
        put("retry_after", name, value)

    # image_reference: the names the tests and NEAR use.
    for i, value in enumerate(["nginx", "nearone/mpc-node", "docker.io/library/nginx", "127.0.0.1:5000/team/app",
                               "registry.example/team/app", "ghcr.io/trusted-launcher/trusted-launcher", "linux/arm64/v8"]):
        put("image_reference", f"ref-{i}", value)

    # redirect: Locations registries answer with (object storage, relative, loopback).
    for i, value in enumerate(["https://production.cloudflare.docker.com/registry-v2/docker/registry/v2/blobs/sha256/aa/data?verify=1",
                               "/v2/team/app/blobs/sha256:00", "../blobs/x", "//cdn.example/x", "http://127.0.0.1:5001/x"]):
        put("redirect", f"location-{i}", value)

    # git_objects: the real commit and trees of examples/hello/hello.bundle, as `git cat-file`
    # gives them to the checkout, and a SHA-256 tree in git's tree format.
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "-q", "--bare", os.path.join(ROOT, "examples", "hello", "hello.bundle"), tmp],
                       check=True)
        cat = lambda *args: subprocess.run(["git", "-C", tmp, "cat-file", *args], check=True,
                                           capture_output=True).stdout
        put("git_objects", "commit-sha1", cat("commit", commit))
        put("git_objects", "tree-sha1", cat("tree", commit + "^{tree}"))
    put("git_objects", "tree-sha256", b"100644 README\0" + bytes(32) + b"120000 link\0" + b"\x01" * 32)

    # compose_document: the compose template's render (src/compose.rs) and the examples.
    img = "registry.example/team/app@sha256:" + "a" * 64
    put("compose_document", "rendered", f"name: trusted-launcher\nservices:\n  app:\n    image: {img}\n    restart: on-failure\n    ports:\n      - \"8080:8080\"\n")
    put("compose_document", "anchors", f"x-base: &base\n  image: \"{img}\"\nservices:\n  a: *base\n  b:\n    image: '{img}'\n")
    put("compose_document", "near-launcher", read("examples", "dstack", "near-migration", "docker-compose.yaml"))

    # strict_json: every JSON fixture, and a repeated key.
    for name in sorted(os.listdir(FIX)):
        if name.endswith(".json"):
            put("strict_json", name, read("tests", "fixtures", name))
    put("strict_json", "repeated", '{"approved_commits":["a"],"approved_commits":["b"]}')

    sigstore_seeds()


def tlv(data, i=0):
    """One DER TLV at data[i:]: (tag, content start, end)."""
    tag, first = data[i], data[i + 1]
    if first < 0x80:
        return tag, i + 2, i + 2 + first
    n = first & 0x7F
    length = int.from_bytes(data[i + 2:i + 2 + n], "big")
    return tag, i + 2 + n, i + 2 + n + length


def children(data, start, end):
    out = []
    while start < end:
        t, s, e = tlv(data, start)
        out.append((t, start, s, e))
        start = e
    return out


def oid_der(text):
    parts = [int(p) for p in text.split(".")]
    body = bytes([parts[0] * 40 + parts[1]])
    for p in parts[2:]:
        groups = [p & 0x7F]
        p >>= 7
        while p:
            groups.append(0x80 | (p & 0x7F))
            p >>= 7
        body += bytes(reversed(groups))
    return bytes([6, len(body)]) + body


def pem_der(text):
    lines = [l for l in text.strip().splitlines() if not l.startswith("-----")]
    return base64.b64decode("".join(lines))


def sigstore_seeds():
    """The Sigstore targets' seeds: the real material of tests/fixtures/sigstore (README.md
    there names each file's source), JSON minified to keep the seeds small."""
    sig = ("tests", "fixtures", "sigstore")
    minify = lambda data: json.dumps(json.loads(data), separators=(",", ":")).encode()
    bundles = ["conformance.happy-path-v0.1.sigstore.json", "conformance.happy-path-v0.3.sigstore.json",
               "conformance.happy-path-intoto-in-dsse-v3.sigstore.json",
               "conformance.managed-key-happy-path.sigstore.json", "cosign.oci-attestation.sigstore.json",
               "sigstore-rs.kubewarden-controller-v1.34.0.cosign-sign-v1.sigstore.json"]
    leaves = {}
    for name in bundles:
        data = read(*sig, name)
        short = name.replace(".sigstore.json", "")
        put("sigstore_bundle", short, minify(data))
        doc = json.loads(data)
        material = doc["verificationMaterial"]
        # The Rekor body as rekor::check_body reads it (decoded canonicalizedBody).
        body = base64.b64decode(material["tlogEntries"][0]["canonicalizedBody"])
        put("sigstore_bundle", short + ".body", body)
        cert = material.get("certificate") or (material.get("x509CertificateChain") or {}).get("certificates", [None])[0]
        if cert:
            leaves[short] = base64.b64decode(cert["rawBytes"])

    # cosign_signature: the three containers/image signature layers as stored there.
    for name in ["dir-img-cosign-valid", "dir-img-cosign-key-rekor-valid", "dir-img-cosign-fulcio-rekor-valid"]:
        put("cosign_signature", name, minify(read(*sig, name, "signature-1.json")))
        layer = json.loads(read(*sig, name, "signature-1.json"))
        pem = layer["annotations"].get("dev.sigstore.cosign/certificate")
        if pem:
            leaves[name] = pem_der(pem)

    # gitsign_commit: the two real gitsign commits, their CMS (DER) and the Rekor entry
    # (protobuf TransparencyLogEntry) embedded in it as an unsigned attribute.
    rekor_oid = oid_der("1.3.6.1.4.1.57264.3.1")
    for name in ["offline.commit", "commit.txt"]:
        commit = read(*sig, "gitsign", name)
        put("gitsign_commit", name, commit)
        text = commit.decode()
        armored = text.split("gpgsig ", 1)[1].split("-----END SIGNED MESSAGE-----")[0]
        cms = pem_der(armored.replace("\n ", "\n") + "-----END SIGNED MESSAGE-----")
        put("gitsign_commit", name + ".cms", cms)
        at = cms.index(rekor_oid) + len(rekor_oid)
        _, s, _ = tlv(cms, at)  # the SET of values
        _, s, e = tlv(cms, s)  # its first value: an OCTET STRING
        put("gitsign_commit", name + ".rekor-entry", cms[s:e])
        # The CMS's first certificate: SignedData's [0] certificates.
        _, s, e = tlv(cms)
        _, s, e = tlv(cms, children(cms, s, e)[1][2])  # [0] EXPLICIT SignedData
        certs = [c for c in children(cms, s, e) if c[0] == 0xA0][0]
        first = children(cms, certs[2], certs[3])[0]
        leaves["gitsign-" + name] = cms[first[1]:first[3]]

    # sigstore_certificate: every real Fulcio leaf, the Fulcio v1 root, the real public keys
    # (PEM and SPKI DER).
    for name, der in leaves.items():
        put("sigstore_certificate", name + ".der", der)
    put("sigstore_certificate", "fulcio_v1.der", pem_der(read(*sig, "fulcio_v1.crt.pem").decode()))
    for name in ["cosign.pub", "conformance.managed-key-happy-path.key.pub"]:
        put("sigstore_certificate", name, read(*sig, name))
        put("sigstore_certificate", name + ".der", pem_der(read(*sig, name).decode()))

    # sigstore_encoding: the built-in trusted root, its times and base64 values, a signer payload
    # (src/sigstore/policy.rs's test payload).
    root = read("assets", "sigstore", "trusted_root.public-good.json")
    put("sigstore_encoding", "trusted_root.public-good.json", minify(root))
    doc = json.loads(root)
    put("sigstore_encoding", "time", doc["tlogs"][0]["publicKey"]["validFor"]["start"])
    put("sigstore_encoding", "time-fraction", "2022-12-31T23:59:59.999Z")
    # The finding's reproducer (src/sigstore/encoding.rs's regression test): an 18-digit year.
    put("sigstore_encoding", "time-year-overflow", "922337203685477580-01-01T00:00:00Z")
    put("sigstore_encoding", "base64-key", doc["tlogs"][0]["publicKey"]["rawBytes"])
    put("sigstore_encoding", "base64-id", doc["tlogs"][0]["logId"]["keyId"])
    put("sigstore_encoding", "signer", '{"identity":"https://github.com/o/r/.github/workflows/release.yml@refs/tags/v1",'
        '"issuer":"https://token.actions.githubusercontent.com","source_repository":"https://github.com/o/r",'
        '"trusted_root":"sha256:00"}')


if __name__ == "__main__":
    main()
