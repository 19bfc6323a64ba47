#!/usr/bin/env bash
# Lints infra/template.yaml offline: cfn-lint and checkov on the SAM template, `sam validate
# --lint` (the real SAM transform), then the offline package + transform + IAM check
# (scripts/package_template.py), cfn-lint again on the plain CloudFormation it produces, and
# the operator properties of that CloudFormation (infra/tests/test_template.py: alarms that
# reach someone, retention, no public Function URL, retained state, ...).
# Extra arguments go to package_template.py (deploy.sh passes --zips).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh infra sam)$PATH"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
template=infra/template.yaml
out="${DEPLOY_OUT:-target/deploy}"

echo "cfn-lint $template"
cfn-lint "$template"
echo "checkov $template"
checkov -f "$template" --framework cloudformation --compact --quiet --skip-download
echo "sam validate --lint $template"
sam validate --lint -t "$template"
"$(dirname "$(command -v sam)")/python" scripts/package_template.py "$template" --out "$out" "$@"
echo "cfn-lint $out/cloudformation.json (after the SAM transform)"
cfn-lint "$out/cloudformation.json"
echo "infra/tests: the template's operator properties, and that each check can fail"
"$(dirname "$(command -v sam)")/python" -m unittest discover -s infra/tests -t infra/tests
echo "infra lint: ok"
