"""Shared by the DynamoDB-backed benchmarks (scan_bench, tally_bench): a fresh in-process moto
account, rounds measured at PynamoDB's connection, and the results table with its verdict.

It sets the environment the settings are read from (they are read when used, not at import).
"""
import json
import os
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import boto3
from moto import mock_aws
from pynamodb.connection.base import Connection

from chalicelib.aws import tables
from chalicelib.tokens import Principal

ROOT = Path(__file__).resolve().parent.parent

os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  SLA_TABLE_PREFIX="bench-sla-", SLA_LOG_LEVEL="WARNING")
os.environ.pop("AWS_ENDPOINT_URL", None)

CONTRACT = json.loads((ROOT / "seed" / "demo-contract.json").read_text("utf-8"))
ADMIN = Principal("bench", "admin", None)


class ReadCounter:
    """Counts the items every DynamoDB answer carries, and the time spent waiting for DynamoDB (here
    moto), at PynamoDB's single choke point."""

    def __init__(self):
        self.items = 0
        self.dynamodb_s = 0.0
        self._original = Connection._make_api_call

    def __enter__(self):
        counter, original = self, self._original

        def counting(connection, operation, kwargs):
            started = time.perf_counter()
            answer = original(connection, operation, kwargs)
            counter.dynamodb_s += time.perf_counter() - started
            counter.items += len(answer.get("Items", [])) + (1 if "Item" in answer else 0)
            return answer

        Connection._make_api_call = counting
        return self

    def __exit__(self, *exc):
        Connection._make_api_call = self._original


@contextmanager
def fresh_account():
    """An empty moto account with the tables and the demo contract's SES sender verified."""
    with mock_aws():
        tables.create_all()
        boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=CONTRACT["notify"]["sender"])
        yield


def measure_rounds(rounds, action, prepare=lambda: None):
    """Run `action` `rounds` times (after `prepare` each time); medians of wall time and of time
    outside DynamoDB, items read per round, and the actions' results."""
    times, outside, reads, results = [], [], [], []
    for _ in range(rounds):
        prepare()
        with ReadCounter() as counter:
            started = time.perf_counter()
            results.append(action())
            times.append(time.perf_counter() - started)
        outside.append(times[-1] - counter.dynamodb_s)
        reads.append(counter.items)
    return {"items_read": reads[0], "reads_stable": len(set(reads)) == 1, "median_ms": statistics.median(times) * 1000,
            "outside_ms": statistics.median(outside) * 1000, "results": results}


def report(results, heading, what, rounds):
    """Print the results table (rows: size, extra, measures) and the verdict; exit 1 on a missed target.

    moto answers a GSI Query by walking every item of the table (DynamoDB seeks the index and bills
    the items it returns), so the targets apply to what our code does: items read equal across
    sizes, and time outside the emulator within 1.5x.
    """
    print(f"| {heading} | items read per {what} | {what} wall time | of which in moto | {what} outside moto |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['size']:,} | {r['extra']} | {r['items_read']} | {r['median_ms']:,.0f} ms "
              f"| {r['median_ms'] - r['outside_ms']:,.0f} ms | {r['outside_ms']:,.0f} ms |")
    small, large = results[0], results[-1]
    outside_growth = large["outside_ms"] / small["outside_ms"]
    equal = small["items_read"] == large["items_read"] and all(r["reads_stable"] for r in results)
    build = ", ".join(f"{r['build_s']:.0f} s" for r in results)
    print(f"\nitems read equal: {equal}; {large['size']:,} vs {small['size']:,}: wall time "
          f"{large['median_ms'] / small['median_ms']:.2f}x, outside moto {outside_growth:.2f}x (target <= 1.5x); "
          f"medians of {rounds} rounds; building the tables took {build}")
    return 0 if equal and outside_growth <= 1.5 else 1
