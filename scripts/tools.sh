#!/usr/bin/env bash
# Installs the deploy and lint tools from PyPI into virtualenvs outside the clone (no binary
# downloads from websites) and prints the PATH entries to use. Idempotent; versions pinned so
# a lint result does not change under us.
#   cfn-lint, checkov     -> venv-infra   (template lint)
#   aws-sam-cli           -> venv-sam     (SAM transform, validate, deploy; brings boto3)
#   cargo-lambda, ziglang -> venv-lambda  (arm64 Lambda zips)
#   schemathesis          -> venv-api     (the API's property-based contract test; not a default)
set -euo pipefail
root="${INVENTORY_TOOLS:-$HOME/.cache/inventory-pipeline}"
want="${*:-infra sam lambda}"
for kind in $want; do
  venv="$root/venv-$kind"
  case "$kind" in
    infra) pkgs="cfn-lint==1.58.0 checkov==3.3.30"; probe="checkov" ;;
    sam) pkgs="aws-sam-cli==1.170.0"; probe="sam" ;;
    lambda) pkgs="cargo-lambda==1.9.2 ziglang==0.17.1"; probe="cargo-lambda" ;;
    api) pkgs="schemathesis==4.32.5"; probe="schemathesis" ;;
    *) echo "unknown tool set $kind" >&2; exit 2 ;;
  esac
  stamp="$venv/.installed"
  if [ ! -x "$venv/bin/$probe" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$pkgs" ]; then
    echo "installing $pkgs into $venv…" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check $pkgs >&2
    echo "$pkgs" > "$stamp"
  fi
  printf '%s/bin:' "$venv"
done
