#!/usr/bin/env bash
# Builds a static trusted-launcher binary reproducibly and prints its SHA-256.
# The same commit gives the same bytes whatever the checkout directory, the build time or
# the user: paths are remapped (Rust and the C/asm that ring compiles), the timestamp is the
# commit's, one codegen unit, no build ID, symbols stripped, dependencies from Cargo.lock.
#
# Usage: docker/build-binary.sh [--verifier] [OUTPUT]
#   default:     the launcher image's binary, `--no-default-features` (no `verify`
#                subcommand, none of DCAP's crates); OUTPUT defaults to
#                target/reproducible/trusted-launcher
#   --verifier:  the verifier's binary, with the `verify` feature (the default features);
#                OUTPUT defaults to target/reproducible/trusted-launcher-verifier
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-unknown-linux-gnu
features=(--no-default-features)
name=trusted-launcher
if [ "${1:-}" = --verifier ]; then
  features=(--features verify)
  name=trusted-launcher-verifier
  shift
fi
out=${1:-target/reproducible/$name}
cargo_home=${CARGO_HOME:-$HOME/.cargo}

export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export CARGO_INCREMENTAL=0
export RUSTFLAGS="-C target-feature=+crt-static -C codegen-units=1 -C strip=symbols \
-C link-arg=-Wl,--build-id=none \
--remap-path-prefix=$root=/build --remap-path-prefix=$cargo_home=/cargo"
# ring and other -sys crates compile C and assembly: keep their paths out of the objects.
prefix_map="-ffile-prefix-map=$root=/build -ffile-prefix-map=$cargo_home=/cargo"
export CFLAGS_x86_64_unknown_linux_gnu="$prefix_map"
export ASMFLAGS_x86_64_unknown_linux_gnu="$prefix_map"
# A private target dir: a previous non-reproducible build in target/ must not be reused.
export CARGO_TARGET_DIR=$root/target/reproducible-build

cargo build --release --locked --target "$target" "${features[@]}" --quiet
mkdir -p "$(dirname "$out")"
cp "$CARGO_TARGET_DIR/$target/release/trusted-launcher" "$out"
sha256sum "$out" | cut -d' ' -f1
