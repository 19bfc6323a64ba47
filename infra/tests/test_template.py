"""The operator's properties of infra/template.yaml, asserted on the CloudFormation the SAM
transform makes of it (what would be deployed), so none can regress silently.

Each property is a check: a function of the transformed template that returns what is wrong
(an empty list when the property holds). `TemplateHolds` asserts every check on the real
template; `ChecksCanFail` removes or breaks each property in a copy of the SAM template and
asserts that the check watching it then reports it, so no check passes by construction.

Run by scripts/infra-lint.sh (make infra-lint, part of make test) with the aws-sam-cli venv's
python:  python -m unittest discover -s infra/tests -v
INFRA_TEMPLATE=<path> checks another template instead of infra/template.yaml.
"""

import copy
import fnmatch
import json
import logging
import os
import pathlib
import re
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from package_template import iam_findings, package_and_transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# samtranslator warns about its own usage metrics on every transform.
logging.getLogger("samtranslator").setLevel(logging.ERROR)
TEMPLATE = pathlib.Path(os.environ.get("INFRA_TEMPLATE", ROOT / "infra" / "template.yaml"))
# A dead-lettered range must stay readable this long after the Pipe gives up on it.
READABLE_AFTER_DEAD_LETTER_S = 3 * 86400
# Records older than this are dead-lettered instead of retried (a day, as the brief says).
MAX_RECORD_AGE_S = 86400
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "inventory-dev",
}
EMF_NAMESPACE = "InventoryPipeline"
EMF_METRICS = ["EventsApplied", "Duplicates", "Rejections", "LagMs", "ProductWrites"]
NO_VALUE = object()


# ---------------------------------------------------------------- evaluating the template


def parameters(cfn, **overrides):
    """The parameters' defaults, pseudo parameters, and the given overrides."""
    values = {name: p.get("Default") for name, p in cfn.get("Parameters", {}).items()}
    values.update(PSEUDO)
    values.update(overrides)
    return values


def evaluate(cfn, expr, params):
    """Evaluates the intrinsic functions conditions, rules and property values use here;
    a reference to a resource stays as it is."""
    if isinstance(expr, list):
        return [evaluate(cfn, e, params) for e in expr]
    if not isinstance(expr, dict) or len(expr) != 1:
        return expr
    (fn, arg), = expr.items()
    if fn == "Ref":
        if arg == "AWS::NoValue":
            return NO_VALUE
        return params[arg] if arg in params else expr
    if fn == "Condition":
        return evaluate(cfn, cfn["Conditions"][arg], params)
    if fn == "Fn::Equals":
        a, b = (evaluate(cfn, x, params) for x in arg)
        return str(a) == str(b)
    if fn == "Fn::Not":
        return not evaluate(cfn, arg[0], params)
    if fn == "Fn::And":
        return all(evaluate(cfn, x, params) for x in arg)
    if fn == "Fn::Or":
        return any(evaluate(cfn, x, params) for x in arg)
    if fn == "Fn::If":
        cond, yes, no = arg
        chosen = yes if evaluate(cfn, {"Condition": cond}, params) else no
        return evaluate(cfn, chosen, params)
    if fn == "Fn::Sub" and isinstance(arg, str):
        def sub(m):
            name = m.group(1)
            if name in params:
                return str(params[name])
            return "<" + name + ">"  # a resource or attribute: left as a marker
        return re.sub(r"\$\{([^}!]+)\}", sub, arg)
    return expr


def resources(cfn, kind):
    return {n: r for n, r in cfn["Resources"].items() if r["Type"] == kind}


def props(resource):
    return resource.get("Properties", {})


def as_list(x):
    return x if isinstance(x, list) else [x]


def refers_to(expr, name):
    """Whether expr is a Ref or GetAtt of resource `name`."""
    if not isinstance(expr, dict):
        return False
    return expr.get("Ref") == name or (
        "Fn::GetAtt" in expr and as_list(expr["Fn::GetAtt"])[0] in (name, name + ".Arn"))


def mentions(expr, name):
    """Whether expr refers to resource `name` anywhere (Ref, GetAtt or inside a Sub)."""
    text = json.dumps(expr)
    return (f'"Ref": "{name}"' in text or f'"Fn::GetAtt": ["{name}"' in text
            or "${" + name + "}" in text or "${" + name + "." in text)


def target_function(cfn, target):
    """The function of this template a Pipe's target invokes: the function itself, or the
    function of an alias of this template (None when neither)."""
    functions = resources(cfn, "AWS::Lambda::Function")
    direct = next((n for n in functions if refers_to(target, n)), None)
    if direct:
        return direct
    for alias_name, alias in resources(cfn, "AWS::Lambda::Alias").items():
        if refers_to(target, alias_name):
            return next((n for n in functions if refers_to(props(alias).get("FunctionName"), n)), None)
    return None


def alarm_metrics(alarm):
    """(namespace, metric name, {dimension: value}) of everything an alarm reads."""
    p = props(alarm)
    if "MetricName" in p:
        dims = {d["Name"]: d["Value"] for d in p.get("Dimensions", [])}
        yield p["Namespace"], p["MetricName"], dims
    for m in p.get("Metrics", []):
        if "MetricStat" in m:
            metric = m["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            yield metric["Namespace"], metric["MetricName"], dims


def names_resource(cfn, expr, resource):
    """Whether a dimension value is `resource`: a Ref or GetAtt of it, or its Name (an
    alarm may name a resource where a reference would make a cycle)."""
    if refers_to(expr, resource):
        return True
    res = cfn["Resources"].get(resource, {})
    name = props(res).get("Name") if res else None
    params = parameters(cfn)
    return name is not None and evaluate(cfn, expr, params) == evaluate(cfn, name, params)


def alarms_on(cfn, namespace, metric, dimension=None, resource=None):
    found = {}
    for name, alarm in resources(cfn, "AWS::CloudWatch::Alarm").items():
        for ns, m, dims in alarm_metrics(alarm):
            if ns == namespace and m == metric and (
                    dimension is None or names_resource(cfn, dims.get(dimension), resource)):
                found[name] = alarm
    return found


def statements(policy_document):
    return as_list(policy_document.get("Statement", []))


def allows(statement, principal_service, *actions):
    if statement.get("Effect") != "Allow":
        return False
    services = as_list(statement.get("Principal", {}).get("Service", []))
    granted = as_list(statement.get("Action", []))
    return principal_service in services and all(
        any(fnmatch.fnmatch(a, g) for g in granted) for a in actions)


def source_arn_patterns(statement, params, cfn):
    cond = statement.get("Condition", {})
    patterns = []
    for op in ("ArnLike", "ArnEquals", "StringLike", "StringEquals"):
        for key, value in cond.get(op, {}).items():
            if key.lower() == "aws:sourcearn":
                patterns += [evaluate(cfn, v, params) for v in as_list(value)]
    return patterns


def alarm_topics(cfn):
    """The SNS topics alarms notify."""
    topics = set()
    for alarm in resources(cfn, "AWS::CloudWatch::Alarm").values():
        for action in props(alarm).get("AlarmActions", []):
            if isinstance(action, dict) and "Ref" in action:
                topics.add(action["Ref"])
    return topics


def alarm_arn(cfn, alarm, params):
    name = evaluate(cfn, props(alarm).get("AlarmName"), params)
    if not isinstance(name, str):
        return None
    p = params
    return f"arn:{p['AWS::Partition']}:cloudwatch:{p['AWS::Region']}:{p['AWS::AccountId']}:alarm:{name}"


# ---------------------------------------------------------------- the checks


def check_alarm_topic_deliverable(cfn):
    """CloudWatch can publish to the alarm topic: unencrypted, or encrypted with a customer
    managed key in this template (rotation on) whose policy lets cloudwatch.amazonaws.com use
    it for every alarm here; a topic policy, if any, lets CloudWatch publish those alarms."""
    problems = []
    params = parameters(cfn)
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    arns = {n: alarm_arn(cfn, a, params) for n, a in alarms.items()}
    topics = alarm_topics(cfn)
    if not topics:
        problems.append("no alarm notifies an SNS topic of this template")
    for topic in topics:
        res = cfn["Resources"].get(topic)
        if res is None or res["Type"] != "AWS::SNS::Topic":
            problems.append(f"alarm action {topic} is not an SNS topic of this template")
            continue
        key = props(res).get("KmsMasterKeyId")
        if key is not None:
            key_name = next((n for n in resources(cfn, "AWS::KMS::Key") if refers_to(key, n)), None)
            if key_name is None:
                problems.append(f"{topic} is encrypted with {key!r}, not a key of this template "
                                "whose policy lets CloudWatch use it (alias/aws/sns cannot)")
            else:
                kp = props(cfn["Resources"][key_name])
                if kp.get("EnableKeyRotation") is not True:
                    problems.append(f"{key_name}: key rotation is off")
                grants = [s for s in statements(kp.get("KeyPolicy", {}))
                          if allows(s, "cloudwatch.amazonaws.com", "kms:Decrypt", "kms:GenerateDataKey")]
                if not grants:
                    problems.append(f"{key_name}'s policy does not let cloudwatch.amazonaws.com "
                                    "kms:Decrypt and kms:GenerateDataKey*")
                for s in grants:
                    patterns = source_arn_patterns(s, params, cfn)
                    for alarm, arn in arns.items():
                        if patterns and not any(fnmatch.fnmatch(arn or "", p) for p in patterns):
                            problems.append(f"{key_name}'s CloudWatch grant does not cover alarm {alarm} ({arn})")
        for pol_name, pol in resources(cfn, "AWS::SNS::TopicPolicy").items():
            if not any(refers_to(t, topic) for t in props(pol).get("Topics", [])):
                continue
            grants = [s for s in statements(props(pol)["PolicyDocument"])
                      if allows(s, "cloudwatch.amazonaws.com", "sns:Publish")]
            if not grants:
                problems.append(f"{pol_name} replaces {topic}'s policy without letting CloudWatch publish")
            for s in grants:
                patterns = source_arn_patterns(s, params, cfn)
                for alarm, arn in arns.items():
                    if patterns and not any(fnmatch.fnmatch(arn or "", p) for p in patterns):
                        problems.append(f"{pol_name} does not let alarm {alarm} ({arn}) publish")
    return problems


def check_every_alarm_notifies(cfn):
    """Every alarm has AlarmActions to the alarm topic."""
    problems = []
    topics = {n for n in resources(cfn, "AWS::SNS::Topic")}
    alarms = resources(cfn, "AWS::CloudWatch::Alarm")
    if not alarms:
        problems.append("no alarms")
    for name, alarm in alarms.items():
        actions = props(alarm).get("AlarmActions", [])
        if not any(refers_to(a, t) for a in actions for t in topics):
            problems.append(f"{name} has no AlarmActions to the alarm topic")
        if props(alarm).get("ActionsEnabled") is False:
            problems.append(f"{name} has its actions disabled")
    return problems


def rules_pass(cfn, **overrides):
    """Whether a deploy with these parameters passes the template's Rules."""
    params = parameters(cfn, **overrides)
    for rule in cfn.get("Rules", {}).values():
        applies = evaluate(cfn, rule.get("RuleCondition", True), params)
        if applies and not all(evaluate(cfn, a["Assert"], params) for a in rule["Assertions"]):
            return False
    return True


# A deploy outside dev as scripts/deploy.sh makes it: an alarm address and reservations.
FULL_PROD = {"Stage": "prod", "AlarmEmail": "ops@example.com",
             "ProcessorReservedConcurrency": 8, "ApiReservedConcurrency": 20}


def check_alarm_email_required_outside_dev(cfn):
    """A Rule fails a non-dev deploy without AlarmEmail; the address gets a subscription."""
    problems = []
    if rules_pass(cfn, **{**FULL_PROD, "AlarmEmail": ""}):
        problems.append("a prod deploy without AlarmEmail passes the template's Rules")
    if not rules_pass(cfn, **FULL_PROD):
        problems.append("a prod deploy with AlarmEmail fails the template's Rules")
    if not rules_pass(cfn, Stage="dev", AlarmEmail=""):
        problems.append("a dev deploy without AlarmEmail fails the template's Rules")
    subs = [s for s in resources(cfn, "AWS::SNS::Subscription").values()
            if props(s).get("Protocol") == "email" and props(s).get("Endpoint") == {"Ref": "AlarmEmail"}]
    if not subs:
        problems.append("no email subscription to AlarmEmail")
    return problems


def check_blind_spots_alarmed(cfn):
    """An alarm on each blind spot: the Pipe's failures, partial failures and throttles, each
    function's errors and throttles, the API's 5xx answers, the stream's iterator age and
    write throttling, each table's read and write throttling."""
    problems = []
    pipes = resources(cfn, "AWS::Pipes::Pipe")
    for pipe in pipes:
        for metric in ("ExecutionFailed", "ExecutionPartiallyFailed", "ExecutionThrottled"):
            if not alarms_on(cfn, "AWS/EventBridge/Pipes", metric, "PipeName", pipe):
                problems.append(f"no alarm on {pipe}'s {metric}")
    for fn in resources(cfn, "AWS::Lambda::Function"):
        for metric in ("Errors", "Throttles"):
            if not alarms_on(cfn, "AWS/Lambda", metric, "FunctionName", fn):
                problems.append(f"no alarm on {fn}'s {metric}")
    for url in resources(cfn, "AWS::Lambda::Url").values():
        fn = props(url)["TargetFunctionArn"].get("Ref")
        if not alarms_on(cfn, "AWS/Lambda", "Url5xxCount", "FunctionName", fn):
            problems.append(f"no alarm on {fn}'s 5xx answers (Url5xxCount)")
    for stream in resources(cfn, "AWS::Kinesis::Stream"):
        if not alarms_on(cfn, "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", stream):
            problems.append(f"no alarm on {stream}'s iterator age")
        if not alarms_on(cfn, "AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", stream):
            problems.append(f"no alarm on {stream}'s write throttling")
    for table in resources(cfn, "AWS::DynamoDB::Table"):
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            if not alarms_on(cfn, "AWS/DynamoDB", metric, "TableName", table):
                problems.append(f"no alarm on {table}'s {metric}")
    return problems


def check_silence_alarms(cfn):
    """The iterator-age alarm and the "records arriving, processor not invoked" alarm (metric
    math over Kinesis IncomingRecords and the Pipe target's Invocations) treat missing data as
    breaching, so a stopped Pipe cannot make them go quiet."""
    problems = []
    age = alarms_on(cfn, "AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds")
    for name, alarm in age.items():
        if props(alarm).get("TreatMissingData") != "breaching":
            problems.append(f"{name}: missing data is not breaching, so a stopped Pipe silences it")
    if not age:
        problems.append("no iterator-age alarm")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        fn = target_function(cfn, props(pipe)["Target"])
        found = False
        for name, alarm in resources(cfn, "AWS::CloudWatch::Alarm").items():
            read = list(alarm_metrics(alarm))
            has_in = any(ns == "AWS/Kinesis" and m == "IncomingRecords" for ns, m, _ in read)
            has_inv = any(ns == "AWS/Lambda" and m == "Invocations" and refers_to(d.get("FunctionName"), fn)
                          for ns, m, d in read)
            expr = any("Expression" in m for m in props(alarm).get("Metrics", []))
            if has_in and has_inv and expr:
                found = True
                if props(alarm).get("TreatMissingData") != "breaching":
                    problems.append(f"{name}: missing data is not breaching")
        if not found:
            problems.append(f"no metric-math alarm on records arriving while {fn} ({pipe_name}'s target) is not invoked")
    return problems


def check_retention_outlives_record_age(cfn):
    """Stream retention >= the Pipe's MaximumRecordAgeInSeconds + a margin of days, the record
    age at most a day, and the dead-letter age alarm fires while the range is still readable."""
    problems = []
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        kinesis = props(pipe)["SourceParameters"]["KinesisStreamParameters"]
        age = int(kinesis.get("MaximumRecordAgeInSeconds", -1))
        stream = next((n for n in resources(cfn, "AWS::Kinesis::Stream") if refers_to(props(pipe)["Source"], n)), None)
        if stream is None:
            problems.append(f"{pipe_name}'s source is not a stream of this template")
            continue
        retention = int(props(cfn["Resources"][stream]).get("RetentionPeriodHours", 24)) * 3600
        if age == -1 or age > MAX_RECORD_AGE_S:
            problems.append(f"{pipe_name}: MaximumRecordAgeInSeconds {age} must be set and at most {MAX_RECORD_AGE_S}")
            continue
        if retention < age + READABLE_AFTER_DEAD_LETTER_S:
            problems.append(f"{stream} keeps records {retention} s, less than the record age {age} s + "
                            f"{READABLE_AFTER_DEAD_LETTER_S} s: a dead-lettered range expires too soon")
        dlq_ages = alarms_on(cfn, "AWS/SQS", "ApproximateAgeOfOldestMessage")
        if not dlq_ages:
            problems.append("no alarm on the dead-letter queue's oldest message age")
        for name, alarm in dlq_ages.items():
            threshold = float(props(alarm)["Threshold"])
            if age + threshold + 86400 > retention:
                problems.append(f"{name} fires at {threshold} s, leaving less than a day before {stream} trims the range")
    return problems


def role_allows(cfn, role_expr, action, resource_name):
    """Whether the role `role_expr` points at has an Allow of `action` on `resource_name`."""
    role_name = next((n for n in resources(cfn, "AWS::IAM::Role") if refers_to(role_expr, n)), None)
    if role_name is None:
        return False
    policies = list(props(cfn["Resources"][role_name]).get("Policies", []))
    policies += [props(p) for p in resources(cfn, "AWS::IAM::RolePolicy").values()
                 if props(p).get("RoleName", {}).get("Ref") == role_name]
    for policy in policies:
        for st in statements(policy["PolicyDocument"]):
            if st.get("Effect") != "Allow":
                continue
            if any(fnmatch.fnmatch(action, a) for a in as_list(st.get("Action", []))) and any(
                    refers_to(r, resource_name) or mentions(r, resource_name)
                    for r in as_list(st.get("Resource", []))):
                return True
    return False


def check_dead_letters_archived_and_redrivable(cfn):
    """Each Pipe's dead-letter queue triggers a function that reports partial batch failures
    (a message it cannot archive stays queued), whose role reads the Pipe's stream back; the
    queue's visibility timeout covers that function's timeout six times; and the API redrives
    through that function (told its name, allowed to invoke it), never writing the stream
    itself, while the function may republish to the stream."""
    problems = []
    functions = resources(cfn, "AWS::Lambda::Function")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        source = props(pipe)["SourceParameters"]["KinesisStreamParameters"]
        queue_expr = source.get("DeadLetterConfig", {}).get("Arn")
        queue = next((n for n in resources(cfn, "AWS::SQS::Queue") if refers_to(queue_expr, n)), None)
        stream = next((n for n in resources(cfn, "AWS::Kinesis::Stream") if refers_to(props(pipe)["Source"], n)), None)
        if queue is None:
            problems.append(f"{pipe_name} has no dead-letter queue of this template")
            continue
        mappings = [m for m in resources(cfn, "AWS::Lambda::EventSourceMapping").values()
                    if refers_to(props(m).get("EventSourceArn"), queue)]
        if not mappings:
            problems.append(f"nothing consumes {queue}: dead letters would only name ranges that expire")
        for m in mappings:
            fn = next((n for n in functions if refers_to(props(m).get("FunctionName"), n)), None)
            if "ReportBatchItemFailures" not in as_list(props(m).get("FunctionResponseTypes", [])):
                problems.append(f"{fn} on {queue} does not report batch item failures: one bad message drops or repeats the batch")
            if fn is None:
                continue
            role = props(functions[fn]).get("Role")
            for action in ("kinesis:GetShardIterator", "kinesis:GetRecords"):
                if not role_allows(cfn, role, action, stream):
                    problems.append(f"{fn}'s role cannot {action} on {stream}")
            timeout = int(props(functions[fn]).get("Timeout", 3))
            visibility = int(props(cfn["Resources"][queue]).get("VisibilityTimeout", 30))
            if visibility < 6 * timeout:
                problems.append(f"{queue}'s VisibilityTimeout {visibility} s is under 6 x {fn}'s timeout {timeout} s")
        consumers = [n for n in functions for m in mappings if refers_to(props(m).get("FunctionName"), n)]
        for url in resources(cfn, "AWS::Lambda::Url").values():
            api = props(url)["TargetFunctionArn"].get("Ref")
            env = props(functions[api]).get("Environment", {}).get("Variables", {})
            redriver = next((c for c in consumers if refers_to(env.get("DEAD_LETTER_FUNCTION"), c)), None)
            if redriver is None:
                problems.append(f"{api} is not told DEAD_LETTER_FUNCTION (the consumer): redrive answers 503")
                continue
            if not role_allows(cfn, props(functions[api]).get("Role"), "lambda:InvokeFunction", redriver):
                problems.append(f"{api}'s role cannot invoke {redriver}: no redrive")
            if role_allows(cfn, props(functions[api]).get("Role"), "kinesis:PutRecords", stream):
                problems.append(f"{api}'s role may write to {stream}: redrive belongs to {redriver}")
            if not role_allows(cfn, props(functions[redriver]).get("Role"), "kinesis:PutRecords", stream):
                problems.append(f"{redriver}'s role cannot kinesis:PutRecords on {stream}: no redrive")
            if not refers_to(props(functions[redriver]).get("Environment", {}).get("Variables", {}).get("STREAM_NAME"), stream):
                problems.append(f"{redriver} is not told STREAM_NAME: a redrive fails")
    return problems


def check_lineage_is_listed(cfn):
    """The processor and the dead-letter consumer may list the stream's shards and read its
    creation time (kinesis:ListShards and kinesis:DescribeStreamSummary on the stream): a
    product's position moves only along the lineage ListShards gives, and a re-created
    stream is told apart by its creation time."""
    problems = []
    stream = next(iter(resources(cfn, "AWS::Kinesis::Stream")), None)
    functions = resources(cfn, "AWS::Lambda::Function")
    for pipe in resources(cfn, "AWS::Pipes::Pipe").values():
        target = target_function(cfn, props(pipe).get("Target"))
        if target is None:
            problems.append("the Pipe's target is not a function of this template")
            continue
        for action in ("kinesis:ListShards", "kinesis:DescribeStreamSummary"):
            if not role_allows(cfn, props(functions[target]).get("Role"), action, stream):
                problems.append(f"{target}'s role cannot {action} on {stream}")
    for name, fn in functions.items():
        env = props(fn).get("Environment", {}).get("Variables", {})
        if "STREAM_NAME" in env and "DEDUP_WINDOW_SECONDS" in env:
            for action in ("kinesis:ListShards", "kinesis:DescribeStreamSummary"):
                if not role_allows(cfn, props(fn).get("Role"), action, stream):
                    problems.append(f"{name}'s role cannot {action} on {stream}")
    return problems


def check_no_public_function_url(cfn):
    """No Function URL with AuthType NONE and no public permission: each URL is AWS_IAM, may be
    invoked by cloudfront.amazonaws.com for a distribution of this template only, and that
    distribution routes /api/* to it through an origin access control of type lambda, behind
    a WAF web ACL (scope CLOUDFRONT) with a rate-based rule."""
    problems = []
    distributions = resources(cfn, "AWS::CloudFront::Distribution")
    for perm_name, perm in resources(cfn, "AWS::Lambda::Permission").items():
        if props(perm).get("Principal") == "*":
            problems.append(f"{perm_name} lets anyone invoke {props(perm).get('FunctionName')}")
    for url_name, url in resources(cfn, "AWS::Lambda::Url").items():
        fn = props(url)["TargetFunctionArn"].get("Ref")
        if props(url).get("AuthType") != "AWS_IAM":
            problems.append(f"{url_name} has AuthType {props(url).get('AuthType')}, not AWS_IAM")
        perms = [p for p in resources(cfn, "AWS::Lambda::Permission").values()
                 if refers_to(props(p).get("FunctionName"), fn)
                 and props(p).get("Principal") == "cloudfront.amazonaws.com"]
        for action in ("lambda:InvokeFunctionUrl", "lambda:InvokeFunction"):
            granted = [p for p in perms if props(p).get("Action") == action]
            if not granted:
                problems.append(f"no {action} permission on {fn} for cloudfront.amazonaws.com")
            for p in granted:
                if not any(mentions(props(p).get("SourceArn"), d) for d in distributions):
                    problems.append(f"{fn}'s {action} permission for CloudFront names no distribution of this template")
        fronted = False
        for dist_name, dist in distributions.items():
            config = props(dist)["DistributionConfig"]
            for origin in config.get("Origins", []):
                if not mentions(origin.get("DomainName"), url_name):
                    continue
                oac_ref = origin.get("OriginAccessControlId")
                oac = next((r for n, r in resources(cfn, "AWS::CloudFront::OriginAccessControl").items()
                            if refers_to(oac_ref, n) or mentions(oac_ref, n)), None)
                if oac is None or props(oac)["OriginAccessControlConfig"].get("OriginAccessControlOriginType") != "lambda":
                    problems.append(f"{dist_name}'s origin {origin['Id']} has no origin access control of type lambda")
                behaviours = [b for b in config.get("CacheBehaviors", []) if b.get("TargetOriginId") == origin["Id"]]
                if not any(b.get("PathPattern") == "/api/*" for b in behaviours):
                    problems.append(f"{dist_name} has no /api/* behaviour to origin {origin['Id']}")
                fronted = True
                acl = evaluate(cfn, config.get("WebACLId", NO_VALUE), parameters(cfn))
                acl_name = next((n for n in resources(cfn, "AWS::WAFv2::WebACL") if refers_to(acl, n)), None)
                if acl_name is None:
                    problems.append(f"{dist_name} has no WAF web ACL of this template in us-east-1")
                    continue
                acl_props = props(cfn["Resources"][acl_name])
                if acl_props.get("Scope") != "CLOUDFRONT":
                    problems.append(f"{acl_name} is not of scope CLOUDFRONT")
                if not any("RateBasedStatement" in r.get("Statement", {}) and "Block" in r.get("Action", {})
                           for r in acl_props.get("Rules", [])):
                    problems.append(f"{acl_name} has no blocking rate-based rule")
        if not fronted:
            problems.append(f"no CloudFront distribution fronts {url_name}")
    return problems


def check_no_scan_for_the_api(cfn):
    """The role of a function reachable from the internet (through its URL) can Scan only the
    inventory table (the catalog's load, once per warm instance), never the events table."""
    problems = []
    for url in resources(cfn, "AWS::Lambda::Url").values():
        fn = props(url)["TargetFunctionArn"].get("Ref")
        role = props(cfn["Resources"][fn]).get("Role")
        role_name = next(n for n in resources(cfn, "AWS::IAM::Role") if refers_to(role, n))
        for policy in props(cfn["Resources"][role_name]).get("Policies", []):
            for s in statements(policy["PolicyDocument"]):
                if s.get("Effect") != "Allow":
                    continue
                scans = [a for a in as_list(s.get("Action", []))
                         if fnmatch.fnmatch("dynamodb:Scan", a) or fnmatch.fnmatch("dynamodb:scan", a)]
                resources_ = as_list(s.get("Resource"))
                if scans and not (len(resources_) == 1 and refers_to(resources_[0], "InventoryTable")):
                    problems.append(f"{role_name} ({fn}'s role) may {scans[0]} on {s.get('Resource')}")
    return problems


def check_stateful_resources_retained(cfn):
    """Tables, the stream, the dead-letter queues and the user pool survive stack deletion
    and replacement;
    the tables are deletion-protected outside dev and keep point-in-time recovery."""
    problems = []
    kinds = ("AWS::DynamoDB::Table", "AWS::Kinesis::Stream", "AWS::SQS::Queue", "AWS::Cognito::UserPool")
    for kind in kinds:
        for name, res in resources(cfn, kind).items():
            for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
                if res.get(policy) != "Retain":
                    problems.append(f"{name}: {policy} is {res.get(policy)!r}, not Retain")
    for name, table in resources(cfn, "AWS::DynamoDB::Table").items():
        p = props(table)
        for stage, want in (("prod", True), ("staging", True), ("dev", False)):
            got = evaluate(cfn, p.get("DeletionProtectionEnabled", False), parameters(cfn, Stage=stage))
            if got is not want and str(got).lower() != str(want).lower():
                problems.append(f"{name}: deletion protection is {got} in stage {stage}, want {want}")
        if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{name}: point-in-time recovery is off")
    return problems


def check_reserved_concurrency_off_by_default(cfn):
    """No function reserves concurrency unless a parameter asks for it."""
    problems = []
    defaults = parameters(cfn)
    for name, fn in resources(cfn, "AWS::Lambda::Function").items():
        reserved = props(fn).get("ReservedConcurrentExecutions", NO_VALUE)
        value = evaluate(cfn, reserved, defaults)
        if value is not NO_VALUE:
            problems.append(f"{name} reserves {value} concurrent executions by default")
        elif reserved is not NO_VALUE:
            on = evaluate(cfn, reserved, {**defaults, **{p: 5 for p in cfn.get("Parameters", {})
                                                        if p.endswith("ReservedConcurrency")}})
            if on is NO_VALUE:
                problems.append(f"{name}'s reservation cannot be turned on by its parameter")
    return problems


def check_json_logs(cfn):
    """Every function logs JSON (LoggingConfig.LogFormat)."""
    return [f"{name} does not log JSON (LoggingConfig.LogFormat)"
            for name, fn in resources(cfn, "AWS::Lambda::Function").items()
            if props(fn).get("LoggingConfig", {}).get("LogFormat") != "JSON"]


def check_dashboard(cfn):
    """A dashboard shows the Pipe's, Kinesis', Lambda's and DynamoDB's metrics and the
    processor's EMF metrics."""
    problems = []
    dashboards = resources(cfn, "AWS::CloudWatch::Dashboard")
    if not dashboards:
        return ["no CloudWatch dashboard"]
    for name, dash in dashboards.items():
        body = props(dash)["DashboardBody"]
        text = body.get("Fn::Sub", body) if isinstance(body, dict) else body
        if isinstance(text, list):
            text, variables = text
            for var, value in variables.items():
                value = evaluate(cfn, value, parameters(cfn))
                value = evaluate(cfn, value, parameters(cfn)) if isinstance(value, dict) else value
                text = text.replace("${" + var + "}", str(value))
        try:
            parsed = json.loads(re.sub(r"\$\{[^}]+\}", "x", text))
        except ValueError as e:
            problems.append(f"{name}: the body is not JSON once substituted: {e}")
            continue
        flat = json.dumps(parsed)
        for ns in ("AWS/EventBridge/Pipes", "AWS/Kinesis", "AWS/Lambda", "AWS/DynamoDB"):
            if f'"{ns}"' not in flat:
                problems.append(f"{name} shows no {ns} metric")
        for metric in EMF_METRICS:
            if not re.search(rf'Namespace=\\"{EMF_NAMESPACE}\\" MetricName=\\"{metric}\\"', flat):
                problems.append(f"{name} shows no {EMF_NAMESPACE} {metric}")
    return problems


def url_functions(cfn):
    """The functions reachable through a Function URL (the API)."""
    return [props(u)["TargetFunctionArn"].get("Ref") for u in resources(cfn, "AWS::Lambda::Url").values()]


def check_cognito_sign_in(cfn):
    """Users sign in through a Cognito user pool without self sign-up, whose hosted UI domain
    exists, with a public app client (no secret) allowed the authorization code flow only (no
    implicit flow, no password flows), called back at the console's distribution; the API's
    function is told the pool's issuer and the client id."""
    problems = []
    pools = resources(cfn, "AWS::Cognito::UserPool")
    if not pools:
        return ["no Cognito user pool"]
    for name, pool in pools.items():
        if props(pool).get("AdminCreateUserConfig", {}).get("AllowAdminCreateUserOnly") is not True:
            problems.append(f"{name} lets anyone sign up (AllowAdminCreateUserOnly is not true)")
        if not any(refers_to(props(d).get("UserPoolId"), name)
                   for d in resources(cfn, "AWS::Cognito::UserPoolDomain").values()):
            problems.append(f"{name} has no hosted UI domain (AWS::Cognito::UserPoolDomain)")
    clients = resources(cfn, "AWS::Cognito::UserPoolClient")
    if not clients:
        problems.append("no Cognito app client for the console")
    distributions = resources(cfn, "AWS::CloudFront::Distribution")
    for name, client in clients.items():
        p = props(client)
        if p.get("GenerateSecret") not in (False, None):
            problems.append(f"{name} has a client secret: a browser app cannot keep one")
        if p.get("AllowedOAuthFlowsUserPoolClient") is not True:
            problems.append(f"{name} is not allowed OAuth flows")
        if p.get("AllowedOAuthFlows") != ["code"]:
            problems.append(f"{name} allows flows {p.get('AllowedOAuthFlows')}, not only the authorization code flow")
        for flow in p.get("ExplicitAuthFlows", []):
            if flow != "ALLOW_REFRESH_TOKEN_AUTH":
                problems.append(f"{name} allows {flow}: tokens must come from the hosted UI's code flow")
        callbacks = p.get("CallbackURLs", [])
        if not callbacks or not all(any(mentions(c, d) for d in distributions) for c in callbacks):
            problems.append(f"{name}'s callback URLs {callbacks} are not the console's distribution")
    for fn in url_functions(cfn):
        env = props(cfn["Resources"][fn]).get("Environment", {}).get("Variables", {})
        if not any(mentions(env.get("COGNITO_ISSUER"), pool) for pool in pools):
            problems.append(f"{fn}'s environment has no COGNITO_ISSUER naming the user pool")
        if "COGNITO_CLIENT_ID" not in env and "COGNITO_CLIENT_ID_SECRET" not in env:
            problems.append(f"{fn}'s environment names no app client (COGNITO_CLIENT_ID or COGNITO_CLIENT_ID_SECRET)")
    return problems


def resolve(cfn, expr, params):
    """`evaluate` all the way down: each Fn::If's branch chosen, AWS::NoValue dropped."""
    if isinstance(expr, dict) and list(expr) == ["Fn::If"]:
        cond, yes, no = expr["Fn::If"]
        return resolve(cfn, yes if evaluate(cfn, {"Condition": cond}, params) else no, params)
    if isinstance(expr, dict) and expr == {"Ref": "AWS::NoValue"}:
        return NO_VALUE
    if isinstance(expr, dict):
        out = {k: resolve(cfn, v, params) for k, v in expr.items()}
        return {k: v for k, v in out.items() if v is not NO_VALUE}
    if isinstance(expr, list):
        return [v for v in (resolve(cfn, e, params) for e in expr) if v is not NO_VALUE]
    return expr


def check_no_generator_in_prod(cfn):
    """In the prod stage no simulation generator exists: its function (and every resource
    naming it) is conditional on the stage, and the API is not told of one."""
    problems = []
    prod, dev = parameters(cfn, Stage="prod"), parameters(cfn, Stage="dev")

    def exists(res, params):
        cond = res.get("Condition")
        return True if cond is None else evaluate(cfn, {"Condition": cond}, params)

    generators = [n for n, fn in resources(cfn, "AWS::Lambda::Function").items()
                  if "generator" in str(evaluate(cfn, props(fn).get("FunctionName"), dev))]
    if not generators:
        problems.append("no generator function found (FunctionName inventory-generator-<stage>)")
    for gen in generators:
        if exists(cfn["Resources"][gen], prod):
            problems.append(f"{gen} exists in the prod stage")
        if not exists(cfn["Resources"][gen], dev):
            problems.append(f"{gen} does not exist in the dev stage")
        for name, res in cfn["Resources"].items():
            if name != gen and exists(res, prod) and mentions(resolve(cfn, res, prod), gen):
                problems.append(f"{name} refers to {gen} in the prod stage, where it does not exist")
    for fn in url_functions(cfn):
        env = props(cfn["Resources"][fn]).get("Environment", {}).get("Variables", {})
        if evaluate(cfn, env.get("GENERATOR_FUNCTION", NO_VALUE), prod) is not NO_VALUE:
            problems.append(f"{fn} is given GENERATOR_FUNCTION in the prod stage")
    return problems


def check_stage_names_cannot_overlap(cfn):
    """Stage names are letters and digits only, so a pattern such as inventory-${Stage}-*
    (alarm names, the KMS key's grant) never covers another stage's resources."""
    pattern = cfn.get("Parameters", {}).get("Stage", {}).get("AllowedPattern")
    if pattern is None:
        return ["Stage has no AllowedPattern"]
    problems = []
    for bad in ("prod-eu", "dev-2", "a_b", "Prod", ""):
        if re.fullmatch(pattern, bad):
            problems.append(f"Stage's AllowedPattern {pattern!r} allows {bad!r}")
    for good in ("dev", "prod", "staging2"):
        if not re.fullmatch(pattern, good):
            problems.append(f"Stage's AllowedPattern {pattern!r} refuses {good!r}")
    return problems


def check_dead_letters_cannot_go_unseen(cfn):
    """Each Pipe dead-letter queue keeps messages 14 days and parks a message its consumer
    failed on 5 or so times in a queue kept 14 days, with an alarm on any parked message;
    an alarm counts dead letters as they arrive."""
    problems = []
    queues = resources(cfn, "AWS::SQS::Queue")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        dlq_expr = props(pipe)["SourceParameters"]["KinesisStreamParameters"].get("DeadLetterConfig", {}).get("Arn")
        dlq = next((n for n in queues if refers_to(dlq_expr, n)), None)
        if dlq is None:
            problems.append(f"{pipe_name} has no dead-letter queue of this template")
            continue
        if int(props(queues[dlq]).get("MessageRetentionPeriod", 345600)) < 1209600:
            problems.append(f"{dlq} keeps messages less than 14 days")
        if not alarms_on(cfn, "AWS/SQS", "NumberOfMessagesSent", "QueueName", dlq):
            problems.append(f"no alarm on dead letters arriving in {dlq}")
        policy = props(queues[dlq]).get("RedrivePolicy")
        if not policy:
            problems.append(f"{dlq} has no redrive policy: a message its consumer cannot archive is retried unseen")
            continue
        receives = int(policy.get("maxReceiveCount", 0))
        if not 1 <= receives <= 10:
            problems.append(f"{dlq} parks a message after {receives} receives, not 1 to 10")
        parked = next((n for n in queues if refers_to(policy.get("deadLetterTargetArn"), n)), None)
        if parked is None:
            problems.append(f"{dlq}'s redrive target is not a queue of this template")
            continue
        if int(props(queues[parked]).get("MessageRetentionPeriod", 345600)) < 1209600:
            problems.append(f"{parked} keeps parked dead letters less than 14 days")
        visible = alarms_on(cfn, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", parked)
        if not any(float(props(a).get("Threshold", 1)) == 0
                   and props(a).get("ComparisonOperator") == "GreaterThanThreshold" for a in visible.values()):
            problems.append(f"no alarm on any message visible in {parked}")
    return problems


def check_unarchived_dead_letters_alarmed(cfn):
    """Each function consuming a Pipe's dead-letter queue reports an archive failure as a
    batch item failure, which its Errors alarm never sees: it is told the stage, the dimension
    of the EMF metric it counts those failures in (dead-letters/src/metrics.rs), and an alarm
    on that metric under that dimension fires on any non-zero sum and stays quiet without
    data."""
    src = "dead-letters/src"
    namespace, metric = rust_str_const(src, "NAMESPACE"), rust_str_const(src, "NOT_ARCHIVED")
    stage_var = rust_str_const(src, "STAGE_VAR")
    problems = []
    functions = resources(cfn, "AWS::Lambda::Function")
    queues = resources(cfn, "AWS::SQS::Queue")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        dlq_expr = props(pipe)["SourceParameters"]["KinesisStreamParameters"].get("DeadLetterConfig", {}).get("Arn")
        dlq = next((n for n in queues if refers_to(dlq_expr, n)), None)
        mappings = [m for m in resources(cfn, "AWS::Lambda::EventSourceMapping").values()
                    if dlq is not None and refers_to(props(m).get("EventSourceArn"), dlq)]
        consumers = {n for n in functions for m in mappings if refers_to(props(m).get("FunctionName"), n)}
        if not consumers:
            problems.append(f"no function of this template consumes {pipe_name}'s dead-letter queue")
        for fn in sorted(consumers):
            env = props(functions[fn]).get("Environment", {}).get("Variables", {})
            if env.get(stage_var) != {"Ref": "Stage"}:
                problems.append(f"{fn} is not told {stage_var}: its {metric} metric lacks the Stage dimension the alarm reads")
    alarms = [a for a in resources(cfn, "AWS::CloudWatch::Alarm").values()
              if any(ns == namespace and m == metric and dims == {"Stage": {"Ref": "Stage"}}
                     for ns, m, dims in alarm_metrics(a))]
    if not any(props(a).get("Statistic") == "Sum" and float(props(a).get("Threshold", 1)) == 0
               and props(a).get("ComparisonOperator") == "GreaterThanThreshold"
               and props(a).get("TreatMissingData") == "notBreaching" for a in alarms):
        problems.append(f"no alarm on any {namespace} {metric} (Sum > 0 by Stage, missing data not breaching)")
    return problems


def check_isolation_outside_dev(cfn):
    """Outside dev a deploy must reserve concurrency for the processor and the API (whose
    reservation caps it); dev may reserve none; each reservation reaches its function."""
    problems = []
    for missing in ("ProcessorReservedConcurrency", "ApiReservedConcurrency"):
        if rules_pass(cfn, **{**FULL_PROD, missing: 0}):
            problems.append(f"a prod deploy with {missing} 0 passes the template's Rules")
    if not rules_pass(cfn, **FULL_PROD):
        problems.append("a prod deploy with both reservations fails the template's Rules")
    if not rules_pass(cfn, Stage="dev", AlarmEmail=""):
        problems.append("a dev deploy without reservations fails the template's Rules")
    params = parameters(cfn, **FULL_PROD)
    for fn_name, parameter in (("ProcessorFunction", "ProcessorReservedConcurrency"),
                               ("ApiFunction", "ApiReservedConcurrency")):
        fn = cfn["Resources"].get(fn_name)
        got = evaluate(cfn, props(fn).get("ReservedConcurrentExecutions", NO_VALUE), params) if fn else None
        if got != params[parameter]:
            problems.append(f"{fn_name} does not reserve {parameter} in prod (got {got!r})")
    return problems


def check_gradual_processor_deploys(cfn):
    """Each Pipe invokes an alias of its function, which CodeDeploy moves to a new version
    gradually outside dev (not all at once), stopping and rolling back on the processor's
    errors and the Pipe's failures."""
    problems = []
    groups = resources(cfn, "AWS::CodeDeploy::DeploymentGroup")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        target = props(pipe).get("Target")
        alias = next((n for n in resources(cfn, "AWS::Lambda::Alias") if refers_to(target, n)), None)
        if alias is None:
            problems.append(f"{pipe_name} invokes no alias: a deploy reaches every shard at once")
            continue
        update = cfn["Resources"][alias].get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate", {})
        group = next((n for n in groups if refers_to(update.get("DeploymentGroupName"), n)), None)
        if group is None:
            problems.append(f"{alias} is not moved by a CodeDeploy deployment group")
            continue
        p = props(groups[group])
        config = evaluate(cfn, p.get("DeploymentConfigName"), parameters(cfn, Stage="prod"))
        if "AllAtOnce" in json.dumps(config):
            problems.append(f"{group} deploys all at once outside dev")
        alarms = [a.get("Name") for a in p.get("AlarmConfiguration", {}).get("Alarms", [])]
        if p.get("AlarmConfiguration", {}).get("Enabled") is not True:
            problems.append(f"{group} watches no alarms")
        for needed in ("ProcessorErrorsAlarm", "PipeFailuresAlarm"):
            if not any(refers_to(a, needed) for a in alarms):
                problems.append(f"{group} does not stop on {needed}")
        events = p.get("AutoRollbackConfiguration", {}).get("Events", [])
        if "DEPLOYMENT_STOP_ON_ALARM" not in events or not p.get("AutoRollbackConfiguration", {}).get("Enabled"):
            problems.append(f"{group} does not roll back when an alarm stops it")
    return problems


def rust_str_const(directory, name):
    """The value of `const NAME: &str = "...";` in the Rust sources under `directory`."""
    for path in sorted((ROOT / directory).rglob("*.rs")):
        m = re.search(rf'const {name}: &str = "([^"]*)";', path.read_text())
        if m:
            return m.group(1)
    raise AssertionError(f"no Rust source under {directory} defines {name}; update infra/tests")


def check_api_writes_only_its_partitions(cfn):
    """The API's role writes the events table only in the partitions the API's code writes
    (the simulation lock's and the simulations'): a condition on dynamodb:LeadingKeys on every
    statement that lets it write there, so it cannot forge a dead letter to redrive or delete
    the shard log duplicate detection reads."""
    own = {rust_str_const("store/src", "LOCK_PK"), rust_str_const("store/src", "SIMULATIONS_PK")}
    writes = ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem",
              "dynamodb:TransactWriteItems", "dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate",
              "dynamodb:PartiQLDelete")
    problems = []
    for fn in url_functions(cfn):
        role_expr = props(cfn["Resources"][fn]).get("Role")
        role = next((n for n in resources(cfn, "AWS::IAM::Role") if refers_to(role_expr, n)), None)
        policies = props(cfn["Resources"][role]).get("Policies", []) if role else []
        for policy in policies:
            for st in statements(policy["PolicyDocument"]):
                granted = as_list(st.get("Action", []))
                writing = [w for w in writes if any(fnmatch.fnmatch(w, a) for a in granted)]
                on_events = any(refers_to(r, "EventsTable") or mentions(r, "EventsTable")
                                for r in as_list(st.get("Resource", [])))
                if st.get("Effect") != "Allow" or not writing or not on_events:
                    continue
                keys = st.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("dynamodb:LeadingKeys")
                if keys is None:
                    problems.append(f"{role} may {writing} anywhere in the events table")
                elif not set(as_list(keys)) <= own:
                    problems.append(f"{role} may write partitions {sorted(set(as_list(keys)) - own)} "
                                    f"the API's code does not write")
    return problems


def check_console_csp(cfn):
    """The console is served with a Content-Security-Policy of this template that runs only
    its own origin's scripts (and wasm): no 'unsafe-inline' or 'unsafe-eval', no framing, no
    plugins, the hosted UI allowed for the token exchange."""
    problems = []
    policies = resources(cfn, "AWS::CloudFront::ResponseHeadersPolicy")
    for name, dist in resources(cfn, "AWS::CloudFront::Distribution").items():
        default = props(dist)["DistributionConfig"]["DefaultCacheBehavior"]
        policy = next((n for n in policies if refers_to(default.get("ResponseHeadersPolicyId"), n)), None)
        if policy is None:
            problems.append(f"{name} serves the console with no response headers policy of this template")
            continue
        csp = props(policies[policy])["ResponseHeadersPolicyConfig"].get("SecurityHeadersConfig", {}).get(
            "ContentSecurityPolicy", {})
        text = evaluate(cfn, csp.get("ContentSecurityPolicy", ""), parameters(cfn))
        if not isinstance(text, str) or not text:
            problems.append(f"{policy} has no Content-Security-Policy")
            continue
        directives = {d.split()[0]: d.split()[1:] for d in text.split(";") if d.split()}
        script = directives.get("script-src", directives.get("default-src", []))
        for unsafe in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
            if unsafe in script:
                problems.append(f"{policy}'s script-src allows {unsafe}")
        for directive, want in (("default-src", ["'self'"]), ("frame-ancestors", ["'none'"]),
                                ("object-src", ["'none'"])):
            if directives.get(directive) != want:
                problems.append(f"{policy}: {directive} is {directives.get(directive)}, want {want}")
        if not any("amazoncognito.com" in src for src in directives.get("connect-src", [])):
            problems.append(f"{policy}'s connect-src leaves out the hosted UI: sign-in would fail")
        if csp.get("Override") is not True:
            problems.append(f"{policy} does not override an origin's Content-Security-Policy")
    return problems


def check_waf_rates_by_session_and_network(cfn):
    """Each WAF web ACL limits /api/* per signed-in session (a rate rule keyed on the
    console's token header, so consoles behind one NAT are not one client) and per IP over
    every request (a made-up token header does not escape it)."""
    problems = []
    for name, acl in resources(cfn, "AWS::WAFv2::WebACL").items():
        rates = [r for r in props(acl).get("Rules", [])
                 if "RateBasedStatement" in r.get("Statement", {}) and "Block" in r.get("Action", {})]
        by_header = [r for r in rates
                     if any(k.get("Header", {}).get("Name", "").lower() == "x-inventory-auth"
                            for k in r["Statement"]["RateBasedStatement"].get("CustomKeys", []))]
        if not by_header:
            problems.append(f"{name} has no rate rule per session (keyed on x-inventory-auth)")
        by_ip_all = [r for r in rates if r["Statement"]["RateBasedStatement"].get("AggregateKeyType") == "IP"
                     and "NotStatement" not in json.dumps(r["Statement"]["RateBasedStatement"].get("ScopeDownStatement", {}))]
        if not by_ip_all:
            problems.append(f"{name} has no rate rule per IP over signed-in requests too")
    return problems


def check_mfa_required_outside_dev(cfn):
    """Console users must set up a second factor in every stage but dev by default."""
    problems = []
    for name, pool in resources(cfn, "AWS::Cognito::UserPool").items():
        for stage in ("prod", "staging"):
            got = evaluate(cfn, props(pool).get("MfaConfiguration", "OFF"), parameters(cfn, Stage=stage))
            if got != "ON":
                problems.append(f"{name}: MFA is {got!r} in stage {stage} by default, not ON")
    return problems


def check_every_alarm_on_dashboard(cfn):
    """The dashboard's alarm widget shows every alarm of the template."""
    dashboards = resources(cfn, "AWS::CloudWatch::Dashboard")
    if not dashboards:
        return ["no CloudWatch dashboard"]
    bodies = json.dumps([props(d).get("DashboardBody") for d in dashboards.values()])
    return [f"{name} is not on the dashboard"
            for name in resources(cfn, "AWS::CloudWatch::Alarm")
            if "${" + name + ".Arn}" not in bodies]


def check_logs_kept(cfn):
    """Each Pipe logs its errors to a log group of this template with a retention, which its
    role may write; each WAF web ACL logs to an aws-waf-logs- group with a retention."""
    problems = []
    groups = resources(cfn, "AWS::Logs::LogGroup")
    for pipe_name, pipe in resources(cfn, "AWS::Pipes::Pipe").items():
        config = props(pipe).get("LogConfiguration")
        if not config:
            problems.append(f"{pipe_name} has no LogConfiguration")
            continue
        if config.get("Level") not in ("ERROR", "INFO", "TRACE"):
            problems.append(f"{pipe_name} logs at {config.get('Level')!r}")
        dest = config.get("CloudwatchLogsLogDestination", {}).get("LogGroupArn")
        group = next((n for n in groups if refers_to(dest, n)), None)
        if group is None:
            problems.append(f"{pipe_name} logs to no log group of this template")
            continue
        if "RetentionInDays" not in props(groups[group]):
            problems.append(f"{group} keeps {pipe_name}'s logs forever (no RetentionInDays)")
        if not role_allows(cfn, props(pipe).get("RoleArn"), "logs:PutLogEvents", group):
            problems.append(f"{pipe_name}'s role cannot write {group}")
    logging_configs = resources(cfn, "AWS::WAFv2::LoggingConfiguration")
    for acl in resources(cfn, "AWS::WAFv2::WebACL"):
        configs = [c for c in logging_configs.values() if refers_to(props(c).get("ResourceArn"), acl)]
        if not configs:
            problems.append(f"{acl} has no WAF logging configuration")
        for c in configs:
            for dest in props(c).get("LogDestinationConfigs", []):
                group = next((n for n in groups if mentions(dest, n)), None)
                if group is None:
                    problems.append(f"{acl} logs to no log group of this template")
                    continue
                name = evaluate(cfn, props(groups[group]).get("LogGroupName"), parameters(cfn))
                if not str(name).startswith("aws-waf-logs-"):
                    problems.append(f"{group}'s name {name!r} does not start with aws-waf-logs-")
                if "RetentionInDays" not in props(groups[group]):
                    problems.append(f"{group} keeps WAF logs forever (no RetentionInDays)")
    return problems


def check_encrypted_arm64_and_guarded(cfn):
    """Functions run on arm64; tables, the stream and the queues are encrypted at rest; the
    events table expires items by TTL; each table caps its on-demand throughput with a
    parameter; each WAF web ACL runs AWS's known-bad-inputs rules."""
    problems = []
    for name, fn in resources(cfn, "AWS::Lambda::Function").items():
        if props(fn).get("Architectures") != ["arm64"]:
            problems.append(f"{name} does not run on arm64")
    for name, table in resources(cfn, "AWS::DynamoDB::Table").items():
        p = props(table)
        if p.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{name} is not encrypted at rest (SSESpecification)")
        limits = p.get("OnDemandThroughput", {})
        for key in ("MaxReadRequestUnits", "MaxWriteRequestUnits"):
            if not isinstance(limits.get(key), dict) or "Ref" not in limits[key]:
                problems.append(f"{name} has no {key} parameter (OnDemandThroughput)")
    events = [n for n, t in resources(cfn, "AWS::DynamoDB::Table").items()
              if any(k.get("KeyType") == "RANGE" for k in props(t).get("KeySchema", []))]
    for name in events:
        ttl = props(cfn["Resources"][name]).get("TimeToLiveSpecification", {})
        if ttl.get("Enabled") is not True or not ttl.get("AttributeName"):
            problems.append(f"{name} does not expire items by TTL")
    for name, stream in resources(cfn, "AWS::Kinesis::Stream").items():
        if props(stream).get("StreamEncryption", {}).get("EncryptionType") != "KMS":
            problems.append(f"{name} is not encrypted at rest")
    for name, queue in resources(cfn, "AWS::SQS::Queue").items():
        if props(queue).get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in props(queue):
            problems.append(f"{name} is not encrypted at rest")
    for name, acl in resources(cfn, "AWS::WAFv2::WebACL").items():
        groups = [r.get("Statement", {}).get("ManagedRuleGroupStatement", {}).get("Name")
                  for r in props(acl).get("Rules", [])]
        if "AWSManagedRulesKnownBadInputsRuleSet" not in groups:
            problems.append(f"{name} does not run AWSManagedRulesKnownBadInputsRuleSet")
    return problems


def check_reads_need_sign_in_by_default(cfn):
    """The API is told PUBLIC_READS from the PublicReads parameter, "false" unless a deploy
    says otherwise, so every read needs sign-in by default; the /api/* behaviour caches with
    a policy of this template that keys on the caller's token (x-inventory-auth) and every
    query string, keeps nothing the API does not mark (DefaultTTL 0) and nothing past 5 s."""
    problems = []
    default = cfn.get("Parameters", {}).get("PublicReads", {}).get("Default")
    if default != "false":
        problems.append(f"PublicReads defaults to {default!r}, not \"false\"")
    for fn in url_functions(cfn):
        env = props(cfn["Resources"][fn]).get("Environment", {}).get("Variables", {})
        for given in ("false", "true"):
            told = evaluate(cfn, env.get("PUBLIC_READS", NO_VALUE), parameters(cfn, PublicReads=given))
            if told != given:
                problems.append(f"{fn} is told PUBLIC_READS={'unset' if told is NO_VALUE else told!r} when PublicReads is {given!r}")
    policies = resources(cfn, "AWS::CloudFront::CachePolicy")
    for dist_name, dist in resources(cfn, "AWS::CloudFront::Distribution").items():
        api = [b for b in props(dist)["DistributionConfig"].get("CacheBehaviors", []) if b.get("PathPattern") == "/api/*"]
        if not api:
            problems.append(f"{dist_name} has no /api/* behaviour")
        for behaviour in api:
            name = next((n for n in policies if refers_to(behaviour.get("CachePolicyId"), n)), None)
            if name is None:
                problems.append(f"{dist_name}'s /api/* behaviour uses no cache policy of this template")
                continue
            config = props(policies[name])["CachePolicyConfig"]
            if config.get("DefaultTTL") != 0 or config.get("MinTTL") != 0:
                problems.append(f"{name} caches what the API does not mark (DefaultTTL and MinTTL must be 0)")
            if not 0 < config.get("MaxTTL", 0) <= 5:
                problems.append(f"{name} has MaxTTL {config.get('MaxTTL')}, not 1 to 5 s")
            keys = config.get("ParametersInCacheKeyAndForwardedToOrigin", {})
            headers = [h.lower() for h in keys.get("HeadersConfig", {}).get("Headers", [])]
            if "x-inventory-auth" not in headers:
                problems.append(f"{name} does not key on x-inventory-auth: one caller could get another's answer")
            if keys.get("QueryStringsConfig", {}).get("QueryStringBehavior") != "all":
                problems.append(f"{name} does not key on every query string")
    return problems


CHECKS = [
    check_reads_need_sign_in_by_default,
    check_alarm_topic_deliverable,
    check_every_alarm_notifies,
    check_alarm_email_required_outside_dev,
    check_blind_spots_alarmed,
    check_silence_alarms,
    check_retention_outlives_record_age,
    check_no_public_function_url,
    check_no_scan_for_the_api,
    check_stateful_resources_retained,
    check_reserved_concurrency_off_by_default,
    check_json_logs,
    check_dashboard,
    check_cognito_sign_in,
    check_no_generator_in_prod,
    check_dead_letters_archived_and_redrivable,
    check_lineage_is_listed,
    check_stage_names_cannot_overlap,
    check_dead_letters_cannot_go_unseen,
    check_unarchived_dead_letters_alarmed,
    check_mfa_required_outside_dev,
    check_isolation_outside_dev,
    check_api_writes_only_its_partitions,
    check_console_csp,
    check_waf_rates_by_session_and_network,
    check_gradual_processor_deploys,
    check_every_alarm_on_dashboard,
    check_logs_kept,
    check_encrypted_arm64_and_guarded,
]


# ---------------------------------------------------------------- tests


def sam_template():
    return yaml_parse(TEMPLATE.read_text())


def transformed(sam):
    cfn, problems = package_and_transform(copy.deepcopy(sam), TEMPLATE.parent)
    if problems:
        raise AssertionError(f"packaging or IAM findings: {problems}")
    return cfn


class TemplateHolds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cfn = transformed(sam_template())


def _holds(check):
    def test(self):
        problems = check(self.cfn)
        self.assertEqual(problems, [], f"{check.__name__}: {check.__doc__.split('.')[0]}")
    test.__doc__ = check.__doc__
    return test


for _check in CHECKS:
    setattr(TemplateHolds, "test_" + _check.__name__[len("check_"):], _holds(_check))


# Each mutation removes or breaks one property in the SAM template; the named check must
# then report it. (name, check, mutation of the parsed SAM template)
def _res(sam, name):
    return sam["Resources"][name]


def _props(sam, name):
    return _res(sam, name)["Properties"]


def _drop_statement(doc, sid):
    doc["Statement"] = [s for s in doc["Statement"] if s.get("Sid") != sid]


MUTATIONS = [
    ("public reads by default", check_reads_need_sign_in_by_default,
     lambda s: s["Parameters"]["PublicReads"].update(Default="true")),
    ("the API not told PUBLIC_READS", check_reads_need_sign_in_by_default,
     lambda s: _props(s, "ApiFunction")["Environment"]["Variables"].pop("PUBLIC_READS")),
    ("PUBLIC_READS fixed, not the parameter", check_reads_need_sign_in_by_default,
     lambda s: _props(s, "ApiFunction")["Environment"]["Variables"].update(PUBLIC_READS="false")),
    ("the API cache not keyed on the token", check_reads_need_sign_in_by_default,
     lambda s: _props(s, "ApiCachePolicy")["CachePolicyConfig"]["ParametersInCacheKeyAndForwardedToOrigin"]
     .update(HeadersConfig={"HeaderBehavior": "none"})),
    ("API answers cached a minute", check_reads_need_sign_in_by_default,
     lambda s: _props(s, "ApiCachePolicy")["CachePolicyConfig"].update(MaxTTL=60, DefaultTTL=60)),
    ("topic under the AWS managed key", check_alarm_topic_deliverable,
     lambda s: _props(s, "AlarmTopic").update(KmsMasterKeyId="alias/aws/sns")),
    ("key policy without CloudWatch", check_alarm_topic_deliverable,
     lambda s: _drop_statement(_props(s, "AlarmKey")["KeyPolicy"], "CloudWatchPublishesThisStagesAlarms")),
    ("key rotation off", check_alarm_topic_deliverable,
     lambda s: _props(s, "AlarmKey").update(EnableKeyRotation=False)),
    ("topic policy without CloudWatch", check_alarm_topic_deliverable,
     lambda s: _drop_statement(_props(s, "AlarmTopicPolicy")["PolicyDocument"], "CloudWatchPublishesThisStagesAlarms")),
    ("an alarm named outside the key's pattern", check_alarm_topic_deliverable,
     lambda s: _props(s, "Api5xxAlarm").update(AlarmName={"Fn::Sub": "api-5xx-${Stage}"})),
    ("an alarm without AlarmActions", check_every_alarm_notifies,
     lambda s: _props(s, "PipeThrottlesAlarm").pop("AlarmActions")),
    ("no rule on AlarmEmail", check_alarm_email_required_outside_dev,
     lambda s: s.pop("Rules")),
    ("no alarm on Pipe throttles", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("PipeThrottlesAlarm")),
    ("no alarm on Pipe partial failures", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("PipePartialFailuresAlarm")),
    ("no alarm on the generator's errors", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("GeneratorErrorsAlarm")),
    ("no alarm on the API's throttles", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("ApiThrottlesAlarm")),
    ("no alarm on API 5xx", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("Api5xxAlarm")),
    ("iterator age silent when the Pipe stops", check_silence_alarms,
     lambda s: _props(s, "IteratorAgeAlarm").update(TreatMissingData="notBreaching")),
    ("not-invoked alarm with missing data not breaching", check_silence_alarms,
     lambda s: _props(s, "ProcessorNotInvokedAlarm").update(TreatMissingData="notBreaching")),
    ("no not-invoked alarm", check_silence_alarms,
     lambda s: s["Resources"].pop("ProcessorNotInvokedAlarm")),
    ("24 h retention", check_retention_outlives_record_age,
     lambda s: _props(s, "EventStream").update(RetentionPeriodHours=24)),
    ("record age of 2 days", check_retention_outlives_record_age,
     lambda s: _props(s, "InventoryPipe")["SourceParameters"]["KinesisStreamParameters"].update(
         MaximumRecordAgeInSeconds=172800)),
    ("dead-letter age alarm too late", check_retention_outlives_record_age,
     lambda s: _props(s, "DeadLetterAgeAlarm").update(Threshold=6 * 86400)),
    ("Function URL with AuthType NONE", check_no_public_function_url,
     lambda s: _props(s, "ApiFunction")["FunctionUrlConfig"].update(AuthType="NONE")),
    ("no CloudFront permission on the URL", check_no_public_function_url,
     lambda s: s["Resources"].pop("ApiUrlInvokeFromCloudFront")),
    ("no /api/* behaviour", check_no_public_function_url,
     lambda s: _props(s, "ConsoleDistribution")["DistributionConfig"].pop("CacheBehaviors")),
    ("no WAF on the distribution", check_no_public_function_url,
     lambda s: _props(s, "ConsoleDistribution")["DistributionConfig"].pop("WebACLId")),
    ("OAC of type s3 on the API origin", check_no_public_function_url,
     lambda s: _props(s, "ApiOriginAccessControl")["OriginAccessControlConfig"].update(
         OriginAccessControlOriginType="s3")),
    ("Scan of the events table for the API", check_no_scan_for_the_api,
     lambda s: _props(s, "ApiRole")["Policies"][0]["PolicyDocument"]["Statement"][1]["Action"].append("dynamodb:Scan")),
    ("inventory table not retained", check_stateful_resources_retained,
     lambda s: _res(s, "InventoryTable").pop("DeletionPolicy")),
    ("stream replaced without retention", check_stateful_resources_retained,
     lambda s: _res(s, "EventStream").pop("UpdateReplacePolicy")),
    ("no deletion protection", check_stateful_resources_retained,
     lambda s: _props(s, "EventsTable").pop("DeletionProtectionEnabled")),
    ("no PITR on the inventory table", check_stateful_resources_retained,
     lambda s: _props(s, "InventoryTable").pop("PointInTimeRecoverySpecification")),
    ("a fixed reservation", check_reserved_concurrency_off_by_default,
     lambda s: _props(s, "ProcessorFunction").update(ReservedConcurrentExecutions=50)),
    ("text logs", check_json_logs,
     lambda s: s["Globals"]["Function"].pop("LoggingConfig")),
    ("implicit flow on the console's client", check_cognito_sign_in,
     lambda s: _props(s, "UserPoolClient")["AllowedOAuthFlows"].append("implicit")),
    ("a client secret", check_cognito_sign_in,
     lambda s: _props(s, "UserPoolClient").update(GenerateSecret=True)),
    ("a password flow", check_cognito_sign_in,
     lambda s: _props(s, "UserPoolClient")["ExplicitAuthFlows"].append("ALLOW_USER_PASSWORD_AUTH")),
    ("self sign-up", check_cognito_sign_in,
     lambda s: _props(s, "UserPool")["AdminCreateUserConfig"].update(AllowAdminCreateUserOnly=False)),
    ("no hosted UI domain", check_cognito_sign_in,
     lambda s: s["Resources"].pop("UserPoolDomain")),
    ("the API not told the issuer", check_cognito_sign_in,
     lambda s: _props(s, "ApiFunction")["Environment"]["Variables"].pop("COGNITO_ISSUER")),
    ("the generator in prod", check_no_generator_in_prod,
     lambda s: _res(s, "GeneratorFunction").pop("Condition")),
    ("the API told of a generator in prod", check_no_generator_in_prod,
     lambda s: _props(s, "ApiFunction")["Environment"]["Variables"].update(
         GENERATOR_FUNCTION={"Ref": "GeneratorFunction"})),
    ("no consumer on the dead-letter queue", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "DeadLetterConsumerFunction").pop("Events")),
    ("a consumer without partial batch failures", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "DeadLetterConsumerFunction")["Events"]["DeadLetters"]["Properties"].pop("FunctionResponseTypes")),
    ("the queue's default visibility timeout", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "PipeDeadLetterQueue").pop("VisibilityTimeout")),
    ("a consumer that cannot read the stream", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "DeadLetterConsumerRole")["Policies"][0]["PolicyDocument"]["Statement"].pop(0)),
    ("an API not told the dead-letter function", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "ApiFunction")["Environment"]["Variables"].pop("DEAD_LETTER_FUNCTION")),
    ("a consumer that cannot republish", check_dead_letters_archived_and_redrivable,
     lambda s: _props(s, "DeadLetterConsumerFunction")["Environment"]["Variables"].pop("STREAM_NAME")),
    ("a processor that cannot list the shards", check_lineage_is_listed,
     lambda s: _props(s, "ProcessorRole")["Policies"][0]["PolicyDocument"]["Statement"].pop(2)),
    ("a consumer that cannot list the shards", check_lineage_is_listed,
     lambda s: _props(s, "DeadLetterConsumerRole")["Policies"][0]["PolicyDocument"]["Statement"][0].update(
         Action=["kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:PutRecords"])),
    ("no EMF metrics on the dashboard", check_dashboard,
     lambda s: _props(s, "Dashboard").update(DashboardBody={
         "Fn::Sub": [_props(s, "Dashboard")["DashboardBody"]["Fn::Sub"][0].replace("InventoryPipeline", "Other"),
                     _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"][1]]})),

    ("stage names with a dash", check_stage_names_cannot_overlap,
     lambda s: s["Parameters"]["Stage"].update(AllowedPattern="^[a-z0-9-]{1,16}$")),
    ("no redrive policy on the dead-letter queue", check_dead_letters_cannot_go_unseen,
     lambda s: _props(s, "PipeDeadLetterQueue").pop("RedrivePolicy")),
    ("no alarm on parked dead letters", check_dead_letters_cannot_go_unseen,
     lambda s: s["Resources"].pop("DeadLetterParkedAlarm")),
    ("parked dead letters kept 4 days", check_dead_letters_cannot_go_unseen,
     lambda s: _props(s, "PipeDeadLetterParking").update(MessageRetentionPeriod=345600)),
    ("the dead-letter queue's default retention", check_dead_letters_cannot_go_unseen,
     lambda s: _props(s, "PipeDeadLetterQueue").pop("MessageRetentionPeriod")),
    ("no alarm on dead letters arriving", check_dead_letters_cannot_go_unseen,
     lambda s: s["Resources"].pop("DeadLetterAlarm")),
    ("no alarm on dead letters not archived", check_unarchived_dead_letters_alarmed,
     lambda s: s["Resources"].pop("DeadLetterNotArchivedAlarm")),
    ("the consumer not told its stage", check_unarchived_dead_letters_alarmed,
     lambda s: _props(s, "DeadLetterConsumerFunction")["Environment"]["Variables"].pop("STAGE")),
    ("the not-archived alarm on another metric name", check_unarchived_dead_letters_alarmed,
     lambda s: _props(s, "DeadLetterNotArchivedAlarm").update(MetricName="DeadLetterNotArchived")),
    ("the not-archived alarm without its Stage dimension", check_unarchived_dead_letters_alarmed,
     lambda s: _props(s, "DeadLetterNotArchivedAlarm").pop("Dimensions")),
    ("the not-archived alarm breaching on silence", check_unarchived_dead_letters_alarmed,
     lambda s: _props(s, "DeadLetterNotArchivedAlarm").update(TreatMissingData="breaching")),
    ("the not-archived alarm missing from the dashboard", check_every_alarm_on_dashboard,
     lambda s: _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"].__setitem__(
         0, _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"][0].replace('"${DeadLetterNotArchivedAlarm.Arn}",', ""))),
    ("user pool not retained", check_stateful_resources_retained,
     lambda s: _res(s, "UserPool").pop("DeletionPolicy")),
    ("no reservation rule outside dev", check_isolation_outside_dev,
     lambda s: s["Rules"].pop("ReservationsOutsideDev")),
    ("the API's reservation not applied", check_isolation_outside_dev,
     lambda s: _props(s, "ApiFunction").pop("ReservedConcurrentExecutions")),
    ("the Pipe invokes the function, not its alias", check_gradual_processor_deploys,
     lambda s: _props(s, "InventoryPipe").update(Target={"Fn::GetAtt": ["ProcessorFunction", "Arn"]})),
    ("all at once in prod", check_gradual_processor_deploys,
     lambda s: _props(s, "ProcessorFunction")["DeploymentPreference"].update(Type="AllAtOnce")),
    ("a deploy that ignores the processor's errors", check_gradual_processor_deploys,
     lambda s: _props(s, "ProcessorFunction")["DeploymentPreference"].update(Alarms=[{"Ref": "PipeFailuresAlarm"}])),
    ("the API's writes anywhere in the events table", check_api_writes_only_its_partitions,
     lambda s: _props(s, "ApiRole")["Policies"][0]["PolicyDocument"]["Statement"][2].pop("Condition")),
    ("the API may write the dead letters' partition", check_api_writes_only_its_partitions,
     lambda s: _props(s, "ApiRole")["Policies"][0]["PolicyDocument"]["Statement"][2]["Condition"][
         "ForAllValues:StringEquals"].update({"dynamodb:LeadingKeys": ["LOCKS", "SIMULATIONS", "DEADLETTERS"]})),
    ("an UpdateItem beside the condition", check_api_writes_only_its_partitions,
     lambda s: _props(s, "ApiRole")["Policies"][0]["PolicyDocument"]["Statement"][1]["Action"].append("dynamodb:UpdateItem")),
    ("the managed security headers only", check_console_csp,
     lambda s: _props(s, "ConsoleDistribution")["DistributionConfig"]["DefaultCacheBehavior"].update(
         ResponseHeadersPolicyId="67f7725c-6f97-4210-82d7-5512b31e9d03")),
    ("inline scripts allowed", check_console_csp,
     lambda s: _props(s, "ConsoleSecurityHeaders")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"][
         "ContentSecurityPolicy"].update(ContentSecurityPolicy="default-src 'self'; script-src 'self' 'unsafe-inline'")),
    ("no rate per session", check_waf_rates_by_session_and_network,
     lambda s: _props(s, "ApiWebAcl").update(
         Rules=[r for r in _props(s, "ApiWebAcl")["Rules"] if r["Name"] != "api-rate-per-session"])),
    ("no rate per IP over signed-in requests", check_waf_rates_by_session_and_network,
     lambda s: _props(s, "ApiWebAcl").update(
         Rules=[r for r in _props(s, "ApiWebAcl")["Rules"] if r["Name"] != "api-rate-per-network"])),
    ("MFA optional everywhere", check_mfa_required_outside_dev,
     lambda s: _props(s, "UserPool").update(MfaConfiguration="OPTIONAL")),
    ("no alarm on the inventory table's throttles", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("InventoryTableThrottlesAlarm")),
    ("no alarm on the stream's write throttles", check_blind_spots_alarmed,
     lambda s: s["Resources"].pop("StreamWriteThrottlesAlarm")),
    ("an alarm missing from the dashboard", check_every_alarm_on_dashboard,
     lambda s: _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"].__setitem__(
         0, _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"][0].replace('"${DeadLetterParkedAlarm.Arn}",', ""))),
    ("the generator's alarms missing from the dashboard", check_every_alarm_on_dashboard,
     lambda s: _props(s, "Dashboard")["DashboardBody"]["Fn::Sub"].__setitem__(1, {"GeneratorAlarms": ""})),
    ("no Pipe logs", check_logs_kept,
     lambda s: _props(s, "InventoryPipe").pop("LogConfiguration")),
    ("Pipe logs kept forever", check_logs_kept,
     lambda s: _props(s, "PipeLogs").pop("RetentionInDays")),
    ("no WAF logs", check_logs_kept,
     lambda s: s["Resources"].pop("WafLogging")),
    ("x86_64 functions", check_encrypted_arm64_and_guarded,
     lambda s: s["Globals"]["Function"].pop("Architectures")),
    ("no TTL on the events table", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "EventsTable").pop("TimeToLiveSpecification")),
    ("an unencrypted table", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "InventoryTable").pop("SSESpecification")),
    ("an unencrypted stream", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "EventStream").pop("StreamEncryption")),
    ("an unencrypted parking queue", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "PipeDeadLetterParking").pop("SqsManagedSseEnabled")),
    ("no cap on a table's reads", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "EventsTable").pop("OnDemandThroughput")),
    ("no known-bad-inputs rule", check_encrypted_arm64_and_guarded,
     lambda s: _props(s, "ApiWebAcl").update(Rules=_props(s, "ApiWebAcl")["Rules"][:1])),
]


class ChecksCanFail(unittest.TestCase):
    """Each check reports its property once the property is removed from the template."""

    @classmethod
    def setUpClass(cls):
        cls.sam = sam_template()

    def test_each_mutation_is_reported(self):
        for label, check, mutate in MUTATIONS:
            with self.subTest(label):
                sam = copy.deepcopy(self.sam)
                mutate(sam)
                problems = check(transformed(sam))
                self.assertNotEqual(problems, [], f"{check.__name__} did not notice: {label}")

    def test_every_check_has_a_mutation(self):
        self.assertEqual({c.__name__ for c in CHECKS}, {c.__name__ for _, c, _ in MUTATIONS})


class IamFindings(unittest.TestCase):
    """The IAM check sees a grant wherever the template puts it: inside a role, or in an
    AWS::IAM::RolePolicy or AWS::IAM::Policy beside it."""

    @classmethod
    def setUpClass(cls):
        cls.cfn = transformed(sam_template())

    def findings_with(self, kind, statement):
        cfn = copy.deepcopy(self.cfn)
        document = {"Version": "2012-10-17", "Statement": [statement]}
        cfn["Resources"]["Extra"] = {"Type": kind, "Properties": {
            "PolicyName": "extra", "RoleName": {"Ref": "ApiRole"}, "Roles": [{"Ref": "ApiRole"}],
            "PolicyDocument": document}}
        return iam_findings(cfn)

    def test_the_template_has_none(self):
        self.assertEqual(iam_findings(self.cfn), [])

    def test_every_policy_kind_is_read(self):
        broad = [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "arn:aws:dynamodb:*:*:table/*"},
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::*"},
        ]
        for kind in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in broad:
                with self.subTest(kind=kind, statement=statement):
                    self.assertNotEqual(self.findings_with(kind, statement), [])

    def test_a_named_resource_passes(self):
        named = {"Effect": "Allow", "Action": ["dynamodb:GetItem"],
                 "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/inventory-dev"}
        self.assertEqual(self.findings_with("AWS::IAM::RolePolicy", named), [])


if __name__ == "__main__":
    unittest.main()
