#!/usr/bin/env bash
# The API's contract, tested from the document it serves: starts the local stack
# (`inventory-local up`, the `dev` build), then runs Schemathesis (PyPI, pinned in
# scripts/tools.sh) against http://127.0.0.1:<port>/api/openapi.json on every operation,
# once without credentials and once with the local API token. It fails on a 5xx, on a
# response the document does not describe (status, content type, body, headers), and on a
# schema-valid request refused (scripts/api_contract_hooks.py names the two refusals JSON
# Schema cannot state). Bounded: API_CONTRACT_EXAMPLES cases per operation and
# API_CONTRACT_SECONDS per pass. `make test` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh api)$PATH"
examples="${API_CONTRACT_EXAMPLES:-25}"
seconds="${API_CONTRACT_SECONDS:-40}"
bin_dir="${CARGO_TARGET_DIR:-target}/debug"
out="${API_CONTRACT_OUT:-target/api-contract}"
mkdir -p "$out"

# The dev profile `cargo test` has mostly built already; the stack runs the processor from the
# binary next to its own.
cargo build --locked -q -p inventory-local --bin inventory-local -p inventory-processor --bin processor

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token="contract-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
site=$(mktemp -d)
"$bin_dir/inventory-local" up --port 0 --http-port "$port" --api-token "$token" --shards 1 \
  --site-dir "$site" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; rm -rf "$site"' EXIT

url="http://127.0.0.1:$port/api/openapi.json"
for _ in $(seq 1 120); do
  curl -fsS -o /dev/null "$url" 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { echo "the local stack exited; see $out/server.log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS -o "$out/openapi.json" "$url" || { echo "no document at $url after 60 s; see $out/server.log" >&2; exit 1; }

# The document against the OpenAPI 3.1 schema, as bundled with the pinned Schemathesis
# (api/tests/openapi.rs checks that every $ref resolves, which the schema cannot).
"$(dirname "$(command -v schemathesis)")/python" - "$out/openapi.json" <<'PY'
import json, sys
from schemathesis.specs.openapi import definitions
errors = list(definitions.OPENAPI_31_VALIDATOR.iter_errors(json.load(open(sys.argv[1]))))
for e in errors:
    print(f"openapi.json does not validate: {e}", file=sys.stderr)
sys.exit(1 if errors else print("openapi.json validates against the OpenAPI 3.1 schema"))
PY

# Every check that applies to this API: not the stateful ones (no links in the document) nor
# object-level authorization (one caller's data is every caller's).
checks=not_a_server_error,status_code_conformance,content_type_conformance
checks+=,response_headers_conformance,response_schema_conformance,positive_data_acceptance
checks+=,negative_data_rejection,missing_required_header,unsupported_method
checks+=,allow_header_conformance,ignored_auth
# One worker: Python 3.11's parser is not thread-safe under Hypothesis's source inspection
# ("AST constructor recursion depth mismatch"), an error of the tool, not of the API.
run() {
  local name=$1; shift
  echo "schemathesis ($name): every operation, up to $examples cases each, $seconds s at most"
  SCHEMATHESIS_HOOKS=api_contract_hooks PYTHONPATH=scripts schemathesis run "$url" \
    --checks "$checks" --max-examples "$examples" --max-time "$seconds" --seed 20261206 \
    --phases examples,coverage,fuzzing --workers 1 --request-timeout 10 \
    --suppress-health-check too_slow,filter_too_much --warnings off \
    --report junit --report-junit-path "$out/$name.xml" "$@"
}
status=0
run anonymous || status=1
run signed-in -H "Authorization: Bearer $token" || status=1
[ "$status" = 0 ] && echo "api contract: ok" || echo "api contract: failed (reports in $out, server log $out/server.log)" >&2
exit "$status"
