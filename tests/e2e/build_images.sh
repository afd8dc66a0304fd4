#!/usr/bin/env bash
# End-to-end tier, step 3: build test images WITHOUT a Docker engine (umoci) and push them
# (skopeo) to the registry that start.sh started, with its credentials, over plain HTTP on
# loopback.
#
#   tests/e2e/build_images.sh WORKDIR
#
# Images (OCI format, built reproducibly: fixed timestamps, so the same inputs give the same
# digests on every run):
#   e2e/marker:single  one linux/amd64 image manifest
#   e2e/marker:multi   an OCI image index: linux/amd64 (runnable) + linux/arm64 (a dummy
#                      layer: never run)
#   e2e/marker:other   another linux/amd64 image (a second digest, e.g. for "approved list
#                      updated" or "digest not approved" tests)
#   e2e/public:single  the same bytes as e2e/marker:single in a repository anonymous clients
#                      may pull (start.sh's E2E_ANON_PULL, default e2e/public)
#   e2e/marker:multi-docker  the multi image converted to Docker schema 2 + manifest list, for
#                      the Accept-header rewrite check (only if skopeo can convert; see
#                      MULTI_DOCKER_* below, empty otherwise)
#
# The runnable images hold the static /bin/busybox (package busybox-static), applet links and
# /marker, the entrypoint (`/bin/sh /marker`, no default cmd). /marker prints
#   E2E-MARKER <id>            id: single-amd64 | multi-amd64 | other-amd64
#   E2E-ARGS <args>            only if arguments (compose `command:`) were given
#   E2E-MESSAGE <value>        only if env E2E_MESSAGE is set
# then, if env E2E_SLEEP=N is set, keeps running (`sleep N`), else exits with env E2E_EXIT
# (default 0).
#
# Every digest is read back from the registry (exact manifest bytes fetched with a token and
# all four Accept types, sha256 computed here, cross-checked against skopeo inspect --raw and
# Docker-Content-Digest) and written to WORKDIR/images.env (KEY=VALUE, no quotes):
#   IMAGE_REPO PUBLIC_REPO
#   SINGLE_REF SINGLE_DIGEST SINGLE_CONFIG_DIGEST SINGLE_MARKER
#   MULTI_REF MULTI_INDEX_DIGEST MULTI_AMD64_DIGEST MULTI_AMD64_CONFIG_DIGEST MULTI_AMD64_MARKER
#   MULTI_ARM64_DIGEST MULTI_ARM64_CONFIG_DIGEST
#   OTHER_REF OTHER_DIGEST OTHER_CONFIG_DIGEST OTHER_MARKER
#   PUBLIC_SINGLE_REF PUBLIC_SINGLE_DIGEST
#   MULTI_DOCKER_REF MULTI_DOCKER_LIST_DIGEST MULTI_DOCKER_AMD64_DIGEST
#   OCI_INDEX_MEDIA_TYPE OCI_MANIFEST_MEDIA_TYPE
# (*_REF are tag references REGISTRY/repo:tag; *_MARKER the id printed after E2E-MARKER.)
set -euo pipefail

W=${1:?usage: build_images.sh WORKDIR (from start.sh)}
W=$(cd "$W" && pwd)
[ -f "$W/env" ] || { echo "build_images.sh: $W/env missing: run start.sh first" >&2; exit 2; }
set -a
# shellcheck disable=SC1091
. "$W/env"
set +a

EPOCH=${E2E_SOURCE_DATE_EPOCH:-1700000000}
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
OUT="$W/images"
L="$OUT/layout"
LOG="$OUT/build.log"
rm -rf "$OUT"
mkdir -p "$OUT"
: >"$LOG"

OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
DOCKER_V2=application/vnd.docker.distribution.manifest.v2+json
ALL_ACCEPT="$OCI_INDEX, $OCI_MANIFEST, $DOCKER_LIST, $DOCKER_V2"

fail() {
  echo "build_images.sh: $*" >&2
  tail -n 40 "$LOG" >&2
  exit 1
}
run() { "$@" >>"$LOG" 2>&1 || fail "command failed: $*"; }

# --- build with umoci -----------------------------------------------------------------------
run umoci init --layout "$L"

APPLETS="sh echo sleep cat ls env true false printf test id hostname uname ps"

# build_image TAG ARCH MARKER_ID RUNNABLE(1|0)
build_image() {
  local tag=$1 arch=$2 id=$3 runnable=$4 b="$OUT/bundle-$1"
  run umoci new --image "$L:$tag"
  run umoci unpack --image "$L:$tag" "$b"
  local r="$b/rootfs"
  mkdir -p "$r/bin" "$r/etc" "$r/tmp"
  if [ "$runnable" = 1 ]; then
    install -m 0755 /bin/busybox "$r/bin/busybox"
    for a in $APPLETS; do ln -s busybox "$r/bin/$a"; done
  else
    printf 'dummy %s layer: never run by the e2e tests\n' "$arch" >"$r/ARM64-DUMMY"
  fi
  cat >"$r/marker" <<EOF
#!/bin/sh
echo "E2E-MARKER $id"
if [ \$# -gt 0 ]; then echo "E2E-ARGS \$*"; fi
if [ -n "\${E2E_MESSAGE:-}" ]; then echo "E2E-MESSAGE \$E2E_MESSAGE"; fi
if [ -n "\${E2E_SLEEP:-}" ]; then exec sleep "\$E2E_SLEEP"; fi
exit "\${E2E_EXIT:-0}"
EOF
  chmod 0755 "$r/marker"
  printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  chmod 1777 "$r/tmp"
  # Reproducible layer: fixed mtimes everywhere.
  find "$r" -exec touch -h -d "@$EPOCH" {} +
  run umoci repack --image "$L:$tag" --history.created "$CREATED" \
    --history.created_by "e2e build_images.sh $id" "$b"
  run umoci config --image "$L:$tag" --no-history --created "$CREATED" \
    --os linux --architecture "$arch" \
    --config.entrypoint /bin/sh --config.entrypoint /marker --clear config.cmd \
    --config.env PATH=/bin --config.workingdir / \
    --config.label "org.opencontainers.image.title=e2e-marker-$id"
  rm -rf "$b"
}

build_image single-amd64 amd64 single-amd64 1
build_image multi-amd64 amd64 multi-amd64 1
build_image multi-arm64 arm64 multi-arm64 0
build_image other-amd64 amd64 other-amd64 1

# Hand-made OCI index over the two multi-* manifests, added to the layout as tag "multi".
python3 - "$L" <<'PY' >>"$LOG" 2>&1 || fail "writing the OCI index failed"
import hashlib, json, os, sys
L = sys.argv[1]
idx_path = os.path.join(L, "index.json")
idx = json.load(open(idx_path))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
def desc(tag, arch):
    m = by_tag[tag]
    return {"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
            "platform": {"architecture": arch, "os": "linux"}}
index = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [desc("multi-amd64", "amd64"), desc("multi-arm64", "arm64")],
}
body = json.dumps(index, indent=2, sort_keys=True).encode()
h = hashlib.sha256(body).hexdigest()
with open(os.path.join(L, "blobs", "sha256", h), "wb") as f:
    f.write(body)
idx["manifests"] = [m for m in idx["manifests"]
                    if m["annotations"]["org.opencontainers.image.ref.name"] != "multi"]
idx["manifests"].append({"mediaType": index["mediaType"], "digest": "sha256:" + h,
                         "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
tmp = idx_path + ".tmp"
json.dump(idx, open(tmp, "w"))
os.replace(tmp, idx_path)
print("local index sha256:" + h)
PY

# --- push with skopeo -----------------------------------------------------------------------
CREDS="$REGISTRY_USER:$REGISTRY_PASSWORD"
push() { # SRC_TAG DEST_REPO:TAG [extra skopeo args]
  local src=$1 dst=$2; shift 2
  run timeout 120 skopeo copy --quiet --dest-creds "$CREDS" --dest-tls-verify=false "$@" \
    "oci:$L:$src" "docker://$REGISTRY/$dst"
}
push single-amd64 e2e/marker:single --preserve-digests
push multi e2e/marker:multi --all --preserve-digests
push other-amd64 e2e/marker:other --preserve-digests
push single-amd64 e2e/public:single --preserve-digests
# Docker-format copy of the multi image (schema 2 manifests + manifest list), if skopeo can.
MULTI_DOCKER_OK=""
if timeout 120 skopeo copy --quiet --dest-creds "$CREDS" --dest-tls-verify=false --all --format v2s2 \
  "oci:$L:multi" "docker://$REGISTRY/e2e/marker:multi-docker" >>"$LOG" 2>&1; then
  MULTI_DOCKER_OK=1
else
  echo "(skopeo could not convert the index to a Docker manifest list; MULTI_DOCKER_* left empty)" >>"$LOG"
fi

# --- read everything back from the registry -------------------------------------------------
token() { # REPO -> bearer token for pull
  curl -fsS -m 10 -u "$CREDS" "$TOKEN_REALM?service=$REGISTRY_SERVICE&scope=repository:$1:pull" |
    jq -er .token
}
# fetch_manifest REPO REF FILE -> prints sha256:<hex> of the exact body; checks the
# Docker-Content-Digest header agrees and, for a digest REF, that it matches.
fetch_manifest() {
  local repo=$1 ref=$2 file=$3 tok hdr dcd d
  tok=$(token "$repo") || fail "no token for $repo"
  hdr="$file.headers"
  curl -fsS -m 20 -D "$hdr" -o "$file" -H "Authorization: Bearer $tok" -H "Accept: $ALL_ACCEPT" \
    "$REGISTRY_URL/v2/$repo/manifests/$ref" || fail "GET manifest $repo:$ref failed"
  d="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  dcd=$(tr -d '\r' <"$hdr" | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}')
  [ "$dcd" = "$d" ] || fail "$repo:$ref: Docker-Content-Digest $dcd != sha256(body) $d"
  if [[ "$ref" == sha256:* ]] && [ "$ref" != "$d" ]; then fail "$repo@$ref: body hashes to $d"; fi
  echo "$d"
}
fetch_blob_check() { # REPO DIGEST FILE : fetch a blob and check its sha256
  local tok d
  tok=$(token "$1") || fail "no token for $1"
  curl -fsSL -m 20 -o "$3" -H "Authorization: Bearer $tok" "$REGISTRY_URL/v2/$1/blobs/$2" ||
    fail "GET blob $1@$2 failed"
  d="sha256:$(sha256sum "$3" | cut -d' ' -f1)"
  [ "$d" = "$2" ] || fail "blob $1@$2 hashes to $d"
}
skopeo_digest() { # REPO:TAG -> sha256 of skopeo inspect --raw
  echo "sha256:$(timeout 60 skopeo inspect --raw --creds "$CREDS" --tls-verify=false \
    "docker://$REGISTRY/$1" | sha256sum | cut -d' ' -f1)"
}
# Media type as served (Content-Type); a body mediaType field, where present, must agree. (umoci
# writes image manifests WITHOUT the optional mediaType field; the index made here has one.)
mt() {
  local ct body
  ct=$(tr -d '\r' <"$1.headers" | awk -F': ' 'tolower($1)=="content-type"{print $2}' | cut -d';' -f1)
  body=$(jq -r '.mediaType // empty' "$1")
  if [ -n "$body" ] && [ "$body" != "$ct" ]; then echo "mismatch:$ct/$body"; else echo "$ct"; fi
}
cfg_of() { jq -er .config.digest "$1"; }
# check_image REPO MANIFEST_FILE ARCH -> prints config digest after verifying the config blob
check_image() {
  local repo=$1 m=$2 arch=$3 c
  [ "$(mt "$m")" = "$OCI_MANIFEST" ] || fail "$m: mediaType $(mt "$m") != $OCI_MANIFEST"
  c=$(cfg_of "$m") || fail "$m: no config digest"
  fetch_blob_check "$repo" "$c" "$m.config"
  [ "$(jq -r .architecture "$m.config")/$(jq -r .os "$m.config")" = "$arch/linux" ] ||
    fail "$m: config says $(jq -r .architecture "$m.config"), want $arch"
  echo "$c"
}

D="$OUT/fetched"
mkdir -p "$D"
SINGLE_DIGEST=$(fetch_manifest e2e/marker single "$D/single.json")
SINGLE_CONFIG_DIGEST=$(check_image e2e/marker "$D/single.json" amd64)
OTHER_DIGEST=$(fetch_manifest e2e/marker other "$D/other.json")
OTHER_CONFIG_DIGEST=$(check_image e2e/marker "$D/other.json" amd64)
PUBLIC_SINGLE_DIGEST=$(fetch_manifest e2e/public single "$D/public-single.json")
[ "$PUBLIC_SINGLE_DIGEST" = "$SINGLE_DIGEST" ] || fail "e2e/public:single differs from e2e/marker:single"

MULTI_INDEX_DIGEST=$(fetch_manifest e2e/marker multi "$D/multi.json")
[ "$(mt "$D/multi.json")" = "$OCI_INDEX" ] || fail "multi: mediaType $(mt "$D/multi.json") is not $OCI_INDEX"
[ "$(jq -r '[.manifests[].platform | .os + "/" + .architecture] | sort | join(",")' "$D/multi.json")" = \
  "linux/amd64,linux/arm64" ] || fail "multi: index does not list exactly linux/amd64 and linux/arm64"
MULTI_AMD64_DIGEST=$(jq -er '.manifests[] | select(.platform.architecture=="amd64") | .digest' "$D/multi.json")
MULTI_ARM64_DIGEST=$(jq -er '.manifests[] | select(.platform.architecture=="arm64") | .digest' "$D/multi.json")
[ "$(fetch_manifest e2e/marker "$MULTI_AMD64_DIGEST" "$D/multi-amd64.json")" = "$MULTI_AMD64_DIGEST" ] || fail "amd64 digest"
[ "$(fetch_manifest e2e/marker "$MULTI_ARM64_DIGEST" "$D/multi-arm64.json")" = "$MULTI_ARM64_DIGEST" ] || fail "arm64 digest"
MULTI_AMD64_CONFIG_DIGEST=$(check_image e2e/marker "$D/multi-amd64.json" amd64)
MULTI_ARM64_CONFIG_DIGEST=$(check_image e2e/marker "$D/multi-arm64.json" arm64)

# Cross-check with skopeo's view of the same manifests.
for pair in "e2e/marker:single=$SINGLE_DIGEST" "e2e/marker:multi=$MULTI_INDEX_DIGEST" \
  "e2e/marker:other=$OTHER_DIGEST" "e2e/marker@$MULTI_AMD64_DIGEST=$MULTI_AMD64_DIGEST"; do
  s=$(skopeo_digest "${pair%%=*}")
  [ "$s" = "${pair#*=}" ] || fail "skopeo inspect --raw ${pair%%=*} gives $s, curl gave ${pair#*=}"
done

MULTI_DOCKER_LIST_DIGEST=""
MULTI_DOCKER_AMD64_DIGEST=""
if [ -n "$MULTI_DOCKER_OK" ]; then
  MULTI_DOCKER_LIST_DIGEST=$(fetch_manifest e2e/marker multi-docker "$D/multi-docker.json")
  if [ "$(mt "$D/multi-docker.json")" = "$DOCKER_LIST" ]; then
    MULTI_DOCKER_AMD64_DIGEST=$(jq -er '.manifests[] | select(.platform.architecture=="amd64") | .digest' "$D/multi-docker.json")
  else
    echo "multi-docker is $(mt "$D/multi-docker.json"), not a Docker manifest list" >>"$LOG"
    MULTI_DOCKER_LIST_DIGEST=""
  fi
fi

cat >"$W/images.env.tmp" <<EOF
IMAGE_REPO=$REGISTRY/e2e/marker
PUBLIC_REPO=$REGISTRY/e2e/public
SINGLE_REF=$REGISTRY/e2e/marker:single
SINGLE_DIGEST=$SINGLE_DIGEST
SINGLE_CONFIG_DIGEST=$SINGLE_CONFIG_DIGEST
SINGLE_MARKER=single-amd64
MULTI_REF=$REGISTRY/e2e/marker:multi
MULTI_INDEX_DIGEST=$MULTI_INDEX_DIGEST
MULTI_AMD64_DIGEST=$MULTI_AMD64_DIGEST
MULTI_AMD64_CONFIG_DIGEST=$MULTI_AMD64_CONFIG_DIGEST
MULTI_AMD64_MARKER=multi-amd64
MULTI_ARM64_DIGEST=$MULTI_ARM64_DIGEST
MULTI_ARM64_CONFIG_DIGEST=$MULTI_ARM64_CONFIG_DIGEST
OTHER_REF=$REGISTRY/e2e/marker:other
OTHER_DIGEST=$OTHER_DIGEST
OTHER_CONFIG_DIGEST=$OTHER_CONFIG_DIGEST
OTHER_MARKER=other-amd64
PUBLIC_SINGLE_REF=$REGISTRY/e2e/public:single
PUBLIC_SINGLE_DIGEST=$PUBLIC_SINGLE_DIGEST
MULTI_DOCKER_REF=${MULTI_DOCKER_LIST_DIGEST:+$REGISTRY/e2e/marker:multi-docker}
MULTI_DOCKER_LIST_DIGEST=$MULTI_DOCKER_LIST_DIGEST
MULTI_DOCKER_AMD64_DIGEST=$MULTI_DOCKER_AMD64_DIGEST
OCI_INDEX_MEDIA_TYPE=$OCI_INDEX
OCI_MANIFEST_MEDIA_TYPE=$OCI_MANIFEST
EOF
mv "$W/images.env.tmp" "$W/images.env"
cat "$W/images.env"
