#!/usr/bin/env bash
# End-to-end tier, step 2: start the real components, all on loopback / private sockets.
#
#   tests/e2e/start.sh [WORKDIR]        (default: a new mktemp dir; printed on stdout)
#
# Starts, in WORKDIR:
#   (a) token_server.py   registry token auth on 127.0.0.1:<free port> (RS256 JWT, x5c header)
#   (b) docker-registry   `serve config.yml` on 127.0.0.1:<free port>, token auth whose realm is
#                         (a), rootcertbundle = (a)'s self-signed signing cert
#   (c) dockerd           --iptables=false --ip6tables=false --bridge=none, private data-root,
#                         exec-root, pidfile, config file and unix socket
# waits (bounded) until each answers, and writes WORKDIR/env: one KEY=VALUE per line, no
# quotes, no spaces (readable by `set -a; . env; set +a` and by a line parser):
#   E2E_WORKDIR REGISTRY REGISTRY_URL REGISTRY_USER REGISTRY_PASSWORD REGISTRY_SERVICE
#   REGISTRY_ISSUER TOKEN_REALM TOKEN_CERT TOKEN_LOG ANON_PULL_REPOS DOCKER_HOST DOCKER_CONFIG
#   DOCKER_DATA_ROOT DOCKER_EXEC_ROOT TOKEN_SERVER_PID REGISTRY_PID DOCKERD_PID
#   TOKEN_SERVER_LOG REGISTRY_LOG DOCKERD_LOG
# DOCKER_CONFIG holds cli-plugins/docker-compose (a link to the plugin setup.sh fetched) and,
# after `docker login`, the credentials: use it with DOCKER_HOST for every docker command.
#
# Knobs (env): E2E_REGISTRY_USER (default e2e-user), E2E_REGISTRY_PASSWORD (default random),
# E2E_ANON_PULL (repositories anonymous clients may pull; default e2e/public),
# E2E_CACHE (where setup.sh put the plugin), E2E_WAIT (seconds per service, default 60).
# Re-running on the same WORKDIR first stops what a previous start left there and wipes it.
# Stop with tests/e2e/stop.sh WORKDIR.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
E2E_CACHE=${E2E_CACHE:-/var/cache/trusted-launcher-e2e}
WAIT=${E2E_WAIT:-60}

if [ $# -ge 1 ] && [ -n "$1" ]; then
  W=$1
  mkdir -p "$W"
else
  W=$(mktemp -d /tmp/e2e.XXXXXX)
fi
W=$(cd "$W" && pwd)
case "$W" in *[[:space:]\'\"\$\\]*) echo "start.sh: WORKDIR must not contain spaces or quotes: $W" >&2; exit 2 ;; esac

fail() {
  echo "start.sh: $*" >&2
  for f in "$W"/token/server.log "$W"/registry/registry.log "$W"/docker/dockerd.log; do
    [ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }
  done
  "$HERE/stop.sh" "$W" >/dev/null 2>&1 || true
  exit 1
}

# Idempotent: a previous run's processes in this WORKDIR are stopped, its state wiped.
"$HERE/stop.sh" "$W" >/dev/null 2>&1 || true
rm -rf "$W/token" "$W/registry" "$W/docker" "$W/docker-config" "$W/env" "$W/images.env" "$W/images"

PLUGIN="$E2E_CACHE/cli-plugins/docker-compose"
[ -x "$PLUGIN" ] || fail "compose plugin missing at $PLUGIN: run tests/e2e/setup.sh"
for c in dockerd docker docker-registry openssl python3 curl; do
  command -v "$c" >/dev/null 2>&1 || fail "missing $c: run tests/e2e/setup.sh"
done

USER_=${E2E_REGISTRY_USER:-e2e-user}
PASS_=${E2E_REGISTRY_PASSWORD:-$(openssl rand -hex 16)}
ANON=${E2E_ANON_PULL-e2e/public}
SERVICE=e2e-registry
ISSUER=e2e-token-issuer

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS PID DESC CMD...: poll CMD until it succeeds, the PID dies, or time runs out.
wait_for() {
  local secs=$1 pid=$2 desc=$3; shift 3
  local deadline=$((SECONDS + secs))
  while ! "$@" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || fail "$desc exited during start-up"
    [ $SECONDS -lt $deadline ] || fail "$desc did not answer within ${secs}s"
    sleep 0.2
  done
}

# --- (a) token server -----------------------------------------------------------------------
mkdir -p "$W/token"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
  -keyout "$W/token/key.pem" -out "$W/token/cert.pem" -subj "/CN=$ISSUER" >/dev/null 2>&1 ||
  fail "openssl req failed"
chmod 600 "$W/token/key.pem"
E2E_TOKEN_USER="$USER_" E2E_TOKEN_PASSWORD="$PASS_" setsid python3 "$HERE/token_server.py" \
  --listen 127.0.0.1:0 --port-file "$W/token/port" \
  --key "$W/token/key.pem" --cert "$W/token/cert.pem" \
  --issuer "$ISSUER" --service "$SERVICE" --anon-pull "$ANON" \
  --log "$W/token/requests.jsonl" </dev/null >"$W/token/server.log" 2>&1 &
TOKEN_PID=$!
echo "$TOKEN_PID" >"$W/token/pid"
wait_for "$WAIT" "$TOKEN_PID" "token server" test -s "$W/token/port"
TPORT=$(cat "$W/token/port")
REALM="http://127.0.0.1:$TPORT/token"
wait_for "$WAIT" "$TOKEN_PID" "token server" curl -fsS -m 2 "http://127.0.0.1:$TPORT/healthz"

# --- (b) registry ---------------------------------------------------------------------------
mkdir -p "$W/registry/data"
start_registry() {
  RPORT=$(free_port)
  cat >"$W/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $W/registry/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$RPORT
  secret: $(openssl rand -hex 16)
auth:
  token:
    realm: $REALM
    service: $SERVICE
    issuer: $ISSUER
    rootcertbundle: $W/token/cert.pem
EOF
  setsid docker-registry serve "$W/registry/config.yml" </dev/null >"$W/registry/registry.log" 2>&1 &
  REG_PID=$!
  echo "$REG_PID" >"$W/registry/pid"
}
# The free port can be taken between probe and bind: retry a few times.
for _ in 1 2 3; do
  start_registry
  deadline=$((SECONDS + WAIT))
  ok=""
  while [ $SECONDS -lt $deadline ]; do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RPORT/v2/" || true)
    [ "$code" = 401 ] && { ok=1; break; }
    kill -0 "$REG_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$ok" ] && break
  kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
done
[ -n "$ok" ] || fail "registry did not answer 401 on /v2/"
REGISTRY="127.0.0.1:$RPORT"

# --- (c) dockerd ----------------------------------------------------------------------------
# Sockets have a 108-byte path limit and containerd nests under exec-root: keep it short.
if [ ${#W} -le 40 ]; then
  XR="$W/docker/x"
else
  XR=$(mktemp -d /tmp/e2ex.XXXXXX)
  ln -s "$XR" "$W/docker-exec-root-link" 2>/dev/null || true
fi
mkdir -p "$W/docker/data" "$XR"
SOCK="$XR/docker.sock"
echo '{}' >"$W/docker/daemon.json"
setsid dockerd --iptables=false --ip6tables=false --bridge=none \
  --data-root "$W/docker/data" --exec-root "$XR" --pidfile "$XR/docker.pid" \
  --config-file "$W/docker/daemon.json" -H "unix://$SOCK" \
  </dev/null >"$W/docker/dockerd.log" 2>&1 &
DOCKERD_PID=$!
echo "$DOCKERD_PID" >"$W/docker/pid"
echo "$XR" >"$W/docker/exec-root"
wait_for "$WAIT" "$DOCKERD_PID" "dockerd" curl -fsS -m 2 --unix-socket "$SOCK" http://d/_ping

# --- docker client config with the compose v2 plugin ------------------------------------------
mkdir -p "$W/docker-config/cli-plugins"
ln -sf "$PLUGIN" "$W/docker-config/cli-plugins/docker-compose"
echo '{}' >"$W/docker-config/config.json"
chmod 700 "$W/docker-config"
DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$W/docker-config" timeout 30 docker version >/dev/null 2>&1 ||
  fail "docker version against the private dockerd failed"

# --- env file -------------------------------------------------------------------------------
cat >"$W/env.tmp" <<EOF
E2E_WORKDIR=$W
REGISTRY=$REGISTRY
REGISTRY_URL=http://$REGISTRY
REGISTRY_USER=$USER_
REGISTRY_PASSWORD=$PASS_
REGISTRY_SERVICE=$SERVICE
REGISTRY_ISSUER=$ISSUER
TOKEN_REALM=$REALM
TOKEN_CERT=$W/token/cert.pem
TOKEN_LOG=$W/token/requests.jsonl
ANON_PULL_REPOS=$ANON
DOCKER_HOST=unix://$SOCK
DOCKER_CONFIG=$W/docker-config
DOCKER_DATA_ROOT=$W/docker/data
DOCKER_EXEC_ROOT=$XR
TOKEN_SERVER_PID=$TOKEN_PID
REGISTRY_PID=$REG_PID
DOCKERD_PID=$DOCKERD_PID
TOKEN_SERVER_LOG=$W/token/server.log
REGISTRY_LOG=$W/registry/registry.log
DOCKERD_LOG=$W/docker/dockerd.log
EOF
chmod 600 "$W/env.tmp"
mv "$W/env.tmp" "$W/env"
echo "$W"
