#!/usr/bin/env bash
# End-to-end tier of image mode: the real trusted-launcher binary, in nontee mode, against a
# real registry with token auth, a real dockerd and compose v2 (all started here, loopback
# only). Prints one line per case and a closing "N passed, M failed".
# Usage: tests/e2e/launch.sh [path/to/trusted-launcher]
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
BIN=${1:-target/release/trusted-launcher}
[ -x "$BIN" ] || { echo "no launcher binary at $BIN (cargo build --release first)" >&2; exit 2; }
BIN=$(realpath "$BIN")

tests/e2e/setup.sh || exit 1
W=$(tests/e2e/start.sh) || exit 1
trap 'tests/e2e/stop.sh "$W" --purge >/dev/null 2>&1' EXIT
tests/e2e/build_images.sh "$W" >/dev/null || { echo "building test images failed" >&2; exit 1; }
set -a; . "$W/env"; . "$W/images.env"; set +a

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS  $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && sed 's/^/      /' "$2" | tail -20; }

# Host networking (the private dockerd has no bridge); everything else as the built-in template.
cat >"$W/template.yaml" <<'TEMPLATE'
name: {{ project }}
services:
  workload:
    image: {{ image }}
    container_name: {{ container_name }}
    network_mode: host
    restart: {{ restart }}
    command: {{ command }}
    environment: {{ environment }}
    volumes: {{ volumes }}
    cap_drop:
      - ALL
    cap_add: {{ cap_add }}
    security_opt:
      - no-new-privileges:true
    labels:
      e2e.dotenv: "${E2E_DOTENV:-clean}"
TEMPLATE
# A `.env` beside the compose files, as a writer of that directory could plant it: compose
# reads it by default for interpolation (and DOCKER_HOST, COMPOSE_FILE, ...). The launcher
# hands compose an empty --env-file of its own instead, so the label stays "clean".
echo "E2E_DOTENV=planted" >"$W/.env"

# config NAME DIGEST [extra [image] lines] [extra [image.service] lines]
config() {
  cat >"$W/$1.toml" <<CONFIG
[image]
reference = "$IMAGE_REPO"
digest = "$2"
username = "$REGISTRY_USER"
password_env = "E2E_REGISTRY_SECRET"
project = "e2e-$1"
compose_template = "$W/template.yaml"
compose_file = "$W/$1.compose.yaml"
docker_host = "$DOCKER_HOST"
${3:-}
[image.service]
${4:-}
CONFIG
  echo "$W/$1.toml"
}

launch() { # CONFIG-PATH OUT-FILE: run the launcher; return its exit code
  # docker gets nothing of this environment: the engine comes from docker_host, the compose
  # plugin from a system plugin dir (setup.sh), DOCKER_CONFIG is the launcher's own.
  E2E_REGISTRY_SECRET=$REGISTRY_PASSWORD timeout 120 "$BIN" --platform nontee \
    --event-log "$W/events.jsonl" --docker-config "$W/launcher-docker-config" run "$1" >"$2" 2>&1
}
events() { [ -f "$W/events.jsonl" ] && wc -l <"$W/events.jsonl" || echo 0; }
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# 1. An index pinned by digest, foreground: the amd64 image runs with our env and args.
c=$(config pinned "$MULTI_INDEX_DIGEST" "" 'command = ["hello", "world"]
environment = { E2E_MESSAGE = "from-config" }')
if launch "$c" "$W/1.out" && grep -q "E2E-MARKER $MULTI_AMD64_MARKER" "$W/1.out" \
  && grep -q "E2E-ARGS hello world" "$W/1.out" && grep -q "E2E-MESSAGE from-config" "$W/1.out" \
  && grep -q "\"event_payload\":\"$(hex "oci:$MULTI_INDEX_DIGEST")\"" "$W/events.jsonl"; then
  pass "index digest pinned: pulled, confirmed, compose up, measured oci:$MULTI_INDEX_DIGEST"
else fail "index digest pinned" "$W/1.out"; fi
# The planted .env is what plain compose would read; the launcher's run did not.
if docker compose -f "$W/pinned.compose.yaml" config 2>/dev/null | grep -q "e2e.dotenv: planted" \
  && [ "$(docker inspect -f '{{index .Config.Labels "e2e.dotenv"}}' e2e-pinned-workload)" = clean ]; then
  pass "a planted .env beside the compose file is ignored (plain compose would read it)"
else fail "planted .env ignored"; fi

# 2. The approved list moves to another digest: the newest entry runs (no command: null).
printf '{"approved_hashes":["%s","%s"]}' "$OTHER_DIGEST" "$MULTI_INDEX_DIGEST" >"$W/approved.json"
c=$(config listed "$MULTI_INDEX_DIGEST" "approved_list = \"$W/approved.json\"")
if launch "$c" "$W/2.out" && grep -q "E2E-MARKER $OTHER_MARKER" "$W/2.out"; then
  pass "approved list update: newest approved digest runs"
else fail "approved list update" "$W/2.out"; fi

# 3. A listed override wins over the newest entry.
c=$(config override "$MULTI_INDEX_DIGEST" "approved_list = \"$W/approved.json\"
override = \"$MULTI_INDEX_DIGEST\"")
if launch "$c" "$W/3.out" && grep -q "E2E-MARKER $MULTI_AMD64_MARKER" "$W/3.out"; then
  pass "listed override runs"
else fail "listed override" "$W/3.out"; fi

# 4. An override that is not approved: refused, nothing measured, nothing started.
before=$(events)
c=$(config refused "$MULTI_INDEX_DIGEST" "approved_list = \"$W/approved.json\"
override = \"$SINGLE_DIGEST\"")
if ! launch "$c" "$W/4.out" && grep -q "is not approved" "$W/4.out" && [ "$(events)" = "$before" ] \
  && [ -z "$(docker ps -aq --filter name=e2e-refused)" ]; then
  pass "unapproved override refused before measuring or starting"
else fail "unapproved override refused" "$W/4.out"; fi

# 5. Wrong registry password: refused at resolution, nothing measured.
before=$(events)
c=$(config badpw "$SINGLE_DIGEST")
if ! E2E_REGISTRY_SECRET=wrong timeout 120 "$BIN" --platform nontee --event-log "$W/events.jsonl" \
  run "$c" >"$W/5.out" 2>&1 && grep -qi "authentication" "$W/5.out" && [ "$(events)" = "$before" ]; then
  pass "wrong registry password refused"
else fail "wrong registry password refused" "$W/5.out"; fi

# 6. A value trying to add keys to the compose document stays one string.
c=$(config inject "$SINGLE_DIGEST" "" 'environment = { E2E_MESSAGE = "x\n    privileged: true\n    pid: host" }')
if launch "$c" "$W/6.out" && grep -q "E2E-MARKER $SINGLE_MARKER" "$W/6.out" \
  && [ "$(docker inspect -f '{{.HostConfig.Privileged}} {{.HostConfig.PidMode}}' e2e-inject-workload)" = "false " ]; then
  pass "injection through a value does not change the compose document"
else fail "injection through a value" "$W/6.out"; fi

# 7. Detached: the launcher exits 0 and the workload keeps running under a stable name.
c=$(config detached "$SINGLE_DIGEST" "detach = true" 'environment = { E2E_SLEEP = "30" }')
if launch "$c" "$W/7.out" && [ "$(docker inspect -f '{{.State.Running}}' e2e-detached-workload 2>/dev/null)" = "true" ]; then
  pass "detach: compose up -d, launcher exits 0, workload running"
else fail "detach" "$W/7.out"; fi
docker rm -f e2e-detached-workload >/dev/null 2>&1

# 8. The index's arm64 image on an amd64 engine: the engine pulls another platform's image,
#    whose ID is not the resolved config digest; refused before anything starts or `ready`.
c=$(config wrongplatform "$MULTI_INDEX_DIGEST" 'platform = "linux/arm64"')
if ! launch "$c" "$W/8.out" && grep -q "not what was approved" "$W/8.out" \
  && [ -z "$(docker ps -aq --filter name=e2e-wrongplatform)" ] \
  && tail -1 "$W/events.jsonl" | grep -q '"event":"trusted-launcher.compose"'; then
  pass "wrong platform: engine's image is not the approved one, refused"
else fail "wrong platform refused" "$W/8.out"; fi

# 9. Watch mode: the approved list changes under a running workload; the launcher stops it
#    (compose down) and starts the newest approved digest as a second, fully measured launch.
#    Bounded: the launcher is killed after 60 s whatever happens; each wait polls for <= 20 s
#    (about 10 s in all when it passes: one 5 s tick, a pull, compose down and up).
printf '{"approved_hashes":["%s"]}' "$SINGLE_DIGEST" >"$W/watch.json"
c=$(config watch "$SINGLE_DIGEST" "approved_list = \"$W/watch.json\"
watch_interval = 5
watch_switch = true" 'environment = { E2E_SLEEP = "120" }')
before=$(events)
E2E_REGISTRY_SECRET=$REGISTRY_PASSWORD timeout 60 "$BIN" --platform nontee \
  --event-log "$W/events.jsonl" --docker-config "$W/launcher-docker-config" run "$c" >"$W/9.out" 2>&1 &
watcher=$!
running() { [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' e2e-watch-workload 2>/dev/null)" = "true $IMAGE_REPO@$1" ]; }
wait_for() { local i; for i in $(seq 1 100); do "$@" && return 0; sleep 0.2; done; return 1; }
first_ok=0
wait_for running "$SINGLE_DIGEST" && first_ok=1
old_id=$(docker inspect -f '{{.Id}}' e2e-watch-workload 2>/dev/null)
printf '{"approved_hashes":["%s"]}' "$OTHER_DIGEST" >"$W/watch.json.tmp" && mv "$W/watch.json.tmp" "$W/watch.json"
measured_twice() { [ "$(events)" -eq $((before + 8)) ]; }
if [ "$first_ok" = 1 ] && wait_for running "$OTHER_DIGEST" && wait_for measured_twice \
  && [ "$(docker inspect -f '{{.Id}}' e2e-watch-workload)" != "$old_id" ] \
  && ! docker inspect "$old_id" >/dev/null 2>&1 \
  && [ "$(tail -8 "$W/events.jsonl" | grep -c "\"event_payload\":\"$(hex "oci:$SINGLE_DIGEST")\"")" = 1 ] \
  && [ "$(tail -4 "$W/events.jsonl" | grep -c "\"event_payload\":\"$(hex "oci:$OTHER_DIGEST")\"")" = 1 ] \
  && grep -q "stopped compose project e2e-watch" "$W/9.out"; then
  pass "watch: a revoked digest is stopped, the newest approved starts, both launches measured"
else fail "watch switch" "$W/9.out"; fi
kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null
docker rm -f e2e-watch-workload >/dev/null 2>&1

# 10. Restarts and logs (README "Restarts, names and logs"). Before, the default policy was
#     `no`: a failed workload stayed down. Now `on-failure` restarts the same container, whose
#     `docker logs` keep every run; a changed document recreates it and its logs start fresh.
c=$(config restartno "$SINGLE_DIGEST" "detach = true" 'restart = "no"
environment = { E2E_EXIT = "3" }')
exited() { [ "$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>/dev/null)" = "exited 3" ]; }
if launch "$c" "$W/10a.out" && wait_for exited e2e-restartno-workload \
  && [ "$(docker inspect -f '{{.RestartCount}}' e2e-restartno-workload)" = 0 ]; then
  pass "restart = no (the old default): a failed workload stays down"
else fail "restart = no" "$W/10a.out"; fi
docker rm -f e2e-restartno-workload >/dev/null 2>&1
c=$(config restart "$SINGLE_DIGEST" "detach = true" 'environment = { E2E_EXIT = "3", E2E_MESSAGE = "first" }')
runs_of() { docker logs e2e-restart-workload 2>&1 | grep -c "E2E-MESSAGE $1"; }
restarted() { [ "$(docker inspect -f '{{.RestartCount}}' e2e-restart-workload 2>/dev/null || echo 0)" -ge 1 ] && [ "$(runs_of first)" -ge 2 ]; }
if launch "$c" "$W/10b.out" && first_id=$(docker inspect -f '{{.Id}}' e2e-restart-workload) \
  && wait_for restarted && [ "$(docker inspect -f '{{.Id}}' e2e-restart-workload)" = "$first_id" ]; then
  pass "restart on-failure (default): the same container restarts, its logs keep every run"
else
  fail "restart on-failure" "$W/10b.out"
  docker inspect -f 'status={{.State.Status}} restarts={{.RestartCount}} policy={{.HostConfig.RestartPolicy.Name}}' e2e-restart-workload
  docker logs e2e-restart-workload 2>&1 | tail -5
fi
old_id=$(docker inspect -f '{{.Id}}' e2e-restart-workload 2>/dev/null)
c=$(config restart "$SINGLE_DIGEST" "detach = true" 'environment = { E2E_EXIT = "3", E2E_MESSAGE = "second" }')
if launch "$c" "$W/10c.out" && [ -n "$old_id" ] \
  && [ "$(docker inspect -f '{{.Id}}' e2e-restart-workload)" != "$old_id" ] \
  && wait_for sh -c "docker logs e2e-restart-workload 2>&1 | grep -q 'E2E-MESSAGE second'" \
  && ! docker logs e2e-restart-workload 2>&1 | grep -q 'E2E-MESSAGE first'; then
  pass "a changed document recreates the container under the same name; its logs start fresh"
else fail "changed document recreates" "$W/10c.out"; fi
docker rm -f e2e-restart-workload >/dev/null 2>&1

# 11. A signed image (issue 17): `e2e/marker:other` signed here as `cosign sign --key
#     --tlog-upload=false` signs (tests/e2e/sign_image.sh: openssl + the registry API, the .sig
#     manifest attached by digest). Under a key-based [image.signature] it runs, and the
#     verified signer `{"identity":"key:sha256:<hex of the key's DER>"}` is measured between
#     workload and compose; the unsigned `e2e/marker:single`, and the signed one under a policy
#     naming another key, are refused with nothing measured and nothing started.
openssl ecparam -name prime256v1 -genkey -noout -out "$W/cosign.key" 2>/dev/null
openssl ec -in "$W/cosign.key" -pubout -out "$W/cosign.pub" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$W/other.key" 2>/dev/null
openssl ec -in "$W/other.key" -pubout -out "$W/other.pub" 2>/dev/null
key_id=$(openssl pkey -pubin -in "$W/cosign.pub" -outform DER | sha256sum | cut -d' ' -f1)
policy() { printf '[image.signature]\npublic_key = """\n%s\n"""\ntransparency_log = false\n' "$(cat "$1")"; }
signer_hex=$(hex "{\"identity\":\"key:sha256:$key_id\"}")
if tests/e2e/sign_image.sh "$W" e2e/marker "$OTHER_DIGEST" "$W/cosign.key" >"$W/11-sign.out" 2>&1; then
  before=$(events)
  c=$(config signed "$OTHER_DIGEST" "$(policy "$W/cosign.pub")")
  if launch "$c" "$W/11a.out" && grep -q "E2E-MARKER $OTHER_MARKER" "$W/11a.out" \
    && [ "$(events)" -eq $((before + 5)) ] \
    && [ "$(tail -5 "$W/events.jsonl" | jq -r .event | tr '\n' ' ')" = \
      "trusted-launcher.config trusted-launcher.workload trusted-launcher.signer trusted-launcher.compose trusted-launcher.ready " ] \
    && [ "$(tail -3 "$W/events.jsonl" | head -1 | jq -r .event_payload)" = "$signer_hex" ] \
    && [ "$(docker inspect -f '{{.Config.Image}}' e2e-signed-workload)" = "$IMAGE_REPO@$OTHER_DIGEST" ]; then
    pass "signed image: key signature verified, container ran, signer key:sha256:${key_id:0:12}… measured"
  else fail "signed image launch" "$W/11a.out"; fi
  before=$(events)
  c=$(config unsigned "$SINGLE_DIGEST" "$(policy "$W/cosign.pub")")
  if ! launch "$c" "$W/11b.out" \
    && grep -q "$IMAGE_REPO@$SINGLE_DIGEST: no signature verifies under \[image.signature\], so it is not started: no ${SINGLE_DIGEST/:/-}.sig tag" "$W/11b.out" \
    && [ "$(events)" = "$before" ] && [ -z "$(docker ps -aq --filter name=e2e-unsigned)" ]; then
    pass "unsigned image under the same policy refused, nothing measured or started"
  else fail "unsigned image refused" "$W/11b.out"; fi
  c=$(config wrongkey "$OTHER_DIGEST" "$(policy "$W/other.pub")")
  if ! launch "$c" "$W/11c.out" && grep -q "the signature does not verify over the payload" "$W/11c.out" \
    && [ "$(events)" = "$before" ] && [ -z "$(docker ps -aq --filter name=e2e-wrongkey)" ]; then
    pass "signed image under a policy naming another key refused, nothing measured or started"
  else fail "another key refused" "$W/11c.out"; fi
else fail "signing e2e/marker:other" "$W/11-sign.out"; fi
docker rm -f e2e-signed-workload >/dev/null 2>&1

echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
