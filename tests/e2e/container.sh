#!/usr/bin/env bash
# End-to-end tier, the launcher AS A CONTAINER, the way dstack runs it: the real example apps
# (examples/dstack/{image-mode,git-mode}/docker-compose.yaml) brought up with `docker compose`
# on the private dockerd, the launcher image built by launcher_image.sh (Debian trixie + the
# Dockerfile's packages + the static binary) pulled from the e2e registry by digest, the docker
# socket mounted, the workload started as a SIBLING container.
#
#   tests/e2e/container.sh [path/to/static/trusted-launcher]
#
# Only environment-specific parts of the examples change (compose_transform.py): the launcher
# image, host networking (dockerd runs with --bridge=none), the dstack socket's host path (a
# fake agent with dstack's wire format: the launcher runs in tee mode and measures into its
# RTMR3), the docker socket's host path, and in the inline config only what must point at
# local things (registry, digests, credentials, the repository, a compose template with host
# networking). Every example must also pass `docker compose config` as it ships.
# One line per case, then `e2e container: N passed, M failed`; exit 1 on any failure.
# Everything is stopped on exit (E2E_KEEP=1 leaves it running, prints WORKDIR).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
BIN=${1:-target/x86_64-unknown-linux-gnu/release/trusted-launcher}
[ -x "$BIN" ] || { echo "no launcher binary at $BIN (static release build with --no-default-features first)" >&2; exit 2; }
BIN=$(realpath "$BIN")
PY=/usr/bin/python3 # Debian's python3 with python3-yaml (setup.sh)
T0=$SECONDS
cargo build --locked --quiet --example fake-dstack-agent || exit 1
AGENT=$ROOT/target/debug/examples/fake-dstack-agent

tests/e2e/setup.sh || exit 1
W=$(tests/e2e/start.sh) || exit 1
finish() {
  for a in "$W"/case-*/agent; do [ -d "$a" ] && touch "$a/stop"; done
  if [ -n "${E2E_KEEP:-}" ]; then echo "kept: $W" >&2; else tests/e2e/stop.sh "$W" --purge >/dev/null 2>&1; fi
}
trap finish EXIT
tests/e2e/build_images.sh "$W" >/dev/null || { echo "building test images failed" >&2; exit 1; }
T1=$SECONDS
tests/e2e/launcher_image.sh "$W" "$BIN" | grep -v '^LAUNCHER_IMAGE='
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "building the launcher image failed" >&2; exit 1; }
T2=$SECONDS
set -a
# shellcheck disable=SC1091
. "$W/env"; . "$W/images.env"; . "$W/launcher-image.env"
set +a
SOCK=${DOCKER_HOST#unix://}
# dstack pulls the launcher by digest: drop the local copy so compose pulls it from the
# registry (with the credentials launcher_image.sh logged in with).
docker image rm "${LAUNCHER_IMAGE%@*}:e2e" >/dev/null 2>&1

passed=0 failed=0
why=""
# expect DESCRIPTION COMMAND...: a failed check is remembered for the case's FAIL line.
expect() { local d=$1; shift; "$@" >/dev/null 2>&1 || why+="${why:+; }$d"; }
verdict() { # CASE-NAME LOG-FILE...
  local name=$1; shift
  if [ -z "$why" ]; then
    passed=$((passed + 1)); echo "PASS  $name"
  else
    failed=$((failed + 1)); echo "FAIL  $name: $why"
    for f in "$@"; do [ -s "$f" ] && { echo "      --- $(basename "$f")"; tail -n 15 "$f" | sed 's/^/      /'; }; done
  fi
  why=""
}
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
# The inline launcher config as the launcher reads it (the bytes it measures).
config_content() {
  "$PY" -c 'import sys, yaml
sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["configs"]["launcher-config"]["content"])' "$1"
}
has_line() { grep -qxF -- "$2" "$1"; }
has() { grep -qF -- "$2" "$1"; }
# up PROJECT DIR: bring the app up attached (bounded), keep the launcher's logs and exit code.
up() {
  local id
  timeout 240 docker compose -p "$1" -f "$2/compose.yaml" up >"$2/up.log" 2>&1
  id=$(docker compose -p "$1" -f "$2/compose.yaml" ps -a -q launcher 2>/dev/null)
  docker logs "$id" >"$2/launcher.log" 2>&1
  docker inspect -f '{{.State.ExitCode}} {{.State.Status}}' "$id" >"$2/exit" 2>&1
}
no_sockets() { # CONTAINER: neither the docker nor the dstack socket is mounted
  local m
  m=$(docker inspect -f '{{range .Mounts}}{{.Source}} {{.Destination}}{{println}}{{end}}' "$1") || return 1
  ! grep -Eq 'docker\.sock|dstack\.sock' <<<"$m"
}

# agent DIR: a fresh fake dstack agent (tests/e2e/fake_dstack_agent.rs, the tests' fake with
# dstack's exact wire format) serving DIR/dstack.sock for this case; its events, RTMR3 replay
# and the methods called land in DIR/agent-state.json.
agent() {
  mkdir -p "$1"
  "$AGENT" "$1" 300 >"$1/agent.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$1/dstack.sock" ] && return 0; sleep 0.1; done
  return 1
}
stop_agent() { touch "$1/stop"; }
# agent_events DIR: "event payload-hex" per line, as the agent recorded them
agent_events() { [ -f "$1/agent-state.json" ] && jq -r '.events[] | "\(.event) \(.payload)"' "$1/agent-state.json"; }
agent_ok() { # DIR: RTMR3 replays to the register, and the launcher asked for quotes
  jq -e '.replay_ok and (.methods | index("GetQuote") != null)' "$1/agent-state.json"
}

# expect_measured DIR WORKLOAD: the agent's RTMR3 holds exactly config (sha256 of the inline
# config bytes), workload WORKLOAD, for an image the compose document's digest, and ready; its
# log replays, and quotes confirmed them.
expect_measured() {
  local cfg compose=""
  cfg=$(config_content "$1/compose.yaml" | sha256sum | cut -d' ' -f1)
  case $2 in oci:*)
    compose="trusted-launcher.compose $(agent_events "$1/agent" | awk '$1 == "trusted-launcher.compose" { print $2 }')
"
    expect "image mode measures trusted-launcher.compose as sha256:<64 hex>" \
      grep -Eq '^trusted-launcher.compose ([0-9a-f]{2}){71}$' <<<"$compose"
    ;;
  esac
  expect "RTMR3 via the agent: config sha256:$cfg, workload $2, ${compose:+compose, }ready" \
    test "$(agent_events "$1/agent")" = "trusted-launcher.config $(hex "sha256:$cfg")
trusted-launcher.workload $(hex "$2")
${compose}trusted-launcher.ready "
  expect "RTMR3 replays, each event confirmed by a quote" agent_ok "$1/agent"
}

# image_app DIR PROJECT EXAMPLE VOLUME FILE DEFAULT-DIGEST APPROVED-JSON [TRANSFORM-ARGS...]:
# examples/dstack/EXAMPLE transformed into DIR/compose.yaml (registry, digest and credentials
# pointed here), created (the launcher pulled by digest), APPROVED-JSON written as FILE onto
# the engine volume VOLUME as an updater would, brought up with the fake agent on the dstack
# socket.
image_app() {
  local dir=$1 p=$2 example=$3 volume=$4 file=$5 digest=$6 list=$7 mp
  shift 7
  rm -rf "$dir" && mkdir -p "$dir"
  agent "$dir/agent" || return 1
  "$PY" tests/e2e/compose_transform.py "examples/dstack/$example/docker-compose.yaml" "$dir/compose.yaml" \
    --launcher-image "$LAUNCHER_IMAGE" --dstack-sock "$dir/agent/dstack.sock" --docker-sock "$SOCK" \
    --env "E2E_REGISTRY_PASSWORD=$REGISTRY_PASSWORD" \
    --set "reference=\"$IMAGE_REPO\"" --set "digest=\"$digest\"" \
    --set "username=\"$REGISTRY_USER\"" --set 'password_env="E2E_REGISTRY_PASSWORD"' \
    --host-template /etc/trusted-launcher/compose-host.yaml=assets/compose.yaml "$@" || return 1
  timeout 240 docker compose -p "$p" -f "$dir/compose.yaml" create >"$dir/create.log" 2>&1 || return 1
  mp=$(docker volume inspect -f '{{.Mountpoint}}' "$volume") || return 1
  printf '%s' "$list" >"$mp/$file"
  up "$p" "$dir"
  stop_agent "$dir/agent"
}

# --- a. image mode: the approved list on the volume picks the workload, a sibling container ----
D="$W/case-image"
image_app "$D" e2e-image image-mode e2e-image_approved approved-hashes.json "$SINGLE_DIGEST" \
  "{\"approved_hashes\":[\"$OTHER_DIGEST\",\"$SINGLE_DIGEST\"]}" ||
  why="transform, create or fill the approved volume"
docker logs whoami-workload >"$D/workload.log" 2>&1
expect "launcher exits 0 (got $(cat "$D/exit"))" test "$(cat "$D/exit")" = "0 exited"
expect "launcher runs the image pulled by digest" \
  test "$(docker inspect -f '{{.Config.Image}}' e2e-image-launcher-1)" = "$LAUNCHER_IMAGE"
expect "workload is the approved list's newest digest" \
  test "$(docker inspect -f '{{.Config.Image}}' whoami-workload)" = "$IMAGE_REPO@$OTHER_DIGEST"
expect "workload prints E2E-MARKER $OTHER_MARKER" has "$D/workload.log" "E2E-MARKER $OTHER_MARKER"
expect "workload gets the example's command" has "$D/workload.log" "E2E-ARGS --port 8080"
expect "workload is a sibling (its own compose project)" \
  test "$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' whoami-workload)" = whoami
expect "workload has neither socket" no_sockets whoami-workload
expect "launcher logged in and verified the image" has "$D/launcher.log" "image verified: $IMAGE_REPO@$OTHER_DIGEST"
expect_measured "$D" "oci:$OTHER_DIGEST"
verdict "image mode, tee: approved list on the volume -> sibling $OTHER_MARKER, launcher exit 0, config, workload, compose, ready in RTMR3" \
  "$D/launcher.log" "$D/create.log" "$D/up.log" "$D/workload.log"
docker rm -f whoami-workload >/dev/null 2>&1

# --- b. git mode: the example's config pointed at the hello bundle, default mode ---------------
D="$W/case-git"
COMMIT=23139dff75edd9a9a1078b3142a716925181e1ca
agent "$D/agent" || why="start the fake agent"
"$PY" tests/e2e/compose_transform.py examples/dstack/git-mode/docker-compose.yaml "$D/compose.yaml" \
  --launcher-image "$LAUNCHER_IMAGE" --dstack-sock "$D/agent/dstack.sock" \
  --volume "$ROOT/examples/hello/hello.bundle:/repo/hello.bundle:ro" \
  --set REPO_URL=/repo/hello.bundle --set "COMMIT_SHA=$COMMIT" --drop RUN_CMD ||
  why="transform"
up e2e-git "$D"
stop_agent "$D/agent"
expect "launcher exits 0 (got $(cat "$D/exit"))" test "$(cat "$D/exit")" = "0 exited"
expect "HEAD verified: $COMMIT" has "$D/launcher.log" "HEAD verified: $COMMIT"
expect "workload output" has_line "$D/launcher.log" "hello from the pinned workload"
expect "workload runs the commit" has_line "$D/launcher.log" "commit: $COMMIT"
expect_measured "$D" "git:$COMMIT"
verdict "git mode, tee: bundle fetched and verified in the launcher container, entrypoint.sh ran, 3 events in RTMR3" \
  "$D/launcher.log" "$D/up.log"

# --- c. image mode, the newest approved digest has no image in the registry -------------------
# The launcher resolves the approved digest through the registry before measuring anything:
# it stops there (exit 1), does not fall back to an older approved entry, measures nothing.
D="$W/case-missing"
MISSING="sha256:$(printf 'no such image' | sha256sum | cut -d' ' -f1)"
image_app "$D" e2e-missing image-mode e2e-missing_approved approved-hashes.json "$SINGLE_DIGEST" \
  "{\"approved_hashes\":[\"$MISSING\",\"$SINGLE_DIGEST\"]}" ||
  why="transform, create or fill the approved volume"
expect "launcher exits 1 (got $(cat "$D/exit"))" test "$(cat "$D/exit")" = "1 exited"
expect "the error names the missing digest" grep -q "trusted-launcher: error: .*$MISSING" "$D/launcher.log"
expect "no workload started (no fallback to an older entry)" test -z "$(docker ps -aq --filter name=whoami-workload)"
expect "nothing measured" test -z "$(agent_events "$D/agent")"
verdict "image mode: newest approved digest missing from the registry -> exit 1, nothing measured or started" \
  "$D/launcher.log" "$D/up.log"

# --- d. NEAR migration: NEAR's approved-hashes file on NEAR's shared volume, NEAR's event -------
# The node's own dstack socket is off here: its host path would be the machine's, not the fake's.
D="$W/case-near"
docker volume rm -f shared-volume >/dev/null 2>&1
image_app "$D" e2e-near near-migration shared-volume image-digest.bin "$SINGLE_DIGEST" \
  "{\"approved_hashes\":[\"$OTHER_DIGEST\",\"$SINGLE_DIGEST\"]}" --set service.dstack_socket=false ||
  why="transform, create or fill the shared volume"
docker logs mpc-workload >"$D/workload.log" 2>&1
expect "launcher exits 0 (got $(cat "$D/exit"))" test "$(cat "$D/exit")" = "0 exited"
expect "workload is the newest digest of image-digest.bin" \
  test "$(docker inspect -f '{{.Config.Image}}' mpc-workload)" = "$IMAGE_REPO@$OTHER_DIGEST"
expect "workload prints E2E-MARKER $OTHER_MARKER" has "$D/workload.log" "E2E-MARKER $OTHER_MARKER"
expect "workload mounts the launcher's shared-volume (by its name) at /mnt/shared" \
  test "$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/mnt/shared"}}{{.Name}}{{end}}{{end}}' mpc-workload)" = shared-volume
expect "RTMR3: config, workload, compose, NEAR's mpc-image-digest (32 raw bytes), ready" \
  test "$(agent_events "$D/agent" | cut -d' ' -f1 | tr '\n' ' ')" = \
  "trusted-launcher.config trusted-launcher.workload trusted-launcher.compose mpc-image-digest trusted-launcher.ready "
expect "mpc-image-digest payload is the digest's raw bytes" \
  test "$(agent_events "$D/agent" | awk '$1 == "mpc-image-digest" { print $2 }')" = "${OTHER_DIGEST#sha256:}"
expect "RTMR3 replays, each event confirmed by a quote" agent_ok "$D/agent"
verdict "NEAR migration, tee: image-digest.bin on shared-volume -> sibling $OTHER_MARKER, mpc-image-digest measured" \
  "$D/launcher.log" "$D/create.log" "$D/up.log" "$D/workload.log"
docker rm -f mpc-workload >/dev/null 2>&1

# --- e. every example as it ships is a valid compose file for compose v2 ----------------------
for ex in examples/dstack/*/docker-compose.yaml; do
  expect "$ex: docker compose config" docker compose -f "$ex" config --quiet
done
verdict "examples: git-mode, image-mode, near-migration pass \`docker compose config\`"

echo "time: $((SECONDS - T0))s (setup, registry, test images $((T1 - T0))s; launcher image $((T2 - T1))s; cases $((SECONDS - T2))s)"
echo "e2e container: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
