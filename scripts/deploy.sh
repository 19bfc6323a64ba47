#!/usr/bin/env bash
# Builds and deploys the whole stack: Lambda zips (cargo lambda, arm64), the console, the
# template (lint, package, transform, operator properties), the stack (sam deploy), the
# console upload with its config.json pointing at the API, and the URLs. `--dry-run` does
# every step up to the upload and stops: no AWS account or credentials needed.
#
#   STAGE=dev scripts/deploy.sh                                # make deploy
#   STAGE=prod ALARM_EMAIL=ops@example.com scripts/deploy.sh   # any stage but dev needs an address
#   scripts/deploy.sh --dry-run                                # make deploy-dry-run
#
# Optional: PROCESSOR_RESERVED_CONCURRENCY, API_RESERVED_CONCURRENCY,
# GENERATOR_RESERVED_CONCURRENCY (in dev default 0: no reservation; outside dev the processor
# and the API always reserve, computed from the account's limit and the stream's shards when
# unset; checked against the account's limit first), API_RATE_LIMIT (requests per 5 min on /api/* per session, or per IP without
# one), API_RATE_LIMIT_PER_NETWORK (per IP, signed in or not), WEB_ACL_ARN (outside
# us-east-1: a CloudFront-scope WAF web ACL for the distribution), PUBLIC_READS (true:
# anyone may read the inventory and stats; default false), MFA (ON or OPTIONAL; default ON
# outside dev), DEDUP_WINDOW_SECONDS, PRODUCT_HISTORY (on/off), TABLE_MAX_READ_UNITS and
# TABLE_MAX_WRITE_UNITS (the tables' cost guard). Each is the template parameter of the
# same name (infra/template.yaml says what it does); unset keeps the template's default.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
[ "${1:-}" = "--dry-run" ] && dry_run=true
stage="${STAGE:-dev}"
stack="inventory-$stage"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
processor_rc="${PROCESSOR_RESERVED_CONCURRENCY:-0}"
api_rc="${API_RESERVED_CONCURRENCY:-0}"
generator_rc="${GENERATOR_RESERVED_CONCURRENCY:-0}"
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'deploy: %s\n' "$*" >&2; exit 1; }

# What the template's rule would refuse after a long build, refused first.
if [ "$stage" != dev ] && [ -z "${ALARM_EMAIL:-}" ]; then
  fail "stage $stage needs ALARM_EMAIL (where alarms go); only dev may run without one"
fi
for n in "$processor_rc" "$api_rc" "$generator_rc"; do
  [[ "$n" =~ ^[0-9]+$ ]] || fail "reserved concurrency must be a whole number (0 = none), not '$n'"
done
# Optional parameters: environment variable, template parameter, the values it allows.
optional=(
  "API_RATE_LIMIT ApiRateLimit ^[0-9]+$"
  "API_RATE_LIMIT_PER_NETWORK ApiRateLimitPerNetwork ^[0-9]+$"
  "PUBLIC_READS PublicReads ^(true|false)$"
  "MFA Mfa ^(ON|OPTIONAL)$"
  "DEDUP_WINDOW_SECONDS DedupWindowSeconds ^[0-9]+$"
  "PRODUCT_HISTORY ProductHistory ^(on|off)$"
  "TABLE_MAX_READ_UNITS TableMaxReadUnits ^[0-9]+$"
  "TABLE_MAX_WRITE_UNITS TableMaxWriteUnits ^[0-9]+$"
)
overrides=()
for entry in "${optional[@]}"; do
  read -r var param allowed <<<"$entry"
  value="${!var:-}"
  [ -n "$value" ] || continue
  [[ "$value" =~ $allowed ]] || fail "$var='$value' is not allowed ($allowed); see $param in infra/template.yaml"
  overrides+=("$param=$value")
done

export SAM_CLI_TELEMETRY=0
# cargo-lambda finds zig as `python3 -m ziglang`: its venv comes first on PATH.
export PATH="$(scripts/tools.sh lambda sam infra)$PATH"
sam_python="$(dirname "$(command -v sam)")/python"

if ! $dry_run; then
  step "AWS credentials"
  # Fail before a long build when nothing could be deployed.
  "$sam_python" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Arn"])'
  region="${region:-$("$sam_python" -c 'import boto3; print(boto3.session.Session().region_name or "")')}"
  [ -n "$region" ] || fail "no AWS Region: set AWS_REGION"
  if [ "$region" != us-east-1 ] && [ "$stage" != dev ] && [ -z "${WEB_ACL_ARN:-}" ]; then
    fail "in $region the stack cannot create the CloudFront WAF web ACL (they exist only in us-east-1): create one there and pass WEB_ACL_ARN (docs/deploy.md), or deploy to us-east-1"
  fi

  step "CloudFront (a first deploy creates a distribution: the account must be allowed one more)"
  "$sam_python" infra/cloudfront_check.py --stack "$stack"

  step "Lambda concurrency (aws lambda get-account-settings; outside dev, the reservations)"
  planned="$(mktemp)"
  "$sam_python" infra/concurrency_check.py --stage "$stage" \
    --processor "$processor_rc" --api "$api_rc" --generator "$generator_rc" \
    --stream "inventory-events-$stage" --plan-out "$planned"
  processor_rc="$(sed -n 's/^processor=//p' "$planned")"
  api_rc="$(sed -n 's/^api=//p' "$planned")"
  generator_rc="$(sed -n 's/^generator=//p' "$planned")"
  rm -f "$planned"
  echo "reservations: processor $processor_rc, API $api_rc, generator $generator_rc"
fi

step "Lambda zips (cargo lambda build --arm64: the processor --profile lambda-processor, the rest --profile lambda)"
# The processor at full speed (its CPU per event is billed and sizes MemorySize), the rest
# for size (Cargo.toml says why).
cargo lambda build --profile lambda-processor --arm64 --locked --output-format zip \
  --bin processor --lambda-dir target/lambda
cargo lambda build --profile lambda --arm64 --locked --output-format zip \
  --bin api --bin generator-lambda --bin dead-letters --lambda-dir target/lambda

step "Console (static files for S3)"
scripts/build-console.sh target/site

step "Template: lint, package (zips hashed, under 5 MB; the processor under 8 MB), SAM transform, IAM check, properties"
scripts/infra-lint.sh --zips

deploy_cmd=(sam deploy --template-file infra/template.yaml --stack-name "$stack"
  --resolve-s3 --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset
  --parameter-overrides "Stage=$stage" "AlarmEmail=${ALARM_EMAIL:-}"
  "ProcessorReservedConcurrency=$processor_rc" "ApiReservedConcurrency=$api_rc"
  "GeneratorReservedConcurrency=$generator_rc" "WebAclArn=${WEB_ACL_ARN:-}"
  ${overrides[@]+"${overrides[@]}"})
if $dry_run; then
  step "Dry run: stopping before anything is uploaded"
  echo "would check the account's Lambda concurrency and plan the reservations:" \
    "infra/concurrency_check.py --stage $stage --processor $processor_rc --api $api_rc" \
    "--generator $generator_rc --stream inventory-events-$stage (outside dev the processor and" \
    "API reservations it computes replace 0s)"
  echo "would run: ${deploy_cmd[*]}"
  echo "then upload target/site to the stack's ConsoleBucket with config.json pointing at its ApiUrl"
  echo "dry run: ok"
  exit 0
fi

step "Deploy stack $stack (sam deploy uploads the zips to S3 and applies the change set)"
"${deploy_cmd[@]}"

step "Upload the console"
"$sam_python" scripts/upload_console.py "$stack" target/site
if [ -n "${ALARM_EMAIL:-}" ]; then
  echo "alarms: confirm the subscription in the email AWS sent to $ALARM_EMAIL, or no alarm reaches it"
fi
