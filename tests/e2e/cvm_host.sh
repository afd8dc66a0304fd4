#!/usr/bin/env bash
# End-to-end tier: a second dockerd that sees the host paths a dstack CVM has, without
# touching this machine's own /run or /.
#
#   tests/e2e/cvm_host.sh start DIR AGENT_SOCKET TAPP_DIR   (prints DIR/env's DOCKER_HOST line)
#   tests/e2e/cvm_host.sh stop DIR
#
# Why: NEAR's node compose (assets/near-mpc-node-compose.yaml, as NEAR's launcher renders it)
# bind-mounts the HOST paths `/tapp` and `/var/run/dstack.sock`, which exist in a dstack CVM
# (dstack puts the user config under /tapp and serves its agent on /var/run/dstack.sock).
# The engine resolves a bind source in its own mount namespace and creates a missing one as a
# directory (Docker docs, "Bind mounts": "If you use -v to bind-mount a file or directory
# that does not yet exist on the Docker host, -v creates the endpoint for you"). Run against
# the machine's engine, that would leave /tapp and a /var/run/dstack.sock directory on this
# machine. So this dockerd runs in a private mount namespace (unshare --mount) whose root is a
# tmpfs holding bind mounts of every top-level directory of the machine's root, except:
#   /run     a fresh tmpfs: dstack.sock (a bind of AGENT_SOCKET, the fake agent) and
#            docker.sock (this dockerd), as in a CVM (/var/run -> /run)
#   /tapp    a bind of TAPP_DIR (read-only), where dstack keeps /tapp/user_config
# then pivot_root into it. The network namespace is the machine's: the registry on
# 127.0.0.1 is reachable, compose networks are real bridges (dockerd --bridge=none only
# drops the default bridge; user-defined ones, and ports published through docker-proxy,
# work: observed here with dockerd 20.10.24).
#
# DIR holds everything (data root, exec root, log, env). DIR/env: DOCKER_HOST=unix://DIR/x/
# docker.sock (the same socket as /run/docker.sock inside), CVM_DOCKERD_PID, CVM_DOCKERD_LOG.
# Bounded: start waits at most E2E_WAIT seconds (default 60); stop gives dockerd 45 s, then
# kills by pid what is left of it (matched by DIR in the command line).
set -uo pipefail

WAIT=${E2E_WAIT:-60}
cmd=${1:-}
DIR=${2:?usage: cvm_host.sh start DIR AGENT_SOCKET TAPP_DIR | stop DIR}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

cmdline() { { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null; }
ours() { # pids whose command line names DIR (this dockerd, its containerd, shims)
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    [[ "$(cmdline "$p")" == *"$DIR/"* ]] && echo "$p"
  done
}

stop() {
  local pid deadline
  pid=$(cat "$DIR/pid" 2>/dev/null)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ "$(cmdline "$pid")" == *"$DIR/"* ]]; then
    kill -TERM "$pid" 2>/dev/null
    deadline=$((SECONDS + 45))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  fi
  for _ in 1 2 3; do
    pids=$(ours)
    [ -z "$pids" ] && break
    for p in $pids; do kill -KILL "$p" 2>/dev/null; done
    sleep 0.5
  done
  rm -f "$DIR/pid"
  # The namespace's mounts go with its last process; the engine's bridges with their networks.
}

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: cvm_host.sh start DIR AGENT_SOCKET TAPP_DIR | stop DIR" >&2; exit 2 ;;
esac

AGENT=${3:?usage: cvm_host.sh start DIR AGENT_SOCKET TAPP_DIR}
TAPP=${4:?usage: cvm_host.sh start DIR AGENT_SOCKET TAPP_DIR}
[ -S "$AGENT" ] || { echo "cvm_host.sh: no socket at $AGENT" >&2; exit 2; }
[ -d "$TAPP" ] || { echo "cvm_host.sh: no directory $TAPP" >&2; exit 2; }
stop
rm -rf "$DIR/root" "$DIR/x" "$DIR/env"
mkdir -p "$DIR/root" "$DIR/data" "$DIR/x"
XR="$DIR/x"

# The namespace's set-up, then `exec dockerd` (its pid is the one `unshare` started).
cat >"$DIR/ns.sh" <<'NS'
set -eu
R=$1 XR=$2 DATA=$3 AGENT=$4 TAPP=$5
mount -t tmpfs -o mode=0755 cvm-root "$R"
for d in /*; do
  n=${d#/}
  case $n in proc | sys | dev | run | tapp) continue ;; esac
  if [ -L "$d" ]; then cp -P "$d" "$R/$n"
  elif [ -d "$d" ]; then mkdir "$R/$n" && mount --rbind "$d" "$R/$n"
  fi
done
for n in proc sys dev; do mkdir "$R/$n" && mount --rbind "/$n" "$R/$n"; done
mkdir "$R/run" "$R/tapp"
mount -t tmpfs -o mode=0755 cvm-run "$R/run"
: >"$R/run/dstack.sock"
mount --bind "$AGENT" "$R/run/dstack.sock"
mount --bind "$TAPP" "$R/tapp"
mount -o remount,bind,ro "$R/tapp"
cd "$R"
mkdir .old
pivot_root . .old
umount -l /.old
rmdir /.old
exec dockerd --iptables=false --ip6tables=false --bridge=none \
  --data-root "$DATA" --exec-root "$XR" --pidfile "$XR/docker.pid" \
  -H "unix://$XR/docker.sock" -H unix:///run/docker.sock
NS
setsid unshare --mount --propagation private bash "$DIR/ns.sh" \
  "$DIR/root" "$XR" "$DIR/data" "$AGENT" "$TAPP" </dev/null >"$DIR/dockerd.log" 2>&1 &
echo $! >"$DIR/pid"
deadline=$((SECONDS + WAIT))
until curl -fsS -m 2 --unix-socket "$XR/docker.sock" http://d/_ping >/dev/null 2>&1; do
  if [ $SECONDS -ge $deadline ] || { [ ! -s "$XR/docker.pid" ] && ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }; then
    echo "cvm_host.sh: dockerd did not answer within ${WAIT}s" >&2
    tail -n 20 "$DIR/dockerd.log" >&2
    stop
    exit 1
  fi
  sleep 0.2
done
# dockerd's own pid (setsid forks when it is a process group leader).
cp "$XR/docker.pid" "$DIR/pid" 2>/dev/null
{
  echo "DOCKER_HOST=unix://$XR/docker.sock"
  echo "CVM_DOCKERD_PID=$(cat "$DIR/pid")"
  echo "CVM_DOCKERD_LOG=$DIR/dockerd.log"
} >"$DIR/env"
head -n1 "$DIR/env"
