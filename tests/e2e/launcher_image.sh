#!/usr/bin/env bash
# End-to-end tier: the launcher image, built like docker/Dockerfile's runtime stage but from a
# local root file system, pushed into the e2e registry.
#
#   tests/e2e/launcher_image.sh WORKDIR BINARY        (WORKDIR from start.sh)
#
# 1. Debian 13: `debootstrap --variant=minbase trixie` from the machine's mirror
#    (trixie_mirrors.sh, the same discovery as setup.sh), then `apt-get install
#    --no-install-recommends` in a chroot of the package NAMES of docker/Dockerfile's
#    `apt-get install` line (the one source of truth), from trixie, trixie-updates and, where
#    the mirror's host has it, trixie-security. The mirror serves today's trixie, not the
#    Dockerfile's dated snapshot: one `note:` line per package whose installed version differs
#    from the pin (not a failure), or one line saying all match. `docker compose version` must
#    work in the chroot, as the Dockerfile checks. apt lists, caches and logs are removed.
#    The root file system is cached as a tarball under ${E2E_CACHE:-/var/cache/trusted-launcher-e2e}/launcher-rootfs/,
#    keyed by a hash of the pinned package list: a second run skips all of step 1.
# 2. BINARY, the launcher image's build (`--no-default-features`, as docker/build-binary.sh
#    makes it: no `verify` subcommand, none of DCAP's crates; a BINARY with `verify` is
#    refused), is added at /usr/local/bin/trusted-launcher and the tarball goes through
#    `docker import` with the Dockerfile's ENTRYPOINT (and debian's default PATH), is tagged
#    REGISTRY/e2e/trusted-launcher:e2e and pushed with REGISTRY_USER's credentials.
# 3. Writes WORKDIR/launcher-image.env: LAUNCHER_IMAGE=REGISTRY/e2e/trusted-launcher@sha256:...
#    (the digest from RepoDigests after the push).
#
# Prints only the version notes and the LAUNCHER_IMAGE line; the log is WORKDIR/launcher-image/build.log
# (its tail is printed on failure). Needs root. Every network step runs under `timeout`.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
W=${1:?usage: launcher_image.sh WORKDIR BINARY}
BIN=${2:?usage: launcher_image.sh WORKDIR BINARY}
W=$(cd "$W" && pwd)
[ -f "$W/env" ] || { echo "launcher_image.sh: $W/env missing: run start.sh first" >&2; exit 2; }
[ -x "$BIN" ] || { echo "launcher_image.sh: no executable at $BIN" >&2; exit 2; }
BIN=$(realpath "$BIN")
if "$BIN" verify --help >/dev/null 2>&1; then
  echo "launcher_image.sh: $BIN has the verify subcommand; the image ships the --no-default-features build" >&2
  exit 2
fi
set -a
# shellcheck disable=SC1091
. "$W/env"
set +a

E2E_CACHE=${E2E_CACHE:-/var/cache/trusted-launcher-e2e}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DOCKERFILE="$ROOT/docker/Dockerfile"
OUT="$W/launcher-image"
LOG="$OUT/build.log"
REPO="$REGISTRY/e2e/trusted-launcher"
rm -rf "$OUT" "$W/launcher-image.env"
mkdir -p "$OUT"
: >"$LOG"
rootfs=""

# Unmount anything left under the chroot (deepest first), then delete it without crossing
# into another file system: a bind-mounted /dev or /proc must never be deleted through.
drop_rootfs() {
  [ -n "$rootfs" ] && [ -d "$rootfs" ] || return 0
  awk -v r="$rootfs" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if awk -v r="$rootfs" 'index($5, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    echo "launcher_image.sh: still mounted under $rootfs; not deleting it" >&2
    return 0
  fi
  rm -rf --one-file-system "$rootfs"
  rootfs=""
}
cleanup() {
  local rc=$?
  drop_rootfs
  if [ $rc -ne 0 ]; then
    echo "launcher_image.sh FAILED (rc=$rc); tail of $LOG:" >&2
    tail -n 40 "$LOG" >&2
  fi
  exit $rc
}
trap cleanup EXIT
fail() { echo "launcher_image.sh: $*" >>"$LOG"; echo "launcher_image.sh: $*" >&2; exit 1; }
run() { "$@" >>"$LOG" 2>&1 || fail "command failed: $*"; }

# --- the package list: name=version words of the Dockerfile's `apt-get install` ---------------
# Continuation lines joined, comment lines dropped, split at `&&`, the words after
# `apt-get install` that are not options (as tests/examples.rs reads them).
pins=$(awk '
  /^[[:space:]]*#/ { next }
  {
    line = $0; more = sub(/\\[[:space:]]*$/, "", line); cur = cur " " line
    if (more) next
    n = split(cur, cmd, "&&")
    for (i = 1; i <= n; i++) {
      m = split(cmd[i], w, /[[:space:]]+/); on = 0
      for (j = 1; j <= m; j++) {
        if (on && w[j] != "" && w[j] !~ /^-/) print w[j]
        if (j > 1 && w[j - 1] == "apt-get" && w[j] == "install") on = 1
      }
    }
    cur = ""
  }' "$DOCKERFILE")
[ -n "$pins" ] || fail "no apt-get install packages found in $DOCKERFILE"
names=()
while read -r pin; do
  [[ "$pin" =~ ^[a-z0-9][a-z0-9+.-]+=[A-Za-z0-9.+:~-]+$ ]] || fail "not a name=version word: $pin"
  names+=("${pin%%=*}")
done <<<"$pins"

KEY=$(printf 'launcher-rootfs v1 trixie minbase amd64\n%s\n' "$(sort <<<"$pins")" | sha256sum | cut -c1-16)
CACHE_DIR="$E2E_CACHE/launcher-rootfs"
TARBALL="$CACHE_DIR/$KEY.tar"
VERSIONS="$CACHE_DIR/$KEY.versions"

# --- 1. the root file system (cached) ----------------------------------------------------------
if [ -s "$TARBALL" ] && [ -s "$VERSIONS" ]; then
  echo "root file system from cache: $TARBALL" >>"$LOG"
else
  command -v debootstrap >/dev/null 2>&1 || fail "debootstrap missing: run tests/e2e/setup.sh"
  [ -f "$KEYRING" ] || fail "$KEYRING missing: run tests/e2e/setup.sh"
  # shellcheck source=tests/e2e/trixie_mirrors.sh
  . "$HERE/trixie_mirrors.sh"
  mirror=""
  for m in $(trixie_mirrors); do
    if timeout 30 curl -fsS -m 25 -o /dev/null "$m/dists/trixie/Release" >>"$LOG" 2>&1; then
      mirror=$m
      break
    fi
    echo "no trixie at $m" >>"$LOG"
  done
  [ -n "$mirror" ] || fail "no mirror serves trixie (tried: $(trixie_mirrors | tr '\n' ' '))"
  mkdir -p "$CACHE_DIR"
  rootfs=$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")
  echo "debootstrap --variant=minbase trixie from $mirror" >>"$LOG"
  run timeout 900 debootstrap --variant=minbase --arch=amd64 --keyring="$KEYRING" \
    trixie "$rootfs" "$mirror"
  # debootstrap mounts /proc and /sys for its second stage and unmounts them when done.

  security="${mirror%/debian}/debian-security"
  {
    echo "deb $mirror trixie main"
    echo "deb $mirror trixie-updates main"
    if [ "$security" != "$mirror" ] &&
      timeout 30 curl -fsS -m 25 -o /dev/null "$security/dists/trixie-security/Release" 2>>"$LOG"; then
      echo "deb $security trixie-security main"
    fi
  } >"$rootfs/etc/apt/sources.list"
  cat "$rootfs/etc/apt/sources.list" >>"$LOG"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  # No package may start a service in the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  in_root=(chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
    DEBIAN_FRONTEND=noninteractive LC_ALL=C)
  run timeout 300 "${in_root[@]}" apt-get update -q
  # The Dockerfile's exact `name=version` words first, so its install line is shown to resolve
  # as a set; the mirror serves today's trixie, not the snapshot, so a moved version falls
  # back to the names (the version notes below then say what differs).
  mapfile -t exact <<<"$pins"
  if ! timeout 600 "${in_root[@]}" apt-get install -y -q --no-install-recommends "${exact[@]}" >>"$LOG" 2>&1; then
    echo "note: the Dockerfile's exact versions do not all install from $mirror; installing by name"
    run timeout 600 "${in_root[@]}" apt-get install -y -q --no-install-recommends "${names[@]}"
  fi
  run timeout 60 "${in_root[@]}" docker compose version
  for name in "${names[@]}"; do
    # shellcheck disable=SC2016 # ${Version} is dpkg-query's field, not the shell's
    printf '%s=%s\n' "$name" "$("${in_root[@]}" dpkg-query -W -f='${Version}' "$name")"
  done >"$rootfs/.versions"
  run "${in_root[@]}" apt-get clean
  rm -f "$rootfs/usr/sbin/policy-rc.d"
  : >"$rootfs/etc/resolv.conf"
  # As the Dockerfile's cleanup; /dev is the engine's (debootstrap may have made nodes there).
  rm -rf "${rootfs:?}"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs/var/log/apt" \
    "$rootfs/var/log/dpkg.log" "$rootfs/var/log/alternatives.log" "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/lib/dpkg/*-old "$rootfs/var/cache/ldconfig/aux-cache" "${rootfs:?}"/dev/*
  mv "$rootfs/.versions" "$VERSIONS.tmp"
  awk -v r="$rootfs" 'index($5, r "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo &&
    fail "something is still mounted under $rootfs"
  run tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv -f "$TARBALL.tmp" "$TARBALL"
  mv -f "$VERSIONS.tmp" "$VERSIONS"
  drop_rootfs
fi

# --- versions against the Dockerfile's pins (a note, not a failure) -----------------------------
differs=0
while read -r pin; do
  name=${pin%%=*}
  want=${pin#*=}
  got=$(awk -F= -v n="$name" '$1 == n { print substr($0, length(n) + 2) }' "$VERSIONS")
  if [ "$got" != "$want" ]; then
    echo "note: $name $got installed, docker/Dockerfile pins $want"
    differs=$((differs + 1))
  fi
done <<<"$pins"
[ "$differs" -eq 0 ] && echo "note: all ${#names[@]} packages at the docker/Dockerfile pins"

# --- 2. the image: rootfs + binary, docker import, push -----------------------------------------
run cp "$TARBALL" "$OUT/rootfs.tar"
mkdir -p "$OUT/stage/usr/local/bin"
install -m 0755 "$BIN" "$OUT/stage/usr/local/bin/trusted-launcher"
run tar --numeric-owner --owner=0 --group=0 -C "$OUT/stage" -rf "$OUT/rootfs.tar" ./usr/local/bin/trusted-launcher
run timeout 300 docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/trusted-launcher"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$OUT/rootfs.tar" "$REPO:e2e"
rm -f "$OUT/rootfs.tar"
printf '%s' "$REGISTRY_PASSWORD" |
  run timeout 60 docker login "$REGISTRY" --username "$REGISTRY_USER" --password-stdin
run timeout 300 docker push "$REPO:e2e"
digest=$(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$REPO:e2e" |
  awk -v r="$REPO@" 'index($0, r) == 1 { print substr($0, length(r) + 1); exit }')
[[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]] || fail "no RepoDigests entry for $REPO after the push"
echo "LAUNCHER_IMAGE=$REPO@$digest" >"$W/launcher-image.env"
echo "LAUNCHER_IMAGE=$REPO@$digest"
