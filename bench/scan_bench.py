"""scan_deadlines cost vs table size: 1,000 and 20,000 open requests with the same 20 due.

    .venv/bin/python bench/scan_bench.py [--sizes 1000 20000] [--due 20] [--rounds 5]

Runs in-process against moto (no network). Each size gets a fresh moto account: the not-due
requests are low-priority ones received "now" (first check four business hours away), the due ones
urgent requests received 20 minutes earlier (their 50 % warning came after 15). Items are written
with batch writes, bypassing the API, so building 20,000 takes seconds. Every DynamoDB answer is
counted at PynamoDB's connection, whatever code path asked. Each round rewinds the due requests'
next check and clears the outbox, so every round does the same work; the table keeps its size.
Targets: items read equal across sizes, time within 1.5x (see common.report).
"""
import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import common  # first: it sets the environment the table models read at import
import factories

from chalicelib import contracts, evaluation, scanner
from chalicelib.aws import outbox, store
from chalicelib.aws.tables import NotificationModel, RequestModel

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


def fill(size, due):
    contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, NOW)
    policy = evaluation.policy_of(store.latest_record("bench"))
    earlier = NOW - timedelta(minutes=20)  # last evaluated then: its next check (+15 min) has come
    due_items = [factories.request_item(policy, "bench", "urgent", earlier, earlier) for _ in range(due)]
    factories.insert(due_items + [factories.request_item(policy, "bench", "low", NOW, NOW)
                                  for _ in range(size - due)])
    return due_items


def rewind(due_items):
    """Put the due requests back in the index, unchecked, and forget what was sent: the next round redoes it."""
    for item in due_items:
        fresh = RequestModel.get(item.request_id)
        fresh.update(actions=[RequestModel.next_check_at.set(item.next_check_at),
                              RequestModel.due_shard.set(item.due_shard),
                              RequestModel.checked_until.remove()])  # or the visit sees nothing new
        for entry in NotificationModel.query(item.request_id):
            entry.delete()


def measure(size, due, rounds):
    with common.fresh_account():
        started = time.perf_counter()
        due_items = fill(size, due)
        build_s = time.perf_counter() - started
        result = common.measure_rounds(rounds, lambda: scanner.scan(NOW), prepare=lambda: rewind(due_items))
    assert all(r.due == due and r.sent == due for r in result["results"]), result["results"]
    return result | {"size": size, "extra": due, "build_s": build_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--due", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # moto's send quota is 1 email/s: 20 sends would take 19 s of pacing, measuring nothing of the scan.
    os.environ[outbox.SEND_RATE_VARIABLE] = "50"
    results = [measure(size, args.due, args.rounds) for size in args.sizes]
    sys.exit(common.report(results, "open requests | due", "scan", args.rounds))


if __name__ == "__main__":
    main()
