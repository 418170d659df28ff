"""Benchmark: chalicelib.core.calendar.BusinessCalendar vs businesstimedelta, same run, same machine.

    .venv/bin/python bench/calendar_bench.py [--starts N] [--seed S]

Both calendars: Asia/Shanghai, Mon-Fri 09:00-12:00 and 13:00-17:00, CN public holidays from
python-holidays. Operations, over the same random start instants (fixed seed):
  add      start + 8 business hours
  between  business time from start to start + 60 days
Caches are warmed for both before timing (our per-year arrays; python-holidays and pytz for
businesstimedelta), every timing is the best of several rounds. Also measured: our `add` over
250 working days (120000 minutes) vs 8 hours, to show the cost does not grow with the span,
the cold cost of a year's arrays, and our calendar with published country-year overrides in
place (2025 and 2026 given as overrides, same days as the package: same answers). Exits 1 if a
target (>= 100x on add and between, span growth <= 3x, overrides as fast within 20 %) is missed
or if the libraries disagree where no CN make-up working day explains it.
"""

import argparse
import os
import platform
import random
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import businesstimedelta
import holidays
import pytz

from chalicelib.core.calendar import BusinessCalendar, package_schedule

TZ_NAME = "Asia/Shanghai"
TZ = ZoneInfo(TZ_NAME)
YEARS = range(2024, 2029)  # every year a 60-day window or an 8-hour add from 2025-2026 can reach


def ours(overrides=None):
    return BusinessCalendar.from_config(None, timezone=TZ_NAME, overrides=overrides)


def with_overrides():
    """Ours with 2025 and 2026 published as overrides (the package's own days, so answers match)."""
    return ours({year: package_schedule("CN", year) for year in (2025, 2026)})


def theirs():
    ptz = pytz.timezone(TZ_NAME)
    workday = businesstimedelta.WorkDayRule(start_time=datetime.min.time().replace(hour=9),
                                            end_time=datetime.min.time().replace(hour=17),
                                            working_days=[0, 1, 2, 3, 4], tz=ptz)
    lunch = businesstimedelta.LunchTimeRule(start_time=datetime.min.time().replace(hour=12),
                                            end_time=datetime.min.time().replace(hour=13),
                                            working_days=[0, 1, 2, 3, 4], tz=ptz)
    cn = holidays.country_holidays("CN", years=list(YEARS))
    holiday_rule = businesstimedelta.HolidayRule(cn, tz=ptz)
    return businesstimedelta.Rules([workday, lunch, holiday_rule])


def random_starts(n, seed):
    rng = random.Random(seed)
    first = datetime(2025, 1, 1, tzinfo=TZ)
    minutes = int((datetime(2026, 12, 1, tzinfo=TZ) - first).total_seconds() // 60)
    return [first + timedelta(minutes=rng.randrange(minutes)) for _ in range(n)]


def cold_ms(samples=7):
    """Median time of the first `add` on a brand-new calendar (country holidays already cached)."""
    start = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
    times = []
    for i in range(samples):
        fresh = BusinessCalendar.from_config({"extra_holidays": [f"2099-01-{i + 1:02d}"]}, timezone=TZ_NAME)
        t0 = time.perf_counter()
        fresh.add(start, 480)
        times.append(time.perf_counter() - t0)
    return sorted(times)[samples // 2] * 1000


def best_rate(fn, args, rounds):
    """Best ops/s over `rounds` passes of fn(*a) for a in args."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for a in args:
            fn(*a)
        best = min(best, time.perf_counter() - t0)
    return len(args) / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=300, help="random start instants (default 300)")
    parser.add_argument("--seed", type=int, default=20260213)
    args = parser.parse_args()

    cal = ours()
    rules = theirs()
    eight_hours = businesstimedelta.BusinessTimeDelta(rules, hours=8)
    starts = random_starts(args.starts, args.seed)
    sixty = timedelta(days=60)
    pairs = [(s, s + sixty) for s in starts]

    def btd_add(s):
        return s + eight_hours

    def btd_between(a, b):
        return rules.difference(a, b).timedelta.total_seconds() / 60

    # Warm every cache, and check both agree except where a CN make-up working day is involved.
    makeup = set()
    for y in YEARS:
        makeup |= {d for d in holidays.country_holidays("CN", years=y).weekend_workdays if d.year == y}

    def involves_makeup(a, b):
        return any(a.date() <= d <= b.date() for d in makeup)

    agree_add = unexplained = 0
    for s in starts:
        mine, other = cal.add(s, 480), btd_add(s)
        agree_add += mine == other
        unexplained += mine != other and not involves_makeup(s, max(mine, other))
    agree_between = 0
    for a, b in pairs:
        same = cal.between(a, b) == btd_between(a, b)
        agree_between += same
        unexplained += not same and not involves_makeup(a, b)
    for s in starts:
        cal.add(s, 120_000)
    published = with_overrides()
    assert published is not cal
    same = all(published.add(s, 480) == cal.add(s, 480) for s in starts)
    same = same and all(published.between(a, b) == cal.between(a, b) for a, b in pairs)

    ours_add = best_rate(cal.add, [(s, 480) for s in starts], rounds=7)
    ours_add_long = best_rate(cal.add, [(s, 120_000) for s in starts], rounds=7)
    ours_between = best_rate(cal.between, pairs, rounds=7)
    published_add = best_rate(published.add, [(s, 480) for s in starts], rounds=7)
    published_between = best_rate(published.between, pairs, rounds=7)
    theirs_add = best_rate(btd_add, [(s,) for s in starts], rounds=3)
    theirs_between = best_rate(btd_between, pairs, rounds=2)  # ~20 ms a call: two rounds suffice

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
          f"{len(starts)} random starts 2025-01-01..2026-12-01 {TZ_NAME}, seed {args.seed}")
    print(f"agreement with businesstimedelta: add {agree_add}/{len(starts)}, between {agree_between}/{len(starts)} "
          f"(disagreements not explained by a CN make-up working day: {unexplained})")
    print()
    print(f"| {'operation':<34} | {'ours ops/s':>12} | {'businesstimedelta ops/s':>23} | {'ratio':>8} |")
    print(f"| {'-' * 34} | {'-' * 12}:| {'-' * 23}:| {'-' * 8}:|")
    rows = [("add(start, 8 business hours)", ours_add, theirs_add),
            ("between(a, a + 60 days)", ours_between, theirs_between)]
    for name, mine, other in rows:
        print(f"| {name:<34} | {mine:>12,.0f} | {other:>23,.0f} | {mine / other:>7,.0f}x |")
    print(f"| {'add(start, 120000 min = 250 wd)':<34} | {ours_add_long:>12,.0f} | {'':>23} | {'':>8} |")
    print(f"| {'add, with 2025-2026 overrides':<34} | {published_add:>12,.0f} | {'':>23} | {'':>8} |")
    print(f"| {'between, with 2025-2026 overrides':<34} | {published_between:>12,.0f} | {'':>23} | {'':>8} |")
    growth = ours_add / ours_add_long
    override_cost = max(ours_add / published_add, ours_between / published_between)
    print()
    print(f"span growth, add 120000 min vs 480 min: {growth:.2f}x the time per call (target <= 3x)")
    print(f"cold start, first add on a fresh calendar (builds one year's arrays): {cold_ms():.1f} ms, once per year")
    print(f"overrides in place: {override_cost:.2f}x the time per call (target <= 1.2x), "
          f"answers {'identical' if same else 'DIFFERENT'}")

    print()
    start = datetime(2026, 2, 13, 16, 30, tzinfo=TZ)
    print(f"make-up working day: {start.isoformat()} (Friday) + 2 business hours")
    theirs_due = btd_add_2h(rules, start).astimezone(TZ)
    print(f"  businesstimedelta: {theirs_due.isoformat()}  (skips make-up Saturday 2026-02-14)")
    print(f"  ours:              {cal.add(start, 120).isoformat()}  (make-up Saturday 2026-02-14)")

    ok = min(ours_add / theirs_add, ours_between / theirs_between) >= 100 and growth <= 3 and not unexplained
    ok = ok and same and override_cost <= 1.2
    print()
    print("targets (>= 100x on add and between, span growth <= 3x, overrides <= 1.2x, agreement):",
          "met" if ok else "MISSED")
    return 0 if ok else 1


def btd_add_2h(rules, start):
    return start + businesstimedelta.BusinessTimeDelta(rules, hours=2)


if __name__ == "__main__":
    sys.exit(main())
