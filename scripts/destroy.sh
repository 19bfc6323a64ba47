#!/usr/bin/env bash
# Tears a deployed stage down: empties the console bucket (every object version, since the
# bucket is versioned and CloudFormation cannot delete a non-empty bucket), then deletes the
# stack. The tables, the stream, the dead-letter queues and the user pool are retained by the template
# (DeletionPolicy: Retain), so their data survives a mistaken deletion: in the dev stage this
# script then deletes them too; in any other stage it lists them and how to delete them.
#
#   STAGE=dev scripts/destroy.sh     # make destroy
set -euo pipefail
cd "$(dirname "$0")/.."
stage="${STAGE:-dev}"
stack="inventory-$stage"
export SAM_CLI_TELEMETRY=0
export PATH="$(scripts/tools.sh sam)$PATH"
sam_python="$(dirname "$(command -v sam)")/python"

# The retained resources' names, read before the stack (and its outputs) are gone.
retained="$(mktemp)"
trap 'rm -f "$retained"' EXIT
"$sam_python" - "$stack" "$retained" <<'PY'
import json
import sys
import boto3
stack, retained = sys.argv[1], sys.argv[2]
outputs = {o["OutputKey"]: o["OutputValue"]
           for o in boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
bucket = boto3.resource("s3").Bucket(outputs["ConsoleBucketName"])
bucket.object_versions.delete()
print(f"emptied s3://{bucket.name}")
with open(retained, "w") as f:
    json.dump({k: outputs[k] for k in ("InventoryTableName", "EventsTableName", "StreamName",
                                       "DeadLetterQueueUrl", "ParkedDeadLetterQueueUrl",
                                       "UserPoolId") if k in outputs}, f)
PY
sam delete --stack-name "$stack" --no-prompts

"$sam_python" - "$stage" "$retained" <<'PY'
import json
import sys
import boto3
stage, retained = sys.argv[1], json.load(open(sys.argv[2]))
tables = [retained[k] for k in ("InventoryTableName", "EventsTableName") if k in retained]
if stage != "dev":
    print(f"retained (stage {stage} keeps its data):")
    for t in tables:
        print(f"  table {t}: aws dynamodb update-table --table-name {t} --no-deletion-protection-enabled"
              f" && aws dynamodb delete-table --table-name {t}")
    if "StreamName" in retained:
        print(f"  stream {retained['StreamName']}: aws kinesis delete-stream --stream-name {retained['StreamName']}"
              " (costs about $29/month until deleted)")
    for key in ("DeadLetterQueueUrl", "ParkedDeadLetterQueueUrl"):
        if key in retained:
            print(f"  queue: aws sqs delete-queue --queue-url {retained[key]}")
    if "UserPoolId" in retained:
        pool = retained["UserPoolId"]
        print(f"  user pool {pool} (its users): aws cognito-idp update-user-pool --user-pool-id {pool}"
              f" --deletion-protection INACTIVE && aws cognito-idp delete-user-pool --user-pool-id {pool}")
    sys.exit(0)
dynamodb = boto3.client("dynamodb")
for t in tables:
    dynamodb.delete_table(TableName=t)
    print(f"deleted table {t}")
if "StreamName" in retained:
    boto3.client("kinesis").delete_stream(StreamName=retained["StreamName"], EnforceConsumerDeletion=True)
    print(f"deleted stream {retained['StreamName']}")
for key in ("DeadLetterQueueUrl", "ParkedDeadLetterQueueUrl"):
    if key in retained:
        boto3.client("sqs").delete_queue(QueueUrl=retained[key])
        print(f"deleted queue {retained[key]}")
if "UserPoolId" in retained:
    # The pool is retained and, were it protected, could not be deleted: dev's is not, but
    # an operator may have turned protection on.
    cognito = boto3.client("cognito-idp")
    cognito.update_user_pool(UserPoolId=retained["UserPoolId"], DeletionProtection="INACTIVE")
    cognito.delete_user_pool(UserPoolId=retained["UserPoolId"])
    print(f"deleted user pool {retained['UserPoolId']}")
PY
