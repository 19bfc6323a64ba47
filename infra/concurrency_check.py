"""Checks, before `make deploy`, that the account's Lambda concurrency can take the stack, and
says exactly which quota increase to request when it cannot.

Lambda keeps at least 100 concurrent executions unreserved in an account and Region, so a
reservation is only possible when the limit leaves 100 besides it; new accounts often have a
limit of 10. Without reservations the functions share the unreserved pool, which must fit
one processor per shard (an on-demand stream starts with 4), the API and a simulation.

    python infra/concurrency_check.py --stage dev [--processor N] [--api N] [--generator N]
        [--stream NAME] [--plan-out FILE]

Outside dev it first plans the reservations (`plan`: the processor isolated, the API
capped) and writes them to --plan-out for the deploy.

Run by scripts/deploy.sh with the aws-sam-cli venv's python (boto3); exit code 1 when the
account is too small, with the request to make. `plan` and `verdict` are pure and unit-tested
(infra/tests/test_concurrency_check.py).
"""

import argparse
import sys

# Lambda's floor on unreserved concurrency (docs: "Lambda keeps at least 100 unreserved").
MIN_UNRESERVED = 100
# Without reservations: 4 processor instances (one per initial on-demand shard, Pipe
# ParallelizationFactor 1), 2 API requests at once, 1 simulation.
UNRESERVED_NEED = 4 + 2 + 1
QUOTA_CODE = "L-B99A9384"  # Service Quotas: AWS Lambda, "Concurrent executions"
# An on-demand stream starts with 4 shards; the Pipe runs one processor per shard.
INITIAL_SHARDS = 4
# The API's reservation outside dev is also its cap: at most this many concurrent requests,
# so a flood of reads cannot take the concurrency the processor needs.
API_CAP = 20
API_FLOOR = 2


class ReservationTooLow(ValueError):
    """A reservation asked for outside dev that cannot keep the stage running."""


def plan(stage, limit, open_shards, requested):
    """The reservations to deploy. In dev, what was asked (0 = none). Outside dev every
    stage isolates its processor and caps its API: a processor reservation of twice the
    stream's open shards (a reshard doubles them; at least the 4 an on-demand stream starts
    with) and an API reservation of a quarter of what the account's limit leaves after
    Lambda's 100 unreserved and the processor's, between 2 and 20. Values asked for are kept,
    but a processor reservation below the shard count, or none for the API, is refused.
    """
    if stage == "dev":
        return dict(requested)
    shards = max(open_shards, INITIAL_SHARDS)
    out = dict(requested)
    if out["processor"] == 0:
        out["processor"] = 2 * shards
    elif out["processor"] < shards:
        raise ReservationTooLow(
            f"a processor reservation of {out['processor']} is below the stream's {shards} shards: "
            f"the Pipe would be throttled on some shards; reserve at least {shards} "
            f"(PROCESSOR_RESERVED_CONCURRENCY), or leave it unset for {2 * shards}")
    if out["api"] == 0:
        spare = limit - MIN_UNRESERVED - out["processor"]
        out["api"] = max(API_FLOOR, min(API_CAP, spare // 4))
    return out


def verdict(limit, unreserved, ours_reserved_now, requested, region):
    """Returns None when the deploy fits, else what to request.

    limit: the account's ConcurrentExecutions; unreserved: its UnreservedConcurrentExecutions
    now; ours_reserved_now: what this stage's functions reserve today (a redeploy gives it
    back first); requested: {function: reservation, 0 = none}.
    """
    want = sum(requested.values())
    after = unreserved + ours_reserved_now - want
    unreserved_functions = [f for f, n in requested.items() if n == 0]
    need_after = max(MIN_UNRESERVED if want else 0, UNRESERVED_NEED if unreserved_functions else 0)
    if after >= need_after:
        return None
    desired = limit + (need_after - after)
    why = (f"reserving {want} ({', '.join(f'{f} {n}' for f, n in requested.items() if n)}) "
           f"would leave {after} unreserved, below Lambda's minimum of {MIN_UNRESERVED}"
           if want and after < MIN_UNRESERVED else
           f"the stack's unreserved functions need about {UNRESERVED_NEED} concurrent executions "
           f"and the account has {after} unreserved")
    return (
        f"The account's Lambda concurrency is too low for this deploy: limit {limit}, "
        f"{unreserved} unreserved now; {why}.\n"
        f"Request it in Service Quotas > AWS Lambda > \"Concurrent executions\" "
        f"(quota {QUOTA_CODE}) in {region}: at least {desired}, e.g.\n"
        f"  aws service-quotas request-service-quota-increase --service-code lambda "
        f"--quota-code {QUOTA_CODE} --desired-value {desired} --region {region}\n"
        + ("or deploy without reservations (the default: leave *_RESERVED_CONCURRENCY unset)."
           if want else "or free concurrency reserved by other functions in the account.")
    )


def open_shards(stream):
    """The stream's open shards now (0 when it is not deployed yet)."""
    if not stream:
        return 0
    import boto3

    kinesis = boto3.client("kinesis")
    try:
        return kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["OpenShardCount"]
    except kinesis.exceptions.ResourceNotFoundException:
        return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stage", required=True)
    p.add_argument("--processor", type=int, default=0)
    p.add_argument("--api", type=int, default=0)
    p.add_argument("--generator", type=int, default=0)
    p.add_argument("--stream", help="the stage's stream, if deployed: its open shards size the processor's reservation")
    p.add_argument("--plan-out", help="write the reservations to deploy here, as KEY=VALUE lines")
    args = p.parse_args()

    import boto3  # only here: the unit tests need no AWS SDK

    client = boto3.client("lambda")
    settings = client.get_account_settings()["AccountLimit"]
    requested = {"processor": args.processor, "api": args.api, "generator": args.generator}
    ours = 0
    for kind in requested:
        name = f"inventory-{kind}-{args.stage}"
        try:
            ours += client.get_function_concurrency(FunctionName=name).get(
                "ReservedConcurrentExecutions", 0)
        except client.exceptions.ResourceNotFoundException:
            pass  # not deployed yet
    region = client.meta.region_name
    try:
        requested = plan(args.stage, settings["ConcurrentExecutions"], open_shards(args.stream), requested)
    except ReservationTooLow as e:
        print(f"concurrency: {e}", file=sys.stderr)
        sys.exit(1)
    if args.plan_out:
        with open(args.plan_out, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in requested.items()))
    problem = verdict(settings["ConcurrentExecutions"], settings["UnreservedConcurrentExecutions"],
                      ours, requested, region)
    print(f"Lambda concurrency in {region}: limit {settings['ConcurrentExecutions']}, "
          f"{settings['UnreservedConcurrentExecutions']} unreserved; requested reservations "
          f"{requested}")
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
    print("concurrency: ok")


if __name__ == "__main__":
    main()
