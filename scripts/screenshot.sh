#!/usr/bin/env bash
# The README's screenshot (docs/console.png, or $1) from a real browser: builds the console,
# then runs the browser test file's `readme_screenshot` (headless Chromium over chromedriver,
# as the browser test drives it) against the local stack, the embedded emulators and the
# local Pipe after a `make demo`-sized simulation (200 products, 20,000 events at 2,000/s,
# 5 % duplicates, 1 % malformed, 1 % invalid), and saves the page as a 1280 px wide PNG.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/console.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
./scripts/setup.sh test
./scripts/build-console.sh target/site
SCREENSHOT="$out" cargo test --locked -p inventory-local --test browser readme_screenshot \
  -- --ignored --exact --nocapture
echo "screenshot: $out"
