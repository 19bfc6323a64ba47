#!/usr/bin/env bash
# Fuzzes record decoding and validation (fuzz/fuzz_targets/decode_batch.rs) with cargo-fuzz
# (libFuzzer) for a bounded time: FUZZ_SECONDS (default 60). Installs what it needs from the
# Rust dist server and crates.io: the pinned nightly (cargo-fuzz needs it) and cargo-fuzz.
# New inputs go to a scratch directory; the committed corpus (fuzz/corpus/decode_batch) is
# read, never written. A crash fails the run and leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
nightly=nightly-2026-07-09
seconds="${FUZZ_SECONDS:-60}"

rustup toolchain list | grep -q "^$nightly" || rustup toolchain install "$nightly" --profile minimal
cargo fuzz --version 2>/dev/null | grep -q "0.13.1" || cargo install cargo-fuzz --version 0.13.1 --locked

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cargo "+$nightly" fuzz run decode_batch "$scratch" fuzz/corpus/decode_batch -- \
  -max_total_time="$seconds" -max_len=65536 -print_final_stats=1
echo "fuzz: no crash in ${seconds}s"
