#!/usr/bin/env bash
# Installs what `make demo` and `make test` need that cargo does not: the toolchain pinned in
# rust-toolchain.toml (rustup 1.28+ no longer installs it on first use), and for the tests
# Debian's Chromium and ChromeDriver and python3-venv. Only package registries and the Rust
# dist server; idempotent and quick when everything is there.
#   scripts/setup.sh            the toolchain (make demo, make dev)
#   scripts/setup.sh test       the toolchain, Chromium + ChromeDriver, python3-venv (make test)
set -euo pipefail
cd "$(dirname "$0")/.."

# `rustup toolchain install` without arguments reads rust-toolchain.toml, components and
# targets included.
channel=$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)
targets=$(sed -n 's/^targets = \[\(.*\)\]/\1/p' rust-toolchain.toml | tr -d '",')
installed=$(rustup target list --installed --toolchain "$channel" 2>/dev/null || true)
need_install=""
rustup run "$channel" rustc --version >/dev/null 2>&1 || need_install=1
for target in $targets; do
  grep -qx "$target" <<<"$installed" || need_install=1
done
if [ -n "$need_install" ]; then
  echo "installing the Rust toolchain pinned in rust-toolchain.toml…" >&2
  rustup toolchain install --no-self-update
fi

[ "${1:-}" = test ] || exit 0

missing=""
command -v chromium >/dev/null || missing="$missing chromium"
command -v chromedriver >/dev/null || missing="$missing chromium-driver"
python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
  sudo="sudo"
else
  echo "make test needs Debian packages:$missing. Install them with: sudo apt-get install -y$missing (then run make test again)" >&2
  exit 1
fi
echo "installing$missing from Debian's packages…" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
