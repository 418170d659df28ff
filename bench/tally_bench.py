"""nightly_tally cost vs history: 1,000 and 20,000 resolved requests, the same 50 active in the day.

    .venv/bin/python bench/tally_bench.py [--sizes 1000 20000] [--active 50] [--rounds 5]

In-process against moto (no network). History: requests received and resolved on earlier days of the
month. The day tallied (Monday 2026-11-23, Asia/Shanghai) has 50 active requests: received that
day, half answered late, some resolved, some still open. Items are written with batch writes.
Every DynamoDB answer is counted at PynamoDB's connection. Targets: items read equal across sizes,
time within 1.5x (outside the emulator: moto answers a GSI query by walking the whole table).
"""
import argparse
import json
import logging
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  SLA_TABLE_PREFIX="bench-sla-")
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
import factories  # noqa: E402
from moto import mock_aws  # noqa: E402
from scan_bench import ReadCounter  # noqa: E402

from chalicelib import reporting, service, tables  # noqa: E402
from chalicelib.auth import Principal  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 23, tzinfo=SH)
NOW = DAY + timedelta(days=1, minutes=5)  # the nightly run, 00:05 the next day
CONTRACT = json.loads((ROOT / "seed" / "demo-contract.json").read_text("utf-8"))


def fill(size, active):
    service.put_contract(Principal("bench", "admin", None), "bench", CONTRACT, NOW)
    policy = service.policy_of(service.store.latest_contract("bench"))
    items = []
    for n in range(size - active):  # history: the first three weeks of the month, resolved the same day
        received = DAY - timedelta(days=1 + n % 20, hours=-10)
        items.append(factories.request_item(policy, "bench", "high", received, NOW,
                                            [("respond", received + timedelta(minutes=30)),
                                             ("resolve", received + timedelta(hours=3))]))
    for n in range(active):  # the day's requests: late or on time, resolved or open
        received = DAY + timedelta(hours=9, minutes=5 * n)
        events = [("respond", received + timedelta(hours=1 if n % 2 else 3))]
        if n % 3 == 0:
            events.append(("resolve", received + timedelta(hours=5)))
        items.append(factories.request_item(policy, "bench", "high", received, NOW, events))
    factories.insert(items)
    return policy


def measure(size, active, rounds):
    with mock_aws():
        tables.create_all()
        boto3.client("ses", region_name="us-east-1").verify_email_identity(EmailAddress=CONTRACT["notify"]["sender"])
        started = time.perf_counter()
        policy = fill(size, active)
        build_s = time.perf_counter() - started
        times, outside, reads, results = [], [], [], []
        for _ in range(rounds):
            with ReadCounter() as counter:
                started = time.perf_counter()
                results.append(reporting.tally_contract_day("bench", policy, DAY.date(), NOW))
                times.append(time.perf_counter() - started)
            outside.append(times[-1] - counter.dynamodb_s)
            reads.append(counter.items)
        assert all(r == results[0] for r in results), "a re-run must give the same tally"
        assert results[0]["received"] == active, results[0]
        return {"size": size, "items_read": reads[0], "reads_stable": len(set(reads)) == 1,
                "median_ms": statistics.median(times) * 1000, "outside_ms": statistics.median(outside) * 1000,
                "build_s": build_s, "tally": results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--active", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("sla_clock").setLevel(logging.WARNING)
    results = [measure(size, args.active, args.rounds) for size in args.sizes]
    print("| requests in the table | active that day | items read per tally | tally wall time | of which in moto "
          "| tally outside moto |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['size']:,} | {args.active} | {r['items_read']} | {r['median_ms']:.0f} ms "
              f"| {r['median_ms'] - r['outside_ms']:.0f} ms | {r['outside_ms']:.0f} ms |")
    small, large = results[0], results[-1]
    outside_growth = large["outside_ms"] / small["outside_ms"]
    equal = small["items_read"] == large["items_read"] and all(r["reads_stable"] for r in results)
    tally = small["tally"]
    print(f"\nitems read equal: {equal}; {large['size']:,} vs {small['size']:,}: wall time "
          f"{large['median_ms'] / small['median_ms']:.2f}x, outside moto {outside_growth:.2f}x (target <= 1.5x); "
          f"medians of {args.rounds} runs; the day: {tally['received']} received, "
          f"{sum(sum(v.values()) for v in tally['breaches'].values())} breaches, penalties {tally['penalties']} "
          f"{tally['currency']}")
    sys.exit(0 if equal and outside_growth <= 1.5 else 1)


if __name__ == "__main__":
    main()
