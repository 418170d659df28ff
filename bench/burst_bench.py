"""A Monday-morning burst: 1,000 (and 10,000) breach alerts due at once, sent by scan_deadlines.

    .venv/bin/python bench/burst_bench.py                          # 1,000 due notifications, one scan a minute
    .venv/bin/python bench/burst_bench.py --shards 1 2             # the same with K = 1 and with K = 2
    .venv/bin/python bench/burst_bench.py --sizes 1000 10000       # the 10,000 burst takes many minutes

Runs in-process against moto. Each size gets a fresh account filled with urgent requests whose first
response breached in the last ten minutes and that were last checked after their warnings: each has
exactly one notification due, its breach alert (written with batch writes, bypassing the API).
Latency is injected at botocore's `BaseClient._make_api_call`, the boundary every AWS call crosses:
each SES call sleeps --ses-ms (100) and each DynamoDB call --dynamodb-ms (5) before moto answers.
The send rate is configured as a stage would configure it (`SLA_SES_MAX_SEND_RATE`, --rate 50).

Scans run as the schedule runs them: every --period (60) seconds K scans start at once (--shards K,
each a shard group's share of the work and of the rate, in a thread of its own: here they share this
process's one core, where on AWS each has its own Lambda), each with the budget a Lambda with the
stage's timeout gets, until every notification is sent. Reported:
- notifications per minute: sent ÷ time to drain (from the first scan's start to the last send);
- overlap: the latency injected ÷ the scans' wall time (1× = paid in series);
- AWS calls per notification, by operation;
- CPU: how busy this process was while scanning (one core is the most a Python process gets), its
  CPU time per notification, how much of it is moto emulating AWS (on AWS that work is done on
  AWS's side, inside the latency) and how much is ours.
Goals: at least 90 % of the configured rate, overlap at least 3×. Exits 1 when one is missed.
"""
import argparse
import json
import os
import platform
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import common  # first: it sets the environment the table models read at import
import factories
from botocore.client import BaseClient
from moto.core.botocore_stubber import BotocoreStubber

from chalicelib import contracts, evaluation, scanner
from chalicelib.aws import outbox, store
from chalicelib.budget import Budget
from chalicelib.shards import Share

NOW = datetime(2026, 11, 23, 1, 30, tzinfo=UTC)  # Monday 09:30 in Shanghai
TIMEOUT = json.loads((common.ROOT / ".chalice" / "config.json").read_text("utf-8"))[
    "stages"]["prod"]["lambda_functions"]["scan_deadlines"]["lambda_timeout"]


class Boundary:
    """Sleeps the injected latency before each AWS call and keeps the books: latency injected, CPU
    spent inside moto, sends and when the last one returned."""

    def __init__(self, ses_s, dynamodb_s):
        self.latency = {"ses": ses_s, "dynamodb": dynamodb_s}
        self.injected = self.moto_cpu = 0.0
        self.sends = 0
        self.operations = Counter()
        self.last_send = None
        self._lock = threading.Lock()

    def __enter__(self):
        self._call, self._stub = BaseClient._make_api_call, BotocoreStubber.__call__
        boundary, call, stub = self, self._call, self._stub

        def slow_call(client, operation, params):
            pause = boundary.latency.get(client.meta.service_model.service_name, 0.0)
            time.sleep(pause)
            answer = call(client, operation, params)
            with boundary._lock:
                boundary.injected += pause
                boundary.operations[operation] += 1
                if operation == "SendRawEmail":
                    boundary.sends += 1
                    boundary.last_send = time.perf_counter()
            return answer

        def counted_stub(stubber, event_name, request, **kwargs):
            started = time.thread_time()
            try:
                return stub(stubber, event_name, request, **kwargs)
            finally:
                with boundary._lock:
                    boundary.moto_cpu += time.thread_time() - started

        BaseClient._make_api_call, BotocoreStubber.__call__ = slow_call, counted_stub
        return self

    def __exit__(self, *exc):
        BaseClient._make_api_call, BotocoreStubber.__call__ = self._call, self._stub


class LambdaContext:
    """What a scheduled invocation's context says: the stage's timeout, counted from the start."""

    def __init__(self):
        self._deadline = time.monotonic() + TIMEOUT

    def get_remaining_time_in_millis(self):
        return int((self._deadline - time.monotonic()) * 1000)


def fill(size):
    contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, NOW)
    policy = evaluation.policy_of(store.latest_record("bench"))
    spread = timedelta(minutes=10) / size
    factories.insert([factories.due_breach(policy, "bench", NOW - timedelta(minutes=10) + n * spread)
                      for n in range(size)])


def minute(now, workers, count):
    """The minute's K scans at once, one per shard group: their reports."""
    reports = [None] * count

    def scan(group):
        share = Share(frozenset({group}), count)
        reports[group] = scanner.scan(now, Budget(scanner.SCAN_SECONDS, LambdaContext()), workers, share=share)

    threads = [threading.Thread(target=scan, args=(group,)) for group in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports


def drain(size, period, workers, count):
    """The minutes' scans on the schedule until all `size` notifications are sent: each minute's
    reports, and the wall time the minutes took."""
    minutes, busy = [], 0.0
    started = time.perf_counter()
    while sum(r.sent for reports in minutes for r in reports) < size:
        tick = started + period * len(minutes)
        time.sleep(max(0.0, tick - time.perf_counter()))
        scan_started = time.perf_counter()
        now = NOW + timedelta(seconds=period * len(minutes))
        minutes.append(minute(now, workers, count))
        busy += time.perf_counter() - scan_started
        if sum(r.sent for r in minutes[-1]) == 0:
            raise SystemExit(f"a minute's scans sent nothing: {minutes[-1]}")
    return minutes, busy, started


def measure(size, count, args):
    with common.fresh_account():
        fill(size)
        os.environ[outbox.SEND_RATE_VARIABLE] = str(args.rate)
        with Boundary(args.ses_ms / 1000, args.dynamodb_ms / 1000) as boundary:
            cpu = time.process_time()
            minutes, busy, started = drain(size, args.period, args.workers, count)
            cpu = time.process_time() - cpu
    reports = [r for reports in minutes for r in reports]
    assert boundary.sends == size == sum(r.sent for r in reports), (boundary.sends, reports)
    assert sum(r.errors + r.failed + r.busy for r in reports) == 0, reports
    drained = boundary.last_send - started
    return {"size": size, "shards": count, "scans": len(reports), "drain_s": drained,
            "per_minute": size / drained * 60, "overlap": boundary.injected / busy, "cpu_busy": cpu / busy,
            "cpu_ms": cpu / size * 1000, "moto_ms": boundary.moto_cpu / size * 1000,
            "sent": ["+".join(f"{r.sent:,}" for r in reports) for reports in minutes],
            "calls": {op: n / size for op, n in boundary.operations.most_common()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--rate", type=float, default=50.0, help="configured SES send rate, per second")
    parser.add_argument("--ses-ms", type=float, default=100.0)
    parser.add_argument("--dynamodb-ms", type=float, default=5.0)
    parser.add_argument("--period", type=float, default=60.0, help="seconds between scheduled scans")
    parser.add_argument("--workers", type=int, default=scanner.WORKERS)
    parser.add_argument("--shards", type=int, nargs="+", default=[1], help="K: scans a minute, one per shard group")
    args = parser.parse_args()
    results = [measure(size, count, args) for size in args.sizes for count in args.shards]
    goal = args.rate * 60 * 0.9
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"SES {args.ses_ms:g} ms, DynamoDB {args.dynamodb_ms:g} ms injected; configured rate {args.rate:g}/s; "
          f"{args.workers} workers; a scan every {args.period:g} s with a {scanner.SCAN_SECONDS:g} s budget\n")
    print("| due notifications | K | scans (sent each minute) | time to drain | notifications per minute | of the rate "
          "| overlap | CPU busy | CPU per notification | in moto | ours |")
    print("| ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['size']:,} | {r['shards']} | {r['scans']} ({', '.join(r['sent'])}) | {r['drain_s']:,.1f} s "
              f"| {r['per_minute']:,.0f} | {r['per_minute'] / (args.rate * 60):.0%} | {r['overlap']:.1f}× "
              f"| {r['cpu_busy']:.0%} | {r['cpu_ms']:.1f} ms | {r['moto_ms']:.1f} ms "
              f"| {r['cpu_ms'] - r['moto_ms']:.1f} ms |")
    for r in results:
        calls = ", ".join(f"{op} {n:.2f}" for op, n in r["calls"].items())
        print(f"\n{r['size']:,}, K = {r['shards']}: AWS calls per notification: {calls}")
    met = all(r["per_minute"] >= goal and r["overlap"] >= 3 for r in results)
    print(f"\ngoals: ≥ {goal:,.0f} notifications per minute (90 % of {args.rate:g}/s) and overlap ≥ 3×: "
          f"{'met' if met else 'MISSED'}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
