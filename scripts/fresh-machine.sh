#!/usr/bin/env bash
# Reproduces a new user's first run, timed: a fresh clone with its own RUSTUP_HOME,
# CARGO_HOME and target dir (cold caches, the pinned toolchain not installed), then the
# README's two commands. Not part of `make test`: it downloads a toolchain and builds
# everything from scratch (tens of minutes on 2 cores).
#   scripts/fresh-machine.sh [WORKDIR]        (default: a new directory under /tmp)
#   REV=<commit>   measure that commit instead of HEAD (e.g. one from before this script)
#   PREINSTALL=1   install the pinned toolchain first, untimed (for commits whose make demo
#                  did not install it yet)
#   SKIP_TEST=1    stop after the demo's verdict
# Prints the seconds to the demo's verdict ("0 mismatches") and the test command's result.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(mktemp -d /tmp/fresh-machine.XXXXXX)}"
mkdir -p "$work"
export RUSTUP_HOME="$work/rustup" CARGO_HOME="$work/cargo"
export PATH="$CARGO_HOME/bin:$PATH"
unset CARGO_TARGET_DIR RUSTUP_TOOLCHAIN
# A rustup of its own, from the installed one, with no toolchain at all.
mkdir -p "$CARGO_HOME/bin"
cp "$(command -v rustup)" "$CARGO_HOME/bin/rustup"
for tool in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
  ln -sf rustup "$CARGO_HOME/bin/$tool"
done
rustup set profile minimal >/dev/null
git clone -q "$repo" "$work/clone"
cd "$work/clone"
git checkout -q "${REV:-HEAD}"
[ "${PREINSTALL:-0}" = 1 ] && rustup toolchain install --no-self-update >/dev/null
log="$work/demo.log"
start=$(date +%s)
# The demo serves the console after its verdict (--serve); stop it once the verdict is out.
# Its own process group, so the demo and its background console build stop together.
setsid make demo >"$log" 2>&1 &
demo=$!
verdict=""
verdict_seen() { grep -qE '(^|[^0-9,])0 mismatches' "$log"; }
while kill -0 "$demo" 2>/dev/null; do
  if verdict_seen; then verdict=$(( $(date +%s) - start )); break; fi
  sleep 1
done
# The demo may have ended (no console to serve) between two looks.
[ -z "$verdict" ] && verdict_seen && verdict=$(( $(date +%s) - start ))
kill -- "-$demo" 2>/dev/null || true
wait "$demo" 2>/dev/null || true
if [ -z "$verdict" ]; then
  echo "make demo did not print '0 mismatches'; see $log" >&2
  exit 1
fi
echo "fresh machine: clone to verdict in ${verdict} s ($(nproc) cores); log $log"
if [ "${SKIP_TEST:-0}" != 1 ]; then
  start=$(date +%s)
  make test >"$work/test.log" 2>&1 && rc=0 || rc=$?
  echo "fresh machine: make test exited $rc in $(( $(date +%s) - start )) s; log $work/test.log"
  exit "$rc"
fi
