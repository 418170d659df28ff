"""What-if cost: a month of 1,000 and of 10,000 requests replayed under a candidate contract.

    .venv/bin/python bench/whatif_bench.py [--sizes 1000 10000] [--rounds 3]

In-process against moto (no network). The month is November 2026 (Asia/Shanghai) of the demo
contract: requests received at random instants (fixed seed), four priorities, most answered and
resolved (some late, some with progress updates or a wait for the customer), some still open, a few
never answered; written with batch writes, resolved ones with their frozen outcome. The candidate:
the high priority at 4 h and a monthly cap of 1,000. Each round reads the month once (items counted
at PynamoDB's connection), then evaluates it: every request under both terms, the tallies of the
month's days and the comparison. Target: evaluation of 10,000 requests under 2 s.
"""
import argparse
import copy
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import common  # first: it sets the environment the table models read at import
import factories

from chalicelib import contracts, evaluation, simulations
from chalicelib.aws import store
from chalicelib.core.tally import month_bounds

SH = ZoneInfo("Asia/Shanghai")
MONTH = (2026, 11)
NOW = datetime(2026, 12, 2, 10, tzinfo=SH)
PRIORITIES = ("high",) * 4 + ("medium",) * 3 + ("low",) * 2 + ("urgent",)
TARGET_H = {"urgent": 0.5, "high": 2, "medium": 4, "low": 8}  # the demo contract's first responses
RESOLVE_H = {"urgent": (1, 8), "high": (2, 24), "medium": (4, 72), "low": (8, 240)}  # after the last event
PROGRESS_H = {"urgent": 1, "high": 4}  # its progress updates
TARGET_S = 2.0


def candidate():
    document = copy.deepcopy(common.CONTRACT)
    document["priorities"]["high"]["first_response"] = "4h"
    document["penalties"]["monthly_cap"] = 1000
    return document


def timeline(rng, priority, received):
    """Events after `received`: a first response around the target (a few late), progress updates about
    as often as the contract asks, sometimes a wait for the customer, a resolve within a span typical
    of the priority; a few requests never answered, a few answered and then forgotten."""
    roll = rng.random()
    if roll < 0.02:
        return []  # never answered
    at = received + timedelta(hours=rng.uniform(0.1, 1.3) * TARGET_H[priority])
    events = [("respond", at)]
    if rng.random() < 0.05:
        events += [("await_customer", at + timedelta(minutes=10)),
                   ("customer_reply", at + timedelta(hours=rng.uniform(1, 48)))]
        at = events[-1][1]
    if roll < 0.05:
        return [event for event in events if event[1] < NOW]  # forgotten: open, no progress
    resolved = at + timedelta(hours=rng.uniform(*RESOLVE_H[priority]))
    every = PROGRESS_H.get(priority)
    while every and at + timedelta(hours=every) < min(resolved, NOW):
        at += timedelta(hours=rng.uniform(0.6, 1.1) * every)
        events.append(("progress", at))
    events.append(("resolve", max(resolved, at + timedelta(minutes=1))))
    return [event for event in events if event[1] < NOW]


def fill(size):
    contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, NOW)
    policy = evaluation.policy_of(store.latest_contract("bench"))
    start, end = month_bounds(MONTH, SH)
    seconds = int((end - start).total_seconds())
    rng = random.Random(size)
    items = []
    for _ in range(size):
        received = start + timedelta(seconds=rng.randrange(seconds))
        priority = rng.choice(PRIORITIES)
        items.append(factories.request_item(policy, "bench", priority, received, NOW,
                                            timeline(rng, priority, received)))
    factories.insert(items)
    return policy


def measure(size, rounds):
    with common.fresh_account():
        started = time.perf_counter()
        latest = fill(size)
        build_s = time.perf_counter() - started
        candidate_policy = simulations.candidate_policy(candidate(), NOW)
        start, end = month_bounds(MONTH, SH)
        reads, read_s, evaluation_s, evaluation_cpu_s, results = [], [], [], [], []
        for _ in range(rounds):
            with common.ReadCounter() as counter:
                started = time.perf_counter()
                items = list(store.requests_received_between("bench", start, end))
                read_s.append(time.perf_counter() - started)
            reads.append(counter.items)
            started, cpu = time.perf_counter(), time.process_time()
            results.append(simulations.replay(items, latest, candidate_policy, MONTH, end))
            evaluation_s.append(time.perf_counter() - started)
            evaluation_cpu_s.append(time.process_time() - cpu)
        call = common.measure_rounds(1, lambda: simulations.simulate(
            common.ADMIN, "bench", {"contract": candidate(), "month": "2026-11"}, NOW))
    assert all(result == results[0] for result in results), "a replay must give the same answer every time"
    assert results[0]["requests"] == size and call["results"][0]["requests"] == size
    return {"size": size, "items_read": reads[0], "read_s": statistics.median(read_s),
            "evaluation_s": statistics.median(evaluation_s), "evaluation_cpu_s": statistics.median(evaluation_cpu_s),
            "call_s": call["median_ms"] / 1000,
            "call_items": call["items_read"], "build_s": build_s, "result": results[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = [measure(size, args.rounds) for size in args.sizes]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds\n")
    print("| requests in the month | items read | reading them (moto) | evaluation, wall | evaluation, CPU "
          "| CPU per request | whole call, wall (items read) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['size']:,} | {r['items_read']:,} | {r['read_s'] * 1000:,.0f} ms "
              f"| {r['evaluation_s'] * 1000:,.0f} ms "
              f"| {r['evaluation_cpu_s'] * 1000:,.0f} ms | {r['evaluation_cpu_s'] / r['size'] * 1e6:,.0f} µs "
              f"| {r['call_s'] * 1000:,.0f} ms ({r['call_items']:,}) |")
    largest = results[-1]
    for r in results:
        current, after = r["result"]["current"], r["result"]["candidate"]
        print(f"\n{r['size']:,} requests: current {current['breaches']} {current['penalties']}; "
              f"candidate {after['breaches']} {after['penalties']}; {r['result']['changed_total']:,} changed; "
              f"building the table took {r['build_s']:.0f} s")
    # On a shared machine the wall time counts the other processes' turns too: the target is checked
    # on the CPU time this process spent, and both are printed.
    met = largest["evaluation_cpu_s"] < TARGET_S
    print(f"\nevaluation of {largest['size']:,} requests: {largest['evaluation_cpu_s']:.2f} s of CPU, "
          f"{largest['evaluation_s']:.2f} s wall (target < {TARGET_S:.0f} s of CPU: {'met' if met else 'missed'})")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
