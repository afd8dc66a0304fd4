#!/usr/bin/env bash
# End-to-end tier, step 1: install the real components (DESIGN §9) from Debian packages.
#
#   tests/e2e/setup.sh
#
# Installs, only where missing: docker.io (dockerd), docker-registry (CNCF distribution 2.8),
# skopeo, umoci, busybox-static, openssl, python3, jq, curl, debootstrap,
# debian-archive-keyring, python3-yaml. Then fetches the Docker Compose
# v2 CLI plugin from Debian 13 (trixie)'s `docker-compose` package with a PRIVATE apt state
# (its own source list, lists dir and cache; the system's apt sources and lists are not
# touched), extracts it with `dpkg-deb -x` and keeps it at
#   $E2E_CACHE/cli-plugins/docker-compose     (E2E_CACHE default /var/cache/trusted-launcher-e2e)
# start.sh links it into each work dir's $DOCKER_CONFIG/cli-plugins/, and this script into
# /usr/local/lib/docker/cli-plugins/ unless a system plugin dir already holds one: the
# launcher runs docker with its own empty DOCKER_CONFIG, so it finds compose only in the
# system dirs (docker/cli cli-plugins/manager/manager_unix.go, defaultSystemPluginDirs).
#
# Idempotent and quiet: prints nothing when all is there; on failure prints the log.
# Needs root (apt-get). Bounded: every network step runs under `timeout`.
set -euo pipefail

E2E_CACHE=${E2E_CACHE:-/var/cache/trusted-launcher-e2e}
PLUGIN="$E2E_CACHE/cli-plugins/docker-compose"
LOG=$(mktemp /tmp/e2e-setup.XXXXXX.log)
tmp_policy=""
apt_tmp=""

cleanup() {
  local rc=$?
  [ -n "$tmp_policy" ] && rm -f /usr/sbin/policy-rc.d
  [ -n "$apt_tmp" ] && rm -rf "$apt_tmp"
  if [ $rc -ne 0 ]; then
    echo "e2e setup FAILED (rc=$rc); log $LOG:" >&2
    tail -n 60 "$LOG" >&2
  else
    rm -f "$LOG"
  fi
  exit $rc
}
trap cleanup EXIT

die() { echo "e2e setup: $*" >>"$LOG"; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root"

export DEBIAN_FRONTEND=noninteractive

# --- 1. Debian packages (bookworm, the system's own sources) -------------------------------
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
pkg_installed busybox-static || need+=(busybox-static) # the image needs the STATIC one
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
# launcher_image.sh: a trixie root file system (debootstrap, the archive keyring); container.sh:
# the compose transform runs on the system python3 with Debian's PyYAML.
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
pkg_installed python3-yaml || need+=(python3-yaml)
# docker.io ships /usr/bin/docker; a docker CLI elsewhere on PATH (e.g. /usr/local/bin) is fine.
command -v docker >/dev/null 2>&1 || { [[ " ${need[*]} " == *" docker.io "* ]] || need+=(docker.io); }

if [ ${#need[@]} -gt 0 ]; then
  # Package maintainer scripts must not start services (dockerd with default iptables and
  # bridge, a registry on :5000): a policy-rc.d that denies, only for this install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    tmp_policy=1
  fi
  echo "apt-get install ${need[*]}" >>"$LOG"
  timeout 300 apt-get update -qq >>"$LOG" 2>&1 || die "apt-get update failed"
  timeout 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$LOG" 2>&1 ||
    die "apt-get install failed"
fi

for c in dockerd docker-registry skopeo umoci openssl jq curl docker; do
  command -v "$c" >/dev/null 2>&1 || die "missing after install: $c"
done
[ -x /bin/busybox ] || die "missing /bin/busybox"

# --- 2. Compose v2 plugin from trixie, private apt state (DESIGN §9) ------------------------
plugin_ok() { [ -x "$PLUGIN" ] && "$PLUGIN" version 2>/dev/null | grep -Eq 'version v?2\.'; }

if ! plugin_ok; then
  # The machine's own Debian mirror, deb.debian.org as a fallback (trixie_mirrors.sh).
  # shellcheck source=tests/e2e/trixie_mirrors.sh
  . "$(dirname "$0")/trixie_mirrors.sh"
  apt_tmp=$(mktemp -d /tmp/e2e-apt.XXXXXX)
  mkdir -p "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial" "$apt_tmp/parts" \
    "$apt_tmp/prefs" "$apt_tmp/dl" "$apt_tmp/x"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  apt_opts=(
    -o "Dir::Etc::SourceList=$apt_tmp/sources.list"
    -o "Dir::Etc::SourceParts=$apt_tmp/parts"
    -o "Dir::Etc::Preferences=$apt_tmp/prefs/none"
    -o "Dir::Etc::PreferencesParts=$apt_tmp/prefs"
    -o "Dir::State::Lists=$apt_tmp/lists"
    -o "Dir::Cache=$apt_tmp/cache"
    -o "Acquire::Languages=none"
    -o "APT::Sandbox::User=root"
  )
  deb=""
  for mirror in $(trixie_mirrors); do
    echo "compose plugin: trying trixie from $mirror" >>"$LOG"
    echo "deb [signed-by=$keyring] $mirror trixie main" >"$apt_tmp/sources.list"
    rm -rf "$apt_tmp/lists" && mkdir -p "$apt_tmp/lists/partial"
    timeout 300 apt-get "${apt_opts[@]}" update -qq >>"$LOG" 2>&1 || continue
    (cd "$apt_tmp/dl" && timeout 300 apt-get "${apt_opts[@]}" download docker-compose) >>"$LOG" 2>&1 || continue
    deb=$(ls "$apt_tmp"/dl/docker-compose_*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] && break
  done
  [ -n "$deb" ] || die "could not download docker-compose from trixie"
  echo "downloaded $(basename "$deb")" >>"$LOG"
  dpkg-deb -x "$deb" "$apt_tmp/x"
  src="$apt_tmp/x/usr/libexec/docker/cli-plugins/docker-compose"
  [ -x "$src" ] || src=$(find "$apt_tmp/x" -path '*cli-plugins/docker-compose' -type f | head -n1)
  [ -x "$src" ] || die "plugin not found in $(basename "$deb"): $(cd "$apt_tmp/x" && find . -type f | head)"
  mkdir -p "$E2E_CACHE/cli-plugins"
  install -m 0755 "$src" "$PLUGIN.tmp"
  mv -f "$PLUGIN.tmp" "$PLUGIN"
  plugin_ok || die "compose plugin does not run: $("$PLUGIN" version 2>&1 | head -n3)"
fi

# The system plugin dir the launcher's docker calls search (their DOCKER_CONFIG is empty).
system_plugin=""
for dir in /usr/local/lib/docker/cli-plugins /usr/local/libexec/docker/cli-plugins \
  /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins; do
  [ -x "$dir/docker-compose" ] && { system_plugin="$dir/docker-compose"; break; }
done
if [ -z "$system_plugin" ]; then
  mkdir -p /usr/local/lib/docker/cli-plugins
  ln -sf "$PLUGIN" /usr/local/lib/docker/cli-plugins/docker-compose
fi
