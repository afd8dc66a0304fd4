#!/usr/bin/env python3
"""Writes app-compose.json beside each example's docker-compose.yaml.

app-compose.json is what dstack measures: its SHA-256 is the compose-hash in RTMR3, so the
exact bytes matter. The compose file goes in verbatim as `docker_compose_file`; the rest is
dstack's manifest v2 with the settings each example states. Run after editing a compose
file; the test suite fails while the two differ.
    python3 examples/dstack/render-app-compose.py
"""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent

# Settings that matter to a verifier, chosen per example:
# - allowed_envs is empty: no operator-supplied environment reaches the launcher (the
#   threat model trusts only the attested config);
# - kms_enabled: keys from dstack's KMS, bound to this compose-hash;
# - public_logs / public_sysinfo: anyone can read what the launcher logged.
EXAMPLES = {
    "git-mode": {"name": "trusted-launcher-git", "gateway_enabled": False},
    "git-mode-next": {"name": "trusted-launcher-git-next", "gateway_enabled": False},
    "image-mode": {"name": "trusted-launcher-image", "gateway_enabled": True},
    "near-migration": {"name": "mpc-node", "gateway_enabled": False},
}


def manifest(name, compose, gateway_enabled):
    return {
        "manifest_version": 2,
        "name": name,
        "runner": "docker-compose",
        "docker_compose_file": compose,
        "kms_enabled": True,
        "gateway_enabled": gateway_enabled,
        "local_key_provider_enabled": False,
        "key_provider_id": "",
        "public_logs": True,
        "public_sysinfo": True,
        "allowed_envs": [],
        "no_instance_id": False,
        "secure_time": False,
    }


def main():
    for directory, settings in EXAMPLES.items():
        compose = (HERE / directory / "docker-compose.yaml").read_text(encoding="utf-8")
        text = json.dumps(manifest(compose=compose, **settings), indent=2) + "\n"
        (HERE / directory / "app-compose.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
