"""Packages infra/template.yaml offline, the way `sam package` would, and checks the result.

- Each function's CodeUri (a local zip) becomes s3://<bucket>/<md5 of the zip>, as `sam
  package` names it; with --zips the zips must exist and be under the limits we set
  ourselves (Lambda's own is 50 MB): 5 MB, since small zips start faster, except the
  processor's 8 MB. The processor is built at opt-level 3 (Cargo.toml, `lambda-processor`)
  because its CPU per event is billed on every batch under load; it starts once per shard
  and instance, so its extra 1.5 MB is paid rarely.
- The SAM transform runs locally (samtranslator, the code CloudFormation runs), so the
  plain CloudFormation that would be deployed is written out and can be linted.
- IAM least privilege: no wildcard actions, and a `*` resource only for actions that have
  no resource-level permissions (X-Ray, kinesis:ListStreams).

Run with the python of the aws-sam-cli venv (scripts/tools.sh sam). Exit code 1 on any
finding.
"""

import argparse
import hashlib
import json
import os
import pathlib
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MAX_ZIP_BYTES = 5 * 1024 * 1024
MAX_ZIP_BYTES_BY_FUNCTION = {"ProcessorFunction": 8 * 1024 * 1024}
# Actions that AWS defines without resource-level permissions, so "*" is the only resource.
NO_RESOURCE_LEVEL = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "kinesis:ListStreams",
}


class NoManagedPolicies:
    """The template attaches no managed policies by name, so none need looking up."""

    def load(self):
        return {}


def package(template, template_dir, bucket, check_zips):
    problems = []
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        uri = res["Properties"]["CodeUri"]
        zip_path = (template_dir / uri).resolve()
        if check_zips:
            if not zip_path.is_file():
                problems.append(f"{name}: {zip_path} is missing (build it with cargo lambda)")
                continue
            size = zip_path.stat().st_size
            limit = MAX_ZIP_BYTES_BY_FUNCTION.get(name, MAX_ZIP_BYTES)
            if size >= limit:
                problems.append(
                    f"{name}: {zip_path} is {size} bytes, over {limit // (1024 * 1024)} MB"
                )
            key = hashlib.md5(zip_path.read_bytes()).hexdigest()
            print(f"{name}: {zip_path.name} {size} bytes -> s3://{bucket}/{key}")
        else:
            key = "not-built"
        res["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
    return problems


def names_no_one_resource(arn):
    """Whether a resource ARN leaves its service, region, account or whole resource open."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return False
    _, _, service, region, account, resource = parts
    return "*" in service or "*" in region or "*" in account or resource in ("*", "*/*")


def statement_findings(name, st):
    """What is too broad in one policy statement: wildcard actions, `*` or wildcard-account
    resources for actions that can name a resource."""
    problems = []
    actions = st.get("Action", [])
    actions = actions if isinstance(actions, list) else [actions]
    resources = st.get("Resource", [])
    resources = resources if isinstance(resources, list) else [resources]
    for a in actions:
        if a == "*" or a.endswith(":*"):
            problems.append(f"{name}: wildcard action {a}")
    broad = [a for a in actions if a not in NO_RESOURCE_LEVEL]
    if "*" in resources and broad:
        problems.append(f"{name}: {broad} on resource * (name the ARN)")
    for r in resources:
        if isinstance(r, str) and r != "*" and names_no_one_resource(r) and broad:
            problems.append(f"{name}: {broad} on wildcard resource {r} (name the ARN)")
    return problems


def iam_findings(cfn):
    problems = []
    roles_used = {}
    for name, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        # Inline policies on a role, and policies attached beside it: a grant added in an
        # AWS::IAM::RolePolicy or AWS::IAM::Policy is as much the role's as one inside it.
        documents = []
        if res["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
            if props.get("ManagedPolicyArns"):
                problems.append(f"{name}: managed policies grant more than the role uses")
        elif res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [props.get("PolicyDocument", {})]
        for document in documents:
            statements = document.get("Statement", [])
            for st in statements if isinstance(statements, list) else [statements]:
                if st.get("Effect", "Allow") == "Allow":
                    problems += statement_findings(name, st)
        if res["Type"] in ("AWS::Lambda::Function", "AWS::Pipes::Pipe"):
            role = props.get("Role") or props.get("RoleArn")
            roles_used.setdefault(json.dumps(role, sort_keys=True), []).append(name)
    for role, users in roles_used.items():
        if len(users) > 1:
            problems.append(f"{users} share one role {role}: give each its own")
    return problems


def package_and_transform(template, template_dir, bucket="dry-run-artifacts", check_zips=False):
    """Packages `template` (a parsed SAM template, changed in place) and returns the plain
    CloudFormation the SAM transform makes of it, with the packaging and IAM findings.
    infra/tests/test_template.py uses it too, so the test sees what would be deployed."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    problems = package(template, template_dir, bucket, check_zips)
    cfn = transform(json.loads(json.dumps(template)), {}, NoManagedPolicies())
    return cfn, problems + iam_findings(cfn)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("template")
    p.add_argument("--out", required=True, help="directory for packaged.json, cloudformation.json")
    p.add_argument("--bucket", default="dry-run-artifacts")
    p.add_argument("--zips", action="store_true", help="require the built zips and hash them")
    args = p.parse_args()

    path = pathlib.Path(args.template)
    template = yaml_parse(path.read_text())
    cfn, problems = package_and_transform(template, path.parent, args.bucket, args.zips)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "packaged.json").write_text(json.dumps(template, indent=1))
    (out / "cloudformation.json").write_text(json.dumps(cfn, indent=1))
    print(f"packaged template: {out / 'packaged.json'}; CloudFormation after the SAM "
          f"transform: {out / 'cloudformation.json'} ({len(cfn['Resources'])} resources)")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
