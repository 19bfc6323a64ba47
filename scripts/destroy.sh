#!/usr/bin/env bash
# Tears a deployed stage down: empties the console bucket (every object version, since the
# bucket is versioned and CloudFormation cannot delete a non-empty bucket), then deletes the
# stack. The DynamoDB tables, the stream and their data go with it.
#
#   STAGE=dev scripts/destroy.sh     # make destroy
set -euo pipefail
cd "$(dirname "$0")/.."
stage="${STAGE:-dev}"
stack="inventory-$stage"
export SAM_CLI_TELEMETRY=0
export PATH="$(scripts/tools.sh sam)$PATH"

"$(dirname "$(command -v sam)")/python" - "$stack" <<'PY'
import sys
import boto3
stack = sys.argv[1]
outputs = {o["OutputKey"]: o["OutputValue"]
           for o in boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
bucket = boto3.resource("s3").Bucket(outputs["ConsoleBucketName"])
bucket.object_versions.delete()
print(f"emptied s3://{bucket.name}")
PY
sam delete --stack-name "$stack" --no-prompts
