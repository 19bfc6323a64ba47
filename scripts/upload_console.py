"""Uploads the built console to the stack's bucket with a config.json pointing at its API
and its sign-in (the Cognito hosted UI domain, the console's app client id, and the console's
own URL as the redirect URI), invalidates CloudFront, and prints the URLs. Run by scripts/deploy.sh with the aws-sam-cli
venv's python (it brings boto3).

    python scripts/upload_console.py <stack-name> <site-dir>
"""

import json
import mimetypes
import pathlib
import sys
import time

import boto3


def main():
    stack, site = sys.argv[1], pathlib.Path(sys.argv[2])
    cfn = boto3.client("cloudformation")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    (site / "config.json").write_text(json.dumps({
        "api_base_url": outputs["ApiUrl"].rstrip("/"),
        # The console signs users in here (authorization code + PKCE); without this block
        # (the local stack) it shows the API token field instead.
        "cognito": {
            "domain": outputs["HostedUiDomain"].rstrip("/"),
            "client_id": outputs["UserPoolClientId"],
            "redirect_uri": outputs["ConsoleUrl"],
        },
    }))
    s3 = boto3.client("s3")
    for path in sorted(site.rglob("*")):
        if not path.is_file():
            continue
        key = path.relative_to(site).as_posix()
        kind = "application/wasm" if key.endswith(".wasm") else (
            mimetypes.guess_type(key)[0] or "application/octet-stream")
        # index.html and config.json change on every deploy; the rest may be cached briefly.
        cache = "no-cache" if key in ("index.html", "config.json") else "public, max-age=300"
        s3.upload_file(str(path), outputs["ConsoleBucketName"], key,
                       ExtraArgs={"ContentType": kind, "CacheControl": cache})
        print(f"uploaded {key}")
    boto3.client("cloudfront").create_invalidation(
        DistributionId=outputs["DistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]},
                           "CallerReference": str(time.time())})
    print(f"console: {outputs['ConsoleUrl']}")
    print(f"API:     {outputs['ApiUrl']}")
    print(f"sign-in: {outputs['HostedUiDomain']} (no self sign-up; create a user with:")
    print(f"         aws cognito-idp admin-create-user --user-pool-id {outputs['UserPoolId']}"
          " --username you@example.com --user-attributes Name=email,Value=you@example.com"
          " Name=email_verified,Value=true)")


if __name__ == "__main__":
    main()
