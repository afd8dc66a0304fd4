#!/usr/bin/env bash
# fuzz/run.sh [SECONDS]: builds every fuzz target (libFuzzer, AddressSanitizer) and runs each
# for SECONDS (default 20) on its committed seeds (fuzz/seeds/<target>) plus the corpus it
# grew before (fuzz/corpus/<target>, not committed). Prints per target the executions,
# executions per second (the benchmark figure), coverage (libFuzzer's cov / ft) and crashes;
# exits non-zero if any target crashed, hung or ran out of memory. A reproducer is left in
# fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#
# Environment: FUZZ_SANITIZER (address, or none where ASan is unavailable), FUZZ_TARGETS
# (space-separated subset), FUZZ_JOBS_LOG_DIR (where each target's libFuzzer log goes).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:-20}
case $seconds in '' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;; esac

# Pinned: cargo-fuzz's flags and libFuzzer's output are what this script reads.
cargo_fuzz_version=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
  echo "== installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

# cargo-fuzz passes -Zsanitizer and -Cpasses=sancov-module; only stable Rust is available
# here, which accepts them with RUSTC_BOOTSTRAP=1 (ASan's runtime ships with rust-std).
export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
logs=${FUZZ_JOBS_LOG_DIR:-target/fuzz-logs}
mkdir -p "$logs"

echo "== building the fuzz targets (sanitizer: $sanitizer)"
build_start=$SECONDS
cargo fuzz build --sanitizer "$sanitizer"
echo "built in $((SECONDS - build_start)) s"

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
failed=()
rows=()
for target in $targets; do
  mkdir -p "corpus/$target" "seeds/$target"
  log="$logs/$target.log"
  echo "== $target: ${seconds}s"
  status=0
  # -timeout: one input running 30 s is a hang, a finding like a crash.
  cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
    >"$log" 2>&1 || status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  crashes=$(grep -c 'Test unit written to' "$log" || true)
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # a failure libFuzzer wrote no unit for (build or start-up): still a failure
  fi
  if [ "$crashes" -ne 0 ]; then
    failed+=("$target")
    grep -E 'panicked|ERROR|SUMMARY|Test unit written to' "$log" | head -n 8 >&2 || true
  fi
  rows+=("$(printf '%-18s %12s %10s %7s %7s %8s' "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$crashes")")
done

echo
printf '%-18s %12s %10s %7s %7s %8s\n' target executions exec/s cov ft crashes
printf '%s\n' "${rows[@]}"
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzzing FAILED: ${failed[*]} (logs in fuzz/$logs, reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crash in $(wc -w <<<"$targets") targets, ${seconds}s each"
