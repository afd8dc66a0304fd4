#!/usr/bin/env bash
# End-to-end tier: stop what tests/e2e/start.sh WORKDIR started.
#
#   tests/e2e/stop.sh WORKDIR [--purge]
#
# Reads the pid files start.sh wrote (WORKDIR/{token,registry,docker}/pid), checks each pid
# still belongs to this WORKDIR (its command line names a path in it), sends SIGTERM, waits
# (bounded), then SIGKILL. dockerd gets up to 45 s to stop its containers and its own
# containerd; afterwards any process left whose command line names this dockerd's exec-root or
# data-root (containerd, shims) is killed by pid, and mounts under them are unmounted.
# --purge also deletes WORKDIR. Safe to run twice, and on a WORKDIR where start.sh failed.
set -uo pipefail

W=${1:?usage: stop.sh WORKDIR [--purge]}
purge=""
[ "${2:-}" = "--purge" ] && purge=1
[ -d "$W" ] || exit 0
W=$(cd "$W" && pwd)

XR=""
[ -f "$W/docker/exec-root" ] && XR=$(cat "$W/docker/exec-root")

cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null; }

# stop_pid PIDFILE MUST_CONTAIN SECONDS
stop_pid() {
  local f=$1 needle=$2 secs=$3 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || { rm -f "$f"; return 0; }
  if kill -0 "$pid" 2>/dev/null && [[ "$(cmdline "$pid")" == *"$needle"* ]]; then
    kill -TERM "$pid" 2>/dev/null
    local deadline=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

stop_pid "$W/docker/pid" "${XR:-$W/docker}" 45
stop_pid "$W/registry/pid" "$W/registry/config.yml" 10
stop_pid "$W/token/pid" "$W/token" 10

# Leftovers of this dockerd only (managed containerd, shims): matched by our private paths.
leftovers() {
  local p c
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    c=$(cmdline "$p") || continue
    if { [ -n "$XR" ] && [[ "$c" == *"$XR"* ]]; } || [[ "$c" == *"$W/docker/data"* ]]; then
      echo "$p"
    fi
  done
}
for _ in 1 2 3; do
  pids=$(leftovers)
  [ -z "$pids" ] && break
  for p in $pids; do kill -KILL "$p" 2>/dev/null; done
  sleep 0.5
done

# Mounts under our dirs (overlay layers, netns, shm), deepest first.
for root in "$W/docker" ${XR:+"$XR"}; do
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
done

if [ -n "$XR" ] && [[ "$XR" == /tmp/e2ex.* ]]; then rm -rf "$XR"; fi
if [ -n "$purge" ]; then rm -rf "$W"; fi
exit 0
