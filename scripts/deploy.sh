#!/usr/bin/env bash
# Builds and deploys the whole stack: Lambda zips (cargo lambda, arm64), the console, the
# template (lint, package, transform), the stack (sam deploy), the console upload with its
# config.json pointing at the API, and the URLs. `--dry-run` does every step up to the
# upload and stops: no AWS account or credentials needed.
#
#   STAGE=dev ALARM_EMAIL=ops@example.com scripts/deploy.sh    # make deploy
#   scripts/deploy.sh --dry-run                                # make deploy-dry-run
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
[ "${1:-}" = "--dry-run" ] && dry_run=true
stage="${STAGE:-dev}"
stack="inventory-$stage"
export SAM_CLI_TELEMETRY=0
# cargo-lambda finds zig as `python3 -m ziglang`: its venv comes first on PATH.
export PATH="$(scripts/tools.sh lambda sam infra)$PATH"

step() { printf '\n== %s\n' "$*"; }

if ! $dry_run; then
  step "AWS credentials"
  # Fail before a long build when nothing could be deployed.
  "$(dirname "$(command -v sam)")/python" -c 'import boto3; print(boto3.client("sts").get_caller_identity()["Arn"])'
fi

step "Lambda zips (cargo lambda build --profile lambda --arm64)"
cargo lambda build --profile lambda --arm64 --locked --output-format zip \
  --bin processor --bin api --bin generator-lambda --lambda-dir target/lambda

step "Console (static files for S3)"
scripts/build-console.sh target/site

step "Template: lint, package (zips hashed, under 5 MB), SAM transform, IAM check"
scripts/infra-lint.sh --zips

deploy_cmd=(sam deploy --template-file infra/template.yaml --stack-name "$stack"
  --resolve-s3 --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset
  --parameter-overrides "Stage=$stage" "AlarmEmail=${ALARM_EMAIL:-}")
if $dry_run; then
  step "Dry run: stopping before anything is uploaded"
  echo "would run: ${deploy_cmd[*]}"
  echo "then upload target/site to the stack's ConsoleBucket with config.json pointing at its ApiUrl"
  echo "dry run: ok"
  exit 0
fi

step "Deploy stack $stack (sam deploy uploads the zips to S3 and applies the change set)"
"${deploy_cmd[@]}"

step "Upload the console"
"$(dirname "$(command -v sam)")/python" scripts/upload_console.py "$stack" target/site
