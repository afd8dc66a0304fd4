#!/usr/bin/env bash
# End-to-end tier: sign an image in the local registry as `cosign sign --key KEY
# --tlog-upload=false REPO@DIGEST` does, with openssl and the registry API (no cosign here).
#
#   tests/e2e/sign_image.sh WORKDIR REPO DIGEST KEY.pem
#
# REPO is the repository inside the registry (e2e/marker), DIGEST the signed manifest's
# sha256:<hex>, KEY.pem an EC P-256 private key (openssl ecparam -genkey). What cosign makes:
# - the payload (sigstore/sigstore pkg/signature/payload/payload.go, Cosign.MarshalJSON: Go's
#   compact json.Marshal in struct order, no annotations -> "optional":null):
#   {"critical":{"identity":{"docker-reference":"REGISTRY/REPO"},"image":{"docker-manifest-digest":
#   "DIGEST"},"type":"cosign container image signature"},"optional":null}
# - the signature: ECDSA P-256 over SHA-256 of the payload bytes, ASN.1 DER, base64 in the
#   layer annotation dev.cosignproject.cosign/signature (sigstore/cosign specs/SIGNATURE_SPEC.md);
# - an OCI image manifest tagged sha256-<hex>.sig in the same repository, one layer: the payload
#   blob, media type application/vnd.dev.cosign.simplesigning.v1+json (SIGNATURE_SPEC.md,
#   "Tag-based Discovery"), pushed with the distribution API: POST+PUT blob uploads, PUT manifest
#   (distribution-spec "Pushing blobs" / "Pushing Manifests"), with a pull,push token from the
#   registry's token server.
# Prints the signature tag on success.
set -euo pipefail

W=${1:?usage: sign_image.sh WORKDIR REPO DIGEST KEY.pem}
REPO=${2:?repository}
DIGEST=${3:?digest}
KEY=${4:?private key}
set -a
# shellcheck disable=SC1091
. "$W/env"
set +a
[[ "$DIGEST" =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "sign_image.sh: bad digest $DIGEST" >&2; exit 2; }

D=$(mktemp -d "$W/sign.XXXXXX")
CREDS="$REGISTRY_USER:$REGISTRY_PASSWORD"
TOKEN=$(curl -fsS -m 10 -u "$CREDS" \
  "$TOKEN_REALM?service=$REGISTRY_SERVICE&scope=repository:$REPO:pull,push" | jq -er .token)

printf '{"critical":{"identity":{"docker-reference":"%s"},"image":{"docker-manifest-digest":"%s"},"type":"cosign container image signature"},"optional":null}' \
  "$REGISTRY/$REPO" "$DIGEST" >"$D/payload.json"
openssl dgst -sha256 -sign "$KEY" -out "$D/signature.der" "$D/payload.json"
SIGNATURE=$(base64 -w0 "$D/signature.der")
# The .sig manifest's config: an empty image config, as cosign's (its content is not read).
printf '{"architecture":"","config":{},"os":"","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$(sha256sum "$D/payload.json" | cut -d' ' -f1)" >"$D/config.json"

push_blob() { # FILE -> prints sha256:<hex>
  local digest location
  digest="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
  location=$(curl -fsS -m 20 -o /dev/null -D - -X POST -H "Authorization: Bearer $TOKEN" \
    "$REGISTRY_URL/v2/$REPO/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  [ -n "$location" ] || { echo "sign_image.sh: no upload location" >&2; return 1; }
  case "$location" in http*) ;; *) location="$REGISTRY_URL$location" ;; esac
  case "$location" in *\?*) location="$location&digest=$digest" ;; *) location="$location?digest=$digest" ;; esac
  curl -fsS -m 20 -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: application/octet-stream" --data-binary "@$1" "$location"
  echo "$digest"
}
PAYLOAD_DIGEST=$(push_blob "$D/payload.json")
CONFIG_DIGEST=$(push_blob "$D/config.json")
jq -cn --arg pd "$PAYLOAD_DIGEST" --argjson ps "$(stat -c %s "$D/payload.json")" \
  --arg cd "$CONFIG_DIGEST" --argjson cs "$(stat -c %s "$D/config.json")" --arg sig "$SIGNATURE" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", size: $cs, digest: $cd},
    layers: [{mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", size: $ps,
              digest: $pd, annotations: {"dev.cosignproject.cosign/signature": $sig}}]}' \
  >"$D/manifest.json"
TAG="${DIGEST/:/-}.sig"
curl -fsS -m 20 -o /dev/null -X PUT -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$D/manifest.json" \
  "$REGISTRY_URL/v2/$REPO/manifests/$TAG"
rm -rf "$D"
echo "$TAG"
