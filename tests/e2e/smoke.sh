#!/usr/bin/env bash
# End-to-end tier: prove the environment with real tools (no launcher involved).
#
#   tests/e2e/smoke.sh [WORKDIR]     (default: a new mktemp dir, deleted on success)
#
# Runs setup.sh, start.sh, build_images.sh, then checks:
#   - token auth: anonymous manifest GET is 401 with a Bearer challenge naming TOKEN_REALM;
#     the token server refuses anonymous and wrong-password token requests (401); anonymous
#     pull of the public repository works; `docker pull` before login is refused
#   - `docker login` against the private dockerd; `docker pull REGISTRY/e2e/marker@SINGLE_DIGEST`;
#     `docker image inspect` shows that digest in RepoDigests and the config digest as .Id
#   - `docker run --rm --network host` prints the marker; E2E_EXIT reaches the exit code
#   - `docker compose version` is v2; a one-service compose file with
#     image: REGISTRY/e2e/marker@MULTI_INDEX_DIGEST run by `docker compose -p e2e up` prints
#     the amd64 marker
#   - Accept headers (DESIGN §6), observed on distribution 2.8.2:
#       all four types, OCI index by tag or digest   -> 200, exact bytes, sha256 = MULTI_INDEX_DIGEST
#       only Docker v2 type (or none), OCI index     -> 404 MANIFEST_UNKNOWN "OCI index found, but
#                                                       accept header does not support OCI indexes"
#       only Docker v2 type, OCI image manifest      -> 404 MANIFEST_UNKNOWN ("OCI manifest found...")
#       only Docker v2 type, Docker manifest list
#           by tag                                   -> 200, rewritten to the linux/amd64 manifest
#                                                       (a different digest)
#           by digest                                -> 200, the list itself, unchanged
# then stop.sh. Prints one summary line ("e2e smoke: N passed, 0 failed ...") unless something
# fails; E2E_VERBOSE=1 prints every check. E2E_KEEP=1 keeps the work dir and services running.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
T0=$SECONDS
passed=0
VERBOSE=${E2E_VERBOSE:-}

own_workdir=""
if [ $# -ge 1 ] && [ -n "$1" ]; then
  W=$1
else
  W=$(mktemp -d /tmp/e2e.XXXXXX)
  own_workdir=1
fi

finish() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    echo "e2e smoke: FAILED after $((SECONDS - T0))s; work dir kept: $W" >&2
    for f in "$W/token/server.log" "$W/registry/registry.log" "$W/docker/dockerd.log"; do
      [ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
    done
    [ -d "$W" ] && "$HERE/stop.sh" "$W" >/dev/null 2>&1
  elif [ -z "${E2E_KEEP:-}" ]; then
    if [ -n "$own_workdir" ]; then "$HERE/stop.sh" "$W" --purge; else "$HERE/stop.sh" "$W"; fi
  fi
  exit $rc
}
trap finish EXIT

ok() {
  passed=$((passed + 1))
  [ -n "$VERBOSE" ] && echo "ok $passed - $*"
  return 0
}
die() {
  echo "not ok - $*" >&2
  exit 1
}

timeout 1200 "$HERE/setup.sh"
t_setup=$((SECONDS - T0))
timeout 300 "$HERE/start.sh" "$W" >/dev/null
timeout 300 "$HERE/build_images.sh" "$W" >/dev/null
t_ready=$((SECONDS - T0))

set -a
# shellcheck disable=SC1091
. "$W/env"
# shellcheck disable=SC1091
. "$W/images.env"
set +a

OI=application/vnd.oci.image.index.v1+json
OM=application/vnd.oci.image.manifest.v1+json
DL=application/vnd.docker.distribution.manifest.list.v2+json
D2=application/vnd.docker.distribution.manifest.v2+json
ALL="$OI, $OM, $DL, $D2"
CREDS="$REGISTRY_USER:$REGISTRY_PASSWORD"
TMP="$W/smoke"
mkdir -p "$TMP"

# get REPO REF ACCEPT [TOKEN] -> sets CODE, BODY (file), CT, SHA
get() {
  local repo=$1 ref=$2 accept=$3 tok=${4:-}
  local args=(-s -m 20 -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}')
  [ -n "$accept" ] && args+=(-H "Accept: $accept")
  [ -n "$tok" ] && args+=(-H "Authorization: Bearer $tok")
  CODE=$(curl "${args[@]}" "$REGISTRY_URL/v2/$repo/manifests/$ref") || CODE=000
  BODY="$TMP/body"
  CT=$(tr -d '\r' <"$TMP/hdr" | awk -F': ' 'tolower($1)=="content-type"{print $2}' | cut -d';' -f1)
  SHA="sha256:$(sha256sum "$BODY" | cut -d' ' -f1)"
}
token() { # REPO [CREDS] -> token on stdout; HTTP code in $TMP/tcode
  local args=(-s -m 10 -o "$TMP/tok" -w '%{http_code}')
  [ -n "${2:-}" ] && args+=(-u "$2")
  curl "${args[@]}" "$TOKEN_REALM?service=$REGISTRY_SERVICE&scope=repository:$1:pull" >"$TMP/tcode" || true
  [ "$(cat "$TMP/tcode")" = 200 ] && jq -r .token "$TMP/tok"
  return 0
}

# --- token auth -----------------------------------------------------------------------------
get e2e/marker "$SINGLE_DIGEST" "$ALL"
[ "$CODE" = 401 ] || die "anonymous manifest GET: want 401, got $CODE"
grep -qi "^www-authenticate: Bearer realm=\"$TOKEN_REALM\",service=\"$REGISTRY_SERVICE\"" "$TMP/hdr" ||
  die "401 without the expected Bearer challenge: $(grep -i www-auth "$TMP/hdr")"
ok "anonymous manifest GET -> 401 with Bearer realm=$TOKEN_REALM"

token e2e/marker >/dev/null
[ "$(cat "$TMP/tcode")" = 401 ] || die "anonymous token for e2e/marker: want 401, got $(cat "$TMP/tcode")"
token e2e/marker "$REGISTRY_USER:wrong-password" >/dev/null
[ "$(cat "$TMP/tcode")" = 401 ] || die "wrong-password token: want 401, got $(cat "$TMP/tcode")"
ok "token server: anonymous and wrong password -> 401"

tok=$(token e2e/public)
[ -n "$tok" ] || die "anonymous token for e2e/public refused ($(cat "$TMP/tcode"))"
get e2e/public "$PUBLIC_SINGLE_DIGEST" "$ALL" "$tok"
[ "$CODE" = 200 ] && [ "$SHA" = "$PUBLIC_SINGLE_DIGEST" ] || die "anonymous pull of e2e/public: $CODE $SHA"
ok "anonymous pull of the public repository works"

if out=$(timeout 60 docker pull "$IMAGE_REPO@$SINGLE_DIGEST" 2>&1); then
  die "docker pull before login succeeded"
fi
grep -qiE 'unauthorized|authentication required|denied' <<<"$out" || die "docker pull before login: $out"
ok "docker pull before login refused: $(tail -n1 <<<"$out")"

# --- docker login / pull / inspect / run ----------------------------------------------------
printf '%s' "$REGISTRY_PASSWORD" | timeout 30 docker login -u "$REGISTRY_USER" --password-stdin "$REGISTRY" \
  >"$TMP/login" 2>&1 || die "docker login: $(cat "$TMP/login")"
grep -q 'Login Succeeded' "$TMP/login" || die "docker login: $(cat "$TMP/login")"
ok "docker login"

timeout 120 docker pull -q "$IMAGE_REPO@$SINGLE_DIGEST" >/dev/null || die "docker pull by digest"
rd=$(docker image inspect --format '{{json .RepoDigests}}' "$IMAGE_REPO@$SINGLE_DIGEST")
grep -qF "\"$IMAGE_REPO@$SINGLE_DIGEST\"" <<<"$rd" || die "RepoDigests $rd lacks $SINGLE_DIGEST"
id=$(docker image inspect --format '{{.Id}}' "$IMAGE_REPO@$SINGLE_DIGEST")
[ "$id" = "$SINGLE_CONFIG_DIGEST" ] || die "image Id $id != config digest $SINGLE_CONFIG_DIGEST"
ok "docker pull @SINGLE_DIGEST; RepoDigests has it; Id = SINGLE_CONFIG_DIGEST"

out=$(timeout 120 docker run --rm --network host "$IMAGE_REPO@$SINGLE_DIGEST") || die "docker run: $out"
grep -qx "E2E-MARKER $SINGLE_MARKER" <<<"$out" || die "docker run printed: $out"
ok "docker run prints E2E-MARKER $SINGLE_MARKER"

set +e
timeout 120 docker run --rm --network host -e E2E_EXIT=3 "$IMAGE_REPO@$SINGLE_DIGEST" >/dev/null
rc=$?
set -e
[ $rc = 3 ] || die "E2E_EXIT=3 gave exit code $rc"
ok "E2E_EXIT reaches the container exit code"

# --- compose v2 -----------------------------------------------------------------------------
cv=$(timeout 30 docker compose version) || die "docker compose version failed"
grep -Eq 'version v?2\.' <<<"$cv" || die "docker compose version: $cv"
ok "docker compose version: $cv"

mkdir -p "$TMP/compose"
cat >"$TMP/compose/compose.yaml" <<EOF
services:
  marker:
    image: $IMAGE_REPO@$MULTI_INDEX_DIGEST
    network_mode: host
EOF
out=$(cd "$TMP/compose" && timeout 180 docker compose -p e2e up --abort-on-container-exit 2>&1) ||
  die "docker compose up: $out"
grep -q "E2E-MARKER $MULTI_AMD64_MARKER" <<<"$out" || die "compose output lacks the marker: $out"
(cd "$TMP/compose" && timeout 60 docker compose -p e2e down >/dev/null 2>&1) || die "docker compose down"
ok "docker compose -p e2e up with image @MULTI_INDEX_DIGEST prints E2E-MARKER $MULTI_AMD64_MARKER"

# --- Accept headers (DESIGN §6) ---------------------------------------------------------------
tok=$(token e2e/marker "$CREDS")
[ -n "$tok" ] || die "token for e2e/marker refused"
for ref in multi "$MULTI_INDEX_DIGEST"; do
  get e2e/marker "$ref" "$ALL" "$tok"
  [ "$CODE" = 200 ] && [ "$CT" = "$OI" ] && [ "$SHA" = "$MULTI_INDEX_DIGEST" ] ||
    die "index $ref with all four Accept types: $CODE $CT $SHA"
  [ "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(",")' "$BODY")" = \
    "linux/amd64,linux/arm64" ] || die "index does not list linux/amd64 and linux/arm64"
done
ok "all four Accept types: OCI index bytes hash to MULTI_INDEX_DIGEST (tag and digest)"

for ref in multi "$MULTI_INDEX_DIGEST"; do
  get e2e/marker "$ref" "$D2" "$tok"
  [ "$CODE" = 404 ] && grep -q MANIFEST_UNKNOWN "$BODY" || die "index $ref, Docker v2 Accept only: $CODE $(cat "$BODY")"
done
get e2e/marker "$SINGLE_DIGEST" "$D2" "$tok"
[ "$CODE" = 404 ] && grep -q MANIFEST_UNKNOWN "$BODY" || die "OCI manifest, Docker v2 Accept only: $CODE $(cat "$BODY")"
ok "Docker v2 Accept only: OCI index and OCI manifest -> 404 MANIFEST_UNKNOWN"

if [ -n "${MULTI_DOCKER_LIST_DIGEST:-}" ]; then
  get e2e/marker multi-docker "$D2" "$tok"
  [ "$CODE" = 200 ] && [ "$CT" = "$D2" ] && [ "$SHA" = "$MULTI_DOCKER_AMD64_DIGEST" ] &&
    [ "$SHA" != "$MULTI_DOCKER_LIST_DIGEST" ] || die "manifest list by tag, v2 Accept only: $CODE $CT $SHA"
  get e2e/marker "$MULTI_DOCKER_LIST_DIGEST" "$D2" "$tok"
  [ "$CODE" = 200 ] && [ "$SHA" = "$MULTI_DOCKER_LIST_DIGEST" ] || die "manifest list by digest, v2 Accept only: $CODE $SHA"
  ok "Docker v2 Accept only: manifest list by tag rewritten to the amd64 manifest; by digest unchanged"
fi

t_total=$((SECONDS - T0))
du_w=$(du -sh "$W" 2>/dev/null | cut -f1)
echo "e2e smoke: $passed passed, 0 failed (setup ${t_setup}s, ready ${t_ready}s, total ${t_total}s, work dir $du_w)"
