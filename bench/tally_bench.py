"""nightly_tally cost vs history: 1,000 and 20,000 resolved requests, the same 50 active in the day.

    .venv/bin/python bench/tally_bench.py [--sizes 1000 20000] [--active 50] [--rounds 5]

In-process against moto (no network). History: requests received and resolved on earlier days of the
month. The day tallied (Monday 2026-11-23, Asia/Shanghai) has 50 active requests: received that
day, half answered late, some resolved, some still open. Items are written with batch writes.
Every DynamoDB answer is counted at PynamoDB's connection. Targets: items read equal across sizes,
time within 1.5x (outside the emulator: moto answers a GSI query by walking the whole table).
"""
import argparse
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import common  # first: it sets the environment the table models read at import
import factories

from chalicelib import contracts, evaluation, reporting
from chalicelib.aws import store

SH = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 11, 23, tzinfo=SH)
NOW = DAY + timedelta(days=1, minutes=5)  # the nightly run, 00:05 the next day


def fill(size, active):
    contracts.put_contract(common.ADMIN, "bench", common.CONTRACT, NOW)
    policy = evaluation.policy_of(store.latest_record("bench"))
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
    with common.fresh_account():
        started = time.perf_counter()
        policy = fill(size, active)
        build_s = time.perf_counter() - started
        result = common.measure_rounds(rounds, lambda: reporting.tally_contract_day("bench", policy, DAY.date(), NOW))
    tallies = result["results"]
    assert all(t == tallies[0] for t in tallies), "a re-run must give the same tally"
    assert tallies[0]["received"] == active, tallies[0]
    return result | {"size": size, "extra": active, "build_s": build_s}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--active", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = [measure(size, args.active, args.rounds) for size in args.sizes]
    verdict = common.report(results, "requests in the table | active that day", "tally", args.rounds)
    day = results[0]["results"][0]
    print(f"the day tallied: {day['received']} received, {sum(sum(v.values()) for v in day['breaches'].values())} "
          f"breaches, penalties {day['penalties']} {day['currency']}")
    sys.exit(verdict)


if __name__ == "__main__":
    main()
