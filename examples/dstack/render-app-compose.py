#!/usr/bin/env python3
"""Writes app-compose.json beside each example's docker-compose.yaml.

app-compose.json is what dstack measures: its SHA-256 is the compose-hash in RTMR3, so the
exact bytes matter. The compose file goes in verbatim as `docker_compose_file`; the rest is
dstack's manifest v2 with the settings each example states. Run after editing a compose
file; the test suite fails while the two differ.

    python3 examples/dstack/render-app-compose.py            # rewrite every example's
    python3 examples/dstack/render-app-compose.py --check    # exit 1 if any is stale
    python3 examples/dstack/render-app-compose.py image-mode # only that example
"""
import argparse
import json
import pathlib
import sys

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


def render(directory):
    """The app-compose.json text for the example in HERE/directory."""
    compose = (HERE / directory / "docker-compose.yaml").read_text(encoding="utf-8")
    return json.dumps(manifest(compose=compose, **EXAMPLES[directory]), indent=2) + "\n"


def example_name(argument):
    """An example given by name or by path (its directory must be one beside this script)."""
    path = pathlib.Path(argument)
    name = path.name if path.name else path.resolve().name
    if name not in EXAMPLES:
        raise ValueError(
            f"{argument!r} is not an example (known: {', '.join(sorted(EXAMPLES))})"
        )
    if path.parent != pathlib.Path(".") and path.resolve().parent != HERE:
        raise ValueError(f"{argument!r} is not the example directory beside {HERE}")
    return name


def main(argv):
    parser = argparse.ArgumentParser(
        prog="render-app-compose.py",
        description="Write (or with --check, compare) app-compose.json beside each dstack "
        "example's docker-compose.yaml. Without EXAMPLE_DIR: every example.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if any app-compose.json differs from a fresh render",
    )
    parser.add_argument(
        "examples",
        nargs="*",
        metavar="EXAMPLE_DIR",
        help=f"an example by name or path ({', '.join(EXAMPLES)})",
    )
    # argparse exits 0 after --help and 2 on a bad argument, before anything is written.
    args = parser.parse_args(argv)
    try:
        names = [example_name(a) for a in args.examples] or list(EXAMPLES)
    except ValueError as error:
        parser.error(str(error))
    stale = []
    for name in names:
        target = HERE / name / "app-compose.json"
        text = render(name)
        current = target.read_bytes() if target.exists() else None
        if current == text.encode("utf-8"):
            continue
        if args.check:
            stale.append(name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {name}/app-compose.json")
    for name in stale:
        print(f"{name}/app-compose.json is stale; run {sys.argv[0]} {name}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
