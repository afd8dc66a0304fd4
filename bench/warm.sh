#!/usr/bin/env bash
# Warm-restart benchmark: trusted-launcher against a bare bash baseline doing git-launcher's
# warm path (fetch only if the commit is missing, `checkout --force`, `reset --hard`,
# `clean -ffdx`, verify HEAD, exec), interleaved runs, min and median, on 10 files, 5,000
# small files and 50 x 1 MiB files; then a cold start from a long history and a cold start
# from a server refusing fetch-by-id (protocol v0 smart HTTP), each against the baseline's
# full clone; and the launcher's peak RSS. No build here: give the binary (and, optionally, an
# older binary to compare with).
# Usage: bench/warm.sh BINARY [OLD_BINARY] [RUNS]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BINARY [OLD_BINARY] [RUNS]" >&2; exit 2; }
bin=$(realpath "$1")
old=${2:+$(realpath "$2")}
runs=${3:-15}
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp" # the CGI server below may run as nobody
export GIT_AUTHOR_NAME=b GIT_AUTHOR_EMAIL=b@b GIT_COMMITTER_NAME=b GIT_COMMITTER_EMAIL=b@b
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

# git-launcher's warm and cold paths, minus its config parsing, logging and remote checks.
cat >"$tmp/baseline.sh" <<'SH'
#!/usr/bin/env bash
set -euo pipefail
url=$1 sha=$2 work=$3
if [ ! -d "$work/.git" ]; then git clone --quiet --no-checkout "$url" "$work"; fi
cd "$work"
git cat-file -e "$sha^{commit}" 2>/dev/null || git fetch --quiet origin
git checkout --quiet --force --detach "$sha"
git reset --quiet --hard "$sha"
git clean -q -ffdx
[ "$(git rev-parse HEAD)" = "$sha" ]
exec bash entrypoint.sh
SH
chmod +x "$tmp/baseline.sh"

now() { echo "${EPOCHREALTIME/./}"; } # microseconds, no process
stats() { # microsecond samples -> "min median" in ms
  sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f\n", a[1]/1000, m/1000}'
}

# make_repo NAME FILES BYTES: a repository of FILES random files of BYTES each in 50 dirs.
make_repo() {
  local dir=$tmp/$1 files=$2 bytes=$3 per d
  git init -q --bare --initial-branch=main "$dir/origin.git"
  git init -q "$dir/src"
  per=$(( (files + 49) / 50 ))
  for ((d = 0; d < 50 && d * per < files; d++)); do
    local n=$(( files - d * per < per ? files - d * per : per ))
    mkdir -p "$dir/src/d$d"
    head -c $(( n * bytes )) /dev/urandom | (cd "$dir/src/d$d" && split -b "$bytes" -a 4 - f)
  done
  echo 'true' >"$dir/src/entrypoint.sh"
  git -C "$dir/src" add -A
  git -C "$dir/src" commit -qm bench
  git -C "$dir/src" push -q "$dir/origin.git" HEAD:refs/heads/main
  git -C "$dir/src" rev-parse HEAD
}

conf() { # DIR URL SHA WORK
  printf 'REPO_URL=%s\nCOMMIT_SHA=%s\nWORK_DIR=%s\n' "$2" "$3" "$4" >"$1/$(basename "$4").conf"
  echo "$1/$(basename "$4").conf"
}

ours() {
  "$1" --platform nontee --event-log "$2/events-$(basename "$3").jsonl" "$3" >/dev/null 2>"$2/stderr" ||
    { cat "$2/stderr" >&2; exit 1; }
}

rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }

# warm NAME LABEL FILES BYTES
warm() {
  local label=$2 dir=$tmp/$1 sha t0 t1 i
  sha=$(make_repo "$1" "$3" "$4")
  local url=file://$dir/origin.git
  local c_new c_old
  c_new=$(conf "$dir" "$url" "$sha" "$dir/new")
  ours "$bin" "$dir" "$c_new"
  if [ -n "$old" ]; then c_old=$(conf "$dir" "$url" "$sha" "$dir/old"); ours "$old" "$dir" "$c_old"; fi
  "$tmp/baseline.sh" "$url" "$sha" "$dir/base" >/dev/null
  : >"$dir/t.new"; : >"$dir/t.old"; : >"$dir/t.base"
  for ((i = 0; i < runs; i++)); do
    # Alternate the order, so neither always runs on a warmer cache.
    for who in $( ((i % 2)) && echo "base new old" || echo "old new base"); do
      case $who in
        new) t0=$(now); ours "$bin" "$dir" "$c_new"; t1=$(now); echo $((t1 - t0)) >>"$dir/t.new" ;;
        old) [ -n "$old" ] || continue
             t0=$(now); ours "$old" "$dir" "$c_old"; t1=$(now); echo $((t1 - t0)) >>"$dir/t.old" ;;
        base) t0=$(now); "$tmp/baseline.sh" "$url" "$sha" "$dir/base" >/dev/null; t1=$(now)
              echo $((t1 - t0)) >>"$dir/t.base" ;;
      esac
    done
  done
  report "warm, $label" "$dir"
  printf '    peak RSS: ours %s KiB' "$(rss "$bin" --platform nontee --event-log "$dir/events-new.jsonl" "$c_new")"
  [ -n "$old" ] && printf ', old %s KiB' "$(rss "$old" --platform nontee --event-log "$dir/events-old.jsonl" "$c_old")"
  printf ', baseline %s KiB\n' "$(rss "$tmp/baseline.sh" "$url" "$sha" "$dir/base")"
}

report() { # LABEL DIR: min/median of each, ratios of ours to the baseline
  local label=$1 dir=$2 new base oldt
  read -r new_min new_med < <(stats <"$dir/t.new")
  read -r base_min base_med < <(stats <"$dir/t.base")
  printf '%-34s ours %7.1f / %7.1f ms   baseline %7.1f / %7.1f ms   ratio %.2f / %.2f' \
    "$label (min / median)" "$new_min" "$new_med" "$base_min" "$base_med" \
    "$(awk "BEGIN{print $new_min/$base_min}")" "$(awk "BEGIN{print $new_med/$base_med}")"
  if [ -s "$dir/t.old" ]; then
    read -r old_min old_med < <(stats <"$dir/t.old")
    printf '   before this change %7.1f / %7.1f ms' "$old_min" "$old_med"
  fi
  echo
}

# cold LABEL URL SHA: fresh work dirs each run; ours against the baseline's full clone.
cold() {
  local label=$1 url=$2 sha=$3 dir=$tmp/cold-$4 t0 t1 i c
  mkdir -p "$dir"; : >"$dir/t.new"; : >"$dir/t.base"; : >"$dir/t.old"
  for ((i = 0; i < ${5:-3}; i++)); do
    rm -rf "$dir/new" "$dir/base" "$dir/old"
    c=$(conf "$dir" "$url" "$sha" "$dir/new")
    t0=$(now); ours "$bin" "$dir" "$c"; t1=$(now); echo $((t1 - t0)) >>"$dir/t.new"
    [ "$(git -C "$dir/new" rev-parse HEAD)" = "$sha" ] || { echo "ours did not check out $sha" >&2; exit 1; }
    if [ -n "$old" ]; then
      c=$(conf "$dir" "$url" "$sha" "$dir/old")
      t0=$(now); ours "$old" "$dir" "$c"; t1=$(now); echo $((t1 - t0)) >>"$dir/t.old"
    fi
    t0=$(now); "$tmp/baseline.sh" "$url" "$sha" "$dir/base" >/dev/null; t1=$(now)
    echo $((t1 - t0)) >>"$dir/t.base"
  done
  report "$label" "$dir"
}

# A long history: COMMITS commits, each rewriting one of 500 files of 2 KiB (fast-import).
long_history() {
  local dir=$tmp/long commits=$1
  git init -q --bare --initial-branch=main "$dir/origin.git"
  {
    for ((i = 1; i <= commits; i++)); do
      echo "commit refs/heads/main"
      echo "committer b <b@b> $((1700000000 + i)) +0000"
      local msg="c$i"
      echo "data ${#msg}"; echo "$msg"
      if ((i == 1)); then
        echo "M 100644 inline entrypoint.sh"; echo "data 5"; echo "true"
        for ((f = 0; f < 500; f++)); do
          echo "M 100644 inline f$f"; echo "data 2048"; head -c 1536 /dev/urandom | base64 -w0 | head -c 2048
          echo
        done
      else
        echo "M 100644 inline f$((i % 500))"; echo "data 2048"; head -c 1536 /dev/urandom | base64 -w0 | head -c 2048
        echo
      fi
    done
  } | git -C "$dir/origin.git" fast-import --quiet
  git -C "$dir/origin.git" rev-parse main
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg); $(git --version); tmp on $(df --output=fstype "$tmp" | tail -1)"
echo "runs: $runs interleaved per warm fixture; times are min / median wall time"
warm small "10 files" 10 1024
warm many "5,000 files x 10 KiB" 5000 10240
warm large "50 files x 1 MiB" 50 1048576

commits=${LONG_HISTORY:-3000}
sha=$(long_history "$commits")
cold "cold, $commits commits (file://)" "file://$tmp/long/origin.git" "$sha" file
# A server refusing fetch-by-id: git-http-backend behind Python's CGI server speaks v0
# (no Git-Protocol header is passed on), and upload-pack refuses unadvertised wants.
if command -v python3 >/dev/null; then
  mkdir -p "$tmp/http/cgi-bin"
  printf '#!/bin/sh\nexport GIT_PROJECT_ROOT=%s GIT_HTTP_EXPORT_ALL=1 GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=*\nexec %s/git-http-backend\n' \
    "$tmp" "$(git --exec-path)" >"$tmp/http/cgi-bin/git"
  chmod 755 "$tmp/http/cgi-bin/git"
  python3 -u -m http.server --cgi 0 --bind 127.0.0.1 --directory "$tmp/http" >"$tmp/http.log" 2>/dev/null &
  server_pid=$!
  for _ in $(seq 100); do grep -q port "$tmp/http.log" 2>/dev/null && break; sleep 0.1; done
  port=$(grep -o 'port [0-9]*' "$tmp/http.log" | cut -d' ' -f2)
  below=$(git -C "$tmp/long/origin.git" rev-parse main~5)
  cold "refused by id, $commits commits (v0 HTTP)" "http://127.0.0.1:$port/cgi-bin/git/long/origin.git" "$below" http 3
fi
