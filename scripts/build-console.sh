#!/usr/bin/env bash
# Builds the console into target/site (or $1) as static files for S3: index.html,
# config.json, pkg/inventory_console.{js,wasm,css}. The same steps cargo-leptos runs, with
# wasm-bindgen-cli from crates.io (the version in Cargo.lock). No wasm-opt: the
# `wasm-release` profile (opt-level "z", fat LTO) already gives a smaller gzipped module
# than Debian's wasm-opt 108 -Oz, and that wasm-opt breaks wasm-bindgen's externref table.
set -euo pipefail
cd "$(dirname "$0")/.."
site="${1:-target/site}"
target_dir="${CARGO_TARGET_DIR:-target}"

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (matches Cargo.lock; once, a few minutes)…" >&2
  # Not --locked: its published lock names a webpki-roots release some crates.io mirrors lack.
  cargo install wasm-bindgen-cli --version "$want"
fi

cargo build --locked -p inventory-console --target wasm32-unknown-unknown --profile wasm-release
mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$site/pkg" --out-name inventory_console \
  "$target_dir/wasm32-unknown-unknown/wasm-release/inventory_console.wasm"
# cargo-leptos names the module <output-name>.wasm; index.html loads it by that name.
mv "$site/pkg/inventory_console_bg.wasm" "$site/pkg/inventory_console.wasm"
cp style/main.css "$site/pkg/inventory_console.css"
cp console/index.html "$site/index.html"
cp console/boot.js "$site/boot.js"
# Same origin by default; deploy writes the API's URL here.
[ -f "$site/config.json" ] || echo '{"api_base_url": ""}' > "$site/config.json"
gz=$(gzip -9 -c "$site/pkg/inventory_console.wasm" | wc -c)
echo "console built in $site: wasm $(wc -c < "$site/pkg/inventory_console.wasm") bytes, $gz gzipped"
