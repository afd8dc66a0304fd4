#!/usr/bin/env bash
# Launch-cost benchmark: plan, a cold run (fetch + checkout + verify) and a warm restart
# (objects reused; the tree kept if it is exactly the commit's, else re-checked out; re-verified
# either way) on a synthetic repository.
# Prints wall time and peak RSS of the launcher. Usage: bench/launch.sh [FILES] [KIB_PER_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-2000}
kib=${2:-8}
cargo build --release --locked -q
bin=$PWD/target/release/trusted-launcher
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b
git init -q --bare "$tmp/origin.git"
git init -q "$tmp/src"
for ((i = 0; i < files; i++)); do
  d="$tmp/src/d$((i % 50))"
  mkdir -p "$d"
  head -c $((kib * 1024)) /dev/urandom >"$d/f$i"
done
echo 'true' >"$tmp/src/entrypoint.sh"
git -C "$tmp/src" add -A
git -C "$tmp/src" commit -qm bench
git -C "$tmp/src" push -q "$tmp/origin.git" HEAD:refs/heads/main
sha=$(git -C "$tmp/src" rev-parse HEAD)
printf 'REPO_URL=file://%s\nCOMMIT_SHA=%s\nWORK_DIR=%s\n' "$tmp/origin.git" "$sha" "$tmp/work" >"$tmp/c.conf"

measure() { # label, then the command
  local label=$1; shift
  local start end rss
  start=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    rss=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1)
  else
    "$@" >/dev/null 2>&1; rss="n/a"
  fi
  end=$(date +%s%N)
  printf '%-28s %8.1f ms   peak RSS %s KiB\n' "$label" "$(( (end - start) / 1000 ))e-3" "$rss"
}

echo "repository: $files files x $kib KiB ($(du -sh "$tmp/src" --exclude=.git | cut -f1))"
measure "plan" "$bin" plan "$tmp/c.conf"
measure "run, cold (fetch)" "$bin" --platform nontee --event-log "$tmp/ev.jsonl" "$tmp/c.conf"
for n in 1 2 3; do
  measure "run, warm restart #$n" "$bin" --platform nontee --event-log "$tmp/ev.jsonl" "$tmp/c.conf"
done
