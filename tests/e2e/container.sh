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
# The launcher image's binary has no `verify` (cargo feature); the verifier is the default
# build's binary (VERIFIER, or a second argument), as the release publishes it.
VERIFIER=$(realpath "${2:-${VERIFIER:-target/release/trusted-launcher}}")
PY=/usr/bin/python3 # Debian's python3 with python3-yaml (setup.sh)
T0=$SECONDS
cargo build --locked --quiet --example fake-dstack-agent || exit 1
AGENT=$ROOT/target/debug/examples/fake-dstack-agent

tests/e2e/setup.sh || exit 1
W=$(tests/e2e/start.sh) || exit 1
finish() {
  for a in "$W"/case-*/agent; do [ -d "$a" ] && touch "$a/stop"; done
  for c in "$W"/case-*/cvm; do [ -d "$c" ] && tests/e2e/cvm_host.sh stop "$c"; done
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
config_content() { # the `configs:` entry mounted where the launcher's command names its config
  "$PY" -c 'import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
launcher = doc["services"]["launcher"]
path = launcher["command"][-1]
source = next(c["source"] for c in launcher["configs"] if c["target"] == path)
sys.stdout.write(doc["configs"][source]["content"])' "$1"
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

# near_app DIR: DIR/compose.yaml created on DOCKER_HOST (the launcher pulled by digest), the
# approved list written onto its shared-volume as NEAR's node writes it, brought up; the node
# container's inspect JSON, logs and the node config the launcher wrote kept in DIR.
near_app() {
  local mp
  timeout 240 docker compose -p e2e-near -f "$1/compose.yaml" create >"$1/create.log" 2>&1 || return 1
  mp=$(docker volume inspect -f '{{.Mountpoint}}' shared-volume) || return 1
  printf '{"approved_hashes":["%s"]}' "$PUBLIC_SINGLE_DIGEST" >"$mp/image-digest.bin"
  up e2e-near "$1"
  docker inspect mpc-node >"$1/node.json" 2>&1
  docker logs mpc-node >"$1/node.log" 2>&1
  cp "$mp/mpc-config.toml" "$1/mpc-config.toml"
  docker rm -f mpc-node >/dev/null 2>&1
  docker network rm mpc-node_default >/dev/null 2>&1
  return 0
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

# --- d. NEAR migration: NEAR's user config unchanged, on a CVM-like host ---------------------
# The example runs NEAR's own /tapp/user_config format; the node's compose (NEAR's) bind-mounts
# the host's /tapp and /var/run/dstack.sock, so this case runs on cvm_host.sh's engine, whose
# mount namespace has both (the fake agent's socket, a /tapp with the user config) and the
# example's socket paths are kept as shipped. Only what must point here changes in the user
# config: image_reference (the e2e registry's anonymously pullable repository: NEAR's format
# has no credential keys, and NEAR's images are public on Docker Hub) and the HOST side of
# port_mappings (free ports, so parallel runs do not collide). The node's ports are published
# on a compose bridge network, as NEAR's compose asks. The environment (PLATFORM=TEE,
# DEFAULT_IMAGE_DIGEST: NEAR's real default, unused while image-digest.bin exists) is kept.
D="$W/case-near"
rm -rf "$D" && mkdir -p "$D/tapp"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
P1=$(free_port) P2=$(free_port)
tapp_before=$(test -e /tapp && echo yes || echo no)
sock_before=$(test -e /var/run/dstack.sock && echo yes || echo no)
{
  agent "$D/agent" &&
    "$PY" tests/e2e/compose_transform.py examples/dstack/near-migration/docker-compose.yaml "$D/compose.yaml" \
      --launcher-image "$LAUNCHER_IMAGE" --cvm-host --table launcher_config \
      --set "image_reference=\"$PUBLIC_REPO\"" \
      --set "port_mappings=[{ host = $P1, container = 8080 }, { host = $P2, container = 24567 }]" &&
    config_content "$D/compose.yaml" >"$D/tapp/user_config" &&
    tests/e2e/cvm_host.sh start "$D/cvm" "$D/agent/dstack.sock" "$D/tapp" >/dev/null &&
    DOCKER_HOST=$(sed -n 's/^DOCKER_HOST=//p' "$D/cvm/env") near_app "$D"
} || why="agent, transform, CVM host, create or fill the shared volume"
stop_agent "$D/agent"
expect "launcher exits 0 (got $(cat "$D/exit" 2>/dev/null))" test "$(cat "$D/exit" 2>/dev/null)" = "0 exited"
expect "the node runs the newest digest of image-digest.bin" \
  test "$(jq -r '.[0].Config.Image' "$D/node.json")" = "$PUBLIC_REPO@$PUBLIC_SINGLE_DIGEST"
expect "NEAR's names: project, service and container mpc-node" test "$(jq -r '.[0] | [.Name,
  .Config.Labels["com.docker.compose.project"], .Config.Labels["com.docker.compose.service"]] | join(" ")' \
  "$D/node.json")" = "/mpc-node mpc-node mpc-node"
expect "NEAR's command: /app/mpc-node start-with-config-file /mnt/shared/mpc-config.toml" \
  test "$(jq -c '.[0].Config.Cmd' "$D/node.json")" = '["/app/mpc-node","start-with-config-file","/mnt/shared/mpc-config.toml"]'
expect "the node got its command" has "$D/node.log" "E2E-ARGS /app/mpc-node start-with-config-file /mnt/shared/mpc-config.toml"
expect "NEAR's mounts: /tapp ro, shared-volume, mpc-data, the dstack socket, nothing else" \
  test "$(jq -r '[.[0].Mounts[] | "\(.Type) \(.Name // .Source) \(.Destination) \(.RW)"] | sort | join(",")' "$D/node.json")" = \
  "bind /tapp /tapp false,bind /var/run/dstack.sock /var/run/dstack.sock true,volume mpc-data /data true,volume shared-volume /mnt/shared true"
expect "restart on-failure, DSTACK_ENDPOINT, no new privileges, every capability dropped" \
  test "$(jq -r '.[0] | [.HostConfig.RestartPolicy.Name, (.Config.Env | index("DSTACK_ENDPOINT=/var/run/dstack.sock") != null),
    (.HostConfig.SecurityOpt | index("no-new-privileges:true") != null), (.HostConfig.CapDrop | join("+"))] | join(" ")' \
    "$D/node.json")" = "on-failure true true ALL"
expect "port_mappings published ($P1->8080, $P2->24567) on the compose bridge network mpc-node_default" \
  test "$(jq -r '.[0] | [(.HostConfig.PortBindings | to_entries | map("\(.value[0].HostPort)->\(.key)") | sort | join(" ")),
    (.NetworkSettings.Networks | keys | join(" "))] | join(" | ")' "$D/node.json")" = \
  "$(printf '%s\n' "$P1->8080/tcp" "$P2->24567/tcp" | sort | tr '\n' ' ' | sed 's/ $//') | mpc-node_default"
expect "mpc-config.toml = the user's [mpc_node_config] + NEAR's [tee] (dstack authority, image hash, list path)" \
  "$PY" - "$D/tapp/user_config" "$D/mpc-config.toml" "$PUBLIC_SINGLE_DIGEST" <<'PY'
import sys, tomllib
user = tomllib.load(open(sys.argv[1], "rb"))
written = tomllib.load(open(sys.argv[2], "rb"))
want = dict(user["mpc_node_config"])
want["tee"] = {
    "authority": {"type": "dstack", "dstack_endpoint": "/var/run/dstack.sock"},
    "image_hash": sys.argv[3],
    "latest_allowed_hash_file_path": "/mnt/shared/image-digest.bin",
}
assert user["mpc_node_config"] and "tee" not in user["mpc_node_config"], user
assert written == want, (written, want)
PY
cfg=$(sha256sum <"$D/tapp/user_config" | cut -d' ' -f1)
expect "RTMR3: config sha256:$cfg (the user config's bytes), workload, compose, mpc-image-digest, ready" \
  test "$(agent_events "$D/agent" | awk '{ print $1 }' | tr '\n' ' ')" = \
  "trusted-launcher.config trusted-launcher.workload trusted-launcher.compose mpc-image-digest trusted-launcher.ready "
expect "config and workload payloads" test "$(agent_events "$D/agent" | head -n2)" = \
  "trusted-launcher.config $(hex "sha256:$cfg")
trusted-launcher.workload $(hex "oci:$PUBLIC_SINGLE_DIGEST")"
expect "mpc-image-digest payload is the digest's raw bytes" \
  test "$(agent_events "$D/agent" | awk '$1 == "mpc-image-digest" { print $2 }')" = "${PUBLIC_SINGLE_DIGEST#sha256:}"
expect "RTMR3 replays, each event confirmed by a quote" agent_ok "$D/agent"
expect "nothing created on this machine's / or /run" \
  test "$(test -e /tapp && echo yes || echo no) $(test -e /var/run/dstack.sock && echo yes || echo no)" = "$tapp_before $sock_before"
verdict "NEAR migration, tee: NEAR's user config unchanged -> mpc-node with NEAR's mounts, command, ports, mpc-config.toml, events" \
  "$D/launcher.log" "$D/create.log" "$D/up.log" "$D/node.log"
tests/e2e/cvm_host.sh stop "$D/cvm"

# --- f. watch mode, tee: the approved list changes under the running workload --------------
# The image-mode example with watch_interval = 5 and watch_switch = true: the launcher stays as
# the supervisor. The list on the volume moves from SINGLE to OTHER: the old container stops,
# OTHER starts, both launches are measured into the agent's RTMR3, and `trusted-launcher
# verify` on the agent's GetQuote reply lists both. The agent's quote is unsigned (the fake
# has no PCK key), so verify runs with --skip-dcap, which by design exits 3 when every other
# check passes (README, "Exit codes"). Bounded: each wait polls for at most 60 s.
D="$W/case-watch"
rm -rf "$D" && mkdir -p "$D"
mp=""
{
  agent "$D/agent" &&
    "$PY" tests/e2e/compose_transform.py examples/dstack/image-mode/docker-compose.yaml "$D/compose.yaml" \
      --launcher-image "$LAUNCHER_IMAGE" --dstack-sock "$D/agent/dstack.sock" --docker-sock "$SOCK" \
      --env "E2E_REGISTRY_PASSWORD=$REGISTRY_PASSWORD" \
      --set "reference=\"$IMAGE_REPO\"" --set "digest=\"$SINGLE_DIGEST\"" \
      --set "username=\"$REGISTRY_USER\"" --set 'password_env="E2E_REGISTRY_PASSWORD"' \
      --set watch_interval=5 --set watch_switch=true --set 'service.environment={ E2E_SLEEP = "300" }' \
      --host-template /etc/trusted-launcher/compose-host.yaml=assets/compose.yaml &&
    timeout 240 docker compose -p e2e-watch -f "$D/compose.yaml" create >"$D/create.log" 2>&1 &&
    mp=$(docker volume inspect -f '{{.Mountpoint}}' e2e-watch_approved) &&
    printf '{"approved_hashes":["%s"]}' "$SINGLE_DIGEST" >"$mp/approved-hashes.json" &&
    timeout 240 docker compose -p e2e-watch -f "$D/compose.yaml" up --detach >"$D/up.log" 2>&1
} || why="agent, transform, create, fill the approved volume or up"
running() { [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' whoami-workload 2>/dev/null)" = "true $IMAGE_REPO@$1" ]; }
wait_for() { local i; for i in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
events_are() { [ "$(agent_events "$D/agent" | wc -l)" -eq "$1" ]; }
expect "the first launch runs the pinned, listed digest" wait_for running "$SINGLE_DIGEST"
expect "the first launch is measured (config, workload, compose, ready)" wait_for events_are 4
old_id=$(docker inspect -f '{{.Id}}' whoami-workload 2>/dev/null)
[ -n "${mp:-}" ] && printf '{"approved_hashes":["%s"]}' "$OTHER_DIGEST" >"$mp/approved-hashes.json.tmp" &&
  mv "$mp/approved-hashes.json.tmp" "$mp/approved-hashes.json"
expect "after the list update the newest approved digest runs" wait_for running "$OTHER_DIGEST"
expect "the second launch is measured (8 events in all)" wait_for events_are 8
expect "the old container is gone" test -n "$old_id" -a "$(docker inspect -f '{{.Id}}' whoami-workload 2>/dev/null)" != "$old_id"
expect "the old container is removed" sh -c "! docker inspect '$old_id'"
docker logs e2e-watch-launcher-1 >"$D/launcher.log" 2>&1
expect "the launcher logged the stop" has "$D/launcher.log" "stopped compose project whoami"
expect "the launcher is still supervising" \
  test "$(docker inspect -f '{{.State.Running}}' e2e-watch-launcher-1 2>/dev/null)" = true
cfg=$(config_content "$D/compose.yaml" | sha256sum | cut -d' ' -f1)
expect "RTMR3: two full launches, SINGLE then OTHER, one config" \
  test "$(agent_events "$D/agent" | awk '$1 != "trusted-launcher.compose"' | tr '\n' '|')" = \
  "trusted-launcher.config $(hex "sha256:$cfg")|trusted-launcher.workload $(hex "oci:$SINGLE_DIGEST")|trusted-launcher.ready |trusted-launcher.config $(hex "sha256:$cfg")|trusted-launcher.workload $(hex "oci:$OTHER_DIGEST")|trusted-launcher.ready |"
expect "RTMR3 replays, each event confirmed by a quote" agent_ok "$D/agent"
# The evidence a verifier gets: the agent's GetQuote reply (quote + event log, dstack's format).
curl -fsS -m 10 --unix-socket "$D/agent/dstack.sock" -H 'Content-Type: application/json' \
  -d '{"report_data":""}' http://dstack/GetQuote >"$D/getquote.json" 2>"$D/getquote.err"
"$VERIFIER" verify "$D/getquote.json" --skip-dcap --json --expect-config-sha256 "$cfg" \
  --expect-image "$SINGLE_DIGEST" --expect-image "$OTHER_DIGEST" >"$D/verify.json" 2>"$D/verify.err"
echo $? >"$D/verify.rc"
expect "verify with both digests expected: every check passes, exit 3 (unsigned) (got $(cat "$D/verify.rc"))" \
  test "$(cat "$D/verify.rc")" = 3
expect "verify --json lists both launches, complete and accepted, in order" \
  test "$(jq -c '[.launches[] | [.number, .complete, .workload, .outcome]]' "$D/verify.json")" = \
  "[[1,true,\"oci:$SINGLE_DIGEST\",\"accepted\"],[2,true,\"oci:$OTHER_DIGEST\",\"accepted\"]]"
"$VERIFIER" verify "$D/getquote.json" --skip-dcap --json --expect-image "$OTHER_DIGEST" >"$D/verify-new.json" 2>&1
echo $? >"$D/verify-new.rc"
expect "verify expecting only the new digest fails (exit 1): the first launch counts too" \
  test "$(cat "$D/verify-new.rc") $(jq -r '[.launches[].outcome] | join(",")' "$D/verify-new.json")" = "1 not accepted,accepted"
# `docker stop` sends SIGTERM to the container's PID 1, the launcher, and SIGKILL after the
# grace period (Docker docs, `docker stop`). PID 1 gets only signals it has a handler for
# (kill(2): "The only signals that can be sent to process ID 1, the init process, are those
# for which init has explicitly installed signal handlers"): without one, the launcher was
# killed after the grace period (exit 137) and the workload kept running. Now it stops the
# workload and exits 143.
timeout 120 docker stop -t 60 e2e-watch-launcher-1 >/dev/null 2>&1
docker logs e2e-watch-launcher-1 >"$D/launcher.log" 2>&1
expect "docker stop: the launcher exits 143 (SIGTERM handled, not killed: 137) (got $(docker inspect -f '{{.State.ExitCode}}' e2e-watch-launcher-1 2>&1))" \
  test "$(docker inspect -f '{{.State.ExitCode}}' e2e-watch-launcher-1 2>&1)" = 143
expect "docker stop: the launcher stopped the workload first" has "$D/launcher.log" "SIGTERM received; stopping compose project whoami"
expect "docker stop: the workload is gone" test -z "$(docker ps -aq --filter name=whoami-workload)"
verdict "watch mode, tee: approved list updated -> old container stopped, new digest started, both launches measured and reported by verify; docker stop stops the workload" \
  "$D/launcher.log" "$D/create.log" "$D/up.log" "$D/verify.json" "$D/verify.err"
docker rm -f e2e-watch-launcher-1 whoami-workload >/dev/null 2>&1
stop_agent "$D/agent"

# --- e. every example as it ships is a valid compose file for compose v2 ----------------------
for ex in examples/dstack/*/docker-compose.yaml; do
  expect "$ex: docker compose config" docker compose -f "$ex" config --quiet
done
verdict "examples: git-mode, git-mode-next, image-mode, near-migration pass \`docker compose config\`"

echo "time: $((SECONDS - T0))s (setup, registry, test images $((T1 - T0))s; launcher image $((T2 - T1))s; cases $((SECONDS - T2))s)"
echo "e2e container: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
