"""Interactions at volume: ingest 100,000 calls and chats, and what the nightly tally of one day reads
as the other days of the table grow.

    .venv/bin/python bench/interactions_bench.py [--day 1000] [--totals 1000 10000 100000] [--rounds 3]

In-process against moto (no network). One contract with a phone channel (business hours) and a chat
channel (24x7). The day tallied (Monday 2026-11-23, Asia/Shanghai) holds `--day` interactions; the
table then grows, in the same account, to each of `--totals` with interactions of the other days of
October and November, all posted through POST /contracts/{id}/interactions's use case in batches of
500 (validation, one BatchGetItem per 100 ids, BatchWriteItem per 25 items). After each step the day is
tallied `--rounds` times. Every DynamoDB answer is counted at PynamoDB's connection.

Targets: items read per tally equal at every size (the day's interactions and the month's tallies,
nothing of other days), and time outside the emulator within 1.5x. Also printed: the ingest rate, and
the DynamoDB calls of a batch of 500 new ids vs the same batch sent again (every id replaced).
"""
import argparse
import random
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import common  # first: it sets the environment the table models read at import
from pynamodb.connection.base import Connection

from chalicelib import contracts, evaluation, interactions, reporting
from chalicelib.aws import store

SH = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 23, tzinfo=SH)
NOW = datetime(2026, 12, 1, 0, 5, tzinfo=SH)
CONTRACT = common.CONTRACT | {"interactions": {
    "phone": {"answer_within": "60s", "target": 0.9, "hours": "business"},
    "chat": {"answer_within": "30s", "target": 0.9, "hours": "24x7"}}}
BATCH = 500


def interaction(rng, n, day_start):
    offered = day_start + timedelta(seconds=rng.randrange(24 * 3600))
    item = {"id": f"ctr-{n:07d}", "channel": "phone" if n % 3 else "chat", "offered_at": offered.isoformat()}
    if rng.random() < 0.07:
        item["abandoned_at"] = (offered + timedelta(seconds=rng.randint(5, 200))).isoformat()
    else:
        item["answered_at"] = (offered + timedelta(seconds=rng.randint(2, 120))).isoformat()
    return item


def other_day(rng):
    """Any day of October or November but the one tallied."""
    while True:
        start = datetime(2026, 10, 1, tzinfo=SH) + timedelta(days=rng.randrange(61))
        if start.date() != DAY.date():
            return start


def ingest(items):
    """Post `items` in batches of 500; seconds taken."""
    started = time.perf_counter()
    for first in range(0, len(items), BATCH):
        interactions.post_interactions(common.ADMIN, "bench", {"items": items[first:first + BATCH]}, NOW)
    return time.perf_counter() - started


class CallCounter:
    """DynamoDB calls by operation while active."""

    def __enter__(self):
        self.calls, self._original = {}, Connection._make_api_call
        counter, original = self, self._original

        def counting(connection, operation, kwargs):
            counter.calls[operation] = counter.calls.get(operation, 0) + 1
            return original(connection, operation, kwargs)

        Connection._make_api_call = counting
        return self

    def __exit__(self, *exc):
        Connection._make_api_call = self._original


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", type=int, default=1000, help="interactions of the day tallied")
    parser.add_argument("--totals", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(20261123)
    results, ingested, ingest_s = [], 0, 0.0
    with common.fresh_account():
        contracts.put_contract(common.ADMIN, "bench", CONTRACT, NOW)
        policy = evaluation.policy_of(store.latest_record("bench"))
        for total in args.totals:
            if ingested == 0:
                items = [interaction(rng, n, DAY) for n in range(args.day)]
            else:
                items = [interaction(rng, n, other_day(rng)) for n in range(ingested, total)]
            step_s = ingest(items)
            ingest_s += step_s
            ingested = total
            result = common.measure_rounds(
                args.rounds, lambda: reporting.tally_contract_day("bench", policy, DAY.date(), NOW))
            tallies = [{k: v for k, v in t.items() if k != "penalty_lines"} for t in result["results"]]
            assert all(t == tallies[0] for t in tallies), "a re-run must give the same tally"
            results.append(result | {"size": total, "extra": args.day, "build_s": step_s})
        batch = [interaction(rng, n, DAY - timedelta(days=7)) for n in range(ingested, ingested + BATCH)]
        with CallCounter() as fresh:
            ingest(batch)
        with CallCounter() as again:  # a feed delivering the batch again
            answer = interactions.post_interactions(common.ADMIN, "bench", {"items": batch}, NOW)
        assert answer == {"accepted": BATCH, "replaced": BATCH}, answer
    verdict = common.report(results, "interactions in the table | of the day tallied", "tally", args.rounds)
    channels = results[-1]["results"][0]["interactions"]
    print("the day tallied: " + "; ".join(
        f"{channel} offered {c['offered']}, service level {c['service_level']}, p90 {c['p90_answer_seconds']} s"
        for channel, c in channels.items()))
    print(f"ingest: {ingested:,} interactions in {ingest_s:,.0f} s ({ingested / ingest_s:,.0f} per second through "
          f"validation and batch writes, in moto)")
    print(f"DynamoDB calls for a batch of {BATCH}: new ids {fresh.calls}; the same ids again {again.calls}")
    sys.exit(verdict)


if __name__ == "__main__":
    main()
