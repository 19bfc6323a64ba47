"""Checks, before a stage's first `make deploy`, that the account may create the console's
CloudFront distribution: that it may list distributions at all (an account CloudFront has
not enabled yet refuses) and that its distributions quota has room for one more. Otherwise
CloudFormation would fail on the distribution after creating everything else, and roll it
all back.

    python infra/cloudfront_check.py --stack inventory-dev

Run by scripts/deploy.sh with the aws-sam-cli venv's python (boto3); exit code 1 with what
to do. `verdict` is pure and unit-tested (infra/tests/test_cloudfront_check.py).
"""

import argparse
import sys

QUOTA_CODE = "L-24B04930"  # Service Quotas: CloudFront, "Web distributions per AWS account"
DEFAULT_QUOTA = 200


def verdict(stack_exists, distributions, quota):
    """None when the deploy can create (or already has) its distribution, else what to do."""
    if stack_exists:
        return None  # an update keeps the distribution it has
    if distributions + 1 > quota:
        return (f"the account has {distributions} CloudFront distributions and may have {quota}: "
                f"delete one, or request more in Service Quotas > Amazon CloudFront > "
                f"\"Web distributions per AWS account\" (quota {QUOTA_CODE}), e.g.\n"
                f"  aws service-quotas request-service-quota-increase --service-code cloudfront "
                f"--quota-code {QUOTA_CODE} --desired-value {distributions + 1} --region us-east-1")
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stack", required=True)
    args = p.parse_args()

    import boto3  # only here: the unit tests need no AWS SDK
    from botocore.exceptions import ClientError

    try:
        boto3.client("cloudformation").describe_stacks(StackName=args.stack)
        exists = True
    except ClientError:
        exists = False
    cloudfront = boto3.client("cloudfront")
    try:
        count = sum(len(page.get("DistributionList", {}).get("Items", []))
                    for page in cloudfront.get_paginator("list_distributions").paginate())
    except ClientError as e:
        print(f"cloudfront: this account cannot use CloudFront yet ({e}). A new account may need "
              "to be verified by AWS Support before it can create distributions: open a case, "
              "then deploy again.", file=sys.stderr)
        sys.exit(1)
    try:
        quota = boto3.client("service-quotas", region_name="us-east-1").get_service_quota(
            ServiceCode="cloudfront", QuotaCode=QUOTA_CODE)["Quota"]["Value"]
    except ClientError:
        quota = DEFAULT_QUOTA  # reading quotas needs a permission the deployer may lack
    problem = verdict(exists, count, int(quota))
    if problem:
        print(f"cloudfront: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"cloudfront: ok ({count} distributions of {int(quota)}; stack {'exists' if exists else 'new'})")


if __name__ == "__main__":
    main()
